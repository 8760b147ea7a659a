"""README.md and the pages of docs/: every Python snippet runs as printed (against the installed
package) and writes nothing where it runs; every command line of the ``sh`` blocks parses as
printed and writes only under out/ or /tmp; every relative link resolves; the Sphinx site builds
with warnings as errors."""
import glob
import os
import re
import shlex
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
PAGES = [p for p in PAGES if os.path.exists(p)]
pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "docs", "conf.py")),
                                reason="the checkout's README.md and docs/ are not beside tests/")


def blocks(kind):
    """(page, k, text) of every ```kind block of every page."""
    out = []
    for page in PAGES:
        for k, text in enumerate(re.findall(rf"^```{kind}\n(.*?)^```$", open(page).read(), re.M | re.S)):
            out.append((os.path.relpath(page, ROOT), k, text))
    return out


SNIPPETS = blocks("python")
COMMANDS = [(page, line) for page, _, text in blocks("sh") for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("page,k,code", SNIPPETS, ids=[f"{p}:{k}" for p, k, _ in SNIPPETS])
def test_snippet_runs_and_writes_nothing_where_it_runs(page, k, code, tmp_path):
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{page} python snippet {k}:\n{code}\n{proc.stderr[-2000:]}"
    assert os.listdir(tmp_path) == [], f"{page} python snippet {k} wrote {os.listdir(tmp_path)} where it ran"


def _l2decay_commands(line):
    """The argument lists of the l2decay commands in a shell line (a for loop's body included)."""
    out = []
    for part in re.split(r"&&|;|\|", line.split("#")[0]):
        words = shlex.split(part.replace("$r", "nearest"))
        while words and words[0] in ("do", "then") or (words and "=" in words[0] and not words[0].startswith("-")):
            words = words[1:]
        if words and os.path.basename(words[0]) == "l2decay":
            out.append(words[1:])
    return out


@pytest.mark.parametrize("page,line", COMMANDS, ids=[f"{p}:{line[:60]}" for p, line in COMMANDS])
def test_command_parses_and_writes_only_out_of_the_checkout(page, line):
    from l2decay import cli
    for argv in _l2decay_commands(line):
        args = cli._parser().parse_args(argv)     # SystemExit (exit 2) on an option that does not exist
        for option in ("json", "plot", "checkpoint"):
            path = getattr(args, option, None)
            if path and path != "-":
                assert path.startswith(("out/", "/tmp/")), f"{page}: {line!r} writes {path} into the checkout"
    extras = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["project"]["optional-dependencies"]
    for spec in re.findall(r"pip install '\.\[([^\]]*)\]'", line):
        unknown = set(spec.split(",")) - set(extras)
        assert not unknown, f"{page}: {line!r} installs extras pyproject.toml does not have: {unknown}"
    if "pip install" in line or "l2decay " in line or "pytest" in line:
        assert ".venv/bin/" in line or page == "README.md" and "venv" in line, \
            f"{page}: {line!r} runs a tool without saying which environment (.venv/bin/...)"


def test_relative_links_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", open(page).read()):
            path = os.path.normpath(os.path.join(os.path.dirname(page), target))
            assert os.path.exists(path), f"{os.path.relpath(page, ROOT)} links to {target}, which does not exist"


def test_readme_is_a_landing_page():
    text = open(os.path.join(ROOT, "README.md")).read()
    assert len(text.encode()) <= 12_000
    first_screen = "\n".join(text.splitlines()[:60])
    assert "l2decay.torch" in first_screen and "The Difference Between Neural Network L2" in first_screen


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           os.path.join(ROOT, "docs"), str(tmp_path / "html")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
