"""Issue 28: every reader of user input (mfr.core.readers and the file formats read through it),
fed generated malformed input. Each property: the reader returns what its contract says, or
raises one MfrError line -- never another exception, never a hang, never a whole bad value
echoed. Example counts are small so that the file runs in seconds."""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from mfr.core.errors import InputError, MfrError
from mfr.core.readers import images, numbers, paths, profiles, tables, text

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SOME = settings(max_examples=15, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_COUNTER = itertools.count()
_TMP = Path(tempfile.mkdtemp(prefix="mfr-readers-"))


def _file(data: bytes | str, name: str = "f") -> Path:
    """A fresh file holding `data` (hypothesis runs many examples per test: one file each)."""
    path = _TMP / f"{next(_COUNTER)}-{name}"
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _one_line(e: BaseException, limit: int = 600) -> str:
    """The error is one short line (no value echoed whole)."""
    msg = str(e)
    assert "\n" not in msg and len(msg) <= limit, msg[:2000]
    return msg


# --------------------------------------------------------------------------- text

_BOMS = [b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00"]
_ENCODINGS = ["utf-8", "latin-1", "utf-16", "cp1252", "utf-32"]


@FAST
@given(body=st.binary(max_size=400), bom=st.sampled_from(_BOMS),
       nul=st.one_of(st.none(), st.integers(0, 400)))
def test_text_reader_on_random_bytes(body, bom, nul):
    data = bom + body
    if nul is not None:
        data = data[:nul] + b"\0" + data[nul:]
    path = _file(data)
    try:
        got = text.read_text(path, "a test file")
    except InputError as e:
        assert str(path) in _one_line(e)
        return
    raw = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    assert got == raw.decode("utf-8") and "\0" not in got


@FAST
@given(content=st.text(max_size=200), encoding=st.sampled_from(_ENCODINGS),
       bom=st.booleans())
def test_text_reader_on_random_encodings(content, encoding, bom):
    try:
        data = content.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    if bom and encoding == "utf-8":
        data = b"\xef\xbb\xbf" + data
    path = _file(data)
    try:
        got = text.read_text(path, "a test file")
    except InputError as e:
        assert str(path) in _one_line(e)
        # refused only what is not NUL-free UTF-8
        assert encoding != "utf-8" or "\0" in content or content.startswith("\ufeff")
        return
    assert got == data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")


def test_text_reader_bounds_size_and_refuses_what_is_not_a_file(tmp_path):
    big = _file(b"x" * 5000)
    with pytest.raises(InputError, match="5,000 bytes, over the limit of 1,000"):
        text.read_text(big, "a test file", max_bytes=1000)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputError, match="is a FIFO"):
        text.read_text(tmp_path / "fifo", "a test file")  # no hang: refused before open
    with pytest.raises(InputError, match="is a folder, not a file"):
        text.read_text(tmp_path, "a test file")
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(InputError, match="symbolic link loop"):
        text.read_text(tmp_path / "loop", "a test file")
    with pytest.raises(MfrError, match="not found"):
        text.read_text(tmp_path / "absent", "a test file")


_JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers()
                     | st.text(max_size=20),
                     lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.text(max_size=10), kids, max_size=4), max_leaves=20)


@FAST
@given(value=_JSON, cut=st.one_of(st.none(), st.integers(0, 200)))
def test_json_reader_returns_an_object_or_one_line(value, cut):
    data = json.dumps(value)
    if cut is not None:
        data = data[:cut]
    path = _file(data)
    try:
        got = text.read_json(path, "a test record")
    except InputError as e:
        assert str(path) in _one_line(e)
        return
    assert isinstance(got, dict)


def test_excerpt_never_quotes_a_whole_long_value():
    long = "x" * 100_000
    assert len(text.excerpt(long)) < 100 and "100000 characters" in text.excerpt(long)
    assert len(text.excerpt(list(range(100_000)))) < 100
    assert text.excerpt("ok") == "'ok'"


