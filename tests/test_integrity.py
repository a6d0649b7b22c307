"""Issue 28: what run.json records is checked when an output is read back (a hand-edited
distances.csv, embeddings or partition CSV, a swapped final_trainable.h5, weights file or
checkpoint is a one-line error naming it); `mfr recipes` claims its folder like every
command; an --out inside the data root leaves the data's listing alone; and the small
things: N said both ways, a figure title that fits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_evaluation import make_study

from mfr.cli import main
from mfr.core.errors import InputError
from mfr.core.provenance import file_digest, listing_digest


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith("WARNING: RANDOM WEIGHTS")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _recorded(run_dir: Path, command: str) -> None:
    """Record every output of a hand-made run folder as `complete` records them."""
    path = run_dir / "run.json"
    run = json.loads(path.read_text())
    outputs = {p.relative_to(run_dir).as_posix(): file_digest(p)
               for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != "run.json"}
    run.update(command=command, status="complete", outputs=outputs)
    path.write_text(json.dumps(run))


def _edit_distances(path: Path) -> None:
    d = pd.read_csv(path)
    d.loc[0, "sum_squared"] = 3.999  # one pair's distance, by hand
    d.to_csv(path, index=False, float_format="%.6f")


def _edit_embeddings(path: Path) -> None:
    v = np.load(path)
    v[0] = -v[0]
    np.save(path, v)


@pytest.mark.parametrize(("edited", "edit"), [
    ("baseline/distances.csv", _edit_distances),
    ("train_N10/embeddings/embeddings.npy", _edit_embeddings),
])
def test_an_output_changed_since_its_run_is_refused_naming_it(tmp_path, capsys, edited, edit):
    study = make_study(tmp_path / "s", layers=(10,), trained=(10,))
    _recorded(study / "baseline", "embed")
    _recorded(study / "train_N10", "train")
    edit(study / edited)
    assert main(["evaluate", "--study", str(study), "--bootstrap-resamples", "0",
                 "--no-progress"]) == 2
    err = _err(capsys)
    assert f"{study / edited}: changed since its run wrote it" in err, err
    run = json.loads((study / "evaluation" / "run.json").read_text())
    assert run["status"] == "failed" and "changed since" in run["error"]


def _png(path: Path, value: int) -> Path:
    Image.fromarray(np.full((40, 40, 3), value, np.uint8)).save(path)
    return path


def test_a_swapped_weights_file_is_refused_naming_it(tmp_path, capsys):
    """`mfr verify --model RUN` (and every reader of a run's network) builds it only from the
    files the run recorded: its final_trainable.h5 and the weights file it started from."""
    from mfr.backbones.base import load_run_model

    weights, run = tmp_path / "base.h5", tmp_path / "train_N30"
    weights.write_bytes(b"the weights the run started from")
    run.mkdir()
    (run / "final_trainable.h5").write_bytes(b"the layers it trained")
    (run / "run.json").write_text(json.dumps({
        "command": "train", "status": "complete", "trainable_layers": 30,
        "config": {"backbone": "senet50", "weights": str(weights), "image_size": 224,
                   "preprocessing": "thesis", "pooling": "avg", "seed": 2021},
        "fingerprint": {"weights": f"file sha256:{file_digest(weights)}"},
        "outputs": {"final_trainable.h5": file_digest(run / "final_trainable.h5")}}))
    a, b = _png(tmp_path / "a.png", 10), _png(tmp_path / "b.png", 200)
    verify = ["verify", str(a), str(b), "--model", str(run), "--no-detect"]
    for swapped, named in ((run / "final_trainable.h5", "changed since its run wrote it"),
                           (weights, "not the weights file the run")):
        before = swapped.read_bytes()
        swapped.write_bytes(b"another file of the same name")
        assert main(verify) == 2
        err = _err(capsys)
        assert f"{swapped}: {named}" in err, err
        with pytest.raises(InputError, match=str(swapped)):
            load_run_model(run)
        swapped.write_bytes(before)


def test_an_edited_partition_csv_is_refused_naming_it(parted, tmp_path, capsys):
    _, pairs = parted
    edited = tmp_path / "pairs"
    shutil.copytree(pairs, edited, ignore=shutil.ignore_patterns("cache"))
    test = pd.read_csv(edited / "test.csv")
    test.iloc[::-1].to_csv(edited / "test.csv", index=False)  # the same pairs, reordered
    capsys.readouterr()
    assert main(["embed", "--pairs", str(edited), "--out", str(tmp_path / "e"), "--weights",
                 "none", "--no-progress"]) == 2
    assert f"{edited / 'test.csv'}: changed since its run wrote it" in _err(capsys)


def test_a_swapped_checkpoint_is_refused_naming_it(tmp_path):
    import keras

    from mfr.training import checkpoints

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.optimizer.build(model.trainable_variables)
    fp = {"run": 1}
    saved = [checkpoints.save_checkpoint(tmp_path, e, model, model.layers, [], fp)
             for e in (1, 2)]
    assert checkpoints.check_fingerprint(saved[1], fp)["epochs_done"] == 2
    record = json.loads((tmp_path / "checkpoints" / checkpoints.RECORD).read_text())
    assert record == {"epoch_002.npz": file_digest(saved[1])}  # the one kept, as saved
    model.layers[0].kernel.assign(np.ones((2, 1), np.float32))
    other = checkpoints.save_checkpoint(tmp_path / "other", 2, model, model.layers, [], fp)
    shutil.copy(other, saved[1])  # a whole, valid checkpoint of another run
    assert checkpoints.damage(saved[1]) is None
    with pytest.raises(InputError, match=rf"{saved[1]}: not the checkpoint this run saved"):
        checkpoints.load_checkpoint(saved[1], model, model.layers, fp)


def test_recipes_claims_its_folder_like_every_command(tmp_path, capsys):
    """`mfr recipes --out` a finished `mfr embed` run is refused, its run.json untouched."""
    run = tmp_path / "base"
    run.mkdir()
    record = {"command": "embed", "status": "complete", "fingerprint": {"x": 1}}
    (run / "run.json").write_text(json.dumps(record))
    profile = tmp_path / "r.yaml"
    profile.write_text("weights: null\ntrainable_layers: [4]\nrecipes:\n  - name: a\n")
    (tmp_path / "data").mkdir()
    assert main(["recipes", "--profile", str(profile), "--data-root", str(tmp_path / "data"),
                 "--out", str(run)]) == 2
    assert "holds an `mfr embed` run" in _err(capsys)
    assert json.loads((run / "run.json").read_text()) == record
    assert not (tmp_path / ".base.lock").exists()


def test_an_out_inside_the_data_root_leaves_its_listing_alone(parted, tmp_path, capsys):
    tree = tmp_path / "tree"
    shutil.copytree(parted[0], tree)
    listing = listing_digest(tree)
    args = ["partition", "--data-root", str(tree), "--out", str(tree / "pairs")]
    assert main(args) == 0
    assert listing_digest(tree) == listing  # the run's own folder is not data
    capsys.readouterr()
    assert main(args) == 0
    assert "is up to date" in capsys.readouterr().out


def test_verify_says_n_both_ways(tmp_path):
    from mfr.verify.photos import _fine_tuned_words

    (tmp_path / "run.json").write_text(json.dumps({"command": "train", "trainable_layers": 30}))
    words = _fine_tuned_words({"run_dir": str(tmp_path), "fine_tuned_layers": list("abcdefgh")})
    assert words.startswith("N = 30: its last 30 layers fine-tuned, counted as the thesis")
    assert "8 of them hold the weights that were trained" in words
    (tmp_path / "run.json").write_text(json.dumps({"command": "embed"}))
    assert _fine_tuned_words({"run_dir": str(tmp_path)}) == "pre-trained, nothing fine-tuned"


def test_the_pairs_figures_title_fits_its_width():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from mfr.verify.figures import pairs_figure

    table = pd.DataFrame([{"pair": 1, "image_a": "a.png", "image_b": "b.png",
                           "distance": 0.0066, "decision": "same person", "label": "genuine",
                           "correct": "yes"}])
    result = SimpleNamespace(
        table=table, faces={"a.png": "no face", "b.png": "no face"},
        threshold=SimpleNamespace(value=0.009797), distance_name="sum_squared",
        embedder={"name": "senet50", "random_init": True})
    fig = pairs_figure(result, "Photo pairs of the test split of a partition with a long name")
    FigureCanvasAgg(fig).draw()
    box = fig._suptitle.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.x1, (box, fig.bbox)
