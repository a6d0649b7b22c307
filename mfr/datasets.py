"""Face datasets on disk: RMFRD's layout and MFR2's, read into one in-memory representation.

A `Dataset` is its `root` (the folder the image paths are relative to), its `layout`, its
`subjects` (sorted, Python string order) and its `images` (`FaceImage`: POSIX path relative to
`root`, subject, masked flag), plus `excluded`: what was left out or looked odd, and why.

RMFRD (Wang et al. 2020)::

    <root>/AFDB_masked_face_dataset/<subject>/*.jpg
    <root>/AFDB_face_dataset/<subject>/*.jpg

where `<root>` is usually `self-built-masked-face-recognition-dataset`; `find_rmfrd_root` also
accepts a folder up to two levels above it. Subjects are folder names present on *both* sides;
a subject folder with no matching file still counts (the thesis's numbers need this) and is
listed in `excluded["subjects"]`. Files are matched by the protocol's patterns: the thesis's
`glob('*.jpg')` (case-sensitive, hidden files skipped) or, for the `balanced` protocol, every
common image format in any case.

MFR2 (Anwar & Raychowdhury 2020)::

    <root>/<Name>/<Name>_000i.png, <root>/mfr2_labels.txt ("Name, i, masktype"), <root>/pairs.txt

where masktype `no-mask` is unmasked and anything else masked.

Nothing here opens an image but :func:`check_image` (a header read, used by the partition on the
files it selects), so listing a 95k-file tree stays fast. :func:`mfr2_pairs` reads MFR2's own
pairs.txt protocol into the pair-table format (:mod:`mfr.pairs`).
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfr.errors import InputError, MissingError, NotADirError

if TYPE_CHECKING:
    import pandas as pd

MASKED_DIR = "AFDB_masked_face_dataset"
UNMASKED_DIR = "AFDB_face_dataset"
RMFRD_DIRNAME = "self-built-masked-face-recognition-dataset"
MFR2_LABELS = "mfr2_labels.txt"
MFR2_PAIRS = "pairs.txt"

THESIS_PATTERNS: tuple[str, ...] = ("*.jpg",)
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
BALANCED_PATTERNS: tuple[str, ...] = tuple(f"*{e}" for e in IMAGE_EXTENSIONS)

RMFRD_LAYOUT_HINT = (
    f"expected an RMFRD tree: <root>/{MASKED_DIR}/<subject>/*.jpg and "
    f"<root>/{UNMASKED_DIR}/<subject>/*.jpg (<root> is usually {RMFRD_DIRNAME})"
)
MFR2_LAYOUT_HINT = (
    f"expected an MFR2 tree: <root>/<Name>/<Name>_000i.png, <root>/{MFR2_LABELS}, "
    f"<root>/{MFR2_PAIRS}"
)

SIDES = (("unmasked", UNMASKED_DIR, False), ("masked", MASKED_DIR, True))


@dataclass(frozen=True, order=True)
class FaceImage:
    """One face image: `path` is POSIX and relative to the dataset's root."""

    path: str
    subject: str
    masked: bool


@dataclass
class Dataset:
    """Subjects and images of one tree; `excluded` says what was left out and why."""

    root: Path
    layout: str  # "rmfrd" | "mfr2"
    subjects: list[str]
    images: list[FaceImage]
    excluded: dict[str, Any] = field(default_factory=lambda: {"subjects": [], "files": []})
    patterns: tuple[str, ...] = THESIS_PATTERNS
    ignore_case: bool = False

    def abspath(self, image: FaceImage | str) -> Path:
        """The absolute path of an image (or of a path relative to `root`)."""
        rel = image.path if isinstance(image, FaceImage) else image
        return self.root / rel

    def by_subject(self, masked: bool) -> dict[str, list[FaceImage]]:
        """Images of one side per subject (every subject present, in `images` order)."""
        out: dict[str, list[FaceImage]] = {s: [] for s in self.subjects}
        for im in self.images:
            if im.masked == masked and im.subject in out:
                out[im.subject].append(im)
        return out

    def summary(self) -> dict[str, int]:
        n_masked = sum(im.masked for im in self.images)
        return {
            "subjects": len(self.subjects),
            "unmasked_images": len(self.images) - n_masked,
            "masked_images": n_masked,
        }


def protocol_patterns(protocol: str) -> tuple[tuple[str, ...], bool]:
    """File patterns and case-insensitivity of a partition protocol."""
    if protocol == "thesis":
        return THESIS_PATTERNS, False
    if protocol == "balanced":
        return BALANCED_PATTERNS, True
    raise InputError(f"unknown protocol {protocol!r}; expected 'thesis' or 'balanced'")


