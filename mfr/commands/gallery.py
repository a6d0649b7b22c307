"""`mfr gallery enrol|add|remove|refresh|list`: a gallery of enrolled identities, kept in a
folder, for `mfr identify` (:mod:`mfr.gallery.store`).

``enrol FOLDER --gallery G --embedder NAME``: every identity folder of FOLDER
(``FOLDER/<identity>/<photos>``) embedded with a backbone (its released weights, ``--weights``,
or ``--model RUN``: a fine-tuned run folder) or a reference embedder, with its face alignment
(``--face-box``); photos where no face is found are listed, not enrolled (``--no-face keep``:
enrolled from the fall-back and marked). ``--executor ray``: the photos embedded in shards as
Ray tasks (:mod:`mfr.gallery.sharded`). ``add PATH...``: identity folders (or, with ``--name``,
photos of one identity); ``remove NAME...``; ``refresh``: what changed on disk since enrolment
embedded again, the rest kept; ``list``: what the gallery holds, its skipped photos and what
changed since. Writers hold the gallery's lock: a second enrolment into one gallery at the same
time is refused in one line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mfr.backbones import BACKBONES, backbone_names
from mfr.backbones.embedders import embedder_arg, embedder_names
from mfr.backbones.facts import RELEASED
from mfr.commands._common import add_config_flags
from mfr.core.errors import InputError
from mfr.core.readers.numbers import integer, real
from mfr.study.executors import EXECUTORS

HELP = "a gallery of identities for `mfr identify`: enrol a folder, add, remove, refresh, list"

_EMBEDDER_FLAGS = ("weights", "preprocessing", "pooling", "face_box", "seed")


def add_embedder_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    """--embedder / --model and the backbone's flags (:func:`embedder_from_args`)."""
    parser.add_argument("--embedder", choices=embedder_names(), type=embedder_arg, default=None,
                        help=f"{purpose}: a backbone ({', '.join(backbone_names())}: its "
                             f"released weights, --weights, or --model a run) or a reference "
                             f"implementation (dlib_reference, mobilefacenet_ncnn)")
    parser.add_argument("--model", type=Path, default=None, metavar="RUN",
                        help="a backbone's `mfr train` (fine-tuned) or `mfr embed` run folder: "
                             "its network as the run left it")
    add_config_flags(parser, *_EMBEDDER_FLAGS, profile_flag=False)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def embedder_from_args(args: argparse.Namespace) -> Any:
    """The embedder the flags name, or None when none was named. One-line errors for a flag
    the embedder does not take and for weights that cannot be had."""
    from mfr.backbones import get_backbone
    from mfr.backbones.embedders import get_embedder

    given = vars(args)
    flags = sorted(k for k in _EMBEDDER_FLAGS if k in given)
    name, model = args.embedder, args.model
    if name is None and model is None:
        if flags:
            raise InputError(f"{_flag(flags[0])} needs --embedder NAME (or --model RUN)")
        return None
    if name is None:
        from mfr.core.runs import read_run

        name = read_run(model, "an `mfr train` or `mfr embed` run folder").backbone
    if name not in BACKBONES:
        if model is not None:
            raise InputError(f"--model is an option of a backbone ({', '.join(BACKBONES)}), "
                             f"not of {name}")
        other = [k for k in flags if k != "face_box"]
        if other:
            raise InputError(f"{_flag(other[0])} is not an option of {name} (it takes "
                             f"--face-box)")
        return get_embedder(name, **({"face_box": given["face_box"]} if flags else {}))
    backbone = get_backbone(name)
    if model is not None:
        other = [k for k in flags if k != "seed"]
        if other:
            raise InputError(f"{_flag(other[0])} applies without --model; a run's network, "
                             f"preprocessing and face box come from its run.json")
        from mfr.study.steps.inputs import require_complete

        require_complete(Path(model), "run")
        return get_embedder(name, run_dir=model, **({"seed": given["seed"]} if flags else {}))
    allowed = {"weights", "preprocessing", "seed", *backbone.facts.settings}
    other = [k for k in flags if k not in allowed]
    if other:
        raise InputError(f"{_flag(other[0])} is not an option of {name} (it takes "
                         f"{', '.join(_flag(k) for k in sorted(allowed))})")
    options = {k: given[k] for k in flags}
    options.setdefault("weights", RELEASED)
    emb = get_embedder(name, **options)
    backbone.check_weights(emb.weights, progress=False)
    return emb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def gallery_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--gallery", required=True, type=Path, metavar="G",
                       help="the gallery's folder (gallery.json and its data files)")

    def progress_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    def index_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--index", action=argparse.BooleanOptionalAction, default=None,
                       help="keep a faiss index of the templates beside them (for `mfr "
                            "identify --index`; pip install 'mfr[index]'); --no-index drops it "
                            "(default: as the gallery has it)")

    p = sub.add_parser("enrol", help="enrol every identity folder of FOLDER "
                                     "(FOLDER/<identity>/<photos>)",
                       description="Enrol every identity folder of FOLDER into the gallery G "
                                   "(made when absent). An identity already enrolled from "
                                   "there is brought up to date.")
    p.add_argument("folder", type=Path, metavar="FOLDER", help="FOLDER/<identity>/<photos>")
    gallery_arg(p)
    add_embedder_arguments(p, "the network that makes the templates (a new gallery needs "
                              "one; an existing gallery's is checked against it)")
    p.add_argument("--no-detect", action="store_true",
                   help="the photos are face crops: no MTCNN crop first (the embedder's own "
                        "face alignment still runs)")
    p.add_argument("--no-face", choices=("skip", "keep"), default=None,
                   help="a photo where the embedder's face finder finds no face: skip (list it, "
                        "default) or keep (enrol it from the fall-back, marked)")
    p.add_argument("--distance", choices=("sum_squared", "cosine", "l2", "euclidean_raw"),
                   default=None, help="what the search ranks by (default the embedder's own: "
                                      "euclidean_raw for dlib's network, else sum_squared)")
    index_arg(p)
    group = p.add_argument_group("executor (how the photos are embedded; the gallery does not "
                                 "depend on it)")
    group.add_argument("--executor", default=None, choices=EXECUTORS,
                       help="embed the photos in shards: local (one after the other here) or "
                            "ray (Ray tasks on this machine or a cluster; pip install "
                            "'mfr[cluster]'); default: in this process, unsharded")
    group.add_argument("--shard-size", type=integer(64, 10_000_000), default=None, metavar="N",
                       help="photos per shard, a multiple of 64 (default 1024)")
    group.add_argument("--ray-address", default=None, metavar="ADDR",
                       help="a running Ray cluster (HOST:6379 or ray://HOST:10001)")
    group.add_argument("--num-cpus", type=real(above=0.0, maximum=4096.0), default=None,
                       metavar="C", help="CPUs per shard (default 1)")
    progress_arg(p)

    p = sub.add_parser("add", help="add identities: identity folders, or photos of one "
                                   "identity (--name)")
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH",
                   help="identity folders (each named for its folder), or with --name photos")
    gallery_arg(p)
    p.add_argument("--name", default=None, help="the PATHs are photos of this identity")
    index_arg(p)
    progress_arg(p)

    p = sub.add_parser("remove", help="remove identities (their templates dropped)")
    p.add_argument("names", nargs="+", metavar="NAME", help="identities to remove")
    gallery_arg(p)
    index_arg(p)

    p = sub.add_parser("refresh", help="embed what changed on disk since enrolment; keep the "
                                       "rest")
    gallery_arg(p)
    index_arg(p)
    progress_arg(p)

    p = sub.add_parser("list", help="what the gallery holds, its skipped photos, and what "
                                    "changed on disk since enrolment")
    gallery_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from mfr.core.readers.paths import require_dir

    action = args.action
    if action == "list":
        return _list(args)
    if action in ("add",) and args.name is None:
        for p in args.paths:
            require_dir(p, "expected an identity folder of photos (or --name NAME with photos)",
                        "identity folder")
    if action == "enrol":
        require_dir(args.folder, "expected a folder of identity folders: FOLDER/<identity>/"
                                 "<photos>", "gallery folder")
        if args.executor is None and any(v is not None for v in (
                args.shard_size, args.ray_address, args.num_cpus)):
            raise InputError("--shard-size, --ray-address and --num-cpus are options of "
                             "--executor")
    return _write(args)


