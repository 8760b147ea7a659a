"""Sparse rows: a step of 1,000 rows of a float32 embedding table with AdamW's decay, l2decay's
lazy decay against the dense decay of the whole table and torch's SparseAdam (+ mul_)."""
import pytest

from l2decay import bench
from benchutil import SMOKE

ROWS = (2_000,) if SMOKE else bench.SPARSE_ROWS


@pytest.mark.parametrize("impl", bench.SPARSE_IMPLS)
@pytest.mark.parametrize("rows", ROWS)
def test_sparse_rows(run_case, rows, impl):
    cases = dict(bench.sparse_cases(rows, impls=(impl,)))
    if impl not in cases:
        pytest.skip(f"{impl} needs torch")
    run_case(cases[impl], f"sparse rows {rows}", rows * bench.SPARSE_WIDTH, 0, 4)
