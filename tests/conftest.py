"""Shared test setup: make the numpy reference module importable (tests import the installed
l2decay, never the source tree: pytest runs with --import-mode=importlib)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
