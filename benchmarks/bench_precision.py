"""Benchmark: the accuracy cost of ``--precision bf16`` against float32, on this CPU.

The pre-trained dlib ResNet (``configs/rmfrd-dlib.yaml``: dlib_resnet, MTCNN boxes, 150-px
chips) on the test pairs of a partition of real RMFRD photos (made by ``mfr partition --config
rmfrd-dlib``), through the steps the CLI runs (:func:`mfr.study.steps.embed_step`,
:func:`mfr.study.steps.train_step`), once per precision, sharing one image cache:

- embedding: float32 once to warm the image cache and the aligned chips (not timed), then bf16
  and float32 again, timed (wall-clock of the step, the cache reused); the two float32 runs
  must be byte-identical. AUC, EER and FNMR at FMR 1% with 95% subject-bootstrap intervals
  (:func:`mfr.evaluation.metrics.bootstrap_subjects`, the config's resamples and seed), the
  largest |embedding difference| and |distance difference| between precisions;
- fine-tuning: N = 15, 2 epochs, SGD at lr 1e-4 (the profile's batch, margin), per precision:
  losses per epoch, time, and the fine-tuned test pairs' AUC / EER and their difference.

    python benchmarks/bench_precision.py --pairs /tmp/p --data-root ../shared/data/rmfrd-dev
        # -> results/precision/bf16_cpu.json and .md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
METRIC = "sum_squared"  # the thesis's distance; on unit vectors it ranks as Euclidean does


def _metrics(dist: pd.DataFrame, pairs: pd.DataFrame, cfg) -> dict[str, Any]:
    from mfr.evaluation.metrics import bootstrap_subjects, verification_metrics

    test = dist[dist["split"] == "test"] if "split" in dist else dist
    if "unmasked_subject" not in test:  # distances.csv names them; else the pairs CSV does
        keys = ["unmasked_path", "masked_path"]
        test = test.merge(pairs[keys + ["unmasked_subject", "masked_subject"]]
                          .drop_duplicates(keys), on=keys, how="left", validate="many_to_one")
    d, y = test[METRIC].to_numpy(), test["label"].to_numpy()
    m = verification_metrics(d, y)
    ci = bootstrap_subjects(d, y, test["unmasked_subject"].tolist(),
                            test["masked_subject"].tolist(), cfg.bootstrap_resamples, cfg.seed)
    keep = ("auc", "eer", "fnmr_at_fmr_1pct")
    iv = ci["intervals"]
    return {"n_pairs": m["n_pairs"], **{k: m[k] for k in keep},
            "ci95": {k: [iv[k]["low"], iv[k]["high"]] for k in keep if k in iv}}


def _diff(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean())}


def _embed(cfg, pairs: Path, root: Path, out: Path, cache: Path):
    from mfr.study.steps import embed_step

    t = time.perf_counter()
    run = embed_step(cfg, pairs, out, data_root=root, cache_dir=cache, progress=False,
                     force=True)
    return run, time.perf_counter() - t


def _train(cfg, pairs: Path, root: Path, out: Path, cache: Path):
    from mfr.study.steps import train_step

    t = time.perf_counter()
    train_step(cfg, 15, pairs, out, cache_dir=cache, data_root=root, progress=False, force=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=Path, required=True, help="a `mfr partition` folder")
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mfr_precision"))
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "precision" / "bf16_cpu.json")
    args = ap.parse_args()
    from mfr.core.config import load_config
    from mfr.core.numerics import numerics
    from mfr.core.outputs import versions, write_json, write_text

    base = load_config("rmfrd-dlib")
    cfg = {p: base.replace(precision=p) for p in ("float32", "bf16")}
    pairs = pd.read_csv(args.pairs / "test.csv")
    cache = args.work / "cache"
    warm, _ = _embed(cfg["float32"], args.pairs, args.data_root, args.work / "embed_warm", cache)
    runs, secs = {}, {}
    for p in ("bf16", "float32"):
        runs[p], secs[p] = _embed(cfg[p], args.pairs, args.data_root, args.work / f"embed_{p}",
                                  cache)
    f32, b16 = runs["float32"], runs["bf16"]
    assert list(f32.embeddings.paths) == list(b16.embeddings.paths)
    vec = {p: np.asarray(r.embeddings.vectors) for p, r in runs.items()}
    report: dict[str, Any] = {
        "what": __doc__.split("\n\n")[0], "versions": versions(), "machine": numerics(),
        "setup": {"profile": "rmfrd-dlib", "backbone": base.backbone, "weights": base.weights,
                  "face_box": base.face_box, "pairs": str(args.pairs),
                  "data_root": str(args.data_root), "metric": METRIC,
                  "bootstrap": f"{base.bootstrap_resamples} subject resamples, seed {base.seed}",
                  "embed_batch_size": base.embed_batch_size},
        "embed": {
            "n_images": int(vec["float32"].shape[0]),
            "seconds": {p: round(s, 2) for p, s in secs.items()},
            "float32_twice_byte_identical": bool(
                np.array_equal(np.asarray(warm.embeddings.vectors), vec["float32"])
                and warm.distances.equals(f32.distances)),
            "dtype": {p: str(v.dtype) for p, v in vec.items()},
            "max_norm_error": {p: float(np.abs(np.linalg.norm(v.astype(np.float64), axis=1)
                                               - 1).max()) for p, v in vec.items()},
            "metrics": {p: _metrics(r.distances, pairs, cfg[p]) for p, r in runs.items()},
            "embedding_diff": _diff(vec["float32"], vec["bf16"]),
            "distance_diff": _diff(f32.distances[METRIC].to_numpy(),
                                   b16.distances[METRIC].to_numpy()),
        },
    }
    if not args.no_train:
        tune = {p: c.replace(epochs=2, optimizer="sgd", learning_rate=1e-4)
                for p, c in cfg.items()}
        train: dict[str, Any] = {"setting": "N = 15, 2 epochs, SGD lr 1e-4, batch "
                                            f"{base.batch_size}, margin {base.margin}"}
        dists = {}
        for p in ("float32", "bf16"):
            out = args.work / f"train_{p}"
            s = _train(tune[p], args.pairs, args.data_root, out, cache)
            hist = pd.read_csv(out / "history.csv")
            dists[p] = pd.read_csv(out / "distances.csv")
            train[p] = {"seconds": round(s, 2), "loss": hist["loss"].tolist(),
                        "val_loss": hist["val_loss"].tolist() if "val_loss" in hist else None,
                        "test": _metrics(dists[p], pairs, tune[p])}
        train["distance_diff"] = _diff(dists["float32"][METRIC].to_numpy(),
                                       dists["bf16"][METRIC].to_numpy())
        report["finetune"] = train
    write_json(args.out, report)
    write_text(args.out.with_suffix(".md"), _markdown(report))
    print(json.dumps(report, indent=1))


def _markdown(r: dict[str, Any]) -> str:
    def row(name: str, m: dict[str, Any], s: float) -> str:
        ci = m["ci95"]
        cell = [f"{m[k]:.4f} [{ci[k][0]:.4f}, {ci[k][1]:.4f}]" if k in ci else f"{m[k]:.4f}"
                for k in ("auc", "eer", "fnmr_at_fmr_1pct")]
        return f"| {name} | {' | '.join(cell)} | {s:.1f} |"

    e = r["embed"]
    lines = [f"# bf16 vs float32 on this CPU ({r['machine']['cpu']})", "",
             f"{r['setup']['backbone']} ({r['setup']['weights']}, {r['setup']['face_box']} boxes) "
             f"on {e['metrics']['float32']['n_pairs']} test pairs of {r['setup']['data_root']} "
             f"({e['n_images']} images); {r['setup']['metric']}; 95% intervals: "
             f"{r['setup']['bootstrap']}.", "",
             "| pre-trained | AUC | EER | FNMR at FMR 1% | embed s |", "|---|---|---|---|---|"]
    lines += [row(p, e["metrics"][p], e["seconds"][p]) for p in ("float32", "bf16")]
    lines += ["", f"- max |embedding difference| {e['embedding_diff']['max_abs']:.3g} (mean "
                  f"{e['embedding_diff']['mean_abs']:.3g}); max |distance difference| "
                  f"{e['distance_diff']['max_abs']:.3g} (mean {e['distance_diff']['mean_abs']:.3g})",
              f"- embeddings {e['dtype']['bf16']} under bf16, largest |norm - 1| "
              f"{e['max_norm_error']['bf16']:.2g}; float32 twice byte-identical: "
              f"{e['float32_twice_byte_identical']}"]
    if "finetune" in r:
        f = r["finetune"]
        lines += ["", f"Fine-tuning ({f['setting']}):", "",
                  "| fine-tuned | AUC | EER | FNMR at FMR 1% | train s |", "|---|---|---|---|---|"]
        lines += [row(p, f[p]["test"], f[p]["seconds"]) for p in ("float32", "bf16")]
        lines += ["", *(f"- {p} losses per epoch: {', '.join(f'{x:.6f}' for x in f[p]['loss'])}"
                        for p in ("float32", "bf16")),
                  f"- max |test distance difference| {f['distance_diff']['max_abs']:.3g}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
