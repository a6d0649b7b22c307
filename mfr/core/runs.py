"""Run folders as read back: one guarded reader of ``run.json``, the study folder layout, and
the discovery of a study's settings that the evaluation, Grad-CAM and the report share.

:mod:`mfr.core.provenance` writes ``run.json``; this module reads it. A study folder::

    DIR/partition/              pair CSVs (`mfr partition`)
    DIR/cache/                  image cache
    DIR/baseline/               an `mfr embed` run folder (run.json "command": "embed")
    DIR/train_N<N>/             an `mfr train` run folder per N (run.json "trainable_layers")
    DIR/train_N<N>_s<seed>/     the same N trained with another seed (`mfr study --seeds`)
    DIR/evaluation/, DIR/gradcam/, ...   written by the later steps

Settings are found by their run.json, whatever the folder names (:func:`discover_study`);
:func:`setting_dir_name` is the one place the folder names above are made, and
:func:`parse_setting_dir` reads them back.

Seeds: a fine-tuned N trained with the study's seed (the baseline's) is setting ``N<n>``; the
same N with another seed is ``N<n>_s<seed>``, a *replicate* (see :mod:`mfr.evaluation.setting_metrics`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mfr.core.errors import InputError, MissingError
from mfr.core.run_record import RUN_FILE, RunRecord, random_init, read_json_record, read_run

if TYPE_CHECKING:
    from mfr.core.config import StudyConfig

__all__ = [
    "RESERVED",
    "RUN_FILE",
    "RunRecord",
    "Setting",
    "SettingDir",
    "Study",
    "discover_settings",
    "discover_study",
    "parse_setting_dir",
    "random_init",
    "read_json_record",
    "read_run",
    "read_setting",
    "setting_dir_name",
    "setting_label",
]

#: study sub-folders that never hold a setting
RESERVED = ("partition", "cache", "evaluation")


# --------------------------------------------------------------------------- folder names


class SettingDir(NamedTuple):
    """What a setting's folder name says (:func:`parse_setting_dir`)."""

    trainable_layers: int
    seed: int | None = None
    backbone: str | None = None


#: a backbone in a folder name: lower-case words joined by _, not read as a seed (s<digits>)
_BACKBONE = r"(?!s(?:\d|_|$))[a-z][a-z0-9]*(?:_[a-z0-9]+)*?"
_DIR = re.compile(rf"train_N(\d+)(?:_({_BACKBONE}))?(?:_s(\d+))?")


def setting_dir_name(trainable_layers: int, seed: int | None = None,
                     backbone: str | None = None) -> str:
    """A fine-tuned setting's run folder in a study: ``train_N<N>``, ``train_N<N>_s<seed>`` for
    a seed replicate, ``train_N<N>_<backbone>[_s<seed>]`` when the backbone is named (None:
    the study's one backbone, not in the name). :func:`parse_setting_dir` reads it back."""
    n = int(trainable_layers)
    if n < 0:
        raise ValueError(f"trainable_layers must be >= 0, got {n}")
    name = f"train_N{n}"
    if backbone is not None:
        if not re.fullmatch(_BACKBONE, backbone) or re.search(r"_s\d+$", backbone):
            raise ValueError(f"backbone {backbone!r} cannot be part of a folder name "
                             f"(lower-case words joined by _, none read as a seed s<digits>)")
        name += f"_{backbone}"
    if seed is not None:
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0 in a folder name, got {seed}")
        name += f"_s{int(seed)}"
    return name


def parse_setting_dir(name: str) -> SettingDir | None:
    """The inverse of :func:`setting_dir_name`; None for any other name."""
    m = _DIR.fullmatch(name)
    if m is None:
        return None
    n, backbone, seed = m.groups()
    return SettingDir(int(n), None if seed is None else int(seed), backbone)


# --------------------------------------------------------------------------- settings


def setting_label(setting: str | int, random_init: bool = False, backbone: str | None = None,
                  weights: str | None = None) -> str:
    """A setting's name in tables and figures (the backbone's
    :meth:`~mfr.backbones.base.Backbone.setting_label`: "SENet50 pre-trained" / "last N
    layers", "... random init" / "(random init)", "weights x.h5" for a run from another
    weights file); `backbone`: the name a run record gives (default: the thesis's)."""
    from mfr.backbones import DEFAULT_BACKBONE, get_backbone

    return get_backbone(backbone or DEFAULT_BACKBONE).setting_label(setting, random_init, weights)


