"""The cost of the weight statistics (stats=True): l2decay's float32 AdamW with and without them,
side by side per size, at 1M elements (L3: the step is bound by arithmetic) and 16M (DRAM: by
memory).  The target is 5% of the step; docs/performance.md has the figures."""
import numpy as np
import pytest

from benchutil import SMOKE
from l2decay import Adam, Decoupled

SIZES = (1_000,) if SMOKE else (1 << 20, 16 << 20)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("stats", [False, True], ids=["off", "on"])
def test_adamw_with_weight_statistics(benchmark, n, stats):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(n).astype(np.float32)
    g = [(rng.standard_normal(n) * 1e-3).astype(np.float32)]
    opt = Adam([w], lr=1e-3, reg=Decoupled(1e-2), stats=stats)
    opt.step(g)          # (the state is born: not timed)
    benchmark.group = f"AdamW float32 n={n}, weight statistics"
    benchmark.extra_info["n"] = n
    benchmark.pedantic(opt.step, args=(g,), rounds=3 if SMOKE else (15 if n > 1 << 20 else 200), iterations=1,
                       warmup_rounds=1)
    assert np.isfinite(w).all() and (opt.stats is None) == (not stats)
