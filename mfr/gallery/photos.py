"""Photos into embeddings for a gallery, its probes and batch verification: an identity folder
listed, and photos embedded a fixed chunk at a time with each photo's fate recorded.

**Listing** (:func:`list_photos`, :func:`list_identities`): an identity is a folder of photos
(``<root>/<identity>/<photos>``). A photo is a regular file directly in its identity's folder
whose name ends with an image extension (:data:`mfr.data.datasets.IMAGE_EXTENSIONS`, any case);
hidden names are passed over; anything else there (another file, a folder, a link to nothing)
is listed as skipped with the reason, never silently dropped. Everything is sorted by name.

**Embedding** (:func:`embed_photos`): each photo is read and made into the embedder's input as
`mfr verify` makes it (:func:`mfr.verify.photos.prepare_face`: MTCNN's largest face, or with
``detect=False`` the whole image, for photos that are face crops), then embedded. Photos go
:data:`CHUNK` at a time from the start of the list, so a photo's embedding depends only on the
list and its place in it: the same sorted list embedded whole, or as contiguous shards whose
sizes are multiples of the chunk (:mod:`mfr.gallery.sharded`), gives the same bytes. A photo
that cannot be used is never embedded as something else; its ``status`` says why:

- ``unreadable: ...``: not a file, not an image, truncated, too small (the reader's one line);
- ``no face found (MTCNN)``: with ``detect``, MTCNN found no face in it;
- ``no face found (<embedder>'s face finder, <face box>)``: the embedder's own face finding (a
  backbone's alignment: MobileFaceNet's cascade, dlib's landmarks in an MTCNN box) found none,
  so the embedder would have used a fall-back (the template stretched onto the whole image).
  With ``no_face="keep"`` such a photo is embedded that way instead, and marked
  (``no_face_detected``) wherever it is listed;
- ``failed: ...``: the embedder could not encode the face it was given (a zero row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError, MfrError

__all__ = ["CHUNK", "NO_FACE_POLICIES", "Embedded", "embed_photos", "is_photo_name",
           "list_identities", "list_photos", "photo_label"]

#: photos read and embedded at a time (a chunk's decoded faces: 64 x 224 x 224 x 3 bytes at
#: most, 10 MB)
CHUNK = 64
#: what to do with a photo in which the embedder's own face finder finds no face
NO_FACE_POLICIES = ("skip", "keep")
OK = "ok"


def is_photo_name(name: str) -> bool:
    """Whether a file name is a photo's: an image extension, any case, not hidden."""
    from mfr.data.datasets.common import image_name

    return image_name(name)


