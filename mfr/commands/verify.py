"""`mfr verify IMG_A IMG_B`: are two photos of the same person?

Finds the largest face in each photo (MTCNN; ``--no-detect``: the whole image, for faces
already cropped), embeds both (``--embedder senet50``: a run folder's network or the given
weights; ``dlib``: needs no VGGFace2 weights), prints ``distance <value>`` and the decision at
the threshold, and which model, weights, preprocessing, distance and threshold source were
used (:func:`mfr.study.steps.verify_step`). ``--json``: one JSON object for scripts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mfr.commands._common import add_config_flags
from mfr.core.errors import InputError

HELP = "are two photos of the same person? distance and decision (face found with MTCNN)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_a", type=Path, metavar="IMG_A", help="a photo (JPEG, PNG, ...)")
    parser.add_argument("image_b", type=Path, metavar="IMG_B", help="another photo")
    parser.add_argument("--embedder", choices=("senet50", "dlib", "dlib_resnet"),
                        default=None,
                        help="senet50 (the thesis's network; default), dlib (face_recognition's "
                             "model: needs no VGGFace2 weights) or dlib_resnet (that model in "
                             "Keras: pre-trained, or --model a fine-tuned run)")
    parser.add_argument("--backbone", choices=("senet50", "dlib_resnet"), default=None,
                        help="the study's network, as for the other commands: the same as "
                             "--embedder senet50|dlib_resnet")
    parser.add_argument("--model", type=Path, default=None, metavar="RUN",
                        help="senet50: a run folder of `mfr embed` or `mfr train` (its network "
                             "as the run left it; its study's calibrated threshold by default)")
    parser.add_argument("--threshold", default=None, metavar="VALUE|FILE",
                        help="a distance, or a thresholds.json of `mfr evaluate` (default: "
                             "RUN/../evaluation/thresholds.json for --model RUN; 0.6, "
                             "face_recognition's tolerance, for dlib and dlib_resnet)")
    parser.add_argument("--no-detect", action="store_true",
                        help="no face detection: each image is already a cropped face")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_flags(parser, "weights", "preprocessing", "seed", "precision")
    parser.epilog = ("A pair is the same person when distance <= threshold. The distance is the "
                     "embedder's own: senet50 the thesis's sum of squared differences of unit "
                     "embeddings; dlib face_recognition's Euclidean distance. --weights "
                     "(vggface2, a .h5 path, or none: random init with --seed) and "
                     "--preprocessing are for senet50 without --model. Face detection needs the "
                     "TensorFlow backend.")


def run(args: argparse.Namespace) -> int:
    from mfr.core.config import load_config
    from mfr.study.steps import verify_step

    given = vars(args)
    if args.backbone and args.embedder not in (None, args.backbone):
        raise InputError(f"--backbone {args.backbone} and --embedder {args.embedder} disagree")
    args.embedder = args.embedder or args.backbone or "senet50"
    own = sorted(k for k in ("weights", "preprocessing", "seed") if k in given)
    allowed = {"senet50": own, "dlib_resnet": [k for k in own if k != "preprocessing"]}
    if own and own != allowed.get(args.embedder, []):
        raise InputError(f"--{own[0]} is a senet50 option, not {args.embedder}'s")
    if own and args.model is not None and own != ["seed"]:
        raise InputError(f"--{own[0]} applies without --model; a run's network and "
                         f"preprocessing come from its run.json")
    cfg = load_config(args.config).replace(**{k: given[k] for k in own})
    from mfr.verify.photos import read_photo

    for image in (args.image_a, args.image_b):  # a bad photo is said before any model loads
        read_photo(image)
    result = verify_step(args.image_a, args.image_b, embedder=args.embedder, model=args.model,
                         weights=cfg.weights, preprocessing=cfg.preprocessing, seed=cfg.seed,
                         threshold=args.threshold, detect=not args.no_detect,
                         precision=given.get("precision", load_config(args.config).precision))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=_plain))
    else:
        print("\n".join(result.lines()))
    return 0


def _plain(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
