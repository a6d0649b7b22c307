"""Layouts, root detection, bad input and exclusions (mfr.data.datasets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfr.data.datasets import (
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
from mfr.data.datasets.synthetic import face_jpeg, make_rmfrd_tree
from mfr.data.partition import select_images


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
    from mfr.core.config import StudyConfig
    from mfr.study.steps.inputs import resolve_data_root

    root = _tree(tmp_path, {"a": (1, 1)})
    pairs = tmp_path / "no-partition-here"
    assert resolve_data_root(tmp_path, pairs, StudyConfig()) == root
    assert resolve_data_root(root, pairs, StudyConfig()) == root
    other = tmp_path / "plain"
    other.mkdir()
    assert resolve_data_root(other, pairs, StudyConfig()) == other  # as given
    # MFR2's own layout, one folder below the one given (`--layout mfr2`)
    assert load_mfr2(mfr2_dev).root == mfr2_dev / "mfr2"


# ------------------------------------------------------------------------------ the registry


def _choices(parser, *path):
    """The choices of the positional/option `dest` under sub-commands `path[:-1]`."""
    import argparse

    *subs, dest = path
    for name in subs:
        sp = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sp.choices[name]
    return list(next(a for a in parser._actions if a.dest == dest).choices)


def _mfr2_tree(folder: Path) -> Path:
    """A minimal MFR2 tree: one person, an unmasked and a masked image, a pairs.txt."""
    (folder / "A").mkdir(parents=True)
    for i, masked in ((1, False), (2, True)):
        (folder / "A" / f"A_000{i}.png").write_bytes(face_jpeg("A", masked, 32))
    (folder / "mfr2_labels.txt").write_text("A, 1, no-mask\nA, 2, N95\n")
    (folder / "pairs.txt").write_text("A 1 2\n")
    return folder


def _toy_spec(name="toy"):
    from mfr.data.datasets import DatasetSpec

    def detect(root, depth):
        return root if depth == 0 and (root / "TOY").is_file() else None

    def load(root, patterns="thesis"):
        return load_rmfrd(Path(root) / "tree", patterns)

    return DatasetSpec(name=name, label="a toy dataset of the tests", layout=name, load=load,
                       detect=detect, layout_hint="expected a TOY file")


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test (a test may register its own datasets)."""
    from mfr.data import datasets

    monkeypatch.setattr(datasets, "DATASETS", dict(datasets.DATASETS))
    return datasets


def test_registry_lists_the_datasets_and_their_facts(registry):
    names = ["rmfrd", "mfr2", "mlfw", "m2fred", "synthetic"]
    assert registry.dataset_names() == names
    assert registry.dataset_names(fetchable=True) == names
    for name in registry.dataset_names():
        spec = registry.get_dataset(name)
        assert spec.name == name and spec.label
        assert spec.layout in ("rmfrd", "mfr2", "mlfw", "m2fred")
        assert set(spec.evaluation_pair_sets) <= {registry.EVERY_PAIR, *spec.pair_sets}
        assert set(spec.partition_pair_sets) <= set(spec.pair_sets)
        assert (registry.EVERY_PAIR in spec.evaluation_pair_sets) == spec.mask_flags
    rmfrd, mfr2, synth = map(registry.get_dataset, ("rmfrd", "mfr2", "synthetic"))
    assert rmfrd.source["gdrive_id"] != mfr2.source["gdrive_id"] and synth.source is None
    assert synth.layout == "rmfrd" and synth.detect is None and synth.make is not None
    assert mfr2.partition_pair_sets == ("mfr2_pairs",) and rmfrd.partition_pair_sets == ()
    assert mfr2.evaluation_pair_sets == ("mfr2_pairs", "masked_vs_unmasked", "mfr2_pairs_all")
    # MLFW and M2FRED: no download mfr could make; the entry says how to get them, no URL
    for name in ("mlfw", "m2fred"):
        src = registry.get_dataset(name).source
        assert "gdrive_id" not in src and "http" not in src["manual"]
        assert "GitHub repository" in src["manual"]


def test_unknown_dataset_is_one_line_naming_the_known(registry):
    from mfr.core.errors import InputError
    from mfr.data.fetch import dataset_dir

    for fn in (registry.get_dataset, dataset_dir):
        with pytest.raises(InputError) as e:
            fn("nope")
        msg = str(e.value)
        assert "'nope'" in msg and "\n" not in msg
        assert all(n in msg for n in ("rmfrd", "mfr2", "synthetic"))


