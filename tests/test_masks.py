"""Synthetic masks (mfr.data.masks, `mfr mask`): placement on a real face, every kind, seeded bytes,
bad inputs listed or refused in one line, and a tree the dataset registry reads as RMFRD."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mfr.cli import main
from mfr.data import masks
from mfr.data.datasets import MASKED_DIR, RMFRD_DIRNAME, UNMASKED_DIR, detect_dataset, load_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@functools.cache
def _template_landmarks() -> np.ndarray:
    """A plausible 68-point face in a 160x160 image: dlib's predictor on a blank image answers
    with (close to) its mean shape, which needs no photo."""
    return masks.landmarks_68(np.full((160, 160, 3), 128, np.uint8), (0, 0, 160, 160))


def _photo(rng: np.random.Generator, size: int = 160) -> np.ndarray:
    """A smooth random image (not a face: for runs whose box is the whole image)."""
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR))


def _inside(poly: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from matplotlib.path import Path as MplPath

    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    pts = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], axis=1)
    return MplPath(poly).contains_points(pts).reshape(shape)


def _check_placement(rgb: np.ndarray, lm: np.ndarray) -> None:
    """For every kind: the lower face (below the nose tip 33, inside the jaw) is covered, the
    mouth is covered, the eyes and the forehead are untouched."""
    h, w = rgb.shape[:2]
    jaw = lm[2:15]
    lower = _inside(jaw, (h, w)) & (np.mgrid[0:h, 0:w][0] > lm[33, 1] + 1)
    assert lower.sum() > 200
    eyes = np.rint(lm[36:48]).astype(int)
    for kind in masks.MASK_KINDS:
        colour = sorted(masks.MASK_KINDS[kind].colours)[0]
        out = masks.draw_mask(rgb, lm, kind, colour, np.random.default_rng(0))
        changed = np.abs(out.astype(int) - rgb.astype(int)).sum(axis=2) > 0
        assert changed[lower].mean() > 0.97, kind
        alpha = masks.mask_alpha((h, w), masks.mask_polygon(lm, kind))
        assert (alpha[np.rint(lm[48:68, 1]).astype(int), np.rint(lm[48:68, 0]).astype(int)]
                > 0.99).all(), kind
        assert not changed[eyes[:, 1], eyes[:, 0]].any(), kind
        brow_top = int(lm[17:27, 1].min())
        assert not changed[: max(brow_top, 1)].any(), kind


def test_mask_covers_the_lower_face_of_a_real_photo_not_the_eyes(mfr2_dev):
    from mfr.data.images import decode_rgb

    photo = sorted((mfr2_dev / "rmfrd_layout" / UNMASKED_DIR / "BenAffleck").iterdir())[0]
    rgb = decode_rgb(photo)
    found = masks.find_box(rgb, "dlib")
    assert found is not None and found[0] == "dlib"
    lm = masks.landmarks_68(rgb, found[1])
    # landmarks on the face: eyes above the nose tip above the mouth above the chin
    assert lm[36:48, 1].mean() < lm[33, 1] < lm[48:68, 1].mean() < lm[8, 1]
    assert lm[0, 0] < lm[30, 0] < lm[16, 0]
    _check_placement(rgb, lm)


def test_every_kind_and_colour_draws_its_colour():
    lm = _template_landmarks()
    rgb = np.full((160, 160, 3), 100, np.uint8)
    for kind, spec in masks.MASK_KINDS.items():
        for name, colour in spec.colours.items():
            out = masks.draw_mask(rgb, lm, kind, name, np.random.default_rng(1))
            alpha = masks.mask_alpha((160, 160), masks.mask_polygon(lm, kind))
            core = out[alpha > 0.99].astype(float)
            assert len(core) > 2000, kind
            # shading and patterns vary it, but the mask is the kind's colour, not the photo's
            assert np.abs(np.median(core, axis=0) - colour).max() < 60, (kind, name)
            assert (out[alpha == 0] == 100).mean() > 0.97  # outside: only the ear loops
    _check_placement(_photo(np.random.default_rng(3)), lm)
    with pytest.raises(ValueError, match="mask kind must be one of"):
        masks.draw_mask(rgb, lm, "scarf", "red", np.random.default_rng(0))


def test_shading_and_pattern_follow_the_generator():
    lm = _template_landmarks()
    rgb = _photo(np.random.default_rng(0))
    a = masks.draw_mask(rgb, lm, "cloth", "navy", np.random.default_rng(5))
    b = masks.draw_mask(rgb, lm, "cloth", "navy", np.random.default_rng(5))
    c = masks.draw_mask(rgb, lm, "cloth", "navy", np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def _toy_tree(root: Path, n_subjects: int = 2, per: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for s in range(n_subjects):
        d = root / f"s{s}"
        d.mkdir(parents=True)
        for i in range(per):
            Image.fromarray(_photo(rng)).save(d / f"{i}.jpg", quality=95)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "run.json"}


def test_seeded_tree_is_byte_identical_and_readable_as_rmfrd(tmp_path):
    src = _toy_tree(tmp_path / "faces")
    kw = dict(kinds=("surgical", "kn95"), per_image=2, detector="none")
    s1 = masks.mask_tree(src, tmp_path / "a", seed=7, **kw)
    masks.mask_tree(src, tmp_path / "b", seed=7, **kw)
    masks.mask_tree(src, tmp_path / "c", seed=8, **kw)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b
    assert a != c  # another seed: other kinds, colours or shading
    assert s1["masked"] == 4 and s1["failed"] == 0
    listing = pd.read_csv(tmp_path / "a" / "masks.csv")
    assert len(listing) == 8 and set(listing["kind"]) <= {"surgical", "kn95"}
    assert listing["box"].str.startswith("crop 0,0,160,160").all()
    for out in listing["output"]:
        assert (tmp_path / "a" / RMFRD_DIRNAME / out).is_file()
    # the originals are copied byte for byte to the unmasked side
    for p in sorted(src.rglob("*.jpg")):
        rel = p.relative_to(src).as_posix()
        assert a[f"{RMFRD_DIRNAME}/{UNMASKED_DIR}/{rel}"] == p.read_bytes()
    # a second run into the same folder is up to date and changes nothing
    again = masks.mask_tree(src, tmp_path / "a", seed=7, **kw)
    assert again["up_to_date"] and _files(tmp_path / "a") == a
    # the registry reads it as RMFRD: both sides of every subject
    spec, root = detect_dataset(tmp_path / "a")
    assert spec.layout == "rmfrd" and root == tmp_path / "a" / RMFRD_DIRNAME
    ds = load_dataset(tmp_path / "a")
    assert ds.subjects == ["s0", "s1"]
    assert sum(im.masked for im in ds.images) == 8 and sum(not im.masked for im in ds.images) == 4
    # and an RMFRD tree as the source: its unmasked side is what gets masked
    s2 = masks.mask_tree(tmp_path / "a", tmp_path / "d", seed=7, **kw)
    assert s2["images"] == 4


def test_mfr_partition_reads_the_tree(tmp_path, capsys):
    src = _toy_tree(tmp_path / "faces", n_subjects=6, per=3)
    assert main(["mask", "--data-root", str(src), "--out", str(tmp_path / "t"), "--detector",
                 "none", "--no-progress"]) == 0
    assert main(["partition", "--data-root", str(tmp_path / "t"), "--out",
                 str(tmp_path / "p"), "--train-val-fraction", "0.5", "--val-size", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "rmfrd" in out
    assert (tmp_path / "p" / "test.csv").is_file()


def test_bad_images_are_listed_and_greyscale_is_masked(tmp_path, capsys):
    src = tmp_path / "faces"
    (src / "a").mkdir(parents=True)
    rng = np.random.default_rng(1)
    Image.fromarray(_photo(rng)[..., 0]).save(src / "a" / "grey.png")  # mode L
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(src / "a" / "tiny.png")
    (src / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    (src / "a" / "notes.txt").write_text("x")
    (src / "stray.jpg").write_bytes(b"x")
    assert main(["mask", "--data-root", str(src), "--out", str(tmp_path / "t"), "--detector",
                 "none", "--no-progress"]) == 0
    failed = pd.read_csv(tmp_path / "t" / "failed.csv").set_index("file")["reason"]
    assert "unreadable image" in failed["a/broken.jpg"]
    assert "1x1 px" in failed["a/tiny.png"]
    assert "not an image file" in failed["a/notes.txt"]
    assert "not inside a subject folder" in failed["stray.jpg"]
    assert "a/grey.png" not in failed.index
    listing = pd.read_csv(tmp_path / "t" / "masks.csv")
    assert list(listing["source"]) == ["a/grey.png"]
    masked = Image.open(tmp_path / "t" / RMFRD_DIRNAME / listing["output"][0])
    assert masked.mode == "RGB"
    arr = np.asarray(masked).astype(int)
    assert np.abs(arr[..., 0] - arr[..., 2]).max() > 30  # a coloured mask on a grey photo
    assert "1 of 3 images masked, 4 listed" in capsys.readouterr().out


def test_a_face_not_found_is_listed_never_left_silently(tmp_path):
    src = tmp_path / "faces"
    (src / "a").mkdir(parents=True)
    Image.fromarray(np.full((120, 120, 3), 200, np.uint8)).save(src / "a" / "blank.png")
    s = masks.mask_tree(src, tmp_path / "t", detector="dlib")
    failed = pd.read_csv(tmp_path / "t" / "failed.csv")
    assert s["masked"] == 0 and list(failed["file"]) == ["a/blank.png"]
    assert "no face found (dlib)" in failed["reason"][0]
    assert pd.read_csv(tmp_path / "t" / "masks.csv").empty
    # the unmasked copy is kept; the masked side has no version of it
    tree = tmp_path / "t" / RMFRD_DIRNAME
    assert (tree / UNMASKED_DIR / "a" / "blank.png").is_file()
    assert not any((tree / MASKED_DIR).rglob("*"))
    # with the crop fallback the whole image is the box, and the listing says so
    masks.mask_tree(src, tmp_path / "u", detector="dlib", crop_fallback=True)
    listing = pd.read_csv(tmp_path / "u" / "masks.csv")
    assert list(listing["box"]) == ["crop 0,0,120,120"]


def test_mtcnn_finds_no_face_in_a_blank_image():
    assert masks.find_box(np.full((120, 120, 3), 200, np.uint8), "mtcnn") is None


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file", "foreign"])
def test_unwritable_output_is_one_line_exit_2_before_work(tmp_path, capsys, where):
    src = _toy_tree(tmp_path / "faces", n_subjects=1, per=1)
    (tmp_path / "afile").write_text("x")
    out = {"under_a_file": tmp_path / "afile" / "tree", "is_a_file": tmp_path / "afile",
           "foreign": tmp_path / "other"}[where]
    if where == "foreign":
        out.mkdir()
        (out / "mine.txt").write_text("keep")
    assert main(["mask", "--data-root", str(src), "--out", str(out), "--detector", "none",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mfr mask: error:") and str(out) in err
    assert not list(tmp_path.glob("**/masks.csv"))
    if where == "foreign":
        assert (out / "mine.txt").read_text() == "keep"


def test_bad_arguments_and_sources_are_one_line(tmp_path, capsys):
    src = _toy_tree(tmp_path / "faces", n_subjects=1, per=1)
    assert main(["mask", "--data-root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "empty" / "s").mkdir(parents=True)
    assert main(["mask", "--data-root", str(tmp_path / "empty"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "no image in any subject folder" in capsys.readouterr().err
    assert main(["mask", "--data-root", str(src), "--out", str(src / "s0" / "o"),
                 "--detector", "none"]) == 2
    assert "inside the images to mask" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a number out of its range: refused by the parser
        main(["mask", "--data-root", str(src), "--out", str(tmp_path / "o"),
              "--per-image", "0", "--detector", "none"])
    assert e.value.code == 2 and "--per-image: expected an integer in 1..100" in (
        capsys.readouterr().err)
    with pytest.raises(SystemExit) as e:
        main(["mask", "--data-root", str(src), "--out", str(tmp_path / "o"), "--kinds", "scarf"])
    assert e.value.code == 2
    assert not (tmp_path / "o").exists()


def test_example_figure_is_a_grid(tmp_path):
    rng = np.random.default_rng(2)
    paths = []
    for i in range(2):
        Image.fromarray(_photo(rng)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    png = masks.example_figure(paths, tmp_path / "fig.png", detector="none", size=64)
    with Image.open(png) as im:
        assert im.size == (64 * (1 + len(masks.MASK_KINDS)), 14 + 64 * 2)
    again = masks.example_figure(paths, tmp_path / "fig2.png", detector="none", size=64)
    assert png.read_bytes() == again.read_bytes()
