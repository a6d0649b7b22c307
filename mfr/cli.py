"""`mfr` command line: one subcommand per step of the study.

Each subcommand lives in `mfr/commands/<name>.py` and exposes `HELP`, `add_arguments(parser)`
and `run(args) -> int`. They are imported only when used, so `mfr partition` never imports
Keras or a backend.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
import typing

from mfr import __version__
from mfr.core.errors import MfrError

COMMANDS = ("partition", "embed", "train", "evaluate", "gradcam", "verify", "study", "search",
            "data", "mask", "recipes", "gallery", "identify")


def _module(name: str):
    return importlib.import_module(f"mfr.commands.{name}")


class _Parser(argparse.ArgumentParser):
    """argparse's parser, its errors one line (exit 2) like every other mfr error: the
    option, what it expects and what it got, and where the usage is."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def build_parser(names: tuple[str, ...] = COMMANDS) -> argparse.ArgumentParser:
    parser = _Parser(prog="mfr", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"mfr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in names:
        mod = _module(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP, allow_abbrev=False)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Bad input (any :class:`mfr.core.errors.MfrError`) and file-system faults
    (a full disk, a permission) are one line on stderr and exit status 2; anything else is a
    bug: its traceback, a line saying so, and exit status 1."""
    argv = sys.argv[1:] if argv is None else argv
    # Build only the requested subcommand's parser when we can: it keeps start-up light.
    names = tuple(a for a in argv[:1] if a in COMMANDS) or COMMANDS
    args = build_parser(names).parse_args(argv)

    def abandon(why: str) -> None:  # imported when needed: it brings pandas
        from mfr.core.provenance import abandon as _abandon

        _abandon(why)

    try:
        from mfr.commands._common import check_inputs, check_out_apart

        check_inputs(args)  # before any slow import: each input is what it should be
        check_out_apart(args)  # before any work: an --out that would delete an input
        return int(args._run(args) or 0)
    except MfrError as e:
        abandon(_one_line(e))  # no run folder is left marked running, nor locked
        print(f"mfr {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # the environment, not the input: a full disk, a permission, ...
        abandon(_one_line(e))
        print(f"mfr {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        abandon("interrupted")
        print(f"mfr {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        abandon(f"a bug: {type(e).__name__}")
        traceback.print_exc()
        print(f"mfr {args.command}: this is a bug in mfr, not a problem with your input; "
              f"please report it with the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
