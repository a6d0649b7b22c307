"""Benchmark: TensorFlow's oneDNN kernels on vs off, on this CPU: speed and how far results move.

TensorFlow turns oneDNN on by default on CPUs with AVX-512 VNNI/BF16 or AMX
(:mod:`mfr.core.numerics`); ``TF_ENABLE_ONEDNN_OPTS=1`` forces it on any x86 CPU, ``=0`` off. Each
setting runs twice, each run in a fresh process (the setting is read once, at import):

- embedding: a seeded random SENet50 (the thesis's network; timing and float order do not
  depend on the weight values) on drawn faces, batched, timed after a warm-up; and the
  pre-trained dlib ResNet port (:mod:`mfr.backbones.dlib_resnet`) on real photo chips from
  ``../shared/data`` when present;
- fine-tuning: ``train_siamese`` on those drawn faces, N = 30, the thesis's SGD at lr 1e-5
  (Adam on random weights amplifies float-order noise; see README), 2 epochs, losses per epoch.

Reports throughput per setting, whether the two runs of one setting are byte-identical, and the
largest differences between settings (embeddings, distances, losses).

    python benchmarks/bench_onednn.py     # -> results/benchmarks/onednn_cpu.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _drawn(n_subjects: int, size: int = 224):
    from mfr.data.datasets.synthetic import draw_face

    imgs = [np.asarray(draw_face(f"s{s:02d}", masked, size, variant=v))
            for s in range(n_subjects) for masked in (False, True) for v in range(2)]
    return np.stack(imgs).astype(np.uint8)


def _real_chips(limit: int):
    from PIL import Image

    from mfr.backbones.dlib_chips import face_chips

    files = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".png"))[:limit]
    imgs = np.stack([np.asarray(Image.open(p).convert("RGB").resize((160, 160))) for p in files])
    chips, _ = face_chips(imgs, box="crop")
    return chips


def _timed(fn, repeats: int):
    fn()  # warm-up: tracing and kernel selection are not timed
    secs = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        secs.append(time.perf_counter() - t)
    return out, float(np.median(secs))


def worker(out: Path, n_subjects: int, repeats: int, epochs: int) -> None:
    import keras

    from mfr.backbones.vggface import senet50
    from mfr.core.config import StudyConfig
    from mfr.core.numerics import onednn_setting
    from mfr.data.pairs import PairSet
    from mfr.evaluation.embeddings import embed_images
    from mfr.training.fit import train_siamese

    imgs = _drawn(n_subjects)
    keras.utils.set_random_seed(2021)
    core = senet50(weights=None)
    emb, embed_s = _timed(lambda: embed_images(core, imgs, batch_size=16, progress=False),
                          repeats)
    res: dict = {"setting": onednn_setting(), "embed_images": len(imgs),
                 "embed_images_per_s": len(imgs) / embed_s}
    arrays = {"senet50_embeddings": emb}
    if SHARED.is_dir():
        from mfr.backbones.dlib_network import build_dlib_resnet, preprocess_dlib

        chips = _real_chips(64)
        net = build_dlib_resnet()
        d, dlib_s = _timed(lambda: np.asarray(net.predict(preprocess_dlib(chips), batch_size=32,
                                                          verbose=0)), repeats)
        arrays["dlib_port_descriptors"] = d
        res.update(dlib_chips=len(chips), dlib_port_images_per_s=len(chips) / dlib_s)
    # pairs over the drawn faces: image 4s+2v unmasked, 4s+2+v masked of subject s
    rng = np.random.default_rng(0)
    u = np.array([4 * s + v for s in range(n_subjects) for v in range(2)])
    m = np.array([4 * s + 2 + v for s in range(n_subjects) for v in range(2)])
    subj_u, subj_m = u // 4, m // 4
    iu, im = rng.integers(0, len(u), 96), rng.integers(0, len(m), 96)
    train = PairSet(u[iu], m[im], (subj_u[iu] == subj_m[im]).astype(np.int64))
    test = PairSet(np.repeat(u, len(m)), np.tile(m, len(u)),
                   (np.repeat(subj_u, len(m)) == np.tile(subj_m, len(u))).astype(np.int64))
    cfg = StudyConfig(weights=None, optimizer="sgd", learning_rate=1e-5, epochs=epochs,
                      batch_size=16, embed_batch_size=16)
    keras.utils.set_random_seed(2021)
    core = senet50(weights=None)
    t = time.perf_counter()
    tr = train_siamese(core, 30, imgs, train, test, test, config=cfg, progress=False)
    res.update(finetune_s=time.perf_counter() - t, finetune_fit_s=list(tr.timings["fit_s"]),
               finetune_pairs=len(train), finetune_epochs=epochs)
    arrays["losses"] = tr.history["loss"].to_numpy(np.float64)
    arrays["val_losses"] = tr.history["val_loss"].to_numpy(np.float64)
    arrays["test_distances"] = np.asarray(tr.test_distances, np.float64)
    res["digests"] = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:16]
                      for k, v in arrays.items()}
    np.savez(out, **arrays)
    out.with_suffix(".json").write_text(json.dumps(res))


def _run(setting: str, tmp: Path, i: int, args) -> tuple[dict, dict]:
    out = tmp / f"{setting}_{i}.npz"
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, KERAS_BACKEND="tensorflow")
    subprocess.run([sys.executable, __file__, "--worker", str(out), "--subjects",
                    str(args.subjects), "--repeats", str(args.repeats), "--epochs",
                    str(args.epochs)], env=env, check=True)
    return json.loads(out.with_suffix(".json").read_text()), dict(np.load(out))


def _diff(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    scale = float(np.max(np.abs(a))) or 1.0
    return {"max_abs": float(d.max()), "max_rel_to_max": float(d.max()) / scale}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", type=Path)
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "onednn_cpu.json")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.subjects, args.repeats, args.epochs)
        return
    from mfr.core.numerics import numerics
    from mfr.core.outputs import versions, write_json

    runs: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting in ("0", "1"):
            runs[setting] = [_run(setting, Path(tmp), i, args) for i in range(2)]
    report: dict = {"what": __doc__.split("\n\n")[0], "versions": versions(),
                    "machine": numerics(), "threads": "TensorFlow's defaults (intra/inter-op: "
                    "all cores)", "settings": {}}
    for setting, ((meta, _arr), (meta2, _arr2)) in runs.items():
        rates = {k: [meta[k], meta2[k]] for k in meta if k.endswith("_per_s")}
        report["settings"][f"TF_ENABLE_ONEDNN_OPTS={setting}"] = {
            "onednn_on": meta["setting"]["on"], **rates,
            "finetune_s": [meta["finetune_s"], meta2["finetune_s"]],
            "finetune_pairs": meta["finetune_pairs"], "finetune_epochs": meta["finetune_epochs"],
            "two_runs_byte_identical": {k: meta["digests"][k] == meta2["digests"][k]
                                        for k in meta["digests"]},
        }
    off, on = runs["0"][0][1], runs["1"][0][1]
    report["on_vs_off"] = {k: _diff(off[k], on[k]) for k in off}
    report["setup"] = {"embed": f"SENet50 random init (seed 2021), {runs['0'][0][0]['embed_images']}"
                       " drawn faces at 224 px, batch 16; dlib port (pre-trained) on "
                       f"{runs['0'][0][0].get('dlib_chips', 0)} real photo chips (../shared/data,"
                       " box = the crop), batch 32", "finetune": "train_siamese N=30, SGD lr 1e-5, "
                       "batch 16, trunk cache, test = every unmasked x masked pair"}
    write_json(args.out, report)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