# --------------------------------------------------------------------------- paths

_SEGMENT = st.sampled_from(["a", "b", "..", ".", "", "c.jpg", "/", "\\", "C:", "\0", "~"])


@FAST
@given(parts=st.lists(_SEGMENT, max_size=6), lead=st.sampled_from(["", "/", "\\", "C:\\"]))
def test_relative_inside_accepts_only_paths_that_stay_in_the_tree(parts, lead):
    rel = lead + "/".join(parts)
    root = _TMP / "root"
    root.mkdir(exist_ok=True)
    try:
        paths.relative_inside(rel, "FILE: line 2")
    except InputError as e:
        assert _one_line(e).startswith("FILE: line 2: ")
        return
    full = os.path.normpath(root / rel.replace("\\", "/"))
    assert full == str(root) or full.startswith(str(root) + os.sep)


@FAST
@given(name=st.text(max_size=12))
def test_name_part_is_one_component(name):
    try:
        paths.name_part(name, "FILE:1")
    except InputError as e:
        _one_line(e)
        return
    assert (Path("/r") / name).parent == Path("/r") and name not in (".", "..")


def test_list_folder_lists_loops_fifos_and_dangling_links_never_fails(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.jpg").write_bytes(b"x")
    os.symlink("loop", tmp_path / "loop")
    os.symlink("nothing", tmp_path / "dangling")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / ".hidden").write_bytes(b"x")
    odd = os.path.join(os.fsencode(tmp_path), b"\xff.jpg")
    open(odd, "wb").close()
    entries, skipped = paths.list_folder(tmp_path)
    assert [(e.name, e.kind) for e in entries] == [("dir", "dir"), ("file.jpg", "file")]
    why = dict(skipped)
    assert "symbolic link loop" in why["loop"] and "dangling" in why["dangling"]
    assert "FIFO" in why["fifo"] and why["\\xff.jpg"] == "name is not valid UTF-8"
    assert paths.list_folder(tmp_path / "absent")[1][0][1].startswith("folder cannot be listed")
    assert paths.list_folder(tmp_path / "loop")[0] == []


# --------------------------------------------------------------------------- tables

_CELL = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0\r"), max_size=8)


@FAST
@given(header=st.lists(st.sampled_from(["a", "b", "c", "label", "x"]), min_size=0, max_size=4),
       rows=st.lists(st.lists(_CELL, max_size=5), max_size=6), raw=st.booleans())
def test_table_reader_returns_rectangular_rows_or_one_line(header, rows, raw):
    buf = io.StringIO()
    if raw:  # cells joined without quoting: commas and quotes break rows
        buf.write("\n".join(",".join(r) for r in [header, *rows]))
    else:
        w = csv.writer(buf, lineterminator="\n")
        w.writerows([header, *rows])
    path = _file(buf.getvalue())
    try:
        df = tables.read_table(path, ("a", "b"), "a test table", optional=("label",),
                               exact=False)
    except InputError as e:
        assert str(path) in _one_line(e)
        return
    assert {"a", "b"} <= set(df.columns) <= {"a", "b", "label"}
    assert len(df) == len(df.attrs["lines"])
    assert all(isinstance(v, str) for col in df.columns for v in df[col])


# --------------------------------------------------------------------------- pair tables

_PAIR = st.tuples(st.sampled_from(["s0", "s1", "s2"]), st.sampled_from(["s0", "s1", "s2"]),
                  st.integers(0, 3))
_DAMAGE = st.sampled_from([None, None, "label", "fields4", "fields6", "escape", "absolute",
                           "subject", "genuine", "impostor", "repeat", "nul", "latin1", "bom"])


