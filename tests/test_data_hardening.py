"""Damaged, crafted and awkward inputs: checkpoints, output paths, CSV files.  Each must give a
clear DataError/CheckpointError/OutputError (in the CLI: one line, exit 2) and change nothing,
or be read correctly."""
import errno
import gzip
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import l2decay.experiment.driver as tr
from l2decay.experiment import datasets
from l2decay.cli import main

SMALL = dict(data="iris", train_size=0, hidden=(4,), epochs=4, batch_size=16, lr=0.1, test_fraction=0.3,
             momentum=0.9)  # momentum: the optimizer has state to restore (or not)
SMALL_ARGS = ["--data", "iris", "--train-size", "0", "--hidden", "4", "--epochs", "4", "--batch-size", "16",
              "--lr", "0.1", "--test-fraction", "0.3", "--momentum", "0.9", "--quiet"]


def cli_error(argv, capsys):
    """main()'s exit code and its stderr, which must be one 'l2decay: error:' line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("l2decay: error: "), err
    return err


def two_class_csv(path, n=40, rows=None):
    rows = rows or [f"{i % 7},{(i * 3) % 5 + i / 100},{i % 2}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


# --- checkpoints -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "good.npz"
    tr.train(tr.Config(**SMALL), epochs=2, checkpoint=str(path))
    return path.read_bytes()


def _arrays(blob, tmp_path):
    (tmp_path / "src.npz").write_bytes(blob)
    with np.load(tmp_path / "src.npz") as z:
        return {k: z[k] for k in z.files}


def _with(**changes):
    """A damage function: the checkpoint's arrays with some replaced (None: removed)."""
    def damage(blob, tmp_path):
        arrays = _arrays(blob, tmp_path)
        for key, value in changes.items():
            if value is None:
                del arrays[key]
            else:
                arrays[key] = value
        np.savez(tmp_path / "out.npz", **arrays)
        return (tmp_path / "out.npz").read_bytes()
    return damage


def _with_meta(edit):
    """A damage function: the checkpoint with its meta JSON object edited by `edit(meta)`."""
    def damage(blob, tmp_path):
        arrays = _arrays(blob, tmp_path)
        meta = json.loads(str(arrays["meta"]))
        return _with(meta=np.array(json.dumps(edit(meta))))(blob, tmp_path)
    return damage


def _flip_in(find, offset=0):
    def damage(blob, tmp_path):
        i = find(blob, tmp_path) + offset
        return blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1:]
    return damage


def _param0_bytes(blob, tmp_path):
    return blob.index(_arrays(blob, tmp_path)["param.0"].tobytes())