def _write(args: argparse.Namespace) -> int:
    from mfr.gallery.store import RECORD, edit_gallery

    progress = not getattr(args, "no_progress", True)
    g_path: Path = args.gallery
    embedder = embedder_from_args(args) if args.action == "enrol" else None
    create = None
    existed = (g_path / RECORD).is_file()
    if args.action == "enrol":
        if not existed and embedder is None:
            raise InputError(f"{g_path}: a new gallery needs its network: --embedder NAME "
                             f"({', '.join(embedder_names())}) or --model RUN")
        create = {"detect": not args.no_detect, "no_face": args.no_face or "skip",
                  "distance": args.distance, "index": bool(args.index)}
    with edit_gallery(g_path, embedder, create=create) as g:
        if args.action == "enrol" and existed:
            _same_settings(g, args)
        if args.index is not None:
            g.index_wanted = bool(args.index)
        if args.action == "enrol":
            if args.executor is not None:
                from mfr.gallery.sharded import DEFAULT_SHARD_SIZE, enrol_sharded
                from mfr.study.executors import get_executor

                options = {"address": args.ray_address, "num_cpus": args.num_cpus}
                ex = get_executor(args.executor, **options)
                update = enrol_sharded(g, args.folder, ex, args.shard_size or DEFAULT_SHARD_SIZE,
                                       work_dir=g_path / ".shards", progress=progress)
            else:
                update = g.enrol(args.folder, progress=progress)
        elif args.action == "add":
            if args.name is not None:
                update = g.add(args.name, args.paths, progress=progress)
            else:
                from mfr.gallery.store import Update

                update = Update()
                for p in args.paths:
                    u = g.add(p, progress=progress)
                    for k in ("added", "updated", "unchanged", "skipped", "notes"):
                        getattr(update, k).extend(getattr(u, k))
                    update.embedded += u.embedded
                    update.kept += u.kept
        elif args.action == "remove":
            update = g.remove(*args.names)
        else:
            update = g.refresh(progress=progress)
    print("\n".join(update.lines()))
    print(f"gallery {g_path}: {g.n_identities} identities, {g.n_templates} templates "
          f"({g.embedder_name}, distance {g.distance}{', index kept' if g.index_wanted else ''})")
    return 0