@FAST
@given(pairs=st.lists(_PAIR, min_size=1, max_size=6), damage=_DAMAGE, where=st.integers(0, 5))
def test_pair_table_reader_on_damaged_rows(pairs, damage, where):
    from mfr.data.pairs import COLUMNS, read_pairs

    rows = [[f"u/{a}/{k}.jpg", f"m/{b}/{k}.jpg", str(int(a == b)), a, b] for a, b, k in pairs]
    rows = [list(r) for r in dict.fromkeys(map(tuple, rows))]
    i = where % len(rows)
    r = rows[i]
    if damage == "label":
        r[2] = "2"
    elif damage == "fields4":
        r.pop()
    elif damage == "fields6":
        r.append("x")
    elif damage == "escape":
        r[0] = "../outside/" + r[0]
    elif damage == "absolute":
        r[1] = "/etc/" + r[1]
    elif damage == "subject":
        r[3] = r[3] + "x"
    elif damage in ("genuine", "impostor"):
        r[2] = "1" if r[2] == "0" else "0"
    elif damage == "repeat":
        rows.append(list(r))
    body = "\n".join(",".join(x) for x in [COLUMNS, *rows]) + "\n"
    data = body.encode("utf-8")
    if damage == "nul":
        data = data.replace(b"\n", b"\0\n", 1)
    elif damage == "latin1":
        data = data.replace(b"u/", "\u00e9/".encode("latin-1"), 1)
    elif damage == "bom":
        data = b"\xef\xbb\xbf" + data
    path = _file(data, "test.csv")
    try:
        df = read_pairs(path)
    except InputError as e:
        assert str(path) in _one_line(e)
        assert damage not in (None, "bom"), e
        return
    assert damage in (None, "bom")
    assert list(df.columns) == COLUMNS and df["label"].dtype == np.int64
    assert (df["label"] == (df["unmasked_subject"] == df["masked_subject"])).all()
    assert not df.duplicated(["unmasked_path", "masked_path"]).any()


def test_a_genuine_label_on_two_subjects_and_a_subject_off_its_folder_are_refused():
    from mfr.data.pairs import COLUMNS, read_pairs

    head = ",".join(COLUMNS) + "\n"
    path = _file(head + "u/a/1.jpg,m/b/1.jpg,1,a,b\n")
    with pytest.raises(InputError, match=r"line 2: label genuine \(1\) on two subjects"):
        read_pairs(path)
    path = _file(head + "u/a/1.jpg,m/b/1.jpg,1,a,a\n")  # the subjects agree, the photos do not
    with pytest.raises(InputError, match=r"line 2: masked_subject 'a', but its image .* in "
                                         r"folder 'b'"):
        read_pairs(path)
    path = _file(head + "u/a/1.jpg,m/b/1.jpg,0,a,b\nu/a/1.jpg,m/a/2.jpg,1,a,a\n")
    assert len(read_pairs(path)) == 2


# --------------------------------------------------------------------------- MFR2 files

_LABEL_LINE = st.one_of(
    st.tuples(st.sampled_from(["Ann", "Bob", "../outside", "a/b", "..", "", "Ann Lee"]),
              st.sampled_from(["1", "2", "x", "-1", "0", "99999", "١"]),
              st.sampled_from(["no-mask", "cloth", ""])).map(lambda t: ", ".join(t)),
    st.text(max_size=20))


@SOME
@given(labels=st.lists(_LABEL_LINE, min_size=1, max_size=6),
       pairs=st.lists(st.text(alphabet="AnBob 12x", max_size=14), max_size=5),
       bom=st.booleans(), encoding=st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))
def test_mfr2_label_and_pair_files_on_random_lines(labels, pairs, bom, encoding):
    from mfr.data.datasets.mfr2 import mfr2_pairs, read_mfr2_labels

    root = _TMP / f"mfr2-{next(_COUNTER)}"
    root.mkdir()
    try:
        body = ("\n".join(labels) + "\n").encode(encoding)
    except UnicodeEncodeError:
        body = b"\xff\n"
    (root / "mfr2_labels.txt").write_bytes((b"\xef\xbb\xbf" if bom else b"") + body)
    (root / "pairs.txt").write_text("\n".join(pairs) + "\n")
    try:
        rows = read_mfr2_labels(root)
    except InputError as e:
        assert "mfr2_labels.txt" in _one_line(e)
        return
    for name, i, _ in rows:
        assert name and "/" not in name and name != ".." and 0 < i < 10_000
    try:
        df = mfr2_pairs(root)
    except InputError as e:
        assert str(root) in _one_line(e)
        return
    except UserWarning:
        return
    assert set(df["label"]) <= {0, 1}


