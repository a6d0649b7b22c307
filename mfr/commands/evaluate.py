"""`mfr evaluate`: Chapter 5's figures and tables, and verification / identification metrics.

Two modes:

- ``--study DIR``: a study folder (partition/, baseline/, train_N<N>/), from its stored
  distances and embeddings, into DIR/evaluation (:func:`mfr.study.steps.evaluate_step`);
- ``--data-root DIR --layout NAME --embedder E --out DIR``: a dataset's own pair sets embedded
  and evaluated directly (:func:`mfr.study.steps.evaluate_dataset_step`); NAME is a registered
  dataset (:func:`mfr.data.datasets.dataset_names`), E a backbone or a reference embedder
  (:func:`mfr.backbones.embedders.embedder_names`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from mfr.commands._common import add_config_flags, config_from_args
from mfr.core.errors import InputError

HELP = ("evaluate a study folder (--study DIR) or a dataset directly (--data-root DIR --layout "
        "NAME --embedder E --out DIR)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mfr.backbones.embedders import embedder_arg, embedder_names
    from mfr.data.datasets import dataset_names

    parser.add_argument("--study", type=Path, default=None, metavar="DIR",
                        help="study folder: partition/, baseline/ (mfr embed), train_N<N>/ "
                             "(mfr train)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default with --study: DIR/evaluation; required "
                             "with --data-root)")
    parser.add_argument("--layout", choices=dataset_names(), default=None,
                        help="the dataset (with --data-root): its layout and pair sets")
    parser.add_argument("--embedder", default="senet50", choices=embedder_names(), type=embedder_arg,
                        help="a backbone (its network: the released weights, --weights, or "
                             "--run-dir; default senet50) or a reference implementation "
                             "(dlib_reference: dlib's own C++) (with --data-root)")
    parser.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                        help="a backbone's `mfr train` run folder (its fine-tuned network)")
    parser.add_argument("--face-box", default=None,
                        dest="embedder_face_box",  # the embedder's option, not a config field
                        help="a face-aligning embedder: where its landmarks are found (default: "
                             "the backbone's first, hog for dlib_reference, or the run's with "
                             "--run-dir)")
    parser.add_argument("--landmarks", type=int, choices=(5, 68), default=None,
                        help="dlib_reference: 5-point (default) or 68-point shape predictor")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_flags(parser, "backbone", "data_root", "bootstrap_resamples", "threshold_rule", "seed",
                     "weights", "preprocessing", "pooling", "image_size", "embed_batch_size",
                     "decoder", "max_per_subject", "protocol", "precision")


def run(args: argparse.Namespace) -> int:
    from mfr.study import steps

    cfg = config_from_args(args)
    data_root = vars(args).get("data_root")
    if (args.study is None) == (data_root is None):
        raise InputError("give either --study DIR, or --data-root DIR with --layout and --out")
    if args.study is not None:
        with warnings.catch_warnings():  # what is missing is printed below, once
            warnings.filterwarnings("ignore", message="missing ")
            ev = steps.evaluate_step(args.study, args.out, cfg, progress=not args.no_progress)
        out = args.out or args.study / "evaluation"
        for m in ev.study.missing + ev.metrics["incomplete"]:
            print(f"note: {m['setting']} ({m['path']}): {m['reason']}", file=sys.stderr)
        print((out / "summary.md").read_text(encoding="utf-8"), end="")
        print(f"wrote {out}/: metrics.json, thresholds.json, tables, figures, run.json")
        return 0
    if args.layout is None or args.out is None:
        from mfr.data.datasets import dataset_names

        raise InputError(f"--data-root needs --layout {'|'.join(dataset_names())} and --out DIR")
    # the embedder's own options: one it does not take is refused by get_embedder, in a line
    options = {"landmarks": args.landmarks} if args.landmarks is not None else {}
    if args.embedder_face_box is not None:
        options["face_box"] = args.embedder_face_box
    from mfr.data.datasets import get_dataset

    spec = get_dataset(args.layout)  # its files read and checked before any model loads
    with warnings.catch_warnings():  # what they hold is said once, by the step
        warnings.simplefilter("ignore")
        root = spec.load(data_root, cfg.protocol).root
        for name in spec.evaluation_pair_sets:
            if name in spec.pair_sets:
                spec.own_pairs(name, root)
    steps.evaluate_dataset_step(cfg, data_root, args.layout, args.out, embedder=args.embedder,
                                run_dir=args.run_dir, progress=not args.no_progress, **options)
    print((args.out / "metrics.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {args.out}/: metrics.json, metrics.md, thresholds.json, distances.csv, "
          f"embeddings/, figures, run.json")
    return 0
