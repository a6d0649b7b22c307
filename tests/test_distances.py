"""Pair distances from embeddings and their summary."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.evaluation.distances import METRICS, l2_normalize, pair_distances, summarise


def test_hand_computed_values():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]], dtype=np.float32)
    u, m = np.array([0, 0, 2]), np.array([1, 0, 0])
    np.testing.assert_allclose(pair_distances(emb, u, m, "sum_squared"), [2.0, 0.0, 20.0])
    np.testing.assert_allclose(pair_distances(emb, u, m, "l2"), [np.sqrt(2), 0.0, np.sqrt(20)])
    np.testing.assert_allclose(pair_distances(emb, u, m, "l1"), [2.0, 0.0, 6.0])
    np.testing.assert_allclose(pair_distances(emb, u, m, "cosine"), [1.0, 0.0, 0.4], atol=1e-12)
    out = pair_distances(emb, u, m)
    assert out.dtype == np.float64 and out.shape == (3,)


def test_identities_for_unit_vectors():
    rng = np.random.default_rng(0)
    emb = l2_normalize(rng.normal(size=(50, 2048)).astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)
    u, m = rng.integers(0, 50, 300), rng.integers(0, 50, 300)
    ss = pair_distances(emb, u, m, "sum_squared")
    cos = pair_distances(emb, u, m, "cosine")
    l2 = pair_distances(emb, u, m, "l2")
    np.testing.assert_allclose(ss, 2 * cos, atol=1e-6)  # |a-b|^2 = 2 - 2 cos = 2 (1 - cos)
    np.testing.assert_allclose(ss, l2**2, rtol=1e-12)
    assert ss.min() >= 0 and ss.max() <= 4
    np.testing.assert_allclose(pair_distances(emb, [0, 1], [0, 1]), 0.0, atol=1e-12)
    np.testing.assert_allclose(pair_distances(np.stack([emb[0], -emb[0]]), [0], [1]), 4.0, rtol=1e-6)


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(20, 16)).astype(np.float32)
    u, m = rng.integers(0, 20, 1000), rng.integers(0, 20, 1000)
    for metric in METRICS:
        np.testing.assert_array_equal(pair_distances(emb, u, m, metric),
                                      pair_distances(emb, u, m, metric, chunk_size=7))


def test_bad_arguments():
    emb = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="metric"):
        pair_distances(emb, [0], [1], "hamming")
    with pytest.raises(ValueError, match="differ in length"):
        pair_distances(emb, [0, 1], [1])
    with pytest.raises(ValueError, match="outside"):
        pair_distances(emb, [0], [3])
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        pair_distances(emb[0], [0], [0])


def test_summarise():
    d = np.array([1.0, 2.0, 3.0, 0.5, 0.7, 1.5, 10.0])
    y = np.array([0, 0, 0, 1, 1, 1, 0])
    s = summarise(d, y)
    assert s["n_pairs"] == 7 and s["n_genuine"] == 3 and s["n_impostor"] == 4
    assert s["median_impostor"] == 2.5 and s["median_genuine"] == 0.7
    assert s["gap"] == pytest.approx(1.8)
    assert s["gmean"] == pytest.approx(0.9) and s["imean"] == pytest.approx(4.0)
    empty = summarise(np.array([1.0]), np.array([1]))
    assert np.isnan(empty["median_impostor"]) and empty["gmean"] == 1.0
    with pytest.raises(ValueError, match="labels"):
        summarise(np.array([1.0]), np.array([2]))
