"""`mfr data list | fetch NAME | where`: the registered datasets (:mod:`mfr.data.datasets`); download
(or take a manual download of, or generate) one, unpack it, check its layout (:mod:`mfr.data.fetch`)."""

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


def run(args: argparse.Namespace) -> int:
    from mfr.data import fetch as data

    if args.action == "where":
        from mfr.core.config import data_home

        print(data_home())
        return 0
    if args.action == "list":
        for row in data.list_datasets():
            print(f"{row['name']}: {row['label']}\n  layout {row['layout']}; source "
                  f"{row['source']}; {row['where']}")
        return 0
    root = data.fetch(args.name, args.to, source=args.source, url=args.url,
                      progress=not args.no_progress)
    print(f"{args.name}: {root}")
    return 0
