"""`mfr embed`: the pre-trained baseline (Table 5.1, first row) for a partition's pairs.

pairs CSVs -> image cache (each unique image decoded once) -> embeddings (each unique image
embedded once) -> distances.csv, summary.json, summary.md, run.json (:func:`mfr.study.steps.embed_step`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mfr.commands._common import add_config_flags, config_from_args

HELP = "embed each unique image of a partition once; write pair distances and the baseline summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", type=Path, required=True, metavar="DIR",
                        help="output folder of `mfr partition` (train.csv, val.csv, test.csv)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--split", default="test",
                        help="test (default), train, val, all, the name of a dataset's own pair "
                             "set the partition wrote beside them (its run.json's "
                             "own_pair_sets), or a comma list")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="image cache folder (default OUT/cache); reused when complete")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--force", action="store_true",
                        help="replace whatever the output folder holds (another run, or this "
                             "one complete) and compute from scratch")
    add_config_flags(parser, "backbone", "face_box", "data_root", "weights", "preprocessing",
                     "embed_batch_size", "decoder", "pooling", "image_size", "seed",
                     "data_parallel", "precision")


def run(args: argparse.Namespace) -> int:
    from mfr.study.steps import embed_step

    result = embed_step(config_from_args(args), args.pairs, args.out, split=args.split,
                        data_root=vars(args).get("data_root"), cache_dir=args.cache_dir,
                        progress=not args.no_progress, force=args.force)
    print((args.out / "summary.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {args.out}/distances.csv ({len(result.distances)} pairs), summary.json, "
          f"summary.md, run.json, embeddings/")
    return 0
