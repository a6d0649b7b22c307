"""Where a verification threshold comes from: a number, a thresholds.json, or the default.

A pair is the same person when its distance is <= the threshold (as in :mod:`mfr.evaluation.setting_metrics`).
A threshold belongs to one network and one distance, so every source is checked against the
embedder it is used with, and the source is carried along in words (:class:`Threshold`):

- a number the user gave;
- a study's ``evaluation/thresholds.json`` (``mfr evaluate --study``): chosen on the study's
  validation pairs per setting (``settings -> key -> distance -> {threshold, val, test}``); the
  setting is the one whose run folder is the model's (``--model RUN``), and only while that
  run folder still holds what the evaluation read (:func:`stale_reason`, the check by which
  ``mfr evaluate`` replaces its own evaluation): a run trained again since has none;
- a dataset evaluation's ``thresholds.json`` (``mfr evaluate --data-root``): ``pair_sets ->
  name -> distance -> threshold``, chosen in-sample at the EER (said so), for the embedder it
  records;
- by default, for a ``--model RUN`` of a study, ``RUN/../evaluation/thresholds.json``; for dlib,
  face_recognition's documented default tolerance (:data:`FACE_RECOGNITION_TOLERANCE`) on its
  raw Euclidean distance. Otherwise there is no threshold, and the reason is given: no number
  is made up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfr.backbones.dlib_resnet import FACE_RECOGNITION_TOLERANCE  # dlib's fact, re-exported
from mfr.core.errors import InputError, MissingError
from mfr.core.integrity import check_recorded
from mfr.core.provenance import differences
from mfr.core.run_record import read_run

__all__ = ["FACE_RECOGNITION_TOLERANCE", "Threshold", "evaluated_run", "pair_set_order",
           "parse_threshold", "read_thresholds", "resolve_threshold", "stale_reason",
           "study_thresholds_file",
           "threshold_from_file"]

def pair_set_order() -> tuple[str, ...]:
    """Which pair set of a dataset evaluation's thresholds.json is used, first found first:
    each registered dataset's first evaluation pair set where that is one of its own (MFR2's
    masked-vs-unmasked pairs of its pairs.txt), then every masked x unmasked pair
    (:attr:`mfr.data.datasets.DatasetSpec.evaluation_pair_sets`)."""
    from mfr.data.datasets import EVERY_PAIR, dataset_names, get_dataset

    own = [spec.evaluation_pair_sets[0] for spec in map(get_dataset, dataset_names())
           if spec.evaluation_pair_sets]
    return (*dict.fromkeys(n for n in own if n != EVERY_PAIR), EVERY_PAIR)


@dataclass(frozen=True)
class Threshold:
    """A decision threshold (None: no decision) and where it came from, in words."""

    value: float | None
    source: str
    distance: str
    details: dict[str, Any] = field(default_factory=dict)  # file, setting, rule, val metrics


def parse_threshold(text: str | float | Path | None) -> float | Path | None:
    """``--threshold``'s value: a number (a float >= 0), else the path of a thresholds.json."""
    if text is None or isinstance(text, Path):
        return text
    try:
        value = float(text)
    except ValueError:
        return Path(text)
    if not math.isfinite(value) or value < 0:
        raise InputError(f"--threshold {text}: expected a distance >= 0 or a thresholds.json file")
    return value


def read_thresholds(path: str | Path) -> dict[str, Any]:
    """A thresholds.json of `mfr evaluate`, read and its shape checked (one InputError naming
    the file and the key otherwise)."""
    return _read(Path(path))


def _read(path: Path) -> dict[str, Any]:
    """A thresholds.json (:func:`mfr.core.readers.text.read_json`), its shape checked whole
    before any of it is used (:func:`_check_shape`)."""
    from mfr.core.readers.text import read_json

    if not path.exists():
        raise MissingError(f"{path}: thresholds file not found (expected the thresholds.json "
                           f"of `mfr evaluate`)")
    check_recorded(path)  # a thresholds.json of `mfr evaluate`: the bytes it recorded
    data = read_json(path, "the thresholds.json of `mfr evaluate`")
    if not ("settings" in data or "pair_sets" in data):
        raise InputError(f"{path}: not a thresholds.json of `mfr evaluate` (expected 'settings' "
                         f"or 'pair_sets')")
    _check_shape(data, path)
    return data


#: The shape of a thresholds.json: what each key holds where it is present (dict: a mapping
#: whose values have the shape given; a type or tuple of types: the value's).
class _IfMapping(dict):
    """A shape checked only where the value is a mapping (a setting's distance entries; its
    other keys hold text)."""


_TEXT, _NUMBER, _MAYBE_NUMBER = (str, type(None)), (int, float), (int, float, type(None))
_ENTRY = _IfMapping({"threshold": _MAYBE_NUMBER, "val": {"fmr": _MAYBE_NUMBER,
                                                         "fnmr": _MAYBE_NUMBER}})
_SHAPE = {"embedder": {"*": object, "run_dir": _TEXT},
          "settings": {"*": {"*": _ENTRY, "run_dir": _TEXT}},
          "pair_sets": {"*": {"*": _MAYBE_NUMBER}}}