def test_mfr2_labels_with_a_bom_read_as_without(tmp_path):
    from mfr.data.datasets.mfr2 import mfr2_pairs, read_mfr2_labels

    (tmp_path / "mfr2_labels.txt").write_bytes(
        b"\xef\xbb\xbfAhmadAli, 1, no-mask\nAhmadAli, 2, cloth\n")
    (tmp_path / "pairs.txt").write_text("AhmadAli 1 2\n")
    assert read_mfr2_labels(tmp_path)[0] == ("AhmadAli", 1, "no-mask")
    assert len(mfr2_pairs(tmp_path)) == 1


# --------------------------------------------------------------------------- profiles

_YAML_BITS = st.sampled_from([
    "epochs: 3\n", "epochs: 4\n", "a: &x [1, 2]\n", "b: *x\n", "<<: {epochs: 2}\n",
    "seed: -1\n", "seed: 99999999999999999999\n", "image_size: 100000\n", "margin: .nan\n",
    "bootstrap_resamples: 1000000000000\n", "trainable_layers: [10, 20]\n", "[1]: 2\n",
    "? [a]\n: 1\n", "weights: null\n", "epochs: [1, [2, [3]]]\n", "- 1\n", "epochs: '3'\n",
    "\t:\n", "x: \"unterminated\n", "epochs: !!python/object:os.system ls\n", "null: 1\n",
    "learning_rate: 1e-3\n", "batch_size: 0\n", "{", "%YAML 1.1\n---\n", "---\n---\n",
])


@FAST
@given(bits=st.lists(_YAML_BITS, max_size=6), junk=st.binary(max_size=8))
def test_profile_reader_and_config_on_random_profiles(bits, junk):
    from mfr.core.config import StudyConfig, load_config

    path = _file("".join(bits).encode("utf-8") + junk, "p.yaml")
    try:
        cfg = load_config(path)
    except MfrError as e:
        assert str(path) in _one_line(e)
        return
    assert isinstance(cfg, StudyConfig)
    joined = "".join(bits)
    assert "&x" not in joined and "<<" not in joined  # anchors, merges: never accepted
    assert sum(b.startswith("epochs:") for b in bits) <= 1  # nor a key given twice


def test_an_alias_bomb_is_refused_at_its_first_anchor_without_expanding():
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, prev in zip("bcdefghi", "abcdefgh", strict=True):
        rows.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    rows.append("epochs: [" + ",".join(["*i"] * 9) + "]")
    path = _file("\n".join(rows) + "\n", "bomb.yaml")
    assert path.stat().st_size < 1000
    with pytest.raises(InputError, match=r"bomb\.yaml: line 1: .*an anchor") as e:
        profiles.read_mapping(path)
    _one_line(e.value, 200)


def test_a_key_given_twice_names_both_lines_and_a_long_value_is_an_excerpt():
    with pytest.raises(InputError, match=r"line 3: .*key 'epochs' given twice \(first on line 1"):
        profiles.read_mapping(_file("epochs: 3\nseed: 1\nepochs: 4\n", "d.yaml"))
    from mfr.core.config import load_config

    path = _file("epochs: [" + ",".join(["1"] * 20_000) + "]\n", "long.yaml")
    with pytest.raises(InputError, match="epochs: expected an integer") as e:
        load_config(path)
    _one_line(e.value, 300)


