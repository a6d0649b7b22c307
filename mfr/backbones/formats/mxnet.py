"""A pure-Python (numpy) reader of MXNet's model files: ``<prefix>-symbol.json`` (the graph) and
``<prefix>-<epoch>.params`` (the weights), as ``mx.model.save_checkpoint`` writes them. No
MXNet import: the format is read as MXNet's sources define it.

``.params`` (``src/ndarray/ndarray.cc``, ``NDArray::Save(dmlc::Stream*, data, names)``; all
little-endian, as dmlc's serializer writes on x86/ARM):

- uint64 magic ``0x112`` (``kMXAPINDArrayListMagic``), uint64 reserved (0);
- uint64 count, then that many NDArrays (``NDArray::Save``):

  - uint32 magic: ``0xF993FAC9`` (V2, with storage type) or ``0xF993FACA`` (V3, NumPy shape
    semantics: ndim -1 or a dim -1 means "unknown", ndim 0 is a scalar); then int32 storage
    type (0 dense; 1 row-sparse and 2 CSR add a storage shape and aux arrays, not read here);
    the shape (int32 ndim, then ndim int64 dims; V2: ndim 0 = an empty "none" array, which ends
    the record); the context (int32 device type 1 CPU / 2 GPU / 3 CPU pinned / 5 CPU shared,
    int32 device id); int32 dtype flag (mshadow's ``TypeFlag``); the data, C order;
  - the legacy forms (``NDArray::LegacyLoad``): magic ``0xF993FAC8`` (V1: the same TShape as V2,
    no storage type), or no magic at all, the uint32 read being the ndim of a shape of uint32
    dims; then context, dtype flag and data as above;
- uint64 count of names (0, or the count of arrays), each a uint64 length and its bytes:
  ``arg:<name>`` for learned parameters, ``aux:<name>`` for auxiliary states (BatchNorm's
  moving mean and variance); Gluon's ``save_parameters`` writes bare names (read as args).

``-symbol.json`` (nnvm's graph JSON): ``{"nodes": [{"op", "name", "attrs", "inputs"}...],
"arg_nodes": [...], "heads": [[node, output, version]...]}``; nodes in topological order, an
input ``[node, output, version]`` (older files: ``[node, output]``; attributes under ``attr``
or ``param`` in pre-1.0 files); op ``"null"`` is a variable (the data or a parameter).

Anything else -- a missing, truncated or corrupted file, another magic, a size the file cannot
hold (checked against the bytes left before anything is allocated), names that do not match
the arrays, JSON that is not a symbol graph -- raises :class:`mfr.core.errors.InputError` (or
:class:`~mfr.core.errors.MissingError`) in one line naming the file and what was expected.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError, MissingError

__all__ = ["LIST_MAGIC", "MxnetParams", "SymbolGraph", "SymbolNode", "attr_bool", "attr_float",
           "attr_int", "attr_tuple", "read_ndarray_list", "read_params", "read_symbol"]

#: ``kMXAPINDArrayListMagic``: the first 8 bytes of a ``.params`` file
LIST_MAGIC = 0x112
_V1, _V2, _V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
#: mshadow's ``TypeFlag`` -> numpy dtype (little-endian); 12 (bfloat16) is widened to float32
_DTYPES: dict[int, str] = {0: "<f4", 1: "<f8", 2: "<f2", 3: "u1", 4: "<i4", 5: "i1", 6: "<i8",
                           7: "?", 8: "<i2", 9: "<u2", 10: "<u4", 11: "<u8", 12: "<u2"}
_BFLOAT16 = 12
_DEVICES = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
#: more dimensions than any MXNet tensor has (its TShape keeps 8 on the stack, any on the heap);
#: a bound that turns a corrupted ndim into an error rather than a huge read
_MAX_NDIM = 32


class _Reader:
    """Little-endian fields from bytes; every problem is a one-line InputError."""

    def __init__(self, data: bytes, path: Path, what: str) -> None:
        self.data, self.pos, self.path, self.what = data, 0, path, what

    def fail(self, expected: str, found: str | None = None, at: int | None = None) -> InputError:
        got = f", found {found}" if found is not None else ""
        pos = self.pos if at is None else at
        return InputError(f"{self.path}: not {self.what}: expected {expected} at byte {pos}{got}")

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or n > self.left:
            raise self.fail(what, f"{self.left} bytes left of {len(self.data)} (truncated?)")
        view = memoryview(self.data)[self.pos:self.pos + n]
        self.pos += n
        return view

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "little")

    def int(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "little", signed=True)


def _shape(r: _Reader, what: str, dim_bytes: int, ndim: int | None = None) -> tuple[int, ...] | None:
    """A TShape: int32 ndim then int64 dims (legacy: `ndim` given, uint32 dims). None: the
    "unknown" shape of NumPy semantics (ndim -1 or a dim -1)."""
    start = r.pos
    if ndim is None:
        ndim = r.int(4, f"{what} ndim")
    if ndim == -1:
        return None
    if not 0 <= ndim <= _MAX_NDIM:
        raise r.fail(f"{what} ndim in 0..{_MAX_NDIM}", str(ndim), at=start)
    dims = tuple(r.int(dim_bytes, f"{what} dims") if dim_bytes == 8 else r.uint(4, f"{what} dims")
                 for _ in range(ndim))
    if -1 in dims:
        return None
    if any(d < 0 for d in dims):
        raise r.fail(f"{what} dims >= 0", str(dims), at=start)
    return dims


def _ndarray(r: _Reader, what: str) -> np.ndarray | None:
    """One ``NDArray::Save`` record; None for an empty ("none") array."""
    start = r.pos
    magic = r.uint(4, f"{what} magic")
    if magic in (_V2, _V3):
        stype = r.int(4, f"{what} storage type")
        if stype != 0:
            kind = {1: "row-sparse", 2: "CSR"}.get(stype, f"unknown ({stype})")
            raise r.fail(f"{what} in dense storage (type 0)", f"{kind} storage", at=start + 4)
        shape = _shape(r, what, 8)
        if shape is None or (magic == _V2 and len(shape) == 0):
            return None
    elif magic == _V1:
        shape = _shape(r, what, 8)
        if shape is None or len(shape) == 0:
            return None
    elif magic <= _MAX_NDIM:  # pre-V1: the uint32 read was the ndim of a uint32 shape
        shape = _shape(r, what, 4, ndim=magic)
        if shape is None or len(shape) == 0:
            return None
    else:
        raise r.fail(f"{what} NDArray magic 0x{_V2:08X} (V2), 0x{_V3:08X} (V3) or a legacy form",
                     f"0x{magic:08X}", at=start)
    dev_at = r.pos
    device = r.int(4, f"{what} context device type")
    r.int(4, f"{what} context device id")
    if device not in _DEVICES:
        raise r.fail(f"{what} context device type in {sorted(_DEVICES)}", str(device), at=dev_at)
    flag_at = r.pos
    flag = r.int(4, f"{what} dtype flag")
    if flag not in _DTYPES:
        raise r.fail(f"{what} dtype flag in 0..12 (mshadow TypeFlag)", str(flag), at=flag_at)
    dtype = np.dtype(_DTYPES[flag])
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes > r.left:  # checked before allocating: a corrupted shape is an error, not a MemoryError
        raise r.fail(f"{what} data: {shape} {dtype.name} ({nbytes} bytes)",
                     f"{r.left} bytes left (truncated or corrupted?)")
    array = np.frombuffer(r.take(nbytes, f"{what} data"), dtype=dtype, count=count).reshape(shape)
    if flag == _BFLOAT16:  # bfloat16: the high half of a float32
        return (array.astype("<u4") << 16).view("<f4").astype(np.float32)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_ndarray_list(path: str | Path) -> list[tuple[str | None, np.ndarray | None]]:
    """The (name, array) records of an NDArray list file (``mx.nd.save``, a ``.params`` file), in
    file order; names are None when the file holds none, arrays None when empty ("none")."""
    path = Path(path)
    if not path.is_file():
        raise MissingError(f"{path}: file not found (expected an MXNet NDArray file, .params)")
    r = _Reader(path.read_bytes(), path, "an MXNet NDArray file (.params)")
    magic = r.uint(8, f"the magic 0x{LIST_MAGIC:X}")
    if magic != LIST_MAGIC:
        raise r.fail(f"the magic 0x{LIST_MAGIC:X} (kMXAPINDArrayListMagic)", f"0x{magic:X}", at=0)
    r.uint(8, "the reserved field")
    count_at = r.pos
    n = r.uint(8, "the number of arrays")
    if n * 4 > r.left:  # every record takes at least 4 bytes (a legacy empty one: ndim 0)
        raise r.fail("a number of arrays the file can hold", f"{n} with {r.left} bytes left",
                     at=count_at)
    arrays = [_ndarray(r, f"array {i}") for i in range(n)]
    names_at = r.pos
    k = r.uint(8, "the number of names")
    if k not in (0, n):
        raise r.fail(f"{n} names (one per array) or none", str(k), at=names_at)
    names: list[str | None] = []
    for i in range(k):
        length_at = r.pos
        length = r.uint(8, f"name {i} length")
        if length > r.left:
            raise r.fail(f"name {i}: a length the file can hold", f"{length} with {r.left} left",
                         at=length_at)
        raw = bytes(r.take(length, f"name {i}"))
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise r.fail(f"name {i} in UTF-8", repr(raw[:20]), at=length_at + 8) from None
    if r.left:
        raise r.fail("the end of the file", f"{r.left} more bytes")
    return list(zip(names or [None] * n, arrays, strict=True))


@dataclass
class MxnetParams:
    """A ``.params`` file: ``arrays`` by bare name (``arg:``/``aux:`` stripped), ``aux`` the names
    that were ``aux:`` (auxiliary states: BatchNorm's moving statistics)."""

    path: Path
    arrays: dict[str, np.ndarray]
    aux: frozenset[str] = field(default_factory=frozenset)

    @property
    def args(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.arrays.items() if k not in self.aux}

    def n_values(self) -> int:
        return sum(int(a.size) for a in self.arrays.values())


def read_params(path: str | Path) -> MxnetParams:
    """A named ``.params`` file (``mx.model.save_checkpoint``, Gluon's ``save_parameters``)."""
    path = Path(path)
    records = read_ndarray_list(path)
    what = f"{path}: not an MXNet parameter file (.params)"
    arrays: dict[str, np.ndarray] = {}
    aux: set[str] = set()
    for i, (name, array) in enumerate(records):
        if name is None:
            raise InputError(f"{what}: expected named arrays (arg:/aux:), found {len(records)} "
                             f"unnamed ones")
        kind, sep, bare = name.partition(":")
        if not sep or kind not in ("arg", "aux"):
            kind, bare = "arg", name
        if not bare or bare in arrays:
            raise InputError(f"{what}: expected unique non-empty names, found {name!r} (array {i})")
        if array is None:
            raise InputError(f"{what}: expected a value for {name!r}, found an empty array")
        arrays[bare] = array
        if kind == "aux":
            aux.add(bare)
    return MxnetParams(path, arrays, frozenset(aux))


# --------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class SymbolNode:
    """One node: ``op`` (``"null"``: a variable), ``name``, ``attrs`` (strings, as MXNet writes
    them) and ``inputs``, as (node index, output index) pairs."""

    op: str
    name: str
    attrs: dict[str, str]
    inputs: tuple[tuple[int, int], ...]


@dataclass
class SymbolGraph:
    """A ``-symbol.json``: nodes in topological order, the output heads as (node, output)."""

    path: Path
    nodes: list[SymbolNode]
    heads: list[tuple[int, int]]
    mxnet_version: int | None = None

    def ops(self) -> list[SymbolNode]:
        return [n for n in self.nodes if n.op != "null"]


def read_symbol(path: str | Path) -> SymbolGraph:
    """Read an MXNet ``-symbol.json`` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise MissingError(f"{path}: file not found (expected an MXNet graph, -symbol.json)")
    what = f"{path}: not an MXNet symbol graph (-symbol.json)"
    try:
        doc = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{what}: expected JSON, {type(e).__name__} at "
                         f"{getattr(e, 'pos', getattr(e, 'start', '?'))}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) \
            or not isinstance(doc.get("heads"), list):
        found = sorted(doc)[:6] if isinstance(doc, dict) else type(doc).__name__
        raise InputError(f"{what}: expected an object with 'nodes' and 'heads', found {found}")
    nodes: list[SymbolNode] = []
    names: set[str] = set()
    for i, raw in enumerate(doc["nodes"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("op"), str) \
                or not isinstance(raw.get("name"), str) or not isinstance(raw.get("inputs"), list):
            raise InputError(f"{what}: expected node {i} to have 'op', 'name' and 'inputs'")
        attrs = raw.get("attrs", raw.get("attr", raw.get("param"))) or {}
        if not isinstance(attrs, dict):
            raise InputError(f"{what}: expected node {i} ({raw['name']!r}) attrs to be an object")
        inputs = tuple(_entry(e, i, what, f"node {i} ({raw['name']!r}) input") for e in raw["inputs"])
        if raw["name"] in names:
            raise InputError(f"{what}: expected unique node names, found {raw['name']!r} twice")
        names.add(raw["name"])
        nodes.append(SymbolNode(raw["op"], raw["name"], {str(k): str(v) for k, v in attrs.items()},
                                inputs))
    heads = [_entry(e, len(nodes), what, "head") for e in doc["heads"]]
    if not nodes or not heads:
        raise InputError(f"{what}: expected at least one node and one head")
    version = doc.get("attrs", {}).get("mxnet_version") if isinstance(doc.get("attrs"), dict) else None
    mx_version = int(version[1]) if isinstance(version, list) and len(version) == 2 \
        and str(version[1]).isdigit() else None
    return SymbolGraph(path, nodes, heads, mx_version)


def _entry(e: Any, before: int, what: str, role: str) -> tuple[int, int]:
    """[node, output(, version)] with node < `before` (topological order)."""
    if not (isinstance(e, list) and len(e) in (2, 3) and all(isinstance(x, int) for x in e)
            and 0 <= e[0] < before and e[1] >= 0):
        raise InputError(f"{what}: expected {role} [node < {before}, output(, version)], found {e!r}")
    return e[0], e[1]


# --------------------------------------------------------------------------- attributes

_TUPLE = re.compile(r"^\s*[(\[]?\s*(-?\d+(\s*,\s*-?\d+)*)?\s*,?\s*[)\]]?\s*$")


def _bad(node: SymbolNode, key: str, expected: str, graph_path: Path | None) -> InputError:
    where = f"{graph_path}: " if graph_path else ""
    return InputError(f"{where}node {node.name!r} ({node.op}): expected attribute {key!r} to be "
                      f"{expected}, found {node.attrs.get(key)!r}")


def attr_tuple(node: SymbolNode, key: str, default: tuple[int, ...] | None = None,
               graph_path: Path | None = None) -> tuple[int, ...]:
    """An MXNet shape attribute, ``"(3, 3)"``, as a tuple of ints."""
    if key not in node.attrs:
        if default is None:
            raise _bad(node, key, "given", graph_path)
        return default
    m = _TUPLE.match(node.attrs[key])
    if m is None:
        raise _bad(node, key, "a tuple of integers", graph_path)
    return tuple(int(x) for x in re.findall(r"-?\d+", node.attrs[key]))


def attr_int(node: SymbolNode, key: str, default: int | None = None,
             graph_path: Path | None = None) -> int:
    if key not in node.attrs:
        if default is None:
            raise _bad(node, key, "given", graph_path)
        return default
    try:
        return int(node.attrs[key])
    except ValueError:
        raise _bad(node, key, "an integer", graph_path) from None


def attr_float(node: SymbolNode, key: str, default: float, graph_path: Path | None = None) -> float:
    try:
        return float(node.attrs.get(key, default))
    except ValueError:
        raise _bad(node, key, "a number", graph_path) from None


def attr_bool(node: SymbolNode, key: str, default: bool, graph_path: Path | None = None) -> bool:
    """dmlc's bool parameter: ``True``/``False``/``1``/``0`` (any case)."""
    value = node.attrs.get(key)
    if value is None:
        return default
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise _bad(node, key, "True or False", graph_path)