@dataclass(frozen=True)
class Setting:
    """One network of a study: the baseline (`mfr embed`), a fine-tuned N (`mfr train`), or a
    bare core built from a config (``record`` None, ``kind`` "core": Grad-CAM of the weights)."""

    key: str  # the evaluation's name: an embed run's folder name, "N<n>" or "N<n>_s<seed>"
    name: str  # the run folder's name (Grad-CAM's tables), "core" for a bare core
    label: str  # setting_label, ", seed <seed>" added for a replicate
    kind: str  # "embed" | "train" | "core"
    run_dir: Path | None = None
    record: RunRecord | None = None
    n_layers: int = 0  # trained layers; 0 for an embed run or a core
    random_init: bool = False
    seed: int | None = None  # its config's seed
    replicate: bool = False  # another seed of a fine-tuned N (key N<n>_s<seed>)
    core_config: StudyConfig | None = None  # a bare core's config

    @property
    def run(self) -> Mapping[str, Any]:
        """Its whole run.json ({} for a bare core)."""
        return self.record.data if self.record is not None else {}

    @property
    def report_key(self) -> str | int:
        """The setting as :mod:`mfr.report.thesis_tables` names it ("pre-trained" or N)."""
        return self.n_layers if self.kind == "train" else "pre-trained"

    @property
    def trainable_layers(self) -> int | None:
        return self.n_layers if self.kind == "train" else None

    @property
    def config(self) -> StudyConfig:
        """Its :class:`~mfr.core.config.StudyConfig`: the run's (run.json), or the core's."""
        if self.core_config is not None:
            return self.core_config
        from mfr.core.config import StudyConfig

        if self.record is None:
            raise InputError(f"setting {self.key}: neither a run folder nor a config")
        try:
            return StudyConfig().replace(**self.record.config)
        except ValueError as e:
            raise InputError(f"{self.record.path}: {e}") from None

    @classmethod
    def core(cls, config: StudyConfig, name: str = "core") -> Setting:
        """A bare core of `config` (its weights; None: seeded random init)."""
        return cls(name, name, setting_label("pre-trained", config.weights is None,
                                             config.backbone, config.weights), "core",
                   random_init=config.weights is None, seed=config.seed, core_config=config)


def _setting(run_dir: Path, record: RunRecord, name: str) -> Setting | None:
    """The setting of an embed or train run (None for a run of another command)."""
    seed = record.config.get("seed")
    rnd = random_init(run_dir)
    weights = record.config.get("weights")
    if record.is_embed:
        return Setting(name, name, setting_label("pre-trained", rnd, record.backbone, weights),
                       "embed", run_dir, record, 0, rnd, seed)
    if record.is_train:
        n = record.trainable_layers or 0
        return Setting(f"N{n}", name, setting_label(n, rnd, record.backbone, weights), "train",
                       run_dir, record, n, rnd, seed)
    return None


def read_setting(run_dir: str | Path, name: str | None = None) -> Setting:
    """The setting of one `mfr embed` or `mfr train` run folder (one-line errors)."""
    run_dir = Path(run_dir)
    what = "a run folder of `mfr embed` or `mfr train`"
    record = read_run(run_dir, what)
    if "config" not in record.data:
        raise InputError(f"{record.path}: expected a 'config' ({what})")
    s = _setting(run_dir, record, name or run_dir.name)
    if s is None:
        raise InputError(f"{record.path}: neither an `mfr embed` run (\"command\": \"embed\") "
                         f"nor an `mfr train` run (trainable_layers)")
    _ = s.config  # a config StudyConfig refuses: the one-line error now, naming the run.json
    return s


@dataclass
class Study:
    """What :func:`discover_study` found in a study folder."""

    root: Path
    partition_dir: Path | None
    settings: list[Setting]
    missing: list[dict[str, str]]
    incomplete: list[dict[str, str]]


def _entry(setting: str, path: Path, reason: str) -> dict[str, str]:
    return {"setting": setting, "path": str(path), "reason": reason}


#: why a found setting cannot be used (None: it can); see :func:`discover_study`
Check = Callable[[Setting], "str | None"]


def finished(s: Setting) -> str | None:
    """The evaluation's check: the run finished and wrote its distances."""
    if s.record is not None and s.record.status in ("running", "failed"):
        return f"its {RUN_FILE} says status {s.record.status}: the run did not finish"
    if not (s.run_dir / "distances.csv").is_file():
        return "no distances.csv: the run did not finish"
    return None