def test_profile_size_is_bounded():
    path = _file("# " + "x" * (profiles.MAX_PROFILE_BYTES + 10) + "\n", "huge.yaml")
    with pytest.raises(InputError, match="over the limit"):
        profiles.read_mapping(path)


# --------------------------------------------------------------------------- numbers


@FAST
@given(value=st.one_of(st.integers(-10**15, 10**15).map(str), st.floats().map(str),
                       st.text(max_size=10)))
def test_bounded_options_parse_in_range_or_say_the_range(value):
    parse_int, parse_real = numbers.integer(1, 100), numbers.real(above=0.0, below=1.0)
    for parse, low, high in ((parse_int, 1, 100), (parse_real, 0.0, 1.0)):
        try:
            got = parse(value)
        except argparse.ArgumentTypeError as e:
            assert "expected" in _one_line(e, 200)
            continue
        assert low <= got <= high and np.isfinite(got)


@SOME
@given(field=st.sampled_from(["image_size", "bootstrap_resamples", "seed", "epochs",
                              "batch_size", "embed_batch_size", "max_per_subject",
                              "learning_rate", "margin", "sample_subjects", "seeds",
                              "trainable_layers", "steps_per_execution", "gradcam_images"]),
       value=st.one_of(st.integers(-10**13, 10**13), st.floats(), st.text(max_size=6),
                       st.lists(st.integers(-5, 10**12), max_size=3)))
def test_every_numeric_config_field_is_bounded(field, value):
    import dataclasses

    from mfr.core.config import StudyConfig

    try:
        cfg = StudyConfig().replace(**{field: value})
    except InputError as e:
        _one_line(e, 300)
        return
    f = {f.name: f for f in dataclasses.fields(StudyConfig)}[field]
    got = getattr(cfg, field)
    for v in got if isinstance(got, tuple) else (got,):
        assert f.metadata["minimum"] is None or v >= f.metadata["minimum"]
        assert f.metadata["maximum"] is None or v <= f.metadata["maximum"]


def test_sizes_and_counts_have_a_maximum():
    import dataclasses

    from mfr.core.config import StudyConfig

    fields = {f.name: f for f in dataclasses.fields(StudyConfig)}
    for name in ("image_size", "bootstrap_resamples", "seed", "epochs", "batch_size",
                 "embed_batch_size", "max_per_subject", "steps_per_execution",
                 "sample_subjects", "gradcam_images", "seeds", "learning_rate"):
        assert fields[name].metadata["maximum"] is not None, name
        assert "at most" in fields[name].metadata["help"] or name == "seed", name


# --------------------------------------------------------------------------- images


def _png(width: int, height: int, body: bytes | None = None) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(body or b"")) + chunk(b"IEND", b""))


def _encoded(fmt: str, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    rgb = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


_GOOD = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")}


@FAST
@given(fmt=st.sampled_from(sorted(_GOOD)), cut=st.integers(0, 2000),
       flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), max_size=3),
       decoder=st.just("pil"))
def test_image_reader_on_damaged_files(fmt, cut, flips, decoder):
    data = bytearray(_GOOD[fmt][:cut] if cut < len(_GOOD[fmt]) else _GOOD[fmt])
    for at, x in flips:
        if at < len(data):
            data[at] ^= x
    path = _file(bytes(data), f"img.{fmt.lower()}")
    try:
        rgb, header = images.decode(path, decoder)
    except InputError as e:
        assert str(path) in _one_line(e)
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert header.width * header.height <= images.MAX_PIXELS


@FAST
@given(w=st.integers(0, 2**31 - 1), h=st.integers(0, 2**31 - 1))
def test_a_png_header_of_any_size_is_refused_or_read_within_the_bound(w, h):
    path = _file(_png(w, h), "h.png")
    try:
        rgb, _ = images.decode(path)
    except InputError as e:
        _one_line(e)
        return
    assert rgb.shape[0] * rgb.shape[1] <= images.MAX_PIXELS


