"""The pieces the study of real RMFRD photos added: Table 5.2 from a study's own test photos,
the profiles, and `mfr verify --backbone`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_backbones import _tiny_rmfrd

from mfr.core.config import StudyConfig, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_the_real_profiles_differ_only_in_the_searched_values():
    thesis, tuned = load_config("rmfrd-dlib"), load_config("rmfrd-dlib-tuned")
    assert thesis.backbone == "dlib_resnet" and thesis.weights == "dlib_v1"
    assert (thesis.optimizer, thesis.learning_rate, thesis.epochs) == ("sgd", 1e-5, 8)
    assert thesis.trainable_layers == (4, 8, 11, 15, 19, 23, 27)
    differ = {k for k, v in thesis.to_dict().items() if tuned.to_dict()[k] != v}
    assert differ == {"profile", "learning_rate", "epochs"}


def test_study_plans_table_5_2_from_its_own_test_photos(tmp_path):
    from mfr.study.runner import plan

    cfg = load_config("rmfrd-dlib", data_root=str(tmp_path))
    step = next(s for s in plan(cfg, "rmfrd-dlib", tmp_path / "s") if s.name == "pairs")
    assert step.parameters["pairs_csv"] == str((tmp_path / "s" / "partition").resolve())
    assert step.parameters["detect"] is False and not step.tensorflow  # crops: no MTCNN
    assert step.parameters["embedder"] == "dlib_resnet"
    assert step.parameters["model"].endswith("train_N27")


def test_table_5_2_of_a_partitions_test_photos(tmp_path):
    from mfr.study.steps import partition_step, verify_pairs_step

    root = _tiny_rmfrd(tmp_path, subjects=10)
    cfg = StudyConfig(data_root=str(root), max_per_subject=3)
    partition_step(cfg, tmp_path / "pairs")
    result = verify_pairs_step(tmp_path / "pairs", tmp_path / "t52", embedder="dlib_reference",
                               detect=False, progress=False)
    table = pd.read_csv(tmp_path / "t52" / "table_5_2.csv")
    test = pd.read_csv(tmp_path / "pairs" / "test.csv")
    assert table["label"].tolist()[:2] == ["genuine"] * 2 and "impostor" in set(table["label"])
    assert len(table) <= 10 and table["distance"].notna().all()
    # paths relative to the data root, each pair one of the partition's test pairs
    pairs = set(zip(test.unmasked_path, test.masked_path, strict=True))
    assert set(zip(table.image_a, table.image_b, strict=True)) <= pairs
    assert len(result.table) == len(table)
    before = (tmp_path / "t52" / "table_5_2.csv").read_bytes()
    verify_pairs_step(tmp_path / "pairs", tmp_path / "t52", embedder="dlib_reference", detect=False,
                      progress=False)
    assert (tmp_path / "t52" / "table_5_2.csv").read_bytes() == before


@pytest.mark.stderr_lines
def test_verify_backbone_and_embedder_must_agree(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mfr.cli", "verify", "a.jpg", "b.jpg",
                        "--backbone", "dlib_resnet", "--embedder", "senet50"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "disagree" in p.stderr
