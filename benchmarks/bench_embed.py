"""Benchmark: embed each unique image once vs the thesis's forward pass per pair.

On the same pairs (default: 24 unique 224x224 images, 12 unmasked x 12 masked, 100 pairs drawn
from their 144 combinations, seeded), with a randomly initialised SENet50 (timing does not
depend on weight values):

- per-image path (the study's): image cache -> ``embed_images`` (each unique image once) ->
  ``pair_distances`` from the embeddings;
- per-pair path (the thesis's tf.data flow): ``thesis_style_pair_distances``, both images of
  every pair through the network, batch by batch (batch 32, as Table 4.3).

Both paths are warmed up first at every batch shape they use (tracing / XLA compiling is not
timed); the distances of the two paths are checked to agree. Also timed: building the image
cache from JPEG files (decode + resize, images/s) and ``pair_distances`` for 1M pairs from
embeddings (pairs/s). Writes a JSON with machine info (CPU count, platform, Keras backend,
devices, versions) and the speed ratio (per-pair time / per-image time, same pairs).

    python benchmarks/bench_embed.py                         # CPU, results/benchmarks/embed_cpu.json
    KERAS_BACKEND=jax python benchmarks/bench_embed.py --device-label h100 \\
        --unique 256 --pairs 2000 --repeats 3 --out results/benchmarks/embed_h100_jax.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from mfr.core.outputs import versions, write_json  # noqa: E402


def _devices() -> list[str]:
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices()]
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices()]
    except Exception as e:  # noqa: BLE001 - informational only
        return [f"unknown ({type(e).__name__})"]
    return []


def _machine(label: str) -> dict:
    import keras

    info = {
        "device_label": label,
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "keras_backend": keras.backend.backend(),
        "devices": _devices(),
        "versions": versions(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def _timed(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def _write_jpegs(root: Path, n_unmasked: int, n_masked: int, seed: int) -> tuple[list[str], list[str]]:
    from mfr.data.datasets.synthetic import face_jpeg

    u, m = [], []
    for side, n, masked, lst in (("u", n_unmasked, False, u), ("m", n_masked, True, m)):
        for i in range(n):
            rel = f"{side}/s{i:03d}/0000.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(face_jpeg(f"s{i:03d}", masked, size=250, seed=seed))
            lst.append(rel)
    return u, m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unique", type=int, default=24, help="unique images (half unmasked)")
    ap.add_argument("--pairs", type=int, default=100, help="pairs drawn from the combinations")
    ap.add_argument("--embed-batch-size", type=int, default=64)
    ap.add_argument("--pair-batch-size", type=int, default=32, help="the thesis's batch (32)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each path (median)")
    ap.add_argument("--distance-pairs", type=int, default=1_000_000)
    ap.add_argument("--distance-rows", type=int, default=2048, help="embeddings for that test")
    ap.add_argument("--device-label", default="cpu", help="e.g. h100, h200 (goes in the JSON)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", choices=("float32", "bf16", "tf32"), default="float32",
                    help="pinned and stated in the JSON (mfr.core.precision); on Ampere+ "
                         "GPUs float32 would otherwise run as TF32")
    ap.add_argument("--out", type=Path, default=None,
                    help="default results/benchmarks/embed_<device-label>.json")
    args = ap.parse_args(argv)
    out_path = args.out or ROOT / "results" / "benchmarks" / f"embed_{args.device_label}.json"

    import keras
    from thesis_style import thesis_style_pair_distances

    from mfr.backbones.vggface import senet50
    from mfr.data.image_cache import build_image_cache
    from mfr.evaluation.distances import METRICS, l2_normalize, pair_distances
    from mfr.evaluation.embeddings import embed_images

    n_u = args.unique // 2
    n_m = args.unique - n_u
    rng = np.random.default_rng(args.seed)
    combos = np.array([(i, j) for i in range(n_u) for j in range(n_m)])
    if args.pairs > len(combos):
        ap.error(f"--pairs {args.pairs} exceeds the {len(combos)} unmasked x masked combinations")
    pick = combos[np.sort(rng.choice(len(combos), size=args.pairs, replace=False))]

    from mfr.core.precision import apply_precision

    precision = apply_precision(args.precision)  # a process of its own: nothing to restore
    result: dict = {"machine": _machine(args.device_label), "settings": vars(args) | {"out": str(out_path)},
                    "precision": precision}
    with tempfile.TemporaryDirectory(prefix="bench_embed_") as tmp:
        tmp = Path(tmp)
        u_paths, m_paths = _write_jpegs(tmp / "data", n_u, n_m, args.seed)
        t = time.perf_counter()
        cache = build_image_cache(tmp / "data", u_paths + m_paths, tmp / "cache", progress=False)
        t_cache = time.perf_counter() - t
        images = np.asarray(cache.images)
        u_idx = cache.index_of([u_paths[i] for i in pick[:, 0]])
        m_idx = cache.index_of([m_paths[j] for j in pick[:, 1]])
        used = np.unique(np.concatenate([u_idx, m_idx]))
        result["image_cache"] = {"images": len(cache), "seconds": t_cache,
                                 "images_per_s": len(cache) / t_cache}

    keras.utils.set_random_seed(args.seed)
    t = time.perf_counter()
    model = senet50(weights=None)
    t_build = time.perf_counter() - t

    # Per-image path: embed the unique images of the pairs once, distances by lookup.
    def per_image():
        emb = embed_images(model, images, batch_size=args.embed_batch_size, progress=False,
                           rows=used)
        remap = np.full(len(images), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        return pair_distances(emb, remap[u_idx], remap[m_idx])

    # Per-pair path: both images of every pair through the network (the thesis's flow).
    iu, im = images[u_idx], images[m_idx]

    def per_pair():
        return thesis_style_pair_distances(model, iu, im, batch_size=args.pair_batch_size)

    t = time.perf_counter()
    per_image()  # warm-up: traces / compiles every batch shape used
    per_pair()
    t_warm = time.perf_counter() - t
    img_times, d_img = _timed(per_image, args.repeats)
    pair_times, d_pair = _timed(per_pair, args.repeats)
    t_img, t_pair = statistics.median(img_times), statistics.median(pair_times)
    n_pairs, n_unique = len(u_idx), len(used)
    result["embedding"] = {
        "unique_images": int(n_unique),
        "pairs": int(n_pairs),
        "forward_passes_per_image_path": int(n_unique),
        "forward_passes_per_pair_path": int(2 * n_pairs),
        "model_build_s": t_build,
        "warmup_s": t_warm,
        "per_image_path": {"seconds": t_img, "all_seconds": img_times,
                           "images_per_s": n_unique / t_img, "pairs_per_s": n_pairs / t_img},
        "per_pair_path": {"seconds": t_pair, "all_seconds": pair_times,
                          "images_per_s": 2 * n_pairs / t_pair, "pairs_per_s": n_pairs / t_pair},
        "speed_ratio_per_pair_over_per_image": t_pair / t_img,
        "max_abs_distance_difference": float(np.max(np.abs(d_img - d_pair))),
        "note": "same pairs, same model; times exclude decoding (both read the image cache) "
                "and tracing/compilation (warm-up at every batch shape first)",
    }

    # Pair distances from embeddings: 1M pairs.
    drng = np.random.default_rng(args.seed + 1)
    emb = l2_normalize(drng.normal(size=(args.distance_rows, 2048)).astype(np.float32))
    du = drng.integers(0, args.distance_rows, args.distance_pairs)
    dm = drng.integers(0, args.distance_rows, args.distance_pairs)
    dist = {}
    for metric in METRICS:
        t = time.perf_counter()
        pair_distances(emb, du, dm, metric)
        s = time.perf_counter() - t
        dist[metric] = {"seconds": s, "pairs_per_s": args.distance_pairs / s}
    t = time.perf_counter()
    pair_distances(emb, du, dm, "sum_squared", dtype=np.float32)
    s = time.perf_counter() - t
    dist["sum_squared_float32"] = {"seconds": s, "pairs_per_s": args.distance_pairs / s}
    result["pair_distances"] = {"pairs": args.distance_pairs, "embedding_rows": args.distance_rows,
                                "dim": 2048, "by_metric": dist}

    write_json(out_path, result)
    e = result["embedding"]
    print(f"[{args.device_label}, {result['machine']['keras_backend']}] {n_unique} unique images, "
          f"{n_pairs} pairs\n"
          f"  per-image path: {t_img:.2f} s ({e['per_image_path']['images_per_s']:.1f} images/s, "
          f"{e['per_image_path']['pairs_per_s']:.1f} pairs/s)\n"
          f"  per-pair path:  {t_pair:.2f} s ({e['per_pair_path']['pairs_per_s']:.1f} pairs/s)\n"
          f"  ratio per-pair / per-image: {e['speed_ratio_per_pair_over_per_image']:.2f}x; "
          f"max |d diff| {e['max_abs_distance_difference']:.2e}\n"
          f"  image cache: {result['image_cache']['images_per_s']:.0f} images/s; "
          f"pair distances (sum_squared, float64): "
          f"{dist['sum_squared']['pairs_per_s']:.3g} pairs/s\n"
          f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
