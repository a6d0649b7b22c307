"""`mfr` command line: one subcommand per step of the study.

Each subcommand lives in `mfr/commands/<name>.py` and exposes `HELP`, `add_arguments(parser)`
and `run(args) -> int`. They are imported only when used, so `mfr partition` never imports
Keras or a backend.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mfr import __version__

COMMANDS = ("partition", "embed", "train", "evaluate")


def _module(name: str):
    return importlib.import_module(f"mfr.commands.{name}")


def build_parser(names: tuple[str, ...] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mfr", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"mfr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in names:
        mod = _module(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP, allow_abbrev=False)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Build only the requested subcommand's parser when we can: it keeps start-up light.
    names = tuple(a for a in argv[:1] if a in COMMANDS) or COMMANDS
    args = build_parser(names).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        # Bad input: one line that names the file and what was expected, no traceback.
        print(f"mfr {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
