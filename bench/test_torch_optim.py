"""l2decay.torch's optimizers against torch's fused and foreach ones (and DeepSpeed's CPU Adam
when installed) on real models' parameter shapes, float32."""
import numpy as np
import pytest

from l2decay import bench
from benchutil import SMOKE, skip_unless

MODELS = {"tiny": [(2, 3), (3,)]} if SMOKE else bench.TORCH_MODELS


@pytest.mark.parametrize("impl", bench.TORCH_IMPLS)
@pytest.mark.parametrize("kind", bench.TORCH_KINDS)
@pytest.mark.parametrize("model", list(MODELS))
def test_torch_optimizer(run_case, model, kind, impl):
    shapes = MODELS[model]
    n = int(sum(np.prod(s) for s in shapes))
    case = skip_unless(bench.torch_case(kind, impl, shapes), impl)
    run_case(case, f"torch {model}", n, bench.PASSES["adamw" if kind == "adamw" else "sgd-l2"], 4)
