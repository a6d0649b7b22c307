"""`mfr` command line: one subcommand per step of the study.

Each subcommand lives in `mfr/commands/<name>.py` and exposes `HELP`, `add_arguments(parser)`
and `run(args) -> int`. They are imported only when used, so `mfr partition` never imports
Keras or a backend.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
import traceback
import typing
from collections.abc import Callable, Iterator
from typing import Any

from mfr import __version__
from mfr.core.errors import MfrError

COMMANDS = ("partition", "embed", "train", "evaluate", "gradcam", "verify", "study", "search",
            "data", "mask", "recipes", "splits", "transfer", "gallery", "identify")


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
        # a command's own check of how its options go together, said before its files'
        p.set_defaults(_run=mod.run, _check=getattr(mod, "check_args", None))
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


#: signals that end a command in order (its run folders marked, its locks released): the
#: exit status is 128 + the signal's number, as a shell reports a process it killed
_ENDING_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP")
                        if hasattr(signal, n))


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised where the command was, so it ends in order."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _orderly_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` for the command's duration (the
    main thread only; the handlers before are put back after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in _ENDING_SIGNALS}
    for s in _ENDING_SIGNALS:
        signal.signal(s, _interrupt)
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def _ignoring_signals(fn: Callable[[], Any]) -> Any:
    """Run `fn` (the cleanup of an ending command) with the ending signals ignored: a second
    Ctrl-C must not cut the marking of its run folders short."""
    if threading.current_thread() is not threading.main_thread():
        return fn()
    before = {s: signal.signal(s, signal.SIG_IGN) for s in _ENDING_SIGNALS}
    try:
        return fn()
    finally:
        for s, handler in before.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def _os_error_line(e: OSError) -> str:
    """An OSError in one line that names its file: ``FILE: what went wrong``."""
    if e.filename is not None and e.strerror:
        return _one_line(f"{e.filename}: {e.strerror}")
    return _one_line(e)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Bad input (any :class:`mfr.core.errors.MfrError`) and file-system faults
    (a full disk, a permission) are one line on stderr and exit status 2; anything else is a
    bug: its traceback, a line saying so, and exit status 1. However the command ends (an
    error, Ctrl-C, SIGTERM or SIGHUP, a return before its run completed: a diverging training's
    exit 3), no run folder it claimed is left marked ``running`` nor locked
    (:func:`mfr.core.provenance.abandon`)."""
    argv = sys.argv[1:] if argv is None else argv
    # Build only the requested subcommand's parser when we can: it keeps start-up light.
    names = tuple(a for a in argv[:1] if a in COMMANDS) or COMMANDS
    args = build_parser(names).parse_args(argv)

    def end(reason: str) -> None:  # imported when needed: provenance brings pandas
        from mfr.core.provenance import abandon

        _ignoring_signals(lambda: abandon(reason))

    try:
        with _orderly_signals():
            from mfr.commands._common import check_inputs, check_out_apart

            if args._check is not None:
                args._check(args)  # options that contradict each other: before any file's check
            check_inputs(args)  # before any slow import: each input is what it should be
            check_out_apart(args)  # before any work: an --out that would delete an input
            status = int(args._run(args) or 0)
            end(f"mfr {args.command} ended (exit status {status}) before the run completed")
            return status
    except MfrError as e:
        end(_one_line(e))  # no run folder is left marked running, nor locked
        print(f"mfr {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # the environment, not the input: a full disk, a permission, ...
        end(_os_error_line(e))
        print(f"mfr {args.command}: error: {_os_error_line(e)}", file=sys.stderr)
        return 2
    except MemoryError as e:  # the machine's: a bug's traceback would say nothing more
        end("out of memory")
        print(f"mfr {args.command}: error: out of memory{f' ({_one_line(e)})' if str(e) else ''}"
              f"; free memory, or lower --embed-batch-size / --batch-size", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        from mfr.core.provenance import ending

        end(ending(e))
        signum = getattr(e, "signum", signal.SIGINT)
        how = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
        print(f"mfr {args.command}: interrupted{how}", file=sys.stderr)
        return 128 + int(signum)
    except Exception as e:
        end(f"a bug: {type(e).__name__}")
        traceback.print_exc()
        print(f"mfr {args.command}: this is a bug in mfr, not a problem with your input; "
              f"please report it with the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
