"""The pipeline end to end, offline, on a generated RMFRD-layout sample (`make demo`).

generated tree and its partition -> the pre-trained baseline row (val and test pairs) ->
fine-tuning for the profile's N -> Table 5.1 and Figures 5.1-5.3 beside the thesis's values,
and the whole evaluation (``evaluation/``: Figures 5.1-5.5, metrics, thresholds), through the
same steps as the CLI (:mod:`mfr.steps`). The output folder is a study folder. Hyperparameters come from the `demo` profile
(configs/demo.yaml). With no internet there are no VGGFace2 weights, so the demo runs from a
fixed random initialisation: its numbers show that the machinery works, not what the thesis
measured. Pass `--weights vggface2` where the weight file can be had.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from mfr import report, steps
from mfr.config import load_config
from mfr.outputs import write_text


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
             weights: str | None = None) -> pd.DataFrame:
    t0 = time.perf_counter()
    cfg = load_config(profile).replace(weights=weights)
    out = Path(out)
    sample = steps.prepare_sample(out, cfg, n_subjects=n_subjects)
    cache = out / "cache"
    print(f"baseline -> {out / 'baseline'}", flush=True)
    steps.embed_step(cfg, sample.pairs_dir, out / "baseline", split="val,test", cache_dir=cache,
                     progress=False)
    trained = {n: out / f"train_N{n}" for n in cfg.trainable_layers}
    for n, run_dir in trained.items():
        print(f"N={n} -> {run_dir}", flush=True)
        steps.train_step(cfg, n, sample.pairs_dir, run_dir, cache_dir=cache, resume=True,
                         progress=False)
    runs = {"pre-trained": out / "baseline", **trained}
    table = report.table_5_1(runs)
    figures = _figures(runs, trained, out)
    print(f"evaluation -> {out / 'evaluation'}", flush=True)
    steps.evaluate_step(out, config=cfg, progress=False)
    md = ["# mfr demo: Table 5.1 on a generated sample",
          "",
          f"A generated RMFRD-layout tree ({n_subjects} synthetic subjects); profile `{profile}` "
          f"(optimizer {cfg.optimizer}, lr {cfg.learning_rate:g}, {cfg.epochs} epochs, batch "
          f"{cfg.batch_size}); weights: {cfg.weights or 'none (random init)'}."
          + (" Random initialisation: these numbers show the pipeline runs, not the thesis's "
             "result." if cfg.weights is None else ""),
          "",
          table.to_markdown(index=False, floatfmt=".6f"),
          "",
          "Figures: " + ", ".join(p.name for p in figures),
          "",
          "Every Chapter 5 figure and table, verification and identification metrics with 95% "
          "intervals (bootstrap over subjects), thresholds: `evaluation/` (`mfr evaluate "
          "--study`).",
          "",
          f"Wall time {time.perf_counter() - t0:.0f} s.",
          ""]
    write_text(out / "summary.md", "\n".join(md))
    print("\n".join(md))
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mfr.demo", description=__doc__.splitlines()[0],
                                allow_abbrev=False)
    p.add_argument("--out", type=Path, default=Path("results/demo"))
    p.add_argument("--subjects", type=int, default=12)
    p.add_argument("--config", default="demo", help="config profile (default: demo)")
    p.add_argument("--weights", default="none", help="none (default, offline), vggface2 or a path")
    args = p.parse_args(argv)
    weights = None if args.weights.lower() == "none" else args.weights
    run_demo(args.out, args.subjects, args.config, weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
