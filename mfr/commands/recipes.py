"""`mfr recipes`: training recipes (loss x synthetic masks x N) compared on the same held-out
test subjects, each seed's run resumable (:mod:`mfr.study.recipes`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mfr.core.config import MAX_LIST, MAX_SEED
from mfr.core.errors import InputError
from mfr.core.readers.text import excerpt

DEFAULT_PROFILE = "rmfrd-recipes"
HELP = ("compare training recipes (loss, synthetic masks, N) on the held-out test subjects: "
        "AUC, EER, FNMR at FMR 0.01 with intervals and the spread over seeds")


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of seeds, got "
                                         f"{excerpt(text, 40)}") from None
    if not seeds or min(seeds) < 0 or max(seeds) > MAX_SEED or len(seeds) > MAX_LIST:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_LIST} seeds, each 0..{MAX_SEED}, "
                                         f"got {excerpt(text, 40)}")
    return seeds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # defaults kept out of the parsed names (SUPPRESS): they are config fields' names, which
    # config_from_args would read (tests/test_search.py)
    parser.add_argument("--profile", default=argparse.SUPPRESS, metavar="PROFILE",
                        help="a recipes profile (a name in configs/ or a YAML path with a "
                             "'recipes:' list); default rmfrd-recipes")
    parser.add_argument("--data-root", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                        help="the dataset folder, in place of the profile's data_root")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the comparison's folder (partitions, caches, runs/, recipes.csv, "
                             "recipes.md, recipes_auc.png, run.json); a rerun skips what is done")
    parser.add_argument("--seeds", type=_seeds, default=argparse.SUPPRESS, metavar="S[,S...]",
                        help="training seeds (default: the profile's seeds, else its seed); the "
                             "partition keeps the profile's seed")
    parser.add_argument("--only", default=None, metavar="RECIPE[,RECIPE...]",
                        help="only these rows (and the recipes they build on)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from mfr.study.recipes import load_recipes, run_recipes

    given = vars(args)
    values = {"data_root": str(given["data_root"])} if "data_root" in given else {}
    plan = load_recipes(given.get("profile", DEFAULT_PROFILE), **values)
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    if args.only is not None and not only:
        raise InputError("--only: expected recipe names, got nothing")
    run_recipes(plan, args.out, seeds=given.get("seeds"), only=only, progress=not args.no_progress)
    print((args.out / "recipes.md").read_text(encoding="utf-8"), end="")
    return 0
