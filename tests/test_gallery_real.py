"""Open-set identification through a gallery, on real masked photos (MFR2's, in ../shared;
skipped where absent): the unmasked photos of some people enrolled, the masked photos of them
and of others searched; rank-1 and FNIR at FPIR from the gallery (mfr.gallery.measure,
mfr.evaluation.open_set) equal to a recomputation in plain numpy from the same embeddings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

MODELS = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / \
    "insightface-mobilefacenet"
TARGETS = {"fnir_at_fpir_25pct": 0.25, "fnir_at_fpir_50pct": 0.5}


def _subset(root: Path, n_people: int = 8, per_side: int = 2):
    from mfr.data.datasets import load_dataset

    ds = load_dataset(root / "mfr2", "balanced")
    u, m = ds.by_subject(False), ds.by_subject(True)
    people = sorted(s for s in ds.subjects if u[s] and m[s])[:n_people]
    gallery = {s: [ds.abspath(im) for im in u[s][:per_side]] for s in people[: n_people // 2]}
    probes = [(s, ds.abspath(im)) for s in people for im in m[s][:per_side]]
    return gallery, probes


def _plain_numpy(gal_vec, gal_ids, probe_vec, probe_ok, probe_ids, enrolled, targets):
    """rank-1 and FNIR at FPIR x, from the embeddings alone (sum_squared of unit rows)."""
    d = 2.0 - 2.0 * probe_vec.astype(np.float64) @ gal_vec.astype(np.float64).T
    names = sorted(set(gal_ids))
    per = np.stack([d[:, np.asarray(gal_ids) == n].min(1) for n in names], axis=1)
    found = []  # per mated search: its mate's distance when the mate is first, else inf
    nonmated = []
    for i, s in enumerate(probe_ids):
        if s not in enrolled:
            nonmated.append(per[i].min() if probe_ok[i] else np.inf)
            continue
        j = names.index(s) if s in names and probe_ok[i] else None
        first = j is not None and (np.delete(per[i], j) > per[i, j]).all()
        found.append(per[i, j] if first else np.inf)
    found, nonmated = np.array(found), np.sort(nonmated)
    out = {"rank_1": float(np.isfinite(found).mean())}
    for key, x in targets.items():
        k = int(np.floor(x * len(nonmated) + 1e-9))  # non-mated searches allowed a candidate
        t = np.nextafter(nonmated[k], -np.inf) if k < len(nonmated) else np.inf
        out[key] = float((~(found <= t)).mean())
    return out


def _check(embedder, mfr2_dev):
    from mfr.evaluation.open_set import open_set_metrics
    from mfr.gallery.measure import gallery_searches
    from mfr.gallery.photos import embed_photos
    from mfr.gallery.store import Gallery

    gallery, probes = _subset(mfr2_dev)
    g = Gallery(embedder, detect=False, distance="sum_squared")
    for name, photos in gallery.items():
        g.add(name, photos)
    e = embed_photos([p for _, p in probes], embedder, g.detect, g.no_face)
    ids = [s for s, _ in probes]
    s = gallery_searches(g, e, ids, list(gallery))
    m = open_set_metrics(s, TARGETS, ranks=(1,))
    n_mated = sum(who in gallery for who in ids)
    assert (m["n_mated"], m["n_nonmated"], m["n_identities"]) == (n_mated, len(ids) - n_mated, 4)
    assert n_mated >= 4 and len(ids) - n_mated >= 4
    vec, _, gid = g.templates()
    want = _plain_numpy(vec, list(gid), e.vectors, e.ok, ids, set(gallery), TARGETS)
    assert m["rank_1"] == pytest.approx(want["rank_1"], abs=1e-12)
    for key in TARGETS:
        assert m[key]["fnir"] == pytest.approx(want[key], abs=1e-12), key
    # the same numbers through identify(): the first candidate and the decision
    r = g.identify([p for _, p in probes], k=1, threshold=m["fnir_at_fpir_50pct"]["threshold"])
    hits = [p.candidates[0][0] == who for p, who in zip(r, ids, strict=True)
            if who in gallery and p.candidates]
    assert np.mean(hits + [False] * (n_mated - len(hits))) == pytest.approx(m["rank_1"])
    return m


def test_open_set_on_real_masks_agrees_with_plain_numpy(mfr2_dev):
    """dlib's encoder on the whole crops (fast: no TensorFlow)."""
    pytest.importorskip("dlib")
    from mfr.api import load_embedder

    m = _check(load_embedder("dlib_reference", face_box="crop"), mfr2_dev)
    assert 0 < m["rank_1"] <= 1


@pytest.mark.slow
def test_open_set_with_mobilefacenet_and_its_face_finder(mfr2_dev, monkeypatch):
    """MobileFaceNet with its cascade face finder, as the benchmark runs it (about 30 s: MTCNN
    and the network are built)."""
    if not MODELS.is_dir():
        pytest.skip(f"{MODELS} is absent")
    monkeypatch.setenv("MFR_MOBILEFACENET_DIR", os.fspath(MODELS))
    from mfr.api import load_embedder

    m = _check(load_embedder("mobilefacenet"), mfr2_dev)
    assert m["rank_1"] >= 0.5  # masked MFR2 probes against 4 people: mostly right
