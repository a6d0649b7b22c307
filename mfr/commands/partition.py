"""`mfr partition`: the thesis's train / validation / test pairs of an RMFRD (or MFR2) tree."""

from __future__ import annotations

import argparse
from pathlib import Path

from mfr.commands._common import add_config_flags, config_from_args

HELP = "write the train/val/test pair sets (Table 4.2) of an RMFRD or MFR2 tree"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not read image headers to skip corrupt files")
    parser.add_argument("--force", action="store_true",
                        help="replace whatever the output folder holds (another run, or this "
                             "one complete) and compute from scratch")
    add_config_flags(parser, "data_root", "protocol", "max_per_subject", "seed",
                     "train_val_fraction", "val_size", "synthetic_masks", "synthetic_kinds")


def run(args: argparse.Namespace) -> int:
    from mfr.data.partition import table_4_2_markdown
    from mfr.study.steps import partition_step

    part = partition_step(config_from_args(args), args.out, verify=not args.no_verify,
                          force=args.force)
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
