"""The update rules at every size, side by side with numpy, torch, a -march=native C loop and
the stream-loop memory ceiling (see l2decay.bench for what each implementation is)."""
import pytest

from l2decay import bench
from benchutil import SIZES, itemsize, skip_unless

# The native C loop twice: on every thread (OpenMP parallel for: the DRAM yardstick) and on one
# (the in-cache yardstick; forking threads for a small array costs more than the update).
IMPLS = [i for i in bench.IMPLS if i != "native"] + ["native", "native-1t"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rule", bench.KERNELS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", bench.DTYPES)
def test_rule(run_case, dtype, n, rule, impl):
    # native: one update per call (ctypes' call cost included), so the table compares like with
    # like; `l2decay bench` times it with the repetitions inside C instead
    kind, native_threads = ("native", 1) if impl == "native-1t" else (impl, None)
    case = skip_unless(bench.rule_case(rule, kind, dtype, n, native_reps=1, native_threads=native_threads), impl)
    run_case(case, f"{dtype} n={n}", n, bench.PASSES[rule], itemsize(dtype))
