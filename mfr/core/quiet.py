"""TensorFlow's start-up banners, kept off the user's terminal without changing any numerics.

While its shared libraries load, TensorFlow's C++ writes a few INFO records to file
descriptor 2 *before* absl logging has read ``TF_CPP_MIN_LOG_LEVEL``, so that level cannot
silence them. On a CPU with AVX-512 VNNI/BF16, AVX-VNNI or AMX (where TensorFlow turns its
oneDNN kernels on by default), or whenever ``TF_ENABLE_ONEDNN_OPTS=1``, every import prints::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796425889.439542    3199 port.cc:153] oneDNN custom operations are on. ...

twice. Only ``TF_ENABLE_ONEDNN_OPTS=0`` stops it, and that switches oneDNN off, i.e. changes
the numbers. So mfr does not touch the setting: while (and only while) the ``tensorflow``
package is first imported, fd 2 goes to a temporary file; afterwards each line is written back
to the real stderr unless it is such a banner: an absl log record (``I0000 00:00:... file.cc:N]``)
of a severity below ``TF_CPP_MIN_LOG_LEVEL``, the absl pre-initialisation notice that comes
with them, or the continuation line of the CPU-feature notice. Everything else (Python
warnings, errors, a W record when the level is 1) passes through in order. With
``TF_CPP_MIN_LOG_LEVEL=0`` nothing is filtered: the user asked for every record.

:func:`install` (called by ``import mfr``) puts a finder on ``sys.meta_path`` that wraps the
first import of ``tensorflow`` in :func:`filtered_fd2`, wherever it comes from: Keras's
TensorFlow backend, Grad-CAM's tf-keras-vis, MTCNN, a notebook cell. Which oneDNN setting ran
is recorded in every run.json (:func:`mfr.core.numerics.numerics`).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator

__all__ = ["filtered_fd2", "install", "is_banner"]

#: an absl/glog record: severity letter, MMDD, time, thread id, ``file.cc:line]``
_RECORD = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+(?:\.\d+)?\s+\d+ [\w.\-/]+:\d+\] ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
#: the second line of cpu_feature_guard.cc's INFO record
_CPU_GUARD_TAIL = re.compile(r"^To enable the following instructions: .* rebuild TensorFlow with "
                             r"the appropriate compiler flags\.$")


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def is_banner(line: str, min_level: int | None = None) -> bool:
    """Whether `line` (without its newline) is a start-up record TensorFlow should not have
    printed at log level `min_level` (default: ``TF_CPP_MIN_LOG_LEVEL``)."""
    level = _min_log_level() if min_level is None else min_level
    if level <= 0:
        return False
    m = _RECORD.match(line)
    if m:
        return _SEVERITY[m.group(1)] < level
    return line == _ABSL_NOTICE or bool(_CPU_GUARD_TAIL.match(line))


@contextlib.contextmanager
def filtered_fd2(drop: Callable[[str], bool] = is_banner) -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the block, then write its lines back to
    the real fd 2 in order, less those for which `drop(line)` is true.

    A file rather than a pipe: C++ code writing while the GIL is held can never fill a pipe
    that no thread is free to drain. If fd 2 cannot be redirected, the block runs unfiltered.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        buf = tempfile.TemporaryFile()
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        os.dup2(buf.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            buf.seek(0)
            kept = [ln for ln in buf.read().splitlines(keepends=True)
                    if not drop(ln.rstrip(b"\r\n").decode("utf-8", "replace"))]
            if kept:
                os.write(2, b"".join(kept))
    finally:
        buf.close()
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """A loader that runs another loader's ``exec_module`` inside :func:`filtered_fd2`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec):  # noqa: ANN001 - importlib's protocol
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001
        try:
            with filtered_fd2():
                self._loader.exec_module(module)
        finally:
            module.__loader__ = self._loader  # the package's own loader from now on
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader
            _uninstall()

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds the ``tensorflow`` package as the path finder does, with a :class:`_QuietLoader`."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


_FINDER = _QuietTensorFlowFinder()


def _uninstall() -> None:
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_FINDER)


def install() -> None:
    """Filter TensorFlow's start-up banners from its first import on (idempotent; nothing to
    do when TensorFlow is already imported)."""
    if "tensorflow" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
