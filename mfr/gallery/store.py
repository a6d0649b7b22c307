"""A gallery: enrolled identities' templates, where each came from, and the embedder that made
them; kept in a folder, searched for the identity of probe photos (1:N).

**In memory** a :class:`Gallery` holds per identity its source (an identity folder, or a list of
photos), every photo's record (path, size, mtime, sha256, status: enrolled or why not, the face
finder's flags) and the templates of its enrolled photos (unit float32 rows; for dlib, their raw
lengths). :meth:`Gallery.enrol` adds every identity folder of a folder, :meth:`Gallery.add` one
identity (a folder, or photos), :meth:`Gallery.remove` drops identities, and
:meth:`Gallery.refresh` brings the gallery up to date with its sources: a photo added or
rewritten is embedded, a photo gone is dropped, an unchanged photo (same size and mtime, or the
same bytes) keeps its template; new identity folders of an enrolled folder are enrolled. Only
photos that changed are embedded. :meth:`Gallery.changes` says what changed on disk since,
reading no photo (a listing digest per identity: each file's name, size and mtime).

**On disk** (:meth:`Gallery.save`, :meth:`Gallery.load`), a folder::

    gallery.json            the record: format, mfr version, the embedder (name, the options
                            that build it again, its signature: network, weights' sha256,
                            fine-tuned layers' sha256, preprocessing, alignment and face box,
                            input size; :mod:`mfr.gallery.signature`), the distance, face
                            detection, the no-face policy, the identities (source, listing
                            digest, counts), the enrolled folders, and the data files with
                            their sha256
    templates-<h>.npy       float32 (n, d) unit rows, identities sorted, photos sorted
    norms-<h>.npy           float64 (n,) the rows' raw lengths (NaN where the embedder keeps none)
    photos-<h>.csv          every photo: identity, path, size, mtime_ns, sha256, status,
                            template (its row, -1 when not enrolled), no_face_detected,
                            face_finder, note
    index-<h>.bin           optional: a faiss index of the templates (:mod:`mfr.gallery.index`)

The data files are named by their content (``<h>``: the first 16 hex digits of their sha256)
and written first, each to a temporary file renamed into place; ``gallery.json`` is written last
the same way, and only then are the files it no longer names deleted. A crash at any point
leaves the gallery as it was before or after the save, never a mix. Same photos and embedder,
same bytes.

**Writers** take the folder's lock (:func:`mfr.core.provenance.lock`, ``.<name>.lock`` beside
it) for the whole of :func:`edit_gallery` (load, change, save) or :meth:`Gallery.save`: a second
process enrolling into the same gallery at the same time is refused in one line naming the first
(it does not wait). A gallery loaded, then changed on disk by another writer, is not saved over
those changes: :meth:`Gallery.save` refuses and asks to load it again. Readers take no lock.

**Searching** (:meth:`Gallery.search`, :meth:`Gallery.identify`): the probes are embedded as the
gallery was (:func:`mfr.gallery.photos.embed_photos`) with the gallery's own embedder, or one
whose signature is the gallery's (another network, weights or alignment is refused in one line:
embeddings of two networks are not comparable). The distance is the embedder's own unless chosen
at enrolment (``sum_squared`` of unit rows, the thesis's; ``euclidean_raw``, dlib's, on which
face_recognition's tolerance 0.6 is documented). Exact by default (:mod:`mfr.gallery.search`;
:mod:`mfr.gallery.raw_search` for dlib's raw distance); ``method="index"`` uses the faiss index
kept beside (``index=True`` at enrolment, rebuilt on every save that changed the templates).
Thresholds and decisions: :mod:`mfr.gallery.decide`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError, MissingError, RunFolderError
from mfr.gallery.photos import (
    NO_FACE_POLICIES,
    OK,
    Embedded,
    embed_photos,
    list_identities,
    list_photos,
)

__all__ = ["DISTANCES", "FORMAT", "PHOTO_COLUMNS", "RECORD", "Gallery", "Update",
           "edit_gallery", "read_record"]

FORMAT = "mfr-gallery 1"
RECORD = "gallery.json"
#: distances a gallery ranks by: functions of the cosine of unit rows, or dlib's raw Euclidean
DISTANCES = ("sum_squared", "cosine", "l2", "euclidean_raw")
PHOTO_COLUMNS = ["identity", "path", "size", "mtime_ns", "sha256", "status", "template",
                 "no_face_detected", "face_finder", "note"]
#: below this many templates the index is faiss's flat one (exact inner products): a product
#: quantiser's 16 centroids want 39 training points each (624), and a scan of a few thousand
#: rows takes microseconds anyway
SMALL_INDEX = 10_000
_DATA = {"templates": ("templates-", ".npy"), "norms": ("norms-", ".npy"),
         "photos": ("photos-", ".csv"), "index": ("index-", ".bin")}


# --------------------------------------------------------------------------- identities


@dataclass
class _Identity:
    """One enrolled identity: its source, its photos' records (sorted by path) and the
    templates of those enrolled (in the same order)."""

    source: dict[str, Any]  # {"folder": path} or {"photos": True}
    photos: list[dict[str, Any]]
    vectors: np.ndarray
    norms: np.ndarray
    listing: str

    @property
    def n_templates(self) -> int:
        return len(self.vectors)

    @property
    def folder(self) -> Path | None:
        f = self.source.get("folder")
        return Path(f) if f else None


@dataclass
class Update:
    """What a change of a gallery did: identities added, re-embedded or removed, photos
    embedded and kept, and the photos skipped (path, reason) among those looked at."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    embedded: int = 0
    kept: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # identity, path, reason
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for what, names in (("added", self.added), ("re-embedded", self.updated),
                            ("removed", self.removed), ("unchanged", self.unchanged)):
            if names:
                shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)"
                                                if len(names) > 8 else "")
                out.append(f"{what}: {shown}")
        out.append(f"photos embedded: {self.embedded}; templates kept as they were: "
                   f"{self.kept}; photos skipped: {len(self.skipped)}")
        out += [f"skipped: {path}: {why}" for _, path, why in self.skipped]
        out += [f"note: {n}" for n in self.notes]
        return out


