"""The dev photos the face-finding benchmarks run on (standard library only, so that a
throwaway environment without mfr's dependencies can list them too)."""

from __future__ import annotations

from pathlib import Path

SETS = ("mfr2-dev", "rmfrd-dev", "m2fred-dev", "mlfw-dev")


def list_set(data: Path, name: str) -> list[tuple[str, str, str]]:
    """(path, subject, side) of every photo of a dev set in `data` (``../shared/data``), sorted
    by path; side ``masked``, ``unmasked``, or ``unflagged`` (mlfw-dev: its val split, which has
    no mask flag). mfr2-dev: MFR2's labels (``no-mask`` = unmasked); rmfrd-dev: its two
    folders, JPEG and PNG; m2fred-dev: the flag ``m`` of ``<a>-<m>-<k>.png``."""
    rows: list[tuple[str, str, str]] = []
    if name == "mfr2-dev":
        root = data / "mfr2-dev" / "mfr2"
        for line in (root / "mfr2_labels.txt").read_text().splitlines():
            if line.strip():
                who, i, kind = (t.strip() for t in line.split(","))
                rows.append((str(root / who / f"{who}_{int(i):04d}.png"), who,
                             "unmasked" if kind == "no-mask" else "masked"))
    elif name == "rmfrd-dev":
        root = data / "rmfrd-dev" / "self-built-masked-face-recognition-dataset"
        for side, folder in (("masked", "AFDB_masked_face_dataset"),
                             ("unmasked", "AFDB_face_dataset")):
            rows += [(str(p), p.parent.name, side) for p in (root / folder).glob("*/*")
                     if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    elif name == "m2fred-dev":
        rows = [(str(p), p.parent.name, "masked" if p.stem.split("-")[1] == "1" else "unmasked")
                for p in (data / "m2fred-dev").glob("*/*.png")]
    elif name == "mlfw-dev":
        rows = [(str(p), p.parent.name, "unflagged")
                for p in (data / "mlfw-dev" / "val").glob("*/*.jpg")]
    else:
        raise ValueError(f"unknown set {name!r} (expected one of {SETS})")
    return sorted(rows)
