"""What every dataset module shares: the in-memory dataset (`Dataset`, `FaceImage`), the entry a
dataset registers (`DatasetSpec`), file patterns, folder listing and the image header check.

A `Dataset` is its `root` (the folder the image paths are relative to), its `layout`, its
`subjects` (sorted, Python string order) and its `images` (`FaceImage`: POSIX path relative to
`root`, subject, masked flag), plus `excluded`: what was left out or looked odd, and why.

The masked flag is True (masked), False (unmasked) or None: unknown (MLFW's files carry none).
An unknown flag never counts as either side: :meth:`Dataset.by_subject` leaves such images out
of both, :meth:`Dataset.summary` counts them apart, the masked-vs-unmasked protocols list and
leave them out (and refuse a dataset with no flag at all, :func:`require_mask_flags`), and the
``identity`` protocol, which pairs images whatever their mask, takes them.

Nothing here opens an image but :func:`check_image` (a header read, used by the partition on the
files it selects), so listing a 95k-file tree stays fast.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfr.core.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

THESIS_PATTERNS: tuple[str, ...] = ("*.jpg",)
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
BALANCED_PATTERNS: tuple[str, ...] = tuple(f"*{e}" for e in IMAGE_EXTENSIONS)

#: The pair set every dataset has in a direct evaluation: every unmasked x masked image pair.
EVERY_PAIR = "masked_vs_unmasked"

#: the partition protocols (:mod:`mfr.data.partition`) -> their file patterns and whether
#: these match in any case (for layouts that list files by pattern: RMFRD's)
PROTOCOL_PATTERNS: dict[str, tuple[tuple[str, ...], bool]] = {
    "thesis": (THESIS_PATTERNS, False),
    "balanced": (BALANCED_PATTERNS, True),
    "all_pairs": (BALANCED_PATTERNS, True),
    "identity": (BALANCED_PATTERNS, True),
}


@dataclass(frozen=True, order=True)
class FaceImage:
    """One face image: `path` is POSIX and relative to the dataset's root; `masked` True,
    False, or None where the dataset gives no mask flag (unknown: never taken as unmasked)."""

    path: str
    subject: str
    masked: bool | None


@dataclass
class Dataset:
    """Subjects and images of one tree; `excluded` says what was left out and why."""

    root: Path
    layout: str  # the registry name of the layout that read it
    subjects: list[str]
    images: list[FaceImage]
    excluded: dict[str, Any] = field(default_factory=lambda: {"subjects": [], "files": []})
    patterns: tuple[str, ...] = THESIS_PATTERNS
    ignore_case: bool = False

    def abspath(self, image: FaceImage | str) -> Path:
        """The absolute path of an image (or of a path relative to `root`)."""
        rel = image.path if isinstance(image, FaceImage) else image
        return self.root / rel

    def by_subject(self, masked: bool | None) -> dict[str, list[FaceImage]]:
        """Images of one side per subject (every subject present, in `images` order); `masked`
        None: the images whose flag is unknown."""
        out: dict[str, list[FaceImage]] = {s: [] for s in self.subjects}
        for im in self.images:
            side = im.masked is None if masked is None else (
                im.masked is not None and im.masked == masked)
            if side and im.subject in out:
                out[im.subject].append(im)
        return out

    def unknown_mask(self) -> list[FaceImage]:
        """The images whose mask flag is unknown (None)."""
        return [im for im in self.images if im.masked is None]

    def summary(self) -> dict[str, int]:
        """Subjects and images per side; ``unknown_mask_images`` too where some flags are
        unknown (never counted as unmasked)."""
        n_masked = sum(im.masked is not None and bool(im.masked) for im in self.images)
        n_unknown = sum(im.masked is None for im in self.images)
        out = {
            "subjects": len(self.subjects),
            "unmasked_images": len(self.images) - n_masked - n_unknown,
            "masked_images": n_masked,
        }
        if n_unknown:
            out["unknown_mask_images"] = n_unknown
        return out


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's entry in the registry (:mod:`mfr.data.datasets`): everything mfr knows of it.

    `layout` is the registry name of the dataset whose tree layout it has: its own name when it
    brings a layout (then `detect` finds its tree), another's when it shares one (a generated
    sample in RMFRD's layout: `detect` None, and a tree of that layout is detected as the
    layout's own dataset). `load(root, patterns)` reads a tree (`patterns`: a partition
    protocol's file patterns, where the layout lists files by pattern).
    """

    name: str
    label: str  # one line for humans: what it is, whose it is
    layout: str
    load: Callable[..., Dataset]
    #: ``detect(root, depth)``: its tree exactly `depth` folders below `root`, or None (raises
    #: InputError-family errors for a tree found but broken or ambiguous)
    detect: Callable[[Path, int], Path | None] | None = None
    layout_hint: str = ""  # "expected ..." (error messages)
    #: its own pair sets, by name, in order: ``pairs(root) -> pairs frame`` (columns
    #: :data:`mfr.data.pairs.COLUMNS`; ``attrs["stats"]``: extra keys for the partition's stats of
    #: it, ``attrs["entry"]``: for its entry in a direct evaluation's metrics)
    pair_sets: Mapping[str, Callable[[Path], pd.DataFrame]] = field(default_factory=dict)
    #: the own pair sets (names of `pair_sets`) the partition writes beside its splits, each as
    #: ``<name>.csv`` and recorded in its run.json (``own_pair_sets``), where the pair readers
    #: find them (:func:`mfr.data.pairs.own_pair_sets`); empty: the splits alone
    partition_pair_sets: tuple[str, ...] = ()
    #: the pair sets of a direct evaluation (`mfr evaluate --data-root`), in order:
    #: :data:`EVERY_PAIR` and names of `pair_sets`; the first is the one a threshold is taken
    #: from (:func:`mfr.evaluation.thresholds.pair_set_order`)
    evaluation_pair_sets: tuple[str, ...] = (EVERY_PAIR,)
    #: whether its images carry a mask flag; False: every ``FaceImage.masked`` is None, and
    #: what pairs masked with unmasked images refuses it (:func:`require_mask_flags`)
    mask_flags: bool = True
    #: ``own_splits(dataset) -> {split: subjects}`` (train, val, test; a split it lacks is
    #: empty) where its tree gives its own subject splits, or None there; read by the
    #: partition's ``identity`` protocol in place of the seeded subject split
    own_splits: Callable[[Dataset], Mapping[str, Sequence[str]] | None] | None = None
    #: ``photo_of(path) -> photo id`` where it holds several versions of one photo (MLFW: masks
    #: drawn on one LFW photo): the identity protocol's genuine pairs leave out two versions of
    #: one photo; None: each image its own photo
    photo_of: Callable[[str], str] | None = None
    #: where it comes from: ``what`` it is, and ``gdrive_id`` (its Google Drive file, which
    #: `mfr data fetch` downloads) or ``manual`` (how to get it by hand, where its makers give
    #: it on request: `mfr data fetch NAME --from PATH` then takes it)
    source: Mapping[str, str] | None = None
    #: ``make(folder) -> root``: writes the dataset there (a generated one: no download)
    make: Callable[[Path], Path] | None = None

    def own_pairs(self, name: str, root: Path) -> pd.DataFrame:
        return self.pair_sets[name](Path(root))


