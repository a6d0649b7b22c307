"""MFR2 (Anwar & Raychowdhury 2020): its layout, its labels, its own pairs.txt protocol::

    <root>/<Name>/<Name>_000i.png, <root>/mfr2_labels.txt ("Name, i, masktype"), <root>/pairs.txt

where masktype `no-mask` is unmasked and anything else masked. The tree is found in the folder
given or one below it. :func:`mfr2_pairs` reads pairs.txt into the pair-table format
(:mod:`mfr.data.pairs`): the dataset's own pair sets.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfr.core.errors import InputError, MissingError
from mfr.core.readers.paths import list_folder
from mfr.core.readers.text import excerpt, read_text
from mfr.data.datasets.common import Dataset, DatasetSpec, FaceImage, subdirs

if TYPE_CHECKING:
    import pandas as pd

MFR2_LABELS = "mfr2_labels.txt"
MFR2_PAIRS = "pairs.txt"
MFR2_LAYOUT_HINT = (
    f"expected an MFR2 tree: <root>/<Name>/<Name>_000i.png, <root>/{MFR2_LABELS}, "
    f"<root>/{MFR2_PAIRS}"
)



def is_mfr2_root(path: str | Path) -> bool:
    return (Path(path) / MFR2_LABELS).is_file()


def _mfr2_tree(root: Path) -> Path | None:
    """`root` if it holds MFR2's labels file, else the one folder below it that does, else
    None (none, or several)."""
    return detect(root, 0) or detect(root, 1)


def mfr2_image_path(name: str, i: int) -> str:
    return f"{name}/{name}_{int(i):04d}.png"


def read_mfr2_labels(root: str | Path) -> list[tuple[str, int, str]]:
    """`mfr2_labels.txt` as (name, index, masktype) rows, read by
    :func:`mfr.core.readers.text.read_text` (UTF-8, a BOM dropped, no NUL byte, a size bound);
    InputError names the line of a row that is not ``Name, i, masktype`` or whose name is not
    one folder name (``../outside`` would put a photo outside the tree in the dataset)."""
    from mfr.core.readers.paths import name_part

    path = Path(root) / MFR2_LABELS
    if not path.exists():
        raise MissingError(f"{path}: missing labels file ({MFR2_LAYOUT_HINT})")
    rows = []
    text = read_text(path, "MFR2's labels file: 'Name, i, masktype' rows")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not _index(parts[1]):
            raise InputError(f"{path}:{n}: expected 'Name, i, masktype', got {excerpt(line)}")
        name_part(parts[0], f"{path}:{n}", "name")
        rows.append((parts[0], int(parts[1]), parts[2]))
    return rows


def _index(text: str) -> bool:
    """An image number of MFR2 (``1`` .. ``9999``: its files are ``Name_000i.png``)."""
    return text.isascii() and text.isdigit() and 0 < int(text) < 10_000


def load_mfr2(root: str | Path) -> Dataset:
    """Read an MFR2 tree: images from `mfr2_labels.txt` (masktype `no-mask` = unmasked); the
    tree is `root` or the one folder below it that holds the labels (as :func:`mfr.data.datasets.detect_dataset`)."""
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
    # files on disk that the labels do not mention; entries that cannot be read
    for d in subdirs(root):
        entries, passed = list_folder(d, hidden=True)
        for e in entries:
            rel = f"{d.name}/{e.name}"
            if rel not in seen:
                excluded["files"].append({"path": rel, "subject": d.name,
                                          "reason": f"not listed in {MFR2_LABELS}",
                                          "action": "ignored"})
        for name, why in passed:
            excluded["files"].append({"path": f"{d.name}/{name}", "subject": d.name,
                                      "reason": why, "action": "ignored"})
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

    from mfr.data.pairs import COLUMNS

    if mixed not in ("drop", "keep"):
        raise InputError(f"mixed must be 'drop' or 'keep', got {mixed!r}")
    root = Path(root)
    path = root / MFR2_PAIRS
    if not path.exists():
        raise MissingError(f"{path}: missing pairs file ({MFR2_LAYOUT_HINT})")
    masked = {mfr2_image_path(n, i): t.lower() != "no-mask" for n, i, t in read_mfr2_labels(root)}
    rows, kinds, dropped = [], {"masked-unmasked": 0, "masked-masked": 0,
                                "unmasked-unmasked": 0}, 0
    seen: dict[frozenset, int] = {}  # a pair (either order) -> the line that first named it
    repeated: list[dict[str, int | str]] = []
    text = read_text(path, "MFR2's pairs file: 'Name i j' or 'Name1 i Name2 j' rows")
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 3 and _index(parts[1]) and _index(parts[2]):
            a, b = (parts[0], int(parts[1])), (parts[0], int(parts[2]))
        elif len(parts) == 4 and _index(parts[1]) and _index(parts[3]):
            a, b = (parts[0], int(parts[1])), (parts[2], int(parts[3]))
        else:
            raise InputError(f"{path}:{n}: expected 'Name i j' or 'Name1 i Name2 j', got "
                             f"{excerpt(line)}")
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
        if (first := seen.setdefault(frozenset((pa, pb)), n)) != n:
            # pairs.txt names a few pairs twice: said and listed (df.attrs["repeated"]); a
            # pair set ("drop") counts such a pair once
            repeated.append({"line": n, "first_line": first, "pair": line.strip()})
            if mixed == "drop":
                dropped += 1
                continue
        if kind != "masked-unmasked" and mixed == "drop":
            dropped += 1
            continue
        rows.append((pa, pb, int(a[0] == b[0]), a[0], b[0]))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["label"] = df["label"].astype(np.int64)
    df.attrs["kinds"] = kinds
    df.attrs["dropped"] = dropped
    df.attrs["repeated"] = repeated
    if repeated:
        how = "each counted once" if mixed == "drop" else "kept as the file has them"
        warnings.warn(f"{path}: {len(repeated)} pair(s) named again (first: line "
                      f"{repeated[0]['line']} repeats line {repeated[0]['first_line']}); {how}",
                      stacklevel=2)
    return df


def detect(root: Path, depth: int) -> Path | None:
    """The MFR2 tree `depth` folders below `root`: `root` itself (0) or the one folder below it
    (1) that holds the labels file; None elsewhere (or when several folders below hold one)."""
    if depth == 0:
        return root if is_mfr2_root(root) else None
    if depth == 1:
        below = [d for d in subdirs(root) if is_mfr2_root(d)]
        return below[0] if len(below) == 1 else None
    return None


def load(root: str | Path, patterns: str | Sequence[str] = "thesis") -> Dataset:
    """:func:`load_mfr2` (its labels list its images: file patterns do not apply)."""
    return load_mfr2(root)


def _pairs_txt(root: Path) -> pd.DataFrame:
    df = mfr2_pairs(root)
    df.attrs["stats"] = {"kinds": df.attrs["kinds"],
                         "dropped (not masked-vs-unmasked)": df.attrs["dropped"]}
    df.attrs["entry"] = {
        "pairs_txt_kinds": df.attrs["kinds"],
        "pairs_txt_left_out": ("pairs.txt's masked-masked and unmasked-unmasked pairs (not "
                               "masked vs unmasked); mfr2_pairs_all has every pair of pairs.txt"),
    }
    return df


def _pairs_txt_all(root: Path) -> pd.DataFrame:
    df = mfr2_pairs(root, mixed="keep")
    df.attrs["entry"] = {"pairs_txt_kinds": df.attrs["kinds"]}
    return df


#: the download: MFR2's archive on Google Drive
SOURCE: dict[str, Any] = {
    "gdrive_id": "1ukk0n_srRqcsotK2MjlFPj7L0sXcR2fH",
    "what": "MFR2 (Anwar & Raychowdhury 2020), 53 identities, masked and unmasked",
}

SPEC = DatasetSpec(
    name="mfr2", label="MFR2 (Anwar & Raychowdhury 2020): 53 identities, masked and unmasked",
    layout="mfr2", load=load, detect=detect, layout_hint=MFR2_LAYOUT_HINT,
    pair_sets={"mfr2_pairs": _pairs_txt, "mfr2_pairs_all": _pairs_txt_all},
    partition_pair_sets=("mfr2_pairs",),
    evaluation_pair_sets=("mfr2_pairs", "masked_vs_unmasked", "mfr2_pairs_all"),
    source=SOURCE,
)
