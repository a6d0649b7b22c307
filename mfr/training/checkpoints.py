"""Per-epoch training checkpoints: the trainable weights, the optimizer's state and the history.

One ``.npz`` per completed epoch, ``<out_dir>/checkpoints/epoch_<E>.npz`` (E 1-based), written
atomically. By default only the latest is kept (one checkpoint of N=30 with Adam is ~79 MB);
the final weights also go to ``final_trainable.h5``. A checkpoint records the fingerprint of the
run that made it, and is only resumed by a run with the same fingerprint; ``checkpoints.json``
beside them records each one's sha256 as it was saved, and a checkpoint whose bytes differ
(swapped, edited) is refused when it is resumed from, naming it.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mfr.core.errors import InputError, MfrError
from mfr.core.outputs import atomic_path, write_json
from mfr.core.provenance import differences, file_digest
from mfr.core.run_record import read_json_record

__all__ = ["CHECKPOINT_FORMAT", "latest_checkpoint", "load_checkpoint", "read_checkpoint_meta",
           "save_checkpoint"]

CHECKPOINT_FORMAT = 1
#: the sha256 of each checkpoint as it was saved, beside them
RECORD = "checkpoints.json"


def checkpoint_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def _checkpoints(out_dir: str | Path) -> list[Path]:
    d = checkpoint_dir(out_dir)
    return sorted(d.glob("epoch_*.npz")) if d.is_dir() else []


def damage(path: str | Path) -> str | None:
    """Why the checkpoint at `path` cannot be read (truncated, a bad CRC, no metadata), or
    None when it is whole: every member is read and its CRC checked."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad is not None:
                return f"member {bad} fails its CRC check"
            if "meta.npy" not in z.namelist():
                return "no metadata (meta.npy)"
        read_checkpoint_meta(path)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        return " ".join(f"{type(e).__name__}: {e}".split())[:200]
    return None


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The whole checkpoint of the last completed epoch in `out_dir`, or None.

    A damaged one (a killed write that got renamed, a truncated copy) is set aside as
    ``<name>.damaged`` with one line on stderr naming it and what the run goes on from: the
    checkpoint before it, or the start."""
    found = _checkpoints(out_dir)
    while found:
        path = found.pop()
        why = damage(path)
        if why is None:
            return path
        aside = path.with_name(path.name + ".damaged")
        path.replace(aside)
        then = f"resuming from {found[-1].name}" if found else "starting over from epoch 1"
        print(f"WARNING: {path}: damaged checkpoint ({why}); set aside as {aside.name}, "
              f"{then}", file=sys.stderr)
    return None


def save_checkpoint(out_dir: str | Path, epoch: int, model: keras.Model, layers: list,
                    history: list[dict], fingerprint: dict[str, Any],
                    keep_all: bool = False) -> Path:
    """Write epoch `epoch`'s checkpoint; then remove the earlier ones unless `keep_all`."""
    arrays: dict[str, np.ndarray] = {}
    for layer in layers:
        for i, w in enumerate(layer.trainable_weights):
            arrays[f"w/{layer.name}/{i}"] = keras.ops.convert_to_numpy(w)
    for i, v in enumerate(model.optimizer.variables):
        arrays[f"opt/{i}"] = keras.ops.convert_to_numpy(v)
    meta = {"format": CHECKPOINT_FORMAT, "epochs_done": epoch, "history": history,
            "fingerprint": fingerprint}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    path = checkpoint_dir(out_dir) / f"epoch_{epoch:03d}.npz"
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    if not keep_all:
        for old in _checkpoints(out_dir):
            if old != path:
                old.unlink(missing_ok=True)
    write_json(checkpoint_dir(out_dir) / RECORD,
               {p.name: file_digest(p) for p in _checkpoints(out_dir)})
    return path


def check_digest(path: str | Path) -> None:
    """InputError naming a checkpoint whose bytes are not those recorded when it was saved
    (``checkpoints.json``); one the record does not list (saved before records) passes."""
    path = Path(path)
    record = path.parent / RECORD
    try:
        recorded = read_json_record(record, "the checkpoints' record").get(path.name)
    except MfrError:
        return
    if isinstance(recorded, str) and file_digest(path) != recorded:
        raise InputError(f"{path}: not the checkpoint this run saved (its sha256 differs from "
                         f"the one {record} records); delete it to start over, or --force")


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """A checkpoint's metadata: format, epochs_done, history, fingerprint."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(bytes(z["meta"]).decode())


def check_fingerprint(path: str | Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's metadata if it was made by a run with `fingerprint` and is the file it
    saved (:func:`check_digest`), else InputError."""
    check_digest(path)
    meta = read_checkpoint_meta(path)
    theirs, ours = meta.get("fingerprint"), json.loads(json.dumps(fingerprint, default=str))
    if theirs != ours:
        diff = ", ".join(differences(theirs, ours)[:6])
        raise InputError(f"{path}: checkpoint made with other settings or inputs (differs in: "
                         f"{diff}); use another output folder or the same settings")
    return meta


def load_checkpoint(path: str | Path, model: keras.Model, layers: list,
                    fingerprint: dict[str, Any]) -> tuple[int, list[dict]]:
    """Restore the trainable weights and the optimizer's state; (epochs done, history)."""
    meta = check_fingerprint(path, fingerprint)
    with np.load(path, allow_pickle=False) as z:
        for layer in layers:
            for i, w in enumerate(layer.trainable_weights):
                key = f"w/{layer.name}/{i}"
                if key not in z.files or tuple(z[key].shape) != tuple(w.shape):
                    raise InputError(f"{path}: no weight {key} of shape {tuple(w.shape)}")
                w.assign(z[key])
        opt_vars = model.optimizer.variables
        n_opt = sum(1 for k in z.files if k.startswith("opt/"))
        if n_opt != len(opt_vars):
            raise InputError(f"{path}: {n_opt} optimizer variables, expected {len(opt_vars)}")
        for i, v in enumerate(opt_vars):
            v.assign(z[f"opt/{i}"])
    return int(meta["epochs_done"]), list(meta["history"])
