"""Notebook 03 runs end to end under papermill on a small synthetic tree (random weights)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_finetune.ipynb"


@pytest.mark.slow
def test_notebook_03_runs(tmp_path):
    pm = pytest.importorskip("papermill")
    out_nb = tmp_path / "03.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK), str(out_nb), kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
        parameters={"trainable_layers": [10], "epochs": 1, "batch_size": 8, "lr": 1e-3,
                    "margin": 5.0, "seed": 2021, "trunk_cache": True, "weights": None,
                    "out_dir": str(tmp_path / "out"), "n_subjects": 6})
    run = tmp_path / "out" / "train_N10"
    assert {p.name for p in run.iterdir()} >= {"history.csv", "checkpoints", "distances.csv",
                                               "summary.json", "run.json", "final_trainable.h5"}
    assert len(pd.read_csv(run / "history.csv")) == 1
    text = out_nb.read_text(encoding="utf-8")
    assert "image/png" in text and "median impostor" in text and "thesis gap" in text


def test_notebook_03_is_clean():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("trainable_layers", "epochs", "batch_size", "lr", "margin", "seed",
                 "trunk_cache"):
        assert f"\n{name} = " in "\n" + params[0].source
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code")
