"""The benchmark suite and `l2decay bench` run: every benchmark once, at tiny sizes."""
import json
import os
import subprocess
import sys

import pytest

from l2decay import bench
from l2decay.cli import main

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


@pytest.mark.skipif(not os.path.isdir(BENCH_DIR), reason="bench/ is not beside tests/ (not a checkout)")
def test_every_benchmark_runs_once_at_tiny_size():
    pytest.importorskip("pytest_benchmark")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", BENCH_DIR, "--benchmark-disable", "-q", "-p", "no:cacheprovider",
         "-o", "addopts=--import-mode=importlib"],
        capture_output=True, text=True, env={**os.environ, "L2DECAY_BENCH_SMOKE": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_bench_command_writes_json_with_every_rule_and_impl(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "64,1000", "--dtype", "float32", "--repeats", "1",
                 "--threads", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "float32: ns/element" in out and "many tensors" in out and "optimizer steps" in out
    data = json.loads(path.read_text())
    assert data["machine"]["threads"] == 1
    assert data["machine"]["build_info"]["simd"] in ("baseline", "avx2", "avx512")
    rules = [r for r in data["results"] if r["kind"] == "rule"]
    for n in (64, 1000):
        for rule in bench.KERNELS:
            impls = {r["impl"] for r in rules if r["n"] == n and r["rule"] == rule}
            assert {"l2decay", "numpy", "stream"} <= impls, (n, rule, impls)
            me = next(r for r in rules if r["n"] == n and r["rule"] == rule and r["impl"] == "l2decay")
            assert me["ns_per_element"] > 0 and me["gb_per_s"] > 0 and me["fraction_of_ceiling"] > 0
            # bytes moved per element: 4 passes for L2, 3 for decay and l2-keep
            expected = bench.PASSES[rule] * 4 * n / me["seconds"] / 1e9
            assert me["gb_per_s"] == pytest.approx(expected)
    assert {r["rule"] for r in data["results"] if r["kind"] == "optimizer"} == set(bench.OPTIMIZERS)
    # the 16-bit table at the largest --sizes, every kind, l2decay's float32 and bfloat16 rows
    assert "16-bit weights" in out
    half = [r for r in data["results"] if r["kind"] == "half"]
    assert {r["rule"] for r in half} == set(bench.HALF_KINDS) and {r["n"] for r in half} == {1000}
    assert {"float32", "bfloat16 nearest"} <= {r["impl"] for r in half}


def test_bench_sparse_command_times_every_implementation(tmp_path, capsys):
    path = tmp_path / "sparse.json"
    assert main(["bench", "--sparse", "--sizes", "3000", "--repeats", "1", "--threads", "1", "--json", str(path)]) == 0
    assert "sparse rows: us per step" in capsys.readouterr().out
    impls = {r["impl"] for r in json.loads(path.read_text())["results"]}
    assert {"l2decay adamw", "ceiling", "l2decay sgd", "dense decay"} <= impls <= set(bench.SPARSE_IMPLS)


def test_bench_stats_command_times_the_step_without_and_with_statistics(tmp_path, capsys):
    path = tmp_path / "stats.json"
    assert main(["bench", "--stats", "--sizes", "3000", "--repeats", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "weight statistics (stats=True)" in out and "x" in out.splitlines()[-1]
    rows = json.loads(path.read_text())["results"]
    assert {(r["kind"], r["n"], r["impl"]) for r in rows} == {("stats", 3000, impl) for impl in bench.STATS_IMPLS}
    assert all(r["seconds"] > 0 for r in rows)


def test_stats_cases_step_the_same_arrays():
    import numpy as np
    cases = dict(bench.stats_cases(257))
    assert all(a is b for a, b in zip(cases["off"].arrays, cases["on"].arrays))
    w = cases["off"].arrays[0]
    for impl in ("off", "on", "off"):
        before = w.copy()
        cases[impl].run()
        assert not np.array_equal(w, before)
    bench.check_values(*cases["on"].arrays)


def test_bench_command_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--sizes", "10,-3"])
    assert "expected element counts" in capsys.readouterr().err


def test_benchmark_inputs_stay_normal_under_many_repeats():
    # the constants keep every rule away from subnormals and overflow however long it runs
    for rule in bench.KERNELS:
        case = bench.rule_case(rule, "l2decay", "float32", 257)
        for _ in range(20_000):
            case.run()
        bench.check_values(*case.arrays)
    for kind in bench.OPTIMIZERS:
        case = bench.optimizer_case(kind, "l2decay", "float32", 257)
        for _ in range(20_000):
            case.run()
        bench.check_values(*case.arrays)


def test_check_values_catches_subnormals():
    import numpy as np
    with pytest.raises(AssertionError, match="subnormal"):
        bench.check_values(np.array([1.0, 1e-310]))


def test_crossover_measures_serial_and_parallel_and_restores_the_threshold(tmp_path, capsys):
    from l2decay import _kernels
    before = _kernels.get_parallel_threshold()
    path = tmp_path / "cross.json"
    assert main(["bench", "--crossover", "--sizes", "1000,3000", "--dtype", "float64", "--repeats", "1",
                 "--json", str(path)]) == 0
    assert "parallel speed-up" in capsys.readouterr().out
    rows = json.loads(path.read_text())["results"]
    assert {(r["n"], r["kind"]) for r in rows} == {(n, k) for n in (1000, 3000) for k in ("l2", "decay", "sgd-l2", "adamw")}
    assert all(r["serial_seconds"] > 0 and r["parallel_seconds"] > 0 for r in rows)
    assert rows[0]["bytes_per_array"] == 8000
    assert _kernels.get_parallel_threshold() == before
