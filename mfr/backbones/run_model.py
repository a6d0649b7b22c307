"""A run folder's network, as the run left it, whatever its backbone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfr.backbones import backbone_cfg, backbone_module, build_core
from mfr.core.errors import InputError, MissingError
from mfr.core.integrity import check_recorded
from mfr.core.provenance import file_digest

if TYPE_CHECKING:
    import keras

__all__ = ["check_run_weights", "load_run_model"]


def check_run_weights(run_dir: str | Path, meta: Mapping[str, Any]) -> None:
    """The files a run's network is built from are the ones the run used: its
    ``final_trainable.h5`` as its run.json's outputs record it, and the weights file it
    started from (vggface2, dlib_v1 or a path: its fingerprint's sha256). A file that changed
    since is a one-line InputError naming it. Released weights not downloaded yet are left to
    the download's own sha256 check."""
    run_dir = Path(run_dir)
    check_recorded(run_dir / "final_trainable.h5")
    recorded = (meta.get("fingerprint") or {}).get("weights") if isinstance(
        meta.get("fingerprint"), Mapping) else None
    config = meta.get("config") or {}
    weights = config.get("weights") if isinstance(config, Mapping) else None
    if not isinstance(recorded, str) or "sha256:" not in recorded or weights is None:
        return  # a random init, or a record without the weights' digest
    backbone = str(config.get("backbone", "senet50"))
    path = (Path(backbone_module(backbone).pretrained_file())
            if weights == backbone_cfg(backbone)["pretrained"] else Path(weights))
    digest = recorded.rsplit("sha256:", 1)[1]
    if not path.is_file():
        return  # a path: building the network says it is missing; released: fetched, checked
    now = file_digest(path)
    if now != digest:
        raise InputError(f"{path}: not the weights file the run {run_dir} started from (sha256 "
                         f"{now[:12]}...; {run_dir / 'run.json'} records {digest[:12]}...); "
                         f"the run's network cannot be rebuilt from it")


def load_run_model(run_dir: str | Path) -> keras.Model:
    """The network of an `mfr embed` or `mfr train` run folder, as the run left it: its
    run.json's config builds the backbone (:func:`build_core`), and a fine-tuning run's trained
    layers come from ``final_trainable.h5``; the layers loaded must be the run's
    ``trainable_layer_names`` when it lists them; both files must be the ones the run recorded
    (:func:`check_run_weights`). One-line errors name the file."""
    from mfr.backbones.vggface.legacy_h5 import load_legacy_h5
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
    check_run_weights(run_dir, meta)
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
