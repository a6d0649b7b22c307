"""ArcFace's five-point alignment: 112x112 face chips as InsightFace's networks expect them.

InsightFace (``python-package/insightface/utils/face_align.py``, ``norm_crop``) aligns a face by
the similarity transform (rotation, uniform scale, translation; no reflection) that best maps
its five landmarks -- eye centres, nose tip, mouth corners, in MTCNN's order -- onto the fixed
template :data:`ARCFACE_TEMPLATE` (``arcface_dst``), estimated by least squares as
``skimage.transform.SimilarityTransform.estimate`` does (Umeyama 1991), then warps the photo
with ``cv2.warpAffine(img, M, (112, 112), borderValue=0.0)``: bilinear, pixels outside the photo
black. This module does the same in numpy only:

- :func:`similarity_transform`: Umeyama's estimate, skimage's ``_umeyama`` line by line
  (float64), batched over faces. Equal to skimage 0.26's to 1e-13 on float64 points;
  InsightFace passes float32 points, on which skimage computes partly in float32: 8e-6 apart
  (relative), far below the warp's 1/32-pixel grid.
- :func:`warp_affine`: OpenCV's ``warpAffine`` for uint8 images with ``INTER_LINEAR`` and a
  constant black border; pixel centres at integer coordinates (OpenCV's convention: no
  half-pixel shift). Two arithmetics, as OpenCV has had two: ``"opencv4"`` (the default), the
  fixed-point one of OpenCV 2.x to 4.10 at least (source positions rounded to 1/32 pixel,
  15-bit integer weights), the one of InsightFace's time (its aligned training sets were made
  with OpenCV 3); ``"opencv5"``, plain floating-point bilinear weights, as the OpenCV 5.1
  wheel computes. Measured by
  ``benchmarks/face_align_vs_cv2.py`` (``results/face_finding/align_vs_cv2_*.json``) on 15.1 M
  channel values (400 warps, 5 random ArcFace-like transforms of each of 80 real photos):
  ``"opencv4"`` is identical, value for value, to opencv-python-headless 4.10.0;
  ``"opencv5"`` equals opencv-python-headless 5.1.0 but for 1.6 values in 100,000, off by 1
  (rounding ties); the two arithmetics differ from each other in 7.7% of the values, by at most
  6 grey levels (97% of those by 1).
- :func:`arcface_chips`: both together, for a batch of photos.

Landmark order everywhere (mfr's and MTCNN's): left_eye, right_eye, nose, mouth_left,
mouth_right, as (x, y) in image pixels; "left" is the image's left (the subject's right eye).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mfr.core.errors import InputError

__all__ = [
    "ARCFACE_TEMPLATE",
    "ARITHMETICS",
    "CHIP_SIZE",
    "LANDMARK_ORDER",
    "arcface_chips",
    "arcface_matrices",
    "similarity_transform",
    "template_landmarks",
    "transform_points",
    "warp_affine",
]

#: the side of an ArcFace chip, in pixels
CHIP_SIZE = 112
#: the order of the five landmarks (rows of every (5, 2) array here)
LANDMARK_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
#: InsightFace's ``arcface_dst``: where the five landmarks go in a 112x112 chip (x, y). Kept in
#: float32, as InsightFace declares it, so that the transforms match its own to the last bit.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)

# OpenCV's fixed-point constants for warpAffine + bilinear remap (imgproc.hpp / imgwarp.cpp)
_INTER_BITS = 5
_INTER_TAB_SIZE = 1 << _INTER_BITS
_AB_BITS = 10
_AB_SCALE = 1 << _AB_BITS
_ROUND_DELTA = _AB_SCALE // _INTER_TAB_SIZE // 2
_COEF_BITS = 15


def _as_landmarks(landmarks, name: str = "landmarks") -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim == 2:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[1:] != (5, 2):
        raise InputError(f"{name}: expected (5, 2) or (N, 5, 2) points, got shape "
                         f"{np.asarray(landmarks).shape}")
    return pts


def similarity_transform(src, dst) -> np.ndarray:
    """(N, 3, 3) similarity transforms mapping each `src` onto `dst` in the least-squares sense.

    Umeyama's estimate with scale, as skimage's ``_umeyama(src, dst, estimate_scale=True)``:
    the same steps in float64 (cross-covariance, SVD, reflection fix, scale from the singular
    values), so it gives skimage's ``SimilarityTransform.estimate(src, dst).params``. `src` and
    `dst`: (K, 2) or (N, K, 2) points, K >= 2 (broadcast against each other). A degenerate set
    (all `src` points equal: rank 0) gives a matrix of NaN, as skimage does.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    if s.ndim == 2:
        s = s[None]
    if d.ndim == 2:
        d = d[None]
    if s.ndim != 3 or d.ndim != 3 or s.shape[-1] != 2 or d.shape[-1] != 2 or s.shape[1] < 2:
        raise InputError(f"expected (K, 2) or (N, K, 2) points with K >= 2, got {s.shape} and "
                         f"{d.shape}")
    s, d = np.broadcast_arrays(s, d)
    n, k, dim = s.shape
    s_mean, d_mean = s.mean(axis=1), d.mean(axis=1)
    s_dm, d_dm = s - s_mean[:, None], d - d_mean[:, None]
    a = np.einsum("nki,nkj->nij", d_dm, s_dm) / k  # dst_demean.T @ src_demean / num
    sign = np.ones((n, dim))
    sign[np.linalg.det(a) < 0, dim - 1] = -1.0
    u, sv, v = np.linalg.svd(a)
    rank = np.linalg.matrix_rank(a)
    t = np.tile(np.eye(dim + 1), (n, 1, 1))
    # rank dim-1 with det(U) det(V) > 0: no reflection fix (skimage's special case)
    plain = (rank == dim - 1) & (np.linalg.det(u) * np.linalg.det(v) > 0)
    fix = sign.copy()
    fix[(rank == dim - 1) & ~plain, dim - 1] = -1.0
    rot = np.einsum("nij,nj,njk->nik", u, fix, v)
    rot[plain] = u[plain] @ v[plain]
    t[:, :dim, :dim] = rot
    with np.errstate(divide="ignore", invalid="ignore"):  # rank 0: NaN below
        scale = (1.0 / s_dm.var(axis=1).sum(axis=1)) * np.einsum("nj,nj->n", sv, sign)
    t[:, :dim, dim] = d_mean - scale[:, None] * np.einsum("nij,nj->ni", rot, s_mean)
    t[:, :dim, :dim] *= scale[:, None, None]
    t[rank == 0] = np.nan
    return t