def list_photos(folder: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(the photos of an identity folder, sorted; (path, reason) of every other entry in it)."""
    from mfr.core.readers.paths import list_folder

    folder = Path(folder)
    entries, passed = list_folder(folder)
    photos: list[Path] = []
    skipped = [(folder / name if name else folder, why) for name, why in passed]
    for e in entries:
        if e.kind == "dir":
            skipped.append((e.path, "a folder inside an identity folder (not read: an identity "
                                    "is one folder of photos)"))
        elif is_photo_name(e.name):
            photos.append(e.path)
        else:
            skipped.append((e.path, "not an image file (expected .jpg, .jpeg, .png, .bmp, "
                                    ".webp)"))
    return photos, skipped


def list_identities(root: str | Path) -> tuple[dict[str, Path], list[tuple[Path, str]]]:
    """({identity: its folder} of every folder in `root`, sorted; (path, reason) of each entry
    of `root` that is not an identity folder: a photo there belongs to nobody)."""
    from mfr.core.readers.paths import list_folder, require_dir

    root = require_dir(Path(root), "expected a folder of identity folders: <folder>/<identity>/"
                                   "<photos>", "gallery folder")
    entries, passed = list_folder(root)
    folders = {e.name: e.path for e in entries if e.kind == "dir"}
    skipped = [(root / name if name else root, why) for name, why in passed]
    skipped += [(e.path, "not in an identity folder (expected <folder>/<identity>/<photos>)")
                for e in entries if e.kind != "dir"]
    return folders, skipped


def photo_label(photo: Any, i: int) -> str:
    """How a photo is named in tables: its path, or ``image <i>`` for an array."""
    return str(photo) if isinstance(photo, str | Path) else f"image {i}"


@dataclass
class Embedded:
    """What :func:`embed_photos` made of each photo, in the photos' order.

    ``vectors`` (n, d) float32 unit rows (zeros where the photo was not embedded); ``norms``
    (n,) the rows' lengths before normalisation where the embedder keeps them (dlib's), else
    NaN; ``status`` :data:`OK` or why the photo was not embedded; ``no_face`` whether the
    embedder's face finder found no face (embedded anyway under ``no_face="keep"``);
    ``finder`` what found the face where the embedder says (MobileFaceNet's stage), else "";
    ``notes`` per photo (format conversions, several faces)."""

    vectors: np.ndarray
    norms: np.ndarray
    status: list[str]
    no_face: np.ndarray
    finder: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> np.ndarray:
        return np.array([s == OK for s in self.status], dtype=bool)

    @property
    def descriptors(self) -> np.ndarray:
        """Each photo's embedding as its network's own distance takes it (what to store):
        the raw descriptor (unit row x raw length) where the embedder keeps raw lengths
        (dlib's), else the unit row."""
        if np.isfinite(self.norms).any():
            return (self.vectors.astype(np.float64) * np.nan_to_num(self.norms)[:, None]
                    ).astype(np.float32)
        return self.vectors

    def take(self, rows: Sequence[int] | np.ndarray) -> Embedded:
        """The photos at `rows`, in that order."""
        r = np.asarray(rows, dtype=np.int64)
        return Embedded(self.vectors[r], self.norms[r], [self.status[i] for i in r],
                        self.no_face[r], [self.finder[i] for i in r], [self.notes[i] for i in r])

    @staticmethod
    def concat(parts: Sequence[Embedded], dim: int) -> Embedded:
        if not parts:
            return Embedded(np.zeros((0, dim), np.float32), np.zeros(0), [], np.zeros(0, bool),
                            [], [])
        return Embedded(np.concatenate([p.vectors for p in parts]),
                        np.concatenate([p.norms for p in parts]),
                        [s for p in parts for s in p.status],
                        np.concatenate([p.no_face for p in parts]),
                        [f for p in parts for f in p.finder], [n for p in parts for n in p.notes])


def _no_face_words(embedder: Any) -> str:
    box = getattr(embedder, "face_box", None)
    return f"no face found ({embedder.name}'s face finder{f', {box}' if box else ''})"


def _dim(embedder: Any) -> int:
    return int(embedder.describe().get("dim") or 0)


def embed_photos(photos: Sequence[str | Path | np.ndarray], embedder: Any, detect: bool = True,
                 no_face: str = "skip", chunk: int | None = None, progress: bool = False
                 ) -> Embedded:
    """Embed each photo (a path, or an (H, W[, C]) uint8 array) with `embedder` (an
    :class:`mfr.backbones.embedders.Embedder`), :data:`CHUNK` at a time (see the module
    docstring). No photo stops the others: each gets a ``status``. MTCNN unavailable under
    the Keras backend (``detect`` under JAX) is the one error that stops all (one line)."""
    from mfr.core.progress import progress_bar
    from mfr.data.faces import FaceDetectorBackendError
    from mfr.verify.photos import NoFaceError, prepare_face

    if no_face not in NO_FACE_POLICIES:
        raise InputError(f"no_face must be one of {', '.join(NO_FACE_POLICIES)}, got "
                         f"{no_face!r}")
    chunk = CHUNK if chunk is None else chunk
    if chunk < 1:
        raise InputError(f"chunk must be >= 1, got {chunk}")
    n = len(photos)
    size = embedder.image_size
    parts: list[Embedded] = []
    dim = 0
    starts = range(0, n, chunk)
    for s in progress_bar(starts, progress, total=len(starts), desc="photos", unit="chunk"):
        block = photos[s:s + chunk]
        m = len(block)
        status, notes = [OK] * m, [""] * m
        faces, where = [], []
        for j, photo in enumerate(block):
            try:
                face = prepare_face(photo, size, detect,
                                    None if isinstance(photo, str | Path) else f"image {s + j}")
            except FaceDetectorBackendError:
                raise
            except NoFaceError:
                status[j] = "no face found (MTCNN)"
                continue
            except MfrError as e:
                status[j] = "unreadable: " + " ".join(str(e).split())
                continue
            faces.append(face.image)
            where.append(j)
            notes[j] = "; ".join(face.notes)
        nf = np.zeros(m, dtype=bool)
        finder = [""] * m
        norms = np.full(m, np.nan)
        vec = None
        if faces:
            out = embedder.embed(np.stack(faces))
            dim = out.shape[1]
            vec = np.zeros((m, dim), np.float32)
            flags = embedder.flags
            k = len(faces)
            failed = np.asarray(flags.get("failed", np.zeros(k, bool)), bool)
            missed = np.asarray(flags.get("no_face_detected", np.zeros(k, bool)), bool)
            stage = flags.get("stage")
            raw = getattr(embedder, "norms", None)
            for i, j in enumerate(where):
                finder[j] = "" if stage is None else str(np.asarray(stage)[i])
                if failed[i]:
                    status[j] = f"failed: {embedder.name} could not encode this face"
                    continue
                if missed[i]:
                    nf[j] = True
                    if no_face == "skip":
                        status[j] = _no_face_words(embedder)
                        continue
                vec[j] = out[i]
                if raw is not None:
                    norms[j] = float(np.asarray(raw)[i])
        parts.append(Embedded(vec, norms, status, nf, finder, notes) if vec is not None else
                      Embedded(np.zeros((m, 0), np.float32), norms, status, nf, finder, notes))
    dim = dim or _dim(embedder)
    for p in parts:  # a chunk with no usable photo has no width yet
        if p.vectors.shape[1] != dim:
            p.vectors = np.zeros((len(p.status), dim), np.float32)
    return Embedded.concat(parts, dim)
