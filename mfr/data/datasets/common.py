"""What every dataset module shares: the in-memory dataset (`Dataset`, `FaceImage`), the entry a
dataset registers (`DatasetSpec`), file patterns, folder listing and the image header check.

A `Dataset` is its `root` (the folder the image paths are relative to), its `layout`, its
`subjects` (sorted, Python string order) and its `images` (`FaceImage`: POSIX path relative to
`root`, subject, masked flag), plus `excluded`: what was left out or looked odd, and why.

Nothing here opens an image but :func:`check_image` (a header read, used by the partition on the
files it selects), so listing a 95k-file tree stays fast.
"""

from __future__ import annotations

import fnmatch
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
    layout: str  # the registry name of the layout that read it ("rmfrd" | "mfr2")
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
    #: the own pair set the partition writes beside its splits, as ``mfr2_pairs.csv`` (the one
    #: slot the pair readers know, :data:`mfr.data.pairs.EXTRA_SPLITS`); None: the splits alone
    partition_pairs: str | None = None
    #: the pair sets of a direct evaluation (`mfr evaluate --data-root`), in order:
    #: :data:`EVERY_PAIR` and names of `pair_sets`
    evaluation_pair_sets: tuple[str, ...] = (EVERY_PAIR,)
    #: where its download comes from: ``gdrive_id`` (its Google Drive file) and ``what``
    source: Mapping[str, str] | None = None
    #: ``make(folder) -> root``: writes the dataset there (a generated one: no download)
    make: Callable[[Path], Path] | None = None

    def own_pairs(self, name: str, root: Path) -> pd.DataFrame:
        return self.pair_sets[name](Path(root))


def protocol_patterns(protocol: str) -> tuple[tuple[str, ...], bool]:
    """File patterns and case-insensitivity of a partition protocol."""
    if protocol == "thesis":
        return THESIS_PATTERNS, False
    if protocol == "balanced":
        return BALANCED_PATTERNS, True
    raise InputError(f"unknown protocol {protocol!r}; expected 'thesis' or 'balanced'")


def resolve_patterns(patterns: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    if isinstance(patterns, str):
        if patterns in ("thesis", "balanced"):
            return protocol_patterns(patterns)
        return (patterns,), False
    return tuple(patterns), False


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
