"""`mfr partition`: the thesis's train / validation / test pairs of an RMFRD (or MFR2) tree."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "write the train/val/test pair sets (Table 4.2) of an RMFRD or MFR2 tree"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", type=Path, default=None,
                        help="RMFRD root (self-built-masked-face-recognition-dataset or a folder "
                             "above it) or an MFR2 folder; default: the profile's data_root")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--config", default="thesis", metavar="PROFILE",
                        help="config profile (name in configs/ or a YAML path); default thesis")
    parser.add_argument("--protocol", choices=("thesis", "balanced"), default=None,
                        help="thesis (its quirks, default) or balanced")
    parser.add_argument("--max-per-subject", type=int, default=None,
                        help="images per subject and side (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="random_state (default 2021)")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not read image headers to skip corrupt files")


def run(args: argparse.Namespace) -> int:
    from mfr.config import load_config
    from mfr.partition import partition, table_4_2_markdown, write_partition

    cfg = load_config(args.config).replace(
        protocol=args.protocol, max_per_subject=args.max_per_subject, seed=args.seed,
        data_root=str(args.data_root) if args.data_root is not None else None)
    if cfg.data_root is None:
        raise ValueError("no data root: pass --data-root DIR (an RMFRD or MFR2 tree)")
    part = partition(cfg.data_root, protocol=cfg.protocol, max_per_subject=cfg.max_per_subject,
                     seed=cfg.seed, train_val_fraction=cfg.train_val_fraction,
                     val_size=cfg.val_size, verify=not args.no_verify)
    write_partition(part, args.out, config=cfg)
    ex = part.excluded
    print(table_4_2_markdown(part.stats, title=f"Table 4.2 ({part.layout}, protocol "
                                               f"{part.protocol})"), end="")
    print(f"\n{len(ex['subjects'])} subject-side entries and {len(ex['files'])} files excluded "
          f"(see stats.json); wrote {args.out}/{{train,val,test}}.csv, stats.json, "
          "table_4_2.md, run.json", file=sys.stdout)
    return 0
