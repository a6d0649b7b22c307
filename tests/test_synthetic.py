"""Synthetic RMFRD trees (mfr.data.datasets.synthetic)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mfr.data.datasets import MASKED_DIR, UNMASKED_DIR, load_rmfrd
from mfr.data.datasets.synthetic import (
    TABLE_3_1,
    demo_counts,
    draw_face,
    make_demo_tree,
    make_rmfrd_tree,
    table_4_2_counts,
)


def _cap(x):
    return min(x or 0, 20)


def test_table_4_2_counts_arithmetic():
    for files in ("capped", "full"):
        c = table_4_2_counts(files)
        common = sorted(s for s, (u, m) in c.items() if u is not None and m is not None)
        assert len(common) == 442
        tv, te = common[:353], common[353:]
        assert sum(_cap(c[s][0]) for s in tv) == 7034
        assert sum(_cap(c[s][1]) for s in tv) == 1343
        assert sum(_cap(c[s][0]) * _cap(c[s][1]) for s in tv) == 26815
        assert sum(_cap(c[s][0]) for s in te) == 1766
        assert sum(_cap(c[s][1]) for s in te) == 455
        assert sum(_cap(c[s][0]) * _cap(c[s][1]) for s in te) == 9095
        assert any(c[s][0] > 0 and c[s][1] == 0 for s in te)
    full = table_4_2_counts("full")
    assert sum(1 for u, _ in full.values() if u is not None) == TABLE_3_1["unmasked_subjects"]
    assert sum(1 for _, m in full.values() if m is not None) == TABLE_3_1["masked_subjects"]
    assert sum(u or 0 for u, _ in full.values()) == TABLE_3_1["unmasked_images"]
    assert sum(m or 0 for _, m in full.values()) == TABLE_3_1["masked_images"]
    assert table_4_2_counts("capped") == table_4_2_counts("capped")


def test_make_tree_counts_and_folders(tmp_path):
    root = make_rmfrd_tree(tmp_path, {"a": (3, 0), "b": (None, 2), "c": (1, 1)}, image_size=48)
    assert sorted(p.name for p in (root / UNMASKED_DIR / "a").iterdir()) == [
        "0000.jpg", "0001.jpg", "0002.jpg"]
    assert list((root / MASKED_DIR / "a").iterdir()) == []
    assert not (root / UNMASKED_DIR / "b").exists()
    with Image.open(root / MASKED_DIR / "b" / "0001.jpg") as im:
        assert im.format == "JPEG" and im.size == (48, 48)
    ds = load_rmfrd(root)
    assert ds.subjects == ["a", "c"]


def test_drawings_depend_on_identity_and_mask():
    a = np.asarray(draw_face("alice", False, 96), dtype=float)
    a2 = np.asarray(draw_face("alice", False, 96), dtype=float)
    am = np.asarray(draw_face("alice", True, 96), dtype=float)
    b = np.asarray(draw_face("bob", False, 96), dtype=float)
    assert (a == a2).all()  # deterministic
    assert np.abs(a - b).mean() > np.abs(a - am).mean() * 0.5 > 0
    lower = slice(60, 90)
    assert np.abs(a[lower] - am[lower]).mean() > np.abs(a[:30] - am[:30]).mean()


def test_distinct_repeats_bytes(tmp_path):
    root = make_rmfrd_tree(tmp_path, {"a": (4, 2)}, image_size=16, distinct=1, dirname=None)
    files = sorted((root / UNMASKED_DIR / "a").iterdir())
    assert len({f.read_bytes() for f in files}) == 1
    root2 = make_rmfrd_tree(tmp_path / "x", {"a": (3, 1)}, image_size=32, dirname=None)
    assert len({f.read_bytes() for f in (root2 / UNMASKED_DIR / "a").iterdir()}) == 3


def test_demo_tree(tmp_path):
    counts = demo_counts()
    assert len(counts) == 12 and all(3 <= u <= 6 and 2 <= m <= 4 for u, m in counts.values())
    root = make_demo_tree(tmp_path, image_size=64)
    ds = load_rmfrd(root)
    assert len(ds.subjects) == 12
    assert ds.summary()["masked_images"] == sum(m for _, m in counts.values())
