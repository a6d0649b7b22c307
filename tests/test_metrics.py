"""Verification and identification metrics (mfr.evaluation.metrics): hand-computed cases, an independent
brute-force computation, and the subject bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.evaluation import metrics as M


def _brute_force(d, y):
    """Every threshold's (FMR, FNMR), by counting, with no sklearn and no sorting tricks."""
    thresholds = [-np.inf] + sorted(set(d.tolist()))
    pts = []
    for t in thresholds:
        acc = d <= t
        pts.append((acc[y == 0].mean(), 1 - acc[y == 1].mean()))
    return np.array(pts)


def test_hand_computed_eer_fnmr_auc():
    # genuine 0.1, 0.4; impostor 0.3, 0.5 -> points (FMR, FNMR): (0,1) (0,.5) (.5,.5) (.5,0) (1,0)
    d, y = np.array([0.1, 0.4, 0.3, 0.5]), np.array([1, 1, 0, 0])
    r = M.roc(d, y)
    np.testing.assert_allclose(r.fmr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(r.fnmr, [1, 0.5, 0.5, 0, 0])
    np.testing.assert_allclose(r.thresholds[1:], [0.1, 0.3, 0.4, 0.5])
    m = M.verification_metrics(d, y)
    assert m["eer"] == 0.5 and m["eer_threshold"] == 0.3
    assert m["auc"] == 0.75  # P(genuine < impostor): 3 of 4 (genuine, impostor) orderings
    assert m["fnmr_at_fmr_1pct"] == 0.5 and m["fnmr_at_fmr_0_1pct"] == 0.5
    assert m["median_genuine"] == pytest.approx(0.25) and m["median_impostor"] == 0.4
    assert m["gmean"] == pytest.approx(0.25) and m["imean"] == pytest.approx(0.4)
    # Fisher: (0.25 - 0.4)^2 / (0.15^2 + 0.1^2)
    assert m["fisher"] == pytest.approx(0.0225 / (0.0225 + 0.01))
    assert m["null_reason"] is None and m["n_genuine"] == m["n_impostor"] == 2


def test_eer_interpolates_between_points():
    # genuine 0.1, 0.2, 0.6; impostor 0.3, 0.4 -> FNMR 1, 2/3, 1/3, 1/3, 1/3, 0 and FMR 0, 0, 0,
    # .5, 1, 1: the crossing lies between (0, 1/3) and (0.5, 1/3): FNMR = FMR at 1/3.
    d, y = np.array([0.1, 0.2, 0.6, 0.3, 0.4]), np.array([1, 1, 1, 0, 0])
    assert M.eer(d, y) == pytest.approx(1 / 3)
    # a crossing on a diagonal segment: from (0, 1) to (1, 0) in one step (a tie) -> 0.5
    assert M.eer([1.0, 1.0], [1, 0]) == pytest.approx(0.5)
    assert M.verification_metrics([1.0, 1.0], [1, 0])["auc"] == 0.5


def test_fnmr_at_fmr_picks_the_largest_admissible_threshold():
    # 200 impostors at 1..200, 10 genuine at 0.5 + 20 k: FMR <= 1% admits 2 impostors (t = 2)
    imp = np.arange(1, 201, dtype=float)
    gen = 0.5 + 20 * np.arange(10)
    d = np.r_[gen, imp]
    y = np.r_[np.ones(10), np.zeros(200)].astype(int)
    assert M.fnmr_at_fmr(d, y, 0.01) == pytest.approx(0.9)  # only the genuine at 0.5 is <= 2
    assert M.fnmr_at_fmr(d, y, 0.001) == pytest.approx(0.9)  # FMR 0: t < 1, same genuine
    assert M.choose_threshold(d, y, "fmr_1pct") == 2.0
    assert M.choose_threshold(d, y, "fmr_0_1pct") == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_g, n_i = 60, 400
    d = np.round(np.r_[rng.normal(1.0, 0.3, n_g), rng.normal(1.6, 0.3, n_i)], 2)  # with ties
    y = np.r_[np.ones(n_g), np.zeros(n_i)].astype(int)
    pts = _brute_force(d, y)
    m = M.verification_metrics(d, y)
    for key, target in M.FMR_TARGETS.items():
        assert m[key] == pytest.approx(pts[pts[:, 0] <= target, 1].min())
    # AUC = P(d_gen < d_imp) + P(tie) / 2 (Mann-Whitney), counted pair by pair
    g, i = d[y == 1][:, None], d[y == 0][None, :]
    assert m["auc"] == pytest.approx(np.mean(g < i) + 0.5 * np.mean(g == i))
    # the EER lies on the segment where FNMR - FMR changes sign
    k = next(j for j, (f, n) in enumerate(pts) if n <= f)
    lo = max(pts[k - 1, 0], pts[k, 1])
    hi = min(pts[k - 1, 1], pts[k, 0])
    assert lo - 1e-12 <= m["eer"] <= hi + 1e-12


def test_empty_class_gives_nulls_with_reason():
    m = M.verification_metrics([0.2, 0.5, 0.7], [1, 1, 1])
    assert m["auc"] is m["eer"] is m["fnmr_at_fmr_1pct"] is m["fisher"] is None
    assert "no impostor pairs" in m["null_reason"]
    assert m["median_genuine"] == 0.5 and m["median_impostor"] is None and m["gap"] is None
    assert "no genuine pairs" in M.verification_metrics([0.2], [0])["null_reason"]
    assert M.verification_metrics([], [])["null_reason"] == "no pairs"
    with pytest.raises(ValueError, match="no impostor pairs"):
        M.roc([0.2], [1])
    b = M.bootstrap_subjects([0.2, 0.3], [1, 1], ["a", "b"], ["a", "b"], n_resamples=20)
    assert b["intervals"]["auc"] == {"low": None, "high": None, "n_valid": 0}
    assert b["intervals"]["gmean"]["n_valid"] == 20


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="differ in length"):
        M.verification_metrics([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="labels must be 0"):
        M.verification_metrics([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="threshold rule"):
        M.choose_threshold([0.1, 0.2], [1, 0], "best")


def test_thresholds_applied():
    d, y = np.array([0.1, 0.4, 0.3, 0.5]), np.array([1, 1, 0, 0])
    t = M.choose_threshold(d, y, "eer")
    a = M.apply_threshold(d, y, t)
    assert t == 0.3 and a["fmr"] == 0.5 and a["fnmr"] == 0.5 and a["accuracy"] == 0.5
    assert M.apply_threshold([0.1, 0.9], [1, 0], 0.5)["accuracy"] == 1.0
    assert M.apply_threshold([0.1], [1], 0.5)["fmr"] is None


def test_cv_accuracy():
    d = np.r_[np.linspace(0, 1, 20), np.linspace(2, 3, 20)]
    y = np.r_[np.ones(20), np.zeros(20)].astype(int)
    cv = M.cv_accuracy(d, y, n_folds=10, seed=0)
    assert cv["accuracy"] == 1.0 and cv["n_folds"] == 10
    assert all(1.0 <= t < 2.0 for t in cv["thresholds"])
    assert cv == M.cv_accuracy(d, y, n_folds=10, seed=0)
    assert M.cv_accuracy([0.1, 0.2], [1, 0])["accuracy"] is None


# --------------------------------------------------------------------------- bootstrap


def test_subject_weights():
    counts = np.array([2, 0, 1])  # subject 0 drawn twice, 1 never, 2 once
    u = np.array([0, 0, 1, 1, 2])
    m = np.array([0, 1, 1, 2, 0])
    # genuine (0,0): 2; (0,1): 2 + 0; genuine (1,1): 0; (1,2): 0 + 1; (2,0): 1 + 2
    np.testing.assert_array_equal(M.subject_weights(counts, u, m), [2, 2, 0, 1, 3])


def test_weighted_stats_equal_repeated_pairs():
    """One resample's statistics equal the sklearn-based ones on the pairs repeated."""
    rng = np.random.default_rng(3)
    d = np.round(rng.random(300) * 2, 2)
    y = (rng.random(300) < 0.3).astype(int)
    w = rng.integers(0, 4, 300)
    order = np.argsort(d, kind="stable")
    ds, ys, ws = d[order], y[order], w[order]
    ends = np.r_[np.flatnonzero(np.diff(ds) != 0), len(ds) - 1]
    got = M._weighted_stats(ds, ys, ws, ends)
    rep = np.repeat(np.arange(300), w)
    want = M.verification_metrics(d[rep], y[rep])
    for k in M.BOOTSTRAP_STATS:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k


def test_bootstrap_resamples_subjects_and_is_seeded():
    # two subjects with 50 genuine pairs each: all of A's at 0.1, all of B's at 0.9; impostors
    # (A, B) and (B, A) at 2.0. Resampling pairs would pin GMean near 0.5; resampling subjects
    # gives A alone (0.1), B alone (0.9) or both (0.5).
    d = np.r_[np.full(50, 0.1), np.full(50, 0.9), np.full(20, 2.0)]
    y = np.r_[np.ones(100), np.zeros(20)].astype(int)
    u = ["A"] * 50 + ["B"] * 50 + ["A"] * 10 + ["B"] * 10
    m = ["A"] * 50 + ["B"] * 50 + ["B"] * 10 + ["A"] * 10
    b = M.bootstrap_subjects(d, y, u, m, n_resamples=400, seed=7)
    ci = b["intervals"]["gmean"]
    assert ci["low"] == pytest.approx(0.1) and ci["high"] == pytest.approx(0.9)
    assert b["unit"] == "subject" and b["n_subjects"] == 2 and b["seed"] == 7
    assert b == M.bootstrap_subjects(d, y, u, m, n_resamples=400, seed=7)
    other = M.bootstrap_subjects(np.r_[d[:60], d[60:] + 0.5], y, u, m, n_resamples=400, seed=8)
    assert other != b
    # every impostor pair is brought by both its subjects: never missing from a resample
    assert b["intervals"]["imean"]["n_valid"] == 400


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(5)
    subj = np.repeat(np.arange(30), 6).astype(str)
    d = np.r_[rng.normal(1.0, 0.2, 180), rng.normal(1.5, 0.2, 180)]
    y = np.r_[np.ones(180), np.zeros(180)].astype(int)
    u = np.r_[subj, subj]
    m = np.r_[subj, np.roll(subj, 6)]
    b = M.bootstrap_subjects(d, y, u, m, n_resamples=300, seed=1)
    est = M.verification_metrics(d, y)
    for k in ("auc", "eer", "gmean", "median_impostor"):
        ci = b["intervals"][k]
        assert ci["low"] < est[k] < ci["high"], k
        assert ci["n_valid"] == 300


# --------------------------------------------------------------------------- identification


def test_identification_rank_and_cmc():
    # gallery: subjects a (2 images), b, c; probes of a, b, c and d (not in the gallery)
    gallery = ["a", "a", "b", "c"]
    dist = np.array([
        [0.9, 0.2, 0.5, 0.7],  # a: nearest a image 0.2 -> rank 1
        [0.3, 0.8, 0.6, 0.1],  # b: c 0.1, a 0.3 < b 0.6 -> rank 3
        [0.4, 0.9, 0.9, 0.4],  # c: tie with a at 0.4 -> rank 2 (ties count against)
        [0.1, 0.1, 0.1, 0.1],  # d: no gallery image
    ])
    probes = ["a", "b", "c", "d"]
    np.testing.assert_array_equal(M.identification_ranks(dist, probes, gallery), [1, 3, 2, 0])
    out = M.identification(dist, probes, gallery, ranks=(1, 2))
    assert out["rank_1"] == pytest.approx(1 / 3) and out["rank_2"] == pytest.approx(2 / 3)
    assert out["cmc"] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert out["n_probes"] == 3 and out["n_probes_without_gallery"] == 1
    assert out["n_gallery_subjects"] == 3 and out["n_gallery_images"] == 4
    assert M.identification(dist[3:], ["d"], gallery)["rank_1"] is None


def test_identification_from_embeddings():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 32))
    gallery = centres + 0.05 * rng.normal(size=(5, 32))
    probes = centres[[4, 0, 2]] + 0.05 * rng.normal(size=(3, 32))
    dist = M.distance_matrix(probes, gallery, "cosine")
    out = M.identification(dist, ["s4", "s0", "s2"], [f"s{i}" for i in range(5)])
    assert out["rank_1"] == 1.0 and out["cmc"][0] == 1.0
    swapped = M.identification(dist, ["s0", "s4", "s2"], [f"s{i}" for i in range(5)])
    assert swapped["rank_1"] == pytest.approx(1 / 3)
    ci = M.bootstrap_identification(M.identification_ranks(dist, ["s0", "s4", "s2"],
                                                           [f"s{i}" for i in range(5)]),
                                    ["s0", "s4", "s2"], n_resamples=200, seed=0)
    assert ci["intervals"]["rank_1"]["low"] == 0.0 and ci["intervals"]["rank_1"]["high"] == 1.0
    np.testing.assert_allclose(M.distance_matrix(probes, gallery, "sum_squared"),
                               ((probes[:, None] - gallery[None]) ** 2).sum(-1))
