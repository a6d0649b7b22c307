"""The one home of the study's hyperparameters.

`StudyConfig` holds the thesis's values as defaults (THESIS.md, Table 4.3 and Chapter 4.2).
A profile in `configs/<name>.yaml` overrides some of them; papermill parameters and CLI flags
override a profile. A setting has one name everywhere: the field name here is the YAML key, the
notebook parameter, and the CLI flag (``learning_rate`` -> ``--learning-rate``; see
:func:`mfr.commands._common.add_config_flags`). Values are checked when they are set, so a
wrong type fails at once, naming the key. Every output records the config that made it
(`to_dict`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfr.backbones import backbone_names, get_backbone
from mfr.core.errors import InputError, MissingError
from mfr.core.readers.text import excerpt
from mfr.training.losses import DEFAULT_LOSS, LOSSES, loss_params

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def data_home() -> Path:
    """Where datasets live: ``$MFR_DATA``, default ``~/mfr_data`` (a profile's ``data_root``
    may start with ``$MFR_DATA``)."""
    return Path(os.environ.get("MFR_DATA") or "~/mfr_data").expanduser()

THESIS_TRAINABLE_LAYERS = (10, 20, 30, 40, 50, 60, 70)


def _network_choices() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str, str, str]:
    """The registered backbones, their preprocessing modes and face boxes, and the help text
    of the three fields, from the backbones' facts (:mod:`mfr.backbones`)."""
    nets = [get_backbone(n) for n in backbone_names()]
    modes = tuple(dict.fromkeys(p.name for b in nets for p in b.facts.preprocessing))
    boxes = tuple(dict.fromkeys(x for b in nets for x in b.facts.face_boxes))
    backbone_help = "the face network (mfr.backbones): " + "; ".join(
        f"{b.name} ({b.facts.label})" for b in nets)
    prep_help = "the network's input preprocessing (default: the backbone's first): " + "; ".join(
        f"{b.name}: {', '.join(b.facts.preprocessing_names)}" for b in nets)
    box_help = ("a face-aligning backbone: where its landmarks are found (default: the "
                "backbone's first): " + "; ".join(f"{b.name}: {', '.join(b.facts.face_boxes)}"
                                                  for b in nets if b.facts.face_boxes)
                + " (crop: the cached image is the face; mtcnn needs TensorFlow)")
    return tuple(b.name for b in nets), modes, boxes, backbone_help, prep_help, box_help


(_BACKBONES, _PREPROCESSING, _FACE_BOXES, _BACKBONE_HELP, _PREPROCESSING_HELP,
 _FACE_BOX_HELP) = _network_choices()


#: the largest seed: numpy's and scikit-learn's random_state take 0..2**32-1
MAX_SEED = 2**32 - 1
#: the most values a list field (trainable_layers, seeds) takes: each is a training run
MAX_LIST = 100


def _f(default: Any, doc: str, choices: tuple | None = None, minimum: float | None = None,
       maximum: float | None = None, above: float | None = None,
       below: float | None = None) -> Any:
    """A config field: its help, its choices, and its range (``minimum``/``maximum``
    inclusive, ``above``/``below`` exclusive; a number field must also be finite)."""
    return field(default=default, metadata={"help": doc, "choices": choices, "minimum": minimum,
                                            "maximum": maximum, "above": above, "below": below})


