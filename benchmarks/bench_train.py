"""Benchmark Siamese training: the trunk cache vs the thesis-style path (both full twins per
pair, every step), per N and over the whole sweep (issue 4).

Images are random uint8 arrays and the network has random weights: the timing of a step does
not depend on the values. ``--scale table42`` is Table 4.2's size (42,904 / 10,726 / 18,190
train / val / test pairs over 10,598 unique images, 8 epochs, N = 10..70); ``--scale
cpu-small`` is a small version for a CPU. Run under ``KERAS_BACKEND=jax`` on a GPU::

    KERAS_BACKEND=jax python benchmarks/bench_train.py --scale table42 \\
        --thesis-style-n 10,70 --thesis-style-fraction 0.125 --thesis-style-epochs 2

The thesis-style sweep at full scale takes ~20 minutes on one H100/H200; it can be measured
on a fraction of the pairs, for 2 epochs, for some N, and extrapolated: per-pair time from the
second epoch on (steady state), compile time once, other N linearly interpolated. Every
extrapolated figure is marked so in the JSON (``"extrapolated": true`` with the method).
Per-setting wall time = trunk features (or preprocessing) + training + validation each epoch +
test embeddings. The random network is built once (counted in the cached sweep total) and its
weights reset before each setting.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCALES = {
    # unmasked / masked images of train+val and of test; pairs; epochs; N values
    "table42": dict(images=(7034, 1343, 1766, 455), pairs=(42904, 10726, 18190), epochs=8,
                    ns=(10, 20, 30, 40, 50, 60, 70)),
    # each image in ~11 train pairs per epoch (Table 4.2: ~10), so the cache has work to save
    "cpu-small": dict(images=(8, 4, 4, 2), pairs=(96, 24, 24), epochs=2, ns=(10, 40, 70)),
}


def make_data(images, pairs, seed=0):
    """Random images and random pairs (half genuine labels) over them, Table 4.2's layout."""
    ut, mt, us, ms = images
    n_img = ut + mt + us + ms
    rng = np.random.default_rng(seed)
    imgs = np.empty((n_img, 224, 224, 3), np.uint8)
    for s in range(0, n_img, 512):
        imgs[s:s + 512] = rng.integers(0, 256, size=(min(512, n_img - s), 224, 224, 3),
                                       dtype=np.uint8)

    def pairset(n, u0, nu, m0, nm):
        from mfr.data.pairs import PairSet

        return PairSet(u0 + rng.integers(0, nu, n), m0 + rng.integers(0, nm, n),
                       (np.arange(n) % 2).astype(np.int64))

    tr = pairset(pairs[0], 0, ut, ut, mt)
    va = pairset(pairs[1], 0, ut, ut, mt)
    te = pairset(pairs[2], ut + mt, us, ut + mt + us, ms)
    return imgs, tr, va, te


def device_name() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return f"{d.platform}:{d.device_kind}"
    return f"cpu:{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def subset(p, fraction, seed=1):
    from mfr.data.pairs import PairSet

    n = max(1, int(round(len(p) * fraction)))
    idx = np.random.default_rng(seed).permutation(len(p))[:n]
    return PairSet(p.u_idx[idx], p.m_idx[idx], p.labels[idx])


_CORE: dict = {}


def fresh_core(seed):
    """The same random SENet50 for every setting: built once, its weights reset after each."""
    import keras

    from mfr.backbones.vggface import senet50

    if "core" not in _CORE:
        keras.utils.set_random_seed(seed)
        core = senet50(weights=None)
        _CORE.update(core=core, weights=[keras.ops.convert_to_numpy(w) for w in core.weights])
    core = _CORE["core"]
    for v, a in zip(core.weights, _CORE["weights"], strict=True):
        v.assign(a)
    return core


def run_setting(n, imgs, tr, va, te, cfg, seed):
    from mfr.training.fit import train_siamese

    t0 = time.perf_counter()
    core = fresh_core(seed)
    build_s = time.perf_counter() - t0
    res = train_siamese(core, n, imgs, tr, va, te, config=cfg, progress=False)
    t = res.timings
    fit, val = list(t["fit_s"]), list(t.get("val_s", [0.0] * len(t["fit_s"])))
    out = {
        "n": n, "path": res.path, "trainable_params": res.trainable_params,
        "n_train": len(tr), "n_val": len(va), "epochs": cfg.epochs,
        "steps_per_execution": cfg.steps_per_execution, "engine": res.engine,
        "build_s": build_s, "table_s": t["table_s"], "table_gb": t["table_bytes"] / 1e9,
        "fit_s": fit, "val_s": val, "test_s": t.get("test_s", 0.0),
    }
    out["setting_s"] = t["table_s"] + sum(fit) + sum(val) + out["test_s"]
    steady = fit[1:] or fit
    out["steady_pairs_per_s"] = len(tr) / float(np.mean(steady))
    out["first_epoch_pairs_per_s"] = len(tr) / fit[0]
    del res, core
    gc.collect()
    return out