def _check_shape(value: Any, path: Path, shape: Any = None, where: str = "") -> None:
    """InputError naming the key (``settings.train_N10.sum_squared.threshold``) whose value is
    not of the shape :data:`_SHAPE` gives it; keys it does not name are not read."""
    from mfr.core.readers.text import excerpt

    shape = _SHAPE if shape is None else shape
    if isinstance(shape, _IfMapping) and not isinstance(value, dict):
        return
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise InputError(f"{path}: {where or 'the file'} is {excerpt(value, 40)}, expected "
                             f"a mapping (a thresholds.json of `mfr evaluate`)")
        for key, item in value.items():
            sub = shape.get(key, shape.get("*"))
            if sub is not None and sub is not object:
                _check_shape(item, path, sub, f"{where}.{_name(key)}" if where else _name(key))
        return
    if isinstance(value, bool) or not isinstance(value, shape):
        want = ("a number" if shape in (_NUMBER, _MAYBE_NUMBER) else "a string")
        raise InputError(f"{path}: {where} is {excerpt(value, 40)}, expected {want} (a "
                         f"thresholds.json of `mfr evaluate`)")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{path}: {where} is {value}, expected a finite number")


def _number(value: Any, path: Path, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{path}: {where} is {_excerpt(value)}, expected a number")
    return float(value)


def study_thresholds_file(run_dir: str | Path) -> Path:
    """Where `mfr evaluate --study` puts the thresholds of the study that holds `run_dir`."""
    return Path(run_dir).parent / "evaluation" / "thresholds.json"


def _same_run(stored: str | None, run_dir: Path, path: Path) -> bool:
    """Whether a setting's recorded run folder is `run_dir`: the same folder, or (recorded
    relative to wherever `mfr evaluate` ran) a folder of the same name beside the file's
    evaluation folder."""
    if not stored:
        return False
    s = Path(stored)
    if s.exists() and s.resolve() == run_dir.resolve():
        return True
    return s.name == run_dir.name and path.parent.parent.resolve() == run_dir.parent.resolve()


def evaluated_run(run: dict[str, Any]) -> dict[str, Any]:
    """What a study's evaluation records of each run folder it read (in its fingerprint's
    ``runs``): the run's fingerprint, status and outputs' digests. The evaluation, and the
    thresholds it chose, hold while the run folder's run.json still says the same."""
    return {"fingerprint": run.get("fingerprint"), "status": run.get("status"),
            "outputs": run.get("outputs")}


def stale_reason(path: Path, run_dir: Path) -> str | None:
    """Why the study thresholds in `path` no longer hold for `run_dir` (it was trained again
    after the evaluation beside `path` read it), or None: they hold, or the evaluation has no
    record to tell (a thresholds.json on its own)."""
    evaluation = read_run(path.parent, lenient=True)
    if evaluation is None or evaluation.get("command") != "evaluate":
        return None
    runs = (evaluation.get("fingerprint") or {}).get("runs") or {}
    recorded = runs.get(run_dir.name) if isinstance(runs, dict) else None
    if recorded is None:
        return None
    now = read_run(run_dir, lenient=True)
    now = evaluated_run(now) if now is not None else {}
    changed = differences(recorded, now)
    if not changed:
        return None
    return (f"{run_dir} changed after {path} was made (its run.json's "
            f"{', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''}): the thresholds are "
            f"stale; run `mfr evaluate --study {run_dir.parent}` again")


def _excerpt(value: Any) -> str:
    from mfr.core.readers.text import excerpt

    return excerpt(value, 40)


def _name(key: Any) -> str:
    """A key of the file as a message names it: as it is when short and printable, else cut
    and escaped."""
    return key if isinstance(key, str) and key.isprintable() and len(key) <= 40 else _excerpt(key)


def _listed(keys: Any, most: int = 5) -> str:
    """A file's keys as a message quotes them: each cut and escaped, at most `most`."""

    keys = sorted(str(k) for k in keys)
    return ", ".join(_name(k) for k in keys[:most]) + (", ..." if len(keys) > most else "")


def _from_study(data: dict[str, Any], path: Path, embedder: Any, distance: str,
                default: bool = False) -> Threshold:
    settings = data["settings"]
    if not isinstance(settings, dict):
        raise InputError(f"{path}: 'settings' is not a mapping")
    from mfr.backbones import BACKBONES

    if embedder.name not in BACKBONES:  # a study's thresholds are its backbone's
        raise InputError(f"{path}: a study's thresholds are its backbone's (its settings "
                         f"{_listed(settings)}), not {embedder.name}'s")
    run_dir = getattr(embedder, "run_dir", None)
    if run_dir is None:
        raise InputError(f"{path}: holds the thresholds of a study's settings "
                         f"({_listed(settings)}); give --model RUN to say which network")
    key = next((k for k, v in sorted(settings.items())
                if isinstance(v, dict) and _same_run(v.get("run_dir"), Path(run_dir), path)),
               None)
    if key is None:
        raise InputError(f"{path}: no setting of {run_dir} (it has "
                         f"{_listed(settings)}); evaluate the study again")
    stale = stale_reason(path, Path(run_dir))
    if stale is not None:
        if not default:  # the file was named: refused, not used
            raise InputError(stale)
        return Threshold(None, f"no calibrated threshold: {stale}, or give --threshold",
                         distance, {"file": str(path), "setting": key, "stale": True})
    entry = settings[key]
    label = entry.get("label", key)
    where = f"{path}, setting {_name(key)} ({label})"
    d = entry.get(distance)
    if not isinstance(d, dict) or d.get("threshold") is None:
        why = (d or {}).get("null_reason") if isinstance(d, dict) else entry.get("null_reason")
        return Threshold(None, f"no threshold in {where}: {why or f'no {distance} entry'}",
                         distance, {"file": str(path), "setting": key})
    value = _number(d["threshold"], path, f"settings.{_name(key)}.{distance}.threshold")
    val = d.get("val") or {}
    rule = d.get("rule", data.get("rule"))
    rates = (f"; on them FMR {val['fmr']:.3f}, FNMR {val['fnmr']:.3f}"
             if all(isinstance(val.get(k), int | float) for k in ("fmr", "fnmr")) else "")
    return Threshold(value, f"calibrated on the validation pairs of {where}, rule {rule}{rates}",
                     distance, {"file": str(path), "setting": key, "label": label, "rule": rule,
                                "val": val, "test": d.get("test")})


#: what must agree between the embedder a dataset threshold was chosen for and the one in use
_MATCH = ("name", "weights", "preprocessing", "pooling", "image_size", "landmarks")


def _from_dataset(data: dict[str, Any], path: Path, embedder: Any, distance: str) -> Threshold:
    sets = data["pair_sets"]
    if not isinstance(sets, dict) or not sets:
        raise InputError(f"{path}: 'pair_sets' is empty or not a mapping")
    made = data.get("embedder") or {}
    now = embedder.describe()
    differ = [k for k in _MATCH if k in made and made.get(k) != now.get(k)]
    run_made, run_now = made.get("run_dir"), now.get("run_dir")
    if (run_made is None) != (run_now is None) or (
            run_made is not None and Path(run_made).name != Path(run_now).name):
        differ.append("run_dir")
    if differ:
        k = differ[0]
        raise InputError(f"{path}: thresholds of another model ({k} {_excerpt(made.get(k))}, "
                         f"here {_excerpt(now.get(k))}); use the thresholds.json of this model's evaluation")
    name = next((n for n in pair_set_order() if n in sets), sorted(sets)[0])
    table = sets[name]
    if not isinstance(table, dict) or table.get(distance) is None:
        raise InputError(f"{path}: pair set {_name(name)} has no {distance} threshold (it has "
                         f"{(_listed(table) or 'nothing') if isinstance(table, dict) else _excerpt(table)})")
    value = _number(table[distance], path, f"pair_sets.{_name(name)}.{distance}")
    rule = data.get("rule", "eer")
    return Threshold(value, f"{path}, pair set {_name(name)}: rule {rule}, chosen in-sample on that "
                            f"pair set (a dataset evaluation has no validation split)",
                     distance, {"file": str(path), "pair_set": name, "rule": rule})


def threshold_from_file(path: str | Path, embedder: Any, distance: str,
                        default: bool = False) -> Threshold:
    """The threshold for `embedder` (an :class:`mfr.backbones.embedders.Embedder`) and `distance` in a
    thresholds.json of `mfr evaluate` (a study's or a dataset evaluation's). Stale study
    thresholds are refused, or, for the `default` file (not one the user named), no
    threshold with the reason."""
    path = Path(path)
    data = _read(path)
    if "settings" in data:
        return _from_study(data, path, embedder, distance, default)
    return _from_dataset(data, path, embedder, distance)


def resolve_threshold(spec: float | str | Path | None, embedder: Any,
                      distance: str | None = None) -> Threshold:
    """The threshold to decide with (see the module docstring): `spec` a number, a
    thresholds.json path, or None for the default of `embedder` (its ``run_dir``'s study
    calibration; dlib's documented tolerance; else no threshold, with the reason)."""
    distance = distance or embedder.default_distance
    spec = parse_threshold(spec) if isinstance(spec, str) else spec
    if isinstance(spec, int | float):
        return Threshold(float(spec), "given (--threshold)", distance)
    if spec is not None:
        return threshold_from_file(spec, embedder, distance)
    run_dir = getattr(embedder, "run_dir", None)
    if run_dir is not None:
        path = study_thresholds_file(run_dir)
        if path.is_file():
            return threshold_from_file(path, embedder, distance, default=True)
        return Threshold(None, f"no calibrated threshold: {path} not found (run `mfr evaluate "
                               f"--study {Path(run_dir).parent}`, or give --threshold)", distance)
    from mfr.backbones.embedders import documented_threshold

    documented = documented_threshold(embedder.name)
    if documented is not None and documented[0] == distance:
        return Threshold(float(documented[1]), documented[2], distance)
    return Threshold(None, f"no calibrated threshold for {embedder.name} without --model RUN "
                           f"(a study's run folder); give --threshold VALUE or FILE", distance)