def discover_study(study_dir: str | Path, usable: Check | None = finished) -> Study:
    """The partition and the settings of a study folder (see the module docstring).

    Every sub-folder (but :data:`RESERVED`) whose run.json is an embed or a train run is a
    setting; folders in name order, so that of two run folders of one setting the first is
    taken. `usable` says why a setting cannot be used (listed in ``incomplete``, and skipped);
    default :func:`finished`; None takes every run. A setting the study's configs ask for
    (their ``trainable_layers``, and the ledger's ``seeds``) with no usable run folder is
    listed in ``missing``. Settings are sorted: embed runs, then N ascending, the study seed's
    run before its replicates (by seed).

    Raises :class:`MissingError` when `study_dir` is not a folder, :class:`InputError` for a
    run.json that is not a JSON object; everything else that is absent is listed.
    """
    root = Path(study_dir)
    if not root.is_dir():
        raise MissingError(f"{root}: study folder not found (expected partition/, "
                           f"baseline/ from `mfr embed`, train_N<N>/ from `mfr train`)")
    missing: list[dict[str, str]] = []
    incomplete: list[dict[str, str]] = []
    study_seed, ledger_seeds = _study_seeds(root)
    part = root / "partition"
    partition_dir = part if (part / "test.csv").is_file() else None
    if partition_dir is None:
        missing.append(_entry("partition", part, "no test.csv from `mfr partition`"))
    found: list[Setting] = []
    configs: list[dict[str, Any]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in RESERVED):
        if not (sub / RUN_FILE).is_file():
            if sub.name == "baseline" or sub.name.startswith("train_N"):
                incomplete.append(_entry(sub.name, sub, f"no {RUN_FILE}: the run did not finish"))
            continue
        s = _setting(sub, read_run(sub), sub.name)
        if s is None:
            continue
        if s.kind == "train" and _is_replicate(s, found, study_seed):
            s = Setting(f"N{s.n_layers}_s{s.seed}", s.name, f"{s.label}, seed {s.seed}",
                        s.kind, s.run_dir, s.record, s.n_layers, s.random_init, s.seed, True)
        why = usable(s) if usable is not None else None
        if why is not None:
            incomplete.append(_entry(s.key, sub, why))
            continue
        if any(f.key == s.key for f in found):
            incomplete.append(_entry(s.key, sub, f"a second run folder of setting {s.key}; "
                                                 f"the first in name order is evaluated"))
            continue
        found.append(s)
        configs.append({"kind": s.kind, **s.run.get("config", {})})
    if not any(s.kind == "embed" for s in found):
        missing.append(_entry("baseline", root / "baseline",
                              "no `mfr embed` run folder (run.json with \"command\": \"embed\")"))
    # the settings asked for: the training runs' configs, else the study's ledger, else the
    # baseline's (a run records only the fields its command uses: see StudyConfig.used_by)
    ledger = _ledger_config(root)
    train_cfgs = ([c for c in configs if c["kind"] == "train"]
                  or ([ledger] if "trainable_layers" in ledger else configs))
    expected = sorted({int(n) for c in train_cfgs for n in c.get("trainable_layers", [])})
    have = {s.key for s in found if s.kind == "train"}
    unfinished = {e["setting"] for e in incomplete}
    extra = [x for x in ledger_seeds if x != study_seed]
    for n in expected:
        for key, folder, why in [(f"N{n}", setting_dir_name(n), "trainable_layers"),
                                 *((f"N{n}_s{x}", setting_dir_name(n, x), "trainable_layers x "
                                    "seeds") for x in extra)]:
            if key not in have and key not in unfinished and folder not in unfinished:
                missing.append(_entry(key, root / folder,
                                      f"asked for by the study's config ({why}) but no `mfr "
                                      f"train` run folder"))
    found.sort(key=lambda s: (s.kind != "embed", s.n_layers, s.replicate, s.seed or 0, s.key))
    return Study(root, partition_dir, found, missing, incomplete)


def discover_settings(study_dir: str | Path, usable: Check | None = finished) -> list[Setting]:
    """The settings of a study folder, in the evaluation's order (:func:`discover_study`)."""
    return discover_study(study_dir, usable).settings


def _ledger_config(root: Path) -> dict[str, Any]:
    """The config of the study's ledger (``study.json`` of `mfr study`), or {} without one."""
    ledger = root / "study.json"
    if not ledger.is_file():
        return {}
    return dict(read_json_record(ledger, "the ledger of `mfr study`").get("config", {}))


def _study_seeds(root: Path) -> tuple[int | None, list[int]]:
    """The study's seed (its baseline's config seed, else its ledger's) and the extra seeds
    its ledger (``study.json`` of `mfr study`) asks for."""
    config = _ledger_config(root)
    seed = None
    if (root / "baseline" / RUN_FILE).is_file():
        seed = read_run(root / "baseline", "`mfr embed`").config.get("seed")
    return (seed if seed is not None else config.get("seed")), list(config.get("seeds", []))


def _is_replicate(s: Setting, found: Sequence[Setting], study_seed: int | None) -> bool:
    """A fine-tuned run is a replicate when its seed is not the study's; with no study seed
    known, when a run of its N with another seed came first (in folder-name order)."""
    if study_seed is not None:
        return s.seed is not None and s.seed != study_seed
    return any(f.kind == "train" and f.n_layers == s.n_layers and not f.replicate
               and f.seed != s.seed for f in found)
