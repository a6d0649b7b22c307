"""The datasets on disk: where they live, fetching and unpacking them, checking their layout.

``mfr data fetch NAME`` (a dataset of the registry, :mod:`mfr.datasets`, whose entry holds
where it comes from) downloads the official Google Drive file (with gdown, resuming an
interrupted download), unpacks it into ``$MFR_DATA/<name>`` (``~/mfr_data`` by default, see
:func:`mfr.config.data_home`) and checks that the layout is one mfr reads
(:func:`mfr.datasets.dataset_root`); or takes a manual download (an archive or an unpacked
folder) with ``--from``. Offline it says what to download and where to put it. A generated
dataset (``synthetic``) is written there instead.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from mfr.config import data_home
from mfr.errors import InputError, MfrError, MissingError

__all__ = ["DataFetchError", "dataset_dir", "fetch", "gdrive_url", "list_datasets", "source_facts",
           "unpack"]


def source_facts(name: str) -> dict[str, str]:
    """Where dataset `name` comes from, from its registry entry (:mod:`mfr.datasets`): its
    download's ``gdrive_id`` and ``what`` it is, and the ``layout`` its tree has (a generated
    dataset: ``what`` and ``layout`` alone). InputError for a name not registered."""
    from mfr.datasets import get_dataset

    entry = get_dataset(name)
    return {"what": entry.label, **(entry.source or {}), "layout": entry.layout}


def list_datasets() -> list[dict[str, str]]:
    """A row per registered dataset (registry order): name, label, layout, where it comes from
    (its Google Drive file, or generated) and where it lives (``$MFR_DATA/<name>``, with its
    tree's folder when one of its layout is there, else "not fetched")."""
    rows = []
    for name in _names():
        facts = source_facts(name)
        home = dataset_dir(name)
        root = _layout_ok(home, facts["layout"]) if home.exists() else None
        rows.append({"name": name, "label": facts["what"], "layout": facts["layout"],
                     "source": (f"https://drive.google.com/file/d/{facts['gdrive_id']}"
                                if "gdrive_id" in facts else "generated here (no download)"),
                     "where": str(root) if root is not None else f"{home} (not fetched)"})
    return rows


def _names() -> list[str]:
    from mfr.datasets import dataset_names

    return dataset_names()


class DataFetchError(MfrError):
    """A dataset could not be downloaded; the message says how to get it by hand."""


def gdrive_url(file_id: str) -> str:
    return f"https://drive.google.com/uc?id={file_id}"


def dataset_dir(name: str) -> Path:
    """Where dataset `name` lives: ``$MFR_DATA/<name>``."""
    source_facts(name)  # a registered name, else InputError
    return data_home() / name


def _layout_ok(folder: Path, layout: str) -> Path | None:
    from mfr.datasets import detect_dataset

    try:
        found, root = detect_dataset(folder)
    except (OSError, ValueError):
        return None
    return root if found.layout == layout else None


def _safe_members(names: list[str], archive: Path) -> None:
    for n in names:
        p = PurePosixPath(n.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts:
            raise InputError(f"{archive}: refuses to unpack {n!r} (it would land outside the "
                             f"target folder)")


def unpack(archive: str | Path, target: str | Path) -> Path:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) archive into `target` (made; members that would
    land outside it are refused). InputError names anything else (e.g. a .rar)."""
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            _safe_members(z.namelist(), archive)
            z.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            _safe_members(t.getnames(), archive)
            t.extractall(target, filter="data")
    else:
        kind = "a RAR archive" if archive.read_bytes()[:4] == b"Rar!" else "not a zip or tar"
        raise InputError(f"{archive}: {kind}; unpack it yourself and pass the folder with "
                         f"--from FOLDER")
    return target


def fetch(name: str, target: str | Path | None = None, source: str | Path | None = None,
          url: str | None = None, progress: bool = True) -> Path:
    """Get dataset `name` into `target` (default :func:`dataset_dir`); returns its root.

    Already there with the right layout: nothing is done. `source`: a manual download (an
    archive, unpacked into `target`; or a folder, linked from `target`). Else the file is
    downloaded from `url` (default: its Google Drive file) next to `target`, unpacked and
    removed. The layout is checked at the end: MissingError says what was found.
    """
    spec = source_facts(name)
    target = Path(target) if target is not None else dataset_dir(name)
    if target.exists() and (root := _layout_ok(target, spec["layout"])) is not None:
        return root
    if "gdrive_id" not in spec:  # a generated dataset: made here, never downloaded
        from mfr.datasets import get_dataset

        make = get_dataset(name).make
        if make is None:
            raise InputError(f"{name}: its registry entry names no download and no generator; "
                             f"put its tree in {target} by hand")
        if source is not None or url is not None:
            raise InputError(f"{name} is generated, not downloaded: no --from or --url")
        make(target)
    elif source is not None:
        source = Path(source).expanduser()
        if not source.exists():
            raise MissingError(f"{source}: no such file or folder (expected the downloaded "
                               f"{name} archive or its unpacked folder)")
        if source.is_dir():
            if _layout_ok(source, spec["layout"]) is None:
                raise MissingError(f"{source}: not a {name} tree (expected {spec['what']})")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or (target.exists() and not any(target.iterdir())):
                target.unlink() if target.is_symlink() else target.rmdir()
            target.symlink_to(source.resolve(), target_is_directory=True)
        else:
            unpack(source, target)
    else:
        url = url or gdrive_url(spec["gdrive_id"])
        part = target.parent / f".{name}.download"
        part.parent.mkdir(parents=True, exist_ok=True)
        try:
            import gdown

            got = gdown.download(url, str(part), quiet=not progress, resume=True)
        except ImportError:
            raise DataFetchError("downloading needs gdown: pip install gdown (in the "
                                 "`notebooks` extra)") from None
        except Exception as e:  # noqa: BLE001 - any network failure: say how to get it by hand
            raise DataFetchError(
                f"could not download {name} from {url} ({type(e).__name__}: "
                f"{' '.join(str(e).split())[:160]}); download {spec['what']} by hand from "
                f"https://drive.google.com/file/d/{spec['gdrive_id']} and run `mfr data fetch "
                f"{name} --from FILE` (or unpack it into {target})") from None
        if not got or not Path(part).is_file():
            raise DataFetchError(f"could not download {name} from {url}; download it by hand "
                                 f"and run `mfr data fetch {name} --from FILE`")
        unpack(part, target)
        part.unlink()
    root = _layout_ok(target, spec["layout"])
    if root is None:
        found = sorted(p.name for p in target.iterdir())[:5] if target.is_dir() else []
        raise MissingError(f"{target}: unpacked, but no {name} layout in it (found {found}; "
                           f"expected {spec['what']})")
    return root

