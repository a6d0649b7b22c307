"""`mfr identify PROBE... --gallery G`: who is in each photo? The top-k identities of a gallery
(`mfr gallery enrol`) with their distances, and a decision: an identity, or "not in the gallery".

Each probe (a photo, or a folder of photos) is embedded as the gallery's photos were, with the
gallery's own embedder (naming another with --embedder / --model is checked, and refused when
it is not the gallery's: another network, weights or alignment), and searched exactly (``--index``:
the faiss index kept with the gallery, re-ranked exactly). The decision is made at a threshold
whose source is printed (:mod:`mfr.gallery.decide`): ``--threshold VALUE|FILE`` (a distance, or
a thresholds.json of `mfr evaluate`), ``--fpir F`` (calibrated on the gallery: its own photos as
non-mated searches), ``--fmr F`` (its impostor pairs, 1:1), or the network's documented default
(dlib's 0.6; MobileFaceNet and SENet50 have none: the decision is then "undecided"). A probe that
cannot be searched (unreadable, no face found) is a row saying why. A gallery whose folders
changed on disk since enrolment is refused (``mfr gallery refresh``; ``--allow-changed``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mfr.commands.gallery import add_embedder_arguments, embedder_from_args
from mfr.core.errors import InputError
from mfr.core.readers.numbers import integer, real

HELP = "who is in each photo? top-k identities of a gallery, distances, and a decision"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("probes", type=Path, nargs="+", metavar="PROBE",
                        help="photos (JPEG, PNG, ...), or folders of photos")
    parser.add_argument("--gallery", required=True, type=Path, metavar="G",
                        help="a gallery folder made by `mfr gallery enrol`")
    parser.add_argument("--top-k", type=integer(1, 1000), default=5, metavar="K",
                        help="identities listed per probe (default 5)")
    parser.add_argument("--threshold", default=None, metavar="VALUE|FILE",
                        help="a distance, or a thresholds.json of `mfr evaluate` (default: the "
                             "gallery's run folder's study calibration; dlib's documented 0.6)")
    parser.add_argument("--fpir", type=real(above=0.0, below=1.0), default=None, metavar="F",
                        help="the threshold at this false-positive identification rate (0.01 "
                             "for 1%%), calibrated on the gallery's own photos")
    parser.add_argument("--fmr", type=real(above=0.0, below=1.0), default=None, metavar="F",
                        help="the threshold at this false match rate (1:1) of the gallery's "
                             "impostor pairs")
    parser.add_argument("--detect", action=argparse.BooleanOptionalAction, default=None,
                        help="find the face with MTCNN first (default: as the gallery's photos "
                             "were; --no-detect for face crops)")
    parser.add_argument("--no-face", choices=("skip", "keep"), default=None,
                        help="a probe where the embedder's face finder finds no face: skip (a "
                             "row saying so) or keep (searched from the fall-back, marked); "
                             "default the gallery's")
    parser.add_argument("--index", action="store_true",
                        help="search with the gallery's faiss index (shortlist re-ranked "
                             "exactly) instead of exactly")
    parser.add_argument("--allow-changed", action="store_true",
                        help="search a gallery whose folders changed on disk since enrolment, "
                             "as enrolled")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_embedder_arguments(parser, "the gallery's network, checked (default: the gallery's "
                                   "own)")


def _probes(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The probe photos (a folder: its photos, sorted) and the entries of such a folder that
    are not photos."""
    from mfr.gallery.photos import list_photos

    out: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for p in paths:
        if p.is_dir():
            photos, other = list_photos(p)
            out += photos
            skipped += other
        else:
            out.append(p)  # a missing or unreadable file is a row saying so
    return out, skipped


def run(args: argparse.Namespace) -> int:
    from mfr.gallery.store import Gallery, read_record

    given = [n for n, v in (("--threshold", args.threshold), ("--fpir", args.fpir),
                            ("--fmr", args.fmr)) if v is not None]
    if len(given) > 1:
        raise InputError(f"{given[0]} and {given[1]}: give one way to set the threshold")
    read_record(args.gallery)  # a missing or damaged gallery is said before any model loads
    embedder = embedder_from_args(args)
    g = Gallery.load(args.gallery, embedder)
    if not args.allow_changed:
        changes = g.changes()
        if changes:
            shown = "; ".join(_change_words(c) for c in changes[:3])
            raise InputError(f"{args.gallery}: changed on disk since enrolment ({shown}"
                             f"{'; ...' if len(changes) > 3 else ''}); run `mfr gallery refresh "
                             f"--gallery {args.gallery}`, or --allow-changed to search it as "
                             f"enrolled")
    if args.index and not g.index_wanted:
        raise InputError(f"{args.gallery}: keeps no index (enrol or refresh it with --index), "
                         f"or search without --index")
    probes, skipped = _probes(list(args.probes))
    if not probes:
        raise InputError(f"no probe photos in {', '.join(map(str, args.probes))}")
    result = g.identify(probes, args.top_k, args.threshold, fpir=args.fpir, fmr=args.fmr,
                        detect=args.detect, no_face=args.no_face,
                        method="index" if args.index else "exact",
                        progress=not args.no_progress)
    if args.json:
        out = result.to_dict()
        out["skipped"] = [{"path": str(p), "reason": why} for p, why in skipped]
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
    else:
        print("\n".join(result.lines()))
        for p, why in skipped:
            print(f"skipped: {p}: {why}")
    return 0


def _change_words(c: dict) -> str:
    if c["change"] == "changed":
        parts = [f"{len(c[k])} {k}" for k in ("added", "removed", "modified") if c[k]]
        return f"{c['identity']}: {', '.join(parts) or 'listing changed'}"
    if c["change"] == "new":
        return f"new identity folder {c['folder']}"
    return f"folder missing: {c.get('folder')}"
