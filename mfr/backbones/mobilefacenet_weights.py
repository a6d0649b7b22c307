"""InsightFace's MobileFaceNet files, fetched once: the MXNet release (``model-symbol.json``,
``model-0000.params``, read by :mod:`mfr.backbones.mobilefacenet`) and its ncnn conversion
(``mobilefacenet.param``/``.bin``, run by :mod:`mfr.backbones.embedders.ncnn_mobilefacenet`).

Source: the GitHub repository liguiyuan/mobilefacenet-ncnn, folder ``models/``, at a pinned
commit (:data:`COMMIT`, its latest, 2020-05-14), so a URL always serves the bytes of
:data:`FILES`' sha256. The MXNet files are InsightFace's ``model-y1-test2`` (MobileFaceNet,
ArcFace loss, MS1M). Licence: InsightFace releases its pretrained models for non-commercial
research only.

:func:`mobilefacenet_files` looks in ``cache_dir``, else ``$MFR_MOBILEFACENET_DIR`` (a folder
holding the four files, e.g. an offline copy), else ``$KERAS_HOME/models/insightface-mobilefacenet``
(``~/.keras/...``), and downloads what is missing with
:func:`mfr.backbones.vggface.pretrained.get_weights_file` (resumable, sha256-checked, atomic
rename; offline, a one-line error naming the URL and where to put the file by hand).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from mfr.backbones.vggface.pretrained import (
    WeightsDownloadError,
    get_weights_file,
    weights_cache_dir,
)

__all__ = ["COMMIT", "ENV_DIR", "FILES", "REPOSITORY", "WeightFile", "mobilefacenet_dir",
           "mobilefacenet_files"]

REPOSITORY = "liguiyuan/mobilefacenet-ncnn"
#: the repository's latest commit ("updated detect.cpp ...", 2020-05-14); the four files are
#: unchanged since they were added
COMMIT = "43631161ecef7567b9871bc711b9fb848629e9bc"
#: a folder holding the four files (checked by sha256), used before the cache
ENV_DIR = "MFR_MOBILEFACENET_DIR"


class WeightFile(NamedTuple):
    name: str
    url: str
    sha256: str
    size: int


def _url(name: str) -> str:
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/models/{name}"


#: the four files, as committed (sha256 and size of the bytes at the pinned commit)
FILES: tuple[WeightFile, ...] = (
    WeightFile("model-symbol.json", _url("model-symbol.json"),
               "967a17dd970632480609caac8b0a809f4784f1caa333a1d801365f7d34517e55", 107_943),
    WeightFile("model-0000.params", _url("model-0000.params"),
               "b151f97e392e68cb540fb9710a91a574a4187d491eeda77d1c1799ae6dc3b82b", 4_115_182),
    WeightFile("mobilefacenet.param", _url("mobilefacenet.param"),
               "dfea20c1a5c2adef2126296f42771ecf33bfa9a50cbe0f7ca8864c7bd1a4bbeb", 20_288),
    WeightFile("mobilefacenet.bin", _url("mobilefacenet.bin"),
               "9638dcfee63785b87a5ab0b0ed9f9dffe93e4b3718e5ea1b537dd5243a661b87", 4_091_592),
)


def mobilefacenet_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the files are looked for and downloaded to: `cache_dir`, else ``$MFR_MOBILEFACENET_DIR``,
    else ``$KERAS_HOME/models/insightface-mobilefacenet``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    return weights_cache_dir().parent / "insightface-mobilefacenet"


def mobilefacenet_files(progress: bool = True, cache_dir: str | Path | None = None,
                        files: Sequence[WeightFile] = FILES, timeout: float = 60.0) -> dict[str, Path]:
    """``{file name: local path}`` of `files` (default the four of :data:`FILES`), each checked
    against its sha256 and downloaded when missing (or when a cached copy fails the check).

    Raises :class:`~mfr.backbones.vggface.pretrained.WeightsDownloadError` when a file cannot be
    fetched (saying where to put it by hand, or to set ``$MFR_MOBILEFACENET_DIR``), and an
    InputError when a download does not match its sha256 (the file is removed).
    """
    directory = mobilefacenet_dir(cache_dir)
    out: dict[str, Path] = {}
    for f in files:
        try:
            out[f.name] = get_weights_file(fname=f.name, url=f.url, sha256=f.sha256,
                                           cache_dir=directory, timeout=timeout, progress=progress)
        except WeightsDownloadError as e:
            raise WeightsDownloadError(f"{e}; or set {ENV_DIR} to a folder holding "
                                       f"{', '.join(x.name for x in files)}") from e.__cause__
    return out
