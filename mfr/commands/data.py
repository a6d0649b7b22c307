"""`mfr data list | fetch NAME | where | overlap ROOT...`: the registered datasets
(:mod:`mfr.data.datasets`); download (or take a manual download of, or generate) one, unpack it,
check its layout (:mod:`mfr.data.fetch`); the people two dataset trees share, by name
(:mod:`mfr.data.identities`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "list the datasets, fetch one into $MFR_DATA, or check a manual download"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mfr.data.datasets import dataset_names

    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="the datasets mfr knows: layout, source, where each lives")
    p = sub.add_parser("fetch", help="download, unpack and check a dataset", allow_abbrev=False)
    p.add_argument("name", choices=dataset_names(fetchable=True))
    p.add_argument("--to", type=Path, default=None, metavar="DIR",
                   help="where it goes (default $MFR_DATA/<name>, $MFR_DATA=~/mfr_data)")
    p.add_argument("--from", dest="source", type=Path, default=None, metavar="PATH",
                   help="a manual download: the archive, or its unpacked folder")
    p.add_argument("--url", default=None, help="download from here instead of Google Drive")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_parser("where", help="print where datasets live ($MFR_DATA)")
    p = sub.add_parser("overlap", help="the identities that two or more dataset trees (or two "
                                       "splits of one) share, by normalised name")
    p.add_argument("roots", nargs="+", type=Path, metavar="ROOT", help="dataset trees")
    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="also write the findings as JSON")


def run(args: argparse.Namespace) -> int:
    from mfr.data import fetch as data

    if args.action == "where":
        from mfr.core.config import data_home

        print(data_home())
        return 0
    if args.action == "overlap":
        return _overlap(args.roots, args.out)
    if args.action == "list":
        for row in data.list_datasets():
            print(f"{row['name']}: {row['label']}\n  layout {row['layout']}; source "
                  f"{row['source']}; {row['where']}")
        return 0
    root = data.fetch(args.name, args.to, source=args.source, url=args.url,
                      progress=not args.no_progress)
    print(f"{args.name}: {root}")
    return 0


def _overlap(roots: list[Path], out: Path | None) -> int:
    from mfr.core.outputs import write_json
    from mfr.data.datasets import detect_dataset
    from mfr.data.identities import shared_identities

    datasets = {}
    for root in roots:
        spec, found = detect_dataset(root)
        label = f"{spec.name} ({found.name})"
        label = label if label not in datasets else f"{label} #{len(datasets) + 1}"
        datasets[label] = spec.load(found, "balanced")
    found_ = shared_identities(datasets)
    for label, n in found_["identities"].items():
        note = " (numbers: not checkable by name)" if label in found_["unnamed"] else ""
        print(f"{label}: {n} identities{note}")
    print(f"{len(found_['matches'])} shared by name")
    for m in found_["matches"]:
        who = "; ".join(f"{i['dataset']}{'/' + i['split'] if i['split'] else ''}: {i['name']}"
                        for i in m["identities"])
        print(f"  {m['match']}: {who}")
    if out is not None:
        write_json(out, {"roots": [str(r) for r in roots], **found_})
    return 0
