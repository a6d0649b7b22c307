"""Numbers a user types: every command option that is a number has a minimum and, where it makes
sense, a maximum, checked when the arguments are parsed (before any slow import or work).

Each function returns an ``argparse`` type: ``parser.add_argument("--n-boot",
type=integer(100, 20_000))``. A value out of range, not a number, or not finite is an
``argparse.ArgumentTypeError`` that the CLI prints as one line naming the option:
``mfr gradcam: error: argument --n-boot: expected an integer in 100..20000, got '0'``.
The config's fields (:class:`mfr.core.config.StudyConfig`) carry their own bounds in their
metadata and are checked by the config, with the same words (:func:`range_words`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from mfr.core.readers.text import excerpt

__all__ = ["integer", "integer_list", "range_words", "real", "real_list"]


def range_words(minimum: float | None = None, maximum: float | None = None,
                above: float | None = None, below: float | None = None) -> str:
    """``in [0, 1)``, ``> 0``, ``in 1..20000``: a range as the messages say it (integers when
    the inclusive bounds are ints)."""
    if (above is None and below is None and isinstance(minimum, int)
            and isinstance(maximum, int)):
        return f"in {minimum}..{maximum}"
    low = f"[{minimum:g}" if minimum is not None else f"({above:g}" if above is not None else ""
    high = f"{maximum:g}]" if maximum is not None else f"{below:g})" if below is not None else ""
    if low and high:
        return f"in {low}, {high}"
    if low:
        return (">= " if low[0] == "[" else "> ") + low[1:]
    if high:
        return ("<= " if high[-1] == "]" else "< ") + high[:-1]
    return "finite"


def _in_range(value: float, minimum: float | None, maximum: float | None, above: float | None,
              below: float | None) -> bool:
    return not ((minimum is not None and value < minimum) or (above is not None and value <= above)
                or (maximum is not None and value > maximum)
                or (below is not None and value >= below))


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An integer option in ``minimum..maximum`` (inclusive; no maximum: >= minimum)."""
    words = range_words(minimum, maximum) if maximum is not None else f">= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            value = None
        if value is None or not _in_range(value, minimum, maximum, None, None):
            raise argparse.ArgumentTypeError(f"expected an integer {words}, got "
                                             f"{excerpt(text, 30)}")
        return value

    parse.__name__ = "integer"
    return parse


def real(minimum: float | None = None, maximum: float | None = None, above: float | None = None,
         below: float | None = None) -> Callable[[str], float]:
    """A finite number option in the range given (``minimum``/``maximum`` inclusive,
    ``above``/``below`` exclusive)."""
    words = range_words(minimum, maximum, above, below)

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not _in_range(value, minimum, maximum, above, below):
            raise argparse.ArgumentTypeError(f"expected a number {words}, got "
                                             f"{excerpt(text, 30)}")
        return value

    parse.__name__ = "number"
    return parse


def _listed(one: Callable[[str], float], kind: str, max_items: int) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        items = [v for v in text.split(",") if v.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma list of {kind}s, got "
                                             f"{excerpt(text, 30)}")
        if len(items) > max_items:
            raise argparse.ArgumentTypeError(f"expected at most {max_items} {kind}s, got "
                                             f"{len(items)}")
        return tuple(one(v) for v in items)

    parse.__name__ = f"{kind} list"
    return parse


def integer_list(minimum: int, maximum: int | None = None,
                 max_items: int = 100) -> Callable[[str], tuple[int, ...]]:
    """A comma list of at most `max_items` integers, each in ``minimum..maximum``."""
    return _listed(integer(minimum, maximum), "integer", max_items)


def real_list(minimum: float | None = None, maximum: float | None = None,
              above: float | None = None, below: float | None = None,
              max_items: int = 100) -> Callable[[str], tuple[float, ...]]:
    """A comma list of at most `max_items` finite numbers, each in the range given."""
    return _listed(real(minimum, maximum, above, below), "number", max_items)
