"""Build of l2decay's compiled kernels: Cython 3 sources in kernels/, package in src/.

Modules: ``l2decay._kernels`` (argument checks, dispatch, OpenMP threading) and one module of
update loops per instruction-set level, ``l2decay._simd_<level>``, all from the same
kernels/l2decay/_loops.pxi with different -m flags.  The portable build thus carries AVX2 and
AVX-512 loops and picks one at import from the CPU's features; no level is ever run on a CPU
that lacks it.

Flags are chosen inside a build_ext subclass (as thinc and scikit-learn do) because only there
is the compiler known.  Opt-ins, all off by default so that a wheel runs on any CPU of its arch:

- ``L2DECAY_MARCH=native`` (or any -march value) adds ``-march=...`` to every module;
- ``L2DECAY_OPENMP=0`` disables OpenMP even when the compiler has it;
- ``L2DECAY_SIMD_LEVELS=baseline`` (comma-separated) builds only the listed levels.
"""
import os
import platform
import pprint
import shutil
import sys
import tempfile
import textwrap

import numpy
from Cython import __version__ as cython_version
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

KERNELS = "kernels"

# Directives for every kernel module; checks the kernels don't need are off because the
# Python boundary validates every argument before a kernel runs.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
    "embedsignature": True,
    # no `float -> double` surprise: a Python float literal in a float32 loop stays float32
    "cpow": True,
}

# Instruction-set levels of the loop modules: extra flags per compiler family.  The level names
# and the CPU features each needs are mirrored in _kernels.pyx (_SIMD_NEEDS).
_AVX2 = ["-mavx", "-mavx2", "-mf16c", "-mfma"]
SIMD_LEVELS = {
    "baseline": {"unix": [], "msvc": []},
    "avx2": {"unix": _AVX2, "msvc": ["/arch:AVX2"]},
    "avx512": {
        "unix": _AVX2 + ["-mavx512f", "-mavx512cd", "-mavx512vl", "-mavx512bw", "-mavx512dq"],
        "msvc": ["/arch:AVX512"],
    },
}
# -fno-trapping-math: a branch on a loop-invariant flag (the rule, the rounding's extras) may be
# turned into arithmetic on both sides and a select, which vectorizes without AVX-512's masks;
# it changes no result (no reassociation, no contraction), only which FP exceptions may be raised.
# large-function-insns: the loops with weight statistics (a dtype and rule per function, its
# momentum or Adam forms inlined as constants) are past gcc's default 2700, which leaves some
# out of line with their flags read per element (several times slower).
LOOP_FLAGS = ["--param=vect-max-version-for-alias-checks=64", "-fno-trapping-math", "--param=large-function-insns=8000"]
X86 = platform.machine().lower() in ("x86_64", "amd64", "x86", "i686")

EXTENSIONS = [
    Extension(
        "l2decay._kernels",
        [os.path.join(KERNELS, "l2decay", "_kernels.pyx")],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    ),
] + [
    Extension(f"l2decay._simd_{level}", [os.path.join(KERNELS, "l2decay", f"_simd_{level}.pyx")])
    for level in SIMD_LEVELS
]


def _probe(compiler, flags, source):
    """True if `source` compiles and links with `flags` using the build's compiler."""
    tmp = tempfile.mkdtemp(prefix="l2decay-probe-")
    try:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        objects = compiler.compile([path], output_dir=tmp, extra_postargs=flags)
        compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=flags)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


