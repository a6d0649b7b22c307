"""What the subcommands share: config flags named after `StudyConfig`'s fields, and reading them."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from mfr.config import ConfigValueError, StudyConfig, load_config
from mfr.errors import InputError

_FIELDS = {f.name: f for f in dataclasses.fields(StudyConfig)}
_TYPES = typing.get_type_hints(StudyConfig)


def flag(name: str) -> str:
    """The CLI flag of a config field: ``learning_rate`` -> ``--learning-rate``."""
    return "--" + name.replace("_", "-")


def _none_or_str(text: str) -> str | None:
    return None if text.lower() in ("none", "null", "random") else text


def add_config_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """``--config PROFILE`` and one flag per named `StudyConfig` field, its help from the field.

    A flag not given stays out of the parsed arguments (``argparse.SUPPRESS``), so only what
    the user set overrides the profile. Booleans get ``--x/--no-x``; optional strings accept
    ``none``; ``trainable_layers`` takes ``10`` or ``10,20,30``.
    """
    parser.add_argument("--config", default="thesis", metavar="PROFILE",
                        help="config profile (a name in configs/ or a YAML path); default thesis")
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


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """The profile named by ``--config``, with every config flag that was given."""
    given = {k: v for k, v in vars(args).items() if k in _FIELDS}
    profile = load_config(args.config)
    try:
        return profile.replace(**given)
    except ConfigValueError as e:  # a flag's value, checked as the profile's are: one line
        if e.key not in given:
            raise
        raise InputError(f"{flag(e.key)}: {e.detail}") from None
