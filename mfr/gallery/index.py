"""An optional faiss index of a gallery's templates (``pip install 'mfr[index]'``): a shortlist
of rows per probe, which :func:`mfr.gallery.search.top_k` (``method="index"``) re-ranks exactly.

faiss is imported only when an index is built or read; without it, a one-line
:class:`~mfr.core.errors.MissingError` names the extra. Every random choice is seeded (the
training sample, the quantisers' k-means, an HNSW graph's levels) and the build runs on one
thread by default, so the same templates give the same bytes. The bytes
(:meth:`SearchIndex.to_bytes`, :meth:`SearchIndex.write`, atomic) hold a JSON header (factory
string, search and build parameters, shortlist, seed, the fingerprint of the templates) and
faiss's own serialisation.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError, MissingError
from mfr.gallery.search import Templates, rank_candidates, score_margin

__all__ = ["DEFAULT_SHORTLIST", "DEFAULT_TRAIN_SIZE", "INDEX_INSTALL", "SearchIndex",
           "default_factory", "faiss_threads"]

INDEX_INSTALL = "pip install 'mfr[index]'"
#: rows the index returns per probe, all re-ranked exactly
DEFAULT_SHORTLIST = 1000
#: rows sampled (seeded) to train a quantiser
DEFAULT_TRAIN_SIZE = 100_000
_MAGIC = b"MFR-GALLERY-INDEX 1\n"


def _faiss():
    try:
        import faiss
    except ImportError:
        raise MissingError(f"the approximate index needs faiss, which is not installed: "
                           f"{INDEX_INSTALL}") from None
    return faiss


@contextlib.contextmanager
def faiss_threads(n: int | None) -> Iterator[None]:
    """faiss's OpenMP threads set to `n` inside the block (None: left as they are)."""
    if n is None:
        yield
        return
    if n < 1:
        raise InputError(f"threads must be >= 1, got {n}")
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def default_factory(dim: int) -> str:
    """The default index: faiss's 4-bit fast-scan product quantiser with 2 dimensions per
    sub-quantiser (1 where `dim` is odd), scanned in full."""
    return f"PQ{dim // 2 if dim % 2 == 0 else dim}x4fs"


def _seed(index: Any, seed: int, faiss: Any) -> None:
    """Seed every random choice of a faiss index's training and building: the k-means of its
    quantisers, the levels of an HNSW graph (faiss's own default seeds otherwise)."""
    for part in (index, getattr(index, "pq", None)):
        cp = getattr(part, "cp", None)
        if cp is not None:
            cp.seed = int(seed)
    quantizer = getattr(index, "quantizer", None)
    if quantizer is not None and quantizer is not index:
        _seed(faiss.downcast_index(quantizer), seed, faiss)
    hnsw = getattr(index, "hnsw", None)
    if hnsw is not None:
        hnsw.rng = faiss.RandomGenerator(int(seed))


def _set_params(index: Any, params: dict[str, float], factory: str) -> None:
    """faiss search parameters by their ``ParameterSpace`` names (one-line InputError)."""
    if not params:
        return
    space = _faiss().ParameterSpace()
    try:
        for name, value in sorted(params.items()):
            space.set_index_parameter(index, name, value)
    except RuntimeError as e:
        msg = str(e).strip().splitlines()
        raise InputError(f"faiss index {factory!r}: {msg[-1] if msg else e}") from None


