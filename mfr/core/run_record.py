"""The one guarded reader of run records: ``run.json`` (:class:`RunRecord`) and the other JSON
objects a run leaves (summary.json, the study ledger).

Kept apart from :mod:`mfr.core.runs` (which re-exports it) because :mod:`mfr.core.provenance`, the
writer, reads through it too, and must not depend on the backbones that the study layout's
labels need.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfr.core.errors import InputError, MfrError, MissingError

__all__ = ["RUN_FILE", "RunRecord", "random_init", "read_json_record", "read_run"]

RUN_FILE = "run.json"


def read_json_record(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON file that must hold one object (a run record, a ledger, a summary).

    `what` says what the file should be ("the run.json of `mfr train`"); every failure is one
    line naming the file and it: absent (:class:`MissingError`), unreadable, not JSON or not a
    JSON object (:class:`InputError`).
    """
    import stat

    path = Path(path)
    try:  # a FIFO or a device would block the read: refused before it
        mode = path.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise InputError(f"{path}: not a regular file (expected {what})")
    except OSError:
        pass  # absent or unreadable: said below
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingError(f"{path}: not found (expected {what})") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a folder, not a file (expected {what})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (expected {what}, JSON)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror}; expected {what})") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e}); expected {what}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: holds a JSON {type(data).__name__}, expected {what} "
                         f"(a JSON object)")
    return data


@dataclass(frozen=True)
class RunRecord(Mapping):
    """What a run folder's ``run.json`` says (written by :mod:`mfr.core.provenance`).

    The named fields are those every step writes; ``data`` is the whole record, step details
    included (``trainable_layers``, ``pairs_dir``, ``cache_dir``, ``data_root``, ...); the
    record reads as that mapping too (``record["fingerprint"]``, ``record.get("status")``).
    The record holds no times: run.json deliberately has none (byte-identical reruns).
    """

    path: Path  # the run.json
    command: str | None
    status: str | None  # "running" | "complete" | "failed"; None for records from before provenance
    config: Mapping[str, Any]
    fingerprint: Any
    outputs: Mapping[str, str]  # output file -> sha256, on completion
    versions: Mapping[str, Any]
    data: Mapping[str, Any] = field(repr=False)

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def trainable_layers(self) -> int | None:
        """N of a fine-tuning run; None for any other."""
        n = self.data.get("trainable_layers")
        return None if n is None else int(n)

    @property
    def is_train(self) -> bool:
        return self.command == "train" or "trainable_layers" in self.data

    @property
    def is_embed(self) -> bool:
        return self.command == "embed"

    @property
    def backbone(self) -> str:
        """The run's backbone; a record without one was made before there were others: the
        thesis's."""
        from mfr.backbones import DEFAULT_BACKBONE

        return str(self.config.get("backbone", DEFAULT_BACKBONE))

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the record (``data.get``)."""
        return self.data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:  # a record is there, even an empty one
        return True


def read_run(run_dir: str | Path, what: str = "a run folder of mfr", *,
             lenient: bool = False) -> RunRecord | None:
    """The run folder's ``run.json`` as a :class:`RunRecord` -- the one reader of run records:
    a one-line error naming the file when it is absent, not JSON, not an object, or its config
    is not an object; with `lenient` (the look-up of :func:`mfr.core.provenance.claim`, where
    such a folder is "foreign"), None instead."""
    if lenient:
        try:
            return read_run(run_dir, what)
        except MfrError:
            return None
    path = Path(run_dir) / RUN_FILE
    data = read_json_record(path, f"the {RUN_FILE} of {what}")
    config = data.get("config", {})
    if not isinstance(config, dict):
        raise InputError(f"{path}: its 'config' is a JSON {type(config).__name__}, expected an "
                         f"object (the {RUN_FILE} of {what})")
    outputs = data.get("outputs") or {}
    versions = data.get("versions") or {}
    return RunRecord(path, data.get("command"), data.get("status"), config,
                     data.get("fingerprint"), outputs if isinstance(outputs, dict) else {},
                     versions if isinstance(versions, dict) else {}, data)


def random_init(run_dir: str | Path) -> bool:
    """Whether a run folder's network started from random weights: its summary.json's or
    run.json's ``random_weights``, else its run.json config's ``weights`` being null."""
    for name in ("summary.json", RUN_FILE):
        path = Path(run_dir) / name
        if path.is_file():
            meta = read_json_record(path, f"the {name} of a run folder")
            if "random_weights" in meta:
                return bool(meta["random_weights"])
            config = meta.get("config")
            if name == RUN_FILE and isinstance(config, dict) and "weights" in config:
                return config["weights"] is None
    return False