def protocol_patterns(protocol: str) -> tuple[tuple[str, ...], bool]:
    """File patterns and case-insensitivity of a partition protocol."""
    if protocol not in PROTOCOL_PATTERNS:
        raise InputError(f"unknown protocol {protocol!r}; expected one of "
                         f"{', '.join(PROTOCOL_PATTERNS)}")
    return PROTOCOL_PATTERNS[protocol]


def resolve_patterns(patterns: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    if isinstance(patterns, str):
        if patterns in PROTOCOL_PATTERNS:
            return protocol_patterns(patterns)
        return (patterns,), False
    return tuple(patterns), False


def require_mask_flags(dataset: Dataset, what: str) -> list[dict[str, Any]]:
    """For what pairs masked with unmasked images (`what`: e.g. "protocol thesis"): InputError
    (one line) when no image of `dataset` has a mask flag; else the excluded-file entries of
    the images whose flag is unknown (left out of both sides, never taken as unmasked)."""
    unknown = dataset.unknown_mask()
    if unknown and len(unknown) == len(dataset.images):
        raise InputError(f"{dataset.root}: the {dataset.layout} images carry no mask flag; "
                         f"{what} pairs unmasked with masked images (use the protocol identity, "
                         f"which pairs images by identity whatever their mask)")
    return [{"path": im.path, "subject": im.subject, "reason": "mask flag unknown",
             "action": f"left out: {what} pairs unmasked with masked images"} for im in unknown]


def describe_patterns(patterns: tuple[str, ...], ignore_case: bool) -> str:
    s = "|".join(patterns)
    return f"{s} (any case)" if ignore_case else s


def matches(name: str, patterns: tuple[str, ...], ignore_case: bool) -> bool:
    if ignore_case:
        name = name.lower()
        return any(fnmatch.fnmatchcase(name, p.lower()) for p in patterns)
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def subdirs(path: Path) -> list[Path]:
    """The folders in `path`, by name, hidden ones included ([] when it cannot be read; a
    symlink loop or an unreadable entry is passed over: :func:`mfr.core.readers.paths.list_folder`)."""
    from mfr.core.readers.paths import list_folder

    return [e.path for e in list_folder(path, hidden=True)[0] if e.kind == "dir"]


def folders_at(path: Path, depth: int) -> list[Path]:
    """The folders exactly `depth` levels below `path` (0: `path` itself), sorted by level."""
    level = [path]
    for _ in range(depth):
        level = [c for p in level for c in subdirs(p)]
    return level


def is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by os.fsdecode as surrogates
        return False
    return True


def shown(name: str) -> str:
    """A file name as text that can be written anywhere (undecodable bytes as \\xNN)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_image(path: str | Path) -> str | None:
    """None if the image's header can be read within the pixel bound, else why not (cheap: no
    pixel decoding; :func:`mfr.core.readers.images.image_problem`)."""
    from mfr.core.readers.images import image_problem

    return image_problem(path)


#: how many folders below the one given a tree is looked for (:func:`find_tree`)
MAX_DEPTH = 2


def find_tree(path: str | Path, detect: Callable[[Path, int], Path | None], hint: str,
              what: str) -> Path:
    """The tree that `detect` finds in `path` or up to :data:`MAX_DEPTH` folders below it (the
    closest); MissingError / NotADirError (one line) naming where it looked and `hint`."""
    from mfr.core.errors import MissingError, NotADirError

    path = Path(path).expanduser()
    if not path.exists():
        raise MissingError(f"{path}: no such directory ({hint})")
    if not path.is_dir():
        raise NotADirError(f"{path}: not a directory ({hint})")
    for depth in range(MAX_DEPTH + 1):
        if (root := detect(path, depth)) is not None:
            return root
    raise MissingError(f"{path}: no {what} tree found (looked in {path}, {path}/*, "
                       f"{path}/*/*; {hint})")


def image_name(name: str) -> bool:
    """Whether a file name has an image extension (:data:`IMAGE_EXTENSIONS`, any case) and is
    not hidden."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def one_tree(path: Path, found: list[Path], what: str) -> Path | None:
    """The one tree of a level (None when none); InputError when the level holds several."""
    if len(found) > 1:
        raise InputError(f"{path}: several {what} trees found "
                         f"({', '.join(str(c) for c in found)}); point --data-root at one of them")
    return found[0] if found else None


def scan_dir(folder: Path, rel: str, subject: str | None,
            excluded: list[dict[str, Any]]) -> list[os.DirEntry]:
    """The entries of `folder`, sorted by name; [] (and an excluded entry) when unreadable."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as err:
        excluded.append({"path": rel.rstrip("/") + "/", "subject": subject, "action": "ignored",
                         "reason": f"unreadable folder ({err.strerror})"})
        return []


def is_file_entry(e: os.DirEntry) -> bool:
    try:
        return e.is_file()
    except OSError:  # e.g. a symlink loop
        return False


def is_dir_entry(e: os.DirEntry) -> bool:
    try:
        return e.is_dir()
    except OSError:
        return False
