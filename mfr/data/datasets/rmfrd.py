"""RMFRD (Wang et al. 2020): its layout, found and read into a :class:`~mfr.data.datasets.common.Dataset`::

    <root>/AFDB_masked_face_dataset/<subject>/*.jpg
    <root>/AFDB_face_dataset/<subject>/*.jpg

where `<root>` is usually `self-built-masked-face-recognition-dataset`; `find_rmfrd_root` also
accepts a folder up to two levels above it. Subjects are folder names present on *both* sides;
a subject folder with no matching file still counts (the thesis's numbers need this) and is
listed in `excluded["subjects"]`. Files are matched by the protocol's patterns: the thesis's
`glob('*.jpg')` (case-sensitive, hidden files skipped) or, for the `balanced` protocol, every
common image format in any case. Its pair sets are the partition's (no pairs file of its own).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mfr.core.errors import InputError, MissingError, NotADirError
from mfr.data.datasets.common import (
    Dataset,
    DatasetSpec,
    FaceImage,
    describe_patterns,
    folders_at,
    is_utf8,
    matches,
    resolve_patterns,
    shown,
)

MASKED_DIR = "AFDB_masked_face_dataset"
UNMASKED_DIR = "AFDB_face_dataset"
RMFRD_DIRNAME = "self-built-masked-face-recognition-dataset"

RMFRD_LAYOUT_HINT = (
    f"expected an RMFRD tree: <root>/{MASKED_DIR}/<subject>/*.jpg and "
    f"<root>/{UNMASKED_DIR}/<subject>/*.jpg (<root> is usually {RMFRD_DIRNAME})"
)

SIDES = (("unmasked", UNMASKED_DIR, False), ("masked", MASKED_DIR, True))
#: how far below the folder given a tree is looked for
MAX_DEPTH = 2


def _has_sides(path: Path) -> bool:
    return (path / MASKED_DIR).is_dir() or (path / UNMASKED_DIR).is_dir()


def find_rmfrd_root(path: str | Path) -> Path:
    """The folder holding `AFDB_masked_face_dataset` and `AFDB_face_dataset`.

    Looks at `path`, then its subfolders, then theirs (so a download folder above
    `self-built-masked-face-recognition-dataset` works). Raises FileNotFoundError naming the
    places looked at and the expected layout, or the missing side folder when only one is found.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise MissingError(f"{path}: no such directory ({RMFRD_LAYOUT_HINT})")
    if not path.is_dir():
        raise NotADirError(f"{path}: not a directory ({RMFRD_LAYOUT_HINT})")
    for depth in range(MAX_DEPTH + 1):
        if (root := detect(path, depth)) is not None:
            return root
    raise MissingError(
        f"{path}: no RMFRD tree found (looked in {path}, {path}/*, {path}/*/*; "
        f"{RMFRD_LAYOUT_HINT})"
    )


def detect(path: Path, depth: int) -> Path | None:
    """The RMFRD tree exactly `depth` folders below `path` (0: `path` itself), or None.

    Where that level holds several, the one named like the dataset's own folder; InputError
    when that does not decide, MissingError when the tree found lacks a side folder."""
    found = [c for c in folders_at(path, depth) if _has_sides(c)]
    if not found:
        return None
    # prefer the dataset's own folder name when a level holds several trees
    named = [c for c in found if c.name == RMFRD_DIRNAME]
    if len(found) > 1 and len(named) != 1:
        raise InputError(
            f"{path}: several RMFRD trees found ({', '.join(str(c) for c in found)}); "
            "point --data-root at one of them"
        )
    root = named[0] if len(found) > 1 else found[0]
    for _, dirname, _ in SIDES:
        if not (root / dirname).is_dir():
            raise MissingError(f"{root / dirname}: missing side folder ({RMFRD_LAYOUT_HINT})")
    return root


