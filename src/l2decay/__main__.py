"""`python -m l2decay`: the same command as `l2decay`."""
import sys

from .cli import main

# The guard matters: worker processes are spawned, and a spawned process imports the parent's
# main module (this one, under another name) before it runs its task.
if __name__ == "__main__":
    sys.exit(main())