def _same_settings(g: Any, args: argparse.Namespace) -> None:
    """An enrolment into an existing gallery may not ask for other photo settings."""
    asked = {"detect": (not args.no_detect) if args.no_detect else None,
             "no_face": args.no_face, "distance": args.distance}
    for key, value in asked.items():
        if value is not None and value != getattr(g, key):
            raise InputError(f"{args.gallery}: enrolled with {key} {getattr(g, key)}; "
                             f"{key} {value} would mix templates made two ways (enrol into a "
                             f"new gallery)")


def _list(args: argparse.Namespace) -> int:
    from mfr.gallery.store import Gallery

    g = Gallery.load(args.gallery)
    changes = g.changes()
    photos = g.photos()
    skipped = photos[photos["status"] != "ok"]
    if args.json:
        per = photos.groupby("identity")
        out = {"gallery": g.summary(), "changes": changes,
               "identities": {n: {"photos": int(len(t)), "templates": int((t["template"] >= 0)
                                                                          .sum())}
                              for n, t in per},
               "skipped": skipped[["identity", "path", "status"]].to_dict("records")}
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
        return 0
    s = g.summary()
    sig = s["signature"]
    print(f"gallery {args.gallery}: {s['n_identities']} identities, {s['n_templates']} "
          f"templates, {s['n_skipped_photos']} photos skipped"
          + (f", {s['n_enrolled_without_face']} enrolled without a face found (--no-face keep)"
             if s["n_enrolled_without_face"] else ""))
    print(f"embedder: {sig['embedder']}; weights {sig['weights']}"
          + (f"; fine-tuned layers {sig['trained_layers']}" if sig.get("trained_layers") else "")
          + (f"; face box {sig['face_box']}" if sig.get("face_box") else ""))
    print(f"distance {g.distance}; face detection {'MTCNN' if g.detect else 'off (face crops)'};"
          f" no face found: {g.no_face}; index {'kept' if g.index_wanted else 'none'}")
    for name, t in photos.groupby("identity"):
        print(f"  {name}: {int((t['template'] >= 0).sum())} templates of {len(t)} photos")
    for r in skipped.itertuples():
        print(f"skipped: {r.path}: {r.status}")
    for c in changes:
        if c["change"] == "changed":
            print(f"changed since enrolment: {c['identity']}: {len(c['added'])} added, "
                  f"{len(c['removed'])} removed, {len(c['modified'])} modified (mfr gallery "
                  f"refresh)")
        elif c["change"] == "new":
            print(f"new identity folder since enrolment: {c['folder']} (mfr gallery refresh)")
        else:
            print(f"folder missing: {c.get('folder')} ({c.get('identity') or 'enrolled folder'})")
    if not changes:
        print("no change on disk since enrolment")
    return 0
