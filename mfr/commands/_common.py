"""What the subcommands share: config flags named after `StudyConfig`'s fields, and reading them."""

from __future__ import annotations

import argparse
import dataclasses
import typing
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


def given_config_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields whose flags were given (:func:`add_config_flags` leaves the others
    out of the parsed arguments)."""
    return {k: v for k, v in vars(args).items() if k in _FIELDS}


def apply_flags(profile: StudyConfig, given: dict[str, Any]) -> StudyConfig:
    """`profile` with the `given` flags' values, each checked as the profile's are; a bad
    value is one line naming the flag."""
    try:
        return profile.replace(**given)
    except ConfigValueError as e:  # a flag's value, checked as the profile's are: one line
        if e.key not in given:
            raise
        raise InputError(f"{flag(e.key)}: {e.detail}") from None


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """The profile named by ``--config``, with every config flag that was given."""
    return apply_flags(load_config(args.config), given_config_flags(args))


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
