"""Open-set 1:N metrics (mfr.evaluation.open_set): a hand-computed case from a matrix and from
candidate lists, an independent brute-force computation, and the probe-subject bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.core.errors import InputError
from mfr.evaluation import metrics as M
from mfr.evaluation import open_set as O

# Gallery images: A (twice: columns 0 and 3), B, C. Probes p1..p4 are enrolled (A, B, C, A);
# n1..n4 are not. A subject's distance is its nearest image's (A: min of columns 0 and 3).
GALLERY = ["A", "B", "C", "A"]
PROBES = ["A", "B", "C", "A", "X", "Y", "Z", "W"]
DIST = np.array([
    # A1    B     C     A2      identity distances (A, B, C); the mate's rank
    [0.40, 0.50, 0.90, 0.30],  # p1 (A): 0.3 0.5 0.9 -> rank 1 at 0.3
    [0.30, 0.40, 0.80, 0.70],  # p2 (B): 0.3 0.4 0.8 -> rank 2 at 0.4
    [0.60, 0.70, 0.60, 0.95],  # p3 (C): 0.6 0.7 0.6 -> A ties C: rank 2 (against the probe)
    [0.10, 0.90, 0.90, 0.20],  # p4 (A): 0.1 0.9 0.9 -> rank 1 at 0.1
    [0.35, 0.50, 0.70, 0.90],  # n1: nearest 0.35
    [0.80, 0.35, 0.90, 0.85],  # n2: nearest 0.35 (a tie with n1)
    [0.25, 0.95, 0.95, 0.99],  # n3: nearest 0.25
    [0.90, 0.90, 0.65, 0.92],  # n4: nearest 0.65
])
# the same searches as top-2 candidate lists (p3's tie listed C first: its rank stays 2)
CAND = [["A", "B"], ["A", "B"], ["C", "A"], ["A", "B"],
        ["A", "B"], ["B", "A"], ["A", "B"], ["C", "A"]]
CAND_D = [[0.3, 0.5], [0.3, 0.4], [0.6, 0.6], [0.1, 0.9],
          [0.35, 0.5], [0.35, 0.8], [0.25, 0.95], [0.65, 0.9]]


@pytest.fixture(params=["matrix", "lists"])
def hand(request):
    if request.param == "matrix":
        return O.searches_from_distances(DIST, PROBES, GALLERY)
    return O.searches_from_candidates(CAND, CAND_D, PROBES, GALLERY)


def test_hand_computed_searches(hand):
    np.testing.assert_array_equal(hand.mated, [1, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(hand.mate_rank, [1, 2, 2, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(hand.mate_distance[:4], [0.3, 0.4, 0.6, 0.1])
    assert np.isnan(hand.mate_distance[4:]).all()
    np.testing.assert_allclose(hand.top_distance, [0.3, 0.3, 0.6, 0.1, 0.35, 0.35, 0.25, 0.65])
    assert hand.n_identities == 3 and hand.n_mated == 4 and hand.n_nonmated == 4


def test_hand_computed_fpir_fnir_cmc(hand):
    # non-mated nearest distances: 0.25, 0.35, 0.35, 0.65
    np.testing.assert_allclose(O.fpir(hand, [0.2, 0.25, 0.3, 0.35, 0.5, 0.65, 1.0]),
                               [0, 0.25, 0.25, 0.75, 0.75, 1, 1])
    # rank 1: only p1 (0.3) and p4 (0.1) can be found
    np.testing.assert_allclose(O.fnir(hand, [0.05, 0.1, 0.29, 0.3, 10.0], rank=1),
                               [1, 0.75, 0.75, 0.5, 0.5])
    # rank 2: p2 (0.4) and p3 (0.6) too
    np.testing.assert_allclose(O.fnir(hand, [0.35, 0.5, 0.6], rank=2), [0.5, 0.25, 0.0])
    np.testing.assert_allclose(O.cmc(hand, 2), [0.5, 1.0])


def test_hand_computed_fnir_at_fpir_and_ties(hand):
    # FPIR <= 25%: one non-mated search may pass, the 2nd nearest (0.35) may not
    r = O.fnir_at_fpir(hand, 0.25)
    assert r["threshold"] == np.nextafter(0.35, -np.inf)
    assert r["fpir"] == 0.25 and r["fnir"] == 0.5
    # FPIR <= 50%: 0.35 is two searches at once (a tie): both stay out, so FPIR is 25%
    r = O.fnir_at_fpir(hand, 0.5)
    assert r["threshold"] == np.nextafter(0.35, -np.inf) and r["fpir"] == 0.25
    # FPIR <= 10%: no non-mated search may pass: below 0.25; p4 (0.1) alone is found
    r = O.fnir_at_fpir(hand, 0.1)
    assert r["threshold"] == np.nextafter(0.25, -np.inf)
    assert r["fpir"] == 0.0 and r["fnir"] == 0.75
    # FPIR <= 75% at rank 2: below 0.65; p1, p2, p3 (0.6), p4 all found
    r = O.fnir_at_fpir(hand, 0.75, rank=2)
    assert r["threshold"] == np.nextafter(0.65, -np.inf)
    assert r["fpir"] == 0.75 and r["fnir"] == 0.0
    assert O.threshold_at_fpir(hand, 1.0) == np.inf


def test_metrics_summary_and_notes():
    s = O.searches_from_distances(DIST, PROBES, GALLERY)
    m = O.open_set_metrics(s, {"fnir_at_fpir_25pct": 0.25, "fnir_at_fpir_1pct": 0.01},
                           ranks=(1, 2, 5))
    assert m["rank_1"] == 0.5 and m["rank_2"] == 1.0 and m["rank_5"] == 1.0  # N = 3 < 5
    assert m["cmc"] == [0.5, 1.0, 1.0]
    assert m["fnir_at_fpir_25pct"]["fnir"] == 0.5
    assert m["fnir_at_fpir_1pct"]["fpir"] == 0.0
    assert len(m["notes"]) == 1 and "fnir_at_fpir_1pct" in m["notes"][0]
    assert m["n_searches"] == 8 and m["n_identities"] == 3 and m["null_reason"] is None
    lists = O.searches_from_candidates(CAND, CAND_D, PROBES, GALLERY)
    assert "rank_5" not in O.open_set_metrics(lists, ranks=(1, 5))  # lists of 2 cannot tell
    closed = O.searches_from_distances(DIST[:4], PROBES[:4], GALLERY)
    m = O.open_set_metrics(closed)
    assert m["fnir_at_fpir_1pct"] is None and "non-mated" in m["null_reason"]


def test_candidate_lists_checked():
    with pytest.raises(InputError, match="only 2"):
        O.fnir(O.searches_from_candidates(CAND, CAND_D, PROBES, GALLERY), 0.5, rank=3)
    with pytest.raises(InputError, match="sorted"):
        O.searches_from_candidates([["A", "B"]], [[0.5, 0.4]], ["A"], GALLERY)
    with pytest.raises(InputError, match="twice"):
        O.searches_from_candidates([["A", "A"]], [[0.4, 0.5]], ["A"], GALLERY)
    # an empty slot (a gallery of fewer than k identities) is not a candidate
    s = O.searches_from_candidates([["A", None]], [[0.4, np.inf]], ["B"], ["A"])
    assert s.max_rank == 1 and s.mate_rank[0] == 0 and s.top_distance[0] == 0.4


def _brute(dist, probes, gallery, thresholds, rank):
    """FNIR and FPIR straight from their definitions, one search at a time."""
    fn, fp = [], []
    for t in thresholds:
        miss = false_pos = n_m = n_nm = 0
        for i, p in enumerate(probes):
            best = {}
            for j, g in enumerate(gallery):
                best[g] = min(best.get(g, np.inf), dist[i, j])
            if p in best:
                n_m += 1
                others = sorted(v for g, v in best.items() if g != p and v <= best[p])
                found = len(others) + 1 <= rank and best[p] <= t
                miss += not found
            else:
                n_nm += 1
                false_pos += any(v <= t for v in best.values())
        fn.append(miss / n_m)
        fp.append(false_pos / n_nm)
    return np.array(fn), np.array(fp)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    gallery = [f"s{i}" for i in rng.integers(0, 9, 20)]
    probes = [f"s{i}" for i in rng.integers(0, 14, 30)]
    dist = np.round(rng.random((30, 20)), 2)  # rounded: ties happen
    s = O.searches_from_distances(dist, probes, gallery)
    thresholds = np.r_[0.0, np.unique(dist), 1.5]
    for rank in (1, 3):
        fn, fp = _brute(dist, probes, gallery, thresholds, rank)
        np.testing.assert_allclose(O.fnir(s, thresholds, rank), fn)
        np.testing.assert_allclose(O.fpir(s, thresholds), fp)
    # the closed-set CMC is metrics.identification's
    assert list(O.cmc(s)) == M.identification(dist, probes, gallery)["cmc"]
    # the threshold at FPIR x is the largest whose FPIR is <= x
    for target in (0.0, 0.1, 0.3, 0.5):
        t = O.threshold_at_fpir(s, target)
        assert O.fpir(s, t) <= target
        nm = s.top_distance[~s.mated]
        assert O.fpir(s, nm[nm > t].min()) > target


def test_weights_equal_repeated_searches():
    rng = np.random.default_rng(5)
    gallery = [f"s{i}" for i in range(6)]
    probes = [f"s{i}" for i in rng.integers(0, 10, 25)]
    dist = rng.random((25, 6))
    w = rng.integers(0, 4, 25)
    rep = np.repeat(np.arange(25), w)
    s = O.searches_from_distances(dist, probes, gallery)
    s_rep = O.searches_from_distances(dist[rep], np.array(probes)[rep], gallery)
    for target in (0.05, 0.2, 0.5):
        a, b = O.fnir_at_fpir(s, target, 2, w), O.fnir_at_fpir(s_rep, target, 2)
        assert a == pytest.approx(b)
    np.testing.assert_allclose(O.cmc(s, weights=w), O.cmc(s_rep))


def test_bootstrap_seeded_and_matches_closed_set_draws():
    rng = np.random.default_rng(2)
    gallery = [f"s{i}" for i in range(8)]
    probes = [f"s{i}" for i in rng.integers(0, 12, 60)]
    dist = rng.random((60, 8)) + 0.6 * (np.array(probes)[:, None] != np.array(gallery)[None])
    s = O.searches_from_distances(dist, probes, gallery)
    b = O.bootstrap_open_set(s, probes, n_resamples=200, seed=4)
    assert b == O.bootstrap_open_set(s, probes, n_resamples=200, seed=4)
    m = O.open_set_metrics(s)
    for key in ("rank_1", "fnir_at_fpir_10pct"):
        iv = b["intervals"][key]
        value = m[key] if key.startswith("rank") else m[key]["fnir"]
        assert iv["low"] <= value <= iv["high"]
        assert 180 <= iv["n_valid"] <= 200  # a resample may draw no non-mated subject
    # mated probes only: the same subject draws as the closed-set bootstrap
    mated = s.mated
    closed = O.searches_from_distances(dist[mated], np.array(probes)[mated], gallery)
    ranks = M.identification_ranks(dist[mated], np.array(probes)[mated], gallery)
    ref = M.bootstrap_identification(ranks, np.array(probes)[mated], n_resamples=200, seed=4)
    got = O.bootstrap_open_set(closed, np.array(probes)[mated], n_resamples=200, seed=4)
    for key in ("rank_1", "rank_5"):
        assert got["intervals"][key] == pytest.approx(ref["intervals"][key], abs=1e-12)