def test_detect_each_layout(tmp_path, registry):
    from mfr.data.datasets.synthetic import make_demo_tree

    rm = _tree(tmp_path / "r", {"a": (1, 1)})
    spec, found = registry.detect_dataset(tmp_path / "r")  # two levels above the tree
    assert (spec.name, found) == ("rmfrd", rm)
    m2 = _mfr2_tree(tmp_path / "m" / "mfr2")
    assert registry.detect_dataset(m2)[0].name == "mfr2"
    spec, found = registry.detect_dataset(tmp_path / "m")  # one below
    assert (spec.name, found) == ("mfr2", m2)
    assert registry.dataset_root(tmp_path / "m") == (m2, "mfr2")
    # the generated sample is RMFRD's layout: read as RMFRD
    synth = make_demo_tree(tmp_path / "s", n_subjects=2, image_size=16)
    spec, found = registry.detect_dataset(tmp_path / "s")
    assert (spec.name, found) == ("rmfrd", synth)
    assert registry.load_dataset(tmp_path / "s").subjects == load_rmfrd(synth).subjects
    # the closest tree wins: MFR2 in the folder itself over an RMFRD tree below it
    both = _mfr2_tree(tmp_path / "both")
    make_rmfrd_tree(both / "x", {"a": (1, 1)}, image_size=16)
    assert registry.detect_dataset(both) == (registry.get_dataset("mfr2"), both)
    # none: one line, every layout's hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as e:
        registry.detect_dataset(tmp_path / "empty")
    msg = str(e.value)
    assert "\n" not in msg and MASKED_DIR in msg and "mfr2_labels.txt" in msg


def test_cli_choices_are_the_registry(registry):
    from mfr.cli import build_parser

    parser = build_parser(("evaluate", "data"))
    assert _choices(parser, "evaluate", "layout") == registry.dataset_names()
    assert _choices(parser, "data", "fetch", "name") == registry.dataset_names(fetchable=True)


def test_a_registered_dataset_is_everywhere(tmp_path, registry, capsys, monkeypatch):
    """One entry: the CLI's choices, `mfr data list`, detection and loading see it; with no
    source nor generator, `mfr data fetch` does not offer it."""
    from mfr.cli import build_parser, main

    registry.register_dataset(_toy_spec())
    parser = build_parser(("evaluate", "data"))
    assert "toy" in _choices(parser, "evaluate", "layout")
    assert "toy" not in _choices(parser, "data", "fetch", "name")
    root = tmp_path / "toydata"
    make_rmfrd_tree(root, {"a": (1, 1), "b": (2, 1)}, image_size=16, dirname="tree")
    (root / "TOY").write_text("")
    spec, found = registry.detect_dataset(root)  # found before the RMFRD tree a level below
    assert (spec.name, found) == ("toy", root)
    assert registry.load_dataset(root).subjects == ["a", "b"]
    monkeypatch.setenv("MFR_DATA", str(tmp_path / "home"))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "toy: a toy dataset of the tests" in out and "rmfrd:" in out
    assert "synthetic:" in out and "generated" in out
    from mfr.core.errors import InputError
    from mfr.data.datasets import DatasetSpec

    with pytest.raises(InputError, match="unknown layout 'nowhere'"):
        registry.register_dataset(DatasetSpec(name="other", label="x", layout="nowhere",
                                              load=load_rmfrd))
    assert "other" not in registry.dataset_names()


def test_fetch_synthetic_generates_it_once(tmp_path, monkeypatch, capsys):
    from mfr.cli import main

    monkeypatch.setenv("MFR_DATA", str(tmp_path))
    assert main(["data", "fetch", "synthetic"]) == 0
    root = tmp_path / "synthetic" / RMFRD_DIRNAME
    assert capsys.readouterr().out.strip() == f"synthetic: {root}"
    ds = load_rmfrd(root)
    assert len(ds.subjects) == 12 and ds.summary()["masked_images"] > 0
    stamp = (root / MASKED_DIR).stat().st_mtime_ns
    assert main(["data", "fetch", "synthetic"]) == 0  # there: nothing done
    assert (root / MASKED_DIR).stat().st_mtime_ns == stamp
    assert main(["data", "fetch", "synthetic", "--url", "http://x", "--to",
                 str(tmp_path / "elsewhere")]) == 2
    assert "generated, not downloaded" in capsys.readouterr().err


def test_missing_data_names_the_dataset_of_its_home(tmp_path, monkeypatch):
    """No guessing from the path: the dataset whose $MFR_DATA/<name> holds the data root."""
    from mfr.core.config import StudyConfig
    from mfr.core.errors import MissingError
    from mfr.study.runner import _check_can_run

    monkeypatch.setenv("MFR_DATA", str(tmp_path / "home"))
    for root, named in ((tmp_path / "home" / "mfr2", "mfr data fetch mfr2 "),
                        (tmp_path / "home" / "rmfrd" / "x", "mfr data fetch rmfrd "),
                        (tmp_path / "MFR2-copy", "mfr data fetch rmfrd|mfr2|mlfw|m2fred|synthetic ")):
        with pytest.raises(MissingError) as e:
            _check_can_run(StudyConfig(data_root=str(root)), "p")
        assert named in str(e.value) and str(root) in str(e.value)
