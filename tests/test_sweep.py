"""`l2decay sweep`: the grid, the valley and its slope (on surfaces whose answer is known), real
runs in worker processes, diverged runs, the reading of the paper's claim, and the command."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import l2decay.experiment.driver as tr
from l2decay.experiment import sweep
from l2decay.cli import main

TINY = dict(data="iris", train_size=0, hidden=(6,), batch_size=16, epochs=3)


def test_grid_spacing_and_ranges():
    assert sweep.grid("sgd") == (0.001, 0.00316228, 0.01, 0.0316228, 0.1)
    assert sweep.grid("sgd", quick=True) == (0.001, 0.01, 0.1)
    assert sweep.grid("adam", "l2") == tuple(float(f"{10 ** e:.6g}") for e in np.arange(-5, -0.9, 0.5))
    for (opt, rule), (low, high) in sweep.STRENGTH_RANGE.items():
        full, quick = sweep.grid(opt, rule), sweep.grid(opt, rule, quick=True)
        assert len(full) == 9 and len(quick) == 5 and set(quick) <= set(full)
        assert math.isclose(full[0], 10 ** low, rel_tol=1e-5) and math.isclose(full[-1], 10 ** high, rel_tol=1e-5)


def _bowl(lrs, strengths, slope, offset=-3.0, width=1.0):
    """A loss surface whose valley floor is log10 s = offset + slope * (log10 lr + 2)."""
    x, y = np.log10(strengths)[None, :], np.log10(lrs)[:, None]
    return 0.3 + ((x - offset - slope * (y + 2)) / width) ** 2


@pytest.mark.parametrize("true_slope", [-1.0, -0.5, 0.0, 0.6, 1.0])
def test_valley_slope_recovers_a_known_diagonal(true_slope):
    lrs = [10 ** e for e in np.arange(-3, -0.9, 0.5)]
    strengths = [10 ** e for e in np.arange(-6, 0.01, 0.5)]
    points = sweep.valley(lrs, strengths, _bowl(lrs, strengths, true_slope))
    assert all(inside for _, _, inside in points)
    # off-grid minima are found by the parabola, not rounded to the grid
    assert sweep.slope(points) == pytest.approx(true_slope, abs=1e-9)


def test_valley_marks_minima_at_the_grid_edge_and_fits_the_inside_ones():
    lrs = [1e-3, 1e-2, 1e-1]
    strengths = [1e-4, 1e-3, 1e-2, 1e-1]
    loss = _bowl(lrs, strengths, 1.0, offset=-2.5)  # best at 10^-3.5, -2.5, -1.5: the first beyond the grid
    points = sweep.valley(lrs, strengths, loss)
    assert [inside for _, _, inside in points] == [False, True, True]
    assert points[0][1] == -4.0  # the edge itself
    assert sweep.slope(points) == pytest.approx(1.0)
    assert sweep.slope(points[:1]) is None


def test_diverged_cells_are_never_the_best():
    lrs, strengths = [0.01, 0.1], [1e-4, 1e-3, 1e-2]
    loss = np.array([[0.5, 0.3, 0.4], [np.inf, 0.35, 0.6]])
    points = sweep.valley(lrs, strengths, loss)
    assert [p[1] for p in points][1] != -4.0 and all(p[2] for p in points)
    assert sweep.valley(lrs, strengths, np.full((2, 3), np.inf)) == []


def _results(slopes, seeds=(0,)):
    """Results as sweep() returns them, on bowls with the given slope per (optimizer, rule)."""
    out = []
    for (opt, rule), k in slopes.items():
        lrs, strengths = sweep.grid(opt), sweep.grid(opt, rule)
        offset = np.log10(strengths[4]) - k * (np.log10(lrs[2]) + 2)  # valley through the grid's middle
        loss = _bowl(lrs, strengths, k, offset=offset)
        for seed in seeds:
            for i, lr in enumerate(lrs):
                for j, s in enumerate(strengths):
                    out.append({"optimizer": opt, "lr": lr, "rule": rule, "strength": s, "seed": seed,
                                "test_loss": float(loss[i, j]) + 0.001 * seed, "diverged": False})
    return out


def test_slope_words_and_claim():
    assert [sweep.shape(k) for k in (0.2, -0.3, 0.5, -0.6, 0.7, -1.2, None)] == [
        "separable", "separable", "in between", "in between", "diagonal", "diagonal", "undetermined"]
    assert sweep.claim(-1.0, 0.1) == "holds" and sweep.claim(0.2, 1.1) == "reversed"
    assert sweep.claim(-0.6, 0.3) == "unclear" and sweep.claim(None, 0.0) == "unclear"


def test_reading_says_whether_the_claim_holds():
    holds = sweep.analyse(_results({("adam", "l2"): -1.0, ("adam", "decoupled"): -1.0, ("adam", "decay"): 0.1}))
    verdict, lines = sweep.read_sweep(holds)
    assert verdict == {"adam": {"l2": "diagonal", "decoupled": "diagonal", "decay": "separable",
                                "claim_vs_decay": "holds", "claim_vs_decoupled": "unclear"}}
    assert lines[0] == ("Adam, slope of the valley: L2 -1.00, diagonal; Decoupled -1.00, diagonal; "
                        "Decay +0.10, separable.")
    assert lines[1] == ("  Against the paper's decoupled decay (Decay: not scaled by the lr): the claim holds: "
                        "L2's best strength moves with the learning rate more than Decay's does.")
    assert lines[2].endswith("no clear difference between L2's valley and Decoupled's.")
    reversed_ = sweep.analyse(_results({("sgd", "l2"): 0.0, ("sgd", "decay"): 1.0}, seeds=(0, 1)))
    verdict, lines = sweep.read_sweep(reversed_)
    assert verdict == {"sgd": {"l2": "separable", "decay": "diagonal", "claim_vs_decay": "reversed"}}
    assert lines[0].startswith("SGD (momentum 0.9), slope of the valley: L2 +0.00 (per seed +0.00 +- 0.00), "
                               "separable; Decay +1.00")
    assert "the claim is reversed: Decay's best strength moves with the learning rate more than L2's" in lines[1]


def test_analyse_finds_the_best_cell_and_counts_diverged_runs():
    results = _results({("sgd", "l2"): 0.0})
    results[0]["diverged"], results[0]["test_loss"] = True, None
    (a,) = sweep.analyse(results)
    assert a["best"]["strength"] == sweep.grid("sgd", "l2")[4] and a["best"]["test_loss"] == pytest.approx(0.3)
    assert a["diverged_runs"] == 1 and len(a["valley"]) == 5


def test_sweep_runs_the_grid_in_workers_like_in_process():
    cfg = tr.Config(**TINY)
    kwargs = dict(optimizers=("sgd", "adam"), rules=("l2", "decay"), lrs={"sgd": [0.05, 1e300], "adam": [0.01]},
                  strengths={("sgd", "l2"): [1e-3, 1e-2], ("sgd", "decay"): [1e-4],
                             ("adam", "l2"): [1e-3], ("adam", "decay"): [1e-4]}, seeds=2)
    here = sweep.sweep(cfg, jobs=1, **kwargs)
    there = sweep.sweep(cfg, jobs=2, **kwargs)
    assert here == [{**r, "seconds": h["seconds"]} for r, h in zip(there, here)]  # all but the timings
    assert len(here) == 2 * (2 * 2 + 2 * 1 + 1 + 1)
    assert {(r["optimizer"], r["rule"]) for r in here} == {("sgd", "l2"), ("sgd", "decay"), ("adam", "l2"),
                                                          ("adam", "decay")}
    # lr 1e300 diverges: reported, with no metric (JSON has no NaN)
    diverged = [r for r in here if r["diverged"]]
    assert diverged and all(r["lr"] == 1e300 and r["test_loss"] is None for r in diverged)
    sane = [r for r in here if r["lr"] < 1]
    assert all(0 < r["test_loss"] < 10 and 0 <= r["test_accuracy"] <= 1 for r in sane)
    # SGD's runs use the sweep's momentum, Adam's none; each run is the train() of its settings
    r = next(r for r in here if r["optimizer"] == "sgd" and r["rule"] == "l2" and r["lr"] == 0.05
             and r["strength"] == 1e-2 and r["seed"] == 1)
    alone = tr.train(cfg, seed=1, rule="l2", strength=1e-2, lr=0.05, momentum=sweep.MOMENTUM)
    assert r["test_loss"] == alone["test_loss"]


@pytest.mark.parametrize("kwargs,match", [
    (dict(optimizers=("lion",)), "optimizers must be a non-empty selection"),
    (dict(rules=()), "rules must be a non-empty selection"),
    (dict(lrs={"sgd": [-1.0]}), "^lr must be in"),
    (dict(seeds=0), "^seeds must be >= 1"),
])
def test_bad_sweep_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sweep.sweep(tr.Config(**TINY), **kwargs)


def test_cli_sweep_json_to_stdout_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "sweep.png"
    proc = subprocess.run([sys.executable, "-m", "l2decay", "sweep", "--quick", "--data", "iris", "--train-size", "0",
                           "--hidden", "6", "--epochs", "2", "--batch-size", "16", "--rules", "l2,decay",
                           "--optimizers", "adam", "--jobs", "2", "--json", "-", "--plot", str(png)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"config", "analysis", "reading", "results"}
    assert doc["config"]["quick"] is True and doc["config"]["seeds"] == [0] and doc["config"]["rules"] == ["l2", "decay"]
    assert len(doc["results"]) == 3 * 5 * 2
    assert [(a["optimizer"], a["rule"]) for a in doc["analysis"]] == [("adam", "l2"), ("adam", "decay")]
    assert "adam" in doc["reading"]["verdict"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the report went to stderr: the real sample counts, the grid, the slopes and the reading
    assert proc.stderr.startswith("data iris: 75 training samples, 75 test samples, test fraction 0.5;")
    assert "adam l2: mean test loss; rows lr, columns strength" in proc.stderr
    assert "Slope of log10(best strength) against log10(lr)" in proc.stderr and "Reading:" in proc.stderr


def test_cli_sweep_bad_option_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--optimizers", "sgd,lion", "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith("l2decay: error: argument --optimizers")


def test_sweep_takes_cautious_decay_on_request():
    from l2decay.experiment import sweep as sw
    results = sw.sweep(sw.Config(**{**sw.RUN, "epochs": 2}), optimizers=("adam",), rules=("decoupled", "cautious"),
                       quick=True, lrs={"adam": (1e-3, 1e-2)}, strengths={("adam", "decoupled"): (0.1, 1.0),
                                                                          ("adam", "cautious"): (0.1, 1.0)})
    assert {r["rule"] for r in results} == {"decoupled", "cautious"} and len(results) == 8
    _, lines = sw.read_sweep(sw.analyse(results))
    assert "Cautious" in lines[0]
    with pytest.raises(ValueError, match="rules must be a non-empty selection"):
        sw.sweep(rules=("corrected",))