def extrapolate(m, n_train, n_val, epochs):
    """A thesis-style setting measured on fewer pairs/epochs -> the full setting's wall time."""
    fit, val = m["fit_s"], m["val_s"]
    steady_fit = float(np.mean(fit[1:])) if len(fit) > 1 else fit[0]
    steady_val = float(np.mean(val[1:])) if len(val) > 1 else val[0]
    compile_s = max(fit[0] - steady_fit, 0.0) + max(val[0] - steady_val, 0.0)
    train = epochs * steady_fit * n_train / m["n_train"]
    valid = epochs * steady_val * n_val / m["n_val"]
    return m["table_s"] + compile_s + train + valid + m["test_s"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu-small")
    ap.add_argument("--n", default=None, help="comma list of N (default: the scale's)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps-per-execution", type=int, default=None,
                    help="SGD steps per compiled call (the same steps). Default 1 on a CPU; on "
                         "a GPU, by the weight of a step: cached N<=10: 32, N<=30: 8, else 2; "
                         "thesis-style 1 (a full forward per step: dispatch is negligible, and "
                         "unrolling it only lengthens compilation)")
    ap.add_argument("--embed-batch-size", type=int, default=None,
                    help="images per trunk/embedding batch (default 512 on a GPU, 16 on CPU)")
    ap.add_argument("--thesis-style-n", default=None,
                    help="N values to measure thesis-style (default: all); others interpolated")
    ap.add_argument("--thesis-style-epochs", type=int, default=None,
                    help="epochs measured thesis-style (>= 2 to extrapolate; default: all)")
    ap.add_argument("--thesis-style-fraction", type=float, default=1.0,
                    help="fraction of train/val pairs measured thesis-style (extrapolated)")
    ap.add_argument("--skip-thesis-style", action="store_true")
    ap.add_argument("--seed", type=int, default=2021)
    ap.add_argument("--label", default=None)
    ap.add_argument("--precision", choices=("float32", "bf16", "tf32"), default="float32",
                    help="pinned and stated in the JSON (mfr.core.precision); on Ampere+ "
                         "GPUs float32 would otherwise run as TF32")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    args = ap.parse_args(argv)

    import keras

    from mfr.core.config import StudyConfig
    from mfr.core.outputs import versions, write_json
    from mfr.core.precision import apply_precision

    precision = apply_precision(args.precision)  # a process of its own: nothing to restore
    sc = SCALES[args.scale]
    ns = tuple(int(v) for v in args.n.split(",")) if args.n else sc["ns"]
    epochs = args.epochs or sc["epochs"]
    dev = device_name()
    gpu = dev.startswith(("gpu", "cuda", "rocm"))
    def spe_for(n, cached):
        if args.steps_per_execution:
            return args.steps_per_execution
        if not gpu or not cached:
            return 1
        return 32 if n <= 10 else 8 if n <= 30 else 2

    spe = "per setting" if args.steps_per_execution is None else args.steps_per_execution
    ebs = args.embed_batch_size or (512 if gpu else 16)
    print(f"device {dev}, backend {keras.backend.backend()}, scale {args.scale}, N {ns}, "
          f"epochs {epochs}, steps_per_execution {spe}", flush=True)
    t = time.perf_counter()
    imgs, tr, va, te = make_data(sc["images"], sc["pairs"], args.seed)
    print(f"data: {len(imgs)} images, {len(tr)}/{len(va)}/{len(te)} pairs "
          f"({time.perf_counter() - t:.1f}s)", flush=True)
    base = StudyConfig(epochs=epochs, batch_size=args.batch_size, embed_batch_size=ebs,
                       seed=args.seed, weights=None, precision=args.precision)

    cached = []
    t_sweep = time.perf_counter()
    for n in ns:
        m = run_setting(n, imgs, tr, va, te, base.replace(
            trunk_cache=True, steps_per_execution=spe_for(n, True)), args.seed)
        cached.append(m)
        print(f"cached N={n}: {m['setting_s']:.1f}s (trunk {m['table_s']:.1f}s, "
              f"{m['steady_pairs_per_s']:.0f} pairs/s)", flush=True)
    cached_sweep_s = time.perf_counter() - t_sweep

    thesis, thesis_est = [], {}
    if not args.skip_thesis_style:
        tns = tuple(int(v) for v in args.thesis_style_n.split(",")) if args.thesis_style_n \
            else ns
        t_ep = args.thesis_style_epochs or epochs
        frac = args.thesis_style_fraction
        tr_s, va_s = (subset(tr, frac), subset(va, frac, 2)) if frac < 1 else (tr, va)
        for n in tns:
            m = run_setting(n, imgs, tr_s, va_s, te,
                            base.replace(trunk_cache=False, epochs=t_ep,
                                         steps_per_execution=spe_for(n, False)), args.seed)
            m["full_setting_s"] = extrapolate(m, len(tr), len(va), epochs)
            m["extrapolated"] = bool(frac < 1 or t_ep < epochs)
            thesis.append(m)
            print(f"thesis-style N={n}: measured {m['setting_s']:.1f}s, full setting "
                  f"{'~' if m['extrapolated'] else ''}{m['full_setting_s']:.1f}s "
                  f"({m['steady_pairs_per_s']:.0f} pairs/s)", flush=True)
        xs = [m["n"] for m in thesis]
        ys = [m["full_setting_s"] for m in thesis]
        for n in ns:
            thesis_est[n] = float(np.interp(n, xs, ys))

    per_n = []
    for m in cached:
        row = {"n": m["n"], "cached_setting_s": m["setting_s"],
               "cached_pairs_per_s": m["steady_pairs_per_s"]}
        if thesis_est:
            measured = next((t for t in thesis if t["n"] == m["n"]), None)
            row["thesis_style_setting_s"] = thesis_est[m["n"]]
            row["thesis_style_extrapolated"] = measured is None or measured["extrapolated"]
            if measured is not None:
                row["thesis_style_pairs_per_s"] = measured["steady_pairs_per_s"]
            row["speedup"] = thesis_est[m["n"]] / m["setting_s"]
        per_n.append(row)
    result = {
        "benchmark": "train", "scale": args.scale, "device": dev,
        "backend": keras.backend.backend(), "versions": versions(), "precision": precision,
        "config": {"epochs": epochs, "batch_size": args.batch_size, "steps_per_execution": spe,
                   "embed_batch_size": ebs, "ns": list(ns), "images": len(imgs),
                   "pairs": [len(tr), len(va), len(te)], "weights": "random (timing only)"},
        "cached": cached, "thesis_style": thesis, "per_n": per_n,
        "cached_sweep_s": cached_sweep_s,
    }
    if thesis_est:
        total_thesis = float(sum(thesis_est[n] for n in ns))
        total_cached = float(sum(m["setting_s"] for m in cached))
        result["thesis_style_sweep_s"] = total_thesis
        result["thesis_style_sweep_extrapolated"] = any(r["thesis_style_extrapolated"]
                                                        for r in per_n)
        result["thesis_style_method"] = (
            f"measured on {args.thesis_style_fraction:g} of the train/val pairs for "
            f"{args.thesis_style_epochs or epochs} epochs at N={list(xs)}; full setting = trunk/"
            f"preprocessing + compile (first epoch - steady epoch) + epochs x steady epoch x "
            f"pairs ratio + validation likewise + test embeddings; other N interpolated linearly")
        result["sweep_speedup"] = total_thesis / total_cached
        result["targets"] = {
            "cached_sweep_le_300s": cached_sweep_s <= 300,
            "sweep_speedup_ge_3": result["sweep_speedup"] >= 3,
            "n10_speedup_ge_20": next((r["speedup"] >= 20 for r in per_n if r["n"] == 10), None),
        }
    label = args.label or f"{args.scale}_{keras.backend.backend()}_" + \
        "".join(c if c.isalnum() else "-" for c in dev.split(":", 1)[-1].lower())[:40].strip("-")
    if args.label is None and args.precision != "float32":
        label += f"_{args.precision}"
    path = write_json(args.out / f"train_{label}.json", result)
    print(f"cached sweep {cached_sweep_s:.1f}s"
          + (f"; thesis-style sweep {'~' if result['thesis_style_sweep_extrapolated'] else ''}"
             f"{result['thesis_style_sweep_s']:.1f}s; speedup {result['sweep_speedup']:.1f}x"
             if thesis_est else "") + f"; wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
