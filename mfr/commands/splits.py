"""`mfr splits`: recipes judged on K folds over subjects, every subject tested once, with the
spread across folds beside each fold's bootstrap interval (:mod:`mfr.study.splits`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mfr.core.config import MAX_SEED

DEFAULT_PROFILE = "rmfrd-splits"
HELP = ("judge recipes on K folds over subjects (every subject tested once): AUC, EER, FNMR at "
        "FMR 0.01 per fold with intervals, and their spread across folds")


def _split_seed(text: str) -> int | None:
    if text.lower() in ("none", "null"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected none or a seed 0..{MAX_SEED}, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # defaults kept out of the parsed names (SUPPRESS), as `mfr recipes`' flags
    parser.add_argument("--profile", default=argparse.SUPPRESS, metavar="PROFILE",
                        help="a splits profile (a name in configs/ or a YAML path: a recipes "
                             "profile with folds and split_seed); default rmfrd-splits")
    parser.add_argument("--data-root", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                        help="the dataset folder, in place of the profile's data_root")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the folder of the folds (partitions, image cache, runs, "
                             "splits.csv, splits_folds.csv, splits.md, run.json); a rerun skips "
                             "what is done")
    parser.add_argument("--folds", type=int, default=argparse.SUPPRESS, metavar="K",
                        help="folds over subjects, K >= 2 (default: the profile's)")
    parser.add_argument("--split-seed", type=_split_seed, default=argparse.SUPPRESS,
                        metavar="N", help="the subjects in this seeded order before the cut "
                                          "into folds; none: sorted (default: the profile's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from mfr.study.splits import load_splits, run_splits

    given = vars(args)
    values = {"data_root": str(given["data_root"])} if "data_root" in given else {}
    splits = load_splits(given.get("profile", DEFAULT_PROFILE), folds=given.get("folds"),
                         split_seed=given.get("split_seed", "profile"), **values)
    run_splits(splits, args.out, progress=not args.no_progress)
    print((args.out / "splits.md").read_text(encoding="utf-8"), end="")
    return 0
