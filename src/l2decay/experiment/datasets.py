"""Data for the driver: the embedded real data sets (see data/PROVENANCE.md), user CSVs,
a seeded stratified split and standardization with training statistics only."""
import csv
import decimal
import gzip
import hashlib
import io
import math
import os
import zlib
from importlib import resources

import numpy as np

EMBEDDED = {
    "digits": "digits.csv.gz",
    "breast_cancer": "breast_cancer.csv",
    "iris": "iris.csv",
}


INT64_MAX = 2**63 - 1


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and, where known, the line."""


def _records(lines, source):
    """(line number, cells) per CSV record; one the csv module cannot read (a field over its
    size limit) is a DataError naming the line."""
    reader = csv.reader(lines)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{source}, line {reader.line_num}: unreadable CSV ({exc})") from None
        yield reader.line_num, cells


def _label(cell, where):
    """The exact integer a label cell spells ('7', '7.0', '7e0'): float() would merge labels
    past 2**53 into one class."""
    text = cell.strip()
    try:
        d = decimal.Decimal(text)
    except decimal.InvalidOperation:
        d = None
    if d is None or not d.is_finite() or d != d.to_integral_value() or d < 0:
        raise DataError(f"{where}: class label {text!r} is not a non-negative integer")
    if d > INT64_MAX:  # compared as a Decimal: int() of '1e999999999' would not finish
        raise DataError(f"{where}: class label {text!r} is beyond the int64 range (at most {INT64_MAX})")
    return int(d)


def _parse(lines, source):
    """Rows of numbers with an integer class label last; a first line with a non-number is a header."""
    rows, labels, width = [], [], None
    for lineno, cells in _records(lines, source):
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
        if not all(math.isfinite(v) for v in values[:-1]):
            raise DataError(f"{source}, line {lineno}: non-finite value")
        labels.append(_label(cells[-1], f"{source}, line {lineno}"))
        rows.append(values[:-1])
    if not rows:
        raise DataError(f"{source}: no data rows")
    X, y = np.asarray(rows, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise DataError(f"{source}: only one class ({classes[0]}); need at least two")
    if counts.min() < 2:
        raise DataError(f"{source}: class {classes[counts.argmin()]} has only 1 row; every class needs "
                        f"at least 2, one for the training split and one for the test split")
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
        ref = resources.files("l2decay.experiment") / "data" / EMBEDDED[name_or_path]
        raw = ref.read_bytes()
        source = f"{name_or_path} (embedded)"
    else:
        path = os.fspath(name_or_path)
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file (embedded data sets: {', '.join(EMBEDDED)})")
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
        source = path
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # bad header, truncated, corrupt stream
            raise DataError(f"{source}: not a readable gzip file ({exc})") from None
    try:
        text = raw.decode("utf-8-sig")  # a leading BOM would glue itself to the first cell
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    # newline="": the csv module sees the line ends itself, so old-Mac "\r" ends work too
    X, y = _parse(io.StringIO(text, newline=""), source)
    return X, y, source


def fingerprint(*arrays):
    """A digest of the arrays' dtypes, shapes and bytes, to tell one data set from another."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


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
    """Scale features to zero mean and unit variance using training statistics only.

    Each column is first divided by a power of two near its largest training magnitude: that
    is exact (but for subnormal numbers), so the result does not change, but the sums behind
    the mean and variance of values near 1e308 no longer overflow.  Test values far outside
    the training range can still come out infinite; the caller checks."""
    _, exponent = np.frexp(np.max(np.abs(X_train), axis=0))
    scale = np.ldexp(1.0, exponent - 1)  # column max / scale in [1, 2); 2**1024 would be inf
    X_train, X_test = X_train / scale, X_test / scale
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0  # constant features (blank pixels) stay 0 instead of dividing by 0
    return (X_train - mean) / std, (X_test - mean) / std
