"""What the subcommands share: config flags named after `StudyConfig`'s fields, and reading them."""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from pathlib import Path
from typing import Any

from mfr.core.config import ConfigValueError, StudyConfig, load_config
from mfr.core.errors import InputError
from mfr.training.losses import loss_params

_FIELDS = {f.name: f for f in dataclasses.fields(StudyConfig)}
#: every loss's hyperparameters (they live with the loss's entry): flags of the commands that
#: train (`mfr train`, `mfr study`, `mfr search`, `mfr recipes`)
LOSS_FIELDS: tuple[str, ...] = tuple(p.name for p in loss_params())
_TYPES = typing.get_type_hints(StudyConfig)


def flag(name: str) -> str:
    """The CLI flag of a config field: ``learning_rate`` -> ``--learning-rate``."""
    return "--" + name.replace("_", "-")


def _none_or_str(text: str) -> str | None:
    return None if text.lower() in ("none", "null", "random") else text


def add_config_flags(parser: argparse.ArgumentParser, *names: str,
                     profile_flag: bool = True) -> None:
    """``--config PROFILE`` (unless `profile_flag` is False: a command with a profile option
    of its own) and one flag per named `StudyConfig` field, its help from the field.

    A flag not given stays out of the parsed arguments (``argparse.SUPPRESS``), so only what
    the user set overrides the profile. Booleans get ``--x/--no-x``; optional strings accept
    ``none``; ``trainable_layers`` takes ``10`` or ``10,20,30``.
    """
    if profile_flag:
        parser.add_argument("--config", default="thesis", metavar="PROFILE",
                            help="config profile (a name in configs/ or a YAML path); default "
                                 "thesis")
    group = parser.add_argument_group("config (defaults: the profile's; the thesis's values)")
    for name in names:
        f = _FIELDS[name]
        hint = _TYPES[name]
        default = f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS,
                              # argparse %-formats help text: a literal % is %%
                              "help": f"{f.metadata['help']} (default {shown})".replace("%", "%%")}
        if hint is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        elif hint is int:
            kw["type"] = int
        elif hint is float:
            kw["type"] = float
        elif typing.get_origin(hint) is tuple:
            kw["metavar"] = "N[,N...]"
        elif type(None) in typing.get_args(hint):
            kw["type"] = _none_or_str
        group.add_argument(flag(name), **kw)


def given_config_flags(args: argparse.Namespace, own_none: bool = False) -> dict[str, Any]:
    """The config fields whose flags were given (:func:`add_config_flags` leaves the others
    out of the parsed arguments). `own_none`: leave out names whose value is None (a command's
    own option that shares a field's name, e.g. `mfr verify --backbone`, left at its
    default)."""
    return {k: v for k, v in vars(args).items() if k in _FIELDS
            and not (own_none and v is None)}


def apply_flags(profile: StudyConfig, given: dict[str, Any]) -> StudyConfig:
    """`profile` with the `given` flags' values, each checked as the profile's are; a bad
    value is one line naming the flag."""
    try:
        return profile.replace(**given)
    except ConfigValueError as e:  # a flag's value, checked as the profile's are: one line
        if e.key not in given:
            raise
        raise InputError(f"{flag(e.key)}: {e.detail}") from None


def config_from_args(args: argparse.Namespace, own_none: bool = False) -> StudyConfig:
    """The profile named by ``--config``, with every config flag that was given
    (:func:`given_config_flags`)."""
    return apply_flags(load_config(args.config), given_config_flags(args, own_none))


#: A command's input folders, by argument: (what they are called, may the output folder hold
#: it, may the output folder lie inside it).
_INPUT_FOLDERS = {# may lie inside a pairs folder (its image cache does, PAIRS/cache): --force deletes
                  # the output folder only, never the pairs beside it
                  "pairs": ("pairs folder", False, True),
                  # may lie inside a data root: --data-root may be a folder above the dataset
                  # (the dataset folder under it is found later, by the step)
                  "data_root": ("data root", False, True),
                  "cache_dir": ("image cache", True, False),
                  "model": ("model run", False, True),
                  "run_dir": ("model run", False, True),
                  "study": ("study folder", False, True),
                  "source": ("manual download", False, False)}


