"""The `l2decay` command as a user meets it: exit codes, one-line errors, table, plot extra."""
import os
import subprocess
import sys

import pytest

from l2decay.cli import main

FAST = ["--data", "iris", "--train-size", "0", "--hidden", "6", "--epochs", "2", "--batch-size", "16"]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "l2decay.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_compare_prints_one_row_per_rule():
    proc = run_cli("compare", *FAST)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[1].split()[:4] == ["rule", "strength", "train", "acc"]
    assert [ln.split()[0] for ln in lines[2:]] == ["none", "l2", "decay", "decoupled"]


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "l2decay")
    if not os.path.exists(exe):
        pytest.skip("not running from an environment with console scripts")
    proc = subprocess.run([exe, "train", *FAST, "--l2", "0.01"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].split()[0] == "l2"


@pytest.mark.parametrize("args,message", [
    (["train", "--lr", "-0.1"], "argument --lr: must be a finite number >= 0"),
    (["train", "--l2", "0.1", "--decay", "0.1"], "not allowed with argument"),
    (["train", "--data", "mnist"], "unknown data set 'mnist'"),
    (["train", "--epochs", "0"], "argument --epochs: must be >= 1"),
    (["compare", "--decay", "1.5"], "argument --decay: must be in [0, 1)"),
    (["train", "--momentum", "1"], "argument --momentum"),
    (["train", "--resume"], "--resume needs --checkpoint"),
    (["train", "--hidden", "0"], "argument --hidden"),
    (["train", "--train-size", "-5"], "argument --train-size: must be >= 0, got -5"),
    (["compare", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
])
def test_bad_options_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args + ["--quiet"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("content,message", [
    ("1,2,0\n3,4\n", "bad.csv, line 2: 2 cells, expected 3"),
    ("1,2,0\n3,x,1\n", "bad.csv, line 2: non-numeric cell 'x'"),
    ("a,b,label\n1,2,0\n3,4,0\n", "bad.csv: only one class (0)"),
    ("", "bad.csv: no data rows"),
    ("f1,f2,y\n", "bad.csv: no data rows"),
    ("1,2,0.5\n3,4,1\n", "bad.csv, line 1: class label '0.5' is not a non-negative integer"),
    ("1,nan,0\n3,4,1\n", "bad.csv, line 1: non-finite value"),
])
def test_malformed_csv_is_one_line_exit_2(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    proc = run_cli("train", "--data", "bad.csv", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_missing_csv(tmp_path):
    proc = run_cli("train", "--data", str(tmp_path / "gone.csv"), "--quiet")
    assert proc.returncode == 2 and "gone.csv: no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_user_csv_with_header_trains(tmp_path):
    rows = ["x1,x2,label"] + [f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(40)]
    (tmp_path / "mine.csv").write_text("\n".join(rows) + "\n")
    proc = run_cli("train", "--data", "mine.csv", "--train-size", "0", "--epochs", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "data mine.csv" in proc.stdout


def test_checkpoint_mismatch_is_one_line_exit_2(tmp_path):
    ckpt = str(tmp_path / "c.npz")
    assert run_cli("train", *FAST, "--checkpoint", ckpt, "--quiet").returncode == 0
    proc = run_cli("train", *FAST, "--checkpoint", ckpt, "--resume", "--l2", "0.1", "--quiet")
    assert proc.returncode == 2
    assert "written with other settings (rule: checkpoint 'none' vs now 'l2'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plot_without_matplotlib_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    with pytest.raises(SystemExit) as exc:
        main(["compare", *FAST, "--plot", "x.png", "--quiet"])
    assert exc.value.code == 2
    assert "pip install 'l2decay[plot]'" in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "fig.png"
    assert main(["compare", *FAST, "--plot", str(out), "--quiet"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
