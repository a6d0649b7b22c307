"""Many photo pairs at once (`mfr verify --pairs CSV --out DIR`): each image embedded once, a
distance and a decision per pair, ``pairs.csv`` out.

The CSV is :func:`mfr.verify.pairs.read_pairs_csv`'s (``image_a,image_b[,label]``, paths relative
to the CSV or absolute; a malformed CSV is one line naming the line). Every distinct image is
embedded once, :data:`mfr.gallery.photos.CHUNK` at a time
(:func:`mfr.gallery.photos.embed_photos`: a CSV of a million pairs over a few thousand photos
holds a chunk of faces in memory, not all), compared with the embedder's own distance and
decided at the threshold (:func:`mfr.evaluation.thresholds.resolve_threshold`, which says where
it came from). A pair whose image is missing, unreadable or (with MTCNN) has no face found is a
row with no distance and the reason: nothing stops the table. An image where the embedder's own
face finder finds no face is embedded from its fall-back and noted, as `mfr verify` does for two
photos (``no_face="skip"``: no distance instead). ``DIR/run.json`` records the inputs (the
CSV's and every image's sha256, the embedder's signature, the threshold), so the same command
again finds the folder up to date, and another one is refused (``force``: replaced).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OUTPUT", "BatchVerification", "verify_pairs_file"]

OUTPUT = "pairs.csv"
COMMAND = "verify_pairs"


@dataclass
class BatchVerification:
    """What :func:`verify_pairs_file` wrote: the table (as in ``pairs.csv``), the threshold,
    the distance, the embedder's description, and whether the folder was up to date."""

    table: Any  # pandas DataFrame, mfr.verify.pairs.COLUMNS
    out_dir: Path
    threshold: Any  # mfr.evaluation.thresholds.Threshold
    distance: str
    embedder: dict[str, Any]
    up_to_date: bool = False

    def summary(self) -> dict[str, Any]:
        t = self.table
        decided = t[t["correct"].astype(str) != ""]
        return {"pairs_csv": str(self.out_dir / OUTPUT), "n_pairs": len(t),
                "n_with_distance": int(t["distance"].notna().sum()),
                "n_without_distance": int(t["distance"].isna().sum()),
                "decisions": {k: int(v) for k, v in t["decision"].value_counts().items()},
                "n_labelled_decided": len(decided),
                "n_correct": int((decided["correct"] == "yes").sum()),
                "distance": self.distance, "threshold": self.threshold.value,
                "threshold_source": self.threshold.source, "embedder": self.embedder,
                "up_to_date": self.up_to_date}

    def lines(self, shown: int = 10) -> list[str]:
        s = self.summary()
        t = self.threshold
        out = [f"pairs: {s['n_pairs']} ({s['n_with_distance']} with a distance, "
               f"{s['n_without_distance']} without: their reason is in the note column)",
               f"model: {self.embedder.get('name')}, weights "
               f"{self.embedder.get('weights_desc', self.embedder.get('weights'))}",
               f"distance: {self.distance}; lower = more alike",
               f"threshold: none ({t.source})" if t.value is None else
               f"threshold {t.value:.6g}: {t.source}",
               "decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(s["decisions"].items()))]
        if s["n_labelled_decided"]:
            out.append(f"correct decisions: {s['n_correct']} of {s['n_labelled_decided']} "
                       f"labelled pairs")
        bad = self.table[self.table["distance"].isna()]
        for r in bad.head(shown).itertuples():
            out.append(f"no distance: pair {r.pair} ({r.image_a}, {r.image_b}): {r.note}")
        if len(bad) > shown:
            out.append(f"... and {len(bad) - shown} more pairs without a distance")
        out.append(("up to date: " if self.up_to_date else "written: ") + s["pairs_csv"])
        return out


def _decide(d: float, thr: Any, label: str) -> tuple[str, str]:
    if thr.value is None:
        return "undecided", ""
    same = d <= thr.value
    decision = "same person" if same else "different people"
    correct = "" if not label else "yes" if same == (label == "genuine") else "no"
    return decision, correct


def verify_pairs_file(pairs_csv: str | Path, out_dir: str | Path, embedder: Any,
                      threshold: float | str | Path | None = None, detect: bool = True,
                      no_face: str = "keep", force: bool = False,
                      progress: bool = False) -> BatchVerification:
    """Verify every pair of `pairs_csv` with `embedder` into `out_dir` (module docstring).
    `threshold`: a number, a thresholds.json, or None for the embedder's default;
    `detect`: find faces with MTCNN (False: each image is a face crop); `no_face`: "keep" (as
    `mfr verify` of two photos: embedded from the embedder's fall-back, the note says so) or
    "skip" (no distance, the reason) a photo where the embedder's own face finder finds no
    face (:func:`mfr.gallery.photos.embed_photos`)."""
    import pandas as pd

    from mfr.core.outputs import write_csv
    from mfr.core.provenance import claim, complete, file_digest
    from mfr.evaluation.thresholds import parse_threshold, resolve_threshold
    from mfr.gallery.photos import OK, embed_photos
    from mfr.gallery.signature import signature
    from mfr.verify.pairs import COLUMNS, _label_word, read_pairs_csv, relative_paths
    from mfr.verify.photos import CROP_SCALE, face_distances

    csv = Path(pairs_csv)
    pairs = read_pairs_csv(csv)
    base = csv.parent.resolve()
    distance = embedder.default_distance
    spec = parse_threshold(threshold) if isinstance(threshold, str) else threshold
    thr = resolve_threshold(spec, embedder, distance)
    images = sorted(set(pairs["image_a"]) | set(pairs["image_b"]))

    def digest(p: str) -> str | None:
        try:
            return file_digest(p) if Path(p).is_file() else None
        except OSError:
            return None

    fp = {"pairs": file_digest(csv),
          "images": {str(Path(p).relative_to(base)) if Path(p).is_relative_to(base) else p:
                     digest(p) for p in images},
          "embedder": signature(embedder), "detect": bool(detect), "no_face": no_face,
          "crop_scale": CROP_SCALE, "distance": distance,
          "threshold": (f"file sha256:{file_digest(spec)}" if isinstance(spec, Path)
                        and spec.is_file() else spec)}
    out = Path(out_dir)
    desc = {k: v for k, v in embedder.describe().items()
            if k not in ("n_images", "n_no_face_detected", "n_failed")}
    if claim(out, COMMAND, fp, force=force) == "complete":
        table = pd.read_csv(out / OUTPUT, keep_default_na=False, na_values=[""],
                            dtype={"label": str, "correct": str, "note": str, "decision": str})
        table[["label", "correct", "note"]] = table[["label", "correct", "note"]].fillna("")
        return BatchVerification(table, out, thr, distance, desc, up_to_date=True)
    emb = embed_photos(images, embedder, detect, no_face, progress=progress)
    index = {p: i for i, p in enumerate(images)}
    raw = None
    if distance == "euclidean_raw":
        raw = emb.vectors.astype(np.float64) * np.nan_to_num(emb.norms)[:, None]
    rows = []
    for r in pairs.to_dict("records"):
        ia, ib = index[r["image_a"]], index[r["image_b"]]
        label = _label_word(r.get("label"))
        errors = [f"{p}: {emb.status[i]}" for p, i in ((r["image_a"], ia), (r["image_b"], ib))
                  if emb.status[i] != OK]
        row = {"pair": r["pair"], "image_a": r["image_a"], "image_b": r["image_b"],
               "label": label, "distance": np.nan,
               "threshold": thr.value if thr.value is not None else np.nan,
               "decision": "no distance", "correct": "", "note": "; ".join(errors)}
        if not errors:
            d = float(face_distances(emb.vectors, raw, [ia], [ib], distance)[0])
            row["distance"] = d
            row["decision"], row["correct"] = _decide(d, thr, label)
            notes = [f"{p}: {emb.notes[i]}" for p, i in ((r["image_a"], ia), (r["image_b"], ib))
                     if emb.notes[i]]
            notes += [f"{p}: no face found by {embedder.name}'s face finder; embedded from its "
                      f"fall-back" for p, i in ((r["image_a"], ia), (r["image_b"], ib))
                      if emb.no_face[i]]
            row["note"] = "; ".join(notes)
        rows.append(row)
    table = relative_paths(pd.DataFrame(rows, columns=COLUMNS), base)
    write_csv(out / OUTPUT, table, float_format="%.6f")
    complete(out, COMMAND, fp, outputs=[OUTPUT], pairs_csv=str(csv.resolve()), embedder=desc,
             threshold={"value": thr.value, "source": thr.source}, distance=distance,
             n_pairs=len(table), n_pairs_without_distance=int(table["distance"].isna().sum()))
    return BatchVerification(table, out, thr, distance, desc)
