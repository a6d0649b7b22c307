"""CSV tables a user gives (pair tables, photo pairs): read against a schema.

:func:`read_table` reads the text (:func:`mfr.core.readers.text.read_text`: UTF-8, a BOM
dropped, no NUL byte, a size bound), parses it with Python's ``csv`` module and checks, naming
the file and the line: the header (the columns expected, in order where `exact`), and the
field count of every row (a row with four fields where five are expected is refused, never
padded with empty values). Blank lines are skipped. The cells come back as strings, the
physical line of each row in ``df.attrs["lines"]``; :func:`check_column` checks a column's
type (a label in {0, 1}, a relative path, a non-empty name) row by row, with the same
messages. What a table means beyond its schema (a genuine label on two subjects) is its
reader's check (:func:`mfr.data.pairs.read_pairs`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mfr.core.errors import InputError
from mfr.core.readers.text import MAX_TEXT_BYTES, excerpt, read_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["check_column", "line_of", "read_table"]


def read_table(path: str | Path, columns: Sequence[str], expected: str, *,
               optional: Sequence[str] = (), exact: bool = True, strip: bool = False,
               max_bytes: int = MAX_TEXT_BYTES) -> pd.DataFrame:
    """The rows of CSV file `path` as strings (see the module docstring).

    `columns`: the columns it must have; `exact`: exactly these, in this order (a pair table),
    else these and any of `optional`, in any order, other columns ignored. `strip`: spaces
    around cells and column names dropped. `expected` says what the file should be."""
    import pandas as pd

    text = read_text(path, expected, max_bytes)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    header: list[str] | None = None
    start = 1
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                start = reader.line_num + 1
                continue
            if strip:
                row = [c.strip() for c in row]
            if header is None:
                header = row
            else:
                if len(row) != len(header):
                    raise InputError(f"{path}: line {start}: {len(row)} field(s), expected "
                                     f"{len(header)} ({','.join(header)})")
                rows.append(row)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"{path}: line {reader.line_num}: not CSV ({e}); expected "
                         f"{expected}") from None
    want = ",".join(columns) + "".join(f"[,{c}]" for c in optional)
    if header is None:
        raise InputError(f"{path}: empty (expected {expected}: a header {want} and rows)")
    if exact and header != list(columns):
        raise InputError(f"{path}: line 1: columns {excerpt(','.join(header), 80)}, expected "
                         f"{want} ({expected})")
    lacking = [c for c in columns if c not in header]
    if lacking:
        raise InputError(f"{path}: missing column(s) {lacking} (expected {want}; got "
                         f"{excerpt(','.join(header), 80)})")
    twice = sorted({c for c in header if header.count(c) > 1 and c in (*columns, *optional)})
    if twice:
        raise InputError(f"{path}: column(s) {twice} given twice (expected {want})")
    keep = [c for c in header if c in (*columns, *optional)]
    at = [header.index(c) for c in keep]
    df = pd.DataFrame([[r[i] for i in at] for r in rows], columns=keep, dtype=object)
    df = df.astype(str) if len(df) else pd.DataFrame({c: pd.Series([], dtype=str) for c in keep})
    # an array, not a list: pandas copies attrs deeply into every frame derived from this one
    df.attrs["lines"] = np.asarray(lines, dtype=np.int64)
    df.attrs["path"] = str(path)
    return df


def line_of(df: pd.DataFrame, i: int) -> int:
    """The physical line of row `i` of a table :func:`read_table` read (else ``i + 2``)."""
    lines = df.attrs.get("lines")
    return int(lines[i]) if lines is not None and i < len(lines) else i + 2


def check_column(df: pd.DataFrame, column: str, ok: Callable[[str], bool], expected: str,
                 path: str | Path | None = None) -> None:
    """InputError naming the file and line of the first cell of `column` for which `ok` is
    false: ``"FILE: line N: COLUMN 'x' ..., expected EXPECTED"``."""
    if column not in df.columns or not len(df):
        return
    good = df[column].map(ok).to_numpy(dtype=bool)
    if not good.all():
        i = int((~good).nonzero()[0][0])
        where = path or df.attrs.get("path", "table")
        raise InputError(f"{where}: line {line_of(df, i)}: {column} "
                         f"{excerpt(df[column].iloc[i])}, expected {expected}")
