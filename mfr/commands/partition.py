"""`mfr partition`: the train / validation / test pairs of a dataset tree (the thesis's by
default; :mod:`mfr.data.partition`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mfr.commands._common import add_config_flags, config_from_args

HELP = "write the train/val/test pair sets (Table 4.2) of a dataset tree"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not read image headers to skip corrupt files")
    parser.add_argument("--force", action="store_true",
                        help="replace whatever the output folder holds (another run, or this "
                             "one complete) and compute from scratch")
    add_config_flags(parser, "data_root", "protocol", "max_per_subject", "seed",
                     "train_val_fraction", "val_size", "synthetic_masks", "synthetic_kinds")
    parser.add_argument("--split-seed", type=int, default=None, metavar="N",
                        help="a repeated subject split: the subjects in a seeded order before "
                             "the cut (default: sorted, the thesis's split)")
    parser.add_argument("--folds", type=int, default=0, metavar="K",
                        help="k-fold over subjects (K >= 2): test on fold --fold, train and "
                             "validate on the others (default 0: train_val_fraction's cut)")
    parser.add_argument("--fold", type=int, default=0, metavar="F",
                        help="the test fold, 0..K-1 (with --folds)")
    parser.add_argument("--pairs-per-subject", type=int, default=None, metavar="N",
                        help="protocol identity: at most N genuine pairs per identity (default: "
                             "all pairs of its images)")


def run(args: argparse.Namespace) -> int:
    from mfr.data.partition import table_4_2_markdown
    from mfr.study.steps import partition_step

    part = partition_step(config_from_args(args), args.out, verify=not args.no_verify,
                          force=args.force, split_seed=args.split_seed, folds=args.folds,
                          fold=args.fold, pairs_per_subject=args.pairs_per_subject)
    ex = part.excluded
    print(table_4_2_markdown(part.stats, title=f"Table 4.2 ({part.layout}, protocol "
                                               f"{part.protocol})"), end="")
    written = ", ".join(f"{name}.csv" for name in part.frames)
    done = (f"{args.out} is up to date (same data and settings; --force recomputes it)"
            if part.up_to_date else
            f"wrote {args.out}/: {written}, stats.json, table_4_2.md, run.json")
    print(f"\n{len(ex['subjects'])} subject-side entries and {len(ex['files'])} files excluded "
          f"(see stats.json); {done}")
    return 0
