"""Layouts, root detection, bad input and exclusions (mfr.datasets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfr.datasets import (
    MASKED_DIR,
    RMFRD_DIRNAME,
    UNMASKED_DIR,
    FaceImage,
    check_image,
    find_rmfrd_root,
    load_dataset,
    load_mfr2,
    load_rmfrd,
)
from mfr.partition import select_images
from mfr.datasets.synthetic import face_jpeg, make_rmfrd_tree


def _tree(tmp_path: Path, counts, **kw) -> Path:
    return make_rmfrd_tree(tmp_path / "download", counts, image_size=32, **kw)


def test_missing_root_names_path_and_layout(tmp_path):
    missing = tmp_path / "nowhere"
    for fn in (find_rmfrd_root, load_rmfrd, load_dataset):
        with pytest.raises(FileNotFoundError) as e:
            fn(missing)
        msg = str(e.value)
        assert str(missing) in msg and MASKED_DIR in msg and "\n" not in msg


def test_root_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="file.txt"):
        find_rmfrd_root(f)


def test_missing_side_names_the_side(tmp_path):
    root = tmp_path / RMFRD_DIRNAME
    (root / MASKED_DIR / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as e:
        load_rmfrd(tmp_path)
    assert str(root / UNMASKED_DIR) in str(e.value)


def test_no_tree_says_where_it_looked(tmp_path):
    (tmp_path / "x" / "y").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as e:
        load_dataset(tmp_path)
    assert "looked in" in str(e.value) and str(tmp_path) in str(e.value)


def test_find_root_at_and_above(tmp_path):
    root = _tree(tmp_path, {"a": (1, 1)})
    assert root.name == RMFRD_DIRNAME
    assert find_rmfrd_root(root) == root
    assert find_rmfrd_root(root.parent) == root  # one folder above
    assert find_rmfrd_root(tmp_path) == root  # two folders above
    flat = make_rmfrd_tree(tmp_path / "flat", {"a": (1, 1)}, image_size=16, dirname=None)
    assert find_rmfrd_root(flat) == flat


def test_several_trees_is_an_error(tmp_path):
    for name in ("one", "two"):
        make_rmfrd_tree(tmp_path / name, {"a": (1, 1)}, image_size=16, dirname=None)
    with pytest.raises(ValueError, match="several RMFRD trees"):
        find_rmfrd_root(tmp_path)


def test_load_rmfrd_images_and_order(tmp_path):
    root = _tree(tmp_path, {"b": (2, 1), "a": (1, 2)})
    ds = load_rmfrd(root)
    assert ds.layout == "rmfrd" and ds.root == root and ds.subjects == ["a", "b"]
    assert ds.images == [
        FaceImage(f"{UNMASKED_DIR}/a/0000.jpg", "a", False),
        FaceImage(f"{MASKED_DIR}/a/0000.jpg", "a", True),
        FaceImage(f"{MASKED_DIR}/a/0001.jpg", "a", True),
        FaceImage(f"{UNMASKED_DIR}/b/0000.jpg", "b", False),
        FaceImage(f"{UNMASKED_DIR}/b/0001.jpg", "b", False),
        FaceImage(f"{MASKED_DIR}/b/0000.jpg", "b", True),
    ]
    assert ds.summary() == {"subjects": 2, "unmasked_images": 3, "masked_images": 3}
    assert ds.excluded == {"subjects": [], "files": []}


def _reasons(ds):
    return {e["path"]: e["reason"] for e in ds.excluded["files"]}


def test_excluded_reasons(tmp_path):
    root = _tree(tmp_path, {"both": (2, 2), "maskonly": (None, 3), "faceonly": (2, None),
                            "empty": (2, 0), "pngs": (1, 0)})
    m = root / MASKED_DIR
    (m / "pngs" / "x.png").write_bytes(b"")
    (m / "pngs" / "y.JPG").write_bytes(b"")
    (m / "both" / "notes.txt").write_text("not an image")
    (m / "both" / ".hidden.jpg").write_bytes(b"")
    (m / "stray.jpg").write_bytes(b"")
    (m / "both" / "sub.jpg").mkdir()
    ds = load_rmfrd(root)
    assert ds.subjects == ["both", "empty", "pngs"]
    subj = {(e["subject"], e["side"]): e for e in ds.excluded["subjects"]}
    assert "only in" in subj[("maskonly", "masked")]["reason"]
    assert "only in" in subj[("faceonly", "unmasked")]["reason"]
    assert "not a subject" in subj[("maskonly", "masked")]["action"]
    assert subj[("empty", "masked")]["reason"] == "empty masked folder"
    assert "kept" in subj[("empty", "masked")]["action"]
    assert "no file matching *.jpg" in subj[("pngs", "masked")]["reason"]
    r = _reasons(ds)
    assert r[f"{MASKED_DIR}/pngs/x.png"] == "does not match *.jpg"
    assert r[f"{MASKED_DIR}/pngs/y.JPG"] == "does not match *.jpg"  # glob is case-sensitive
    assert r[f"{MASKED_DIR}/both/notes.txt"] == "does not match *.jpg"
    assert "hidden" in r[f"{MASKED_DIR}/both/.hidden.jpg"]
    assert r[f"{MASKED_DIR}/both/sub.jpg"] == "not a regular file"
    assert r[f"{MASKED_DIR}/stray.jpg"] == "not inside a subject folder"
    # balanced: any common format, any case
    bal = load_rmfrd(root, patterns="balanced")
    paths = {im.path for im in bal.images}
    assert {f"{MASKED_DIR}/pngs/x.png", f"{MASKED_DIR}/pngs/y.JPG"} <= paths
    assert f"{MASKED_DIR}/both/notes.txt" not in paths


def test_corrupt_files_skipped_only_when_selected(tmp_path):
    root = _tree(tmp_path, {"a": (4, 1)})
    u = root / UNMASKED_DIR / "a"
    (u / "0001.jpg").write_bytes(b"this is not a jpeg")
    (u / "0002.jpg").write_bytes(b"")
    ds = load_rmfrd(root)
    assert check_image(u / "0000.jpg") is None
    assert check_image(u / "0001.jpg") is not None
    un, ma, bad, beyond = select_images(ds, max_per_subject=2)
    assert [im.path.rsplit("/", 1)[1] for im in un["a"]] == ["0000.jpg", "0003.jpg"]
    assert sorted(b["path"].rsplit("/", 1)[1] for b in bad) == ["0001.jpg", "0002.jpg"]
    assert all("skipped" in b["action"] for b in bad)
    assert beyond == {"unmasked": 0, "masked": 0}
    un, _, bad, beyond = select_images(ds, max_per_subject=1)
    assert bad == [] and beyond["unmasked"] == 3  # files past the cap are never opened
    un, _, bad, _ = select_images(ds, max_per_subject=2, verify=False)
    assert bad == [] and len(un["a"]) == 2
    un, _, bad, _ = select_images(ds, max_per_subject=2, on_corrupt="keep")
    assert [im.path.rsplit("/", 1)[1] for im in un["a"]] == ["0000.jpg", "0001.jpg"]
    assert [b["path"].rsplit("/", 1)[1] for b in bad] == ["0001.jpg"]
    assert "kept" in bad[0]["action"]


def test_spaces_and_non_ascii_names(tmp_path):
    names = ["Zhāng Wěi", "a b", "李娜"]
    root = _tree(tmp_path / "dir with space é", {n: (2, 1) for n in names})
    (root / MASKED_DIR / "a b" / "ü 1.jpg").write_bytes(face_jpeg("a b", True, 32))
    ds = load_dataset(root.parent)
    assert ds.subjects == sorted(names)
    assert f"{MASKED_DIR}/a b/ü 1.jpg" in {im.path for im in ds.images}
    un, ma, bad, _ = select_images(ds)
    assert bad == [] and len(ma["a b"]) == 2


def test_mfr2_real_both_layouts(mfr2_dev):
    m = load_dataset(mfr2_dev / "mfr2")
    assert m.layout == "mfr2" and len(m.subjects) == 27
    assert m.summary() == {"subjects": 27, "unmasked_images": 48, "masked_images": 86}
    assert m.excluded["files"] == []
    assert FaceImage("AdrianDunbar/AdrianDunbar_0001.png", "AdrianDunbar", True) in m.images
    assert FaceImage("AdrianDunbar/AdrianDunbar_0002.png", "AdrianDunbar", False) in m.images
    r = load_dataset(mfr2_dev / "rmfrd_layout")
    assert r.layout == "rmfrd" and r.subjects == m.subjects
    assert r.summary() == m.summary()
    assert load_dataset(mfr2_dev).root == r.root  # found one folder down
    _, _, bad, _ = select_images(m)
    assert bad == []


def test_mfr2_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="mfr2_labels.txt"):
        load_mfr2(tmp_path)
    (tmp_path / "mfr2_labels.txt").write_text("A, 1, no-mask\nbroken line\n")
    with pytest.raises(ValueError, match="mfr2_labels.txt:2"):
        load_mfr2(tmp_path)
    (tmp_path / "mfr2_labels.txt").write_text("A, 1, no-mask\nA, 2, N95\n")
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "A_0001.png").write_bytes(face_jpeg("A", False, 32))
    (tmp_path / "A" / "extra.txt").write_text("x")
    ds = load_dataset(tmp_path)
    assert ds.layout == "mfr2" and [im.path for im in ds.images] == ["A/A_0001.png"]
    assert {e["reason"] for e in ds.excluded["files"]} == {
        "listed in mfr2_labels.txt but missing", "not listed in mfr2_labels.txt"}
    assert [(e["subject"], e["side"]) for e in ds.excluded["subjects"]] == [("A", "masked")]


def test_every_step_takes_the_data_root_partition_takes(tmp_path, mfr2_dev):
    """A folder above the dataset works for the steps after the partition, as for it."""
    from mfr.config import StudyConfig
    from mfr.steps._common import resolve_data_root

    root = _tree(tmp_path, {"a": (1, 1)})
    pairs = tmp_path / "no-partition-here"
    assert resolve_data_root(tmp_path, pairs, StudyConfig()) == root
    assert resolve_data_root(root, pairs, StudyConfig()) == root
    other = tmp_path / "plain"
    other.mkdir()
    assert resolve_data_root(other, pairs, StudyConfig()) == other  # as given
    # MFR2's own layout, one folder below the one given (`--layout mfr2`)
    assert load_mfr2(mfr2_dev).root == mfr2_dev / "mfr2"
