"""MLFW (Wang, Fang, Zhong & Deng 2021, arXiv:2109.05804): LFW and CALFW photos with realistic
masks drawn on them, 112x112 aligned faces. Its layout::

    <root>/<split>/<Name>/<Name>_<i>_<k>.jpg        <split>: train, val, test (any of them)

or one split's folder alone, ``<root>/<Name>/<Name>_<i>_<k>.jpg``. An identity is its folder;
``i`` numbers the LFW photo and ``k`` a version of it (another mask drawn on the same photo:
:func:`photo_of`; the identity protocol does not pair two versions of one photo as genuine). Every image format counts (jpg, jpeg, png,
bmp, webp, any case); a file named for another identity (``<Other>_<i>_<k>``) is left out and
listed, as are hidden files and files that are not images.

**No mask flag.** Most of its photos are masked, some are not, and nothing says which: every
image's ``masked`` is None (unknown), never False. What pairs unmasked with masked images (the
``thesis``, ``balanced`` and ``all_pairs`` protocols, a direct evaluation) refuses it in one line
(:func:`mfr.data.datasets.common.require_mask_flags`); the ``identity`` protocol pairs its images
by identity, whatever their mask.

**Its own splits** (:func:`own_splits`): the identities of ``train/``, ``val/`` and ``test/``
exactly as its folders give them, which the partition's ``identity`` protocol uses in place of
a seeded subject split. An identity found in two split folders would leak between them: it is
left out of every split and listed. One split's folder alone has no own splits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mfr.data.datasets.common import (
    Dataset,
    DatasetSpec,
    FaceImage,
    find_tree,
    folders_at,
    image_name,
    is_dir_entry,
    is_file_entry,
    is_utf8,
    one_tree,
    scan_dir,
    shown,
    subdirs,
)

#: its split folders, in order
MLFW_SPLITS = ("train", "val", "test")
#: ``<Name>_<i>_<k>.<ext>``: an MLFW file name
MLFW_NAME = re.compile(r"^(?P<name>.+)_(?P<i>\d+)_(?P<k>\d+)\.[A-Za-z0-9]+$")
MLFW_LAYOUT_HINT = ("expected an MLFW tree: <root>/train|val|test/<Name>/<Name>_<i>_<k>.jpg, or "
                    "one split's folder <root>/<Name>/<Name>_<i>_<k>.jpg")
#: identity folders looked into per folder when detecting a tree (detection stays cheap)
PROBE = 5


def _names_itself(folder: Path) -> bool:
    """Whether `folder` holds an image named ``<folder name>_<i>_<k>.<ext>``."""
    for e in scan_dir(folder, "", None, []):
        m = MLFW_NAME.match(e.name)
        if m and m["name"] == folder.name and image_name(e.name):
            return True
    return False


def _identity_level(path: Path) -> bool:
    """Whether `path` holds MLFW identity folders (one of its first :data:`PROBE` does)."""
    return any(_names_itself(d) for d in subdirs(path)[:PROBE])


def _split_folders(root: Path) -> list[str]:
    """The split folders of a tree that has them (any holding identity folders), in order."""
    present = [s for s in MLFW_SPLITS if (root / s).is_dir()]
    return present if any(_identity_level(root / s) for s in present) else []


def detect(path: Path, depth: int) -> Path | None:
    """The MLFW tree exactly `depth` folders below `path` (0: `path` itself): a folder with
    split folders of identity folders, or one of identity folders; None when there is none,
    InputError when the level holds several."""
    found = [c for c in folders_at(path, depth) if _split_folders(c) or _identity_level(c)]
    return one_tree(path, found, "MLFW")


def _read_identity(folder: Path, rel: str, excluded: list[dict[str, Any]]) -> list[str]:
    """The image files of one identity folder (sorted names); the rest listed in `excluded`."""
    names = []
    for e in scan_dir(folder, rel, folder.name, excluded):
        path, reason = f"{rel}/{e.name}", None
        m = MLFW_NAME.match(e.name)
        if not is_utf8(e.name):
            path, reason = f"{rel}/{shown(e.name)}", "name is not valid UTF-8"
        elif e.name.startswith("."):
            reason = "hidden file"
        elif not image_name(e.name):
            reason = "not an image file (jpg, jpeg, png, bmp, webp)"
        elif m and m["name"] != folder.name:
            reason = f"named for another identity ({m['name']}): its label is in doubt"
        elif not is_file_entry(e):
            reason = "not a regular file"
        if reason is None:
            names.append(e.name)
        else:
            excluded.append({"path": path, "subject": folder.name, "reason": reason,
                             "action": "ignored"})
    return names


def load_mlfw(root: str | Path, patterns: str | Sequence[str] = "thesis") -> Dataset:
    """Read an MLFW tree (or a folder up to two levels above one) into a `Dataset`: subjects
    are identity folders with an image, images sorted by subject and path, ``masked`` None.
    `patterns` does not apply: its layout names its images."""
    root = find_tree(root, detect, MLFW_LAYOUT_HINT, "MLFW")
    splits = _split_folders(root)
    excluded: dict[str, Any] = {"subjects": [], "files": []}
    levels = [(s, root / s) for s in splits] if splits else [("", root)]
    if splits:  # what else the tree's top level holds
        for e in scan_dir(root, "", None, excluded["files"]):
            if e.name not in splits:
                excluded["files"].append({"path": shown(e.name), "subject": None,
                                          "reason": "not a split folder (train, val, test)",
                                          "action": "ignored"})
    found: dict[str, dict[str, list[str]]] = {}  # identity -> split folder -> file names
    for split, folder in levels:
        prefix = f"{split}/" if split else ""
        for e in scan_dir(folder, prefix, None, excluded["files"]):
            rel = f"{prefix}{shown(e.name)}"
            if not is_utf8(e.name) or not is_dir_entry(e):
                excluded["files"].append({
                    "path": rel, "subject": None, "action": "ignored",
                    "reason": ("name is not valid UTF-8" if not is_utf8(e.name)
                               else "not inside an identity folder")})
                continue
            names = _read_identity(Path(e.path), rel, excluded["files"])
            if names:
                found.setdefault(e.name, {})[split] = names
            else:
                excluded["subjects"].append({"subject": e.name, "side": "all",
                                             "reason": f"no image in {rel}/",
                                             "action": "not a subject", "files": 0})
    images: list[FaceImage] = []
    for name in sorted(found):
        where = found[name]
        if len(where) > 1:
            excluded["subjects"].append({
                "subject": name, "side": "all",
                "reason": f"in {' and '.join(f'{s}/' for s in where)}: an identity in two "
                          f"splits would leak between them",
                "action": "left out of every split",
                "files": sum(len(v) for v in where.values())})
            continue
        (split, names), = where.items()
        prefix = f"{split}/" if split else ""
        images += [FaceImage(f"{prefix}{name}/{f}", name, None) for f in names]
    excluded["subjects"].sort(key=lambda e: (e["subject"], e["reason"]))
    excluded["files"].sort(key=lambda e: e["path"])
    subjects = sorted({im.subject for im in images})
    return Dataset(root=root, layout="mlfw", subjects=subjects, images=images,
                   excluded=excluded, patterns=("*",), ignore_case=True)


def own_splits(dataset: Dataset) -> dict[str, list[str]] | None:
    """MLFW's own subject splits, as its split folders give them: ``{split: subjects}`` for
    train, val and test (empty where the tree lacks that folder); None for one split's folder
    alone (no split folders: the partition splits its identities, seeded)."""
    out: dict[str, set[str]] = {s: set() for s in MLFW_SPLITS}
    for im in dataset.images:
        parts = im.path.split("/")
        if len(parts) != 3 or parts[0] not in out:
            return None
        out[parts[0]].add(im.subject)
    return {s: sorted(v) for s, v in out.items()} if dataset.images else None


def photo_of(path: str) -> str:
    """The LFW photo an MLFW image is a version of: ``<dir>/<Name>_<i>`` of
    ``<dir>/<Name>_<i>_<k>.<ext>`` (the path itself for another name)."""
    head, _, name = path.rpartition("/")
    m = MLFW_NAME.match(name)
    return f"{head}/{m['name']}_{m['i']}" if m else path


#: where it comes from: no download mfr can make (its makers give it on request)
SOURCE: dict[str, Any] = {
    "what": "MLFW (Wang, Fang, Zhong & Deng 2021, arXiv:2109.05804): LFW/CALFW faces with "
            "realistic masks drawn on them",
    "manual": "MLFW's makers give it on request (see arXiv:2109.05804); a public subset (train/ "
              "and val/ identities, 112x112 aligned JPEGs) is the folder dataset/ of the GitHub "
              "repository TiaBerte/masked-face",
}

SPEC = DatasetSpec(
    name="mlfw", label="MLFW (Wang et al. 2021): LFW faces with drawn masks, no mask flag; its "
    "own train/val/test identities", layout="mlfw", load=load_mlfw, detect=detect,
    layout_hint=MLFW_LAYOUT_HINT, evaluation_pair_sets=(), mask_flags=False,
    own_splits=own_splits, photo_of=photo_of, source=SOURCE,
)
