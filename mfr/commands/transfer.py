"""`mfr transfer`: the thesis's question at scale -- fine-tune on MLFW's training identities,
choose on its validation identities, judge on real masks nobody trained or chose on
(:mod:`mfr.study.transfer`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mfr.core.errors import InputError

DEFAULT_PROFILE = "mlfw-transfer"
HELP = ("fine-tune on MLFW, choose on its validation identities, judge on real masks (RMFRD, "
        "MFR2, M2FRED): every masked x unmasked pair, pre-trained networks beside")


def _eval_root(text: str) -> tuple[str, str]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR (a real set of the profile and its "
                                         f"folder), got {text[:60]!r}")
    return name, folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # defaults kept out of the parsed names (SUPPRESS): `data_root` is a config field's name
    parser.add_argument("--profile", default=argparse.SUPPRESS, metavar="PROFILE",
                        help="a transfer profile (a name in configs/ or a YAML path with a "
                             "'transfer:' mapping); default mlfw-transfer")
    parser.add_argument("--data-root", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                        help="the training set (MLFW's train/ and val/ folders), in place of "
                             "the profile's data_root")
    parser.add_argument("--eval-root", type=_eval_root, action="append", default=[],
                        metavar="NAME=DIR",
                        help="a real set's folder in place of the profile's (repeatable: "
                             "--eval-root rmfrd=DIR --eval-root mfr2=DIR ...)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the study's folder (partition, caches, runs, choice.csv, "
                             "transfer.csv/.md, faces.csv, transfer.png, run.json); a rerun "
                             "skips what is done")
    parser.add_argument("--force", action="store_true",
                        help="replace whatever the output folder holds")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from mfr.study.transfer import load_transfer, run_transfer

    given = vars(args)
    values = {"data_root": str(given["data_root"])} if "data_root" in given else {}
    plan = load_transfer(given.get("profile", DEFAULT_PROFILE), **values)
    roots = dict(args.eval_root)
    unknown = sorted(set(roots) - {e.name for e in plan.eval_sets})
    if unknown:
        raise InputError(f"--eval-root: {unknown[0]} is not a real set of the profile (it has "
                         f"{', '.join(e.name for e in plan.eval_sets)})")
    plan.eval_sets = [dataclasses.replace(e, data_root=str(Path(roots[e.name]).expanduser()))
                      if e.name in roots else e for e in plan.eval_sets]
    for e in plan.eval_sets:
        if not Path(e.data_root).is_dir():
            raise InputError(f"{e.data_root}: the real set {e.name} is not a folder (pass "
                             f"--eval-root {e.name}=DIR)")
    if plan.config.data_root is None or not Path(plan.config.data_root).is_dir():
        raise InputError(f"{plan.config.data_root}: the training set is not a folder (pass "
                         f"--data-root DIR: MLFW's train/ and val/)")
    result = run_transfer(plan, args.out, progress=not args.no_progress, force=args.force)
    print((result.out_dir / "transfer.md").read_text(encoding="utf-8"), end="")
    return 0
