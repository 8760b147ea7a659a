"""One call over an MLP's whole parameter list against a Python loop of single calls and one optimizer step."""
import numpy as np
import pytest

from l2decay import bench
from benchutil import SMOKE, itemsize

SHAPES = {"tiny": [(2, 3), (3,)]} if SMOKE else bench.MLP_SHAPES


@pytest.mark.parametrize("impl", bench.MANY_IMPLS)
@pytest.mark.parametrize("rule", ["l2", "decay"])
@pytest.mark.parametrize("mlp", list(SHAPES))
@pytest.mark.parametrize("dtype", bench.DTYPES)
def test_many(run_case, dtype, mlp, rule, impl):
    shapes = SHAPES[mlp]
    n = int(sum(np.prod(s) for s in shapes))
    run_case(bench.many_case(rule, impl, dtype, shapes), f"{dtype} many: {mlp}", n,
             bench.PASSES[rule], itemsize(dtype))
