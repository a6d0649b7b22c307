"""Preprocessing: thesis (RGB minus means) and vggface2 (BGR minus BGR means)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mfr.backbones.vggface import VGGFACE2_MEAN_BGR, preprocess


def _f32(*values):
    """Exact float32 arithmetic, as numpy does for `float32_array - python_float`."""
    return np.float32(values[0]) - np.float32(values[1])


def _pixel_batch():
    x = np.zeros((2, 224, 224, 3), np.uint8)
    x[0, 0, 0] = (10, 20, 30)  # R, G, B
    x[1, 5, 7] = (255, 128, 0)
    return x


@pytest.mark.backend
def test_constants():
    assert VGGFACE2_MEAN_BGR == (91.4953, 103.8827, 131.0912)


@pytest.mark.backend
def test_thesis_mode_numpy():
    out = preprocess(_pixel_batch(), mode="thesis")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, 224, 224, 3)
    np.testing.assert_array_equal(
        out[0, 0, 0], np.array([_f32(10, 91.4953), _f32(20, 103.8827), _f32(30, 131.0912)])
    )
    np.testing.assert_array_equal(
        out[1, 5, 7], np.array([_f32(255, 91.4953), _f32(128, 103.8827), _f32(0, 131.0912)])
    )
    np.testing.assert_array_equal(out[0, 1, 1], -np.float32(VGGFACE2_MEAN_BGR))
    np.testing.assert_allclose(out[0, 0, 0], [-81.4953, -83.8827, -101.0912], atol=1e-5)
    assert preprocess(_pixel_batch()).tolist() == out.tolist()  # thesis is the default


@pytest.mark.backend
def test_vggface2_mode_numpy_flips_to_bgr():
    out = preprocess(_pixel_batch(), mode="vggface2")
    assert out.dtype == np.float32
    # BGR = (30, 20, 10) minus the BGR means
    np.testing.assert_array_equal(
        out[0, 0, 0], np.array([_f32(30, 91.4953), _f32(20, 103.8827), _f32(10, 131.0912)])
    )
    np.testing.assert_array_equal(
        out[1, 5, 7], np.array([_f32(0, 91.4953), _f32(128, 103.8827), _f32(255, 131.0912)])
    )
    np.testing.assert_allclose(out[0, 0, 0], [-61.4953, -83.8827, -121.0912], atol=1e-5)


@pytest.mark.backend
@pytest.mark.parametrize("mode", ["thesis", "vggface2"])
def test_backend_tensor_matches_numpy(mode):
    x = _pixel_batch()
    expected = preprocess(x, mode=mode)
    out = preprocess(keras.ops.convert_to_tensor(x), mode=mode)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), expected)
    # float input (already resized, in [0, 255]) too
    np.testing.assert_array_equal(preprocess(x.astype("float32"), mode=mode), expected)


@pytest.mark.backend
def test_input_is_not_modified_and_errors():
    x = _pixel_batch()
    before = x.copy()
    preprocess(x, mode="vggface2")
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match="mode"):
        preprocess(x, mode="caffe")
    with pytest.raises(ValueError, match="RGB"):
        preprocess(np.zeros((1, 4, 4, 1), np.uint8))
