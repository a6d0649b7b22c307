"""`mfr verify IMG_A IMG_B`: real MFR2 photos with dlib, bad input in one line, thresholds from
where they are said to come from, face detection refused under JAX; and the pairs table of
notebook 06."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mfr.cli import main
from mfr.core.errors import InputError, MissingError
from mfr.core.outputs import write_json
from mfr.data.images import load_image
from mfr.evaluation.thresholds import FACE_RECOGNITION_TOLERANCE, resolve_threshold
from mfr.verify.photos import prepare_face

ROOT = Path(__file__).resolve().parent.parent
JSON_KEYS = {"distance", "distance_name", "same_person", "decision", "threshold",
             "threshold_source", "embedder", "images", "face_boxes", "notes", "preprocessing"}


def _photo(root: Path, name: str, i: int) -> Path:
    return root / "mfr2" / name / f"{name}_{i:04d}.png"


def _verify(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["verify", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _verify_json(capsys, *args: str) -> dict:
    rc, out, err = _verify(capsys, *args, "--json")
    assert rc == 0, err
    return json.loads(out)


def _cli(*args: str, backend: str = "tensorflow") -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "mfr.cli", "verify", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def dlib_ok():
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")


@pytest.fixture(scope="module")
def mtcnn_ok():
    pytest.importorskip("mtcnn")
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("MTCNN runs on the TensorFlow backend only")


# --------------------------------------------------------------------------- real photos, dlib


def test_genuine_pair_nearer_than_impostor_and_decided_at_0_6(mfr2_dev, dlib_ok, mtcnn_ok,
                                                               capsys):
    genuine = _verify_json(capsys, _photo(mfr2_dev, "BenAffleck", 3),
                           _photo(mfr2_dev, "BenAffleck", 7), "--embedder", "dlib_reference")
    impostor = _verify_json(capsys, _photo(mfr2_dev, "AdrianDunbar", 2),
                            _photo(mfr2_dev, "BenAffleck", 3), "--embedder", "dlib_reference")
    for r in (genuine, impostor):
        assert JSON_KEYS <= set(r)
        assert r["distance_name"] == "euclidean_raw" and r["embedder"]["name"] == "dlib_reference"
        assert r["threshold"] == FACE_RECOGNITION_TOLERANCE == 0.6
        assert "face_recognition" in r["threshold_source"]
        assert r["same_person"] == (r["distance"] <= 0.6)
        assert all(b is not None and b["width"] > 40 for b in r["face_boxes"])
        assert [im["n_faces"] for im in r["images"]] == [1, 1] and r["warning"] is None
    assert genuine["distance"] < impostor["distance"]
    assert genuine["same_person"] is True and impostor["same_person"] is False


def test_text_output_names_model_distance_and_threshold_source(mfr2_dev, dlib_ok, mtcnn_ok,
                                                               capsys):
    rc, out, _ = _verify(capsys, _photo(mfr2_dev, "AdrianDunbar", 1),
                         _photo(mfr2_dev, "AdrianDunbar", 2), "--embedder", "dlib_reference")
    assert rc == 0
    m = re.search(r"^distance (\d+\.\d+)$", out, re.M)
    assert m, out
    d = float(m.group(1))
    assert re.search(r"^model: dlib_reference, weights dlib_face_recognition_resnet_model_v1", out,
                     re.M)
    assert re.search(r"^preprocessing: .*MTCNN face box.*bilinear resize.* to 160x160", out, re.M)
    assert re.search(r"^threshold 0\.6: face_recognition's documented default tolerance", out,
                     re.M)
    word = "same person" if d <= 0.6 else "different people"
    assert re.search(rf"^decision: {word} \(distance", out, re.M)


def test_no_detect_is_the_study_resize_and_face_recognitions_distance(mfr2_dev, dlib_ok, capsys):
    """--no-detect: the image the study would feed (mfr.data.images.load_image), and the distance
    face_recognition's face_distance gives on dlib's own descriptors of those images."""
    import dlib
    import face_recognition_models as frm

    a, b = _photo(mfr2_dev, "BenAffleck", 3), _photo(mfr2_dev, "AdrianDunbar", 2)
    for size in (160, 224):
        np.testing.assert_array_equal(prepare_face(a, size, detect=False).image,
                                      load_image(a, size))
    r = _verify_json(capsys, a, b, "--embedder", "dlib_reference", "--no-detect")
    assert r["face_boxes"] == [None, None] and r["images"][0]["n_faces"] is None
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def descriptor(path):
        img = load_image(path, 160)
        boxes, scores, _ = detector.run(img, 1, 0.0)
        box = boxes[int(np.argmax(scores))] if len(boxes) else dlib.rectangle(0, 0, 160, 160)
        return np.asarray(encoder.compute_face_descriptor(img, predictor(img, box), 0, 0.25))

    expected = float(np.linalg.norm(descriptor(a) - descriptor(b)))
    assert r["distance"] == pytest.approx(expected, abs=1e-5)


def test_grayscale_and_rgba_photos_are_converted_and_said_so(mfr2_dev, dlib_ok, mtcnn_ok,
                                                             tmp_path, capsys):
    src = Image.open(_photo(mfr2_dev, "BenAffleck", 3))
    src.convert("L").save(tmp_path / "grey.png")
    rgba = src.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(tmp_path / "rgba.png")
    r = _verify_json(capsys, tmp_path / "grey.png", tmp_path / "rgba.png", "--embedder", "dlib_reference")
    assert [im["mode"] for im in r["images"]] == ["L", "RGBA"]
    assert any("grey.png: grayscale image: converted to RGB" in n for n in r["notes"])
    assert any("rgba.png: RGBA image: alpha channel dropped" in n for n in r["notes"])
    assert all(b is not None for b in r["face_boxes"])  # the face is still found
    assert r["same_person"] is True  # the same photo, in grey and with alpha
    rc, out, _ = _verify(capsys, tmp_path / "grey.png", tmp_path / "rgba.png", "--embedder",
                         "dlib_reference")
    assert rc == 0 and "note: " in out and "grayscale image" in out


# --------------------------------------------------------------------------- bad input


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    (tmp / "notes.png").write_text("not an image\n")
    Image.new("RGB", (12, 40), (90, 90, 90)).save(tmp / "tiny.png")
    good = tmp / "good.png"
    Image.new("RGB", (64, 64), (120, 100, 90)).save(good)
    (tmp / "cut.png").write_bytes(good.read_bytes()[:60])
    return {"non-image": (tmp / "notes.png", "not an image file"),
            "missing": (tmp / "absent.jpg", "file not found"),
            "tiny": (tmp / "tiny.png", "12x40 px, smaller than the minimum 16 px"),
            "truncated": (tmp / "cut.png", "unreadable image data"),
            "folder": (tmp, "is a folder")}


@pytest.mark.stderr_lines
@pytest.mark.parametrize("case", ["non-image", "missing", "tiny"])
def test_bad_file_is_one_line_and_exit_2(tmp_path, case):
    bad, words = _bad_inputs(tmp_path)[case]
    r = _cli(tmp_path / "good.png", bad, "--embedder", "dlib_reference")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("mfr verify: error: ") and str(bad) in lines[0]
    assert words in lines[0] and "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize("case", ["truncated", "folder"])
def test_other_bad_files_are_one_line_errors(tmp_path, capsys, case):
    bad, words = _bad_inputs(tmp_path)[case]
    rc, out, err = _verify(capsys, bad, tmp_path / "good.png", "--embedder", "dlib_reference")
    assert rc == 2 and out == "" and len(err.splitlines()) == 1
    assert words in err and str(bad) in err


def test_blank_image_no_face_unless_no_detect(dlib_ok, mtcnn_ok, tmp_path, capsys):
    Image.new("RGB", (200, 180), (128, 128, 128)).save(tmp_path / "blank.png")
    Image.new("RGB", (160, 160), (30, 60, 90)).save(tmp_path / "other.png")
    rc, out, err = _verify(capsys, tmp_path / "blank.png", tmp_path / "other.png",
                           "--embedder", "dlib_reference")
    assert rc == 2 and out == "" and len(err.splitlines()) == 1
    assert "blank.png: no face found" in err and "--no-detect" in err
    rc, out, err = _verify(capsys, tmp_path / "blank.png", tmp_path / "other.png",
                           "--embedder", "dlib_reference", "--no-detect")
    assert rc == 0, err
    assert "whole image (--no-detect)" in out and re.search(r"^distance \d", out, re.M)


def test_two_faces_the_largest_is_used_and_said_so(mfr2_dev, dlib_ok, mtcnn_ok, tmp_path,
                                                   capsys):
    canvas = np.full((300, 480, 3), 255, np.uint8)
    canvas[20:244, 10:234] = load_image(_photo(mfr2_dev, "AdrianDunbar", 2), 224)
    canvas[100:260, 290:450] = load_image(_photo(mfr2_dev, "BenAffleck", 3), 160)
    Image.fromarray(canvas).save(tmp_path / "two.png")
    r = _verify_json(capsys, tmp_path / "two.png", _photo(mfr2_dev, "AdrianDunbar", 4),
                     "--embedder", "dlib_reference")
    box = r["face_boxes"][0]
    assert r["images"][0]["n_faces"] >= 2 and box["x"] < 234  # the 224 px face, on the left
    assert any("two.png" in n and "faces found: the largest is used" in n for n in r["notes"])
    ben = _verify_json(capsys, tmp_path / "two.png", _photo(mfr2_dev, "BenAffleck", 7),
                       "--embedder", "dlib_reference")
    assert r["distance"] < ben["distance"]  # it is Adrian Dunbar's face that was compared


def test_options_of_the_other_embedder_are_refused(tmp_path, capsys):
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    for extra in (["--weights", "none"], ["--model", str(tmp_path)]):
        rc, _, err = _verify(capsys, tmp_path / "a.png", tmp_path / "a.png", "--embedder",
                             "dlib_reference", *extra)
        assert rc == 2 and "senet50 option" in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------- thresholds


def _dataset_thresholds(path: Path, embedder: dict, value: float) -> Path:
    """A dataset evaluation's thresholds.json, as `mfr evaluate --data-root` writes it
    (`embedder`: the embedder's describe())."""
    return write_json(path, {"rule": "eer", "accept": "distance <= threshold",
                             "chosen_on": "each pair set itself (in-sample)",
                             "embedder": embedder,
                             "pair_sets": {"masked_vs_unmasked": {"euclidean_raw": 9.0,
                                                                  "sum_squared": 9.0},
                                           "mfr2_pairs": {"euclidean_raw": value,
                                                          "sum_squared": value}}})


def test_threshold_file_decides(mfr2_dev, dlib_ok, tmp_path, capsys):
    a, b = _photo(mfr2_dev, "BenAffleck", 3), _photo(mfr2_dev, "BenAffleck", 7)
    dlib = ("--embedder", "dlib_reference", "--no-detect")
    at_06 = _verify_json(capsys, a, b, *dlib)
    strict = _dataset_thresholds(tmp_path / "thresholds.json", at_06["embedder"],
                                 round(at_06["distance"] - 0.05, 4))
    r = _verify_json(capsys, a, b, *dlib, "--threshold", strict)
    assert r["distance"] == at_06["distance"] and at_06["same_person"] is True
    assert r["threshold"] == round(at_06["distance"] - 0.05, 4) and r["same_person"] is False
    assert str(strict) in r["threshold_source"] and "mfr2_pairs" in r["threshold_source"]
    assert "in-sample" in r["threshold_source"]
    r = _verify_json(capsys, a, b, *dlib, "--threshold", str(at_06["distance"]))
    assert r["same_person"] is True and r["threshold_source"] == "given (--threshold)"
    other = _dataset_thresholds(tmp_path / "senet.json", {"name": "senet50",
                                                          "weights": "vggface2"}, 1.0)
    rc, _, err = _verify(capsys, a, b, *dlib, "--threshold", other)
    assert rc == 2 and "thresholds of another model" in err and len(err.splitlines()) == 1
    rc, _, err = _verify(capsys, a, b, *dlib, "--threshold", tmp_path / "no.json")
    assert rc == 2 and "thresholds file not found" in err


def _fake(name: str = "senet50", run_dir: Path | None = None, distance: str = "sum_squared"):
    desc = {"name": name, "weights": None, "run_dir": str(run_dir) if run_dir else None}
    return SimpleNamespace(name=name, run_dir=run_dir, default_distance=distance,
                           describe=lambda: desc)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study folder and the thresholds.json that `mfr evaluate --study` writes for it."""
    from test_evaluation import make_study

    from mfr.core.runs import discover_study
    from mfr.evaluation.setting_metrics import evaluate_study

    root = make_study(tmp_path_factory.mktemp("vstudy"), layers=(10,), trained=(10,))
    ev = evaluate_study(discover_study(root), n_resamples=0)
    write_json(root / "evaluation" / "thresholds.json", ev.thresholds)
    return root, ev.thresholds


def test_study_threshold_is_the_models_setting(study):
    root, th = study
    for key, run in (("baseline", root / "baseline"), ("N10", root / "train_N10")):
        t = resolve_threshold(None, _fake(run_dir=run))
        assert t.value == th["settings"][key]["sum_squared"]["threshold"] is not None
        assert f"setting {key}" in t.source and "validation pairs" in t.source
        assert t.details["rule"] == "eer"
    with pytest.raises(InputError, match="give --model RUN"):
        resolve_threshold(root / "evaluation" / "thresholds.json", _fake())
    with pytest.raises(InputError, match="not dlib's|SENet50's"):
        resolve_threshold(root / "evaluation" / "thresholds.json",
                          _fake("dlib", root / "baseline", "euclidean_raw"))
    with pytest.raises(InputError, match="no setting of"):
        resolve_threshold(root / "evaluation" / "thresholds.json",
                          _fake(run_dir=root / "train_N40"))


def test_no_threshold_is_made_up(tmp_path):
    lone = tmp_path / "study" / "baseline"
    t = resolve_threshold(None, _fake(run_dir=lone))
    assert t.value is None and "mfr evaluate --study" in t.source
    t = resolve_threshold(None, _fake())
    assert t.value is None and "give --threshold" in t.source
    t = resolve_threshold(None, _fake("dlib_reference", distance="euclidean_raw"))
    assert t.value == 0.6
    with pytest.raises(InputError, match="expected a distance >= 0"):
        resolve_threshold("-1", _fake())
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        resolve_threshold(tmp_path / "bad.json", _fake())
    with pytest.raises(MissingError):
        resolve_threshold(tmp_path / "absent.json", _fake())


@pytest.mark.slow
def test_senet50_model_run_uses_its_study_threshold(mfr2_dev, mtcnn_ok, study, capsys):
    """--model RUN (an `mfr embed` run from random weights, the only SENet50 offline): the
    run's network, the threshold of RUN/../evaluation/thresholds.json, labelled random init."""
    root, th = study
    r = _verify_json(capsys, _photo(mfr2_dev, "BenAffleck", 3), _photo(mfr2_dev, "BenAffleck", 7),
                     "--model", root / "baseline")
    expected = th["settings"]["baseline"]["sum_squared"]["threshold"]
    assert r["embedder"]["name"] == "senet50" and r["embedder"]["random_init"] is True
    assert "random init" in r["warning"]
    assert r["embedder"]["image_size"] == 224 and r["images"][0]["input_size"] == 224
    assert r["distance_name"] == "sum_squared" and 0 <= r["distance"] <= 4
    assert r["threshold"] == expected and "setting baseline" in r["threshold_source"]
    assert r["same_person"] == (r["distance"] <= expected)
    rc, out, _ = _verify(capsys, _photo(mfr2_dev, "BenAffleck", 3),
                         _photo(mfr2_dev, "BenAffleck", 7), "--model", root / "baseline")
    assert rc == 0 and "WARNING: random init" in out


# --------------------------------------------------------------------------- JAX


@pytest.mark.stderr_lines
def test_under_jax_detection_says_so_and_no_detect_dlib_works(mfr2_dev, dlib_ok):
    pytest.importorskip("jax")
    a, b = _photo(mfr2_dev, "BenAffleck", 3), _photo(mfr2_dev, "BenAffleck", 7)
    r = _cli(a, b, "--embedder", "dlib_reference", backend="jax")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "needs the TensorFlow backend" in lines[0] and "--no-detect" in lines[0]
    r = _cli(a, b, "--embedder", "dlib_reference", "--no-detect", "--json", backend="jax")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["same_person"] is True and out["face_boxes"] == [None, None]


# --------------------------------------------------------------------------- pairs (notebook 06)


def test_pairs_table_matches_single_pairs_and_lists_failures(mfr2_dev, dlib_ok, tmp_path):
    from mfr.study.steps import verify_pairs_step, verify_step

    a, b, c = (_photo(mfr2_dev, "BenAffleck", 3), _photo(mfr2_dev, "BenAffleck", 7),
               _photo(mfr2_dev, "AdrianDunbar", 2))
    (tmp_path / "pairs.csv").write_text(f"image_a,image_b,label\n{a},{b},genuine\n{a},{c},0\n"
                                        f"{c},missing.png,\n")
    res = verify_pairs_step(tmp_path / "pairs.csv", tmp_path / "out", detect=False,
                            progress=False)
    t = pd.read_csv(tmp_path / "out" / "table_5_2.csv")
    t[["label", "correct", "note"]] = t[["label", "correct", "note"]].fillna("")
    assert list(t["label"]) == ["genuine", "impostor", ""]
    single = verify_step(a, c, embedder="dlib_reference", detect=False)
    assert t["distance"][1] == pytest.approx(single.distance, abs=1e-6)
    assert res.table["distance"][0] < res.table["distance"][1]
    assert t["decision"][2] == "no distance" and "missing.png: file not found" in t["note"][2]
    assert list(t["correct"][:2]) == ["yes", "yes"]
    md = (tmp_path / "out" / "table_5_2.md").read_text()
    assert "1.3828" in md and "1.9341" in md and "face_recognition" in md
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "complete" and run["command"] == "verify"
    assert {"table_5_2.csv", "table_5_2.md", "table_5_2.png"} <= set(run["outputs"])


def test_pairs_csv_bad_label_names_the_line(tmp_path):
    from mfr.verify.pairs import read_pairs_csv

    (tmp_path / "p.csv").write_text("image_a,image_b,label\na.png,b.png,1\na.png,c.png,maybe\n")
    with pytest.raises(InputError, match=r"p.csv, line 3: label 'maybe'"):
        read_pairs_csv(tmp_path / "p.csv")
    (tmp_path / "q.csv").write_text("left,right\na.png,b.png\n")
    with pytest.raises(InputError, match=r"missing column\(s\) \['image_a', 'image_b'\]"):
        read_pairs_csv(tmp_path / "q.csv")
    (tmp_path / "r.csv").write_text(f"image_a,image_b\nsub/a.png,{tmp_path / 'b.png'}\n")
    pairs = read_pairs_csv(tmp_path / "r.csv")
    assert pairs["image_a"][0] == str(tmp_path.resolve() / "sub" / "a.png")
    assert pairs["image_b"][0] == str(tmp_path / "b.png") and pairs["label"][0] is None


def test_exif_orientation_is_applied_and_said_so(mfr2_dev, tmp_path):
    """A phone photo stored sideways with an EXIF orientation tag is turned upright (the
    study's decoder ignores the tag; its photos have none), and the note says so."""
    src = Image.open(_photo(mfr2_dev, "BenAffleck", 3)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the pixels are stored turned 90 degrees CCW
    src.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "sideways.jpg", exif=exif,
                                                   quality=95)
    src.save(tmp_path / "upright.jpg", quality=95)
    from mfr.verify.photos import read_photo

    rgb, mode, notes = read_photo(tmp_path / "sideways.jpg")
    ref, _, ref_notes = read_photo(tmp_path / "upright.jpg")
    assert rgb.shape == ref.shape and ref_notes == [] and mode == "RGB"
    assert notes == ["rotated upright by its EXIF orientation tag (6)"]
    assert np.abs(rgb.astype(int) - ref.astype(int)).mean() < 3  # JPEG noise only


def test_large_photo_face_found_on_a_smaller_copy_box_in_photo_pixels(mfr2_dev, mtcnn_ok,
                                                                      tmp_path):
    """A 2400x1800 photo: MTCNN looks at a copy 1024 px wide; the box is in the photo's pixels
    (inside the pasted face) and the crop is taken from the full-resolution photo."""
    from mfr.verify.photos import DETECT_MAX_SIDE

    face = Image.open(_photo(mfr2_dev, "BenAffleck", 3)).convert("RGB").resize((1200, 1200))
    canvas = Image.new("RGB", (2400, 1800), (210, 210, 210))
    canvas.paste(face, (900, 400))
    canvas.save(tmp_path / "big.png")
    assert max(canvas.size) > DETECT_MAX_SIDE
    f = prepare_face(tmp_path / "big.png", 160)
    x, y, w, h = f.face_box
    assert 900 <= x and 400 <= y and x + w <= 2100 and y + h <= 1600 and h > 600
    assert f.image.shape == (160, 160, 3) and f.crop_box[2] > 0.9 * 1.37 * h


def test_pairs_table_of_drawn_faces_reads_the_same_from_any_folder(dlib_ok, tmp_path):
    """The same pairs in two folders (notebook 06's drawn faces land in a fresh temporary
    folder each run): the same table bytes, paths relative to the CSV's folder, and the second
    run finds the first one's output up to date (the images are fingerprinted by content)."""
    from mfr.data.datasets.synthetic import make_pairs_csv
    from mfr.study.steps import verify_pairs_step

    tables = []
    for where in ("a", "b"):
        csv = make_pairs_csv(tmp_path / where, n_subjects=2, seed=3)
        res = verify_pairs_step(csv, tmp_path / "out", detect=False, progress=False)
        assert res.table["distance"].notna().all()
        tables.append((tmp_path / "out" / "table_5_2.csv").read_bytes())
    assert tables[0] == tables[1] and str(tmp_path).encode() not in tables[0]
    assert b",drawn/" in tables[0]
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "complete"
