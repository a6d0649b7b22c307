"""`mfr mask`: a synthetic-masked copy of an unmasked face set, in RMFRD's layout
(:mod:`mfr.data.masks`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "draw synthetic masks on an unmasked face set; write it as an RMFRD tree"


def _kinds(text: str) -> tuple[str, ...]:
    from mfr.data.masks import MASK_KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in MASK_KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(MASK_KINDS)}, got {text!r}")
    return kinds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mfr.core.config import MAX_SEED
    from mfr.core.readers.numbers import integer
    from mfr.data.masks import DETECTORS, MASK_KINDS

    # dests unlike the config fields data_root and seed: this command reads no config
    parser.add_argument("--data-root", dest="unmasked_root", type=Path, required=True,
                        metavar="UNMASKED",
                        help="a folder of <subject>/ image folders, or an RMFRD tree (its "
                             "unmasked side is masked)")
    parser.add_argument("--out", type=Path, required=True, metavar="TREE",
                        help="output folder: <TREE>/self-built-masked-face-recognition-dataset/"
                             "..., masks.csv, failed.csv, run.json")
    parser.add_argument("--seed", dest="mask_seed", type=integer(0, MAX_SEED), default=0,
                        metavar="SEED", help=f"seed of the kinds, colours and shading (default "
                                             f"0; 0..{MAX_SEED})")
    parser.add_argument("--kinds", type=_kinds, default=tuple(MASK_KINDS),
                        help=f"mask kinds to draw from (default {','.join(MASK_KINDS)})")
    parser.add_argument("--per-image", type=integer(1, 100), default=1, metavar="K",
                        help="masked versions of each image (default 1; 1..100: each is a "
                             "file written)")
    parser.add_argument("--detector", choices=DETECTORS, default="mtcnn",
                        help="the face box the landmarks start from (default mtcnn; none: "
                             "the whole image)")
    parser.add_argument("--crop-fallback", action="store_true",
                        help="when the detector finds no face, use the whole image as the box "
                             "(sets of face crops); otherwise such an image is listed as failed")
    parser.add_argument("--force", action="store_true",
                        help="replace whatever the output folder holds (another run)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from mfr.data.masks import mask_tree

    s = mask_tree(args.unmasked_root, args.out, seed=args.mask_seed, kinds=args.kinds,
                  per_image=args.per_image, detector=args.detector,
                  crop_fallback=args.crop_fallback, force=args.force,
                  progress=not args.no_progress)
    state = "up to date" if s["up_to_date"] else "written"
    print(f"{s['tree']}: {state}; {s['masked']} of {s['images']} images masked, "
          f"{s['failed']} listed in {args.out / 'failed.csv'}")
    return 0
