"""Text and JSON files a user gives: one reader, one set of rules.

:func:`read_text` reads a regular file (:func:`mfr.core.readers.paths.require_file`: a FIFO
never blocks it) of at most `max_bytes`, drops a UTF-8 byte-order mark (a file saved by
Notepad reads like any other), and refuses, naming the file and the line: a UTF-16/32 mark,
a NUL byte (a binary file), bytes that are not UTF-8. :func:`read_json` parses such a text and
checks the shape of the value (an object, a list). :func:`excerpt` is how every reader quotes
a value in a message: at most a short excerpt, never a whole (possibly huge) value.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mfr.core.errors import InputError, excerpt

__all__ = ["MAX_JSON_BYTES", "MAX_TEXT_BYTES", "decode_text", "excerpt", "finite_number",
           "read_bytes", "read_json", "read_text"]

#: The default bound of a text file: MFR2's labels and pairs files are ~20 KB, RMFRD's pair
#: tables at the thesis's scale ~10 MB (72k rows); 256 MiB leaves room for a partition of
#: every image (max_per_subject 0) and refuses a file no mfr input is.
MAX_TEXT_BYTES = 256 << 20
#: JSON records (thresholds.json, run.json): a few KB to a few MB.
MAX_JSON_BYTES = 64 << 20

_BOMS = ((b"\xef\xbb\xbf", None), (b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def _size(path: Path, max_bytes: int, expected: str) -> None:
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"{path}: {size:,} bytes, over the limit of {max_bytes:,} for this "
                         f"file ({expected})")


def read_bytes(path: str | Path, expected: str, max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of regular file `path`, at most `max_bytes` (also when it grows while read)."""
    from mfr.core.readers.paths import require_file

    p = require_file(path, expected)
    _size(p, max_bytes, expected)
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise InputError(f"{p}: cannot be read ({e.strerror}; {expected})") from None
    if len(data) > max_bytes:
        raise InputError(f"{p}: over the limit of {max_bytes:,} bytes for this file "
                         f"({expected})")
    return data


def decode_text(data: bytes, path: str | Path, expected: str) -> str:
    """UTF-8 `data` as text (a UTF-8 BOM dropped); InputError naming `path` and the line of
    a NUL byte or of bytes that are not UTF-8, or the encoding a UTF-16/32 mark announces."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            if encoding is not None:
                raise InputError(f"{path}: {encoding} text (its byte-order mark says so); "
                                 f"expected UTF-8 ({expected}): save it as UTF-8")
            data = data[len(bom):]
            break
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise InputError(f"{path}: line {line}: a NUL byte: a binary file, not text "
                         f"({expected})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"{path}: line {line}: not UTF-8 text (byte {data[e.start]:#04x}); "
                         f"expected UTF-8 ({expected})") from None


def read_text(path: str | Path, expected: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of regular file `path` (see the module docstring); `expected` says what
    the file should be, for the messages ("expected MFR2's labels file: 'Name, i, masktype'")."""
    return decode_text(read_bytes(path, expected, max_bytes), path, expected)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_json(path: str | Path, expected: str, kind: type | tuple[type, ...] = dict,
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value of `path` (:func:`read_text`'s rules), which must be a `kind` (an
    object by default). NaN and Infinity (not JSON) are refused; InputError names the file,
    the line of a syntax error, or the type found."""
    text = read_text(path, expected, max_bytes)
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be {expected}") from None
    except ValueError as e:
        where = f"line {e.lineno}: " if isinstance(e, json.JSONDecodeError) else ""
        msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        raise InputError(f"{path}: {where}not valid JSON ({msg}); expected {expected}") from None
    if not isinstance(data, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise InputError(f"{path}: holds a JSON {type(data).__name__}, expected {expected} "
                         f"(a JSON {names.replace('dict', 'object')})")
    return data


def finite_number(value: Any) -> bool:
    """Whether `value` is a real number (not a bool) and finite: how JSON records are checked."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))
