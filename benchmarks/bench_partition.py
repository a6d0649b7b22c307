"""Benchmark: `mfr partition` with the defaults on an RMFRD-scale synthetic tree.

Builds the tree of `mfr.data.datasets.synthetic.table_4_2_counts("full")` (Table 3.1's 95,470 files: 442
common subjects, 83 masked-only, 18 unmasked-only; tiny JPEGs), runs `mfr partition` in a
fresh process (wall time, peak RSS of that process), checks that it gives exactly the thesis's
Table 4.2 and that a second run writes byte-identical files, and writes
`results/benchmarks/partition.json`.

    python benchmarks/bench_partition.py [--tree DIR] [--out results/benchmarks/partition.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mfr.core.outputs import versions, write_json  # noqa: E402
from mfr.data.datasets.synthetic import make_rmfrd_tree, table_4_2_counts  # noqa: E402
from mfr.data.partition import TABLE_KEYS, THESIS_TABLE_4_2  # noqa: E402

LIMIT_S, LIMIT_MB = 30.0, 2048.0

CHILD = """
import resource, sys, time
t = time.perf_counter()
from mfr.cli import main
rc = main(sys.argv[1:])
wall = time.perf_counter() - t
print("BENCH", rc, wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _digest(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.iterdir()) if p.is_file()}


def _run(tree: Path, out: Path) -> dict:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "partition", "--data-root", str(tree), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, check=False)
    total = time.perf_counter() - t
    line = [x for x in proc.stderr.splitlines() if x.startswith("BENCH ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"mfr partition failed:\n{proc.stdout}\n{proc.stderr}")
    _, rc, wall, maxrss = line[-1].split()
    return {"wall_s": round(float(wall), 3), "process_s": round(total, 3),
            "peak_rss_mb": round(int(maxrss) / 1024, 1), "rc": int(rc)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=None,
                    help="where to build the tree (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "partition.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mfr-bench-") as tmp:
        base = args.tree or Path(tmp) / "download"
        counts = table_4_2_counts("full")
        t = time.perf_counter()
        tree = make_rmfrd_tree(base, counts, image_size=24, distinct=1)
        build_s = time.perf_counter() - t
        n_files = sum(len(f) for _, _, f in os.walk(tree))
        runs = [_run(base, Path(tmp) / f"out{i}") for i in (1, 2)]
        digests = [_digest(Path(tmp) / f"out{i}") for i in (1, 2)]
        stats = json.loads((Path(tmp) / "out1" / "stats.json").read_text(encoding="utf-8"))
    table = {k: stats[k] for k in TABLE_KEYS}
    matches = table == THESIS_TABLE_4_2
    wall = max(r["wall_s"] for r in runs)
    rss = max(r["peak_rss_mb"] for r in runs)
    result = {
        "benchmark": "mfr partition --data-root <RMFRD-scale synthetic tree> (defaults: "
                     "protocol thesis, max_per_subject 20, seed 2021)",
        "tree": {"files": n_files, "build_s": round(build_s, 2),
                 "subjects": {"common": 442, "masked_only": 83, "unmasked_only": 18}},
        "runs": runs,
        "wall_s_max": wall,
        "peak_rss_mb_max": rss,
        "limits": {"wall_s": LIMIT_S, "peak_rss_mb": LIMIT_MB},
        "within_limits": wall < LIMIT_S and rss < LIMIT_MB,
        "table_4_2": table,
        "matches_thesis_table_4_2": matches,
        "byte_identical_reruns": digests[0] == digests[1],
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "machine": platform.machine(), "processor": platform.processor(),
                    "python": platform.python_version()},
        "versions": versions(),
    }
    write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("tree", "runs", "matches_thesis_table_4_2",
                                             "byte_identical_reruns", "within_limits")}, indent=1))
    ok = matches and result["byte_identical_reruns"] and result["within_limits"]
    if not ok:
        print("FAILED: see", args.out, file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
