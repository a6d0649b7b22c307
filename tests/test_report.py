"""Chapter 5's tables and figures (mfr.report.thesis_tables, mfr.report.plots): the thesis's values beside a run's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfr.evaluation.distances import summarise
from mfr.report.plots import plot_distances
from mfr.report.thesis_tables import THESIS_TABLE_5_1, summary_table, thesis_row


def test_summary_table_beside_thesis():
    s = summarise(np.array([1.0, 2.0]), np.array([1, 0]))
    t = summary_table(s, label="run")
    assert list(t.index) == ["run", "thesis Table 5.1: SENet50 pre-trained"]
    assert t.loc["run", "gap"] == 1.0
    pretrained = thesis_row("pre-trained")
    assert t.iloc[1]["median_impostor"] == pretrained["median_impostor"] == 1.278899
    assert pretrained["gap"] == pytest.approx(1.278899 - 0.989988)
    for imp, gen, gap in THESIS_TABLE_5_1.values():  # the printed gaps are the differences
        assert gap == pytest.approx(imp - gen, abs=1e-6)


def test_boxplot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    run = pd.DataFrame({"label": [0, 0, 1, 1], "sum_squared": [1.0, 2.0, 0.5, 0.7]})
    ax = plot_distances(run, title="t")
    assert ax.get_ylabel() == "sum_squared distance" and ax.get_title() == "t"
    ax.figure.savefig(tmp_path / "b.png")
