"""mfr's one exception family: bad input, missing files, refused run folders.

An :class:`MfrError` is something the user can fix (a file, a flag, a folder); the CLI prints
it as one line naming the file and what was expected, and exits 2. Anything else that escapes
is a bug and keeps its traceback. The subclasses also derive from the matching built-in
(ValueError, FileNotFoundError, ...), so callers of the library can catch either.
"""

from __future__ import annotations

from typing import Any

__all__ = ["InputError", "MfrError", "MissingError", "NotADirError", "RunFolderError", "excerpt"]


class MfrError(Exception):
    """A problem with the user's input or environment, stated in one line."""


class InputError(MfrError, ValueError):
    """A value, file content or argument is not what was expected."""


class MissingError(MfrError, FileNotFoundError):
    """A file or folder that is needed is not there."""


class NotADirError(MfrError, NotADirectoryError):
    """A path that must be a folder is not one."""


class RunFolderError(MfrError):
    """An output folder holds another run (or other files) and may not be reused or replaced."""


def excerpt(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to about `limit` characters (``...`` and the full length after):
    messages quote what they refuse, never all of it."""
    if isinstance(value, str | bytes):
        text = repr(value[: limit + 1])
        n = len(value)
    else:
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 - a repr that fails is still named
            text = f"<{type(value).__name__}>"
        n = len(text)
    if len(text) > limit:
        return f"{text[:limit]}... ({n} characters)" if isinstance(value, str | bytes) else (
            f"{text[:limit]}... (a {type(value).__name__})")
    return text
