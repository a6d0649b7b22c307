"""Benchmark: InsightFace's MobileFaceNet ported to Keras 3 (batched) vs ncnn (per image).

On the same real photos, in one process on the same CPU: all of ../shared/data/mlfw-dev/val
(1,207 JPEGs, 112x112, already aligned to ArcFace's template; sorted; ``--images`` limits it):

- ncnn (PyPI ``ncnn``) on ``mobilefacenet.param/.bin``, one image per call, float32 CPU only
  (:data:`mfr.backbones.embedders.ncnn_mobilefacenet.NCNN_OFF`), with 1 and 2 threads
  (``--ncnn-threads``);
- the port (:func:`mfr.backbones.mobilefacenet.load_mxnet_mobilefacenet` from the MXNet
  release), ``predict_on_batch`` over batches of ``--batch-size`` (64) float32 images, the
  uint8 -> float32 conversion included, every batch shape warmed up first;
- the port built with ncnn's printed scale, 0.007812 instead of 0.0078125 (exactness only): what
  that one constant accounts for in the port-vs-ncnn difference.

Each path is timed ``--repeats`` times (median reported); process CPU time over wall time is
reported beside, as the number of cores a path kept busy. Exactness: per-image cosine and
max |difference| of the raw 128-d embeddings, port vs ncnn. Verification: every pair of the
photos (genuine = same person; mlfw-dev has no mask flag, so this is all pairs, mostly masked
faces, not masked-vs-unmasked), the thesis's distance (sum of squared differences of unit
vectors), :func:`mfr.evaluation.metrics.verification_metrics` for port and ncnn. Merges its
entry into the JSON, keyed by backend.

    python benchmarks/bench_mobilefacenet.py        # results/benchmarks/mobilefacenet_cpu.json
    KERAS_BACKEND=jax python benchmarks/bench_mobilefacenet.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from mfr.core.outputs import versions, write_json  # noqa: E402

SHARED = ROOT.parent / "shared"
VAL = SHARED / "data" / "mlfw-dev" / "val"
MODELS = SHARED / "models" / "insightface-mobilefacenet"


def _timed(fn, repeats: int) -> tuple[dict, object]:
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {"seconds": [round(w, 4) for w in walls], "median_s": statistics.median(walls),
            "cpu_seconds": [round(c, 4) for c in cpus],
            "cores_busy": round(statistics.median(cpus) / statistics.median(walls), 2)}, out


def _rates(timing: dict, n: int) -> dict:
    """images/s of wall time, and per CPU-second (less sensitive to other processes sharing
    the cores, which the wall rate is not)."""
    timing["images_per_s"] = round(n / timing["median_s"], 2)
    timing["images_per_cpu_s"] = round(n / statistics.median(timing["cpu_seconds"]), 2)
    return timing


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _exactness(out: np.ndarray, ref: np.ndarray) -> dict:
    cos = _cosine(out, ref)
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    return {"min_cosine": float(cos.min()), "median_cosine": float(np.median(cos)),
            "one_minus_min_cosine": float(1 - cos.min()),
            "one_minus_median_cosine": float(1 - np.median(cos)),
            "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "raw_norms_min_max": [float(np.linalg.norm(ref, axis=1).min()),
                                  float(np.linalg.norm(ref, axis=1).max())]}


def _verification(emb: np.ndarray, people: list[str]) -> dict:
    from mfr.evaluation.distances import l2_normalize, pair_distances
    from mfr.evaluation.metrics import verification_metrics

    u, m = np.triu_indices(len(people), k=1)
    ids = np.unique(people, return_inverse=True)[1]
    labels = (ids[u] == ids[m]).astype(np.int64)
    d = pair_distances(l2_normalize(emb), u, m, "sum_squared")
    out = verification_metrics(d, labels)
    return {k: out[k] for k in ("n_pairs", "n_genuine", "n_impostor", "auc", "eer",
                                "fnmr_at_fmr_1pct", "fnmr_at_fmr_0_1pct")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=0, help="first N photos (0: all)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--ncnn-threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "results" / "benchmarks" / "mobilefacenet_cpu.json")
    args = ap.parse_args(argv)

    import keras
    import ncnn
    from PIL import Image

    from mfr.backbones.embedders.ncnn_mobilefacenet import NCNN_OFF, ncnn_embed, ncnn_net
    from mfr.backbones.formats.mxnet import read_params, read_symbol
    from mfr.backbones.formats.mxnet_keras import build_keras_model
    from mfr.core.numerics import numerics

    files = sorted(VAL.glob("*/*.jpg"))
    if args.images:
        files = files[: args.images]
    if not files:
        print(f"no photos under {VAL}", file=sys.stderr)
        return 2
    images, people, skipped = [], [], []
    for f in files:
        try:
            img = np.asarray(Image.open(f).convert("RGB"))
        except OSError as e:
            skipped.append(f"{f.relative_to(VAL)}: {e}")
            continue
        if img.shape != (112, 112, 3):
            skipped.append(f"{f.relative_to(VAL)}: {img.shape}, not 112x112x3")
            continue
        images.append(img)
        people.append(f.parent.name)
    x = np.stack(images)
    n = len(x)
    load_start = [round(v, 2) for v in os.getloadavg()]

    param, bin_path = MODELS / "mobilefacenet.param", MODELS / "mobilefacenet.bin"
    ncnn_timings, refs = {}, {}
    for threads in args.ncnn_threads:
        net = ncnn_net(param, bin_path, threads)
        ncnn_embed(x[:8], param, bin_path, net=net)  # warm-up
        timing, refs[threads] = _timed(lambda net=net: ncnn_embed(x, param, bin_path, net=net),
                                       args.repeats)
        ncnn_timings[f"threads_{threads}"] = _rates(timing, n)
    ref = refs[args.ncnn_threads[0]]

    graph, params = read_symbol(MODELS / "model-symbol.json"), read_params(MODELS / "model-0000.params")
    t = time.perf_counter()
    model = build_keras_model(graph, params, name="mobilefacenet")
    build_s = time.perf_counter() - t
    bs = args.batch_size

    def port(m=model):
        return np.concatenate([np.asarray(keras.ops.convert_to_numpy(
            m.predict_on_batch(x[i:i + bs].astype(np.float32)))) for i in range(0, n, bs)])

    port()  # warm-up: traces/compiles every batch shape (bs and the remainder)
    port_timing, out = _timed(port, args.repeats)
    _rates(port_timing, n)["batch_size"] = bs

    # the same port with ncnn's printed scale: what 0.007812 accounts for
    nodes = [dataclasses.replace(nd, attrs={**nd.attrs, "scalar": "0.007812"})
             if nd.op == "_mul_scalar" else nd for nd in graph.nodes]
    scaled = build_keras_model(dataclasses.replace(graph, nodes=nodes), params, name="scaled")
    out_scaled = port(scaled)

    backend = keras.backend.backend()
    threads_note = ({"tf_intra_op": __import__("tensorflow").config.threading
                     .get_intra_op_parallelism_threads(), "note": "0: TensorFlow's default (all CPUs)"}
                    if backend == "tensorflow" else
                    {"xla_flags": os.environ.get("XLA_FLAGS", "unset"),
                     "note": "XLA's CPU default: one intra-op pool over all CPUs"})
    entry = {
        "backend": backend,
        "images": {"n": n, "skipped": skipped, "people": len(set(people)),
                   "source": "mlfw-dev/val (../shared/data), sorted; 112x112 aligned JPEGs"},
        "ncnn_per_image": ncnn_timings,
        "port_batched": port_timing,
        "port_build_seconds": round(build_s, 2),
        "exactness_port_vs_ncnn": _exactness(out, ref),
        "exactness_port_with_ncnn_scale_vs_ncnn": _exactness(out_scaled, ref),
        "exactness_port_vs_port_with_ncnn_scale": _exactness(out_scaled, out),
        "ncnn_threads_agree_max_abs_diff": float(max(np.abs(r - ref).max() for r in refs.values())),
        "verification_all_pairs": {"port": _verification(out, people),
                                   "ncnn": _verification(ref, people)},
        "threads": {"port": threads_note,
                    "ncnn": f"ncnn {ncnn.__version__}: opt.num_threads as keyed; "
                            f"{', '.join(NCNN_OFF)} off"},
        "machine": {**numerics(), "affinity_cpus": len(os.sched_getaffinity(0)),
                    "platform": platform.platform(),
                    "load_average_1_5_15min": {"start": load_start,
                                               "end": [round(v, 2) for v in os.getloadavg()]}},
        "versions": {**versions(), "keras": keras.__version__, "ncnn": ncnn.__version__},
        "model": {"n_layers": len(model.layers), "n_params": int(model.count_params()),
                  "file": "InsightFace model-y1-test2 (model-symbol.json, model-0000.params)"},
    }
    v = entry["verification_all_pairs"]
    v["auc_difference"] = abs(v["port"]["auc"] - v["ncnn"]["auc"])
    v["eer_difference"] = abs(v["port"]["eer"] - v["ncnn"]["eer"])
    try:
        import jax

        entry["versions"]["jax"] = jax.__version__
    except ImportError:
        pass
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[backend] = entry
    write_json(args.out, results)
    print(json.dumps({k: entry[k] for k in ("backend", "exactness_port_vs_ncnn",
                                            "exactness_port_with_ncnn_scale_vs_ncnn",
                                            "verification_all_pairs")}, indent=1))
    print({"port_ips": port_timing["images_per_s"],
           **{f"ncnn_{k}_ips": t["images_per_s"] for k, t in ncnn_timings.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
