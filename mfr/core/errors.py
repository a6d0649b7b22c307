"""mfr's one exception family: bad input, missing files, refused run folders.

An :class:`MfrError` is something the user can fix (a file, a flag, a folder); the CLI prints
it as one line naming the file and what was expected, and exits 2. Anything else that escapes
is a bug and keeps its traceback. The subclasses also derive from the matching built-in
(ValueError, FileNotFoundError, ...), so callers of the library can catch either.
"""

from __future__ import annotations

__all__ = ["InputError", "MfrError", "MissingError", "NotADirError", "RunFolderError"]


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