class SearchIndex:
    """A faiss index of a gallery's templates: it gives each probe a shortlist of rows, which
    :func:`top_k` re-ranks exactly (see the module docstring).

    Build with :meth:`build`; keep with :meth:`to_bytes` / :meth:`write` and get back with
    :meth:`from_bytes` / :meth:`read` (the bytes hold the faiss index and a JSON header: the
    factory string, search parameters, shortlist, seed and the fingerprint of the templates it
    indexes, checked before every search).
    """

    def __init__(self, index: Any, info: dict[str, Any]):
        self._index = index
        self.info = info

    @property
    def shortlist(self) -> int:
        return int(self.info["shortlist"])

    @classmethod
    def build(cls, gallery: Templates, factory: str | None = None, *,
              params: dict[str, float] | None = None,
              build_params: dict[str, int] | None = None, shortlist: int = DEFAULT_SHORTLIST,
              train_size: int = DEFAULT_TRAIN_SIZE, seed: int = 2021,
              threads: int | None = 1) -> SearchIndex:
        """Train (on `train_size` rows drawn with `seed`, sorted) and fill a faiss index
        (inner product) of `gallery`'s templates.

        Args:
            factory: a faiss ``index_factory`` string (default :func:`default_factory`).
            params: search parameters (faiss ``ParameterSpace`` names: ``efSearch``,
                ``nprobe``...).
            build_params: ``{"efConstruction": ...}`` of an HNSW graph (faiss's default 40).
            shortlist: rows asked of faiss per probe, all re-ranked exactly.
            threads: faiss threads while building (1 by default: an HNSW graph's
                insertion runs in parallel, and nothing promises the same graph from a
                parallel build, though 2 threads gave the same bytes on 50k vectors; the
                quantisers built the same bytes on 1 and 2 threads).
        """
        faiss = _faiss()
        if shortlist < 1:
            raise InputError(f"shortlist must be >= 1, got {shortlist}")
        n, dim = gallery.vectors.shape
        if n == 0:
            raise InputError("an index of an empty gallery: enrol some templates first")
        factory = factory or default_factory(dim)
        params = dict(params or {})
        try:
            with faiss_threads(threads):
                index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
                _seed(index, seed, faiss)
                for name, value in sorted((build_params or {}).items()):
                    if name != "efConstruction" or not hasattr(index, "hnsw"):
                        raise InputError(f"faiss index {factory!r}: no build parameter "
                                         f"{name!r} (only an HNSW graph's efConstruction)")
                    index.hnsw.efConstruction = int(value)
                if not index.is_trained:
                    m = min(n, int(train_size))
                    pick = (np.arange(n) if m == n else
                            np.sort(np.random.default_rng(seed).choice(n, m, replace=False)))
                    index.train(np.ascontiguousarray(gallery.vectors[pick]))
                for s in range(0, n, 1 << 18):
                    index.add(gallery.vectors[s:s + (1 << 18)])
            _set_params(index, params, factory)
        except RuntimeError as e:
            msg = str(e).strip().splitlines()
            raise InputError(f"faiss index {factory!r}: {msg[-1] if msg else e}") from None
        info = {"factory": factory, "params": params, "build_params": dict(build_params or {}),
                "shortlist": int(shortlist),
                "seed": int(seed), "train_size": int(min(n, train_size)), "n_rows": int(n),
                "dim": int(dim), "fingerprint": gallery.fingerprint,
                "faiss_version": faiss.__version__}
        return cls(index, info)

    def tune(self, params: dict[str, float] | None = None, shortlist: int | None = None
             ) -> SearchIndex:
        """Change the search parameters (merged into the current ones) and/or the shortlist, in
        place (the index itself is unchanged); returns self."""
        if shortlist is not None:
            if shortlist < 1:
                raise InputError(f"shortlist must be >= 1, got {shortlist}")
            self.info["shortlist"] = int(shortlist)
        if params:
            _set_params(self._index, params, self.info["factory"])
            self.info["params"] = {**self.info["params"], **params}
        return self

    def check(self, gallery: Templates) -> None:
        """InputError unless this index was built on `gallery`'s templates."""
        if (self.info["n_rows"], self.info["dim"]) != gallery.vectors.shape:
            raise InputError(f"the index holds {self.info['n_rows']} x {self.info['dim']} "
                             f"templates, the gallery {gallery.vectors.shape[0]} x "
                             f"{gallery.vectors.shape[1]}: rebuild it")
        if self.info["fingerprint"] != gallery.fingerprint:
            raise InputError("the index was built on other templates than the gallery's: "
                             "rebuild it")

    def shortlist_rows(self, probes32: np.ndarray, n: int, threads: int | None = None
                       ) -> np.ndarray:
        """(n_probes, n) template rows (grouped order, -1 where fewer) faiss ranks first."""
        with faiss_threads(threads):
            _, idx = self._index.search(np.ascontiguousarray(probes32, np.float32), int(n))
        return idx.astype(np.int64, copy=False)

    def top_k_codes(self, p32: np.ndarray, g: Templates, k: int, threads: int | None):
        """Exact top k among the shortlists; a probe whose shortlist holds fewer than k
        identities (several templates each) is asked again with a shortlist twice as long."""
        p64 = p32.astype(np.float64)
        n_rows = len(g.vectors)
        todo = np.arange(len(p32))
        size = min(self.shortlist, n_rows)
        out = (np.full((len(p32), k), -1, dtype=np.int64),
               np.full((len(p32), k), -1, dtype=np.int64),
               np.full((len(p32), k), -np.inf, dtype=np.float64))
        while todo.size:
            rows = self.shortlist_rows(p32[todo], size, threads)
            valid = rows >= 0
            # float32 scores (within score_margin of the exact ones), block by block of
            # probes (BLAS per probe, ~16 MB of gathered templates at a time), so that only
            # the shortlist's best few are scored in float64
            approx = np.empty(rows.shape, dtype=np.float32)
            step = max(1, (1 << 22) // (rows.shape[1] * g.dim))
            for s in range(0, len(rows), step):
                block = g.vectors[np.maximum(rows[s:s + step], 0)]
                approx[s:s + step] = np.matmul(block, p32[todo[s:s + step], :, None])[..., 0]
            approx[~valid] = -np.inf
            if g.one_per_identity:  # a row is an identity: keep those near the k-th best
                m = rows.shape[1]
                kth = np.partition(approx, m - min(k, m), axis=1)[:, m - min(k, m)]
                probe, col = np.nonzero(valid & (approx >= (kth - score_margin(g.dim))[:, None]))
                res = rank_candidates(p64[todo], g, probe, g.codes[rows[probe, col]], None, k)
            else:  # rank_candidates takes each identity's best row
                probe, col = np.nonzero(valid)
                res = rank_candidates(p64[todo], g, probe, g.codes[rows[probe, col]],
                                      approx[probe, col], k)
            for o, r in zip(out, res[:3], strict=True):
                o[todo] = r
            short = (res[3] < min(k, g.n_identities)) & (size < n_rows)
            todo, size = todo[short], min(2 * size, n_rows)
        return out

    @property
    def nbytes(self) -> int:
        """The size of the serialised faiss index."""
        return int(_faiss().serialize_index(self._index).size)

    def to_bytes(self) -> bytes:
        faiss = _faiss()
        header = json.dumps(self.info, sort_keys=True).encode()
        body = faiss.serialize_index(self._index).tobytes()
        return _MAGIC + struct.pack("<Q", len(header)) + header + body

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "index") -> SearchIndex:
        faiss = _faiss()
        if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 8:
            raise InputError(f"{what}: not an mfr gallery index")
        (n,) = struct.unpack_from("<Q", data, len(_MAGIC))
        start = len(_MAGIC) + 8
        try:
            info = json.loads(data[start:start + n])
            index = faiss.deserialize_index(np.frombuffer(data, np.uint8, offset=start + n))
        except (ValueError, RuntimeError) as e:
            raise InputError(f"{what}: a damaged mfr gallery index "
                             f"({str(e).strip().splitlines()[-1][:200]})") from None
        _set_params(index, info.get("params", {}), info.get("factory", "?"))
        return cls(index, info)

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_bytes` to `path` (a temp file renamed into place)."""
        from mfr.core.outputs import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_bytes(self.to_bytes())
        return Path(path)

    @classmethod
    def read(cls, path: str | Path) -> SearchIndex:
        path = Path(path)
        if not path.is_file():
            raise MissingError(f"{path}: no such index file")
        return cls.from_bytes(path.read_bytes(), str(path))