def arcface_matrices(landmarks, size: int = CHIP_SIZE) -> np.ndarray:
    """(N, 2, 3) affine matrices from photo pixels to the `size` x `size` chip, as
    InsightFace's ``estimate_norm(lmk, size)`` (``size`` a multiple of 112: the template
    scaled by size/112; a multiple of 128: scaled by size/128 and shifted 8*size/128 right)."""
    pts = _as_landmarks(landmarks)
    if size % 112 == 0:
        ratio, diff_x = float(size) / 112.0, 0.0
    elif size % 128 == 0:
        ratio, diff_x = float(size) / 128.0, 8.0 * float(size) / 128.0
    else:
        raise InputError(f"chip size must be a multiple of 112 or 128, got {size}")
    dst = ARCFACE_TEMPLATE * ratio  # float32, as InsightFace computes it
    dst[:, 0] += diff_x
    return similarity_transform(pts, dst)[:, :2, :]


def transform_points(points, matrices) -> np.ndarray:
    """Points (N, K, 2) or (K, 2) through (N, 2, 3) or (2, 3) affine matrices: (N, K, 2)."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrices, dtype=np.float64)
    p = p[None] if p.ndim == 2 else p
    m = m[None] if m.ndim == 2 else m
    return np.einsum("nij,nkj->nki", m[:, :, :2], p) + m[:, None, :, 2]


def template_landmarks(height: int, width: int, size: int = CHIP_SIZE) -> np.ndarray:
    """The template's five points stretched onto a whole `height` x `width` photo: (5, 2),
    ``x = ARCFACE_TEMPLATE[:, 0] * width / size``, ``y = ARCFACE_TEMPLATE[:, 1] * height /
    size``. For a square photo, aligning with these points is exactly a resize of the whole
    photo to the chip (scale size/width, no shift, no rotation)."""
    if height <= 0 or width <= 0:
        raise InputError(f"image size must be positive, got {height}x{width}")
    return (ARCFACE_TEMPLATE.astype(np.float64)
            * np.array([width / float(size), height / float(size)]))


def _inverse_affine(m: np.ndarray) -> np.ndarray:
    """OpenCV's ``invertAffineTransform`` (float64), batched: (N, 2, 3) -> (N, 2, 3)."""
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    inv_det = np.where(det != 0, 1.0 / np.where(det != 0, det, 1.0), 0.0)
    a11, a22 = m[:, 1, 1] * inv_det, m[:, 0, 0] * inv_det
    a12, a21 = -m[:, 0, 1] * inv_det, -m[:, 1, 0] * inv_det
    b1 = -a11 * m[:, 0, 2] - a12 * m[:, 1, 2]
    b2 = -a21 * m[:, 0, 2] - a22 * m[:, 1, 2]
    return np.stack([np.stack([a11, a12, b1], -1), np.stack([a21, a22, b2], -1)], 1)


