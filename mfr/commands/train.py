"""`mfr train`: Siamese fine-tuning of SENet50's last N layers (THESIS.md, Chapter 4).

pairs CSVs + image cache -> OUT/history.csv, checkpoints/, final_trainable.h5, distances.csv,
summary.json, run.json (see :mod:`mfr.training`). ``--dry-run`` lists what a setting trains and
needs neither data nor weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mfr.commands._common import recorded_data_root, with_weights

HELP = "fine-tune SENet50's last N layers as a Siamese network (or --dry-run: list them)"


def _layers_arg(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma list, got {text!r}") \
            from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one N")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trainable-layers", "-n", type=_layers_arg, default=None, metavar="N",
                        help="train the last N layers (1..287; BatchNormalization stays frozen); "
                             "a comma list runs several; default: the profile's 10,20,...,70")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the trainable layers and parameter count; train nothing")
    parser.add_argument("--pairs", type=Path, default=None, metavar="DIR",
                        help="output folder of `mfr partition` (train.csv, val.csv, test.csv)")
    parser.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help="image cache of those pairs (built there from --data-root when "
                             "absent); default PAIRS/cache")
    parser.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                        help="folder the pair paths are relative to (only to build the cache); "
                             "default: the one recorded in PAIRS/run.json")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="run folder (default results/<profile>/train_N<N>); with several N, "
                             "the parent of one train_N<N> folder each")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--config", default="thesis", metavar="PROFILE",
                        help="config profile (name in configs/ or a YAML path); default thesis")
    parser.add_argument("--weights", default=None, metavar="vggface2|PATH|none",
                        help="initial weights: vggface2 (default), a legacy .h5, or none (random, "
                             "seeded: offline demo only)")
    parser.add_argument("--preprocessing", choices=("thesis", "vggface2"), default=None)
    parser.add_argument("--epochs", type=int, default=None, help="default 8 (the thesis)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (the thesis)")
    parser.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, default=None,
                        help="default 1e-5 (the thesis)")
    parser.add_argument("--margin", type=float, default=None,
                        help="contrastive margin A, default 5.0 (the thesis; > max d = 4)")
    parser.add_argument("--optimizer", choices=("sgd", "adam", "rmsprop"), default=None,
                        help="default sgd (the thesis)")
    parser.add_argument("--momentum", type=float, default=None, help="default 0 (the thesis)")
    parser.add_argument("--seed", type=int, default=None, help="default 2021")
    parser.add_argument("--thesis-style", action="store_true",
                        help="no trunk cache: both full twins for every pair, every step (slow; "
                             "for comparison; the same results)")
    parser.add_argument("--steps-per-execution", type=int, default=None,
                        help="SGD steps per compiled call (same steps; less overhead on a GPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def dry_run(ns: tuple[int, ...], out=sys.stdout) -> None:
    from mfr import siamese
    from mfr.models import senet50

    for n in ns:
        siamese.validate_trainable_layers(n)
    core = senet50(weights=None)
    for n in ns:
        rows = siamese.trainable_layer_names(n, core)
        total = sum(p for _, p in rows)
        print(f"N={n}: {len(rows)} trainable layers (BatchNormalization frozen)", file=out)
        for name, params in rows:
            print(f"  {name}  {params:,}", file=out)
        print(f"trainable params: {total:,}", file=out)


def run(args: argparse.Namespace) -> int:
    from mfr.config import load_config

    for name in ("epochs", "batch_size", "steps_per_execution"):
        v = getattr(args, name)
        if v is not None and v < (0 if name == "epochs" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be >= {0 if name == 'epochs' else 1}"
                             f", got {v}")
    cfg = load_config(args.config).replace(
        preprocessing=args.preprocessing, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, margin=args.margin, optimizer=args.optimizer,
        momentum=args.momentum, seed=args.seed, steps_per_execution=args.steps_per_execution)
    if args.thesis_style:
        cfg = cfg.replace(trunk_cache=False)
    ns = args.trainable_layers or cfg.trainable_layers
    from mfr.siamese import validate_trainable_layers

    for n in ns:
        validate_trainable_layers(n)
    if args.dry_run:
        dry_run(ns)
        return 0
    if args.pairs is None:
        raise ValueError("--pairs DIR is required (or --dry-run)")
    if not args.pairs.is_dir():
        raise FileNotFoundError(f"{args.pairs}: pairs folder not found (expected the output "
                                f"folder of `mfr partition`, with train/val/test.csv)")
    cfg = with_weights(cfg, args.weights, progress=not args.no_progress)
    cache_dir = args.cache_dir or args.pairs / "cache"
    if not (cache_dir / "cache.json").is_file():
        root = recorded_data_root(args.data_root, args.pairs, cfg)
        if root is None:
            raise FileNotFoundError(f"{cache_dir}: no image cache, and no data root to build it "
                                    f"(pass --cache-dir or --data-root)")
        from mfr.image_cache import build_partition_cache

        build_partition_cache(root, args.pairs, cache_dir, size=cfg.image_size,
                              decoder=cfg.decoder)

    from mfr.training import NonFiniteLossError, default_out_dir, run_training

    for n in ns:
        if args.out is None:
            out = default_out_dir(cfg, n)
        else:
            out = args.out if len(ns) == 1 else args.out / f"train_N{n}"
        try:
            result = run_training(cfg, n, args.pairs, cache_dir, out, resume=args.resume,
                                  progress=not args.no_progress,
                                  verbose=0 if args.no_progress else 2)
        except NonFiniteLossError as e:
            print(f"mfr train: N={n}: {e}", file=sys.stderr)
            return 3
        h = result.history.iloc[-1] if len(result.history) else None
        last = "" if h is None else (f"; epoch {int(h['epoch'])} loss {h['loss']:.6f}"
                                     + (f" val_loss {h['val_loss']:.6f}" if "val_loss" in h else ""))
        print(f"N={n} ({result.path}, {len(result.trainable_layers)} layers, "
              f"{result.trainable_params:,} params){last}; wrote {out}")
    return 0
