"""MediaPipe's face mesh as a candidate stage of the face-finding cascade, measured.

Not a dependency of mfr: run it with a Python that has ``mediapipe==0.10.21`` (the last
release whose wheel still ships the legacy ``solutions`` API with its TFLite models inside, so
it runs offline; 1.x wheels hold no face model and download them at run time) and Pillow, e.g.
a throwaway venv::

    python3 -m venv /tmp/mpvenv && /tmp/mpvenv/bin/pip install mediapipe==0.10.21 pillow
    PYTHONPATH=$PWD /tmp/mpvenv/bin/python benchmarks/face_finding_mediapipe.py \\
        --data ../shared/data --out /tmp/mediapipe_landmarks.json

For every photo of the dev sets that ``benchmarks/face_finding.py`` lists: FaceMesh
(static images, one face, iris refinement, detection confidence 0.5) on the RGB photo; five
points from its 478: the iris centres 468 and 473 (the one further left in the image first),
the nose tip 1, the mouth corners 61 and 291 (left first). Writes ``{"about": ..., "landmarks":
{path relative to --data: [[x, y] x 5] or null}}`` (photo pixels) and the seconds per photo;
``benchmarks/face_finding.py --mediapipe FILE`` then measures the cascade with it as a last
stage. The landmarks stay outside the project (they describe the photos).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv: list[str] | None = None) -> int:
    import mediapipe as mp
    import numpy as np
    from face_finding_sets import SETS, list_set
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                           refine_landmarks=True, min_detection_confidence=0.5)
    landmarks: dict[str, list | None] = {}
    seconds: dict[str, float] = {}
    for name in SETS:
        rows = list_set(args.data, name)
        t = 0.0
        for path, _, _ in rows:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
            h, w = rgb.shape[:2]
            t0 = time.perf_counter()
            res = mesh.process(rgb)
            t += time.perf_counter() - t0
            pts = None
            if res.multi_face_landmarks:
                p = np.array([[q.x * w, q.y * h] for q in res.multi_face_landmarks[0].landmark])
                eyes = sorted([p[468], p[473]], key=lambda q: q[0])
                mouth = sorted([p[61], p[291]], key=lambda q: q[0])
                pts = np.stack([eyes[0], eyes[1], p[1], mouth[0], mouth[1]]).tolist()
            landmarks[str(Path(path).relative_to(args.data))] = pts
        seconds[name] = t / max(len(rows), 1)
        print(name, sum(landmarks[str(Path(r[0]).relative_to(args.data))] is not None
                        for r in rows), "/", len(rows), f"{seconds[name]:.4f} s/photo", flush=True)
    about = {"mediapipe": mp.__version__, "solution": "face_mesh", "refine_landmarks": True,
             "min_detection_confidence": 0.5, "seconds_per_photo": seconds,
             "points": {"left_eye/right_eye": "iris centres 468, 473 (by x)", "nose": 1,
                        "mouth_left/mouth_right": "61, 291 (by x)"}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"about": about, "landmarks": landmarks}))
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
