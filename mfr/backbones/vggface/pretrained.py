"""The pre-trained SENet50: its weight file, fetched once, and the model built with it.

:func:`senet50` is the one way mfr gets its network: the architecture
(:func:`mfr.backbones.vggface.senet50.build_senet50`) with the released VGGFace2 weights
(the backbone's facts, :mod:`mfr.backbones.senet50`), a legacy keras-vggface ``.h5`` file, or
none. The download is :mod:`mfr.backbones.download`'s.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras

from mfr.backbones import download
from mfr.backbones.download import WeightsDownloadError, weights_cache_dir
from mfr.backbones.formats.legacy_h5 import file_layer_names, load_legacy_h5
from mfr.backbones.vggface.senet50 import VGGFACE_NAMES, build_senet50
from mfr.backbones.vggface_release import VGGFACE2_RELEASE
from mfr.core.errors import InputError

__all__ = ["VGGFACE2", "WeightsDownloadError", "check_senet50_file", "get_weights_file",
           "senet50", "vggface2_weights_file", "weights_cache_dir"]

#: the released file, as the backbone's facts give it (name, URL, pin)
VGGFACE2 = {"file": VGGFACE2_RELEASE.files[0].name, "url": VGGFACE2_RELEASE.files[0].url,
            "sha256": VGGFACE2_RELEASE.files[0].sha256}


def senet50(
    weights: str | Path | None = "vggface2",
    pooling: str = "avg",
    input_shape=(224, 224, 3),
) -> keras.Model:
    """keras-vggface's SENet50 without top, as a Keras 3 Functional model (287 layers).

    Args:
        weights: ``"vggface2"`` (download/cache the released keras-vggface weights, see
            :func:`get_weights_file`), a path to a legacy keras-vggface ``.h5`` file, or
            ``None`` (random initialisation).
        pooling: ``"avg"`` (the thesis) or ``"max"``: the final global pooling.
        input_shape: (H, W, 3); the released weights expect (224, 224, 3).

    Returns:
        A ``keras.Model`` named ``"senet50"`` taking preprocessed float32 images
        (:func:`mfr.backbones.preprocess`) and returning (batch, 2048) embeddings.
    """
    if weights is None:
        return build_senet50(pooling=pooling, input_shape=input_shape)
    if isinstance(weights, str) and weights == "vggface2":
        path = vggface2_weights_file()
    else:
        path = Path(weights)
        if not path.is_file():
            raise InputError(
                f"weights must be 'vggface2', None or the path of a legacy .h5 file; "
                f"{str(path)!r} is not a file"
            )
    # Every weight is overwritten by the strict load: skip the random initialisation.
    model = build_senet50(pooling=pooling, input_shape=input_shape, kernel_initializer="zeros")
    load_legacy_h5(model, path, strict=True)
    return model


def check_senet50_file(path: str | Path) -> None:
    """InputError unless `path` is a readable legacy HDF5 file listing every weighted layer of
    SENet50 (keras-vggface publishes no checksum, so this is the check a download gets)."""
    listed = set(file_layer_names(path))
    missing = sorted(set(VGGFACE_NAMES.values()) - listed)
    if missing:
        raise InputError(f"{path}: lacks {len(missing)} of SENet50's {len(VGGFACE_NAMES)} weighted "
                         f"layers (e.g. {missing[:3]}); expected keras-vggface's "
                         f"{VGGFACE2['file']}")


def vggface2_weights_file(progress: bool = True) -> Path:
    """The VGGFace2 SENet50 weights, downloaded once and checked (:func:`check_senet50_file`).

    A damaged cached copy (an interrupted copy by hand, a truncated file) is fetched again,
    with a warning saying so; a download that fails the check is removed and an InputError.
    """
    path = weights_cache_dir() / VGGFACE2["file"]
    if path.is_file():
        try:
            check_senet50_file(path)
            return path
        except InputError as e:
            warnings.warn(f"{e}; downloading it again", stacklevel=2)
            path.unlink()
    path = get_weights_file(progress=progress)
    try:
        check_senet50_file(path)
    except InputError:
        path.unlink(missing_ok=True)
        raise
    return path


def get_weights_file(fname: str = VGGFACE2["file"], url: str = VGGFACE2["url"],
                     sha256: str | None = VGGFACE2["sha256"], cache_dir: str | Path | None = None,
                     timeout: float = 60.0, progress: bool = True) -> Path:
    """:func:`mfr.backbones.download.get_weights_file`, by default of the VGGFace2 SENet50
    file (into ``$KERAS_HOME/models/vggface``)."""
    return download.get_weights_file(fname, url, sha256, cache_dir=cache_dir, timeout=timeout,
                                     progress=progress)
