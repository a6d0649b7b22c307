"""M2FRED (a mobile masked face recognition dataset): real masks on real people, face crops of
its recordings. Its layout, as its face crops are published::

    <root>/<id>/<a>-<m>-<k>.png

where ``<id>`` is a person (the folder is the subject), ``m`` the mask flag (0 unmasked,
1 masked) and ``a``, ``k`` number the photo. Every image format counts (png, jpg, jpeg, bmp,
webp, any case). An image whose name does not give a mask flag is left out and listed (its flag
is unknown: never taken as unmasked); so are hidden files and files that are not images. A
person with one side only stays a subject (its images still pair as impostors), as in MFR2.
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

#: ``<a>-<m>-<k>.<ext>``: an M2FRED file name, ``m`` its mask flag
M2FRED_NAME = re.compile(r"^(?P<a>\d+)-(?P<m>[01])-(?P<k>\d+)\.[A-Za-z0-9]+$")
M2FRED_LAYOUT_HINT = ("expected an M2FRED tree: <root>/<id>/<a>-<m>-<k>.png, m the mask flag "
                      "(0 unmasked, 1 masked)")
#: person folders looked into per folder when detecting a tree (detection stays cheap)
PROBE = 5


def _holds_photos(folder: Path) -> bool:
    return any(M2FRED_NAME.match(e.name) and image_name(e.name)
               for e in scan_dir(folder, "", None, []))


def detect(path: Path, depth: int) -> Path | None:
    """The M2FRED tree exactly `depth` folders below `path` (0: `path` itself): a folder
    whose person folders (one of its first :data:`PROBE`) hold ``<a>-<m>-<k>`` images; None
    when there is none, InputError when the level holds several."""
    found = [c for c in folders_at(path, depth)
             if any(_holds_photos(d) for d in subdirs(c)[:PROBE])]
    return one_tree(path, found, "M2FRED")


def load_m2fred(root: str | Path, patterns: str | Sequence[str] = "thesis") -> Dataset:
    """Read an M2FRED tree (or a folder up to two levels above one) into a `Dataset`: the mask
    flag from each file name; images sorted by subject, side (unmasked first) and path.
    `patterns` does not apply: its layout names its images."""
    root = find_tree(root, detect, M2FRED_LAYOUT_HINT, "M2FRED")
    excluded: dict[str, Any] = {"subjects": [], "files": []}
    images: list[FaceImage] = []
    for e in scan_dir(root, "", None, excluded["files"]):
        if not is_utf8(e.name) or not is_dir_entry(e):
            excluded["files"].append({
                "path": shown(e.name), "subject": None, "action": "ignored",
                "reason": ("name is not valid UTF-8" if not is_utf8(e.name)
                           else "not inside a person folder")})
            continue
        mine, n_files = [], 0
        for f in scan_dir(Path(e.path), e.name, e.name, excluded["files"]):
            n_files += 1
            rel, reason = f"{e.name}/{f.name}", None
            m = M2FRED_NAME.match(f.name)
            if not is_utf8(f.name):
                rel, reason = f"{e.name}/{shown(f.name)}", "name is not valid UTF-8"
            elif f.name.startswith("."):
                reason = "hidden file"
            elif not image_name(f.name):
                reason = "not an image file (png, jpg, jpeg, bmp, webp)"
            elif m is None:
                reason = ("no mask flag in its name (expected <a>-<m>-<k>.<ext>, m 0 unmasked "
                          "or 1 masked)")
            elif not is_file_entry(f):
                reason = "not a regular file"
            if reason is None:
                mine.append(FaceImage(rel, e.name, m["m"] == "1"))
            else:
                excluded["files"].append({"path": rel, "subject": e.name, "reason": reason,
                                          "action": "ignored"})
        if not mine:
            excluded["subjects"].append({"subject": e.name, "side": "all",
                                         "reason": "no <a>-<m>-<k> image in its folder",
                                         "action": "not a subject", "files": n_files})
            continue
        images += mine
        for side, masked in (("unmasked", False), ("masked", True)):
            if not any(im.masked == masked for im in mine):
                excluded["subjects"].append({
                    "subject": e.name, "side": side, "reason": f"no {side} image",
                    "action": "kept: counts as a subject of its split; no genuine pairs",
                    "files": 0})
    images.sort(key=lambda im: (im.subject, im.masked, im.path))
    excluded["files"].sort(key=lambda x: x["path"])
    return Dataset(root=root, layout="m2fred", subjects=sorted({im.subject for im in images}),
                   images=images, excluded=excluded, patterns=("*",), ignore_case=True)


#: where it comes from: no download mfr can make (its makers share it under an agreement)
SOURCE: dict[str, Any] = {
    "what": "M2FRED, a mobile masked face recognition dataset: real masks on real people",
    "manual": "M2FRED's makers share it under an agreement; public face crops of 43 of its "
              "people (128x128 PNG, mask flag in the file name) are the folder "
              "dataset_test/m2fred_face/ of the GitHub repository "
              "Givaa/MaskedFaceRecognitionSimilarity",
}

SPEC = DatasetSpec(
    name="m2fred", label="M2FRED: real masks on real people (mobile recordings), mask flag in "
    "the file name", layout="m2fred", load=load_m2fred, detect=detect,
    layout_hint=M2FRED_LAYOUT_HINT, source=SOURCE,
)
