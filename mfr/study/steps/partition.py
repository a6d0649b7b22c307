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
                   force: bool = False, inner: bool = False):
    """The config's partition of the tree at ``config.data_root``, written to `out_dir`
    (train/val/test.csv, stats.json, table_4_2.md, run.json; an MFR2 tree also gets
    ``mfr2_pairs.csv``, its own pairs.txt); `inner`: the partition of its train+validation
    subjects alone (:func:`mfr.data.partition.partition`). ``config.synthetic_masks`` add or
    replace: train pairs with synthetic masked partners, made under `out_dir`
    (:mod:`mfr.data.synthetic_partners`). Returns the :class:`mfr.data.partition.Partition`
    (with ``up_to_date`` True when `out_dir` already held it and nothing was written)."""
    from mfr.data.datasets import dataset_root
    from mfr.data.partition import partition, partition_fingerprint, write_partition
    from mfr.data.synthetic_partners import DETECTOR, add_synthetic_partners, parse_kinds

    if config.data_root is None:
        raise InputError("no data root: pass --data-root DIR (an RMFRD or MFR2 tree)")
    root, _ = dataset_root(config.data_root)
    params = {**config_settings(config, ("protocol", "max_per_subject", "seed", "train_val_fraction",
                                   "val_size")), "verify": verify, "inner": inner}
    kinds = parse_kinds(config.synthetic_kinds)
    if config.synthetic_masks != "none":
        params.update(synthetic_masks=config.synthetic_masks, synthetic_kinds=",".join(kinds),
                      synthetic_detector=DETECTOR)
    fp = partition_fingerprint(root, params)
    state = claim(out_dir, "partition", fp, config=config, force=force)
    part = partition(root, protocol=config.protocol, max_per_subject=config.max_per_subject,
                     seed=config.seed, train_val_fraction=config.train_val_fraction,
                     val_size=config.val_size, verify=verify, inner=inner)
    part.up_to_date = state == "complete"
    part = add_synthetic_partners(part, out_dir, config.synthetic_masks, kinds, config.seed,
                                  refresh=not part.up_to_date)
    if not part.up_to_date:
        write_partition(part, out_dir, config=config)
    return part
