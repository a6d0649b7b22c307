"""Face detection (MTCNN) and the mask line: real photos, a blank image, bad shapes."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.data import faces
from mfr.data.images import load_image


def _photo(root, name: str, i: int, size: int = 224) -> np.ndarray:
    return load_image(root / "mfr2" / name / f"{name}_{i:04d}.png", size)


def test_as_rgb_shapes():
    gray = np.full((20, 30), 7, np.uint8)
    assert faces.as_rgb(gray).shape == (20, 30, 3)
    assert faces.as_rgb(gray[..., None]).shape == (20, 30, 3)
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 3] = 255
    assert faces.as_rgb(rgba).shape == (5, 6, 3) and faces.as_rgb(rgba).max() == 0
    with pytest.raises(ValueError, match=r"got shape \(5, 6, 2\)"):
        faces.as_rgb(np.zeros((5, 6, 2)))


def test_crop_face_margin_and_clipping():
    img = np.arange(100 * 80 * 3, dtype=np.int64).reshape(100, 80, 3)
    crop = faces.crop_face(img, (10, 20, 30, 40), margin=0.0)
    assert crop.shape == (40, 30, 3) and np.array_equal(crop, img[20:60, 10:40])
    assert faces.crop_face(img, (20, 20, 30, 40), margin=0.5).shape == (80, 60, 3)
    assert faces.crop_face(img, (10, 20, 30, 40), margin=0.5).shape == (80, 55, 3)  # x clipped at 0
    assert faces.crop_face(img, (70, 90, 30, 40), margin=0.0).shape == (10, 10, 3)  # clipped
    with pytest.raises(ValueError, match="outside"):
        faces.crop_face(img, (200, 200, 10, 10))
    with pytest.raises(ValueError, match="empty face box"):
        faces.crop_face(img, (0, 0, 0, 10))


def test_line_from_landmarks_rule():
    lm = {"left_eye": (30.0, 40.0), "right_eye": (60.0, 44.0), "nose": (45.0, 62.0),
          "mouth_left": (35.0, 80.0), "mouth_right": (55.0, 80.0)}
    face = faces.Face((10, 10, 80, 90), 0.99, lm)
    assert faces.line_from_landmarks(face) == pytest.approx((42.0 + 62.0) / 2)
    assert faces.mask_line(np.zeros((100, 100, 3), np.uint8), face=face) == (52, "landmarks")
    upside_down = faces.Face((10, 10, 80, 90), 0.99, {**lm, "nose": (45.0, 20.0)})
    assert faces.line_from_landmarks(upside_down) is None


def test_blank_and_tiny_images_fall_back_to_the_fixed_fraction():
    pytest.importorskip("mtcnn")
    blank = np.full((224, 224, 3), 128, np.uint8)
    assert faces.detect_faces(blank) == []
    assert faces.mask_line(blank) == (round(0.55 * 224), "fixed fraction")
    assert faces.mask_line(np.zeros((8, 8), np.uint8)) == (4, "fixed fraction")
    assert faces.detector() is faces.detector()  # built once


def test_mtcnn_on_real_mfr2_photos(mfr2_dev):
    pytest.importorskip("mtcnn")
    for name, i in (("AdrianDunbar", 1), ("AdrianDunbar", 2)):  # masked, unmasked
        img = _photo(mfr2_dev, name, i)
        face = faces.detect_largest_face(img)
        assert face is not None and face.confidence > 0.9, (name, i)
        lm = face.landmarks
        eye_y = (lm["left_eye"][1] + lm["right_eye"][1]) / 2
        assert eye_y < lm["nose"][1] < (lm["mouth_left"][1] + lm["mouth_right"][1]) / 2
        assert lm["left_eye"][0] < lm["nose"][0] < lm["right_eye"][0]
        x, y, w, h = face.box
        for px, py in lm.values():
            assert x <= px <= x + w and y <= py <= y + h
        row, how = faces.mask_line(img, face=face)
        assert how == "landmarks" and eye_y < row < lm["nose"][1]
        assert 0.35 * 224 < row < 0.75 * 224


def test_largest_face_first(mfr2_dev):
    pytest.importorskip("mtcnn")
    canvas = np.full((300, 480, 3), 255, np.uint8)
    canvas[20:244, 10:234] = _photo(mfr2_dev, "AdrianDunbar", 2, 224)
    canvas[100:260, 290:450] = _photo(mfr2_dev, "BenAffleck", 3, 160)
    found = faces.detect_faces(canvas)
    assert len(found) >= 2
    assert found[0].area >= found[1].area and found[0].box[0] < 240  # the 224 px face
    assert faces.detect_largest_face(canvas) == found[0]
