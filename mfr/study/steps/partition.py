"""The data steps: a generated sample (the offline demo, tests) and the partition of a dataset
tree into the thesis's pairs (`mfr partition`, notebook 01)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError
from mfr.core.provenance import (
    claim,
    marks_its_runs,
)
from mfr.study.steps.settings import config_settings


@dataclass
class Sample:
    """A generated dataset and its partition (see :func:`prepare_sample`)."""

    data_root: Path
    pairs_dir: Path


def prepare_sample(out_dir: str | Path, config: StudyConfig | None = None,
                   n_subjects: int | None = None, image_size: int = 224) -> Sample:
    """A small synthetic RMFRD-layout tree (``out_dir/synthetic``) and its partition under
    `config` (``out_dir/partition``): offline data for the demo, the notebooks and the tests.

    Clearly drawn faces (:mod:`mfr.data.datasets.synthetic`), not photographs. Both are reused when present.
    """
    from mfr.data.datasets.synthetic import make_demo_tree

    cfg = config or StudyConfig()
    out = Path(out_dir)
    tree = out / "synthetic"
    if not (tree / "AFDB_face_dataset").is_dir():
        make_demo_tree(tree, n_subjects=n_subjects or cfg.sample_subjects,
                       image_size=image_size, seed=cfg.seed)
    pairs_dir = out / "partition"
    if not (pairs_dir / "run.json").is_file():
        partition_step(cfg.replace(data_root=str(tree)), pairs_dir)
    return Sample(tree, pairs_dir)


@marks_its_runs
def partition_step(config: StudyConfig, out_dir: str | Path, verify: bool = True,
                   force: bool = False, inner: bool = False, split_seed: int | None = None,
                   folds: int = 0, fold: int = 0, pairs_per_subject: int | None = None):
    """The config's partition of the tree at ``config.data_root``, written to `out_dir`
    (train/val/test.csv, stats.json, table_4_2.md, run.json; the dataset's own pair sets
    beside them, e.g. MFR2's pairs.txt as ``mfr2_pairs.csv``); `inner`: the partition of its
    train+validation subjects alone; `split_seed`, `folds`, `fold`: a repeated subject split,
    `pairs_per_subject`: protocol identity's cap (:func:`mfr.data.partition.partition`).
    ``config.synthetic_masks`` add or replace: train pairs with synthetic masked partners,
    made under `out_dir` (:mod:`mfr.data.synthetic_partners`). Returns the
    :class:`mfr.data.partition.Partition` (with ``up_to_date`` True when `out_dir` already held
    it and nothing was written)."""
    from mfr.data.datasets import dataset_root
    from mfr.data.partition import (
        MASKED_VS_UNMASKED,
        partition,
        partition_fingerprint,
        write_partition,
    )
    from mfr.data.subject_splits import check_split_options, split_params
    from mfr.data.synthetic_partners import DETECTOR, add_synthetic_partners, parse_kinds

    if config.data_root is None:
        raise InputError("no data root: pass --data-root DIR (a dataset tree: mfr data list)")
    check_split_options(split_seed, folds, fold)
    if config.synthetic_masks != "none" and config.protocol not in MASKED_VS_UNMASKED:
        raise InputError(f"synthetic_masks {config.synthetic_masks}: synthetic masked partners "
                         f"join masked-vs-unmasked pairs ({', '.join(MASKED_VS_UNMASKED)}), not "
                         f"protocol {config.protocol}")
    root, _ = dataset_root(config.data_root)
    params = {**config_settings(config, ("protocol", "max_per_subject", "seed", "train_val_fraction",
                                   "val_size")), "verify": verify, "inner": inner,
              **split_params(split_seed, folds, fold)}
    if config.protocol == "identity":
        params["pairs_per_subject"] = pairs_per_subject
    kinds = parse_kinds(config.synthetic_kinds)
    if config.synthetic_masks != "none":
        params.update(synthetic_masks=config.synthetic_masks, synthetic_kinds=",".join(kinds),
                      synthetic_detector=DETECTOR)
    fp = partition_fingerprint(root, params)
    # the tree is read (its labels, its listing) before the folder is claimed: a bad input
    # leaves no output folder behind
    part = partition(root, protocol=config.protocol, max_per_subject=config.max_per_subject,
                     seed=config.seed, train_val_fraction=config.train_val_fraction,
                     val_size=config.val_size, verify=verify, inner=inner, split_seed=split_seed,
                     folds=folds, fold=fold, pairs_per_subject=pairs_per_subject)
    state = claim(out_dir, "partition", fp, config=config, force=force)
    part.up_to_date = state == "complete"
    part = add_synthetic_partners(part, out_dir, config.synthetic_masks, kinds, config.seed,
                                  refresh=not part.up_to_date)
    if not part.up_to_date:
        write_partition(part, out_dir, config=config)
    return part
