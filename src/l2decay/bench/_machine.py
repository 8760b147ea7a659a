"""The machine: its CPU, caches and threads, torch if installed, and the native C yardstick
(compiled here on first use)."""
import ctypes
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np

from .._config import build_info, set_num_threads


_NATIVE = {}     # the native library and the command that built it, made once per process


def torch_module():
    try:
        import torch
    except ImportError:
        return None
    return torch


def native_library():
    """_native_ref.c compiled with -O3 -march=native -fopenmp into a temporary directory, once
    per process; None when there is no working C compiler."""
    if "lib" in _NATIVE:
        return _NATIVE["lib"]
    _NATIVE["lib"] = None
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return None
    src = os.path.join(os.path.dirname(__file__), "_native_ref.c")
    out = os.path.join(tempfile.mkdtemp(prefix="l2decay-native-"), "native_ref.so")
    cmd = [cc, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", src, "-o", out]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return None
    lib = ctypes.CDLL(out)
    for name in ("native_l2_f32", "native_l2_f64", "native_l2keep_f32", "native_l2keep_f64",
                 "native_decay_f32", "native_decay_f64"):
        getattr(lib, name).restype = None
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_double,
                                       ctypes.c_double, ctypes.c_int, ctypes.c_long]
    _NATIVE["lib"] = lib
    _NATIVE["cmd"] = " ".join(cmd[:5])
    return lib


def threads_in_use(threads):
    return threads or os.cpu_count() or 1


def machine_info(threads=0):
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    torch = torch_module()
    native = native_library()
    return {
        "cpu": cpu,
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "threads": threads_in_use(threads),
        "caches": cache_sizes(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "native_reference": _NATIVE.get("cmd") if native is not None else None,
        "build_info": build_info(),
    }


def cache_sizes():
    """{"L1d": bytes, "L2": bytes, "L3": bytes} of cpu0, from sysfs (empty if unknown)."""
    out = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for entry in entries:
        try:
            with open(os.path.join(base, entry, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(base, entry, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(base, entry, "size")) as f:
                size = f.read().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(size[-1:], 1)
        out[f"L{level}{'d' if kind == 'Data' else ''}"] = int(size.rstrip("KMG")) * mult
    return out


def apply_threads(threads):
    """Pin every implementation to `threads` (0: all cores) alike."""
    set_num_threads(threads)
    torch = torch_module()
    if torch is not None:
        torch.set_num_threads(threads_in_use(threads))
