"""Synthetic RMFRD-layout trees: clearly drawn (not photographed) faces, with and without a mask.

Each subject gets identity-dependent drawing parameters (skin, hair, eye colour, face shape,
a marker shape on the forehead); a masked image adds a mask polygon over the lower face. Every
image carries the word "SYNTHETIC". They serve tests, benchmarks and the offline demo.

- `make_rmfrd_tree(root, counts)`: write `<root>/self-built-masked-face-recognition-dataset/
  AFDB_{masked_,}face_dataset/<subject>/NNNN.jpg` with chosen per-subject counts.
- `table_4_2_counts()`: per-subject counts at RMFRD scale that give exactly the thesis's
  Table 4.2 under the thesis protocol (and Table 3.1's folder and file totals with
  `files="full"`).
- `demo_counts()` / `make_demo_tree()`: a small tree (12 subjects) for the demo and tests.
- `make_pairs_csv()`: drawn masked/unmasked photo pairs and their pairs CSV (notebook 06).
- `make_mlfw_tree()`, `make_m2fred_tree()`: small drawn trees in MLFW's and M2FRED's layouts
  (tests of those layouts and of the protocols that read them).

In the registry (:data:`SPEC`) it is the dataset `synthetic`: RMFRD's layout (so a tree of it
is read, partitioned and detected as RMFRD), made offline rather than downloaded
(`mfr data fetch synthetic` writes the demo tree).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mfr.core.errors import InputError
from mfr.data.datasets.common import DatasetSpec
from mfr.data.datasets.rmfrd import MASKED_DIR, RMFRD_DIRNAME, UNMASKED_DIR, load_rmfrd

# counts: subject -> (n_unmasked, n_masked); None = no folder on that side, 0 = empty folder
Counts = Mapping[str, tuple[int | None, int | None]]

# Table 3.1 of the thesis (folder and file totals of RMFRD)
TABLE_3_1 = {"masked_subjects": 525, "masked_images": 5002,
             "unmasked_subjects": 460, "unmasked_images": 90468, "common_subjects": 442}


def _identity_rng(subject: str, seed: int) -> np.random.Generator:
    h = hashlib.sha256(f"{seed}:{subject}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def draw_face(subject: str, masked: bool, size: int = 224, variant: int = 0, seed: int = 0):
    """A drawn face (PIL RGB image) whose look depends on `subject`; `variant` jitters it."""
    from PIL import Image, ImageDraw

    r = _identity_rng(subject, seed)
    skin = tuple(int(x) for x in r.integers(120, 240, 3))
    hair = tuple(int(x) for x in r.integers(0, 120, 3))
    eyes = tuple(int(x) for x in r.integers(0, 256, 3))
    bg = tuple(int(x) for x in r.integers(180, 256, 3))
    mark = tuple(int(x) for x in r.integers(0, 256, 3))
    fw, fh = float(r.uniform(0.52, 0.7)), float(r.uniform(0.68, 0.84))
    eye_gap = float(r.uniform(0.14, 0.22))
    shape = int(r.integers(0, 3))
    v = np.random.default_rng([int.from_bytes(hashlib.sha256(subject.encode()).digest()[:4],
                                              "little"), seed, variant])
    dx, dy = (float(x) for x in v.uniform(-0.03, 0.03, 2) * size)
    light = float(v.uniform(0.85, 1.1))

    def c(col):
        return tuple(min(255, int(x * light)) for x in col)

    s = size
    im = Image.new("RGB", (s, s), c(bg))
    d = ImageDraw.Draw(im)
    cx, cy = s / 2 + dx, s / 2 + dy
    w, h = fw * s, fh * s
    d.ellipse([cx - w / 2 - 0.04 * s, cy - h / 2 - 0.06 * s, cx + w / 2 + 0.04 * s,
               cy + 0.1 * s], fill=c(hair))
    d.ellipse([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], fill=c(skin))
    er = max(1.0, 0.04 * s)
    ey = cy - 0.08 * s
    for ex in (cx - eye_gap * s, cx + eye_gap * s):
        d.ellipse([ex - er * 1.6, ey - er, ex + er * 1.6, ey + er], fill=(255, 255, 255))
        d.ellipse([ex - er * 0.7, ey - er * 0.7, ex + er * 0.7, ey + er * 0.7], fill=c(eyes))
    my = cy - h / 2 + 0.12 * s  # identity marker on the forehead
    m = 0.05 * s
    if shape == 0:
        d.rectangle([cx - m, my - m / 2, cx + m, my + m / 2], fill=c(mark))
    elif shape == 1:
        d.polygon([(cx, my - m), (cx - m, my + m / 2), (cx + m, my + m / 2)], fill=c(mark))
    else:
        d.ellipse([cx - m, my - m / 2, cx + m, my + m / 2], fill=c(mark))
    d.line([cx, cy - 0.02 * s, cx - 0.02 * s, cy + 0.08 * s], fill=(90, 60, 50),
           width=max(1, s // 100))
    d.arc([cx - 0.1 * s, cy + 0.1 * s, cx + 0.1 * s, cy + 0.2 * s], 20, 160, fill=(150, 40, 40),
          width=max(1, s // 80))
    if masked:
        mcol = [(120, 170, 220), (235, 235, 235), (40, 40, 40), (200, 130, 170)][
            int(r.integers(0, 4))]
        top = cy + 0.01 * s
        d.polygon([(cx - w / 2 - 0.01 * s, top), (cx + w / 2 + 0.01 * s, top),
                   (cx + w / 2 - 0.06 * s, cy + h / 2 - 0.02 * s), (cx, cy + h / 2 + 0.02 * s),
                   (cx - w / 2 + 0.06 * s, cy + h / 2 - 0.02 * s)], fill=mcol)
        for k in (1, 2):
            yy = top + k * 0.05 * s
            d.line([cx - w / 2 + 0.04 * s, yy, cx + w / 2 - 0.04 * s, yy],
                   fill=(max(0, mcol[0] - 50), max(0, mcol[1] - 50), max(0, mcol[2] - 50)),
                   width=max(1, s // 120))
        d.line([cx - w / 2, top, cx - w / 2 - 0.06 * s, cy - 0.05 * s], fill=mcol,
               width=max(1, s // 80))
        d.line([cx + w / 2, top, cx + w / 2 + 0.06 * s, cy - 0.05 * s], fill=mcol,
               width=max(1, s // 80))
    if s >= 64:
        d.text((4, s - 14), "SYNTHETIC", fill=(200, 0, 0))
    return im


def face_jpeg(subject: str, masked: bool, size: int = 224, variant: int = 0, seed: int = 0,
              quality: int = 90) -> bytes:
    buf = io.BytesIO()
    draw_face(subject, masked, size, variant, seed).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_rmfrd_tree(
    root: str | Path,
    counts: Counts,
    image_size: int = 224,
    seed: int = 0,
    distinct: int | None = None,
    dirname: str | None = RMFRD_DIRNAME,
    quality: int = 90,
) -> Path:
    """Write a synthetic RMFRD tree under `root` and return its dataset root.

    `counts[subject] = (n_unmasked, n_masked)`: files per side (None: no folder on that side;
    0: an empty folder). Files are `0000.jpg`, `0001.jpg`, ... `distinct` caps how many
    different drawings each subject side gets (the rest repeat their bytes): `distinct=1` with
    a small `image_size` writes a 95k-file tree in seconds. The tree goes in
    `root/<dirname>` (or `root` itself when `dirname` is None).
    """
    base = Path(root) / dirname if dirname else Path(root)
    cache: dict[tuple[str, bool, int], bytes] = {}
    for side_dir, masked, k in ((UNMASKED_DIR, False, 0), (MASKED_DIR, True, 1)):
        (base / side_dir).mkdir(parents=True, exist_ok=True)
        for subject in sorted(counts):
            n = counts[subject][k]
            if n is None:
                continue
            sdir = base / side_dir / subject
            sdir.mkdir(parents=True, exist_ok=True)
            for i in range(int(n)):
                v = i if distinct is None else i % max(1, distinct)
                key = (subject, masked, v)
                data = cache.get(key)
                if data is None:
                    data = face_jpeg(subject, masked, image_size, v, seed, quality)
                    if distinct is not None:
                        cache[key] = data
                with open(sdir / f"{i:04d}.jpg", "wb") as f:
                    f.write(data)
    return base


def _spread(rng: np.random.Generator, n: int, total: int, lo: int, hi: int) -> list[int]:
    """`n` integers in [lo, hi] summing to `total`, spread at random."""
    if not lo * n <= total <= hi * n:
        raise InputError(f"cannot spread {total} over {n} values in [{lo}, {hi}]")
    vals = np.full(n, lo, dtype=np.int64)
    left = total - lo * n
    while left > 0:
        open_ = np.flatnonzero(vals < hi)
        add = rng.multinomial(left, np.full(len(open_), 1.0 / len(open_)))
        add = np.minimum(add, hi - vals[open_])
        vals[open_] += add
        left -= int(add.sum())
    return [int(x) for x in vals]


def table_4_2_counts(files: str = "capped", seed: int = 2021) -> dict[str, tuple]:
    """Per-subject counts at RMFRD scale giving exactly Table 4.2 under the thesis protocol.

    442 common subjects (`person_0000` ... `person_0441`): the first 353 (train+val) select
    7034 unmasked and 1343 masked images with sum(u*m) = 26815 (genuine 21452 + 5363); the last
    89 (test) select 1766 and 455 with sum(u*m) = 9095 -- which needs a test subject with
    unmasked images and an empty masked folder (as the thesis's data must have had).

    `files="capped"`: only the files the protocol selects (10.6k files, for fast tests).
    `files="full"`: also Table 3.1's totals: more unmasked files beyond the 20 cap, 83
    masked-only and 18 unmasked-only subjects; 525 masked folders with 5002 files and 460
    unmasked folders with 90468 files (95470 files).
    """
    if files not in ("capped", "full"):
        raise InputError(f"files must be 'capped' or 'full', got {files!r}")
    rng = np.random.default_rng(seed)
    names = [f"person_{i:04d}" for i in range(442)]
    tv, te = names[:353], names[353:]
    u = {s: 20 for s in names}
    m: dict[str, int] = {}
    # train+val: u=20 everywhere but A (13 unmasked, 1 masked) and B (1 unmasked, 2 masked):
    # sum u = 351*20 + 13 + 1 = 7034; sum u*m = 20*(1343-3) + 13 + 2 = 26815
    a, b = (tv[int(i)] for i in rng.choice(353, 2, replace=False))
    u[a], m[a], u[b], m[b] = 13, 1, 1, 2
    rest = [s for s in tv if s not in (a, b)]
    m.update(zip(rest, _spread(rng, len(rest), 1343 - 3, 1, 20), strict=True))
    # test: C (15 unmasked, 1 masked) and D (11 unmasked, empty masked folder):
    # sum u = 87*20 + 15 + 11 = 1766; sum m = 455; sum u*m = 20*454 + 15 = 9095
    c, d = (te[int(i)] for i in rng.choice(89, 2, replace=False))
    u[c], m[c], u[d], m[d] = 15, 1, 11, 0
    rest = [s for s in te if s not in (c, d)]
    m.update(zip(rest, _spread(rng, len(rest), 455 - 1, 1, 20), strict=True))
    counts: dict[str, tuple] = {s: (u[s], m[s]) for s in names}
    if files == "full":
        # unmasked files beyond the cap, for subjects that have 20 selected
        n_um_only, n_m_only = TABLE_3_1["unmasked_subjects"] - 442, TABLE_3_1["masked_subjects"] - 442
        um_only = _spread(rng, n_um_only, 18 * 150, 20, 400)
        extra_total = TABLE_3_1["unmasked_images"] - sum(u.values()) - sum(um_only)
        full = [s for s in names if u[s] == 20]
        extra = _spread(rng, len(full), extra_total, 0, 1000)
        for s, e in zip(full, extra, strict=True):
            counts[s] = (20 + e, m[s])
        for i, n in enumerate(um_only):
            counts[f"unmasked_only_{i:02d}"] = (n, None)
        m_only = _spread(rng, n_m_only, TABLE_3_1["masked_images"] - sum(m.values()), 1, 100)
        for i, n in enumerate(m_only):
            counts[f"masked_only_{i:02d}"] = (None, n)
    return counts


def demo_counts(n_subjects: int = 12, seed: int = 2021) -> dict[str, tuple]:
    """A small tree: `n_subjects` with 3-6 unmasked and 2-4 masked images each."""
    rng = np.random.default_rng(seed)
    return {f"subject_{i:02d}": (int(rng.integers(3, 7)), int(rng.integers(2, 5)))
            for i in range(n_subjects)}


def make_demo_tree(root: str | Path, n_subjects: int = 12, image_size: int = 224,
                   seed: int = 2021) -> Path:
    """A small synthetic RMFRD tree for the demo, the notebooks and the tests."""
    return make_rmfrd_tree(root, demo_counts(n_subjects, seed), image_size=image_size, seed=seed)


def make_pairs_csv(root: str | Path, n_subjects: int = 3, image_size: int = 160,
                   seed: int = 2021) -> Path:
    """Drawn photo pairs for notebook 06 and the tests: per subject a masked and an unmasked
    PNG in ``root/drawn/``, and ``root/pairs.csv`` (image_a,image_b,label; paths relative to
    it) with each subject's masked/unmasked pair (genuine) and its masked face against the next
    subject's unmasked one (impostor). Returns the CSV's path."""
    from mfr.core.outputs import atomic_path, write_text

    if n_subjects < 2:
        raise InputError(f"n_subjects must be >= 2 (impostor pairs need two), got {n_subjects}")
    root = Path(root)
    subjects = [f"subject_{i:02d}" for i in range(n_subjects)]
    for s in subjects:
        for masked in (False, True):
            name = f"{s}_{'masked' if masked else 'unmasked'}.png"
            with atomic_path(root / "drawn" / name) as tmp:
                draw_face(s, masked, image_size, int(masked), seed).save(tmp, format="PNG")
    rows = ["image_a,image_b,label"]
    for k, s in enumerate(subjects):
        other = subjects[(k + 1) % n_subjects]
        rows += [f"drawn/{s}_masked.png,drawn/{s}_unmasked.png,genuine",
                 f"drawn/{s}_masked.png,drawn/{other}_unmasked.png,impostor"]
    return write_text(root / "pairs.csv", "\n".join(rows) + "\n")


def make_mlfw_tree(root: str | Path,
                   splits: Mapping[str | None, Mapping[str, Sequence[tuple[int, int]]]],
                   image_size: int = 32, seed: int = 0) -> Path:
    """Write drawn faces in MLFW's layout: ``splits[split][name] = [(i, k), ...]`` gives
    ``<root>/<split>/<name>/<name>_<i:04d>_<k:04d>.jpg`` (split None: ``<root>/<name>/...``,
    one split's folder alone); version k > 0 of a photo is drawn masked. Returns `root`."""
    root = Path(root)
    for split, people in splits.items():
        base = root / split if split else root
        for name, files in people.items():
            (base / name).mkdir(parents=True, exist_ok=True)
            for i, k in files:
                (base / name / f"{name}_{i:04d}_{k:04d}.jpg").write_bytes(
                    face_jpeg(name, k > 0, image_size, i, seed))
    return root


def make_m2fred_tree(root: str | Path, counts: Mapping[str, tuple[int, int]],
                     image_size: int = 32, seed: int = 0) -> Path:
    """Write drawn faces in M2FRED's layout: ``counts[person] = (n_unmasked, n_masked)`` gives
    ``<root>/<person>/<a>-0-0.png`` (a = 1..n_unmasked) and ``<a>-1-0.png``. Returns `root`."""
    root = Path(root)
    for person, (n_unmasked, n_masked) in counts.items():
        (root / person).mkdir(parents=True, exist_ok=True)
        for flag, n in ((0, n_unmasked), (1, n_masked)):
            for a in range(1, n + 1):
                draw_face(person, bool(flag), image_size, a, seed).save(
                    root / person / f"{a}-{flag}-0.png", format="PNG")
    return root


SPEC = DatasetSpec(
    name="synthetic", label="synthetic sample: drawn faces (not photographs), RMFRD's layout",
    layout="rmfrd", load=load_rmfrd, make=make_demo_tree,
)
