"""`mfr gradcam`: where the model looks on masked faces (RQ1, Fig 5.6), with a number.

For a study folder's pre-trained baseline and each fine-tuned setting (``--study``), one run
(``--model``) or a bare core (``--weights``): Grad-CAM of genuine test pairs, the share of each
map above the mask line with a bootstrap CI, and a deletion test of the maps
(:func:`mfr.study.steps.gradcam_step`). Needs the TensorFlow backend (tf-keras-vis); under another
backend it says so in one line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mfr.backbones import backbone_names, get_backbone
from mfr.commands._common import add_config_flags, config_from_args
from mfr.core.errors import InputError
from mfr.core.readers.numbers import integer, real

HELP = "Grad-CAM of genuine test pairs: overlays, attention share above the mask, deletion test"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--study", type=Path, metavar="DIR",
                      help="study folder: DIR/partition, DIR/baseline (mfr embed), "
                           "DIR/train_N<N> (mfr train); explains each setting")
    what.add_argument("--model", type=Path, metavar="RUN",
                      help="one run folder of `mfr embed` or `mfr train`")
    parser.add_argument("--pairs", type=Path, default=None, metavar="DIR",
                        help="output folder of `mfr partition` (default DIR/partition, or the "
                             "run's recorded pairs folder)")
    parser.add_argument("--force", action="store_true",
                        help="replace whatever the output folder holds")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default DIR/gradcam or RUN/gradcam)")
    parser.add_argument("--n-images", type=integer(1, 1000), default=4, metavar="K",
                        help="genuine test pairs to explain, chosen with the seed (default 4; "
                             "1..1000: each is a Grad-CAM map and a figure)")
    parser.add_argument("--deletion-fraction", type=real(above=0.0, below=1.0), default=0.2,
                        metavar="F",
                        help="share of the image greyed in the deletion test (default 0.2; "
                             "more than 0, less than 1)")
    parser.add_argument("--random-draws", type=integer(1, 1000), default=5, metavar="R",
                        help="random regions per image in the deletion test (default 5; "
                             "1..1000)")
    parser.add_argument("--n-boot", type=integer(100, 20_000), default=2000,
                        help="bootstrap resamples of the CIs (default 2000; 100..20000: fewer "
                             "leave a 95%% interval's tails a few values each, more only cost "
                             "memory, resamples x images)")
    parser.add_argument("--layer", default=None,
                        help="feature layer (default: the backbone's own, its facts' "
                             "gradcam_layer: " + ", ".join(
                                 f"{get_backbone(n).facts.gradcam_layer} for {n}"
                                 for n in backbone_names()) + ")")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_flags(parser, "backbone", "face_box", "weights", "preprocessing", "pooling",
                     "image_size", "decoder", "data_root", "seed", "precision")
    parser.epilog = ("Without --study or --model, --weights (the released ones, a file, or none) picks "
                     "a bare core and --pairs and --out are required. --seed picks the pairs, "
                     "the random regions and the bootstrap (default: the runs' seed).")


def run(args: argparse.Namespace) -> int:
    given = vars(args)
    if args.study is not None or args.model is not None:
        extra = sorted(k for k in ("weights", "preprocessing", "pooling", "image_size", "decoder",
                                   "precision") if k in given)  # a run's maps: float32
        if extra:
            raise InputError(f"--{extra[0].replace('_', '-')} applies to a bare core; a run's "
                             f"model and preprocessing come from its run.json")
        config = None
    else:
        if "weights" not in given:
            raise InputError("give --study DIR, --model RUN, or --weights (the backbone's "
                             "released ones, a weights file, or none) with --pairs and --out")
        if args.pairs is None or args.out is None:
            raise InputError("--weights needs --pairs DIR and --out DIR")
        config = config_from_args(args)
    import keras  # after every argument is checked: it takes seconds

    if keras.backend.backend() != "tensorflow":
        print(f"mfr gradcam: error: Grad-CAM needs the TensorFlow backend (tf-keras-vis); Keras "
              f"runs on {keras.backend.backend()}: run with KERAS_BACKEND=tensorflow",
              file=sys.stderr)
        return 2
    from mfr.study.steps import gradcam_step

    options = {"n_images": args.n_images, "deletion_fraction": args.deletion_fraction,
               "random_draws": args.random_draws, "n_boot": args.n_boot, "layer": args.layer,
               "data_root": given.get("data_root"), "seed": given.get("seed"),
               "progress": not args.no_progress}
    force = args.force
    if config is None:
        out = args.out or (args.study or args.model) / "gradcam"
        result = gradcam_step(out, study_dir=args.study, model_dir=args.model,
                              pairs_dir=args.pairs, force=force, **options)
    else:
        out = args.out
        result = gradcam_step(out, config=config, pairs_dir=args.pairs, force=force, **options)
    print((out / "attention_summary.md").read_text(encoding="utf-8"), end="")
    skipped = f"; skipped {len(result.skipped)} pairs (see run.json)" if result.skipped else ""
    print(f"wrote {out}/attention.csv, attention_summary.csv/.md, deletion.csv, "
          f"{', '.join(p.name for p in result.figures)}, run.json{skipped}")
    return 0
