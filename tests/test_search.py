"""`mfr search`: hyperparameters scored on held-out *training* subjects, never the test ones."""

from __future__ import annotations

import pandas as pd
import pytest
from test_backbones import _tiny_rmfrd

from mfr.core.config import StudyConfig


@pytest.mark.slow
def test_search_scores_on_held_out_training_subjects_and_skips_when_done(tmp_path):
    from mfr.data.partition import partition
    from mfr.study.search import search

    root = _tiny_rmfrd(tmp_path, subjects=10)
    cfg = StudyConfig(backbone="dlib_resnet", data_root=str(root), image_size=160,
                      batch_size=8, embed_batch_size=16, max_per_subject=3)
    out = tmp_path / "search"
    chosen = search(cfg, out, 4, optimizers=("sgd",), learning_rates=(1e-4, 1e-3),
                    epochs=(2, 1), face_boxes=("crop",), progress=False)

    outer = partition(root, max_per_subject=3)
    test_subjects = set(outer.test.unmasked_subject) | set(outer.test.masked_subject)
    inner = {s: pd.read_csv(out / "partition" / f"{s}.csv") for s in ("train", "val", "test")}
    seen = set().union(*(set(f.unmasked_subject) | set(f.masked_subject) for f in inner.values()))
    assert seen and not seen & test_subjects  # the test subjects are never read
    held = set(inner["test"].unmasked_subject) | set(inner["test"].masked_subject)
    trained = set(inner["train"].unmasked_subject) | set(inner["train"].masked_subject)
    assert held and not held & trained  # scored on subjects the search did not train on

    table = pd.read_csv(out / "search.csv")
    assert list(zip(table.learning_rate, table.epochs, strict=True)) == [
        (1e-4, 1), (1e-4, 2), (1e-3, 1), (1e-3, 2)]
    assert table.auc.between(0, 1).all()
    best = table.sort_values(["auc", "eer"], ascending=[False, True], kind="stable").iloc[0]
    assert (chosen["learning_rate"], chosen["epochs"]) == (best.learning_rate, best.epochs)
    assert chosen["face_box"] == "crop" and chosen["optimizer"] == "sgd"

    # the inner partition is never taken for the dataset's, nor the other way round: a
    # search pointed at a study's partition folder must not score on its test subjects
    from mfr.core.errors import RunFolderError
    from mfr.study.search import inner_partition
    from mfr.study.steps import partition_step

    with pytest.raises(RunFolderError):
        partition_step(cfg, out / "partition")
    partition_step(cfg, tmp_path / "full")
    with pytest.raises(RunFolderError):
        inner_partition(cfg, tmp_path / "full")

    before = (out / "search.csv").read_bytes()
    again = search(cfg, out, 4, optimizers=("sgd",), learning_rates=(1e-4, 1e-3),
                   epochs=(1, 2), face_boxes=("crop",), progress=False)
    assert again == chosen and (out / "search.csv").read_bytes() == before


def test_search_refuses_bad_grids_before_any_work(tmp_path):
    from mfr.core.errors import InputError
    from mfr.study.search import search

    cfg = StudyConfig(backbone="dlib_resnet", data_root=str(tmp_path))
    with pytest.raises(InputError, match="optimizers"):
        search(cfg, tmp_path / "s", 4, optimizers=("lion",))
    with pytest.raises(InputError, match="epochs"):
        search(cfg, tmp_path / "s", 4, epochs=(0,))
    with pytest.raises(InputError, match="1..109"):
        search(cfg, tmp_path / "s", 200)
    assert not (tmp_path / "s").exists()


def test_every_command_prints_its_help():
    """argparse %-formats help text: a bare % in a config field's help broke `--help`."""
    from mfr.cli import COMMANDS, main

    for name in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0, name


def test_no_commands_own_option_shadows_a_config_field():
    """config_from_args reads every parsed name that is a config field: a command's own option
    of that name (default None) would overwrite the profile's value."""
    import argparse

    from mfr.cli import build_parser
    from mfr.commands._common import _FIELDS

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    own = {(name, a.dest) for name, p in sub.choices.items() for a in p._actions
           if a.dest in _FIELDS and a.default is not argparse.SUPPRESS}
    # verify and study read the few config values they take themselves
    assert own <= {("verify", "backbone"), ("study", "profile"), ("study", "data_root"),
                   ("study", "seeds")}, own
