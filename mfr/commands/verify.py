"""`mfr verify IMG_A IMG_B`: are two photos of the same person?

Finds the largest face in each photo (MTCNN; ``--no-detect``: the whole image, for faces
already cropped), embeds both (``--embedder NAME``: a backbone, from a run folder's network or
the given weights; or a reference embedder such as ``dlib_reference``, dlib's own C++, which
needs no downloaded weights), prints ``distance <value>`` and the decision at
the threshold, and which model, weights, preprocessing, distance and threshold source were
used (:func:`mfr.study.steps.verify_step`). ``--json``: one JSON object for scripts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mfr.backbones import BACKBONES, DEFAULT_BACKBONE, backbone_names, get_backbone
from mfr.backbones.embedders import embedder_arg, embedder_names
from mfr.backbones.facts import RELEASED
from mfr.commands._common import add_config_flags
from mfr.core.errors import InputError

#: the config flags of a backbone's embedder (beside its own settings: pooling, face_box)
_NETWORK = ("weights", "preprocessing", "seed")

HELP = "are two photos of the same person? distance and decision (face found with MTCNN)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_a", type=Path, metavar="IMG_A", nargs="?", default=None,
                        help="a photo (JPEG, PNG, ...)")
    parser.add_argument("image_b", type=Path, metavar="IMG_B", nargs="?", default=None,
                        help="another photo")
    parser.add_argument("--pairs", dest="pairs_csv", type=Path, default=None, metavar="CSV",
                        help="many pairs at once: a CSV image_a,image_b[,label] (paths relative "
                             "to it or absolute); each image embedded once; OUT/pairs.csv "
                             "gets a distance and a decision per pair (needs --out)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="with --pairs: the folder for pairs.csv and run.json")
    parser.add_argument("--force", action="store_true",
                        help="with --pairs: replace whatever --out holds")
    parser.add_argument("--no-face", choices=("skip", "keep"), default=None,
                        help="with --pairs: an image where the embedder's own face finder finds "
                             "no face: keep (embedded from its fall-back, as for two photos, "
                             "and noted; default) or skip (its pairs get no distance and the "
                             "reason)")
    parser.add_argument("--embedder", choices=embedder_names(), type=embedder_arg, default=None,
                        help="a backbone (" + ", ".join(backbone_names()) + "; default "
                             "senet50, the thesis's network): its released weights, --weights, "
                             "or --model a run; or a reference implementation (dlib_reference: "
                             "face_recognition's dlib, needs no downloaded weights)")
    parser.add_argument("--backbone", choices=backbone_names(), default=None,
                        help="the study's network, as for the other commands: the same as "
                             "--embedder NAME")
    parser.add_argument("--model", type=Path, default=None, metavar="RUN",
                        help="a backbone's run folder of `mfr embed` or `mfr train` (its network "
                             "as the run left it; its study's calibrated threshold by default)")
    parser.add_argument("--threshold", default=None, metavar="VALUE|FILE",
                        help="a distance, or a thresholds.json of `mfr evaluate` (default: "
                             "RUN/../evaluation/thresholds.json for --model RUN; 0.6, "
                             "face_recognition's tolerance, for dlib and dlib_resnet)")
    parser.add_argument("--no-detect", action="store_true",
                        help="no face detection: each image is already a cropped face")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_flags(parser, "weights", "preprocessing", "pooling", "face_box", "seed",
                     "precision")
    parser.epilog = ("A pair is the same person when distance <= threshold. The distance is the "
                     "embedder's own: the thesis's sum of squared differences of unit "
                     "embeddings, or for dlib's network face_recognition's Euclidean distance. "
                     "--weights (the released ones, a weights file, or none: random init with "
                     "--seed), --preprocessing and the backbone's own settings (--pooling, "
                     "--face-box) are for a backbone without --model. Face detection needs the "
                     "TensorFlow backend.")


def run(args: argparse.Namespace) -> int:
    from mfr.core.config import load_config
    from mfr.study.steps import verify_step

    given = vars(args)
    check_args(args)
    args.embedder = embedder = args.embedder or args.backbone or DEFAULT_BACKBONE
    flags = ("weights", "preprocessing", "pooling", "face_box", "seed")
    own = sorted(k for k in flags if k in given)
    if own and embedder not in BACKBONES:
        raise InputError(f"--{_flag(own[0])} is not an option of {embedder}: it is a senet50 "
                         f"option, as of every backbone's embedder ({', '.join(BACKBONES)})")
    if own and args.model is not None and own != ["seed"]:
        raise InputError(f"--{_flag(own[0])} applies without --model; a run's network and "
                         f"preprocessing come from its run.json")
    from mfr.verify.photos import read_photo

    if args.pairs_csv is not None:  # a bad CSV is said before any model loads
        from mfr.verify.pairs import read_pairs_csv

        read_pairs_csv(args.pairs_csv)
    for image in (args.image_a, args.image_b):  # a bad photo is said before any model loads
        if image is not None:
            read_photo(image)
    profile = load_config(args.config)
    network: dict = {}
    if embedder in BACKBONES:
        allowed = {*_NETWORK, *get_backbone(embedder).facts.settings}
        other = [k for k in own if k not in allowed]
        if other:
            raise InputError(f"--{_flag(other[0])} is not an option of {embedder} (it takes "
                             f"{', '.join('--' + _flag(k) for k in sorted(allowed))})")
        # the profile's network when it is this backbone's, else the backbone's own defaults
        base = {k: getattr(profile, k) for k in allowed} if profile.backbone == embedder else {}
        cfg = profile.replace(backbone=embedder, **{**base, **{k: given[k] for k in own}})
        network = {k: getattr(cfg, k) for k in allowed
                   if k in base or k in own or k == "weights"}
        if "weights" not in base and "weights" not in own:
            network["weights"] = RELEASED  # the released ones of this backbone
    if args.pairs_csv is not None:
        return _verify_pairs(args, embedder, network, given.get("precision", profile.precision))
    result = verify_step(args.image_a, args.image_b, embedder=embedder, model=args.model,
                         threshold=args.threshold, detect=not args.no_detect,
                         precision=given.get("precision", profile.precision), **network)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=_plain))
    else:
        print("\n".join(result.lines()))
    return 0


def check_args(args: argparse.Namespace) -> None:
    """The options' own contradictions, said before any file is read."""
    _check_pairs_mode(args)
    if args.backbone and args.embedder not in (None, args.backbone):
        raise InputError(f"--backbone {args.backbone} and --embedder {args.embedder} disagree")


