"""`mfr train`: Siamese fine-tuning of a backbone's last N layers (THESIS.md, Chapter 4;
SENet50 by default, ``--backbone NAME`` for another), with any loss of the registry and its
hyperparameters as flags (``--loss arcface --arcface-scale 32``).

pairs CSVs + image cache -> OUT/history.csv, checkpoints/, final_trainable.h5, distances.csv,
summary.json, run.json (:func:`mfr.study.steps.train_step`). ``--dry-run`` lists what a setting
trains and needs neither data nor weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mfr.commands._common import LOSS_FIELDS, add_config_flags, config_from_args
from mfr.core.errors import InputError, MissingError

HELP = ("fine-tune a backbone's last N layers (SENet50, or --backbone NAME) as a Siamese "
        "network (or --dry-run: list them)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="print the trainable layers and parameter count; train nothing")
    parser.add_argument("--pairs", type=Path, default=None, metavar="DIR",
                        help="output folder of `mfr partition` (train.csv, val.csv, test.csv)")
    parser.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help="image cache of those pairs (built there from the data root when "
                             "absent); default PAIRS/cache")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="run folder (default results/<profile>/train_N<N>); with several N, "
                             "the parent of one train_N<N> folder each")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--force", action="store_true",
                        help="replace whatever the output folder holds (another run, or this "
                             "one complete) and compute from scratch")
    add_config_flags(parser, "backbone", "face_box", "trainable_layers", "epochs", "batch_size",
                     "learning_rate", "loss", *LOSS_FIELDS, "optimizer", "momentum", "seed",
                     "weights", "preprocessing", "pooling", "data_root", "decoder", "trunk_cache",
                     "steps_per_execution", "embed_batch_size", "keep_all_checkpoints",
                     "data_parallel", "precision")


def dry_run(ns: tuple[int, ...], out=None, backbone: str | None = None) -> None:
    from mfr.backbones import DEFAULT_BACKBONE, get_backbone
    from mfr.core.config import StudyConfig
    from mfr.training import siamese

    out = out or sys.stdout  # looked up now: a default bound at import goes stale
    net = get_backbone(backbone or DEFAULT_BACKBONE)
    net.check_trainable_layers(ns)
    core = net.core(StudyConfig(backbone=net.name, weights=None))
    for n in ns:
        rows = siamese.trainable_layer_names(n, core)
        total = sum(p for _, p in rows)
        print(f"N={n}: {len(rows)} trainable layers ({net.facts.frozen})"
              + ("" if net.name == DEFAULT_BACKBONE
                 else f", {net.facts.label} ({len(core.layers)} layers)"),
              file=out)
        for name, params in rows:
            print(f"  {name}  {params:,}", file=out)
        print(f"trainable params: {total:,}", file=out)


def run(args: argparse.Namespace) -> int:
    from mfr.backbones import get_backbone

    cfg = config_from_args(args)
    ns = cfg.trainable_layers
    get_backbone(cfg.backbone).check_trainable_layers(ns)
    if args.dry_run:
        dry_run(ns, backbone=cfg.backbone)
        return 0
    if args.pairs is None:
        raise InputError("--pairs DIR is required (or --dry-run)")
    if not args.pairs.is_dir():
        raise MissingError(f"{args.pairs}: pairs folder not found (expected the output "
                                f"folder of `mfr partition`, with train/val/test.csv)")

    from mfr.core.runs import setting_dir_name
    from mfr.study.steps import train_step
    from mfr.training.fit import NonFiniteLossError

    for n in ns:
        out = args.out if args.out is None or len(ns) == 1 else args.out / setting_dir_name(n)
        try:
            result = train_step(cfg, n, args.pairs, out, cache_dir=args.cache_dir,
                                data_root=vars(args).get("data_root"), resume=args.resume,
                                progress=not args.no_progress, force=args.force,
                                verbose=0 if args.no_progress else 2)
        except NonFiniteLossError as e:
            print(f"mfr train: N={n}: {e}", file=sys.stderr)
            return 3
        h = result.history.iloc[-1] if len(result.history) else None
        last = "" if h is None else (f"; epoch {int(h['epoch'])} loss {h['loss']:.6f}"
                                     + (f" val_loss {h['val_loss']:.6f}" if "val_loss" in h else ""))
        print(f"N={n} ({result.path}, {len(result.trainable_layers)} layers, "
              f"{result.trainable_params:,} params){last}; wrote {result.out_dir}")
    return 0
