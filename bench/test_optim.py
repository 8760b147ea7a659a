"""Optimizer steps (SGD momentum, Adam) with a rule, fixed lr and scheduled, against numpy and torch's fused optimizers."""
import pytest

from l2decay import bench
from benchutil import OPT_SIZES, itemsize, skip_unless


@pytest.mark.parametrize("impl", bench.OPTIMIZER_IMPLS)
@pytest.mark.parametrize("kind", bench.OPTIMIZERS)
@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("dtype", bench.DTYPES)
def test_optimizer(run_case, dtype, n, kind, impl):
    case = skip_unless(bench.optimizer_case(kind, impl, dtype, n), impl)
    run_case(case, f"{dtype} n={n} optimizers", n, bench.PASSES[kind], itemsize(dtype))
