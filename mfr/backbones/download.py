"""Released weight files, fetched once into a cache and checked: the one download every
backbone's weights go through.

The download is hand-written rather than ``keras.utils.get_file`` or pooch because those start a
broken transfer again from zero; weight files of 100 MB are often fetched over slow links, so
:func:`get_weights_file` resumes with an HTTP Range request (``_fetch``, 30 lines), checks the
sha256 where the release pins one, and renames the file into place.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from mfr.core.errors import InputError, MfrError

__all__ = ["WeightsDownloadError", "get_weights_file", "release_dir", "release_files", "sha256_of",
           "weights_cache_dir"]

_CHUNK = 1 << 20


class WeightsDownloadError(MfrError, OSError):
    """The weights file could not be fetched (offline, unreachable, HTTP error)."""


def weights_cache_dir(subdir: str = "vggface") -> Path:
    """``$KERAS_HOME/models/<subdir>`` (``~/.keras/models/<subdir>`` when KERAS_HOME is unset;
    SENet50's VGGFace2 weights are in ``vggface``, as keras-vggface kept them)."""
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(home).expanduser() / "models" / subdir


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_pin(path: Path, target: Path, sha256: str | None) -> None:
    if sha256 is None:
        return
    found = sha256_of(path)
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
    fname: str,
    url: str,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """The local path of a weights file, downloaded once.

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
        if sha256_of(target).lower() == sha256.lower():
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


def release_dir(cache_name: str, env_dir: str | None = None,
                cache_dir: str | Path | None = None) -> Path:
    """Where a release's files are looked for and downloaded to: `cache_dir`, else the folder
    ``$<env_dir>`` names (a copy made by hand, e.g. offline), else
    ``$KERAS_HOME/models/<cache_name>``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if env_dir and os.environ.get(env_dir):
        return Path(os.environ[env_dir]).expanduser()
    return weights_cache_dir(cache_name)


def release_files(files, cache_name: str, env_dir: str | None = None,
                  cache_dir: str | Path | None = None, progress: bool = True,
                  timeout: float = 60.0) -> dict[str, Path]:
    """``{file name: local path}`` of a release's `files` (records with ``name``, ``url``,
    ``sha256``: :class:`mfr.backbones.base.WeightFile`), each found in :func:`release_dir` and
    checked against its sha256, or downloaded there (resumable) when missing or when a cached
    copy fails the check. :class:`WeightsDownloadError` says where to put a file that cannot be
    fetched (or which variable names a folder holding them); an InputError names a download
    that does not match its sha256 (the file is removed)."""
    directory = release_dir(cache_name, env_dir, cache_dir)
    out: dict[str, Path] = {}
    for f in files:
        try:
            out[f.name] = get_weights_file(f.name, f.url, f.sha256, cache_dir=directory,
                                           timeout=timeout, progress=progress)
        except WeightsDownloadError as e:
            hint = (f"; or set {env_dir} to a folder holding {', '.join(x.name for x in files)}"
                    if env_dir else "")
            raise WeightsDownloadError(f"{e}{hint}") from e.__cause__
    return out