def _resolve_patterns(patterns: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    if isinstance(patterns, str):
        if patterns in ("thesis", "balanced"):
            return protocol_patterns(patterns)
        return (patterns,), False
    return tuple(patterns), False


def _describe(patterns: tuple[str, ...], ignore_case: bool) -> str:
    s = "|".join(patterns)
    return f"{s} (any case)" if ignore_case else s


def _matches(name: str, patterns: tuple[str, ...], ignore_case: bool) -> bool:
    if ignore_case:
        name = name.lower()
        return any(fnmatch.fnmatchcase(name, p.lower()) for p in patterns)
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


# --------------------------------------------------------------------------------------------
# RMFRD


def _has_sides(path: Path) -> bool:
    return (path / MASKED_DIR).is_dir() or (path / UNMASKED_DIR).is_dir()


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: p.name)
    except OSError:
        return []


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
    levels = [[path]]
    levels.append(_subdirs(path))
    levels.append([g for c in levels[1] for g in _subdirs(c)])
    for candidates in levels:
        found = [c for c in candidates if _has_sides(c)]
        if not found:
            continue
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
                raise MissingError(
                    f"{root / dirname}: missing side folder ({RMFRD_LAYOUT_HINT})"
                )
        return root
    raise MissingError(
        f"{path}: no RMFRD tree found (looked in {path}, {path}/*, {path}/*/*; "
        f"{RMFRD_LAYOUT_HINT})"
    )


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by os.fsdecode as surrogates
        return False
    return True


def shown(name: str) -> str:
    """A file name as text that can be written anywhere (undecodable bytes as \\xNN)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _scan_side(side_dir: Path) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Subject folder -> sorted file names in it; and (entry, reason) for what is not a
    readable subject folder at the side's top level (stray files, unreadable folders, symlink
    loops, names that are not UTF-8): listed, never fatal."""
    subjects: dict[str, list[str]] = {}
    stray: list[tuple[str, str]] = []
    with os.scandir(side_dir) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if not _utf8(e.name):
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
    pats, icase = _resolve_patterns(patterns)
    if ignore_case is not None:
        icase = ignore_case
    desc = _describe(pats, icase)
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
                if not _utf8(name):
                    rel, reason = f"{dirname}/{s}/{shown(name)}", "name is not valid UTF-8"
                elif name.startswith("."):
                    reason = "hidden file (glob skips it)"
                elif not _matches(name, pats, icase):
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


# --------------------------------------------------------------------------------------------
# MFR2


def is_mfr2_root(path: str | Path) -> bool:
    return (Path(path) / MFR2_LABELS).is_file()


def _mfr2_tree(root: Path) -> Path | None:
    """`root` if it holds MFR2's labels file, else the one folder below it that does, else
    None (none, or several)."""
    if is_mfr2_root(root):
        return root
    below = [d for d in _subdirs(root) if is_mfr2_root(d)]
    return below[0] if len(below) == 1 else None


def mfr2_image_path(name: str, i: int) -> str:
    return f"{name}/{name}_{int(i):04d}.png"


def read_mfr2_labels(root: str | Path) -> list[tuple[str, int, str]]:
    """`mfr2_labels.txt` as (name, index, masktype) rows; ValueError names a bad line."""
    path = Path(root) / MFR2_LABELS
    if not path.is_file():
        raise MissingError(f"{path}: missing labels file ({MFR2_LAYOUT_HINT})")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[1].isdigit():
            raise InputError(f"{path}:{n}: expected 'Name, i, masktype', got {line!r}")
        rows.append((parts[0], int(parts[1]), parts[2]))
    return rows