def _abs(path: str | Path) -> str:
    return os.path.abspath(os.fspath(path))


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return int(st.st_size), int(st.st_mtime_ns)


def _listing(paths: Sequence[str]) -> str:
    """The listing digest of absolute paths (:func:`mfr.core.provenance.listing_digest`:
    names, sizes and mtimes; no file read)."""
    from mfr.core.provenance import listing_digest

    return listing_digest(Path("/"), sorted(paths))


def _folder_listing(folder: Path) -> tuple[list[Path], list[tuple[Path, str]], str, list[str]]:
    """(photos, skipped entries, listing digest, the files it covers: photos and other files,
    not the folders inside) of an identity folder."""
    photos, skipped = list_photos(folder)
    files = sorted(_abs(p) for p in [*photos, *(p for p, _ in skipped if not p.is_dir())])
    return photos, skipped, _listing(files), files


def _digest(path: str) -> str:
    from mfr.core.provenance import file_digest

    try:
        return file_digest(path)
    except OSError:
        return ""


# --------------------------------------------------------------------------- the gallery


class Gallery:
    """Enrolled identities and their templates, searchable (see the module docstring).

    Args:
        embedder: an :class:`mfr.backbones.embedders.Embedder` (``get_embedder(...)``), or an
            embedder's name (its released weights and default settings).
        distance: what the search ranks by (:data:`DISTANCES`); default the embedder's own
            (``euclidean_raw`` for dlib's network, else ``sum_squared``).
        detect: find the face in each photo with MTCNN first (False: each photo is a face
            crop, as in the real-mask sets; the embedder's own alignment still runs).
        no_face: a photo where the embedder's face finder finds no face is ``"skip"``-ped
            (listed, not enrolled; default) or ``"keep"``-t (embedded with its fall-back,
            marked).
        index: keep a faiss index of the templates beside them (built on save).
        index_factory: its faiss factory string (default :func:`mfr.gallery.index.
            default_factory`, chosen by measurement; ``"Flat"`` below :data:`SMALL_INDEX`
            templates).
    """

    def __init__(self, embedder: Any, *, distance: str | None = None, detect: bool = True,
                 no_face: str = "skip", index: bool = False,
                 index_factory: str | None = None) -> None:
        from mfr.gallery.signature import embedder_options, signature

        if isinstance(embedder, str):
            from mfr.backbones.embedders import get_embedder

            embedder = get_embedder(embedder)
        if no_face not in NO_FACE_POLICIES:
            raise InputError(f"no_face must be one of {', '.join(NO_FACE_POLICIES)}, got "
                             f"{no_face!r}")
        distance = distance or embedder.default_distance
        if distance not in DISTANCES:
            raise InputError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
        if distance == "euclidean_raw" and embedder.default_distance != "euclidean_raw":
            raise InputError(f"distance euclidean_raw needs an embedder that keeps its raw "
                             f"lengths (dlib's network); {embedder.name} gives unit rows")
        if index and distance == "euclidean_raw":
            raise InputError("an index ranks by cosine; a gallery on dlib's raw Euclidean "
                             "distance is searched exactly (enrol with distance sum_squared to "
                             "keep an index)")
        self._embedder = embedder
        self.embedder_name: str = embedder.name
        self.embedder_options: dict[str, Any] = embedder_options(embedder)
        self.signature: dict[str, Any] = signature(embedder)
        self.description: dict[str, Any] = _description(embedder)
        self.distance = distance
        self.detect = bool(detect)
        self.no_face = no_face
        self.index_wanted = bool(index)
        self.index_factory = index_factory
        self.roots: list[str] = []
        self._ids: dict[str, _Identity] = {}
        self._search_cache: Any = None
        self._index: Any = None
        self._index_fp: str | None = None
        self.path: Path | None = None
        self._loaded_digest: str | None = None

    # ------------------------------------------------------------------ what it holds

    @property
    def embedder(self) -> Any:
        """The embedder (built from the record on first use, and checked against the
        gallery's signature)."""
        if self._embedder is None:
            from mfr.gallery.signature import embedder_mismatch, make_embedder

            emb = make_embedder(self.embedder_name, self.embedder_options)
            why = embedder_mismatch(self.signature, emb)
            if why is not None:
                raise InputError(f"{self._where()}: the embedder it records no longer builds "
                                 f"the network that made it ({why}); enrol again")
            self._embedder = emb
        return self._embedder

    @property
    def identities(self) -> list[str]:
        return sorted(self._ids)

    @property
    def n_identities(self) -> int:
        return len(self._ids)

    @property
    def n_templates(self) -> int:
        return sum(i.n_templates for i in self._ids.values())

    @property
    def dim(self) -> int:
        return int(self.signature.get("dim") or 0)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, name: object) -> bool:
        return name in self._ids

    def __repr__(self) -> str:
        return (f"<Gallery {self.n_identities} identities, {self.n_templates} templates, "
                f"{self.embedder_name}, {self.distance}"
                f"{', ' + str(self.path) if self.path else ''}>")

    def _where(self) -> str:
        return str(self.path) if self.path else "the gallery"

    def photos(self) -> Any:
        """Every photo's record (:data:`PHOTO_COLUMNS`), identities and paths sorted; the
        ``template`` column is the row of :meth:`templates`, -1 where not enrolled."""
        import pandas as pd

        rows, t = [], 0
        for name in self.identities:
            for rec in self._ids[name].photos:
                row = {"identity": name, **rec, "template": -1}
                if rec["status"] == OK:
                    row["template"] = t
                    t += 1
                rows.append(row)
        return pd.DataFrame(rows, columns=PHOTO_COLUMNS)

    def skipped(self) -> Any:
        """The photos not enrolled, and why."""
        p = self.photos()
        return p[p["status"] != OK].reset_index(drop=True)

    def templates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vectors (n, d) float32, norms (n,), identity of each row), identities sorted."""
        names = self.identities
        if not names:
            return (np.zeros((0, self.dim), np.float32), np.zeros(0),
                    np.zeros(0, dtype=object))
        vec = np.concatenate([self._ids[n].vectors for n in names]).astype(np.float32)
        norms = np.concatenate([self._ids[n].norms for n in names]).astype(np.float64)
        ids = np.array([n for n in names for _ in range(self._ids[n].n_templates)], dtype=object)
        return vec, norms, ids

    def summary(self) -> dict[str, Any]:
        """JSON-ready: what the gallery is and holds."""
        skipped = sum(1 for i in self._ids.values() for r in i.photos if r["status"] != OK)
        marked = sum(1 for i in self._ids.values() for r in i.photos
                     if r["status"] == OK and r["no_face_detected"])
        return {"path": str(self.path) if self.path else None,
                "embedder": self.embedder_name, "signature": self.signature,
                "distance": self.distance, "detect": self.detect, "no_face": self.no_face,
                "n_identities": self.n_identities, "n_templates": self.n_templates,
                "n_skipped_photos": skipped, "n_enrolled_without_face": marked,
                "index": self.index_wanted, "roots": list(self.roots)}

    # ------------------------------------------------------------------ checks

    def check_embedder(self, embedder: Any) -> None:
        """InputError (one line) unless `embedder` makes embeddings comparable with the
        gallery's: the same signature (network, weights, fine-tuned layers, preprocessing,
        alignment and face box, input size)."""
        from mfr.gallery.signature import embedder_mismatch

        why = embedder_mismatch(self.signature, embedder)
        if why is not None:
            raise InputError(f"{self._where()}: enrolled with {_words(self.signature)}; "
                             f"{why}: a gallery is searched only with the embedder that made "
                             f"it (search without naming one, or enrol again)")

    def use_embedder(self, embedder: Any) -> None:
        """Embed with `embedder` from now on (checked: :meth:`check_embedder`)."""
        self.check_embedder(embedder)
        self._embedder = embedder

    # ------------------------------------------------------------------ enrolling

    def _check_name(self, name: str, source: dict[str, Any]) -> None:
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"an identity needs a name, got {name!r}")
        old = self._ids.get(name)
        if old is not None and old.source != source and not (
                "photos" in old.source and "photos" in source):
            held = old.source.get("folder") or "photos given one by one"
            raise InputError(f"identity {name!r} is enrolled already from {held}; remove it "
                             f"first, or give another name")

    def _embed(self, todo: list[tuple[str, str]], progress: bool) -> dict[tuple[str, str],
                                                                         tuple[Embedded, int]]:
        """Embed the (identity, path) photos in one sorted list (chunks from its start)."""
        todo = sorted(todo)
        if not todo:
            return {}
        emb = embed_photos([p for _, p in todo], self.embedder, self.detect, self.no_face,
                           progress=progress)
        if emb.vectors.shape[1] != self.dim:
            raise InputError(f"{self.embedder_name} gave {emb.vectors.shape[1]}-d rows; the "
                             f"gallery's are {self.dim}-d")
        return {key: (emb, i) for i, key in enumerate(todo)}

    def _record(self, path: str, embedded: tuple[Embedded, int] | None, st: tuple[int, int] |
                None, why: str | None = None, digest: str | None = None) -> dict[str, Any]:
        size, mtime = st if st is not None else (-1, -1)
        rec = {"path": path, "size": size, "mtime_ns": mtime,
               "sha256": digest if digest is not None else (_digest(path) if st else ""),
               "status": why or OK, "no_face_detected": False, "face_finder": "", "note": ""}
        if embedded is not None:
            e, i = embedded
            rec.update(status=e.status[i], no_face_detected=bool(e.no_face[i]),
                       face_finder=e.finder[i], note=e.notes[i])
        return rec

    def _plan(self, name: str, source: dict[str, Any], paths: list[str],
              others: list[tuple[str, str]], listing: str) -> tuple[dict, list[str]]:
        """Which of `paths` need embedding: every one not enrolled before with the same size
        and mtime, or the same bytes."""
        old = {r["path"]: r for r in self._ids[name].photos} if name in self._ids else {}
        plan = {"source": source, "paths": paths, "others": others, "listing": listing,
                "stats": {}, "keep": {}}
        todo = []
        for p in paths:
            st = _stat(p)
            plan["stats"][p] = st
            r = old.get(p)
            if r is not None and st is not None:
                if (r["size"], r["mtime_ns"]) == st or (r["sha256"] and r["size"] == st[0]
                                                        and _digest(p) == r["sha256"]):
                    plan["keep"][p] = r
                    continue
            todo.append(p)
        return plan, todo

    def _apply(self, plans: dict[str, dict], progress: bool, update: Update,
               given: dict[tuple[str, str], tuple[Embedded, int]] | None = None) -> None:
        """Embed what the plans need, in one sorted list (or take the `given` embeddings), and
        make the identities."""
        todo = [(n, p) for n, plan in plans.items() for p in plan["todo"]]
        done = self._embed(todo, progress) if given is None else given
        for name in sorted(plans):
            plan = plans[name]
            old = self._ids.get(name)
            old_row = {}
            if old is not None:
                enrolled = [r["path"] for r in old.photos if r["status"] == OK]
                old_row = {p: i for i, p in enumerate(enrolled)}
            recs, vecs, norms = [], [], []
            for p in sorted(plan["paths"]):  # templates in the order of the records
                st = plan["stats"][p]
                if p in plan["keep"]:
                    r = {**plan["keep"][p], "size": st[0], "mtime_ns": st[1]}
                    if r["status"] == OK:
                        vecs.append(old.vectors[old_row[p]])
                        norms.append(old.norms[old_row[p]])
                        update.kept += 1
                elif st is None:
                    r = self._record(p, None, None, "missing: the photo is gone")
                else:
                    e, i = done[(name, p)]
                    r = self._record(p, (e, i), st)
                    update.embedded += 1
                    if r["status"] == OK:
                        vecs.append(e.vectors[i])
                        norms.append(e.norms[i])
                recs.append(r)
            recs += [self._record(p, None, _stat(p), why, digest="") for p, why in plan["others"]]
            recs.sort(key=lambda r: r["path"])
            before = {(r["path"], r["status"]) for r in old.photos} if old is not None else set()
            update.skipped += [(name, r["path"], r["status"]) for r in recs
                               if r["status"] != OK and (r["path"], r["status"]) not in before]
            new = _Identity(plan["source"], recs,
                            np.stack(vecs).astype(np.float32) if vecs else
                            np.zeros((0, self.dim), np.float32),
                            np.asarray(norms, np.float64), plan["listing"])
            if old is None:
                update.added.append(name)
            elif _content(old) != _content(new):
                update.updated.append(name)
            else:
                update.unchanged.append(name)
            self._ids[name] = new
        self._changed()

    def _changed(self) -> None:
        self._search_cache = None

    def _folder_plan(self, name: str, folder: Path) -> tuple[dict, list[str]]:
        photos, skipped, listing, _ = _folder_listing(folder)
        plan, todo = self._plan(name, {"folder": _abs(folder)}, [_abs(p) for p in photos],
                                [(_abs(p), why) for p, why in skipped], listing)
        plan["todo"] = todo
        return plan, todo

    def _enrol_plans(self, folder: str | Path) -> tuple[Path, dict[str, dict], list]:
        """What enrolling `folder` asks: the folder checked, each identity folder's plan (by
        name) and the entries that are not identity folders, with why. One place for
        :meth:`enrol` and the sharded enrolment (:mod:`mfr.gallery.sharded`)."""
        from mfr.core.readers.paths import require_dir

        folder = require_dir(Path(folder), "expected a folder of identity folders: "
                                           "<folder>/<identity>/<photos>", "gallery folder")
        found, passed = list_identities(folder)
        if not found:
            raise InputError(f"{folder}: no identity folders (expected <folder>/<identity>/"
                             f"<photos>)")
        for name, path in found.items():
            self._check_name(name, {"folder": _abs(path)})
        return folder, {name: self._folder_plan(name, path)[0]
                        for name, path in found.items()}, passed

    def enrol(self, folder: str | Path, progress: bool = False) -> Update:
        """Every identity folder of `folder` (``<folder>/<identity>/<photos>``) enrolled (an
        identity already enrolled from there: brought up to date); entries of `folder` that
        are not identity folders are listed as skipped."""
        folder, plans, passed = self._enrol_plans(folder)
        update = Update()
        self._apply(plans, progress, update)
        update.skipped += [("", _abs(p), why) for p, why in passed]
        root = _abs(folder)
        if root not in self.roots:
            self.roots = sorted([*self.roots, root])
        return update

    def add(self, source: str | Path, photos: Sequence[str | Path] | None = None, *,
            name: str | None = None, progress: bool = False) -> Update:
        """One identity: `source` an identity folder (its name the identity's, unless
        `name`), or the identity's name with `photos` (files; added to the photos it has)."""
        update = Update()
        if photos is None:
            from mfr.core.readers.paths import require_dir

            folder = require_dir(Path(source), "expected an identity folder of photos",
                                 "identity folder")
            ident = name or folder.name
            self._check_name(ident, {"folder": _abs(folder)})
            plan, _ = self._folder_plan(ident, folder)
            self._apply({ident: plan}, progress, update)
            return update
        ident = str(source) if name is None else name
        self._check_name(ident, {"photos": True})
        given = [_abs(p) for p in photos]
        if not given:
            raise InputError(f"identity {ident!r}: no photos given")
        old = self._ids.get(ident)
        paths = sorted(set(given) | ({r["path"] for r in old.photos} if old else set()))
        plan, todo = self._plan(ident, {"photos": True}, paths, [], _listing(paths))
        plan["todo"] = todo
        self._apply({ident: plan}, progress, update)
        return update

    def remove(self, *names: str) -> Update:
        """Drop identities (InputError naming one that is not enrolled; nothing is dropped
        then)."""
        missing = [n for n in names if n not in self._ids]
        if missing:
            raise InputError(f"{self._where()}: no identity {missing[0]!r} enrolled (it has "
                             f"{self.n_identities}: {', '.join(self.identities[:5])}"
                             f"{', ...' if self.n_identities > 5 else ''})")
        for n in names:
            del self._ids[n]
        self._changed()
        return Update(removed=sorted(set(names)))

    def changes(self) -> list[dict[str, Any]]:
        """What changed on disk since the photos were enrolled (names, sizes and mtimes: no
        photo is read): per identity whose listing differs, the photos ``added``, ``removed``
        and ``modified``; an identity folder gone (``"folder missing"``); a new identity
        folder in an enrolled folder (``"new"``)."""
        out = []
        for name in self.identities:
            ident = self._ids[name]
            folder = ident.folder
            if folder is not None:
                if not folder.is_dir():
                    out.append({"identity": name, "change": "folder missing",
                                "folder": str(folder)})
                    continue
                _, _, listing, now = _folder_listing(folder)
            else:
                now = [r["path"] for r in ident.photos]
                listing = _listing(now)
            if listing == ident.listing:
                continue
            before = {r["path"]: r for r in ident.photos}
            added = sorted(set(now) - set(before))
            removed = sorted(p for p in before if p not in set(now) or _stat(p) is None)
            modified = sorted(p for p in before if p not in removed and
                              _stat(p) != (before[p]["size"], before[p]["mtime_ns"]))
            out.append({"identity": name, "change": "changed", "added": added,
                        "removed": removed, "modified": modified})
        for root in self.roots:
            if not Path(root).is_dir():
                out.append({"identity": None, "change": "folder missing", "folder": root})
                continue
            found, _ = list_identities(root)
            for name, path in found.items():
                if name not in self._ids:
                    out.append({"identity": name, "change": "new", "folder": _abs(path)})
        return out

    def refresh(self, progress: bool = False) -> Update:
        """Bring every identity up to date with its source (see the module docstring): only
        photos added or rewritten are embedded. An identity whose folder is gone is kept as it
        was, and said so (:meth:`remove` drops it)."""
        update = Update()
        plans = {}
        for name in self.identities:
            ident = self._ids[name]
            folder = ident.folder
            if folder is not None:
                if not folder.is_dir():
                    update.notes.append(f"{name}: its folder {folder} is gone; its templates "
                                        f"are kept (remove the identity to drop them)")
                    continue
                plans[name] = self._folder_plan(name, folder)[0]
            else:
                paths = [r["path"] for r in ident.photos]
                plan, todo = self._plan(name, ident.source, paths, [], _listing(paths))
                plan["todo"] = todo
                plans[name] = plan
        for root in self.roots:
            if not Path(root).is_dir():
                update.notes.append(f"enrolled folder {root} is gone; its identities are kept")
                continue
            found, _ = list_identities(root)
            for name, path in found.items():
                if name not in self._ids:
                    self._check_name(name, {"folder": _abs(path)})
                    plans[name] = self._folder_plan(name, path)[0]
        self._apply(plans, progress, update)
        return update

    def add_embedded(self, name: str, paths: Sequence[str], embedded: Embedded,
                     folder: str | Path | None = None) -> Update:
        """An identity from its photos embedded elsewhere (:mod:`mfr.gallery.sharded`) with
        this gallery's embedder and settings: `paths` and their
        :class:`~mfr.gallery.photos.Embedded`, in the same order; `folder` its identity folder
        (None: photos given one by one)."""
        update = Update()
        paths = [_abs(p) for p in paths]
        if folder is None:
            source, others, listing = {"photos": True}, [], _listing(paths)
        else:
            _, skipped, listing, _ = _folder_listing(Path(folder))
            source, others = {"folder": _abs(folder)}, [(_abs(p), why) for p, why in skipped]
        self._check_name(name, source)
        stats = {p: _stat(p) for p in paths}
        plan = {"source": source, "paths": paths, "others": others, "listing": listing,
                "stats": stats, "keep": {}, "todo": [p for p in paths if stats[p]]}
        given = {(name, p): (embedded, i) for i, p in enumerate(paths)}
        self._apply({name: plan}, False, update, given)
        return update

    # ------------------------------------------------------------------ searching

    def _searchable(self) -> tuple[Any, np.ndarray]:
        from mfr.gallery.search import templates

        if self._search_cache is None:
            if not self.n_templates:
                raise InputError(f"{self._where()}: the gallery is empty (no template enrolled"
                                 f"{': every photo was skipped' if self._ids else ''}); enrol "
                                 f"identities first")
            vec, norms, ids = self.templates()
            self._search_cache = (templates(vec, ids.astype(str)), norms)
        return self._search_cache

    def search(self, vectors: np.ndarray, k: int = 5, norms: np.ndarray | None = None,
               method: str = "exact") -> Any:
        """The `k` nearest identities of each embedding (unit rows; dlib's raw lengths in
        `norms` for a gallery on ``euclidean_raw``): a :class:`mfr.gallery.search.TopK`."""
        from mfr.gallery.search import top_k

        g, g_norms = self._searchable()
        vec = np.asarray(vectors, np.float32)
        if vec.ndim == 1:
            vec = vec[None, :]
        if self.distance == "euclidean_raw":
            if method != "exact":
                raise InputError("a gallery on dlib's raw Euclidean distance is searched "
                                 "exactly (an index ranks by cosine)")
            if norms is None:
                raise InputError("euclidean_raw: the probes' raw lengths are needed (norms)")
            from mfr.gallery.raw_search import raw_top_k

            return raw_top_k(vec, norms, g, g_norms, k)
        index = None
        if method == "index":
            index = self.index()
        return top_k(vec, g, k, metric=self.distance, method=method, index=index)

    def index(self) -> Any:
        """The faiss index of the templates (built when missing or stale)."""
        from mfr.gallery.index import SearchIndex

        g, _ = self._searchable()
        if self._index is None or self._index_fp != g.fingerprint:
            if self.distance == "euclidean_raw":
                raise InputError("an index ranks by cosine; this gallery ranks by dlib's raw "
                                 "Euclidean distance and is searched exactly")
            factory = self.index_factory or ("Flat" if len(g.vectors) < SMALL_INDEX else None)
            self._index = SearchIndex.build(g, factory)
            self._index_fp = g.fingerprint
        return self._index

    def identify(self, probes: Sequence[str | Path | np.ndarray] | str | Path, k: int = 5,
                 threshold: float | str | Path | None = None, *, fpir: float | None = None,
                 fmr: float | None = None, detect: bool | None = None,
                 no_face: str | None = None, method: str = "exact",
                 progress: bool = False) -> Any:
        """Who is in each probe photo? Each probe embedded as the gallery's photos were
        (`detect`, `no_face`: the gallery's unless given), its `k` nearest identities, and a
        decision at the threshold (:func:`mfr.gallery.decide.gallery_threshold`: a number, a
        thresholds.json, ``fpir`` / ``fmr`` calibrated on the gallery, or the embedder's
        documented default). A probe that cannot be searched (unreadable, no face found) is a
        row saying why. Returns :class:`mfr.gallery.decide.Identification`."""
        from mfr.gallery.decide import gallery_threshold, identification

        if isinstance(probes, str | Path) or (isinstance(probes, np.ndarray) and probes.ndim == 3):
            probes = [probes]
        probes = list(probes)
        if not probes:
            raise InputError("no probes given")
        thr = gallery_threshold(self, threshold, fpir=fpir, fmr=fmr)  # before slow work
        self._searchable()
        emb = embed_photos(probes, self.embedder, self.detect if detect is None else detect,
                           no_face or self.no_face, progress=progress)
        from mfr.gallery.photos import photo_label

        names = [photo_label(p, i) for i, p in enumerate(probes)]
        return identification(self, names, emb, thr, k, method)

    def identify_embeddings(self, vectors: np.ndarray, k: int = 5,
                            threshold: float | str | Path | None = None, *,
                            norms: np.ndarray | None = None, names: Sequence[str] | None = None,
                            fpir: float | None = None, fmr: float | None = None,
                            method: str = "exact") -> Any:
        """:meth:`identify` for embeddings made elsewhere by this gallery's embedder (unit
        rows; `norms` their raw lengths for a gallery on ``euclidean_raw``)."""
        from mfr.gallery.decide import gallery_threshold, identification

        vec = np.asarray(vectors, np.float32)
        if vec.ndim == 1:
            vec = vec[None, :]
        n = len(vec)
        thr = gallery_threshold(self, threshold, fpir=fpir, fmr=fmr)
        nm = (np.full(n, np.nan) if norms is None else np.asarray(norms, np.float64).ravel())
        emb = Embedded(vec, nm, [OK] * n, np.zeros(n, bool), [""] * n, [""] * n)
        labels = list(names) if names is not None else [f"probe {i}" for i in range(n)]
        return identification(self, labels, emb, thr, k, method)

    # ------------------------------------------------------------------ saving

    def save(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path:
        """Write the gallery into folder `path` (default: where it was loaded from) as the
        module docstring says, under the folder's lock. Refused (one line): a folder holding
        other files; another gallery there (unless `overwrite`); the gallery this one was
        loaded from, changed since by another writer."""
        if path is None and self.path is None:
            raise InputError("save: give the gallery's folder")
        path = Path(path) if path is not None else self.path
        with writing(path):
            record_file = path / RECORD
            current = _file_sha(record_file)
            same = self.path is not None and _abs(self.path) == _abs(path)
            if current is None and path.is_dir() and any(
                    not e.name.startswith(".") for e in os.scandir(path)):
                raise RunFolderError(f"{path}: holds files but no {RECORD}: not an mfr gallery "
                                     f"(choose a new or empty folder)")
            if current is not None:
                if same and current != self._loaded_digest:
                    raise RunFolderError(f"{path}: changed on disk since this gallery was "
                                         f"loaded (another writer); load it again and redo "
                                         f"the change")
                if not same and not overwrite:
                    raise RunFolderError(f"{path}: holds another gallery; choose another folder "
                                         f"(or overwrite=True)")
            path.mkdir(parents=True, exist_ok=True)
            files = self._write_data(path)
            record = self.record(files)
            from mfr.core.outputs import write_json

            write_json(record_file, record)
            keep = set(files.values())
            for e in os.scandir(path):
                if e.name not in keep and any(e.name.startswith(pre) and e.name.endswith(suf)
                                              for pre, suf in _DATA.values()):
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)
            self.path = path
            self._loaded_digest = _file_sha(record_file)
        return path

    def _write_data(self, folder: Path) -> dict[str, str]:
        vec, norms, _ = self.templates()
        out = {"templates": _npy_bytes(vec.astype(np.float32)),
               "norms": _npy_bytes(norms.astype(np.float64)),
               "photos": self.photos().to_csv(index=False, lineterminator="\n").encode()}
        if self.index_wanted and self.n_templates:
            out["index"] = self.index().to_bytes()
        names = {}
        from mfr.core.outputs import atomic_path

        for key, data in out.items():
            pre, suf = _DATA[key]
            name = f"{pre}{hashlib.sha256(data).hexdigest()[:16]}{suf}"
            target = folder / name
            if not target.is_file() or target.stat().st_size != len(data):
                with atomic_path(target) as tmp:
                    tmp.write_bytes(data)
            names[key] = name
        return names

    def record(self, files: dict[str, str] | None = None) -> dict[str, Any]:
        """gallery.json's content."""
        from mfr import __version__

        return {"format": FORMAT, "mfr_version": __version__,
                "embedder": {"name": self.embedder_name, "options": self.embedder_options,
                             "signature": self.signature, "description": self.description},
                "distance": self.distance, "detect": self.detect, "no_face": self.no_face,
                "index": {"keep": self.index_wanted, "factory": self.index_factory},
                "roots": list(self.roots), "dim": self.dim,
                "n_identities": self.n_identities, "n_templates": self.n_templates,
                "identities": {n: {"source": i.source, "listing": i.listing,
                                   "n_photos": len(i.photos), "n_templates": i.n_templates}
                               for n, i in sorted(self._ids.items())},
                "files": dict(sorted((files or {}).items()))}

    @classmethod
    def load(cls, path: str | Path, embedder: Any = None) -> Gallery:
        """The gallery saved in folder `path`. With `embedder`, it must be one whose
        embeddings are comparable with the gallery's (:meth:`check_embedder`), else one line
        refuses it; without, the gallery's own is built when first needed."""
        path = Path(path)
        for attempt in range(3):  # a writer may replace the files between two reads
            try:
                return cls._load(path, embedder)
            except _Moved:
                if attempt == 2:
                    raise InputError(f"{path}: being rewritten by another process; try "
                                     f"again") from None
        raise AssertionError("unreachable")

    @classmethod
    def _load(cls, path: Path, embedder: Any) -> Gallery:
        import pandas as pd

        record, digest = read_record(path)
        g = cls.__new__(cls)
        emb_rec = record["embedder"]
        g._embedder = None
        g.embedder_name = emb_rec["name"]
        g.embedder_options = dict(emb_rec.get("options") or {})
        g.signature = dict(emb_rec["signature"])
        g.description = dict(emb_rec.get("description") or {})
        g.distance = record["distance"]
        g.detect = bool(record["detect"])
        g.no_face = record["no_face"]
        idx = record.get("index") or {}
        g.index_wanted = bool(idx.get("keep"))
        g.index_factory = idx.get("factory")
        g.roots = list(record.get("roots") or [])
        g._search_cache = None
        g._index = None
        g._index_fp = None
        g.path = path
        g._loaded_digest = digest
        if embedder is not None:
            g.check_embedder(embedder)
            g._embedder = embedder
        files = record["files"]
        try:
            data = {k: (path / files[k]).read_bytes() for k in files}
        except FileNotFoundError:
            if read_record(path)[1] != digest:
                raise _Moved() from None
            raise InputError(f"{path}: a data file {RECORD} names is missing; the gallery is "
                             f"damaged (enrol again)") from None
        for key, name in files.items():
            if not name.startswith(_DATA[key][0] + hashlib.sha256(data[key]).hexdigest()[:16]):
                raise InputError(f"{path / name}: its bytes are not the ones {RECORD} names "
                                 f"(a damaged gallery: enrol again)")
        vec = np.load(io.BytesIO(data["templates"]), allow_pickle=False)
        norms = np.load(io.BytesIO(data["norms"]), allow_pickle=False)
        photos = pd.read_csv(io.BytesIO(data["photos"]), dtype=str, keep_default_na=False)
        if list(photos.columns) != PHOTO_COLUMNS or vec.ndim != 2 or len(norms) != len(vec):
            raise InputError(f"{path}: its data files do not have the shape {FORMAT} gives "
                             f"them (a damaged gallery: enrol again)")
        g._ids = {}
        recs_by: dict[str, list[dict[str, Any]]] = {}
        rows_by: dict[str, list[int]] = {}
        for r in photos.to_dict("records"):
            name = r.pop("identity")
            t = int(r.pop("template"))
            r["size"], r["mtime_ns"] = int(r["size"]), int(r["mtime_ns"])
            r["no_face_detected"] = r["no_face_detected"] == "True"
            recs_by.setdefault(name, []).append(r)
            if t >= 0:
                rows_by.setdefault(name, []).append(t)
        for name, info in record["identities"].items():
            rows = np.asarray(rows_by.get(name, []), dtype=np.int64)
            g._ids[name] = _Identity(dict(info["source"]), recs_by.get(name, []),
                                     vec[rows].astype(np.float32), norms[rows],
                                     info["listing"])
        if g.n_templates != len(vec) or set(recs_by) - set(g._ids):
            raise InputError(f"{path}: {RECORD} and its photos table disagree (a damaged "
                             f"gallery: enrol again)")
        if "index" in data and g.index_wanted:
            from mfr.gallery.index import SearchIndex

            g._index = SearchIndex.from_bytes(data["index"], str(path / files["index"]))
            g._index_fp = g._index.info.get("fingerprint")
        return g


