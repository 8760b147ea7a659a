"""The `l2decay` command as a user meets it: exit codes, one-line errors, table, plot extra."""
import argparse
import os
import subprocess
import sys

import pytest

from l2decay.cli import main

FAST = ["--data", "iris", "--train-size", "0", "--hidden", "6", "--epochs", "2", "--batch-size", "16"]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "l2decay.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_compare_prints_one_row_per_rule_over_the_seeds():
    proc = run_cli("compare", *FAST, "--seeds", "3", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "; 3 seeds (0-2);" in lines[0]
    assert lines[1].split()[:4] == ["rule", "strength", "train", "acc"]
    assert [ln.split()[0] for ln in lines[2:6]] == ["none", "l2", "decay", "decoupled"]
    assert all(" +- " in ln for ln in lines[2:6])  # each rule's mean and spread
    assert lines[6].startswith("Means over 3 seeds (0-2); +- is the standard deviation over seeds")
    assert lines[7] == "Reading:" and lines[8].startswith("- ")


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "l2decay")
    if not os.path.exists(exe):
        pytest.skip("not running from an environment with console scripts")
    proc = subprocess.run([exe, "train", *FAST, "--l2", "0.01"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2].split()[0] == "l2"


def one_line_error(argv, capsys):
    """main()'s stderr for a bad option: exit code 2 and exactly one 'l2decay: error:' line."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("l2decay: error: "), err
    return err


@pytest.fixture
def no_training(monkeypatch):
    """A bad option must be refused before any training."""
    import l2decay.experiment.driver as tr

    def refuse(cfg):
        raise AssertionError("trained although an option is bad")
    monkeypatch.setattr(tr, "prepare_data", refuse)


@pytest.mark.parametrize("args,message", [
    (["train", "--lr", "-0.1"], "argument --lr: must be a finite number >= 0"),
    (["train", "--l2", "0.1", "--decay", "0.1"], "not allowed with argument"),
    (["train", "--data", "mnist"], "unknown data set 'mnist'"),
    (["train", "--epochs", "0"], "argument --epochs: must be >= 1"),
    (["compare", "--decay", "1.5"], "argument --decay: must be in [0, 1)"),
    (["train", "--momentum", "1"], "argument --momentum"),
    (["train", "--resume"], "--resume needs --checkpoint"),
    (["train", "--hidden", "0"], "argument --hidden"),
    # options whose bounds were once unchecked
    (["compare", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["compare", "--test-fraction", "0"], "argument --test-fraction: must be in (0, 1), got 0"),
    (["train", "--test-fraction", "1"], "argument --test-fraction: must be in (0, 1), got 1"),
    (["train", "--train-size", "-5"], "argument --train-size: must be >= 0, got -5"),
    (["compare", "--optimizer", "adam", "--momentum", "0.9"], "argument --momentum: applies to --optimizer sgd only"),
    (["train", "--optimizer", "adam", "--momentum", "0"], "argument --momentum: applies to --optimizer sgd only"),
    (["compare", "--seeds", "0"], "argument --seeds: must be >= 1"),
    (["compare", "--seeds", "99999999999999999999"], "argument --seeds: must be <= 1,000,000"),
    (["compare", "--seed", str(2 ** 63)], "argument --seed: must be <= 2**63 - 1"),
    (["train", "--dtype", "bfloat16", "--seed", str(2 ** 63)], "argument --seed: must be <= 2**63 - 1"),
    (["sweep", "--quick", "--seed", str(2 ** 63)], "argument --seed: must be <= 2**63 - 1"),
    (["compare", "--seed", str(2 ** 63 - 1), "--seeds", "2"], "argument --seeds: the last seed"),
    (["compare", "--jobs", "0"], "argument --jobs: must be >= 1"),
    (["sweep", "--optimizers", "lion"], "argument --optimizers: expected some of sgd,adam"),
    (["sweep", "--rules", "l2,none"], "argument --rules: expected some of l2,decoupled,decay"),
    (["sweep", "--momentum", "1"], "argument --momentum: must be in [0, 1)"),
    (["train", "--dtype", "float8"], "argument --dtype: invalid choice: 'float8'"),
    (["compare", "--rounding", "up"], "argument --rounding: invalid choice: 'up'"),
    (["train", "--dtype", "float32", "--rounding", "stochastic"],
     "argument --rounding: 'stochastic' needs dtype bfloat16 or float16"),
    (["compare", "--rounding", "stochastic"], "argument --rounding: 'stochastic' needs dtype bfloat16 or float16"),
    (["frobnicate"], "argument command: invalid choice: 'frobnicate'"),
])
def test_bad_options_are_one_line_exit_2(args, message, capsys, no_training):
    err = one_line_error(args + (["--quiet"] if args[0] != "frobnicate" else []), capsys)
    assert message in err


def test_train_size_error_names_train_size_not_test_fraction(capsys, no_training):
    err = one_line_error(["train", "--train-size", "-5", "--quiet"], capsys)
    assert "--train-size" in err and "test" not in err


def test_hidden_beyond_memory_is_one_line_naming_hidden():
    """The net's size is known only once the data is (inputs, classes): still one line, no traceback."""
    proc = run_cli("compare", "--hidden", "1000000000", "--jobs", "1", "--seeds", "1", "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("l2decay: error: argument --hidden: [1000000000] is too large: ")
    assert "GiB of parameters, more than this machine's" in proc.stderr


def test_json_into_a_missing_folder_is_refused_before_training(tmp_path, capsys, no_training):
    err = one_line_error(["compare", "--json", str(tmp_path / "no" / "c.json"), "--quiet"], capsys)
    assert f"folder {tmp_path / 'no'} does not exist" in err


def test_simd_override_the_cpu_lacks_is_one_line():
    """L2DECAY_SIMD is read when l2decay._kernels is imported; a level the CPU lacks (or a made-up
    one) raises ImportError there."""
    for var, value in (("L2DECAY_SIMD", "avx9"), ("L2DECAY_NUM_THREADS", "99999999999"),
                       ("L2DECAY_PARALLEL_THRESHOLD", "lots")):
        env = {**os.environ, var: value}
        for cmd in ([sys.executable, "-m", "l2decay", "compare", *FAST, "--quiet"],
                    [os.path.join(os.path.dirname(sys.executable), "l2decay"), "--version"]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            assert proc.returncode == 2, (var, proc.stderr)
            assert proc.stderr.startswith("l2decay: error: ") and proc.stderr.count("\n") == 1, proc.stderr
            assert var in proc.stderr
        # the library itself: import works, using it raises the error
        proc = subprocess.run([sys.executable, "-c", "import l2decay; l2decay.SGD"], env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 1 and f"ImportError: {var}" in proc.stderr


def test_csv_too_small_for_a_split_is_an_error_not_nan(tmp_path):
    (tmp_path / "few.csv").write_text("1,2,0\n3,4,1\n5,6,0\n")
    proc = run_cli("compare", "--data", "few.csv", "--train-size", "0", "--json", "out.json", "--quiet",
                   cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "class 1 has only 1 row" in proc.stderr
    assert not (tmp_path / "out.json").exists()


def test_json_never_holds_nan(tmp_path):
    """A relu net at lr 1e300 diverges: --json - is then an error, and stdout stays empty."""
    proc = run_cli("train", *FAST, "--lr", "1e300", "--activation", "relu", "--json", "-", "--quiet")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1].startswith("l2decay: error: stdout: not written, as JSON has no NaN")


def test_header_states_the_real_number_of_training_samples():
    """--train-size 1000 asks for more than iris's training split has: the header says how many were used."""
    proc = run_cli("train", "--data", "iris", "--train-size", "1000", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[0]
    assert header.startswith("data iris: 75 training samples, 75 test samples,"), header
    assert "1000" not in header


def test_each_optimizer_has_its_own_default_lr():
    proc = run_cli("train", *FAST, "--optimizer", "adam")
    assert proc.returncode == 0, proc.stderr
    assert "adam lr 0.001," in proc.stdout.splitlines()[0] and "momentum" not in proc.stdout.splitlines()[0]
    proc = run_cli("train", *FAST)
    assert "sgd lr 0.2 momentum 0," in proc.stdout.splitlines()[0]


def test_resume_without_a_checkpoint_says_it_starts_fresh(tmp_path):
    ckpt = tmp_path / "c.npz"
    proc = run_cli("train", *FAST, "--checkpoint", str(ckpt), "--resume", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"l2decay: no checkpoint at {ckpt} yet: starting fresh\n"
    assert ckpt.exists()
    proc = run_cli("train", *FAST, "--checkpoint", str(ckpt), "--resume", "--quiet")
    assert proc.returncode == 0 and proc.stderr == ""  # now there is one: no message


def _garbage_checkpoints(tmp_path):
    import zipfile

    import numpy as np
    np.savez(tmp_path / "objects.npz", meta=np.array([{"identity": {}}], dtype=object), epoch=np.array(1))
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as zf:
        zf.writestr("meta.npy", b"not an array")
    (tmp_path / "text.npz").write_text("hello\n")
    return {"objects.npz": "meta holds pickled Python objects, which an l2decay checkpoint never does",
            "raw.npz": "meta is not a .npy array", "text.npz": "not a readable l2decay checkpoint"}


def test_garbage_checkpoint_error_does_not_suggest_allow_pickle(tmp_path, capsys):
    for name, message in _garbage_checkpoints(tmp_path).items():
        err = one_line_error(["train", *FAST, "--checkpoint", str(tmp_path / name), "--resume", "--quiet"], capsys)
        assert message in err, err
        assert "allow_pickle" not in err and "pickle=True" not in err


def _wait_for(predicate, timeout=60):
    import time
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_ctrl_c_during_train_is_one_line_naming_the_checkpoint(tmp_path):
    import signal
    ckpt = tmp_path / "run.npz"
    proc = subprocess.Popen([sys.executable, "-m", "l2decay", "train", "--epochs", "100000", "--checkpoint",
                             str(ckpt), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(ckpt.exists)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"l2decay: interrupted: {ckpt} holds epoch ") and err.endswith(
        "; add --resume to continue from it\n")
    assert out == ""


def test_ctrl_c_during_a_parallel_compare_is_one_line():
    """A terminal's Ctrl-C reaches the whole process group: the workers too, which must stay silent."""
    import signal
    proc = subprocess.Popen([sys.executable, "-m", "l2decay", "compare", "--jobs", "2", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    import time
    time.sleep(3)  # the workers are running by now
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == "l2decay: interrupted: nothing written\n", err


def test_python_dash_m_and_version():
    import l2decay
    proc = subprocess.run([sys.executable, "-m", "l2decay", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == f"l2decay {l2decay.__version__}\n"
    proc = subprocess.run([sys.executable, "-m", "l2decay", "train", *FAST], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.splitlines()[1].split()[0] == "rule"


def test_json_dash_writes_the_document_to_stdout():
    import json
    proc = run_cli("compare", *FAST, "--seeds", "2", "--jobs", "1", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is the JSON alone
    assert [r["rule"] for r in doc["summary"]] == ["none", "l2", "decay", "decoupled"]
    assert "rule" in proc.stderr and "Reading:" in proc.stderr  # the table went to stderr


def test_progress_bar_on_a_terminal_without_any_extra():
    """tqdm is a dependency: a run longer than 2 s shows a bar on a terminal, without the extra."""
    from importlib.metadata import requires
    assert any(r.startswith("tqdm") and "extra ==" not in r for r in requires("l2decay"))
    import pty
    import select
    import time
    import fcntl
    import struct
    import termios
    primary, secondary = pty.openpty()
    # a real terminal has a size; a fresh pty has 0 columns, into which tqdm draws nothing
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "l2decay", "train", "--data", "iris", "--train-size", "0",
                             "--epochs", "3000"], stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    start = time.monotonic()
    seen, first, end = b"", None, start + 120
    while proc.poll() is None and b"epoch/s" not in seen and time.monotonic() < end:
        if select.select([primary], [], [], 0.05)[0]:
            try:
                seen += os.read(primary, 4096)
            except OSError:
                break
            first = first or time.monotonic() - start
    proc.kill()
    proc.wait()
    os.close(primary)
    assert b"epoch/s" in seen or b"s/epoch" in seen, seen[-500:]
    assert first >= 2.0  # nothing on a terminal for the first 2 s: short runs print no bar


def test_help_shows_every_default():
    from l2decay.cli import _Formatter, _parser
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in subparsers.items():
        text = sub.format_help()
        formatter = _Formatter(name)
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0:  # positionals, -h, flags
                continue
            assert "default" in formatter._get_help_string(action), (name, action.option_strings)
        assert "(default: 0)" in text or name == "bench"  # --seed 0 is shown, not taken for "no default"


def test_weight_column_is_explained():
    proc = run_cli("compare", *FAST, "--seeds", "1", "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    assert "|w|>5: the share of weights beyond +-5, the range the article gives" in proc.stdout


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
    err = one_line_error(["compare", *FAST, "--plot", "x.png", "--quiet"], capsys)
    assert "pip install 'l2decay[plot]'" in err


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "fig.png"
    assert main(["compare", *FAST, "--seeds", "2", "--jobs", "1", "--plot", str(out), "--quiet"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_out_of_memory_hints_at_the_commands_own_options():
    proc = run_cli("bench", "--sparse", "--sizes", "3000000000000")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "l2decay: error: out of memory; try smaller --sizes"
