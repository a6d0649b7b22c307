"""The one home of the study's hyperparameters.

`StudyConfig` holds the thesis's values as defaults (THESIS.md, Table 4.3 and Chapter 4.2).
A profile in `configs/<name>.yaml` overrides some of them; papermill parameters and CLI flags
override a profile. Every output records the config that made it (`to_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

THESIS_TRAINABLE_LAYERS = (10, 20, 30, 40, 50, 60, 70)


@dataclass(frozen=True)
class StudyConfig:
    """Hyperparameters of one study run; defaults are the thesis's."""

    profile: str = "thesis"
    # data and partition (Chapter 4.2)
    data_root: str | None = None
    protocol: str = "thesis"  # "thesis" (its quirks) | "balanced" (corrected)
    max_per_subject: int = 20
    train_val_fraction: float = 0.8
    val_size: float = 0.2
    seed: int = 2021
    # model and input (Table 4.3)
    image_size: int = 224
    # JPEG decoding for the image cache: "pil" (default; works without TensorFlow) or "tf"
    # (tf.image.decode_jpeg, the thesis's exact decode; about 1.4 grey levels from PIL's on average)
    decoder: str = "pil"
    preprocessing: str = "thesis"  # "thesis" (RGB, no flip) | "vggface2" (library: BGR)
    pooling: str = "avg"
    weights: str | None = "vggface2"
    # Siamese training (Eq. 3.4, Table 4.3)
    margin: float = 5.0
    optimizer: str = "sgd"
    learning_rate: float = 1e-5
    momentum: float = 0.0
    batch_size: int = 32
    epochs: int = 8
    trainable_layers: tuple[int, ...] = THESIS_TRAINABLE_LAYERS
    distance: str = "sum_squared"
    # speed (does not change results)
    trunk_cache: bool = True
    embed_batch_size: int = 64
    steps_per_execution: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["trainable_layers"] = list(self.trainable_layers)
        return d

    def replace(self, **overrides: Any) -> StudyConfig:
        """A copy with `overrides` applied; `None` values are ignored (unset CLI flags)."""
        return _apply(self, {k: v for k, v in overrides.items() if v is not None})


def _apply(cfg: StudyConfig, values: dict[str, Any]) -> StudyConfig:
    names = {f.name: f for f in dataclasses.fields(StudyConfig)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known: {sorted(names)}")
    values = dict(values)
    if "trainable_layers" in values:
        tl = values["trainable_layers"]
        values["trainable_layers"] = (int(tl),) if isinstance(tl, int) else tuple(int(x) for x in tl)
    return dataclasses.replace(cfg, **values)


def load_config(profile: str | Path = "thesis", **overrides: Any) -> StudyConfig:
    """Load a profile (a name in `configs/` or a YAML path), then apply `overrides`.

    >>> load_config("thesis").margin
    5.0
    """
    path = Path(profile)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{profile}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such config profile (expected a YAML file or a name in {CONFIG_DIR})"
        )
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    values.setdefault("profile", path.stem)
    return _apply(StudyConfig(), values).replace(**overrides)
