"""The real-vs-synthetic mask gap: the pre-trained dlib network on real masked photos vs
synthetic masked versions (`mfr mask`) of the unmasked photos of the same subjects.

For each real set (RMFRD's and MFR2's dev photos in ``../shared/data``, RMFRD's layout):

1. ``mfr mask --data-root REAL --out WORK/<name>_synthetic --crop-fallback`` (MTCNN's box, the
   whole crop where MTCNN finds none; seed 0, every kind, one mask per image);
2. ``mfr evaluate --data-root REAL --layout rmfrd --embedder dlib_resnet`` (default face box:
   the crop) and the same on the synthetic tree: every unmasked x masked pair, AUC and EER with
   mfr's 95% subject-bootstrap intervals (1000 resamples, seed 2021); the unmasked images, the
   subjects and the pairs' protocol are the same, only the masked side differs;
3. the same synthetic pairs without the same-source ones: a synthetic masked image and its own
   unmasked source photo (the same photo, masked and not) form a genuine pair that real masked
   photos never give; ``masks.csv`` names each source, so those pairs are dropped from the
   synthetic evaluation's ``distances.csv`` and AUC, EER and their intervals recomputed
   (:func:`mfr.evaluation.pair_sets.pair_set_metrics`, the same bootstrap): the row compared
   with the real one. The row with them is kept, marked, to show how much they weighed;
4. the detection rate on each masked side: MTCNN (``mfr.data.faces.detect_faces``) and dlib's HOG
   detector (image upsampled once).

Writes ``results/masks/gap.json`` and ``gap.md``. Trees and evaluations go to ``--work``
(outside the project: they hold the photos); steps already done there are reused.

    python benchmarks/masks_gap.py [--work /tmp/mfr-masks-gap] [--out results/masks]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mfr.core.outputs import versions, write_json, write_text  # noqa: E402
from mfr.data.datasets import MASKED_DIR, UNMASKED_DIR, find_rmfrd_root  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = {"rmfrd-dev": DATA / "rmfrd-dev", "mfr2-dev": DATA / "mfr2-dev" / "rmfrd_layout"}


def _mfr(*args: str) -> list[str]:
    cmd = [sys.executable, "-m", "mfr.cli", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="tensorflow")
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return ["mfr", *args]


def _evaluate(data_root: Path, out: Path) -> tuple[dict, list[str]]:
    cmd = _mfr("evaluate", "--data-root", str(data_root), "--layout", "rmfrd", "--embedder",
               "dlib_resnet", "--out", str(out), "--no-progress")
    m = json.loads((out / "metrics.json").read_text())
    mv = m["masked_vs_unmasked"]
    row = {"distance": mv["distance"], "auc": mv["auc"], "eer": mv["eer"],
           "auc_ci": [mv["ci"]["auc"]["low"], mv["ci"]["auc"]["high"]],
           "eer_ci": [mv["ci"]["eer"]["low"], mv["ci"]["eer"]["high"]],
           "n_genuine": mv["n_genuine"], "n_impostor": mv["n_impostor"],
           "n_subjects": m["dataset"]["n_subjects"],
           "n_masked_images": m["dataset"]["n_masked_images"],
           "n_unmasked_images": m["dataset"]["n_unmasked_images"],
           "face_box": m["embedder"]["face_box"]}
    return row, cmd


def same_source_pairs(masks_csv: Path) -> set[tuple[str, str]]:
    """(unmasked path, masked path) of every synthetic image with its own source photo, as
    the pair tables spell them (relative to the tree's RMFRD root)."""
    import csv

    with open(masks_csv, newline="", encoding="utf-8") as f:
        return {(f"{UNMASKED_DIR}/{r['source']}", r["output"]) for r in csv.DictReader(f)}


def _without_same_source(eval_dir: Path, masks_csv: Path, distance: str) -> dict:
    """The synthetic evaluation's masked-vs-unmasked pairs less the same-source ones: AUC, EER
    and the subject-bootstrap intervals recomputed as `mfr evaluate` computes them."""
    from mfr.evaluation.pair_sets import pair_set_metrics, read_distances

    df = read_distances(eval_dir, [distance])
    df = df[df["split"] == "masked_vs_unmasked"]
    same = same_source_pairs(masks_csv)
    hit = [(u, m) in same for u, m in zip(df["unmasked_path"], df["masked_path"], strict=True)]
    kept = df[[not h for h in hit]].reset_index(drop=True)
    m = pair_set_metrics(kept, [distance])[distance]
    n_gen = int(kept["label"].sum())
    return {"distance": distance, "auc": m["auc"], "eer": m["eer"],
            "auc_ci": [m["ci"]["auc"]["low"], m["ci"]["auc"]["high"]],
            "eer_ci": [m["ci"]["eer"]["low"], m["ci"]["eer"]["high"]],
            "n_genuine": n_gen, "n_impostor": len(kept) - n_gen,
            "same_source_pairs_dropped": int(sum(hit))}


def _detection(masked_dir: Path) -> dict:
    import dlib
    import numpy as np

    from mfr.data.faces import detect_faces
    from mfr.data.images import decode_rgb

    hog = dlib.get_frontal_face_detector()
    files = sorted(p for p in masked_dir.rglob("*") if p.is_file())
    n_mtcnn = n_hog = 0
    for p in files:
        rgb = decode_rgb(p)
        n_mtcnn += bool(detect_faces(rgb))
        n_hog += len(hog(np.ascontiguousarray(rgb), 1)) > 0
    return {"images": len(files), "mtcnn": n_mtcnn / len(files), "dlib_hog": n_hog / len(files)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/mfr-masks-gap"))
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "masks")
    args = ap.parse_args()
    report: dict = {"sets": {}, "commands": [], "versions": versions(),
                    "embedder": "dlib_resnet (dlib_face_recognition_resnet_model_v1, pre-trained)",
                    "mask": "mfr mask: seed 0, kinds surgical,cloth,n95,kn95, one per image, "
                            "MTCNN box with the whole-crop fallback"}
    for name, real in SETS.items():
        if not real.is_dir():
            sys.exit(f"{real}: absent (the dev photos in ../shared/data)")
        synth = args.work / f"{name}_synthetic"
        report["commands"].append(" ".join(_mfr("mask", "--data-root", str(real), "--out",
                                                str(synth), "--crop-fallback",
                                                "--no-progress")))
        masks_csv = (synth / "masks.csv").read_text().splitlines()[1:]
        failed = (synth / "failed.csv").read_text().splitlines()[1:]
        real_row, c1 = _evaluate(real, args.work / f"{name}_eval_real")
        synth_row, c2 = _evaluate(synth, args.work / f"{name}_eval_synthetic")
        report["commands"] += [" ".join(c1), " ".join(c2)]
        real_root, synth_root = find_rmfrd_root(real), find_rmfrd_root(synth)
        real_row["detection"] = _detection(real_root / MASKED_DIR)
        synth_row["detection"] = _detection(synth_root / MASKED_DIR)
        synth_row["masking"] = {"masked": len({r.split(",")[0] for r in masks_csv}),
                                "failed": len(failed),
                                "crop_fallback": sum(",\"crop " in r for r in masks_csv)}
        # the row compared with the real one: no pair of a synthetic image with its own source
        clean = {**synth_row, **_without_same_source(
            args.work / f"{name}_eval_synthetic", synth / "masks.csv", synth_row["distance"])}
        report["sets"][name] = {"real": real_row, "synthetic": clean,
                                "synthetic_with_same_source": synth_row,
                                "auc_gap": clean["auc"] - real_row["auc"],
                                "eer_gap": clean["eer"] - real_row["eer"],
                                "auc_gap_with_same_source": synth_row["auc"] - real_row["auc"],
                                "eer_gap_with_same_source": synth_row["eer"] - real_row["eer"]}
    write_json(args.out / "gap.json", report)
    write_text(args.out / "gap.md", _markdown(report))


def _ci(row: dict, key: str) -> str:
    lo, hi = row[f"{key}_ci"]
    return f"{row[key]:.3f} [{lo:.3f}, {hi:.3f}]"


_SIDES = (("real", "real"),
          ("synthetic", "synthetic, same-source pairs dropped"),
          ("synthetic_with_same_source", "synthetic, with same-source pairs (old row)"))


def _markdown(r: dict) -> str:
    lines = ["# Real vs synthetic masks: the gap, measured", "",
             "Pre-trained dlib ResNet (`mfr evaluate --embedder dlib_resnet`, face box: the "
             "crop, distance: Euclidean on the raw descriptors) on every unmasked x masked pair "
             "of the same subjects and the same unmasked photos; the masked side is either the "
             "real masked photos or synthetic masks (`mfr mask`) drawn on the unmasked ones. "
             "Brackets: 95% intervals, bootstrap over subjects (1000 resamples, seed 2021). "
             "Detection: share of the masked images where MTCNN / dlib's HOG detector "
             "(upsampled once) finds a face.", "",
             "Same-source pairs: a synthetic masked image paired with its own unmasked source "
             "(the same photo, masked and not) is a genuine pair that real masked photos never "
             "give. The row compared with the real one drops them (`masks.csv` names each "
             "image's source); the row with them (the first measurement) is kept below it to "
             "show what they weighed.", "",
             "| set | masked side | subjects | masked / unmasked images | genuine / impostor "
             "| AUC | EER | MTCNN detects | dlib HOG detects |",
             "|:--|:--|--:|--:|--:|:--|:--|--:|--:|"]
    for name, s in r["sets"].items():
        for side, label in _SIDES:
            row = s[side]
            d = row["detection"]
            lines.append(f"| {name} | {label} | {row['n_subjects']} | "
                         f"{row['n_masked_images']} / {row['n_unmasked_images']} | "
                         f"{row['n_genuine']} / {row['n_impostor']} | {_ci(row, 'auc')} | "
                         f"{_ci(row, 'eer')} | {d['mtcnn']:.1%} | {d['dlib_hog']:.1%} |")
    lines += ["", "Synthetic (same-source pairs dropped) minus real: " + "; ".join(
        f"{name}: AUC {s['auc_gap']:+.3f}, EER {s['eer_gap']:+.3f}"
        for name, s in r["sets"].items()) + ". With the same-source pairs: " + "; ".join(
        f"{name}: AUC {s['auc_gap_with_same_source']:+.3f}, "
        f"EER {s['eer_gap_with_same_source']:+.3f}" for name, s in r["sets"].items()) + ".", ""]
    for name, s in r["sets"].items():
        m = s["synthetic"]["masking"]
        lines.append(f"- {name}: {m['masked']} unmasked images masked, {m['failed']} failed, "
                     f"{m['crop_fallback']} with the whole crop as the box (MTCNN found none); "
                     f"{s['synthetic']['same_source_pairs_dropped']} same-source genuine "
                     f"pairs dropped.")
    lines += ["", "Caveat: the real rmfrd-dev side counts only `*.jpg` (the thesis protocol), "
              "so its few PNGs are left out. The synthetic masked images are drawn on the same "
              "pool of photos as the unmasked side (the same crops, sources and occasions), "
              "the real masked ones are a separate pool: dropping the same-source pairs "
              "removes only the identical-photo case.",
              "", "Data: `../shared/data/rmfrd-dev` (121 RMFRD subjects, 160x160 crops) and "
              "`../shared/data/mfr2-dev/rmfrd_layout` (27 MFR2 identities); the images stay "
              "out of the project. Commands (`benchmarks/masks_gap.py` runs them, then drops "
              "the same-source pairs from the synthetic runs' distances.csv):", "", "```"]
    lines += r["commands"] + ["```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
