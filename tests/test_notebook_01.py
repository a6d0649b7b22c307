"""Notebook 01 runs end to end under papermill on a small synthetic tree."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "01_partition.ipynb"


def test_notebook_01_runs(tmp_path):
    pm = pytest.importorskip("papermill")
    out_nb = tmp_path / "01.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out_nb), kernel_name="python3", cwd=str(tmp_path),
                        parameters={"data_root": None, "out_dir": str(tmp_path / "out"),
                                    "n_thumbnails": 4}, progress_bar=False)
    out = tmp_path / "out" / "partition"
    assert {p.name for p in out.iterdir()} >= {"train.csv", "val.csv", "test.csv",
                                               "stats.json", "table_4_2.md"}
    text = out_nb.read_text(encoding="utf-8")
    assert "distinct unmasked images in impostors" in text and "image/png" in text


def test_notebook_01_is_clean():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code")