class _Moved(Exception):
    """The gallery's files changed while it was being read."""


def _content(ident: _Identity) -> tuple:
    return ident.listing, [(r["path"], r["sha256"], r["status"]) for r in ident.photos]


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _file_sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _description(embedder: Any) -> dict[str, Any]:
    d = dict(embedder.describe())
    for k in ("n_images", "n_no_face_detected", "n_failed", "trunk_store"):
        d.pop(k, None)
    return d


def _words(sig: dict[str, Any]) -> str:
    """A signature in a few words: network, weights, face box."""
    parts = [sig.get("embedder") or "?"]
    w = sig.get("weights")
    if w:
        parts.append(f"weights {w[:40]}{'...' if len(w) > 40 else ''}")
    if sig.get("trained_layers"):
        parts.append("fine-tuned layers " + sig["trained_layers"][:40])
    if sig.get("face_box"):
        parts.append(f"face box {sig['face_box']}")
    return ", ".join(parts)


def read_record(path: str | Path) -> tuple[dict[str, Any], str]:
    """(gallery.json of folder `path`, checked; the sha256 of its bytes). One-line errors: no
    gallery there, not one, another format."""
    from mfr.core.readers.text import read_json

    path = Path(path)
    rec = path / RECORD
    if not path.is_dir():
        raise MissingError(f"{path}: no gallery here (expected a folder made by `mfr gallery "
                           f"enrol`, holding {RECORD})")
    if not rec.is_file():
        raise MissingError(f"{path}: not a gallery (no {RECORD}; expected a folder made by "
                           f"`mfr gallery enrol`)")
    data = read_json(rec, "the gallery.json of `mfr gallery enrol`")
    if data.get("format") != FORMAT:
        raise InputError(f"{rec}: format {data.get('format')!r}, expected {FORMAT!r}")
    for key, kind in (("embedder", dict), ("identities", dict), ("files", dict),
                      ("distance", str), ("no_face", str)):
        if not isinstance(data.get(key), kind):
            raise InputError(f"{rec}: '{key}' missing or not a {kind.__name__} (a damaged "
                             f"gallery.json)")
    if data["distance"] not in DISTANCES:
        raise InputError(f"{rec}: distance {data['distance']!r} (expected one of "
                         f"{', '.join(DISTANCES)})")
    files = data["files"]
    if not {"templates", "norms", "photos"} <= set(files) or not set(files) <= set(_DATA) or any(
            not isinstance(v, str) or "/" in v for v in files.values()):
        raise InputError(f"{rec}: 'files' must name templates, norms and photos")
    return data, _file_sha(rec) or ""


