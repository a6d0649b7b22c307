"""Benchmark: dlib's face ResNet ported to Keras 3 (batched) vs dlib's own per-image descriptor.

On the same aligned 150x150 chips of real photos (default 200: the 134 MFR2 photos of
../shared/data/mfr2-dev, then RMFRD masked and unmasked photos of ../shared/data/rmfrd-dev, 33
each, in sorted order; ``mfr.backbones.dlib_chips.face_chips``, box "crop" by default since
these photos are face crops already, so the chips are the same under every backend), in one
process on the same CPU:

- dlib: ``face_recognition_model_v1.compute_face_descriptor(chip, 0)``, one call per image
  (as ``mfr.backbones.embedders.dlib_reference`` and face_recognition use it); also dlib's own batched call
  (a list of chips in one call) for reference;
- the port: ``build_dlib_resnet()``, ``predict_on_batch`` over batches of 32 and 64
  (preprocessing included in the timing), every batch shape warmed up first.

Each path is timed ``--repeats`` times (median reported); process CPU time over wall time is
reported beside, as the number of cores a path kept busy. Also recorded: exactness of the port
against dlib over all the images (min cosine, max |difference|), the backend, the thread
settings, versions and the CPU model. Merges its entry into the JSON, keyed by backend (and
``_threads<n>`` when ``--threads`` is given).

    python benchmarks/bench_dlib_port.py                 # results/benchmarks/dlib_port_speed.json
    python benchmarks/bench_dlib_port.py --threads 1    # the port on one thread, as dlib runs
    KERAS_BACKEND=jax python benchmarks/bench_dlib_port.py
"""

from __future__ import annotations

import argparse
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

DATA = ROOT.parent / "shared" / "data"
RMFRD = DATA / "rmfrd-dev" / "self-built-masked-face-recognition-dataset"


def _photos(n: int) -> list[Path]:
    mfr2 = sorted((DATA / "mfr2-dev" / "mfr2").glob("*/*.png"))
    rest = max(n - len(mfr2), 0)
    masked = sorted((RMFRD / "AFDB_masked_face_dataset").glob("*/*"))[: (rest + 1) // 2]
    unmasked = sorted((RMFRD / "AFDB_face_dataset").glob("*/*"))[: rest // 2]
    return (mfr2 + masked + unmasked)[:n]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _threads(n: int | None) -> dict:
    """Set (TensorFlow) and state the port's thread settings; must run before any op."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if n:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
        return {"tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                "note": "0 means TensorFlow's default (all CPUs)",
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset")}
    return {"xla_flags": os.environ.get("XLA_FLAGS", "unset"),
            "note": "XLA's CPU default: one intra-op pool over all CPUs"}


def _timed(fn, repeats: int) -> tuple[dict, object]:
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {"seconds": walls, "median_s": statistics.median(walls),
            "cores_busy": round(statistics.median(cpus) / statistics.median(walls), 2)}, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--box", choices=("crop", "mtcnn"), default="crop")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="TensorFlow intra/inter-op threads (default: TF's own)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "dlib_port_speed.json")
    args = ap.parse_args(argv)

    import dlib
    import keras
    from PIL import Image

    from mfr.backbones.dlib_chips import face_chips
    from mfr.backbones.dlib_network import build_dlib_resnet, preprocess_dlib
    from mfr.backbones.dlib_resnet import BACKBONE, default_weights_path

    threads = _threads(args.threads)
    files = _photos(args.images)
    if len(files) < args.images:
        print(f"only {len(files)} photos under {DATA}", file=sys.stderr)
        return 2
    t = time.perf_counter()
    chips, flags = face_chips([np.asarray(Image.open(f).convert("RGB")) for f in files], box=args.box)
    chips_s = time.perf_counter() - t
    ok = ~flags["failed"]
    chips = chips[ok]
    n = len(chips)

    encoder = dlib.face_recognition_model_v1(str(default_weights_path()))
    chip_list = [np.ascontiguousarray(c) for c in chips]

    def dlib_per_image():
        return np.stack([np.asarray(encoder.compute_face_descriptor(c, 0)) for c in chip_list])

    def dlib_batched():
        return np.asarray([np.asarray(v) for v in encoder.compute_face_descriptor(chip_list, 0)])

    dlib_per_image()  # warm-up (first-call allocations)
    dlib_timing, ref = _timed(dlib_per_image, args.repeats)
    dlib_batch_timing, ref_b = _timed(dlib_batched, args.repeats)

    model = build_dlib_resnet()

    def port(bs: int):
        return np.concatenate([np.asarray(model.predict_on_batch(preprocess_dlib(chips[i:i + bs])))
                               for i in range(0, n, bs)])

    port_timings, out = {}, None
    for bs in args.batch_sizes:
        port(bs)  # warm-up: traces/compiles every batch shape (bs and the remainder)
        timing, out = _timed(lambda bs=bs: port(bs), args.repeats)
        timing["images_per_s"] = round(n / timing["median_s"], 2)
        timing["speedup_vs_dlib_per_image"] = round(dlib_timing["median_s"] / timing["median_s"], 2)
        port_timings[str(bs)] = timing
    dlib_timing["images_per_s"] = round(n / dlib_timing["median_s"], 2)
    dlib_batch_timing["images_per_s"] = round(n / dlib_batch_timing["median_s"], 2)

    out64, ref64 = out.astype(np.float64), ref.astype(np.float64)
    cos = (out64 * ref64).sum(1) / np.linalg.norm(out64, axis=1) / np.linalg.norm(ref64, axis=1)
    diff = np.abs(out64 - ref64)
    backend = keras.backend.backend()
    entry = {
        "backend": backend,
        "images": {"n_photos": len(files), "n_chips": n, "n_failed": int((~ok).sum()),
                   "n_no_face_detected": int(flags["no_face_detected"].sum()), "box": args.box,
                   "sources": "134 MFR2 (mfr2-dev), then RMFRD AFDB masked / unmasked (rmfrd-dev), sorted",
                   "chips_seconds": round(chips_s, 2)},
        "dlib_per_image": dlib_timing,
        "dlib_batched_list": dlib_batch_timing,
        "port_batched": port_timings,
        "exactness": {"min_cosine": float(cos.min()), "one_minus_min_cosine": float(1 - cos.min()),
                      "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                      "dlib_batched_vs_per_image_max_abs_diff": float(np.abs(ref_b - ref).max())},
        "threads": {"port": threads,
                    "dlib": f"dlib-bin {dlib.__version__}: DLIB_USE_BLAS={dlib.DLIB_USE_BLAS}, "
                            f"DLIB_USE_CUDA={dlib.DLIB_USE_CUDA}; its own CPU code (see cores_busy)"},
        "machine": {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
                    "affinity_cpus": len(os.sched_getaffinity(0)), "platform": platform.platform()},
        "versions": {**versions(), "dlib": dlib.__version__, "keras": keras.__version__},
        "model": {"label": BACKBONE.facts.label, "n_layers": BACKBONE.facts.n_layers,
                  "file": BACKBONE.facts.weights.files[0].name},
    }
    try:
        import jax

        entry["versions"]["jax"] = jax.__version__
    except ImportError:
        pass
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    key = backend + (f"_threads{args.threads}" if args.threads else "")
    results[key] = entry
    write_json(args.out, results)
    print(json.dumps({k: entry[k] for k in ("backend", "exactness")}, indent=1))
    print({"dlib_per_image_ips": dlib_timing["images_per_s"],
           "dlib_batched_ips": dlib_batch_timing["images_per_s"],
           **{f"port_bs{k}_ips": v["images_per_s"] for k, v in port_timings.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
