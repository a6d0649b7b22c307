"""What several subcommands share: where the data is, and which weights to start from."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mfr.config import StudyConfig


def recorded_data_root(data_root: Path | None, pairs_dir: Path, cfg: StudyConfig) -> Path | None:
    """`--data-root` if given, else the data root that `mfr partition` recorded in the pairs
    folder's run.json, else the profile's; None when none is known."""
    if data_root is not None:
        return data_root
    run = pairs_dir / "run.json"
    if run.is_file():
        root = json.loads(run.read_text(encoding="utf-8")).get("data_root")
        if root:
            return Path(root)
    return Path(cfg.data_root) if cfg.data_root else None


def with_weights(cfg: StudyConfig, weights: str | None, progress: bool = True) -> StudyConfig:
    """Apply a `--weights vggface2|PATH|none` flag, and make sure the weights can be had
    (a file that exists; the VGGFace2 file found or downloaded) before any slow work."""
    if weights is not None:
        cfg = dataclasses.replace(
            cfg, weights=None if weights.lower() in ("none", "random") else weights)
    if cfg.weights not in (None, "vggface2") and not Path(cfg.weights).is_file():
        raise FileNotFoundError(f"{cfg.weights}: weights file not found (expected vggface2, "
                                f"none, or a legacy keras-vggface .h5 file)")
    if cfg.weights == "vggface2":
        from mfr.models.weights import WeightsDownloadError, get_weights_file

        try:
            get_weights_file(progress=progress)
        except WeightsDownloadError as e:
            raise FileNotFoundError(f"VGGFace2 SENet50 weights unavailable: {e}") from e
    return cfg