def _scan_side(side_dir: Path) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Subject folder -> sorted file names in it; and (entry, reason) for what is not a
    readable subject folder at the side's top level (stray files, unreadable folders, symlink
    loops, names that are not UTF-8): listed, never fatal."""
    subjects: dict[str, list[str]] = {}
    stray: list[tuple[str, str]] = []
    with os.scandir(side_dir) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if not is_utf8(e.name):
            stray.append((shown(e.name), "name is not valid UTF-8"))
            continue
        try:
            is_dir = e.is_dir()
        except OSError as err:  # e.g. a symlink loop
            stray.append((e.name, f"unreadable ({err.strerror})"))
            continue
        if not is_dir:
            stray.append((e.name, "not inside a subject folder"))
            continue
        try:
            with os.scandir(e.path) as sub:
                subjects[e.name] = sorted(x.name for x in sub)
        except OSError as err:
            subjects[e.name] = []
            stray.append((e.name + "/", f"unreadable folder ({err.strerror})"))
    return subjects, stray


def load_rmfrd(
    root: str | Path, patterns: str | Sequence[str] = "thesis", ignore_case: bool | None = None
) -> Dataset:
    """Read an RMFRD tree (or a folder above one) into a `Dataset`.

    `patterns`: "thesis" (`*.jpg`, case-sensitive, as the thesis's glob), "balanced" (jpg, jpeg,
    png, bmp, webp in any case) or a list of glob patterns. Hidden files never match (as glob).
    `images` holds every matching file of the subjects on both sides, sorted by subject, side
    (unmasked first) and file name; the per-subject cap is the partition's business.
    """
    root = find_rmfrd_root(root)
    pats, icase = resolve_patterns(patterns)
    if ignore_case is not None:
        icase = ignore_case
    desc = describe_patterns(pats, icase)
    scans = {}
    excluded: dict[str, Any] = {"subjects": [], "files": []}
    for side, dirname, _ in SIDES:
        subs, stray = _scan_side(root / dirname)
        scans[side] = subs
        for name, reason in stray:
            excluded["files"].append({
                "path": f"{dirname}/{name}", "subject": None, "reason": reason,
                "action": "ignored",
            })
    common = sorted(set(scans["unmasked"]) & set(scans["masked"]))
    for side, dirname, _ in SIDES:
        other = "masked" if side == "unmasked" else "unmasked"
        for s in sorted(set(scans[side]) - set(scans[other])):
            excluded["subjects"].append({
                "subject": s, "side": side,
                "reason": f"only in {dirname} (no {other} folder)",
                "action": "not a subject of the partition (needs both sides)",
                "files": len(scans[side][s]),
            })
    images: list[FaceImage] = []
    for s in common:
        for side, dirname, masked in SIDES:
            names = scans[side][s]
            n_match = 0
            for name in names:
                rel = f"{dirname}/{s}/{name}"
                if not is_utf8(name):
                    rel, reason = f"{dirname}/{s}/{shown(name)}", "name is not valid UTF-8"
                elif name.startswith("."):
                    reason = "hidden file (glob skips it)"
                elif not matches(name, pats, icase):
                    reason = f"does not match {desc}"
                elif not os.path.isfile(root / rel):
                    reason = "not a regular file"
                else:
                    images.append(FaceImage(rel, s, masked))
                    n_match += 1
                    continue
                excluded["files"].append(
                    {"path": rel, "subject": s, "reason": reason, "action": "ignored"}
                )
            if n_match == 0:
                excluded["subjects"].append({
                    "subject": s, "side": side,
                    "reason": (f"empty {side} folder" if not names
                               else f"no file matching {desc} in its {side} folder"),
                    "action": (f"kept: counts as a subject of its split; no {side} images, "
                               "so no genuine pairs; its other side's images still pair"),
                    "files": len(names),
                })
    return Dataset(root=root, layout="rmfrd", subjects=common, images=images,
                   excluded=excluded, patterns=pats, ignore_case=icase)


#: the download: RMFRD's archive on Google Drive
SOURCE: dict[str, Any] = {
    "gdrive_id": "1UlOk6EtiaXTHylRUx2mySgvJX9ycoeBp",
    "what": "RMFRD (Wang et al. 2020), self-built-masked-face-recognition-dataset",
}

SPEC = DatasetSpec(
    name="rmfrd", label="RMFRD (Wang et al. 2020): real masked faces, self-built-masked-face-"
    "recognition-dataset", layout="rmfrd", load=load_rmfrd, detect=detect,
    layout_hint=RMFRD_LAYOUT_HINT, source=SOURCE,
)