class ConfigValueError(InputError):
    """A config value that is not what its key takes; `key` names the field and `detail` says
    what was expected (the CLI names the flag, a profile its file)."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"config key {key}: {detail}")
        self.key, self.detail = key, detail


# What each command's run.json records of the config (StudyConfig.used_by): the settings its
# results depend on and those its outputs report, no other backbone's, loss's or step's.
_WHO = ("profile", "backbone", "seed")
_IMAGES = ("data_root", "image_size", "decoder")
_NETWORK = ("weights", "embed_batch_size", "data_parallel", "precision")
_TRAINING = ("loss", "optimizer", "learning_rate", "momentum", "batch_size", "epochs",
             "trainable_layers", "seeds", "trunk_cache", "steps_per_execution",
             "keep_all_checkpoints")
COMMAND_FIELDS: dict[str, tuple[str, ...]] = {
    "partition": _WHO + ("data_root", "protocol", "max_per_subject", "train_val_fraction",
                         "val_size", "synthetic_masks", "synthetic_kinds"),
    "embed": _WHO + _IMAGES + _NETWORK,
    "train": _WHO + _IMAGES + _NETWORK + _TRAINING,
    # a study's evaluation reads stored distances; a dataset's embeds its pair sets first
    "evaluate": _WHO + _IMAGES + _NETWORK + ("max_per_subject", "bootstrap_resamples",
                                             "threshold_rule"),
    "gradcam": _WHO + _IMAGES + ("weights", "gradcam_images", "precision"),
    # a dataset embedded by another network than the config's backbone (`mfr evaluate
    # --embedder dlib_reference`): the embedder's own facts are recorded beside, not the backbone's
    "evaluate_embedder": ("profile", "seed", "data_root", "max_per_subject", "embed_batch_size",
                          "precision", "bootstrap_resamples", "threshold_rule"),
}

def _with_loss_params(cls: type) -> type:
    """Each loss's hyperparameters (:func:`mfr.training.losses.loss_params`: they live with the
    loss's entry) as fields of the config, right after ``loss``: YAML keys, notebook parameters
    and ``--flags`` like every other field."""
    annotations: dict[str, Any] = {}
    for name, hint in cls.__annotations__.items():
        annotations[name] = hint
        if name == "loss":
            for p in loss_params():
                annotations[p.name] = "float"
                setattr(cls, p.name, _f(float(p.default), p.help, minimum=p.minimum,
                                        maximum=p.maximum, above=p.above, below=p.below))
    cls.__annotations__ = annotations
    return cls


@dataclass(frozen=True)
@_with_loss_params
class StudyConfig:
    """Hyperparameters of one study run; defaults are the thesis's."""

    profile: str = _f("thesis", "name of the profile these values came from")
    # data and partition (Chapter 4.2)
    data_root: str | None = _f(None, "the dataset folder (RMFRD, or MFR2)")
    protocol: str = _f("thesis", "thesis (its quirks), balanced (corrected), all_pairs "
                                 "(balanced with every test pair) or identity (pairs by "
                                 "identity, any mask: MLFW; mfr.data.partition)",
                       ("thesis", "balanced", "all_pairs", "identity"))
    max_per_subject: int = _f(20, "images per subject and side (0: all; at most 1000000, far "
                                  "above any dataset's largest subject)", minimum=0,
                              maximum=1_000_000)
    train_val_fraction: float = _f(0.8, "fraction of the subjects for train+validation",
                                  above=0.0, maximum=1.0)
    val_size: float = _f(0.2, "fraction of the train+validation pairs for validation",
                        above=0.0, below=1.0)
    synthetic_masks: str = _f("none", "train pairs with synthetic masked partners drawn on the "
                              "train+validation subjects' unmasked images (mfr.data."
                              "synthetic_partners): none, add (to the real ones) or replace "
                              "(them); validation and test pairs stay real",
                              ("none", "add", "replace"))
    synthetic_kinds: str = _f("surgical,cloth,n95,kn95", "the synthetic masks' kinds, comma-"
                              "separated (mfr.data.masks.MASK_KINDS)")
    seed: int = _f(2021, "random_state of the partition, seed of training and random init", minimum=0,
                   maximum=MAX_SEED)
    # model and input (Table 4.3)
    image_size: int = _f(224, "input size of the network, in pixels (at least the "
                                       "backbone's smallest; at most 1024: 21 times the "
                                       "thesis's 224x224 pixels, 3 MB an image in the cache)",
                         minimum=1, maximum=1024)
    decoder: str = _f("pil", "image decoder: pil, or tf (the thesis's exact JPEG decode, needs "
                             "TensorFlow; ~1.4 grey levels from PIL's)", ("pil", "tf"))
    preprocessing: str = _f("thesis", _PREPROCESSING_HELP, _PREPROCESSING)
    backbone: str = _f("senet50", _BACKBONE_HELP, _BACKBONES)
    pooling: str = _f("avg", "final global pooling of SENet50", ("avg", "max"))
    face_box: str | None = _f(None, _FACE_BOX_HELP, _FACE_BOXES)
    weights: str | None = _f("vggface2", "the backbone's released weights (" + ", ".join(
        f"{get_backbone(n).facts.weights.name} for {n}" for n in _BACKBONES) + "; vggface2 means "
        "the released ones of any backbone), a weights file, or none (random init, seeded: "
        "offline demo only)")
    # Siamese training (Eq. 3.4, Table 4.3)
    loss: str = _f(DEFAULT_LOSS, "the training loss (mfr.training.losses): contrastive (Eq. 3.4, the "
                                  "thesis's, on pairs; its margin is margin); on P subjects x K "
                                  "images per batch: triplet (batch-hard), arcface, cosface "
                                  "(a class-margin head on the training subjects), dlib_metric "
                                  "(dlib's loss_metric)", tuple(LOSSES))
    optimizer: str = _f("sgd", "optimizer", ("sgd", "adam", "rmsprop"))
    learning_rate: float = _f(1e-5, "learning rate (0: the weights stay as they are; "
                                     "fine-tuning rates are 1e-5..1e-2, random weights' "
                                     "gradients are small enough to want more; at most 100)",
                              minimum=0.0, maximum=100.0)
    momentum: float = _f(0.0, "momentum (sgd, rmsprop)", minimum=0.0, below=1.0)
    batch_size: int = _f(32, "training pairs per SGD step (at most 4096: 8192 face images "
                             "through the network at once)", minimum=1, maximum=4096)
    epochs: int = _f(8, "epochs per setting (at most 10000)", minimum=1, maximum=10_000)
    trainable_layers: tuple[int, ...] = _f(THESIS_TRAINABLE_LAYERS,
                                           "N: train the last N layers (BatchNormalization stays "
                                           "frozen); a comma list runs several (at most 100 "
                                           "values, each within the backbone's layers)",
                                           minimum=1)
    # evaluation (mfr evaluate)
    bootstrap_resamples: int = _f(1000, "bootstrap resamples (over subjects) for the 95% "
                                        "confidence intervals (0: none; at most 100000, 100 "
                                        "times the default: each resample recomputes every "
                                        "metric)", minimum=0, maximum=100_000)
    threshold_rule: str = _f("eer", "decision threshold chosen on the validation pairs: at the "
                                    "EER, or at FMR 1% / 0.1%",
                             ("eer", "fmr_1pct", "fmr_0_1pct"))
    # the study runner (mfr study)
    sample_subjects: int = _f(12, "subjects of the generated sample, when a profile has no "
                                  "data_root (the offline demo; at most 1000)", minimum=2,
                              maximum=1000)
    gradcam_images: int = _f(5, "genuine test pairs whose Grad-CAM maps the study shows (at "
                                 "most 1000: each is a map and a figure)", minimum=1,
                             maximum=1000)
    table_5_2_pairs: str | None = _f(None, "a CSV of photo pairs (image_a,image_b[,label]) the "
                                           "study verifies as the thesis's Table 5.2; test: "
                                           "five genuine and five impostor photo pairs of the "
                                           "study's test split; none: drawn faces (only for a "
                                           "study of a generated sample)")
    seeds: tuple[int, ...] = _f((), "more seeds: each fine-tuning setting runs again per seed "
                                    "(train_N<N>_s<seed>), the evaluation reports the spread "
                                    "across seeds; empty: just the seed; at most 100 seeds: "
                                    "each is a training run per setting", minimum=0,
                                maximum=MAX_SEED)
    # speed and storage (do not change results)
    trunk_cache: bool = _f(True, "compute the frozen trunk once per image (off: the thesis's "
                                 "way, both full twins per pair and step; same results, slower)")
    embed_batch_size: int = _f(64, "images per forward pass when embedding (speed and memory; "
                                   "the float sums change order with it, so the distances may "
                                   "differ in their last digit: part of a run's fingerprint; at most 4096)",
                               minimum=1, maximum=4096)
    steps_per_execution: int = _f(1, "SGD steps per compiled call (less overhead on a GPU; at "
                                     "most 10000)", minimum=1, maximum=10_000)
    keep_all_checkpoints: bool = _f(False, "keep every epoch's checkpoint (default: the latest)")
    data_parallel: bool = _f(False, "JAX only: shard each batch across every device of this "
                                    "machine (fine-tuning steps, embedding); same results")
    precision: str = _f("float32", "the network's float precision, pinned and recorded in "
                                   "run.json: float32 (full float32 everywhere; on an Ampere+ "
                                   "NVIDIA GPU TF32 turned off), bf16 (Keras mixed_bfloat16: "
                                   "layers compute in bfloat16, float32 weights, embeddings "
                                   "and loss; slower on a CPU without bf16 units), tf32 (TF32 "
                                   "convolutions and matmuls: an Ampere+ NVIDIA GPU only, "
                                   "refused elsewhere); part of a run's fingerprint",
                          ("float32", "bf16", "tf32"))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _check(f, getattr(self, f.name)))
        _backbone_defaults(self)
        smallest = get_backbone(self.backbone).facts.min_image_size
        if self.image_size < smallest:
            raise ConfigValueError("image_size", f"at least {smallest} pixels for "
                                                 f"{self.backbone}, got {self.image_size}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["trainable_layers"] = list(self.trainable_layers)
        d["seeds"] = list(self.seeds)
        return d

    def used_by(self, command: str) -> dict[str, Any]:
        """The fields a `command`'s run depends on or reports (:data:`COMMAND_FIELDS`, plus
        the backbone's own settings and, for training, the loss's): what its run.json records.
        Another command (or none known) gets every field."""
        names = COMMAND_FIELDS.get(command)
        d = self.to_dict()
        if names is None:
            return d
        from mfr.training.losses import get_loss

        names = set(names)
        if "backbone" in names:
            names |= {"preprocessing", *get_backbone(self.backbone).facts.settings}
        if "loss" in names:
            names |= set(get_loss(self.loss).fields)
        return {k: v for k, v in d.items() if k in names}

    def replace(self, **values: Any) -> StudyConfig:
        """A copy with `values` set (None included: ``replace(weights=None)`` is random init).

        ValueError names an unknown key or a value of the wrong type.
        """
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            shown = ", ".join(excerpt(k, 40) for k in unknown[:5])
            raise InputError(f"unknown config keys [{shown}{', ...' if len(unknown) > 5 else ''}]; "
                             f"known: "
                             f"{sorted(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **values)


_TYPES = typing.get_type_hints(StudyConfig)


def _backbone_defaults(cfg: StudyConfig) -> None:
    """The backbone's own values where the config kept the fields' defaults (the thesis's,
    SENet50's): ``weights: vggface2`` names its released weights, the default preprocessing
    and face box are its first (:meth:`mfr.backbones.base.Backbone.config_defaults`); a
    preprocessing or face box it does not take is refused, naming the backbone."""
    try:
        values = get_backbone(cfg.backbone).config_defaults(cfg.weights, cfg.preprocessing,
                                                            cfg.face_box)
    except InputError as e:
        key, _, detail = str(e).partition(": ")
        raise ConfigValueError(key, detail) from None
    for k, v in values.items():
        object.__setattr__(cfg, k, v)


def _check(f: dataclasses.Field, value: Any) -> Any:
    """`value` as field `f`'s type, or ValueError naming the key, the value and the type."""
    hint = _TYPES[f.name]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    optional = union and type(None) in typing.get_args(hint)
    base = next(t for t in typing.get_args(hint) if t is not type(None)) if union else hint
    if optional and (value is None or (isinstance(value, str)
                                       and value.strip().lower() in ("none", "null"))):
        return None  # papermill and the CLI pass None as a string
    if f.name == "data_root" and isinstance(value, str):
        value = os.path.expanduser(value.replace("$MFR_DATA", str(data_home())))
    origin = typing.get_origin(base)

    def bad(expected: str) -> ConfigValueError:
        extra = (" (YAML reads a number like 1e-3 as a string: write 1.0e-3)"
                 if isinstance(value, str) and expected == "a number" else "")
        return ConfigValueError(f.name, f"expected {expected}, got {excerpt(value)}{extra}")

    minimum, maximum = f.metadata.get("minimum"), f.metadata.get("maximum")
    above, below = f.metadata.get("above"), f.metadata.get("below")
    if origin is tuple:  # trainable_layers, seeds: an int, or a list / comma string of ints
        items = value.strip(" []()").split(",") if isinstance(value, str) else (
            [value] if isinstance(value, int) and not isinstance(value, bool) else value)
        if isinstance(value, str) and not value.strip(" []()"):
            items = []
        try:
            out = tuple(int(x) for x in items)
            if any(isinstance(x, bool | float) for x in items):
                raise TypeError
        except (TypeError, ValueError):
            raise bad("an integer or a list of integers") from None
        if not out and f.default:  # a field whose default is empty may be empty
            raise bad("at least one integer")
        if len(out) > MAX_LIST:
            raise bad(f"at most {MAX_LIST} integers")
        if minimum is not None and any(x < minimum for x in out):
            raise bad(f"integers >= {minimum}")
        if maximum is not None and any(x > maximum for x in out):
            raise bad(f"integers <= {maximum}")
        return out
    if base is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        if minimum is not None and value < minimum:
            raise bad(f"an integer >= {minimum}")
        if maximum is not None and value > maximum:
            raise bad(f"an integer in {minimum}..{maximum}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        if not math.isfinite(value):
            raise bad("a finite number")
        if ((minimum is not None and value < minimum) or (above is not None and value <= above)
                or (maximum is not None and value > maximum)
                or (below is not None and value >= below)):
            raise bad("a number " + _range_words(minimum, maximum, above, below))
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise bad("a string" + (" or null" if optional else ""))
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise bad(f"one of {', '.join(choices)}")
        return value
    return value


def _range_words(minimum: float | None, maximum: float | None, above: float | None,
                 below: float | None) -> str:
    """``in [0, 1)``, ``> 0``, ...: a number field's range as a message says it."""
    low = f"[{minimum:g}" if minimum is not None else f"({above:g}" if above is not None else ""
    high = f"{maximum:g}]" if maximum is not None else f"{below:g})" if below is not None else ""
    if low and high:
        return f"in {low}, {high}"
    if low:
        return (">= " if low[0] == "[" else "> ") + low[1:]
    return ("<= " if high[-1] == "]" else "< ") + high[:-1]


def load_config(profile: str | Path = "thesis", **values: Any) -> StudyConfig:
    """Load a profile (a name in `configs/` or a YAML path), then set `values`.

    >>> load_config("thesis").margin
    5.0
    """
    path = Path(profile)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{profile}.yaml"
    if not path.exists():  # a folder, a FIFO ...: refused by the reader, naming what it is
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise MissingError(
            f"{path}: no such config profile (expected a YAML file or one of {known})")
    loaded = _read_profile(path)
    loaded.setdefault("profile", path.stem)
    try:
        cfg = StudyConfig().replace(**loaded)
    except ValueError as e:
        raise InputError(f"{path}: {e}") from None
    return cfg.replace(**values)


def _read_profile(path: Path) -> dict[str, Any]:
    """A profile's mapping of config keys (:func:`mfr.core.readers.profiles.read_mapping`: UTF-8,
    a size bound, no anchors, aliases or repeated keys); InputError naming the file and the
    line of a YAML syntax error or of a key that is not a string."""
    from mfr.core.readers.profiles import read_mapping

    return read_mapping(path)


def from_parameters(profile: str | Path, **parameters: Any) -> StudyConfig:
    """A profile with a notebook's parameters applied: a parameter left at None keeps the
    profile's value (random init is ``weights="none"``), so a notebook's defaults are its
    profile's and `mfr study` passes only the profile's name."""
    return load_config(profile, **{k: v for k, v in parameters.items() if v is not None})
