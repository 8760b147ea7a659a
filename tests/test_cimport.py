"""The shipped .pxd is a working C API: compile a downstream .pyx against the installed package."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import l2decay

CONSUMER = """
# cython: language_level=3
from l2decay._kernels cimport l2_step_f64, decay_step_f32

def run(double[::1] w, double[::1] g, float[::1] w32, float[::1] g32):
    with nogil:
        l2_step_f64(&w[0], &g[0], w.shape[0], 0.5, 0.25)
        decay_step_f32(&w32[0], &g32[0], w32.shape[0], 0.5, 0.25)
"""

SETUP = """
from setuptools import setup
from Cython.Build import cythonize
setup(ext_modules=cythonize("consumer.pyx", include_path=[{include!r}]), script_args=["build_ext", "--inplace"])
"""


def test_pxd_is_installed():
    assert os.path.isfile(os.path.join(l2decay.get_include(), "l2decay", "_kernels.pxd"))


@pytest.mark.skipif(sys.platform == "win32", reason="compiler setup differs on Windows")
def test_downstream_cython_module_uses_the_kernels(tmp_path):
    pytest.importorskip("Cython")
    (tmp_path / "consumer.pyx").write_text(textwrap.dedent(CONSUMER))
    (tmp_path / "setup.py").write_text(SETUP.format(include=l2decay.get_include()))
    proc = subprocess.run([sys.executable, "setup.py"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    script = textwrap.dedent(
        """
        import numpy as np, consumer
        w = np.array([1.0, -2.0, 4.0]); g = np.array([0.5, 0.5, -1.0])
        w32 = np.array([1, 2], np.float32); g32 = np.array([2, -2], np.float32)
        consumer.run(w, g, w32, g32)
        print(repr((w.tolist(), g.tolist(), w32.tolist())))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    w, g, w32 = eval(proc.stdout)
    g_exp = np.array([0.5, 0.5, -1.0]) + 0.25 * np.array([1.0, -2.0, 4.0])
    w_exp = np.array([1.0, -2.0, 4.0]) - 0.5 * g_exp
    np.testing.assert_array_equal(g, g_exp)
    np.testing.assert_array_equal(w, w_exp)
    np.testing.assert_array_equal(w32, (np.array([1, 2], np.float32) - np.float32(0.5) * np.array([2, -2], np.float32)) * np.float32(0.75))
