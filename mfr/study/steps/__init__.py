"""The study's steps: each reads its inputs from run folders, calls the array-level modules, and
writes one run folder. The CLI (`mfr.commands`), the notebooks and the study runner all call these.

==================  =========================================  ===============================
step                reads                                      writes (into `out_dir`)
==================  =========================================  ===============================
prepare_sample      nothing (generates a synthetic tree)       ``synthetic/``, ``partition/``
partition_step      a dataset tree (RMFRD or MFR2)             pair CSVs, stats, Table 4.2
embed_step          pair CSVs, the data root, weights          image cache, embeddings,
                                                               distances, summary (baseline)
train_step          pair CSVs, the image cache, weights        history, checkpoints, trained
                                                               layers, val+test embeddings,
                                                               distances, summary
evaluate_step       a study folder's run folders (stored       metrics, thresholds, tables,
                    distances and embeddings)                  Figures 5.1-5.5, ROC/DET/CMC
evaluate_dataset_   a dataset tree, an embedder                image cache, embeddings,
step                                                           distances, metrics, figures
verify_pairs_step   a CSV of photo pairs, an embedder (a run   Table 5.2: distance and
                    folder's), thresholds.json                 decision per pair, figure
==================  =========================================  ===============================

``verify_step`` (`mfr verify IMG_A IMG_B`) reads run folders and writes nothing.

Below this layer everything is arrays in, arrays out: :mod:`mfr.data.partition` (pairs),
:mod:`mfr.data.image_cache`, :mod:`mfr.evaluation.embeddings`, :mod:`mfr.evaluation.distances`, :mod:`mfr.training.fit`,
:mod:`mfr.evaluation.metrics`, :mod:`mfr.evaluation.setting_metrics`, :mod:`mfr.explain.gradcam`.

Every step checks its inputs, then claims its output folder (:func:`mfr.core.provenance.claim`:
new, up to date, resumable, or refused) before any slow work, and records what made it in
the folder's ``run.json``. A folder whose run is complete and was made from the same inputs
and settings is not computed again (``force=True``: it is, from scratch).
"""

from __future__ import annotations

from mfr.study.steps.embed import EmbedRun, embed_step
from mfr.study.steps.evaluate import DatasetEvaluation, evaluate_dataset_step, evaluate_step
from mfr.study.steps.gradcam import gradcam_step
from mfr.study.steps.inputs import resolve_data_root
from mfr.study.steps.partition import Sample, partition_step, prepare_sample
from mfr.study.steps.train import train_step
from mfr.study.steps.verify import verify_embedder, verify_pairs_step, verify_step

__all__ = [
    "DatasetEvaluation",
    "EmbedRun",
    "Sample",
    "embed_step",
    "evaluate_dataset_step",
    "evaluate_step",
    "gradcam_step",
    "partition_step",
    "prepare_sample",
    "resolve_data_root",
    "train_step",
    "verify_embedder",
    "verify_pairs_step",
    "verify_step",
]
