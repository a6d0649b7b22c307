"""`mfr embed`: the pre-trained baseline (Table 5.1, first row) for a partition's pairs.

pairs CSVs -> image cache (each unique image decoded once) -> embeddings (each unique image
embedded once) -> distances.csv, summary.json, summary.md, run.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mfr.commands._common import recorded_data_root, with_weights

HELP = "embed each unique image of a partition once; write pair distances and the baseline summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", type=Path, required=True, metavar="DIR",
                        help="output folder of `mfr partition` (train.csv, val.csv, test.csv)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                        help="folder the pair paths are relative to; default: the data_root "
                             "recorded in the pairs folder's run.json")
    parser.add_argument("--weights", default=None, metavar="vggface2|PATH|none",
                        help="vggface2 (default), a legacy keras-vggface .h5, or none (random "
                             "init with a fixed seed: offline demo only)")
    parser.add_argument("--preprocessing", choices=("thesis", "vggface2"), default=None,
                        help="thesis (RGB, default) or vggface2 (the library's BGR)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per forward pass (default: the profile's embed_batch_size, 64)")
    parser.add_argument("--split", default="test",
                        help="test (default), train, val, all, or a comma list")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="image cache folder (default OUT/cache); reused when complete")
    parser.add_argument("--config", default="thesis", metavar="PROFILE",
                        help="config profile (name in configs/ or a YAML path); default thesis")
    parser.add_argument("--decoder", choices=("pil", "tf"), default=None,
                        help="image decoder: pil (the profile's default) or tf (the thesis's exact JPEG decode, "
                             "needs TensorFlow)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from mfr.config import load_config
    from mfr.embeddings import embed_partition, parse_splits
    from mfr.image_cache import read_pair_csvs

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    read_pair_csvs(args.pairs, parse_splits(args.split))  # bad input fails before slow work
    cfg = load_config(args.config).replace(
        preprocessing=args.preprocessing, embed_batch_size=args.batch_size, decoder=args.decoder)
    cfg = with_weights(cfg, args.weights, progress=not args.no_progress)
    data_root = recorded_data_root(args.data_root, args.pairs, cfg)
    if data_root is None:
        raise ValueError(f"no data root: pass --data-root DIR ({args.pairs / 'run.json'} "
                         f"records none)")
    cfg = cfg.replace(data_root=str(data_root))
    result = embed_partition(data_root, args.pairs, args.out, config=cfg, split=args.split,
                             cache_dir=args.cache_dir, progress=not args.no_progress,
                             decoder=cfg.decoder)
    print((args.out / "summary.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {args.out}/distances.csv ({len(result.distances)} pairs), summary.json, "
          f"summary.md, run.json, embeddings/")
    return 0
