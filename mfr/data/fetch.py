"""The datasets on disk: where they live, fetching and unpacking them, checking their layout.

``mfr data fetch NAME`` (a dataset of the registry, :mod:`mfr.data.datasets`, whose entry holds
where it comes from) downloads the official Google Drive file (with gdown, resuming an
interrupted download), unpacks it into ``$MFR_DATA/<name>`` (``~/mfr_data`` by default, see
:func:`mfr.core.config.data_home`) and checks that the layout is one mfr reads
(:func:`mfr.data.datasets.dataset_root`); or takes a manual download (an archive or an unpacked
folder) with ``--from``. Offline it says what to download and where to put it. A generated
dataset (``synthetic``) is written there instead. A dataset its makers give on request (MLFW,
M2FRED: ``manual`` in its entry) is never downloaded: `mfr data fetch NAME` says how to get it,
and ``--from`` takes it.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from mfr.core.config import data_home
from mfr.core.errors import InputError, MfrError, MissingError
from mfr.core.readers.paths import require_file
from mfr.core.readers.text import excerpt

__all__ = ["DataFetchError", "dataset_dir", "fetch", "gdrive_url", "list_datasets", "source_facts",
           "unpack"]


def source_facts(name: str) -> dict[str, str]:
    """Where dataset `name` comes from, from its registry entry (:mod:`mfr.data.datasets`): its
    download's ``gdrive_id`` (or ``manual``: how to get it by hand) and ``what`` it is, and the
    ``layout`` its tree has (a generated dataset: ``what`` and ``layout`` alone). InputError for
    a name not registered."""
    from mfr.data.datasets import get_dataset

    entry = get_dataset(name)
    return {"what": entry.label, **(entry.source or {}), "layout": entry.layout}


def list_datasets() -> list[dict[str, str]]:
    """A row per registered dataset (registry order): name, label, layout, where it comes from
    (its Google Drive file, how to get it by hand, or generated) and where it lives
    (``$MFR_DATA/<name>``, with its tree's folder when one of its layout is there, else "not
    fetched")."""
    rows = []
    for name in _names():
        facts = source_facts(name)
        home = dataset_dir(name)
        root = _layout_ok(home, facts["layout"]) if home.exists() else None
        rows.append({"name": name, "label": facts["what"], "layout": facts["layout"],
                     "source": (f"https://drive.google.com/file/d/{facts['gdrive_id']}"
                                if "gdrive_id" in facts else
                                f"by hand: {facts['manual']}" if "manual" in facts else
                                "generated here (no download)"),
                     "where": str(root) if root is not None else f"{home} (not fetched)"})
    return rows


def _names() -> list[str]:
    from mfr.data.datasets import dataset_names

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
    from mfr.data.datasets import detect_dataset

    try:
        found, root = detect_dataset(folder)
    except (OSError, ValueError):
        return None
    return root if found.layout == layout else None


#: The most an archive may unpack to (the sum of its members' sizes, checked from its list of
#: members before anything is written). RMFRD, the larger dataset, is 95,470 face photos
#: (tens of KB each, a few GB at most unpacked); 32 GiB allows over 350 KB a photo, while a
#: small archive of zeros that would fill the disk ("zip bomb") is refused.
UNPACK_LIMIT = 32 << 30

#: What the zip and tar readers raise on a damaged archive: RuntimeError is zipfile's for a
#: member it cannot read (encrypted: refused from the list before, still caught here);
#: ValueError and struct.error come from headers with impossible fields; bz2 has no error class
#: of its own (OSError).
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError,
                   zlib.error, lzma.LZMAError, NotImplementedError, RuntimeError, ValueError,
                   struct.error, UnicodeDecodeError, OSError)


