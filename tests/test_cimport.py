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
from l2decay._kernels cimport (l2_step_f64, decay_step_f32, sgd_step_f64, adam_step_f32,
                               REG_L2, REG_DECOUPLED)

def run(double[::1] w, double[::1] g, float[::1] w32, float[::1] g32):
    with nogil:
        l2_step_f64(&w[0], &g[0], w.shape[0], 0.5, 0.25)
        decay_step_f32(&w32[0], &g32[0], w32.shape[0], 0.5, 0.25)

def sgd(double[::1] w, double[::1] g, double[::1] buf, bint first):
    with nogil:
        sgd_step_f64(&w[0], &g[0], &buf[0], w.shape[0], 0.1, 0.9, 0.2, False, True, REG_L2, 0.05,
                     first, False)

def adam(float[::1] w, float[::1] g, float[::1] m, float[::1] v, float[::1] vmax, long long step):
    with nogil:
        adam_step_f32(&w[0], &g[0], &m[0], &v[0], &vmax[0], w.shape[0], step, 0.01, 0.8, 0.99,
                      1e-6, False, REG_DECOUPLED, 0.1, True)
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
    _check_optimizer_api(tmp_path)
    g_exp = np.array([0.5, 0.5, -1.0]) + 0.25 * np.array([1.0, -2.0, 4.0])
    w_exp = np.array([1.0, -2.0, 4.0]) - 0.5 * g_exp
    np.testing.assert_array_equal(g, g_exp)
    np.testing.assert_array_equal(w, w_exp)
    np.testing.assert_array_equal(w32, (np.array([1, 2], np.float32) - np.float32(0.5) * np.array([2, -2], np.float32)) * np.float32(0.75))


def _check_optimizer_api(tmp_path):
    """The C API's SGD and Adam steps give the bits of the Python entries."""
    script = textwrap.dedent(
        """
        import numpy as np, consumer, l2decay
        rng = np.random.default_rng(0)
        w = rng.standard_normal(37); buf = np.zeros(37)
        w2 = w.copy(); bufs = [None]
        x = rng.standard_normal(37).astype(np.float32)
        m, v, vm = np.zeros(37, np.float32), np.zeros(37, np.float32), np.zeros(37, np.float32)
        x2, m2, v2, vm2 = x.copy(), m.copy(), v.copy(), [vm.copy()]
        for t in range(1, 4):
            g = rng.standard_normal(37)
            consumer.sgd(w, g, buf, t == 1)
            l2decay.sgd_step([w2], [g], bufs, lr=0.1, momentum=0.9, dampening=0.2, maximize=True,
                             reg=l2decay.L2(0.05))
            g32 = g.astype(np.float32)
            consumer.adam(x, g32, m, v, vm, t)
            l2decay.adam_step([x2], [g32], [m2], [v2], vm2, step=t, lr=0.01, betas=(0.8, 0.99),
                              eps=1e-6, amsgrad=True, reg=l2decay.Decoupled(0.1), eps_form="keras")
        print(np.array_equal(w, w2) and np.array_equal(buf, bufs[0]), np.array_equal(x, x2),
              np.array_equal(vm, vm2[0]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True"]