def _check_pairs_mode(args: argparse.Namespace) -> None:
    """Two photos, or --pairs CSV --out DIR: one or the other."""
    if args.pairs_csv is not None:
        if args.image_a is not None:
            raise InputError("--pairs CSV takes the photos from the CSV, not IMG_A IMG_B")
        if args.out is None:
            raise InputError("--pairs CSV needs --out DIR (pairs.csv is written there)")
        return
    if args.image_b is None:
        raise InputError("expected two photos IMG_A IMG_B, or --pairs CSV --out DIR")
    if args.out is not None or args.force or args.no_face is not None:
        raise InputError("--out, --force and --no-face are options of --pairs CSV")


def _verify_pairs(args: argparse.Namespace, embedder: str, network: dict,
                  precision: str) -> int:
    """`mfr verify --pairs CSV --out DIR` (:func:`mfr.verify.batch.verify_pairs_file`)."""
    from mfr.core.precision import precision_scope
    from mfr.study.steps.verify import verify_embedder
    from mfr.verify.batch import verify_pairs_file

    settings = {k: v for k, v in network.items() if k not in _NETWORK}
    with precision_scope(precision):
        emb = verify_embedder(embedder, args.model, network.get("weights", RELEASED),
                              network.get("preprocessing"), network.get("seed", 2021),
                              progress=False, **settings)
        result = verify_pairs_file(args.pairs_csv, args.out, emb, args.threshold,
                                   detect=not args.no_detect, no_face=args.no_face or "keep",
                                   force=args.force)
    if args.json:
        print(json.dumps(result.summary(), indent=2, sort_keys=True, default=_plain))
    else:
        print("\n".join(result.lines()))
    return 0


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _plain(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
