"""16-bit weights: l2decay's AdamW, SGD-momentum and decay_step on bfloat16/float16 weights with
each rounding mode, with bfloat16 state (state_dtype="param") and with 8-bit state, against float32 weights, torch's
fused optimizers on the same dtypes (whose state is in the param dtype), and (AdamW) the stream
ceilings of the bfloat16 step's traffic with float32 and with bfloat16 state.
Targets: bfloat16 AdamW at 16M at least as fast as torch fused on bfloat16, and with 8-bit state
1.2x; bfloat16 decay_step at 32M at least 1.3x the float32 one."""
import pytest

from l2decay import bench
from benchutil import SMOKE, skip_unless

SIZES = {kind: 64 for kind in bench.HALF_KINDS} if SMOKE else bench.HALF_SIZES


@pytest.mark.parametrize("impl", bench.HALF_IMPLS)
@pytest.mark.parametrize("kind", bench.HALF_KINDS)
def test_half(run_case, kind, impl):
    n = SIZES[kind]
    case = skip_unless(bench.half_case(kind, impl, n), impl)
    run_case(case, f"16-bit {kind} n={n}", n, bench.PASSES.get(kind, 5), 2)
