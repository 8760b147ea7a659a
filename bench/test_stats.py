"""The cost of the weight statistics (stats=True): l2decay's float32 AdamW without and with
them, side by side per size, at 1M elements (L3: the step is bound by arithmetic) and 16M
(DRAM: by memory).  The target is 5% of the step.  ``l2decay bench --stats`` times the same two
cases interleaved on the same arrays, the steadier figure on a shared machine;
docs/performance.md has the figures."""
import pytest

from benchutil import SMOKE
from l2decay import bench

SIZES = (1_000,) if SMOKE else bench.STATS_SIZES


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", bench.STATS_IMPLS)
def test_adamw_with_weight_statistics(benchmark, n, impl):
    case = dict(bench.stats_cases(n))[impl]
    case.run()          # (untimed, as every case's first call)
    benchmark.group = f"AdamW float32 n={n}, weight statistics"
    benchmark.extra_info["n"] = n
    benchmark.pedantic(case.run, rounds=3 if SMOKE else (15 if n > 1 << 20 else 200), iterations=1,
                       warmup_rounds=1)
    bench.check_values(*case.arrays)
