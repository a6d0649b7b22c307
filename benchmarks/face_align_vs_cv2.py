"""How close mfr's numpy ArcFace alignment is to InsightFace's own (skimage + OpenCV).

Not run by the project (it needs opencv-python-headless and scikit-image, which mfr does not
depend on): run it with a Python that has them, numpy and Pillow, e.g. a throwaway venv::

    python3 -m venv /tmp/cvenv && /tmp/cvenv/bin/pip install opencv-python-headless \\
        scikit-image pillow
    PYTHONPATH=$PWD /tmp/cvenv/bin/python benchmarks/face_align_vs_cv2.py --data ../shared/data

For 80 real photos (the first 40 of MFR2's and of M2FRED's, sorted) and 5 random ArcFace-like
landmark sets each (seeded): the matrices of :func:`mfr.data.face_align.arcface_matrices`
against ``skimage.transform.SimilarityTransform`` on the same points, in float64 and in float32
(InsightFace passes float32 points, and skimage then computes partly in float32), and the
chips of :func:`mfr.data.face_align.warp_affine` in both arithmetics against
``cv2.warpAffine(img, M, (112, 112), borderValue=0.0)``. Writes
``results/face_finding/align_vs_cv2_<opencv major version>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import cv2
    import skimage
    from PIL import Image
    from skimage import transform as trans

    from mfr.data import face_align as fa

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "face_finding")
    args = ap.parse_args(argv)
    files = (sorted(args.data.glob("mfr2-dev/mfr2/*/*.png"))[:40]
             + sorted(args.data.glob("m2fred-dev/*/*.png"))[:40])
    rng = np.random.default_rng(2021)
    estimate = getattr(trans.SimilarityTransform, "from_estimate", None)

    def sk(src, dst):
        if estimate is not None:
            return estimate(src, dst).params
        t = trans.SimilarityTransform()
        t.estimate(src, dst)
        return t.params

    m64, m32 = [], []
    counts = {a: np.zeros(256, np.int64) for a in fa.ARITHMETICS}
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB"))
        for _ in range(5):
            lmk = (fa.ARCFACE_TEMPLATE * rng.uniform(0.6, 1.6) + rng.normal(0, 4, (5, 2))
                   + rng.uniform(-10, 40, 2)).astype(np.float32)
            ours = fa.arcface_matrices(lmk)[0]
            m64.append(np.abs(sk(lmk.astype(np.float64), fa.ARCFACE_TEMPLATE.astype(np.float64))[:2]
                              - ours).max())
            ref32 = sk(lmk, fa.ARCFACE_TEMPLATE)[:2]
            m32.append(np.abs(ref32 - ours).max() / np.abs(ref32).max())
            ref = cv2.warpAffine(img, ref32, (112, 112), borderValue=0.0).astype(np.int64)
            for a in fa.ARITHMETICS:
                d = np.abs(fa.warp_affine(img[None], ref32[None], 112, a)[0] - ref)
                counts[a] += np.bincount(d.ravel(), minlength=256)
    out = {
        "opencv": cv2.__version__, "scikit_image": skimage.__version__,
        "photos": len(files), "transforms": len(m64),
        "matrix_max_abs_diff_float64_points": float(max(m64)),
        "matrix_max_rel_diff_float32_points": float(max(m32)),
        "warp": {a: {"values": int(c.sum()), "differing": int(c[1:].sum()),
                     "share_differing": float(c[1:].sum() / c.sum()),
                     "max_abs_diff": int(np.flatnonzero(c).max()),
                     "histogram_abs_diff": {str(i): int(v) for i, v in enumerate(c) if v}}
                 for a, c in counts.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"align_vs_cv2_{cv2.__version__.split('.')[0]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(path)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