def check_out_apart(args: argparse.Namespace) -> None:
    """The one check every command's output folder (``--out``, ``--to``) gets before any
    work: not one of its input folders, not holding one (``--force`` would delete it), not
    inside one (:func:`mfr.core.provenance.check_apart`). An image cache may lie in the output
    folder (``OUT/cache``); a study's or run's outputs may lie in its folder (the defaults)."""
    from mfr.core.provenance import check_apart

    given = vars(args)
    out = given.get("out") or given.get("to")
    if out is None:
        return
    labels = {name: f"{what} (--{'from' if name == 'source' else name.replace('_', '-')})"
              for name, (what, _, _) in _INPUT_FOLDERS.items()}
    inputs = {labels[name]: given.get(name) for name in _INPUT_FOLDERS}
    check_apart(out, inputs,
                may_hold=[labels[n] for n, (_, hold, _) in _INPUT_FOLDERS.items() if hold],
                may_lie_in=[labels[n] for n, (_, _, lie) in _INPUT_FOLDERS.items() if lie])


#: Input paths by argument: (what it is, the words of its "not found" line or None to leave a
#: missing one to the command, a file (True) or a folder (False)).
_INPUT_PATHS = {
    "pairs": ("pairs directory", "expected the output directory of `mfr partition`, with "
                                 "train/val/test.csv", False),
    "study": ("study folder", "expected a study folder: partition/, baseline/, train_N<N>/",
              False),
    "model": ("run folder", "expected a run folder of `mfr embed` or `mfr train`", False),
    "run_dir": ("run folder", "expected a run folder of `mfr train`", False),
    "cache_dir": ("image cache", None, False),
    "data_root": ("data root", None, False),
    "unmasked_root": ("image folder", None, False),
    "image_a": ("file", "expected an image file: JPEG, PNG, BMP, WebP, ...", True),
    "image_b": ("file", "expected an image file: JPEG, PNG, BMP, WebP, ...", True),
}


def check_inputs(args: argparse.Namespace) -> None:
    """The check every command's inputs get before any slow import (Keras, TensorFlow) or
    work: each input path given is what it must be (:mod:`mfr.core.readers.paths`: a folder,
    a regular file; a FIFO, a device or a symlink loop refused before anything opens it; a
    missing run, study or pairs folder named), the pair tables of a pairs folder pass
    :func:`mfr.data.pairs.read_pairs`, a thresholds file is one (its shape checked), and the
    profile and the config flags pass the config's checks (:func:`config_from_args`)."""
    from mfr.core.readers.paths import require_dir, require_file

    given = vars(args)
    for name, (what, expected, is_file) in _INPUT_PATHS.items():
        value = given.get(name)
        if value is None or value is argparse.SUPPRESS:
            continue
        path = Path(str(value)).expanduser()
        if expected is None and not os.path.lexists(path):
            continue  # the command says what a missing one means
        words = expected or f"expected a {'file' if is_file else 'folder'}: the {what}"
        (require_file if is_file else require_dir)(path, words, what)
    pairs = given.get("pairs")
    if pairs is not None:  # every pair table of the folder, read and checked (before any model)
        from mfr.data.pairs import SPLITS, own_pair_sets, read_pairs

        for split in (*SPLITS, *own_pair_sets(pairs)):
            table = Path(pairs) / f"{split}.csv"
            if os.path.lexists(table):
                read_pairs(table)
    source = given.get("source")
    if source is not None and os.path.lexists(source) and not os.path.isdir(source):
        require_file(source, "expected a manual download: an archive, or its unpacked folder",
                     "archive")
    weights = given.get("weights")
    if isinstance(weights, str) and os.path.lexists(weights):  # a file, not vggface2 / none
        require_file(weights, "expected a weights file (.h5 / .dat)", "weights file")
    threshold = given.get("threshold")
    if isinstance(threshold, str):
        from mfr.evaluation.thresholds import parse_threshold

        spec = parse_threshold(threshold)
        if isinstance(spec, Path):  # read whole and its shape checked, before any model loads
            from mfr.evaluation.thresholds import read_thresholds

            read_thresholds(spec)
    if "config" in given:
        config_from_args(args, own_none=True)
