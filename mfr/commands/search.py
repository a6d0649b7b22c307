"""`mfr search`: the fine-tuning hyperparameters chosen on held-out training subjects
(:mod:`mfr.study.search`); the test subjects are never read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mfr.commands._common import add_config_flags, config_from_args
from mfr.core.errors import InputError
from mfr.core.readers.numbers import integer, integer_list, real_list

HELP = ("choose the face box, optimizer, learning rate and epochs on held-out training "
        "subjects (never the test pairs)")


def _list(kind):
    def parse(text: str):
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma list of {kind.__name__}, got "
                                             f"{text!r}") from None
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the search folder (its inner partition, runs, search.csv/.md, "
                             "chosen.json); a rerun skips what is done")
    parser.add_argument("--n", type=integer(1, 10_000), default=None, metavar="N",
                        help="the last N layers to fine-tune (default: the profile's middle N; "
                             "at least 1, at most the backbone's layers)")
    parser.add_argument("--optimizers", type=_list(str), default=("sgd", "adam"),
                        metavar="O[,O...]", help="optimizers searched (default sgd,adam)")
    parser.add_argument("--learning-rates", type=real_list(above=0.0, maximum=1.0, max_items=20),
                        default=(1e-5, 1e-4, 1e-3), metavar="LR[,LR...]",
                        help="learning rates (default 1e-5,1e-4,1e-3; each in (0, 1], at most "
                             "20: each is a training run)")
    parser.add_argument("--epoch-counts", type=integer_list(1, 10_000, max_items=20),
                        default=(2, 4, 8), metavar="E[,E...]",
                        help="epoch counts scored, each run resumed to the next (default 2,4,8; "
                             "each 1..10000, at most 20)")
    parser.add_argument("--face-boxes", type=_list(str), default=None, metavar="B[,B...]",
                        help="face boxes scored on the pre-trained network (default crop,mtcnn "
                             "for a backbone that aligns faces)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_flags(parser, "backbone", "data_root", "weights", "protocol", "max_per_subject",
                     "seed", "train_val_fraction", "val_size", "margin", "momentum",
                     "batch_size", "embed_batch_size", "precision")


def run(args: argparse.Namespace) -> int:
    from mfr.study.search import search

    cfg = config_from_args(args)
    if cfg.data_root is None:
        raise InputError("no data root: pass --data-root DIR or a profile with data_root")
    ns = sorted(cfg.trainable_layers)
    n = args.n if args.n is not None else ns[len(ns) // 2]
    chosen = search(cfg, args.out, n, optimizers=args.optimizers,
                    learning_rates=args.learning_rates, epochs=args.epoch_counts,
                    face_boxes=args.face_boxes, progress=not args.no_progress)
    print((args.out / "search.md").read_text(encoding="utf-8"), end="")
    print(json.dumps(chosen, sort_keys=True))
    return 0
