"""Gallery search (mfr.gallery.search): exact top-k against a brute force, ties, chunking, the
distances against mfr's pair distances, and the faiss index (recall, exact re-rank, bytes)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mfr.core.errors import InputError, MissingError
from mfr.evaluation.distances import pair_distances
from mfr.gallery import index as X
from mfr.gallery import search as S


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _data(seed, n=600, d=16, n_ids=150, n_probes=40):
    rng = np.random.default_rng(seed)
    gallery = _unit(rng.standard_normal((n, d)))
    ids = rng.integers(0, n_ids, n)  # several templates per identity, in no order
    probes = _unit(rng.standard_normal((n_probes, d)))
    return gallery, ids, probes


def _brute(probes, gallery, ids, k):
    """Top k identities one probe at a time: best template per identity in float64, ties to
    the identity whose best template comes first."""
    sim = probes.astype(np.float64) @ gallery.astype(np.float64).T
    out = []
    for i in range(len(probes)):
        best = {}
        for j in range(len(gallery)):
            key = (-sim[i, j], j)
            if ids[j] not in best or key < best[ids[j]]:
                best[ids[j]] = key
        ranked = sorted(best.items(), key=lambda kv: kv[1])[:k]
        out.append([(ident, j, -neg) for ident, (neg, j) in ranked])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5])
def test_exact_matches_brute_force(seed, k):
    gallery, ids, probes = _data(seed)
    g = S.templates(gallery, ids)
    top = S.top_k(probes, g, k)
    for i, want in enumerate(_brute(probes, gallery, ids, k)):
        assert list(top.identities[i]) == [w[0] for w in want]
        assert list(top.rows[i]) == [w[1] for w in want]
        np.testing.assert_allclose(top.similarity[i], [w[2] for w in want], rtol=0, atol=1e-12)


def test_ties_go_to_the_first_gallery_row():
    rng = np.random.default_rng(3)
    v = _unit(rng.standard_normal((6, 8)))
    gallery = v[[0, 1, 2, 1, 1, 3]]  # rows 1, 3 and 4 are one vector
    ids = ["z", "y", "x", "a", "y", "w"]  # y: rows 1 and 4 (a tie within), a: row 3
    top = S.top_k(v[1], S.templates(gallery, ids), 3)
    assert list(top.identities[0][:2]) == ["y", "a"]  # y's row 1 before a's row 3
    assert list(top.rows[0][:2]) == [1, 3]
    assert top.similarity[0][0] == top.similarity[0][1]


def test_chunking_does_not_change_the_result():
    gallery, ids, probes = _data(4, n=900)
    g = S.templates(gallery, ids)
    ref = S.top_k(probes, g, 7)
    for pc, gc in ((1, 1), (3, 64), (13, 101), (1000, 100000)):
        got = S.top_k(probes, g, 7, probe_chunk=pc, gallery_chunk=gc)
        for a in ("identity_index", "rows", "similarity", "distance"):
            np.testing.assert_array_equal(getattr(got, a), getattr(ref, a))
    # one template per identity (no per-identity reduction) and the block path (> 64 k cols)
    one = S.templates(_unit(np.random.default_rng(5).standard_normal((3000, 16))))
    ref = S.top_k(probes, one, 3)
    got = S.top_k(probes, one, 3, probe_chunk=7, gallery_chunk=1000)
    np.testing.assert_array_equal(got.rows, ref.rows)
    np.testing.assert_array_equal(got.similarity, ref.similarity)


@pytest.mark.parametrize("metric", S.SEARCH_METRICS)
def test_distances_are_mfrs(metric):
    gallery, ids, probes = _data(6)
    top = S.top_k(probes, S.templates(gallery, ids), 4, metric=metric)
    emb = np.r_[probes, gallery]
    u = np.repeat(np.arange(len(probes)), 4)
    want = pair_distances(emb, u, len(probes) + top.rows.ravel(), metric)
    np.testing.assert_allclose(top.distance.ravel(), want, rtol=0, atol=2e-6)
    assert (np.diff(top.distance, axis=1) >= 0).all()
    back = S.distance_to_similarity(top.distance, metric)
    np.testing.assert_allclose(back, top.similarity, rtol=0, atol=1e-12 if metric != "l2"
                               else 1e-9)


def test_small_gallery_is_padded_and_inputs_are_checked():
    gallery, _, probes = _data(7, n=3)
    top = S.top_k(probes[:2], S.templates(gallery, ["a", "b", "a"]), 4)
    assert (top.identity_index[:, 2:] == -1).all() and (top.distance[:, 2:] == np.inf).all()
    assert list(top.identities[0][2:]) == [None, None]
    empty = S.top_k(probes[:2], S.templates(np.zeros((0, 16), np.float32)), 2)
    assert (empty.rows == -1).all()
    g = S.templates(gallery)
    with pytest.raises(InputError, match="norm"):
        S.top_k(probes * 2, g)
    with pytest.raises(InputError, match="dimensional"):
        S.top_k(probes[:, :8], g)
    with pytest.raises(InputError, match="metric"):
        S.top_k(probes, g, metric="l1")
    bad = probes.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="not finite"):
        S.top_k(bad, g)
    with pytest.raises(InputError, match="SearchIndex"):
        S.top_k(probes, g, method="index")


# --------------------------------------------------------------------------- faiss index


def _recall(a, b):
    return np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)])


@pytest.mark.parametrize("factory, params", [(None, None), ("HNSW16,Flat", {"efSearch": 64})])
def test_index_recall_and_exact_rerank(factory, params):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(8)
    gallery = _unit(rng.standard_normal((4000, 32)))
    ids = rng.integers(0, 2000, 4000)
    probes = _unit(rng.standard_normal((100, 32)))
    g = S.templates(gallery, ids)
    exact = S.top_k(probes, g, 5)
    index = X.SearchIndex.build(g, factory, params=params, shortlist=100)
    approx = S.top_k(probes, g, 5, method="index", index=index, threads=1)
    assert _recall(approx.identity_index, exact.identity_index) >= 0.95
    # what the index found is scored exactly: the same similarity as the exact search
    for i in range(len(probes)):
        common = np.intersect1d(approx.identity_index[i], exact.identity_index[i])
        a = dict(zip(approx.identity_index[i], approx.similarity[i], strict=True))
        e = dict(zip(exact.identity_index[i], exact.similarity[i], strict=True))
        assert all(a[c] == e[c] for c in common)


def test_index_asks_again_when_templates_crowd_the_shortlist():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(9)
    base = _unit(rng.standard_normal((1, 16)))
    crowd = _unit(base + 0.01 * rng.standard_normal((60, 16)))  # one identity, 60 templates
    gallery = np.r_[crowd, _unit(rng.standard_normal((1000, 16)))]
    ids = np.r_[np.zeros(60, int), np.arange(1, 1001)]
    g = S.templates(gallery, ids)
    index = X.SearchIndex.build(g, "HNSW16,Flat", params={"efSearch": 200}, shortlist=10)
    top = S.top_k(base, g, 3, method="index", index=index)
    assert top.identity_index[0, 0] == 0 and (top.identity_index[0] >= 0).all()
    assert len(set(top.identity_index[0])) == 3


def test_index_bytes_files_and_determinism(tmp_path):
    pytest.importorskip("faiss")
    gallery, ids, probes = _data(10, n=2000, n_ids=800)
    g = S.templates(gallery, ids)
    a = X.SearchIndex.build(g, shortlist=64)
    assert a.to_bytes() == X.SearchIndex.build(g, shortlist=64).to_bytes()  # same seed
    assert a.to_bytes() != X.SearchIndex.build(g, shortlist=64, seed=7).to_bytes()
    path = a.write(tmp_path / "gallery.index")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.index"]  # no temp left
    b = X.SearchIndex.read(path)
    assert b.info == a.info and b.to_bytes() == a.to_bytes()
    ra = S.top_k(probes, g, 5, method="index", index=a)
    rb = S.top_k(probes, g, 5, method="index", index=b)
    np.testing.assert_array_equal(ra.rows, rb.rows)
    other = S.templates(gallery[::-1].copy(), ids[::-1])
    with pytest.raises(InputError, match="other templates"):
        S.top_k(probes, other, 5, method="index", index=b)
    with pytest.raises(InputError, match="not an mfr gallery index"):
        X.SearchIndex.from_bytes(b"faiss?")
    with pytest.raises(MissingError):
        X.SearchIndex.read(tmp_path / "absent.index")
    with pytest.raises(InputError, match="faiss index 'NoSuchIndex'"):
        X.SearchIndex.build(g, "NoSuchIndex")


def test_index_parameters():
    pytest.importorskip("faiss")
    gallery, ids, probes = _data(12, n=1500, n_ids=1500)
    g = S.templates(gallery, ids)
    h = X.SearchIndex.build(g, "HNSW8,Flat", build_params={"efConstruction": 20},
                            params={"efSearch": 16}, shortlist=16)
    assert h.info["build_params"] == {"efConstruction": 20} and h._index.hnsw.efSearch == 16
    low = S.top_k(probes, g, 5, method="index", index=h)
    h.tune({"efSearch": 400}, shortlist=400)
    assert h.info["params"] == {"efSearch": 400} and h.shortlist == 400
    assert X.SearchIndex.from_bytes(h.to_bytes())._index.hnsw.efSearch == 400
    high = S.top_k(probes, g, 5, method="index", index=h)
    exact = S.top_k(probes, g, 5)
    assert _recall(high.identity_index, exact.identity_index) == 1.0
    assert _recall(low.identity_index, exact.identity_index) < 1.0  # the parameters matter
    with pytest.raises(InputError, match="efConstruction"):
        X.SearchIndex.build(g, build_params={"efConstruction": 20})  # not an HNSW graph
    with pytest.raises(InputError, match="faiss index"):
        h.tune({"nprobe": 3})


def test_missing_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    g = S.templates(_data(11, n=50)[0])
    with pytest.raises(MissingError, match=r"pip install 'mfr\[index\]'"):
        X.SearchIndex.build(g)
