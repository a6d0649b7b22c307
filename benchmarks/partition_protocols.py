"""The partition protocols on the shared development sets: counts and times.

For each set found under the data folder (default ``../shared/data`` from the project root:
mlfw-dev, m2fred-dev, rmfrd-dev, mfr2-dev), every protocol it takes (`thesis`, `balanced`,
`all_pairs` need mask flags; `identity` takes any), in-process with the defaults
(`max_per_subject` 20, seed 2021, headers verified): identities, images and pairs (genuine /
impostor) per split, and the wall time. Then the spread of test pair counts across 5 folds over
subjects (split_seed 0) for the real-mask sets, and the identities the sets share by name
(:mod:`mfr.data.identities`). Writes ``results/benchmarks/partition_protocols.json`` and prints
a Markdown table.

    python benchmarks/partition_protocols.py [--data DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mfr.core.outputs import versions, write_json  # noqa: E402
from mfr.core.provenance import listing_digest  # noqa: E402
from mfr.data.datasets import load_dataset  # noqa: E402
from mfr.data.identities import shared_identities  # noqa: E402
from mfr.data.partition import PROTOCOLS, partition  # noqa: E402

SETS = {"mlfw-dev": "mlfw-dev", "m2fred-dev": "m2fred-dev", "rmfrd-dev": "rmfrd-dev",
        "mfr2-dev": "mfr2-dev/mfr2"}


def _row(name: str, protocol: str, p, seconds: float) -> dict:
    st = p.stats
    row = {"set": name, "protocol": protocol, "seconds": round(seconds, 2)}
    for split, key in (("train", "train"), ("val", "val"), ("test", "test_pairs")):
        row[split] = {k: st[key][k] for k in ("pairs", "genuine", "impostor")}
    subj = st.get("split_subjects", {})
    row["subjects"] = ({k: len(v) for k, v in subj.items()} if "train" in subj else
                       {"train_val": st["train_val"]["subjects"], "test": st["test"]["subjects"]})
    row["images"] = {k: sum(v for key, v in st[k].items() if key.endswith("images"))
                     for k in ("train_val", "test")}
    if "same_photo_left_out" in st["train"]:
        row["same_photo_left_out"] = {k: st[key]["same_photo_left_out"] for k, key in
                                      (("train", "train"), ("val", "val"), ("test", "test_pairs"))}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "results" / "benchmarks" / "partition_protocols.json")
    args = ap.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # one-class splits (MLFW has no test/) said below
    rows, folds, data, loaded = [], [], {}, {}
    for name, rel in SETS.items():
        root = args.data / rel
        if not root.is_dir():
            print(f"{root}: absent, skipped")
            continue
        ds = load_dataset(root, "balanced")
        loaded[name] = ds
        data[name] = {"root": os.path.relpath(root, ROOT), "layout": ds.layout,
                      "listing": listing_digest(ds.root),
                      **ds.summary()}
        for protocol in PROTOCOLS:
            if protocol != "identity" and ds.layout == "mlfw":
                continue  # no mask flag: refused (one line), nothing to count
            t = time.perf_counter()
            p = partition(root, protocol=protocol)
            rows.append(_row(name, protocol, p, time.perf_counter() - t))
        if ds.layout != "mlfw":
            counts = []
            for fold in range(5):
                p = partition(root, protocol="all_pairs", folds=5, fold=fold, split_seed=0,
                              verify=False)
                counts.append({"fold": fold, "test_subjects": p.stats["test"]["subjects"],
                               **p.stats["test_pairs"]})
            folds.append({"set": name, "protocol": "all_pairs", "folds": 5, "split_seed": 0,
                          "test": counts})
    overlap = shared_identities(loaded) if loaded else {}
    write_json(args.out, {"data": data, "protocols": rows, "folds": folds, "overlap": overlap,
                          "machine": {"python": platform.python_version(),
                                      "cpu": platform.processor() or platform.machine()},
                          "versions": versions()})
    print("| set | protocol | subjects (train/val/test) | pairs train (gen/imp) | val | test | s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["subjects"]
        subj = "/".join(str(v) for v in s.values())
        cell = {k: f"{r[k]['pairs']} ({r[k]['genuine']}/{r[k]['impostor']})"
                for k in ("train", "val", "test")}
        print(f"| {r['set']} | {r['protocol']} | {subj} | {cell['train']} | {cell['val']} | "
              f"{cell['test']} | {r['seconds']} |")
    for f in folds:
        pairs = [c["pairs"] for c in f["test"]]
        print(f"{f['set']} all_pairs, 5 folds (split_seed 0): test pairs {pairs}")
    print(f"shared by name: {len(overlap.get('matches', []))}; not checkable by name: "
          f"{overlap.get('unnamed', [])}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