def test_pixel_bound_zero_bytes_and_what_is_not_a_file(tmp_path):
    with pytest.raises(InputError, match="too many pixels|over the bound"):
        images.decode(_file(_png(40000, 40000), "bomb.png"))
    with pytest.raises(InputError, match="not an image file PIL can read"):
        images.decode(_file(b"", "zero.jpg"))
    os.mkfifo(tmp_path / "f.jpg")
    with pytest.raises(InputError, match="is a FIFO"):
        images.decode(tmp_path / "f.jpg")
    assert "is a folder" in images.image_problem(tmp_path)
    assert images.image_problem(_file(_GOOD["PNG"], "ok.png")) is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_one_orientation_policy_equal_to_pils(orientation, tmp_path):
    """Every reader turns a photo upright by its EXIF tag, as PIL's exif_transpose does."""
    rgb = np.random.default_rng(orientation).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(rgb).save(path, exif=exif)
    got, header = images.decode(path)
    assert header.orientation == orientation
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(got, want)
    from mfr.data.images import decode_rgb
    from mfr.verify.photos import read_photo

    np.testing.assert_array_equal(decode_rgb(path), want)  # the image cache's, mask's
    np.testing.assert_array_equal(read_photo(path)[0], want)  # verify's


# --------------------------------------------------------------------------- thresholds


class _Embedder:
    name, run_dir, default_distance = "dlib", None, "euclidean_raw"

    def describe(self):
        return {"name": "dlib"}


_SHAPED = st.fixed_dictionaries(
    {}, optional={"settings": _JSON, "pair_sets": _JSON, "embedder": _JSON, "rule": _JSON})


@FAST
@given(data=st.one_of(_SHAPED, st.fixed_dictionaries({"pair_sets": st.dictionaries(
    st.text(max_size=5), st.dictionaries(st.sampled_from(["euclidean_raw", "x"]), _JSON,
                                         max_size=2), max_size=2)}, optional={"embedder": _JSON})))
def test_a_thresholds_file_of_any_shape_is_a_threshold_or_one_line(data):
    from mfr.evaluation.thresholds import Threshold, threshold_from_file

    path = _file(json.dumps(data), "thresholds.json")
    try:
        got = threshold_from_file(path, _Embedder(), "euclidean_raw")
    except InputError as e:
        assert str(path) in _one_line(e)
        return
    assert isinstance(got, Threshold) and got.value is None or np.isfinite(got.value)


# --------------------------------------------------------------------------- archives


@pytest.mark.filterwarnings("ignore:Duplicate name")
@SOME
@given(names=st.lists(st.sampled_from(["MFR2/a.txt", "MFR2/b.txt", "MFR2/../x", "/abs",
                                       "MFR2/", "MFR2/a.txt"]), min_size=1, max_size=4),
       encrypt=st.integers(-1, 3), cut=st.one_of(st.none(), st.integers(0, 300)))
def test_unpacker_on_odd_zip_members(names, encrypt, cut):
    from mfr.data.fetch import unpack

    path = _TMP / f"{next(_COUNTER)}.zip"
    with zipfile.ZipFile(path, "w") as z:
        for n in names:
            z.writestr(n, b"data")
    data = bytearray(path.read_bytes())
    if 0 <= encrypt < len(names):  # the encrypted flag on one member, as an encrypting tool sets it
        at = [i for i in range(len(data) - 4) if data[i:i + 4] in (b"PK\x03\x04", b"PK\x01\x02")]
        for i in at:
            data[i + (6 if data[i + 2] == 3 else 8)] |= 1
    if cut is not None:
        data = data[:cut]
    path.write_bytes(bytes(data))
    target = _TMP / f"{next(_COUNTER)}-out"
    try:
        out = unpack(path, target)
    except InputError as e:
        assert str(path) in _one_line(e)
        assert not target.exists()
        return
    assert out == target and all(".." not in p.parts for p in target.rglob("*"))