OPENMP_PROBE = """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
"""


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            cflags, openmp_flags = ["/O2", "/fp:precise"], ["/openmp"]
        else:
            # -ffp-contract=off: no fused multiply-add contraction, so every build (baseline,
            # AVX2, AVX-512, -march=native) computes bit-identical results, equal to numpy's.
            # -fno-math-errno: sqrt never sets errno (Adam's argument is >= 0), so it stays an
            # inline vector instruction instead of a branch to libm that blocks vectorization;
            # results are unchanged (IEEE sqrt is exactly rounded either way).
            cflags, openmp_flags = ["-O3", "-ffp-contract=off", "-fno-math-errno"], ["-fopenmp"]
            march = os.environ.get("L2DECAY_MARCH", "").strip()
            if march:
                cflags.append(f"-march={march}")
        want_openmp = os.environ.get("L2DECAY_OPENMP", "1").strip() not in ("0", "false", "no")
        openmp = want_openmp and _probe(self.compiler, openmp_flags, OPENMP_PROBE)
        ldflags = []
        if openmp:
            cflags += openmp_flags
            ldflags += openmp_flags if ctype != "msvc" else []
        levels = self._simd_levels(ctype)
        # The generic loops (16-bit storage, rounding modes) read and write up to six arrays;
        # gcc versions a loop for aliasing only up to 10 run-time pointer checks by default and
        # leaves these scalar.  The kernels never get overlapping arrays (checked before every
        # call), so raising the limit costs only the checks.  Loop modules only; gcc's flag.
        loop_flags = [f for f in LOOP_FLAGS if ctype != "msvc" and _probe(self.compiler, [f], "int main(void) { return 0; }\n")]
        self.extensions = [
            ext for ext in self.extensions
            if not ext.name.startswith("l2decay._simd_") or ext.name.rsplit("_", 1)[1] in levels
        ]
        for ext in self.extensions:
            extra = cflags
            if ext.name.startswith("l2decay._simd_"):
                # loops only: no OpenMP, just the level's instruction-set flags
                extra = [f for f in cflags if f not in openmp_flags] + loop_flags + levels[ext.name.rsplit("_", 1)[1]]
            ext.extra_compile_args = list(ext.extra_compile_args or []) + extra
            ext.extra_link_args = list(ext.extra_link_args or []) + (ldflags if ext.name == "l2decay._kernels" else [])
        self._write_build_config(
            {
                "cython_version": cython_version,
                "compiler": ctype,
                "compile_flags": cflags,
                "loop_flags": loop_flags,
                "link_flags": ldflags,
                "march": os.environ.get("L2DECAY_MARCH", "").strip() or None,
                "openmp_requested": want_openmp,
                "openmp": openmp,
                "simd_levels_built": {k: " ".join(v) for k, v in levels.items()},
                "numpy_build_version": numpy.__version__,
                "python_build_version": sys.version.split()[0],
            }
        )
        super().build_extensions()

    def _simd_levels(self, ctype):
        """{level: flags} for the levels to build: baseline always; wider ones on x86 when the
        compiler accepts their flags (and L2DECAY_SIMD_LEVELS does not leave them out)."""
        family = "msvc" if ctype == "msvc" else "unix"
        wanted = os.environ.get("L2DECAY_SIMD_LEVELS", "").strip()
        wanted = {w.strip() for w in wanted.split(",")} if wanted else set(SIMD_LEVELS)
        levels = {"baseline": []}
        for level, flags in SIMD_LEVELS.items():
            if level == "baseline" or level not in wanted or not X86:
                continue
            if _probe(self.compiler, flags[family], "int main(void) { return 0; }\n"):
                levels[level] = flags[family]
        return levels

    def _write_build_config(self, config):
        # Written into the build tree (never the source tree), so the installed package knows
        # exactly what was compiled; build_info() reads it.
        target = os.path.join(self.build_lib, "l2decay", "_build_config.py")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write('"""Written by setup.py at build time: what the compiled kernels were built with."""\n')
            f.write(f"CONFIG = {pprint.pformat(config)}\n")


class BuildPy(build_py):
    """Ship the public _kernels.pxd (kept in kernels/ beside its .pyx) inside the package."""

    def run(self):
        super().run()
        src = os.path.join(KERNELS, "l2decay")
        dst = os.path.join(self.build_lib, "l2decay")
        os.makedirs(dst, exist_ok=True)
        # only the public API: a shipped private .pxd (_common) would shadow the source one
        # in later no-isolation rebuilds, since Cython also searches sys.path
        shutil.copy2(os.path.join(src, "_kernels.pxd"), os.path.join(dst, "_kernels.pxd"))


setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives=DIRECTIVES,
        # kernels/ mirrors the package path so Cython finds l2decay/_kernels.pxd by package name
        include_path=[KERNELS],
        # generated C goes to build/, never beside the sources
        build_dir=os.path.join("build", "cython"),
    ),
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy},
)
