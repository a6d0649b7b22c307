"""The pipeline end to end, offline, on a generated RMFRD-layout sample (`make demo`).

generated tree -> `mfr partition` -> `mfr embed` (the pre-trained baseline row) -> `mfr train`
for a few N -> Table 5.1 and Figures 5.1-5.5 beside the thesis's values. Hyperparameters come
from the `demo` profile (configs/demo.yaml). With no internet there are no VGGFace2 weights, so
the demo runs from a fixed random initialisation: its numbers show that the machinery works,
not what the thesis measured. Pass `--weights vggface2` where the weight file can be had.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from mfr import report
from mfr.cli import main as mfr_main
from mfr.config import load_config
from mfr.outputs import markdown_table, write_text


def _run(*argv: str) -> None:
    print("$ mfr " + " ".join(argv), flush=True)
    rc = mfr_main(list(argv))
    if rc:
        raise SystemExit(f"mfr {argv[0]} failed with exit status {rc}")


def _figures(runs: dict, trained: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, _ = plt.subplots(figsize=(max(5, 1.6 * len(runs)), 4))
    report.plot_distances(report.sweep_distances(runs), ax=fig.axes[0])
    paths.append(out / "fig_5_3_distances.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=100)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    report.plot_losses(report.loss_history(trained), axes=axes)
    paths.append(out / "fig_5_1_5_2_losses.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=100)
    plt.close("all")
    return paths


def run_demo(out: Path, n_subjects: int = 12, profile: str = "demo",
             weights: str = "none") -> pd.DataFrame:
    from mfr.synthetic import make_demo_tree

    t0 = time.perf_counter()
    cfg = load_config(profile)
    out = Path(out)
    data = out / "data"
    if not (data / "AFDB_face_dataset").is_dir():
        make_demo_tree(data, n_subjects=n_subjects, seed=cfg.seed)
    pairs = out / "partition"
    _run("partition", "--data-root", str(data), "--out", str(pairs), "--config", profile)
    common = ["--weights", weights, "--config", profile, "--cache-dir", str(out / "cache"),
              "--no-progress"]
    _run("embed", "--pairs", str(pairs), "--out", str(out / "baseline"), "--split", "test",
         *common)
    trained = {n: out / f"train_N{n}" for n in cfg.trainable_layers}
    for n, run_dir in trained.items():
        _run("train", "-n", str(n), "--pairs", str(pairs), "--out", str(run_dir), "--resume",
             *common)
    runs = {"pre-trained": out / "baseline", **trained}
    table = report.table_5_1(runs)
    figures = _figures(runs, trained, out)
    md = ["# mfr demo: Table 5.1 on a generated sample",
          "",
          f"A generated RMFRD-layout tree ({n_subjects} synthetic subjects); profile `{profile}` "
          f"(optimizer {cfg.optimizer}, lr {cfg.learning_rate:g}, {cfg.epochs} epochs, batch "
          f"{cfg.batch_size}); weights: {weights}."
          + (" Random initialisation: these numbers show the pipeline runs, not the thesis's "
             "result." if weights == "none" else ""),
          "",
          markdown_table(table),
          "",
          "Figures: " + ", ".join(p.name for p in figures),
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
    p.add_argument("--config", default="demo", help="config profile (default: demo)")
    p.add_argument("--weights", default="none", help="none (default, offline), vggface2 or a path")
    args = p.parse_args(argv)
    run_demo(args.out, args.subjects, args.config, args.weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
