"""A run folder's network, as the run left it, whatever its backbone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mfr.backbones import build_core
from mfr.core.errors import InputError, MissingError

if TYPE_CHECKING:
    import keras

__all__ = ["load_run_model"]


def load_run_model(run_dir: str | Path) -> keras.Model:
    """The network of an `mfr embed` or `mfr train` run folder, as the run left it: its
    run.json's config builds the backbone (:func:`build_core`), and a fine-tuning run's trained
    layers come from ``final_trainable.h5``; the layers loaded must be the run's
    ``trainable_layer_names`` when it lists them. One-line errors name the file."""
    from mfr.backbones.formats.legacy_h5 import load_legacy_h5
    from mfr.core.config import StudyConfig
    from mfr.core.runs import read_run

    run_dir = Path(run_dir)
    record = read_run(run_dir, "a run folder of `mfr embed` or `mfr train`")
    meta, meta_path = record.data, record.path
    config = meta.get("config")
    if not isinstance(config, dict) or not {"weights", "image_size"} <= set(config):
        raise InputError(f"{meta_path}: expected a 'config' with weights and image_size")
    trained = run_dir / "final_trainable.h5"
    fine_tuned = "trainable_layers" in meta
    if fine_tuned and not trained.is_file():
        raise MissingError(f"{trained}: a fine-tuning run folder must hold its trained "
                           f"layers (final_trainable.h5, written when `mfr train` ends)")
    known = set(StudyConfig.__dataclass_fields__)
    cfg = StudyConfig().replace(**{k: v for k, v in config.items() if k in known})
    core = build_core(cfg)
    if fine_tuned:
        loaded = load_legacy_h5(core, trained, strict=False)
        expected = meta.get("trainable_layer_names")
        if not loaded:
            raise InputError(f"{trained}: holds none of {cfg.backbone}'s layers (expected the "
                             f"trained layers of an `mfr train` run)")
        if expected is not None and sorted(loaded) != sorted(expected):
            raise InputError(f"{trained}: holds layers {sorted(loaded)}, but {meta_path} lists "
                             f"trainable_layer_names {sorted(expected)}")
    return core
