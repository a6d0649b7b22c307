"""Progress bars for long loops (tqdm), switchable off for tests, logs and papermill runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress_bar(it: Iterable[T], enabled: bool = True, total: int | None = None,
             desc: str | None = None, unit: str = "it") -> Iterable[T]:
    """`it` wrapped in a tqdm bar when `enabled`, else `it` itself."""
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit=unit)