def _round_int(x: np.ndarray) -> np.ndarray:
    """OpenCV's ``saturate_cast<int>(double)``: round half to even, clipped to int32."""
    return np.clip(np.rint(x), -2**31, 2**31 - 1).astype(np.int64)


#: the warp arithmetics :func:`warp_affine` knows (see the module's docstring)
ARITHMETICS = ("opencv4", "opencv5")


def warp_affine(images: np.ndarray, matrices, size: tuple[int, int] | int,
                arithmetic: str = "opencv4") -> np.ndarray:
    """``cv2.warpAffine(img, M, (width, height), flags=INTER_LINEAR, borderMode=
    BORDER_CONSTANT, borderValue=0)`` for a batch of uint8 images, in numpy.

    `images`: (N, H, W, C) uint8 (C any); `matrices`: (N, 2, 3) forward maps, photo -> output
    (inverted as OpenCV inverts them); `size`: (width, height) of the output, as OpenCV takes
    it, or one int for a square. The arithmetic is OpenCV's fixed-point one: for output pixel
    (x, y), ``X = (round(A[0,1]*y + A[0,2]) * 1024) + 16 + round(A[0,0]*x*1024)) >> 5`` (A the
    inverse map; likewise Y), i.e. the source position in 1/32 pixel; the integer part picks the
    2x2 neighbours, the fraction (i, j)/32 the weights ``(32-i)(32-j)*32`` ... (sum 32768); the
    result is ``(sum w*p + 16384) >> 15``. Neighbours outside the photo count as 0 (black).
    ``arithmetic="opencv5"``: the source position ``A @ (x, y, 1)`` in float64, weights the
    products of its fractional parts, the weighted sum rounded half to even.
    """
    if arithmetic not in ARITHMETICS:
        raise InputError(f"arithmetic must be one of {ARITHMETICS}, got {arithmetic!r}")
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.dtype != np.uint8:
        raise InputError(f"expected (N, H, W, C) uint8 images, got {imgs.dtype} {imgs.shape}")
    mats = np.asarray(matrices, dtype=np.float64)
    mats = mats[None] if mats.ndim == 2 else mats
    if mats.shape != (imgs.shape[0], 2, 3):
        raise InputError(f"expected {imgs.shape[0]} (2, 3) matrices, got shape {mats.shape}")
    out_w, out_h = (size, size) if isinstance(size, int) else size
    n, h, w, c = imgs.shape
    out = np.zeros((n, out_h, out_w, c), np.uint8)
    finite = np.isfinite(mats).all(axis=(1, 2))
    if not finite.any():
        return out
    inv = _inverse_affine(mats[finite])
    xs = np.arange(out_w, dtype=np.float64)
    ys = np.arange(out_h, dtype=np.float64)
    src = imgs[finite]
    if arithmetic == "opencv5":
        out[finite] = _warp_float(src, inv, xs, ys)
        return out
    # per row: round((A01*y + A02) * AB_SCALE) + round_delta; per column: round(A00*x*AB_SCALE)
    x_row = _round_int((inv[:, 0, 1, None] * ys + inv[:, 0, 2, None]) * _AB_SCALE) + _ROUND_DELTA
    y_row = _round_int((inv[:, 1, 1, None] * ys + inv[:, 1, 2, None]) * _AB_SCALE) + _ROUND_DELTA
    x_col = _round_int(inv[:, 0, 0, None] * xs * _AB_SCALE)
    y_col = _round_int(inv[:, 1, 0, None] * xs * _AB_SCALE)
    shift = _AB_BITS - _INTER_BITS
    big_x = (x_row[:, :, None] + x_col[:, None, :]) >> shift  # (n, out_h, out_w), 1/32 px
    big_y = (y_row[:, :, None] + y_col[:, None, :]) >> shift
    sx, sy = big_x >> _INTER_BITS, big_y >> _INTER_BITS
    fx, fy = big_x & (_INTER_TAB_SIZE - 1), big_y & (_INTER_TAB_SIZE - 1)
    # OpenCV's 8-bit table: float weights (1-a)(1-b)... times 2^15, exact here (a, b in 1/32)
    wx = (np.stack([_INTER_TAB_SIZE - fx, fx], -1))
    wy = (np.stack([_INTER_TAB_SIZE - fy, fy], -1))
    scale = (1 << _COEF_BITS) // (_INTER_TAB_SIZE * _INTER_TAB_SIZE)
    src = src.astype(np.int64)
    idx = np.arange(src.shape[0])[:, None, None]
    acc = np.zeros(sx.shape + (c,), np.int64)
    for dy in (0, 1):
        yy = sy + dy
        in_y = (yy >= 0) & (yy < h)
        for dx in (0, 1):
            xx = sx + dx
            inside = in_y & (xx >= 0) & (xx < w)
            pix = src[idx, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
            weight = wy[..., dy] * wx[..., dx] * scale
            acc += np.where(inside[..., None], pix * weight[..., None], 0)
    out[finite] = np.clip((acc + (1 << (_COEF_BITS - 1))) >> _COEF_BITS, 0, 255).astype(np.uint8)
    return out


def _warp_float(src: np.ndarray, inv: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear sampling in float64 at ``inv @ (x, y, 1)``; outside neighbours are 0."""
    n, h, w, _ = src.shape
    sx = (inv[:, 0, 0, None, None] * xs[None, None, :] + inv[:, 0, 1, None, None] * ys[None, :, None]
          + inv[:, 0, 2, None, None])
    sy = (inv[:, 1, 0, None, None] * xs[None, None, :] + inv[:, 1, 1, None, None] * ys[None, :, None]
          + inv[:, 1, 2, None, None])
    x0, y0 = np.floor(sx), np.floor(sy)
    ax, ay = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    idx = np.arange(n)[:, None, None]
    acc = np.zeros(sx.shape + (src.shape[-1],))
    for dy, wy in ((0, 1.0 - ay), (1, ay)):
        yy = y0 + dy
        for dx, wx in ((0, 1.0 - ax), (1, ax)):
            xx = x0 + dx
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            pix = src[idx, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
            acc += np.where(inside[..., None], pix * (wx * wy), 0.0)
    return np.clip(np.rint(acc), 0, 255).astype(np.uint8)


def _as_rgb(image) -> np.ndarray:
    from mfr.data.faces import as_rgb

    return as_rgb(image)


def arcface_chips(images: np.ndarray | Sequence[np.ndarray], landmarks,
                  size: int = CHIP_SIZE, arithmetic: str = "opencv4") -> np.ndarray:
    """(N, size, size, 3) uint8 ArcFace chips: each photo warped by the similarity transform
    of its five landmarks onto :data:`ARCFACE_TEMPLATE` (InsightFace's ``norm_crop``).

    `images`: an (N, H, W, 3) array or a sequence of N photos of any sizes (grayscale and RGBA
    are made RGB); `landmarks`: (N, 5, 2) in :data:`LANDMARK_ORDER`, photo pixels. Landmarks
    that give no transform (NaN, or all five points equal) give an all-black chip.
    """
    pts = _as_landmarks(landmarks)
    photos = list(images) if not isinstance(images, np.ndarray) or images.ndim != 4 else images
    if len(photos) != len(pts):
        raise InputError(f"{len(photos)} images but {len(pts)} sets of landmarks")
    mats = np.full((len(pts), 2, 3), np.nan)
    ok = np.isfinite(pts).all(axis=(1, 2))
    if ok.any():
        mats[ok] = arcface_matrices(pts[ok], size)
    out = np.zeros((len(pts), size, size, 3), np.uint8)
    if isinstance(photos, np.ndarray) and photos.dtype == np.uint8 and photos.shape[-1] == 3:
        return warp_affine(photos, mats, size, arithmetic) if len(pts) else out
    rgb = [_as_rgb(p) for p in photos]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(rgb):
        by_shape.setdefault(p.shape, []).append(i)
    for group in by_shape.values():
        out[group] = warp_affine(np.stack([rgb[i] for i in group]), mats[group], size,
                                 arithmetic)
    return out
