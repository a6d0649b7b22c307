"""mfr.core.runs: the one reader of run.json, the study folder names and the settings discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfr.core.errors import InputError, MfrError, MissingError
from mfr.core.runs import (
    RunRecord,
    Setting,
    discover_settings,
    discover_study,
    parse_setting_dir,
    read_json_record,
    read_run,
    read_setting,
    setting_dir_name,
    setting_label,
)


def _run(d: Path, distances: bool = True, **meta) -> Path:
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps(meta))
    if distances:
        (d / "distances.csv").write_text("split\n")
    return d


def _cfg(seed: int = 2021, **kw) -> dict:
    return {"weights": None, "seed": seed, "trainable_layers": [10, 30], **kw}


@pytest.mark.parametrize("content, said", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "holds a JSON list"),
    ('"text"', "holds a JSON str"),
])
def test_read_run_refuses_in_one_line_naming_the_file(tmp_path, content, said):
    if content is not None:
        (tmp_path / "run.json").write_text(content)
    with pytest.raises(MfrError, match=said) as e:
        read_run(tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'run.json'}:") and "\n" not in msg
    assert isinstance(e.value, MissingError if content is None else InputError)
    with pytest.raises(MfrError, match="the ledger"):
        read_json_record(tmp_path / "run.json", "the ledger")


def test_read_run_refuses_a_config_that_is_not_an_object(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"command": "train", "config": [1]}))
    with pytest.raises(InputError, match=r"run\.json: its 'config' is a JSON list"):
        read_run(tmp_path)


def test_read_run_types_what_provenance_writes(tmp_path):
    from mfr.core.config import StudyConfig
    from mfr.core.provenance import claim, complete

    out = tmp_path / "train_N10"
    cfg = StudyConfig(weights=None)
    claim(out, "train", {"x": 1}, config=cfg, trainable_layers=10)
    running = read_run(out)
    assert running.status == "running" and running.outputs == {}
    (out / "history.csv").write_text("epoch\n1\n")
    complete(out, "train", {"x": 1}, outputs=["history.csv"], config=cfg, trainable_layers=10)
    rec = read_run(out)
    assert isinstance(rec, RunRecord)
    assert (rec.command, rec.status, rec.fingerprint) == ("train", "complete", {"x": 1})
    assert rec.config == cfg.used_by("train") and rec.trainable_layers == 10 and rec.is_train
    assert list(rec.outputs) == ["history.csv"] and len(rec.outputs["history.csv"]) == 64
    assert rec.run_dir == out and rec.get("trainable_layers") == 10 and "keras" in rec.versions


@pytest.mark.parametrize("n, seed, backbone, name", [
    (30, None, None, "train_N30"),
    (30, 2022, None, "train_N30_s2022"),
    (0, 7, None, "train_N0_s7"),
    (10, None, "dlib_resnet", "train_N10_dlib_resnet"),
    (10, 3, "senet50", "train_N10_senet50_s3"),
    (10, 3, "sx", "train_N10_sx_s3"),
    (10, None, "dlib_resnet_v2", "train_N10_dlib_resnet_v2"),
])
def test_setting_dir_name_and_its_parser_roundtrip(n, seed, backbone, name):
    assert setting_dir_name(n, seed, backbone) == name
    assert parse_setting_dir(name) == (n, seed, backbone)


def test_setting_dir_name_is_what_the_study_plans():
    from mfr.core.config import StudyConfig
    from mfr.study.runner import plan

    cfg = StudyConfig(trainable_layers=[10, 30], seeds=[2021, 2022])
    dirs = {s.run_dir.name for s in plan(cfg, "demo", "/tmp/x") if s.name.startswith("finetune")}
    assert dirs == {setting_dir_name(n, s) for n in (10, 30) for s in (None, 2022)}


@pytest.mark.parametrize("name", ["train_Nx", "train_N", "baseline", "train_N10_", "train_N10_s",
                                  "train_N10_s_", "Train_N10", "train_N10_s2022_copy",
                                  "train_N10__s2", "train_N-1"])
def test_parse_setting_dir_refuses_other_names(name):
    assert parse_setting_dir(name) is None


def test_setting_dir_name_refuses_an_ambiguous_backbone():
    with pytest.raises(ValueError):
        setting_dir_name(10, backbone="s12")
    with pytest.raises(ValueError):
        setting_dir_name(10, backbone="Bad-Name")
    with pytest.raises(ValueError):
        setting_dir_name(10, backbone="net_s3")  # would read back as seed 3


def test_setting_label_names_a_weights_file_but_not_the_released_weights():
    assert setting_label("pre-trained") == "SENet50 pre-trained"
    assert setting_label(10, random_init=True, weights=None) == "last 10 layers (random init)"
    assert setting_label(10, weights="vggface2") == "last 10 layers"
    assert setting_label("pre-trained", weights="/w/mine.h5") == "weights mine.h5"
    assert setting_label(40, weights="/w/mine.h5") == "last 40 layers (weights mine.h5)"


def _study(root: Path) -> Path:
    _run(root / "baseline", command="embed", status="complete", config=_cfg())
    _run(root / "train_N30", command="train", trainable_layers=30, config=_cfg())
    _run(root / "train_N10", command="train", trainable_layers=10, config=_cfg())
    _run(root / "train_N10_s2022", command="train", trainable_layers=10, config=_cfg(2022))
    _run(root / "train_N10_s2023", command="train", trainable_layers=10, config=_cfg(2023))
    (root / "train_N20").mkdir()  # killed before its run.json
    _run(root / "notes", distances=False)  # a run.json of no embed or train run
    _run(root / "pairs", command="verify", config=_cfg())
    _run(root / "evaluation", command="train", trainable_layers=99, config=_cfg())  # reserved
    return root


def test_discover_settings_finds_replicates_in_the_evaluations_order(tmp_path):
    study = discover_study(_study(tmp_path))
    assert [s.key for s in study.settings] == ["baseline", "N10", "N10_s2022", "N10_s2023",
                                               "N30"]
    assert [s.name for s in study.settings] == ["baseline", "train_N10", "train_N10_s2022",
                                                "train_N10_s2023", "train_N30"]
    assert [s.replicate for s in study.settings] == [False, False, True, True, False]
    assert study.settings[2].label == "last 10 layers (random init), seed 2022"
    assert [e["setting"] for e in study.incomplete] == ["train_N20"]
    assert all(isinstance(s, Setting) and s.record is not None for s in study.settings)


def test_discover_settings_lists_what_cannot_be_used(tmp_path):
    root = _study(tmp_path)
    (root / "train_N30" / "distances.csv").unlink()
    rec = json.loads((root / "train_N10_s2023" / "run.json").read_text())
    (root / "train_N10_s2023" / "run.json").write_text(json.dumps({**rec, "status": "running"}))
    study = discover_study(root)
    assert [s.key for s in study.settings] == ["baseline", "N10", "N10_s2022"]
    assert {e["setting"]: e["reason"][:10] for e in study.incomplete} == {
        "train_N20": "no run.jso", "N10_s2023": "its run.js", "N30": "no distanc"}
    assert [s.key for s in discover_settings(root, usable=None)] == [
        "baseline", "N10", "N10_s2022", "N10_s2023", "N30"]


def test_discover_settings_refuses_a_broken_run_json(tmp_path):
    root = _study(tmp_path)
    (root / "train_N30" / "run.json").write_text("[]")
    with pytest.raises(InputError, match=r"train_N30/run\.json: holds a JSON list"):
        discover_settings(root)


def test_gradcam_finds_what_the_evaluation_finds(tmp_path):
    from mfr.core.runs import discover_study
    from mfr.explain.setting_maps import find_settings

    root = _study(tmp_path)
    ev = discover_study(root).settings
    grad = find_settings(root, replicates=True)
    assert [(s.name, s.label, s.run_dir) for s in grad] == \
        [(s.name, s.label, s.run_dir) for s in ev]
    assert "train_N10_s2022" in [s.name for s in grad]
    # by default the study seed's runs only (the study's Grad-CAM step does not wait for
    # the replicates)
    assert [s.name for s in find_settings(root)] == \
        [s.name for s in ev if not s.replicate] == ["baseline", "train_N10", "train_N30"]


def test_read_setting_builds_the_runs_config_and_refuses_others(tmp_path):
    s = read_setting(_run(tmp_path / "train_N10", command="train", trainable_layers=10,
                          config=_cfg()))
    assert (s.key, s.trainable_layers, s.random_init, s.config.seed) == ("N10", 10, True, 2021)
    with pytest.raises(InputError, match="neither an `mfr embed` run"):
        read_setting(_run(tmp_path / "other", command="verify", config=_cfg()))
    with pytest.raises(InputError, match=r"bad/run\.json"):
        read_setting(_run(tmp_path / "bad", command="embed", config={"pooling": "nope"}))


def test_a_run_records_only_the_fields_its_command_backbone_and_loss_use():
    from mfr.core.config import StudyConfig

    dlib = StudyConfig(backbone="dlib_resnet", weights="dlib_v1")
    train = dlib.used_by("train")
    assert train["face_box"] == "crop" and "pooling" not in train  # dlib's settings, not SENet50's
    assert train["margin"] == 5.0 and "triplet_margin" not in train  # the loss's own fields
    assert "bootstrap_resamples" not in train and "protocol" not in train
    part = StudyConfig().used_by("partition")
    assert {"protocol", "max_per_subject", "seed"} <= set(part)
    assert not {"trainable_layers", "weights", "optimizer", "image_size"} & set(part)
    # a dataset embedded by another network (dlib's C++): no backbone, weights, size or N
    other = StudyConfig().used_by("evaluate_embedder")
    assert not {"backbone", "weights", "image_size", "trainable_layers", "pooling"} & set(other)
    assert StudyConfig(loss="triplet").used_by("train")["triplet_margin"] > 0
    assert StudyConfig().used_by("no such command") == StudyConfig().to_dict()
