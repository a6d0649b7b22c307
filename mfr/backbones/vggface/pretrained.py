"""The pre-trained SENet50: its weight file, fetched once, and the model built with it.

:func:`senet50` is the one way mfr gets its network: the architecture
(:func:`mfr.backbones.vggface.senet50.build_senet50`) with the released VGGFace2 weights
(:data:`mfr.backbones.vggface.senet50.PRETRAINED`), a legacy keras-vggface ``.h5`` file, or none.

The download is hand-written rather than ``keras.utils.get_file`` or pooch because those start a
broken transfer again from zero; the weight file is about 100 MB and often fetched over slow
links, so :func:`get_weights_file` resumes with an HTTP Range request (``_fetch``, 30 lines).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import keras

from mfr.backbones.formats.legacy_h5 import file_layer_names, load_legacy_h5
from mfr.backbones.vggface.senet50 import PRETRAINED, VGGFACE_NAMES, build_senet50
from mfr.core.errors import InputError, MfrError

__all__ = ["VGGFACE2", "WeightsDownloadError", "check_senet50_file", "get_weights_file",
           "load_run_core", "senet50", "vggface2_weights_file", "weights_cache_dir"]

VGGFACE2 = PRETRAINED["vggface2"]
_CHUNK = 1 << 20


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


class WeightsDownloadError(MfrError, OSError):
    """The weights file could not be fetched (offline, unreachable, HTTP error)."""


def weights_cache_dir() -> Path:
    """``$KERAS_HOME/models/vggface`` (``~/.keras/models/vggface`` when KERAS_HOME is unset)."""
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(home).expanduser() / "models" / "vggface"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_pin(path: Path, target: Path, sha256: str | None) -> None:
    if sha256 is None:
        return
    found = _sha256(path)
    if found.lower() != sha256.lower():
        path.unlink(missing_ok=True)
        raise InputError(
            f"sha256 mismatch for {target}: expected {sha256.lower()}, found {found} "
            f"(the file was removed)"
        )


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Download ``url`` into ``part``, resuming from its current size with an HTTP Range."""
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "mfr"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the partial file is not a prefix we can extend
            part.unlink()
            return _fetch(url, part, timeout, progress)
        raise
    with response:
        if offset and response.status != 206:  # the server ignored Range: start over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        mode = "ab" if offset else "wb"
        with (
            open(part, mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise WeightsDownloadError(
            f"incomplete download of {url}: {part.stat().st_size} of {total} bytes in {part}"
        )


def get_weights_file(
    fname: str = VGGFACE2["file"],
    url: str = VGGFACE2["url"],
    sha256: str | None = VGGFACE2["sha256"],
    cache_dir: str | Path | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """The local path of a weights file (by default VGGFace2 SENet50's), downloaded once.

    The cache is ``cache_dir`` or :func:`weights_cache_dir` (``$KERAS_HOME/models/vggface``,
    default ``~/.keras/models/vggface``). The download goes to ``<fname>.part`` (an interrupted
    one resumes with an HTTP Range request), is checked against ``sha256`` when given and then
    renamed into place atomically. A file that fails the pin is removed and a ValueError names
    the file, the expected and the found hash. When the URL cannot be reached a
    :class:`WeightsDownloadError` says where to put the file by hand.
    """
    directory = Path(cache_dir).expanduser() if cache_dir is not None else weights_cache_dir()
    target = directory / fname
    if target.is_file():
        if sha256 is None:
            return target
        if _sha256(target).lower() == sha256.lower():
            return target
        target.unlink()  # a stale or corrupt cached copy: fetch it again, then check the pin
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / (fname + ".part")
    try:
        _fetch(url, part, timeout=timeout, progress=progress)
    except (urllib.error.URLError, OSError) as e:
        is_http = isinstance(e, urllib.error.HTTPError)
        reason = e.reason if isinstance(e, urllib.error.URLError) and not is_http else e
        raise WeightsDownloadError(
            f"could not download {fname} ({reason}); put the file by hand at {target} (from {url})"
        ) from e
    _check_pin(part, target, sha256)
    os.replace(part, target)
    return target


def load_run_core(run_dir: str | Path) -> keras.Model:
    """The network of a run folder as the run left it: :func:`mfr.backbones.load_run_model`
    (kept under this name for SENet50's callers)."""
    from mfr.backbones.run_model import load_run_model

    return load_run_model(run_dir)