# --------------------------------------------------------------------------- writers

_HELD: dict[str, int] = {}


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Hold the gallery folder's lock (:func:`mfr.core.provenance.lock`) inside the block;
    re-entrant within this process. Another process holding it: one line, no wait."""
    from mfr.core.provenance import lock, unlock

    key = _abs(path)
    if _HELD.get(key, 0) == 0:
        lock(path)
    _HELD[key] = _HELD.get(key, 0) + 1
    try:
        yield
    finally:
        _HELD[key] -= 1
        if _HELD[key] == 0:
            del _HELD[key]
            unlock(path)


@contextlib.contextmanager
def edit_gallery(path: str | Path, embedder: Any = None, *, create: dict[str, Any] | None = None
                 ) -> Iterator[Gallery]:
    """Load the gallery in folder `path` (or, when there is none and `create` is given, a new
    one made with ``Gallery(embedder, **create)``), yield it, and save it when the block ends
    without an error; the folder is locked throughout (:func:`writing`)."""
    path = Path(path)
    with writing(path):
        if (path / RECORD).is_file():
            g = Gallery.load(path, embedder)
        elif create is not None:
            if embedder is None:
                raise InputError("a new gallery needs an embedder")
            g = Gallery(embedder, **create)
        else:
            read_record(path)  # says what is missing
            raise AssertionError("unreachable")
        yield g
        g.save(path)
