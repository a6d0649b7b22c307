"""Outputs read back are the bytes their run recorded.

A run folder's ``run.json`` lists the sha256 of each output when the run completes
(:func:`mfr.core.provenance.complete`). A step that reads another run's output back (a
distances.csv, embeddings, thresholds.json, metrics.json, final_trainable.h5, a partition's
CSVs, a history) checks the file against that record first: a file changed since (edited by
hand, swapped, half-copied) is a one-line :class:`~mfr.core.errors.InputError` naming it,
never numbers silently made from other bytes. A file no record lists (a folder made by hand,
a record from before digests) is read as it is. Each file is hashed once per process and
version (:func:`mfr.core.provenance.file_digest` remembers it by size and modification time).
"""

from __future__ import annotations

from pathlib import Path

from mfr.core.errors import InputError, MfrError
from mfr.core.provenance import file_digest
from mfr.core.run_record import RUN_FILE, read_json_record

__all__ = ["ChangedOutputError", "check_recorded", "recorded_digest"]


class ChangedOutputError(InputError):
    """An output read back is not the bytes its run recorded."""

#: how many folders up from a file its run folder may be (``RUN/embeddings/embeddings.npy``)
_LEVELS = 3


def recorded_digest(path: str | Path) -> tuple[str, Path] | None:
    """(sha256, run.json) of the nearest run record that lists `path` among its outputs, or
    None when none does. A record that cannot be read is passed over (its readers say what is
    wrong with it)."""
    path = Path(path)
    folder = path.parent
    for _ in range(_LEVELS):
        record = folder / RUN_FILE
        if record.is_file():
            try:
                outputs = read_json_record(record, "a run record").get("outputs")
            except MfrError:
                outputs = None
            if isinstance(outputs, dict):
                try:
                    rel = path.relative_to(folder).as_posix()
                except ValueError:
                    rel = None
                if isinstance(outputs.get(rel), str):
                    return outputs[rel], record
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def check_recorded(path: str | Path) -> Path:
    """`path`, after checking that its bytes are those its run recorded (see the module
    docstring); InputError naming it and the record otherwise. A missing file is left to the
    caller's own message. :class:`ChangedOutputError` is an InputError (a ValueError)."""
    path = Path(path)
    found = recorded_digest(path)
    if found is None or not path.is_file():
        return path
    digest, record = found
    now = file_digest(path)
    if now != digest:
        raise ChangedOutputError(f"{path}: changed since its run wrote it (sha256 {now[:12]}..., "
                         f"{record} records {digest[:12]}...); its numbers would not be the "
                         f"run's: run that step again (--force) to remake it")
    return path