def _check_member(archive: Path, name: str, kind: str) -> None:
    """One member of an archive may be unpacked: a regular file or a folder, inside the
    target. Anything else is an InputError naming it."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise InputError(f"{archive}: refuses to unpack {name!r} (it would land outside the "
                         f"target folder)")
    if kind not in ("file", "dir"):
        raise InputError(f"{archive}: refuses to unpack {name!r}: {kind} (expected only "
                         f"files and folders)")


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir"
    if stat.S_IFMT(mode) == 0 or stat.S_ISREG(mode):  # no type bits: a plain file
        return "file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "not a regular file"


def _tar_kind(m: tarfile.TarInfo) -> str:
    if m.isdir():
        return "dir"
    if m.isreg():
        return "file"
    if m.issym():
        return f"a symbolic link to {m.linkname!r}"
    if m.islnk():
        return f"a hard link to {m.linkname!r}"
    if m.ischr() or m.isblk():
        return "a device node"
    if m.isfifo():
        return "a FIFO"
    return "not a regular file"


def _check_unique(archive: Path, names: list[str]) -> None:
    """No member named twice: the second would silently replace the first."""
    seen: set[str] = set()
    for name in names:
        key = PurePosixPath(name.replace("\\", "/")).as_posix().rstrip("/")
        if key in seen:
            raise InputError(f"{archive}: member {excerpt(name)} is in it twice (the second "
                             f"would replace the first); is it the right file?")
        seen.add(key)


def _check_size(archive: Path, total: int, limit: int) -> None:
    if total > limit:
        raise InputError(f"{archive}: would unpack to {total / 1e9:.1f} GB, over the limit of "
                         f"{limit / 1e9:.1f} GB (no dataset mfr reads is that large); is it the "
                         f"right file?")


def unpack(archive: str | Path, target: str | Path, limit: int = UNPACK_LIMIT,
           check: Callable[[Path], None] | None = None) -> Path:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) archive into `target`: the one safe unpacker.

    Its list of members is checked before anything is written: only files and folders (no
    link, device or FIFO), none landing outside `target`, their sizes summing to at most
    `limit` bytes. It is unpacked into a temporary folder beside `target` (every CRC checked)
    and renamed onto it (which must be absent or empty) only when whole: a damaged, truncated
    or refused archive is one InputError naming it, and leaves nothing behind. `check`: called
    on the unpacked temporary folder before the rename (an MfrError there, e.g. a layout
    check, also leaves nothing)."""
    archive, target = Path(archive), Path(target)
    require_file(archive, "expected a .zip or .tar(.gz/.bz2/.xz) archive", "archive")
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise InputError(f"{target}: not empty; unpack {archive} into an empty or new folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.unpack-{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                infos = z.infolist()
                for info in infos:
                    _check_member(archive, info.filename, _zip_kind(info))
                    if info.flag_bits & 0x1:  # zipfile would raise RuntimeError on it
                        raise InputError(f"{archive}: member {excerpt(info.filename)} is "
                                         f"encrypted (a password is needed); expected the "
                                         f"dataset's own archive, unencrypted")
                _check_unique(archive, [i.filename for i in infos])
                _check_size(archive, sum(i.file_size for i in infos), limit)
                tmp.mkdir()
                z.extractall(tmp)  # each member's CRC is checked as it is read
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                members = t.getmembers()  # reads the whole stream: a truncated one fails here
                for m in members:
                    _check_member(archive, m.name, _tar_kind(m))
                _check_unique(archive, [m.name for m in members if not m.isdir()])
                _check_size(archive, sum(m.size for m in members if m.isreg()), limit)
                tmp.mkdir()
                t.extractall(tmp, filter="data")
        else:
            with open(archive, "rb") as f:
                head = f.read(4)
            kind = "a RAR archive" if head == b"Rar!" else "not a zip or tar"
            raise InputError(f"{archive}: {kind}; unpack it yourself and pass the folder with "
                             f"--from FOLDER")
        if check is not None:
            check(tmp)
        if target.exists():
            target.rmdir()
        tmp.rename(target)
    except MfrError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except _ARCHIVE_ERRORS as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno:
            raise  # the environment (a full disk, a permission): said as it is (exit 2)
        raise InputError(f"{archive}: damaged or truncated archive ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:160]}); download it again") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _looks_like_html(path: Path) -> bool:
    """A download that is a web page (Google Drive's "quota exceeded" or sign-in page), not
    the archive."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml"))


def _layout_check(name: str, spec: dict[str, str], origin: object) -> Callable[[Path], None]:
    """The layout check of an unpacked archive, before it is moved into place."""
    def check(folder: Path) -> None:
        if _layout_ok(folder, spec["layout"]) is None:
            found = sorted(p.name for p in folder.iterdir())[:5]
            raise MissingError(f"{origin}: unpacked, but no {name} layout in it (found "
                               f"{found}; expected {spec['what']}); nothing kept")
    return check


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
    if "manual" in spec and "gdrive_id" not in spec and source is None:
        raise DataFetchError(f"{name} is not downloaded by mfr: {spec['manual']}; put its tree "
                             f"in {target}, or run `mfr data fetch {name} --from PATH` (the "
                             f"archive or its unpacked folder)")
    if "gdrive_id" not in spec and "manual" not in spec:  # generated here, never downloaded
        from mfr.data.datasets import get_dataset

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
            unpack(source, target, check=_layout_check(name, spec, source))
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
        if _looks_like_html(part):
            part.unlink()
            raise DataFetchError(
                f"{url}: sent a web page, not the {name} archive (Google Drive's quota or "
                f"sign-in page?); nothing kept; download {spec['what']} by hand and run "
                f"`mfr data fetch {name} --from FILE`")
        try:
            unpack(part, target, check=_layout_check(name, spec, url))
        except InputError:
            part.unlink(missing_ok=True)  # damaged: not resumed by the next fetch
            raise
        part.unlink()
    root = _layout_ok(target, spec["layout"])
    if root is None:
        found = sorted(p.name for p in target.iterdir())[:5] if target.is_dir() else []
        raise MissingError(f"{target}: unpacked, but no {name} layout in it (found {found}; "
                           f"expected {spec['what']})")
    return root

