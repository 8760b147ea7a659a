"""8-bit optimizer state at 16M float32 elements (DRAM): l2decay's AdamW with 8-bit moments
against its float32-state step, torch's fused AdamW and bitsandbytes' and torchao's 8-bit AdamW
when installed; bytes per element of the moments beside each."""
import pytest

from l2decay import bench
from benchutil import SMOKE, skip_unless

N = 1000 if SMOKE else 16 * 2 ** 20
IMPLS = ("l2decay", "l2decay 8bit", "torch fused", "bitsandbytes 8bit", "torchao 8bit")
STATE_BYTES = {"l2decay 8bit": 2 + 8 / 256, "bitsandbytes 8bit": 2 + 8 / 256, "torchao 8bit": 2 + 8 / 256}


@pytest.mark.parametrize("impl", IMPLS)
def test_adamw_8bit_state(benchmark, impl):
    case = skip_unless(bench.torch_case("adamw", impl, [(N,)]), impl)
    benchmark.group = f"AdamW float32 n={N}, 8-bit state"
    benchmark.extra_info.update({"n": N, "state_bytes_per_element": STATE_BYTES.get(impl, 8.0)})
    # (the peers' 8-bit steps take about 35x as long here: a few rounds)
    rounds = 2 if SMOKE else (3 if "8bit" in impl and impl != "l2decay 8bit" else 15)
    benchmark.pedantic(case.run, rounds=rounds, iterations=1, warmup_rounds=1)
    bench.check_values(*case.arrays)