def _npy_file(blob, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    return (tmp_path / "x.npy").read_bytes()


def _mt19937(meta):
    meta["rng"] = np.random.MT19937(0).state
    meta["rng"]["state"]["key"] = meta["rng"]["state"]["key"].tolist()
    return meta


DAMAGED = {
    "empty": (lambda blob, tmp_path: b"", "not a readable l2decay checkpoint"),
    "truncated": (lambda blob, tmp_path: blob[:len(blob) // 2], "not a readable l2decay checkpoint"),
    "last byte cut": (lambda blob, tmp_path: blob[:-1], "not a readable l2decay checkpoint"),
    "byte flipped in a parameter": (_flip_in(_param0_bytes, 5), "not a readable l2decay checkpoint"),
    "byte flipped in the zip directory": (_flip_in(lambda b, t: b.rindex(b"PK\x01\x02"), 10),
                                          "not a readable l2decay checkpoint"),
    "a .npy file": (_npy_file, "not a readable l2decay checkpoint"),
    "meta a JSON list": (_with(meta=np.array("[1, 2]")), "no meta JSON object"),
    "meta not JSON": (_with(meta=np.array("{'identity': ")), "not a readable l2decay checkpoint"),
    "meta a number": (_with(meta=np.array(3.0)), "no meta JSON object"),
    "meta missing": (_with(meta=None), "no meta JSON object"),
    "no rng": (_with_meta(lambda m: {k: v for k, v in m.items() if k != "rng"}), "meta rng is not an object"),
    "identity a list": (_with_meta(lambda m: {**m, "identity": []}), "meta identity is not an object"),
    "history not a list": (_with_meta(lambda m: {**m, "history": {"0": 1}}), "meta history is not a list"),
    "history too short": (_with_meta(lambda m: {**m, "history": m["history"][:1]}),
                          "history is not a list of 2 epochs"),
    "history entry without a metric": (
        _with_meta(lambda m: {**m, "history": [m["history"][0], {"epoch": 2}]}), "history entry 2 is not epoch 2"),
    "rng of another bit generator": (_with_meta(_mt19937), "rng state is not a PCG64 state"),
    "rng state a float": (_with_meta(lambda m: {**m, "rng": {**m["rng"], "state": {**m["rng"]["state"],
                                                                                 "state": 1.5}}}),
                          "rng state is not a PCG64 state"),
    "epoch -3": (_with(epoch=np.array(-3)), "epoch -3 is not a completed epoch"),
    "epoch a float": (_with(epoch=np.array(2.5)), "no integer epoch"),
    "epoch a string": (_with(epoch=np.array("2")), "no integer epoch"),
    "epoch missing": (_with(epoch=None), "no integer epoch"),
    "parameter of another shape": (_with(**{"param.0": np.zeros((3, 4))}), "parameter 0 does not match the model"),
    "parameter of another dtype": (_with(**{"param.1": np.zeros(4, np.float32)}),
                                   "parameter 1 does not match the model"),
    "parameter missing": (_with(**{"param.3": None}), "holds other parameters than the model's 4"),
    "a parameter too many": (_with(**{"param.4": np.zeros(3)}), "holds other parameters than the model's 4"),
    "optimizer lr changed": (_with(**{"opt.group.0.lr": np.array(2.0**62)}),
                             "optimizer setting group.0.lr is 4.611686018427388e+18, the settings give 0.1"),
    "optimizer of another kind": (_with(**{"opt.optimizer": np.array("Adam")}),
                                  "optimizer setting optimizer is 'Adam', the settings give 'SGD'"),
    "optimizer state buffer of another shape": (_with(**{"opt.state.0.momentum_buffer": np.zeros((2, 2))}),
                                                "state.0.momentum_buffer has shape (2, 2)"),
}


def _snapshot(model, opt, rng):
    return ([p.copy() for p in model.params],
            {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}, rng.bit_generator.state)


def _assert_same(a, b):
    assert all(np.array_equal(p, q) for p, q in zip(a[0], b[0]))
    assert a[1].keys() == b[1].keys() and all(np.array_equal(a[1][k], b[1][k]) for k in a[1])
    assert a[2] == b[2]


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_checkpoint_is_refused_and_nothing_changes(case, good_checkpoint, tmp_path):
    damage, message = DAMAGED[case]
    path = tmp_path / "run.npz"
    path.write_bytes(damage(good_checkpoint, tmp_path))
    before = path.read_bytes()
    cfg = tr.Config(**SMALL)
    data = tr.prepare_data(cfg)
    model, opt = tr.build(cfg, data)
    rng = np.random.default_rng([cfg.seed, 2])
    untouched = _snapshot(model, opt, rng)
    with pytest.raises(tr.CheckpointError, match="^" + re.escape(str(path))) as exc:
        tr.load_checkpoint(str(path), cfg, data, model, opt, rng)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    _assert_same(_snapshot(model, opt, rng), untouched)
    assert path.read_bytes() == before


def test_good_checkpoint_restores_everything(good_checkpoint, tmp_path):
    """The counterpart of the test above: the intact file is accepted and changes all three."""
    path = tmp_path / "run.npz"
    path.write_bytes(good_checkpoint)
    cfg = tr.Config(**SMALL)
    data = tr.prepare_data(cfg)
    model, opt = tr.build(cfg, data)
    rng = np.random.default_rng([cfg.seed, 2])
    fresh = _snapshot(model, opt, rng)
    epoch, history = tr.load_checkpoint(str(path), cfg, data, model, opt, rng)
    assert epoch == 2 and [h["epoch"] for h in history] == [1, 2]
    now = _snapshot(model, opt, rng)
    assert not np.array_equal(now[0][0], fresh[0][0])
    assert "state.0.momentum_buffer" in now[1] and "state.0.momentum_buffer" not in fresh[1]
    assert now[2] != fresh[2]


@pytest.mark.parametrize("case", ["truncated", "byte flipped in a parameter", "a .npy file", "meta a JSON list",
                                  "rng of another bit generator", "epoch -3", "epoch a float",
                                  "parameter of another shape", "history not a list"])
def test_damaged_checkpoint_in_the_cli_is_one_line_and_not_overwritten(case, good_checkpoint, tmp_path, capsys):
    damage, message = DAMAGED[case]
    path = tmp_path / "run.npz"
    path.write_bytes(damage(good_checkpoint, tmp_path))
    before = path.read_bytes()
    err = cli_error(["train", *SMALL_ARGS, "--checkpoint", str(path), "--resume"], capsys)
    assert str(path) in err and message in err
    assert path.read_bytes() == before


def test_truncated_checkpoint_no_traceback_in_a_real_process(good_checkpoint, tmp_path):
    path = tmp_path / "run.npz"
    path.write_bytes(good_checkpoint[:1000])
    proc = subprocess.run([sys.executable, "-m", "l2decay.cli", "train", *SMALL_ARGS, "--checkpoint", str(path),
                           "--resume"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("l2decay: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert path.read_bytes() == good_checkpoint[:1000]


def test_swapped_labels_are_other_data_for_resume(tmp_path, capsys):
    rows = [f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(40)]
    csv_path = two_class_csv(tmp_path / "mine.csv", rows=rows)
    ckpt = str(tmp_path / "run.npz")
    args = ["train", "--data", csv_path, "--train-size", "0", "--hidden", "4", "--quiet", "--checkpoint", ckpt]
    assert main(args + ["--epochs", "1"]) == 0
    # rows 2 and 3 (features 2,1 and 3,4) trade labels: the shape, count and sum of the
    # standardized training set, all the old fingerprint saw, stay the same
    rows[2], rows[3] = rows[2][:-1] + "1", rows[3][:-1] + "0"
    two_class_csv(tmp_path / "mine.csv", rows=rows)
    before = open(ckpt, "rb").read()
    err = cli_error(args + ["--epochs", "3", "--resume"], capsys)
    assert "written with other settings (data_fingerprint: checkpoint 'sha256:" in err
    assert open(ckpt, "rb").read() == before


def test_fingerprint_is_a_digest_of_both_splits():
    X, y = np.arange(12.0).reshape(6, 2), np.array([0, 1, 0, 1, 0, 1])
    base = datasets.fingerprint(X, y, X[:2], y[:2])
    assert base.startswith("sha256:") and len(base) == 7 + 64
    assert base == datasets.fingerprint(X.copy(), y.copy(), X[:2], y[:2])
    assert datasets.fingerprint(X, y[::-1], X[:2], y[:2]) != base  # labels moved, sums equal
    assert datasets.fingerprint(X, y, X[:2], y[:2][::-1]) != base  # test split counts too
    assert datasets.fingerprint(X.astype(np.float32), y, X[:2], y[:2]) != base
    assert datasets.fingerprint(X.reshape(3, 4), y, X[:2], y[:2]) != base


# --- output paths --------------------------------------------------------------------------------

@pytest.fixture
def no_training(monkeypatch):
    """A bad output path must be refused before any training (which would lose the run)."""
    def refuse(cfg):
        raise AssertionError("trained although the output cannot be written")
    monkeypatch.setattr(tr, "prepare_data", refuse)


@pytest.mark.parametrize("command,option", [("train", "--checkpoint"), ("train", "--json"), ("compare", "--json")])
def test_output_in_a_missing_folder_fails_before_training(command, option, tmp_path, capsys, no_training):
    target = str(tmp_path / "missing" / "out.file")
    err = cli_error([command, *SMALL_ARGS, option, target], capsys)
    assert f"{target}: folder {tmp_path / 'missing'} does not exist" in err
    assert not os.path.exists(tmp_path / "missing")


def test_output_under_a_regular_file_fails_before_training(tmp_path, capsys, no_training):
    (tmp_path / "somefile.txt").write_text("x")
    target = str(tmp_path / "somefile.txt" / "ckpt.npz")
    err = cli_error(["train", *SMALL_ARGS, "--checkpoint", target], capsys)
    assert f"{target}: folder {tmp_path / 'somefile.txt'} is not a folder" in err
    with pytest.raises(tr.OutputError, match="is not a folder"):
        tr.train(tr.Config(**SMALL), checkpoint=target)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write in read-only folders")
def test_output_in_a_read_only_folder_fails_before_training(tmp_path, capsys, no_training):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        err = cli_error(["train", *SMALL_ARGS, "--json", str(folder / "out.json")], capsys)
    finally:
        folder.chmod(0o755)
    assert "out.json: folder" in err and "is not writable" in err


def test_output_folder_that_refuses_a_new_file(tmp_path, capsys, monkeypatch, no_training):
    """os.access can say yes (root, read-only mounts): creating a file is the real test."""
    def read_only_fs(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(tr.tempfile, "mkstemp", read_only_fs)
    target = str(tmp_path / "out.json")
    err = cli_error(["compare", *SMALL_ARGS, "--json", target], capsys)
    assert f"{target}: cannot write in folder {tmp_path} ({os.strerror(errno.EROFS)})" in err
    assert os.listdir(tmp_path) == []


def test_output_that_is_a_folder(tmp_path, capsys, no_training):
    err = cli_error(["train", *SMALL_ARGS, "--json", str(tmp_path)], capsys)
    assert f"{tmp_path} is a folder, not a file" in err


def test_json_with_nan_is_not_written(tmp_path):
    """A diverging run (relu, huge lr) has NaN losses: an error, not a file JSON parsers refuse."""
    out = tmp_path / "run.json"
    proc = subprocess.run([sys.executable, "-m", "l2decay.cli", "train", "--data", "iris", "--train-size", "0",
                           "--hidden", "4", "--epochs", "2", "--activation", "relu", "--lr", "1e300", "--quiet",
                           "--json", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    # numpy's overflow warnings may come first; the error is one line, the last
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"l2decay: error: {out}: not written, as JSON has no NaN or infinity: runs[0].")
    assert last.endswith(" is nan")
    assert not out.exists()


# --- stale temporaries of a killed checkpoint write ----------------------------------------------

def test_kill_during_a_checkpoint_write_leaves_a_temporary_the_next_save_removes(tmp_path):
    ckpt = tmp_path / "run.npz"
    tr.train(tr.Config(**SMALL), epochs=1, checkpoint=str(ckpt))
    before = ckpt.read_bytes()
    # The process dies (as by kill -9) between writing the temporary and renaming it.
    script = ("import os, l2decay.experiment.driver as tr\n"
              "os.replace = lambda *a: os._exit(9)\n"
              f"tr.train(tr.Config(**{SMALL!r}), epochs=2, checkpoint={str(ckpt)!r}, resume=True)\n")
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    assert ckpt.read_bytes() == before
    stale = [n for n in os.listdir(tmp_path) if n != "run.npz"]
    assert len(stale) == 1 and stale[0].startswith(".run.npz.l2decay-tmp-") and stale[0].endswith(".npz")
    tr.train(tr.Config(**SMALL), epochs=2, checkpoint=str(ckpt), resume=True)
    assert os.listdir(tmp_path) == ["run.npz"]


def test_stale_temporaries_of_other_checkpoints_are_kept(tmp_path):
    ours = ".run.npz.l2decay-tmp-k3j_9zq1.npz"
    others = [".other.npz.l2decay-tmp-k3j_9zq1.npz",  # another checkpoint in the same folder
              ".run.npz.l2decay-tmp-x.l2decay-tmp-abcd1234.npz",  # of checkpoint 'run.npz.l2decay-tmp-x'
              ".xrun.npz.l2decay-tmp-abcd1234.npz", "run.npz.l2decay-tmp-abcd1234.npz", "notes.txt"]
    for name in [ours, *others]:
        (tmp_path / name).write_bytes(b"PK\x03\x04 half a zip")
    tr.train(tr.Config(**SMALL), epochs=1, checkpoint=str(tmp_path / "run.npz"))
    assert sorted(os.listdir(tmp_path)) == sorted(["run.npz", *others])


# --- data the model cannot represent -------------------------------------------------------------

def test_features_near_the_float64_limit_standardize_and_train(tmp_path):
    rows = [f"{1.7e308 if i % 3 else -1.7e308},{i % 5},{i % 2}" for i in range(40)]
    path = two_class_csv(tmp_path / "big.csv", rows=rows)
    data = tr.prepare_data(tr.Config(data=path, train_size=0))
    assert np.isfinite(data.X_train).all() and np.isfinite(data.X_test).all()
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1, atol=1e-12)
    run = tr.train(data=path, train_size=0, hidden=(4,), epochs=2)
    assert np.isfinite(run["weights"]).all() and np.isfinite(run["train_loss"])


def _csv_with_test_outliers(path, value):
    """A CSV whose test split (as prepare_data draws it for seed 0, test fraction 0.5) holds `value`
    in feature 1 and whose training split holds only 0 and 1 there."""
    y = np.arange(40) % 2
    _, test = datasets.stratified_split(y, 0.5, np.random.default_rng([0, 1]))
    feature = (np.arange(40) % 2).astype(object)
    feature[test] = value
    return two_class_csv(path, rows=[f"{feature[i]!r},{i % 5},{y[i]}" for i in range(40)])


def test_test_values_that_standardize_to_infinity_are_a_data_error(tmp_path):
    path = _csv_with_test_outliers(tmp_path / "far.csv", 1.7e308)
    with pytest.raises(datasets.DataError, match=r"far\.csv: feature column 1 of the test split does not "
                                                  r"standardize to finite float64 values"):
        tr.prepare_data(tr.Config(data=path, train_size=0))


def test_test_values_beyond_float32_are_a_data_error(tmp_path):
    path = _csv_with_test_outliers(tmp_path / "f32.csv", 1e300)
    assert np.isfinite(tr.prepare_data(tr.Config(data=path, train_size=0)).X_test).all()  # fine in float64
    with pytest.raises(datasets.DataError, match="feature column 1 of the test split .* finite float32"):
        tr.prepare_data(tr.Config(data=path, train_size=0, dtype="float32"))


# --- reading CSV files ---------------------------------------------------------------------------

ROWS = [f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(40)]
TEXT = "\n".join(ROWS) + "\n"


def _expected():
    X = np.array([[i % 7, (i * 3) % 5] for i in range(40)], dtype=np.float64)
    return X, np.arange(40) % 2


def _assert_reads_all(path):
    X, y, _ = datasets.load(path)
    want_X, want_y = _expected()
    np.testing.assert_array_equal(X, want_X)
    np.testing.assert_array_equal(y, want_y)


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "bad header"])
def test_broken_gzip_is_a_data_error(damage, tmp_path, capsys):
    blob = gzip.compress(TEXT.encode())
    blob = {"truncated": blob[:len(blob) // 2],
            "corrupt": blob[:20] + bytes(b ^ 0xFF for b in blob[20:30]) + blob[30:],
            "bad header": blob[:2] + b"\x07" + blob[3:]}[damage]
    path = tmp_path / "data.csv.gz"
    path.write_bytes(blob)
    with pytest.raises(datasets.DataError, match=f"^{re.escape(str(path))}: not a readable gzip file"):
        datasets.load(str(path))
    cli_error(["train", "--data", str(path), "--quiet"], capsys)


def test_gzip_csv_reads(tmp_path):
    (tmp_path / "data.csv.gz").write_bytes(gzip.compress(TEXT.encode()))
    _assert_reads_all(str(tmp_path / "data.csv.gz"))


def test_over_long_field_is_a_data_error_naming_the_line(tmp_path, capsys):
    path = tmp_path / "long.csv"
    path.write_text(TEXT + "1" * 200_000 + ",1,0\n")
    with pytest.raises(datasets.DataError, match=f"^{re.escape(str(path))}, line 41: unreadable CSV "
                                                  f".*field larger than field limit"):
        datasets.load(str(path))
    cli_error(["train", "--data", str(path), "--quiet"], capsys)


@pytest.mark.parametrize("ending", ["\r", "\r\n", "\n"])
@pytest.mark.parametrize("header", [False, True])
def test_line_endings(ending, header, tmp_path):
    path = tmp_path / "ends.csv"
    lines = (["a,b,label"] if header else []) + ROWS
    path.write_bytes((ending.join(lines) + ending).encode())
    _assert_reads_all(str(path))


@pytest.mark.parametrize("header", [False, True])
def test_utf8_bom_is_not_part_of_the_first_cell(header, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (("x1,x2,label\n" if header else "") + TEXT).encode())
    _assert_reads_all(str(path))


def test_label_parsing_is_exact(tmp_path):
    # past 2**53 float() merges these into one class; int64 holds both
    rows = [f"{i},{i % 3},{9007199254740992 + i % 2}" for i in range(8)]
    X, y, _ = datasets.load(two_class_csv(tmp_path / "big_labels.csv", rows=rows))
    assert y.tolist() == [0, 1] * 4
    # '2.0' and '2e0' are the class 2
    rows = [f"{i},{i % 3},{['2', '2.0', '2e0', '5'][i % 4]}" for i in range(8)]
    _, y, _ = datasets.load(two_class_csv(tmp_path / "float_labels.csv", rows=rows))
    assert y.tolist() == [0, 0, 0, 1] * 2


@pytest.mark.parametrize("label,message", [
    ("18446744073709551616", "class label '18446744073709551616' is beyond the int64 range"),
    ("1e20", "class label '1e20' is beyond the int64 range"),
    ("9223372036854775808", "class label '9223372036854775808' is beyond the int64 range"),
    ("1e999999999", "class label '1e999999999' is beyond the int64 range"),
    ("nan", "class label 'nan' is not a non-negative integer"),
    ("inf", "class label 'inf' is not a non-negative integer"),
    ("-1", "class label '-1' is not a non-negative integer"),
    ("2.5", "class label '2.5' is not a non-negative integer"),
])
def test_labels_outside_int64_are_refused(label, message, tmp_path, capsys):
    path = two_class_csv(tmp_path / "labels.csv", rows=["1,2,0", f"3,4,{label}", *ROWS])
    with pytest.raises(datasets.DataError, match=f"^{re.escape(path)}, line 2: {re.escape(message)}"):
        datasets.load(path)
    assert message in cli_error(["train", "--data", path, "--quiet"], capsys)


def test_labels_past_uint64_are_not_merged(tmp_path):
    """2**64 and 2**64 + 1 were one class through float(); now the first is refused by name."""
    path = two_class_csv(tmp_path / "labels.csv",
                         rows=["1,2,18446744073709551616", "3,4,18446744073709551617"] * 2 + ROWS)
    with pytest.raises(datasets.DataError, match=f"^{re.escape(path)}, line 1: class label '18446744073709551616' "
                                                  f"is beyond the int64 range \\(at most 9223372036854775807\\)$"):
        datasets.load(path)


def test_largest_int64_label_is_a_class(tmp_path):
    path = two_class_csv(tmp_path / "max.csv", rows=["3,4,9223372036854775807", "5,6,9.223372036854775807e18", *ROWS])
    _, y, _ = datasets.load(path)
    assert y.tolist() == [2, 2] + [0, 1] * 20


@pytest.mark.parametrize("rows", [["1,2,0", "3,4,1", "5,6,0"], ["1,2,0", "3,4,1"]])
def test_too_few_rows_for_the_split(rows, tmp_path, capsys):
    path = two_class_csv(tmp_path / "few.csv", rows=rows)
    with pytest.raises(datasets.DataError, match=f"^{re.escape(path)}: class [01] has only 1 row; every class "
                                                  f"needs at least 2, one for the training split"):
        datasets.load(path)
    cli_error(["train", "--data", path, "--train-size", "0", "--epochs", "1", "--quiet",
               "--json", str(tmp_path / "out.json")], capsys)
    assert not (tmp_path / "out.json").exists()


def test_smallest_usable_csv_has_finite_metrics(tmp_path):
    """Two rows per class: one for training, one for testing, so no metric is a mean of nothing."""
    path = two_class_csv(tmp_path / "four.csv", rows=["1,2,0", "3,4,1", "5,6,0", "7,9,1"])
    out = tmp_path / "out.json"
    assert main(["train", "--data", path, "--train-size", "0", "--epochs", "2", "--quiet", "--json", str(out)]) == 0
    run = json.loads(out.read_text())["runs"][0]
    assert all(np.isfinite(run[k]) for k in ("train_accuracy", "test_accuracy", "train_loss", "test_loss"))
