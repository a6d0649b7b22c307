"""ArcFace's five-point alignment in numpy (mfr.data.face_align): no backend, no photos."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mfr.core.errors import InputError
from mfr.data import face_align as fa
from mfr.data.faces import LANDMARKS


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx],
                     [scale * np.sin(a), scale * np.cos(a), ty], [0.0, 0.0, 1.0]])


def _pattern(h: int = 45, w: int = 50) -> np.ndarray:
    """A deterministic textured uint8 RGB image (no random generator: same bytes everywhere)."""
    y, x, c = np.mgrid[0:h, 0:w, 0:3]
    return ((x * 37 + y * 91 + c * 53 + (x * y) % 7 * 11) % 256).astype(np.uint8)


def test_similarity_recovers_a_known_transform_exactly():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (6, 5, 2))
    true = np.stack([_similarity(s, a, tx, ty) for s, a, tx, ty in
                     [(0.7, 10, 3, -4), (1.9, -35, 40, 2), (1.0, 0, 0, 0), (0.25, 170, -8, 9),
                      (3.3, 90, 1, 1), (1.2, -179, 60, -60)]])
    dst = np.einsum("nij,nkj->nki", true[:, :2, :2], src) + true[:, None, :2, 2]
    est = fa.similarity_transform(src, dst)
    np.testing.assert_allclose(est, true, atol=1e-10)


def test_similarity_never_reflects_and_is_nan_when_degenerate():
    pts = fa.ARCFACE_TEMPLATE.astype(np.float64)
    mirrored = pts * [-1.0, 1.0]
    t = fa.similarity_transform(pts, mirrored)[0]
    assert np.linalg.det(t[:2, :2]) > 0  # the best rotation, not the exact reflection
    same = np.repeat(pts[:1], 5, axis=0)
    assert np.isnan(fa.similarity_transform(same, pts)).all()


def test_template_maps_to_itself():
    m = fa.arcface_matrices(fa.ARCFACE_TEMPLATE)[0]
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-5)
    np.testing.assert_allclose(fa.transform_points(fa.ARCFACE_TEMPLATE, m)[0],
                               fa.ARCFACE_TEMPLATE, atol=1e-4)


def test_landmark_order_matches_mtcnn_and_the_template():
    assert fa.LANDMARK_ORDER == LANDMARKS
    (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = fa.ARCFACE_TEMPLATE
    assert lex < nx < rex and mlx < nx < mrx  # image-left eye and mouth corner first
    assert max(ley, rey) < ny < min(mly, mry)  # eyes above the nose tip above the mouth


@pytest.mark.parametrize("arithmetic", fa.ARITHMETICS)
def test_identity_warp_returns_the_image(arithmetic):
    img = _pattern()
    out = fa.warp_affine(img[None], np.eye(3)[None, :2], (img.shape[1], img.shape[0]),
                         arithmetic)
    np.testing.assert_array_equal(out[0], img)


@pytest.mark.parametrize("arithmetic", fa.ARITHMETICS)
def test_warp_shifts_bilinear_and_black_border(arithmetic):
    img = _pattern()
    shift = np.array([[[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]]])  # photo pixel (x, y) -> (x+3, y-2)
    out = fa.warp_affine(img[None], shift, (img.shape[1], img.shape[0]), arithmetic)[0]
    np.testing.assert_array_equal(out[:-2, 3:], img[2:, :-3])
    assert not out[:, :3].any() and not out[-2:].any()
    # half a pixel between four values: their mean, rounded (138.75 -> 139)
    four = np.array([[[0, 0, 0], [100, 100, 100]], [[200, 200, 200], [255, 255, 255]]], np.uint8)
    half = np.array([[[1.0, 0.0, -0.5], [0.0, 1.0, -0.5]]])
    assert fa.warp_affine(four[None], half, 1, arithmetic)[0, 0, 0].tolist() == [139] * 3


def test_warp_is_opencv4_to_the_byte_and_opencv5_to_one_level():
    """Against outputs of cv2.warpAffine(img, M, (40, 36), borderValue=0.0) computed with
    opencv-python-headless 4.10.0 (its sha256) and 5.1.0 (its sum) on the same image."""
    m = np.array([[[0.83, -0.27, 9.3], [0.31, 0.79, -4.6]]])
    v4 = fa.warp_affine(_pattern()[None], m, (40, 36), "opencv4")[0]
    assert hashlib.sha256(v4.tobytes()).hexdigest() == (
        "a266ee05f45d5e505320d23b4df331141ab3695af44f9abdb52503f7d5223f1b")
    v5 = fa.warp_affine(_pattern()[None], m, (40, 36), "opencv5")[0]
    assert abs(int(v5.sum(dtype=np.int64)) - 476614) <= 1
    assert v5.shape == (36, 40, 3)


def test_chips_of_template_landmarks():
    # a 112x112 photo whose landmarks are the template: the chip is the photo itself
    img = _pattern(112, 112)
    chip = fa.arcface_chips(img[None], fa.ARCFACE_TEMPLATE[None])
    np.testing.assert_array_equal(chip[0], img)
    # the template stretched onto a square photo: the chip is the photo scaled by 112/side
    big = _pattern(160, 160)
    lm = fa.template_landmarks(160, 160)
    scale = np.array([[[112 / 160, 0, 0], [0, 112 / 160, 0]]])
    np.testing.assert_array_equal(fa.arcface_chips([big], lm[None])[0],
                                  fa.warp_affine(big[None], scale, 112)[0])


def test_chips_of_mixed_sizes_grey_and_missing_landmarks():
    rgb = _pattern(60, 50)
    grey = rgb[..., 0]
    lm = np.stack([fa.template_landmarks(60, 50), fa.template_landmarks(60, 50),
                   np.full((5, 2), np.nan), fa.template_landmarks(90, 80)])
    chips = fa.arcface_chips([rgb, grey, rgb, _pattern(90, 80)], lm)
    assert chips.shape == (4, 112, 112, 3) and chips.dtype == np.uint8
    np.testing.assert_array_equal(chips[1][..., 0], chips[0][..., 0])
    assert (chips[1][..., 0] == chips[1][..., 2]).all()  # grey made RGB
    assert not chips[2].any()  # no landmarks: a black chip
    assert chips[3].any()


def test_bad_input_is_one_line():
    with pytest.raises(InputError, match="points"):
        fa.arcface_chips(np.zeros((1, 20, 20, 3), np.uint8), np.zeros((1, 4, 2)))
    with pytest.raises(InputError, match="2 images but 1"):
        fa.arcface_chips([np.zeros((20, 20, 3), np.uint8)] * 2, np.zeros((1, 5, 2)))
    with pytest.raises(InputError, match="multiple of 112 or 128"):
        fa.arcface_matrices(fa.ARCFACE_TEMPLATE, size=100)
    with pytest.raises(InputError, match="arithmetic"):
        fa.warp_affine(np.zeros((1, 4, 4, 3), np.uint8), np.eye(3)[None, :2], 4, "cubic")