def load_mfr2(root: str | Path) -> Dataset:
    """Read an MFR2 tree: images from `mfr2_labels.txt` (masktype `no-mask` = unmasked); the
    tree is `root` or the one folder below it that holds the labels (as :func:`dataset_root`)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MissingError(f"{root}: no such directory ({MFR2_LAYOUT_HINT})")
    root = _mfr2_tree(root) or root
    labels = read_mfr2_labels(root)
    excluded: dict[str, Any] = {"subjects": [], "files": []}
    images: list[FaceImage] = []
    seen: set[str] = set()
    for name, i, masktype in labels:
        rel = mfr2_image_path(name, i)
        if rel in seen:
            continue
        seen.add(rel)
        if not (root / rel).is_file():
            excluded["files"].append({"path": rel, "subject": name,
                                      "reason": f"listed in {MFR2_LABELS} but missing",
                                      "action": "ignored"})
            continue
        images.append(FaceImage(rel, name, masktype.lower() != "no-mask"))
    # files on disk that the labels do not mention
    for d in _subdirs(root):
        for f in sorted(p.name for p in d.iterdir()):
            rel = f"{d.name}/{f}"
            if rel not in seen:
                excluded["files"].append({"path": rel, "subject": d.name,
                                          "reason": f"not listed in {MFR2_LABELS}",
                                          "action": "ignored"})
    images.sort(key=lambda im: (im.subject, im.masked, im.path))
    subjects = sorted({im.subject for im in images})
    for s in subjects:
        for side, masked in (("unmasked", False), ("masked", True)):
            if not any(im.subject == s and im.masked == masked for im in images):
                excluded["subjects"].append({
                    "subject": s, "side": side, "reason": f"no {side} image in {MFR2_LABELS}",
                    "action": "kept: counts as a subject of its split; no genuine pairs",
                    "files": 0,
                })
    return Dataset(root=root, layout="mfr2", subjects=subjects, images=images,
                   excluded=excluded, patterns=("*",), ignore_case=False)




def mfr2_pairs(root: str | Path, mixed: str = "drop") -> pd.DataFrame:
    """MFR2's `pairs.txt` as a pairs frame (columns `COLUMNS`).

    Each pair is ordered so that its unmasked image (when it has one) is in `unmasked_path`.
    pairs.txt also holds mask-mask and nomask-nomask pairs, which are not masked-vs-unmasked
    pairs: `mixed="drop"` (default) leaves them out, `mixed="keep"` keeps them in file order
    (first image under `unmasked_path`). `df.attrs["kinds"]` counts the pairs of each kind in
    the file, `df.attrs["dropped"]` how many were left out.
    """
    import numpy as np
    import pandas as pd

    from mfr.pairs import COLUMNS

    if mixed not in ("drop", "keep"):
        raise InputError(f"mixed must be 'drop' or 'keep', got {mixed!r}")
    root = Path(root)
    path = root / MFR2_PAIRS
    if not path.is_file():
        raise MissingError(f"{path}: missing pairs file ({MFR2_LAYOUT_HINT})")
    masked = {mfr2_image_path(n, i): t.lower() != "no-mask" for n, i, t in read_mfr2_labels(root)}
    rows, kinds, dropped = [], {"masked-unmasked": 0, "masked-masked": 0,
                                "unmasked-unmasked": 0}, 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            a, b = (parts[0], int(parts[1])), (parts[0], int(parts[2]))
        elif len(parts) == 4 and parts[1].isdigit() and parts[3].isdigit():
            a, b = (parts[0], int(parts[1])), (parts[2], int(parts[3]))
        else:
            raise InputError(f"{path}:{n}: expected 'Name i j' or 'Name1 i Name2 j', got {line!r}")
        pa, pb = mfr2_image_path(*a), mfr2_image_path(*b)
        for p in (pa, pb):
            if p not in masked:
                raise InputError(f"{path}:{n}: {p} is not in mfr2_labels.txt")
        ma, mb = masked[pa], masked[pb]
        if ma and not mb:
            a, b, pa, pb = b, a, pb, pa
        kind = ("masked-unmasked" if ma != mb else "masked-masked" if ma
                else "unmasked-unmasked")
        kinds[kind] += 1
        if kind != "masked-unmasked" and mixed == "drop":
            dropped += 1
            continue
        rows.append((pa, pb, int(a[0] == b[0]), a[0], b[0]))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["label"] = df["label"].astype(np.int64)
    df.attrs["kinds"] = kinds
    df.attrs["dropped"] = dropped
    return df


# --------------------------------------------------------------------------------------------


def dataset_root(root: str | Path) -> tuple[Path, str]:
    """The dataset folder under `root` and its layout, ``"mfr2"`` or ``"rmfrd"``, without
    reading the tree: an MFR2 labels file in `root` or one folder below, else an RMFRD tree
    (:func:`find_rmfrd_root`). MissingError names the places looked at."""
    root = Path(root).expanduser()
    if not root.exists():
        raise MissingError(
            f"{root}: no such directory ({RMFRD_LAYOUT_HINT}; or {MFR2_LAYOUT_HINT})"
        )
    if is_mfr2_root(root):
        return root, "mfr2"
    try:
        return find_rmfrd_root(root), "rmfrd"
    except FileNotFoundError as e:
        if "no RMFRD tree found" not in str(e):
            raise
        if (mfr2 := _mfr2_tree(root)) is not None:
            return mfr2, "mfr2"
        raise MissingError(f"{e}; no {MFR2_LABELS} in {root} or {root}/* either") from None


def load_dataset(root: str | Path, patterns: str | Sequence[str] = "thesis") -> Dataset:
    """Detect the layout under `root` (:func:`dataset_root`) and load it."""
    found, layout = dataset_root(root)
    return load_mfr2(found) if layout == "mfr2" else load_rmfrd(found, patterns=patterns)


def check_image(path: str | Path) -> str | None:
    """None if PIL can read the image's header, else why not (cheap: no pixel decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                w, h = im.size
                if w <= 0 or h <= 0:
                    return "image has zero size"
    except UnidentifiedImageError:
        return "not an image PIL can read (corrupt or not an image file)"
    except Image.DecompressionBombError as e:
        return f"refused: too many pixels for a face image ({e})"
    except (OSError, SyntaxError, ValueError) as e:
        return f"unreadable ({type(e).__name__}: {e})"
    return None
