"""Table 5.2 for any list of photo pairs: a pairs CSV in, a distance and a decision per pair out.

The thesis's Table 5.2 gave the distances of five scraped masked/unmasked pairs. Here the pairs
are a CSV (:func:`read_pairs_csv`: columns ``image_a``, ``image_b`` and optionally ``label``,
paths relative to the CSV or absolute). :func:`verify_pairs` prepares each unique image once
(:func:`mfr.verify.photos.prepare_face`), embeds them in one call, and decides each pair at one
threshold (:mod:`mfr.evaluation.thresholds`). An image that cannot be used (missing, not an image, no face)
does not stop the table: its pairs get no distance and the reason, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.errors import InputError, MfrError, MissingError
from mfr.core.readers.text import excerpt

__all__ = ["PairsVerification", "pairs_markdown", "partition_photo_pairs", "read_pairs_csv",
           "relative_path",
           "relative_paths", "verify_pairs"]

_LABELS = {"1": 1, "1.0": 1, "genuine": 1, "same": 1, "true": 1,
           "0": 0, "0.0": 0, "impostor": 0, "different": 0, "false": 0, "": None}
COLUMNS = ["pair", "image_a", "image_b", "label", "distance", "threshold", "decision",
           "correct", "note"]


def partition_photo_pairs(pairs_dir: str | Path, n: int = 5, seed: int = 2021
                          ) -> tuple[pd.DataFrame, Path]:
    """`n` genuine and `n` impostor pairs of a partition's test photos (the thesis's Table 5.2
    tried five masked/unmasked photo pairs), as :func:`read_pairs_csv` gives pairs: image_a
    the unmasked photo, image_b the masked one, absolute paths under the data root the
    partition recorded; and that data root. Picked with the seed, one masked subject per pair
    first; genuine pairs, then impostors."""
    from mfr.core.integrity import check_recorded
    from mfr.core.readers.text import read_json
    from mfr.data.pairs import read_pairs, select_pairs

    pairs_dir = Path(pairs_dir)
    record = pairs_dir / "run.json"
    expected = "the run.json of `mfr partition` with its data_root"
    root = read_json(record, expected).get("data_root")
    if not isinstance(root, str) or not root:
        raise InputError(f"{record}: expected {expected}")
    root = Path(root)
    test = read_pairs(check_recorded(pairs_dir / "test.csv"))
    genuine = select_pairs(test, seed).head(n)
    imp = test[test["label"] == 0].sort_values(["masked_path", "unmasked_path"], kind="stable")
    rng = np.random.default_rng([seed, 1])
    imp = imp.iloc[np.sort(rng.choice(len(imp), size=min(n, len(imp)), replace=False))]
    rows = [{"image_a": str(root / r.unmasked_path), "image_b": str(root / r.masked_path),
             "label": int(r.label)} for r in pd.concat([genuine, imp]).itertuples()]
    table = pd.DataFrame(rows)
    table.insert(0, "pair", range(1, len(table) + 1))
    return table[["pair", "image_a", "image_b", "label"]], root


def read_pairs_csv(path: str | Path) -> pd.DataFrame:
    """The pairs of a CSV: columns ``image_a``, ``image_b`` (paths resolved against the CSV's
    folder unless absolute) and ``label`` (1 / genuine / same, 0 / impostor / different, or
    empty: None). InputError naming the file and line for a bad row."""
    from mfr.core.readers.tables import line_of, read_table

    path = Path(path)
    if not path.exists():
        raise MissingError(f"{path}: pairs CSV not found (expected columns image_a,image_b"
                           f"[,label])")
    df = read_table(path, ("image_a", "image_b"), "a CSV of photo pairs, columns "
                    "image_a,image_b[,label]", optional=("label",), exact=False, strip=True)
    if df.empty:
        raise InputError(f"{path}: no pairs (expected at least one row image_a,image_b)")
    rows = []
    base = path.parent.resolve()
    for i, r in enumerate(df.to_dict("records")):
        line = line_of(df, i)
        a, b = r["image_a"].strip(), r["image_b"].strip()
        if not a or not b:
            raise InputError(f"{path}, line {line}: an empty image path (expected two paths)")
        text = str(r.get("label", "")).strip().lower()
        if text not in _LABELS:
            raise InputError(f"{path}, line {line}: label {excerpt(r['label'], 30)} (expected 1 / genuine "
                             f"/ same, 0 / impostor / different, or empty)")
        rows.append({"pair": i + 1, "image_a": str(base / a), "image_b": str(base / b),
                     "label": _LABELS[text]})
    return pd.DataFrame(rows, columns=["pair", "image_a", "image_b", "label"])


@dataclass
class PairsVerification:
    """What :func:`verify_pairs` found."""

    table: pd.DataFrame  # COLUMNS: a row per pair
    faces: dict[str, Any]  # image path -> its mfr.verify.photos.FaceImage, or the error (a string)
    threshold: Any  # mfr.evaluation.thresholds.Threshold
    distance_name: str
    embedder: dict[str, Any]  # describe()
    preprocessing: str
    notes: list[str]


def _label_word(label: Any) -> str:
    return "" if label is None or label != label else "genuine" if int(label) == 1 else "impostor"


def verify_pairs(pairs: pd.DataFrame, embedder: Any, threshold: float | str | Path | None = None,
                 detect: bool = True) -> PairsVerification:
    """Distance and decision for each pair of `pairs` (:func:`read_pairs_csv`'s columns).

    Each unique image is prepared and embedded once; an image that fails is named in its
    pairs' ``note`` and those pairs get no distance. `threshold` as in
    :func:`mfr.verify.photos.verify_pair`.
    """
    from mfr.evaluation.thresholds import resolve_threshold
    from mfr.verify.photos import (
        embed_faces,
        embedder_notes,
        face_distances,
        prepare_face,
        preprocessing_words,
    )

    distance = embedder.default_distance
    thr = resolve_threshold(threshold, embedder, distance)
    paths = sorted(set(pairs["image_a"]) | set(pairs["image_b"]))
    faces: dict[str, Any] = {}
    from mfr.data.faces import FaceDetectorBackendError

    for p in paths:
        try:
            faces[p] = prepare_face(p, embedder.image_size, detect)
        except FaceDetectorBackendError:
            raise  # no image can be detected: the whole table fails, in one line
        except MfrError as e:
            faces[p] = " ".join(str(e).split())
    good = [p for p in paths if not isinstance(faces[p], str)]
    notes: list[str] = []
    vectors = raw = None
    if good:
        ok = [faces[p] for p in good]
        vectors, raw, failed = embed_faces(embedder, ok)
        notes += embedder_notes(embedder, ok)
        for p, bad in zip(good, failed, strict=True):
            if bad:
                faces[p] = f"{p}: {embedder.name} could not encode this face"
    index = {p: i for i, p in enumerate(good)}
    rows = []
    for r in pairs.to_dict("records"):
        a, b = faces[r["image_a"]], faces[r["image_b"]]
        errors = [f for f in (a, b) if isinstance(f, str)]
        row = {"pair": r["pair"], "image_a": r["image_a"], "image_b": r["image_b"],
               "label": _label_word(r.get("label")), "distance": np.nan,
               "threshold": thr.value if thr.value is not None else np.nan,
               "decision": "no distance", "correct": "", "note": "; ".join(errors)}
        if not errors:
            d = float(face_distances(vectors, raw, [index[r["image_a"]]], [index[r["image_b"]]],
                                     distance)[0])
            row["distance"] = d
            if thr.value is None:
                row["decision"] = "undecided"
            else:
                same = d <= thr.value
                row["decision"] = "same person" if same else "different people"
                if row["label"]:
                    row["correct"] = "yes" if same == (row["label"] == "genuine") else "no"
            row["note"] = "; ".join(f"{f.name}: {n}" for f in (a, b) for n in f.notes)
        rows.append(row)
    used = [faces[p] for p in good if not isinstance(faces[p], str)]
    prep = preprocessing_words(used, embedder.image_size) if used else ""
    return PairsVerification(pd.DataFrame(rows, columns=COLUMNS), faces, thr, distance,
                             embedder.describe(), prep, notes)


def _fmt(v: Any, digits: int = 4) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else f"{v:.{digits}f}"


def relative_paths(table: pd.DataFrame, relative_to: str | Path | None) -> pd.DataFrame:
    """A copy of a pairs table with its image paths (and the paths its notes name) relative to
    `relative_to` where they lie below it: the table reads the same wherever the pairs' folder
    is (a temporary folder of drawn faces, a moved checkout)."""
    tab = table.copy()
    if relative_to is None:
        return tab
    tab["image_a"] = tab["image_a"].map(lambda p: relative_path(p, relative_to))
    tab["image_b"] = tab["image_b"].map(lambda p: relative_path(p, relative_to))
    if "note" in tab:  # a result table; a table of pairs to verify has none yet
        tab["note"] = tab["note"].map(lambda text: _strip_base(text, relative_to))
    return tab


def relative_path(path: str, base: str | Path) -> str:
    """`path` relative to `base` where it lies below it, else as it is."""
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path


def _strip_base(text: str, base: str | Path | None) -> str:
    return text if base is None else text.replace(f"{Path(base)}/", "")


def pairs_markdown(result: PairsVerification, title: str = "Table 5.2: verified pairs",
                   relative_to: str | Path | None = None) -> str:
    """The table as Markdown, with the model, distance and threshold source, and the thesis's
    Table 5.2 (:data:`mfr.report.thesis_tables.THESIS_TABLE_5_2`) beside it for reference."""
    from mfr.report.thesis_tables import THESIS_TABLE_5_2
    from mfr.verify.photos import DISTANCE_WORDS

    e, t = result.embedder, result.threshold
    lines = [f"# {title}", "",
             f"Model: {e['name']}, weights {e.get('weights_desc', e.get('weights'))}"
             + (f", run {e['run_dir']}" if e.get("run_dir") else "") + ".",
             f"Preprocessing: {result.preprocessing}.",
             f"Distance: {result.distance_name}, "
             f"{DISTANCE_WORDS.get(result.distance_name, '')} (lower = more alike).",
             f"Threshold: {_fmt(t.value) or 'none'} ({t.source}); same person when distance "
             f"<= threshold.", ""]
    if e.get("random_init"):
        lines += ["> **random init: these distances say nothing about faces.**", ""]
    tab = relative_paths(result.table, relative_to)
    tab["distance"] = tab["distance"].map(_fmt)
    tab["threshold"] = tab["threshold"].map(_fmt)
    lines += [tab.to_markdown(index=False, disable_numparse=True), ""]
    decided = result.table[result.table["correct"] != ""]
    if len(decided):
        lines += [f"Correct decisions: {int((decided['correct'] == 'yes').sum())} of "
                  f"{len(decided)} labelled pairs.", ""]
    thesis = pd.DataFrame({"thesis pair": range(1, len(THESIS_TABLE_5_2) + 1),
                           "thesis distance": [f"{d:.4f}" for d in THESIS_TABLE_5_2]})
    lines += ["## For reference: the thesis's Table 5.2", "",
              "Five scraped masked/unmasked pairs of other ethnicities (not these images), the "
              "thesis's SENet50 and distance (sum_squared of unit embeddings, in [0, 4]); genuine "
              "pairs lower than impostor ones, with a small gap. Comparable with the rows above "
              "only for the same distance and a comparable model.", "",
              thesis.to_markdown(index=False, disable_numparse=True), ""]
    if result.notes:
        lines += ["## Notes", "", *(f"- {_strip_base(n, relative_to)}" for n in result.notes), ""]
    return "\n".join(lines)
