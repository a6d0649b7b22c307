"""The config home: one name per setting, types checked on load, flags derived from fields."""

from __future__ import annotations

import os
import stat

import pytest

from mfr.cli import main
from mfr.commands._common import flag
from mfr.core import outputs
from mfr.core.config import StudyConfig, load_config


def test_replace_sets_none_and_checks_types():
    cfg = load_config("thesis")
    assert cfg.weights == "vggface2" and cfg.replace(weights=None).weights is None
    assert cfg.replace(trainable_layers="10,30").trainable_layers == (10, 30)
    assert cfg.replace(trainable_layers="[10, 30]").trainable_layers == (10, 30)
    assert cfg.replace(trainable_layers=20).trainable_layers == (20,)
    assert cfg.replace(learning_rate=1).learning_rate == 1.0
    with pytest.raises(ValueError, match=r"learning_rate: expected a number, got '1e-3'.*1\.0e-3"):
        cfg.replace(learning_rate="1e-3")
    with pytest.raises(ValueError, match="epochs: expected an integer, got 'two'"):
        cfg.replace(epochs="two")
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1"):
        cfg.replace(batch_size=0)
    with pytest.raises(ValueError, match="optimizer: expected one of sgd, adam, rmsprop"):
        cfg.replace(optimizer="sgdx")
    with pytest.raises(ValueError, match="unknown config keys"):
        cfg.replace(lr=1e-3)


def test_profile_values_are_checked_when_loaded(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1e-3\n")  # YAML 1.1 reads this as a string
    with pytest.raises(ValueError, match=r"bad\.yaml: config key learning_rate"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="demo"):
        load_config("nope")


def test_cli_flags_are_the_field_names(capsys):
    assert flag("learning_rate") == "--learning-rate"
    with pytest.raises(SystemExit):  # abbreviations are not accepted
        main(["train", "--trainable-layer", "10", "--dry-run"])
    assert "unrecognized arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--lr", "1e-3", "--dry-run"])
    capsys.readouterr()
    assert main(["train", "--trainable-layers", "10", "--learning-rate", "1e-3",
                 "--weights", "none", "--dry-run"]) == 0
    fields = {f.replace("_", "-") for f in StudyConfig.__dataclass_fields__}
    assert {"learning-rate", "trainable-layers", "trunk-cache"} <= fields


def test_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = outputs.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
