"""Identity hygiene (mfr.data.identities, `mfr data overlap`): people in two datasets, by name."""

from __future__ import annotations

import json

from mfr.cli import main
from mfr.data.datasets import load_dataset
from mfr.data.datasets.synthetic import make_m2fred_tree, make_mlfw_tree, make_rmfrd_tree
from mfr.data.identities import name_key, name_parts, name_variants, shared_identities


def test_names_normalised():
    assert name_key("Ben_Affleck") == name_key("BenAffleck") == name_key("ben affleck")
    assert name_key("José María Aznar") == name_key("Jose_Maria_Aznar") == "josemariaaznar"
    assert name_key("Nancy-Pelosi") == "nancypelosi"
    assert name_parts("BenAffleck") == ("ben", "affleck")
    assert name_parts("Liu_Xiaoqing") == ("liu", "xiaoqing")
    assert name_variants("Ye Liu") == {"yeliu", "liuye"}


def test_shared_identities_across_datasets_and_splits(tmp_path):
    mlfw = make_mlfw_tree(tmp_path / "mlfw", {
        "train": {"Liu_Xiaoqing": [(1, 0)], "Ben_Affleck": [(1, 0)], "Ye_Liu": [(1, 0)],
                  "Only_Here": [(1, 0)]},
        "val": {"jose_aznar": [(1, 0)]}})
    rmfrd = make_rmfrd_tree(tmp_path / "r", {"liuxiaoqing": (1, 1), "liuye": (1, 1),
                                             "wangfei": (1, 1), "José_Aznar": (1, 1)},
                            image_size=16)
    # a person on one side only is in the tree all the same
    (rmfrd / "AFDB_face_dataset" / "BenAffleck").mkdir()
    m2 = make_m2fred_tree(tmp_path / "m2", {"000": (1, 1)})
    found = shared_identities({"mlfw": load_dataset(mlfw), "rmfrd": load_dataset(rmfrd),
                               "m2fred": load_dataset(m2)})
    got = {(m["match"], tuple((i["dataset"], i["split"], i["name"]) for i in m["identities"]))
           for m in found["matches"]}
    assert got == {
        ("same name", (("mlfw", "train", "Ben_Affleck"), ("rmfrd", None, "BenAffleck"))),
        ("same name", (("mlfw", "train", "Liu_Xiaoqing"), ("rmfrd", None, "liuxiaoqing"))),
        ("same name", (("mlfw", "val", "jose_aznar"), ("rmfrd", None, "José_Aznar"))),
        ("same name parts, other order", (("mlfw", "train", "Ye_Liu"), ("rmfrd", None, "liuye"))),
    }
    assert found["unnamed"] == ["m2fred"]  # numbers: not checkable by name
    assert found["identities"] == {"mlfw": 5, "rmfrd": 5, "m2fred": 1}


def test_overlap_command(tmp_path, capsys):
    a = make_mlfw_tree(tmp_path / "a", {"train": {"Ann_A": [(1, 0)]}, "val": {"ann a": [(1, 0)]}})
    b = make_rmfrd_tree(tmp_path / "b", {"x": (1, 1)}, image_size=16)
    out = tmp_path / "found.json"
    assert main(["data", "overlap", str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 shared by name" in printed and "mlfw (a)/train: Ann_A; mlfw (a)/val: ann a" in printed
    assert json.loads(out.read_text())["matches"][0]["key"] == "anna"


def test_shared_sets_hold_other_people(mlfw_dev, mfr2_dev, rmfrd_dev):
    """mlfw-dev was cleared of the MFR2 and RMFRD people that LFW also holds (shared README):
    by name, no identity is in two of these sets, nor in MLFW's train and val."""
    found = shared_identities({"mlfw": load_dataset(mlfw_dev),
                               "mfr2": load_dataset(mfr2_dev / "mfr2"),
                               "rmfrd": load_dataset(rmfrd_dev)})
    assert found["matches"] == []
    assert found["identities"] == {"mlfw": 2686, "mfr2": 27, "rmfrd": 121}
