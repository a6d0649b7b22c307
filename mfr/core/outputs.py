"""Writing outputs safely, and recording what made them.

Every file is written to a temporary sibling and renamed into place, so an interrupted run
never leaves a half-written CSV, JSON or array behind.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from mfr.core.numerics import numerics


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds.

    The file gets the permissions of any new file (0666 less the umask), not mkstemp's 0600.
    An OSError while writing it (a full disk, a quota, a permission) names `path`, the file
    that could not be written (``e.filename``), not the temporary one or none.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
    except OSError as e:
        raise _naming(e, path) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:
        if e.filename not in (None, str(tmp_path), tmp_path):
            raise  # another file's fault, already named
        raise _naming(e, path) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _naming(e: OSError, path: Path) -> OSError:
    """The same OSError (errno, so the same subclass) naming `path` as its file (one without
    an errno, numpy's short write, says it could not be written)."""
    what = e.strerror or f"could not be written ({' '.join(str(e).split())})"
    return OSError(e.errno, what, str(path))


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """`open()` that writes to a temp file and renames it onto `path` on success."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
        kwargs.setdefault("newline", "\n")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Deterministic JSON: sorted keys, 2-space indent, trailing newline."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_csv(path: str | Path, df: pd.DataFrame, float_format: str | None = None) -> Path:
    """Byte-stable CSV: no index, '\\n' line ends, fixed float format if given."""
    with atomic_open(path) as f:
        df.to_csv(f, index=False, lineterminator="\n", float_format=float_format)
    return Path(path)


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    return Path(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, set | frozenset | tuple):
        return sorted(o) if isinstance(o, set | frozenset) else list(o)
    if isinstance(o, Mapping):  # a run record read back (mfr.core.run_record.RunRecord)
        return dict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


_VERSIONED = ("mfr", "keras", "numpy", "pandas", "scikit-learn", "tensorflow", "tensorflow-cpu",
              "jax", "jaxlib", "h5py", "pillow")


def versions() -> dict[str, str]:
    """Versions of Python, the Keras backend and the packages that shape results."""
    out = {"python": platform.python_version(), "platform": sys.platform}
    for name in _VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    out["keras_backend"] = os.environ.get("KERAS_BACKEND", "tensorflow")
    return out


def run_metadata(config: Any = None, **extra: Any) -> dict[str, Any]:
    """What made an output: its config (a StudyConfig or dict) and the versions used.

    Deliberately holds no timestamp, so that the same inputs give byte-identical files.
    """
    meta: dict[str, Any] = {"versions": versions(), "numerics": numerics()}
    if config is not None:
        meta["config"] = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    meta.update(extra)
    return meta
