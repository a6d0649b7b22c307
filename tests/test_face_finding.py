"""The face-finding cascade (mfr.data.face_finding): its stages on a few real photos, the
fallback, bad and odd images, and a stage that rejects a photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfr.core.errors import InputError
from mfr.data import face_finding as ff
from mfr.data.face_align import template_landmarks
from mfr.data.images import decode_rgb

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
MFR2 = SHARED / "mfr2-dev" / "mfr2"
RMFRD_MASKED = (SHARED / "rmfrd-dev" / "self-built-masked-face-recognition-dataset"
                / "AFDB_masked_face_dataset")
PHOTOS = {
    "unmasked": MFR2 / "AdrianDunbar" / "AdrianDunbar_0002.png",  # MTCNN finds it
    "masked_found": RMFRD_MASKED / "axin" / "0_0_0.jpg",  # MTCNN finds it
    "masked_padded": RMFRD_MASKED / "chenqiaoen" / "0_0_1.jpg",  # only the padded retry does
    "masked_none": RMFRD_MASKED / "aidai" / "0_0_0.jpg",  # neither does
}


def _plausible(lm: np.ndarray) -> bool:
    (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = lm
    return lex < rex and mlx < mrx and max(ley, rey) < ny < max(mly, mry)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    if not all(p.is_file() for p in PHOTOS.values()):
        pytest.skip(f"real photos under {SHARED} are absent")
    return {k: decode_rgb(p) for k, p in PHOTOS.items()}


def test_cascade_on_real_photos(photos):
    pytest.importorskip("mtcnn")
    from mfr.data.faces import detect_largest_face

    names = list(photos)
    grey = photos["unmasked"].mean(axis=2).astype(np.uint8)  # (H, W): made RGB
    images = [photos[k] for k in names] + [grey]
    res = ff.find_faces(images)
    assert res.stage.tolist() == ["mtcnn", "mtcnn", "mtcnn_padded", ff.NO_FACE, "mtcnn"]
    assert res.found.tolist() == [True, True, True, False, True]
    assert res.attempted == {"mtcnn": 5, "mtcnn_padded": 2} and not res.errors
    assert res.counts() == {"mtcnn": 3, "mtcnn_padded": 1, ff.NO_FACE: 1, ff.FAILED: 0}
    for i in np.flatnonzero(res.found):
        assert _plausible(res.landmarks[i]), (names + ["grey"])[i]
        x, y, w, h = res.boxes[i]
        assert w > 40 and h > 40 and 0 < res.scores[i] <= 1
    # the fallback: the template stretched onto the whole crop, flagged, no score
    h, w = photos["masked_none"].shape[:2]
    np.testing.assert_array_equal(res.landmarks[3], template_landmarks(h, w))
    np.testing.assert_array_equal(res.boxes[3], [0, 0, w, h])
    assert np.isnan(res.scores[3])
    # the first stage keeps MTCNN's landmarks unrounded: detect_faces rounds them
    face = detect_largest_face(photos["unmasked"])
    rounded = np.array([face.landmarks[k] for k in ("left_eye", "right_eye", "nose",
                                                    "mouth_left", "mouth_right")])
    assert np.abs(res.landmarks[0] - rounded).max() <= 0.5 + 1e-3
    # the same inputs, the same numbers
    again = ff.find_faces(images)
    np.testing.assert_array_equal(again.landmarks, res.landmarks)
    assert again.stage.tolist() == res.stage.tolist()


def test_blank_tiny_grey_and_unreadable_images(tmp_path):
    pytest.importorskip("mtcnn")
    missing = tmp_path / "missing.jpg"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    images = [np.zeros((160, 160, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8),
              np.full((64, 48), 90, np.uint8), np.zeros(5), missing, broken]
    res = ff.find_faces(images)
    assert res.stage.tolist() == [ff.NO_FACE] * 3 + [ff.FAILED] * 3
    assert not res.found.any()
    np.testing.assert_array_equal(res.landmarks[0], template_landmarks(160, 160))
    np.testing.assert_array_equal(res.landmarks[1], template_landmarks(8, 8))
    np.testing.assert_array_equal(res.boxes[2], [0, 0, 48, 64])
    assert np.isnan(res.landmarks[3:]).all() and np.isnan(res.boxes[3:]).all()
    assert [(i, where) for i, where, _ in res.errors] == [(3, "read"), (4, "read"), (5, "read")]
    assert "missing.jpg" in res.errors[1][2]
    assert res.attempted == {"mtcnn": 3, "mtcnn_padded": 3}


class _Refuses:
    """A stage that rejects some photos (raising for them) and finds none."""

    name = "refuser"

    def __init__(self, bad: set[int]):
        self.bad = bad

    def detect(self, images):
        return [ValueError(f"cannot take photo of mean {img.mean():.0f}")
                if int(img.mean()) in self.bad else None for img in images]


class _FindsBright:
    """A stage that finds a face in photos brighter than 100, and nowhere else."""

    name = "finder"

    def detect(self, images):
        lm = template_landmarks(20, 20)
        return [ff.Detection(lm, np.array([1.0, 1.0, 18.0, 18.0]), 0.9)
                if img.mean() > 100 else None for img in images]


def test_a_rejected_photo_is_flagged_and_never_stops_the_batch():
    images = [np.full((20, 20, 3), v, np.uint8) for v in (10, 50, 150, 200)]
    res = ff.find_faces(images, stages=(_Refuses({50, 150}), _FindsBright()), batch_size=3)
    # 50: rejected, nothing found -> failed (fallback landmarks); 150: rejected, then found
    assert res.stage.tolist() == [ff.NO_FACE, ff.FAILED, "finder", "finder"]
    assert res.found.tolist() == [False, False, True, True]
    assert [(i, s) for i, s, _ in res.errors] == [(1, "refuser"), (2, "refuser")]
    assert res.errors[0][2] == "ValueError: cannot take photo of mean 50"
    np.testing.assert_array_equal(res.landmarks[1], template_landmarks(20, 20))
    assert res.attempted == {"refuser": 4, "finder": 4}
    with pytest.raises(InputError, match="unique"):
        ff.find_faces(images, stages=(_FindsBright(), _FindsBright()))


def test_a_stage_that_cannot_run_stops_with_one_line():
    with pytest.raises(InputError, match="'cnn' or 'hog'"):
        ff.find_faces([np.zeros((30, 30, 3), np.uint8)], stages=(ff.DlibStage(detector="sift"),))


def test_largest_face_wins():
    small = ff.Detection(np.zeros((5, 2)), np.array([0.0, 0.0, 10.0, 10.0]), 0.99)
    big = ff.Detection(np.ones((5, 2)), np.array([5.0, 5.0, 30.0, 20.0]), 0.7)
    assert ff.largest([small, big]) is big and ff.largest([]) is None


def test_dlib_stage_agrees_with_mtcnn_on_an_unmasked_photo(photos):
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    pytest.importorskip("mtcnn")
    img = photos["unmasked"]
    dl = ff.DlibStage(name="dlib_hog", detector="hog", pad=0.25).detect([img])[0]
    mt = ff.MtcnnStage().detect([img])[0]
    assert isinstance(dl, ff.Detection) and isinstance(mt, ff.Detection)
    assert _plausible(dl.landmarks)
    eyes = np.linalg.norm(mt.landmarks[1] - mt.landmarks[0])
    assert np.abs(dl.landmarks - mt.landmarks).max() < 0.35 * eyes
