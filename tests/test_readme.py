"""Every Python snippet in README.md runs as printed (against the installed package)."""
import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
SNIPPETS = re.findall(r"^```python\n(.*?)^```$", open(README).read(), re.M | re.S) if os.path.exists(README) else []


@pytest.mark.skipif(not SNIPPETS, reason="README.md not beside tests/")
@pytest.mark.parametrize("k", range(len(SNIPPETS)))
def test_readme_snippet_runs(k, tmp_path):
    proc = subprocess.run([sys.executable, "-c", SNIPPETS[k]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"README python snippet {k}:\n{SNIPPETS[k]}\n{proc.stderr[-2000:]}"
