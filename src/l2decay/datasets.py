"""Data for the driver: the embedded real data sets (see data/PROVENANCE.md), user CSVs,
a seeded stratified split and standardization with training statistics only."""
import csv
import gzip
import io
import math
import os
from importlib import resources

import numpy as np

EMBEDDED = {
    "digits": "digits.csv.gz",
    "breast_cancer": "breast_cancer.csv",
    "iris": "iris.csv",
}


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and, where known, the line."""


def _parse(lines, source):
    """Rows of numbers with an integer class label last; a first line with a non-number is a header."""
    rows, width = [], None
    reader = csv.reader(lines)
    for lineno, cells in enumerate(reader, start=1):
        if not cells or all(not c.strip() for c in cells):
            continue
        try:
            values = [float(c) for c in cells]
        except ValueError:
            if not rows and lineno == 1:
                continue  # header
            bad = next(c for c in cells if not _is_number(c))
            raise DataError(f"{source}, line {lineno}: non-numeric cell {bad.strip()!r}") from None
        if width is None:
            width = len(values)
            if width < 2:
                raise DataError(f"{source}, line {lineno}: need at least one feature and a label column")
        elif len(values) != width:
            raise DataError(f"{source}, line {lineno}: {len(values)} cells, expected {width} like the first row")
        if not all(math.isfinite(v) for v in values):
            raise DataError(f"{source}, line {lineno}: non-finite value")
        label = values[-1]
        if label != int(label) or label < 0:
            raise DataError(f"{source}, line {lineno}: class label {cells[-1].strip()!r} is not a non-negative integer")
        rows.append(values)
    if not rows:
        raise DataError(f"{source}: no data rows")
    data = np.asarray(rows, dtype=np.float64)
    X, y = data[:, :-1], data[:, -1].astype(np.int64)
    classes = np.unique(y)
    if classes.size < 2:
        raise DataError(f"{source}: only one class ({classes[0]}); need at least two")
    # relabel to 0..k-1 so any integer labels work
    return X, np.searchsorted(classes, y)


def _is_number(cell):
    try:
        float(cell)
        return True
    except ValueError:
        return False


def load(name_or_path):
    """(X, y, source) for an embedded data set name or a CSV path (``.csv`` or ``.csv.gz``)."""
    if name_or_path in EMBEDDED:
        ref = resources.files("l2decay") / "data" / EMBEDDED[name_or_path]
        raw = ref.read_bytes()
        source = f"{name_or_path} (embedded)"
    else:
        path = os.fspath(name_or_path)
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file (embedded data sets: {', '.join(EMBEDDED)})")
        with open(path, "rb") as f:
            raw = f.read()
        source = path
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except OSError as exc:
            raise DataError(f"{source}: broken gzip data ({exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    X, y = _parse(io.StringIO(text), source)
    return X, y, source


def stratified_split(y, test_fraction, rng):
    """Index arrays (train, test): each class split in the same proportion, order shuffled."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * idx.size))
        n_test = min(max(n_test, 1), idx.size - 1) if idx.size > 1 else 0
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def standardize(X_train, X_test):
    """Scale features to zero mean and unit variance using training statistics only."""
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0  # constant features (blank pixels) stay 0 instead of dividing by 0
    return (X_train - mean) / std, (X_test - mean) / std
