"""The pipeline end to end, offline, on a generated RMFRD-layout sample (`make demo`).

generated tree -> `mfr partition` -> `mfr embed` (pre-trained baseline row) -> `mfr train` for
a few N -> one table of medians beside the thesis's Table 5.1. With no internet there are no
VGGFace2 weights, so the demo runs from a fixed random initialisation: its numbers show that
the machinery works, not what the thesis measured. Pass `--weights vggface2` where the weight
file can be had.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from mfr.cli import main as mfr_main
from mfr.outputs import markdown_table, write_text

# Table 5.1 of the thesis: setting -> (median impostor, median genuine)
THESIS_TABLE_5_1 = {
    "pre-trained": (1.278899, 0.989988),
    10: (1.699373, 1.406768),
    20: (1.969977, 1.667269),
    30: (1.974622, 1.679480),
    40: (1.959761, 1.689339),
    50: (1.976508, 1.555529),
    60: (1.988818, 1.607727),
    70: (1.987619, 1.544770),
}


def _run(*argv: str) -> None:
    print("$ mfr " + " ".join(argv), flush=True)
    rc = mfr_main(list(argv))
    if rc:
        raise SystemExit(f"mfr {argv[0]} failed with exit status {rc}")


def _row(setting, summary_path: Path) -> dict:
    s = json.loads(summary_path.read_text(encoding="utf-8"))
    s = s.get("sum_squared", s)
    thesis = THESIS_TABLE_5_1.get(setting, (float("nan"), float("nan")))
    return {
        "setting": setting if setting == "pre-trained" else f"last {setting} layers",
        "median impostor": s["median_impostor"],
        "median genuine": s["median_genuine"],
        "gap": s["median_impostor"] - s["median_genuine"],
        "thesis impostor": thesis[0],
        "thesis genuine": thesis[1],
        "thesis gap": thesis[0] - thesis[1],
    }


def run_demo(out: Path, n_subjects: int = 12, trainable_layers=(10, 20), epochs: int = 2,
             weights: str = "none", batch_size: int = 8) -> pd.DataFrame:
    from mfr.synthetic import make_demo_tree

    t0 = time.perf_counter()
    out = Path(out)
    data = out / "data"
    if not (data / "AFDB_face_dataset").is_dir():
        make_demo_tree(data, n_subjects=n_subjects)
    pairs = out / "partition"
    _run("partition", "--data-root", str(data), "--out", str(pairs))
    common = ["--weights", weights, "--config", "demo", "--cache-dir", str(out / "cache")]
    _run("embed", "--pairs", str(pairs), "--out", str(out / "baseline"), "--split", "test",
         "--no-progress", *common)
    rows = [_row("pre-trained", out / "baseline" / "summary.json")]
    for n in trainable_layers:
        run_dir = out / f"train_N{n}"
        _run("train", "-n", str(n), "--pairs", str(pairs), "--out", str(run_dir),
             "--epochs", str(epochs), "--batch-size", str(batch_size), "--resume",
             "--no-progress", *common)
        rows.append(_row(n, run_dir / "summary.json"))
    table = pd.DataFrame(rows)
    md = ["# mfr demo: Table 5.1 on a generated sample",
          "",
          f"Generated RMFRD-layout tree ({n_subjects} synthetic subjects), weights: {weights}, "
          f"{epochs} epochs, batch {batch_size}. "
          + ("Random initialisation: these medians show the pipeline runs, not the thesis's "
             "result." if weights == "none" else ""),
          "",
          markdown_table(table),
          "",
          f"Wall time {time.perf_counter() - t0:.0f} s.",
          ""]
    write_text(out / "summary.md", "\n".join(md))
    print("\n".join(md))
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mfr.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("results/demo"))
    p.add_argument("--subjects", type=int, default=12)
    p.add_argument("--trainable-layers", type=int, nargs="+", default=[10, 20])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--weights", default="none", help="none (default, offline), vggface2 or a path")
    args = p.parse_args(argv)
    run_demo(args.out, args.subjects, tuple(args.trainable_layers), args.epochs, args.weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
