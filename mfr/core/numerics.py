"""Which floating-point kernels ran: recorded in every run.json beside the versions.

TensorFlow's oneDNN kernels order floating-point sums differently from its own (Eigen)
kernels, so a result made with them agrees with one made without only to a tolerance
(``results/benchmarks/onednn_cpu.json``). TensorFlow 2.x on Linux x86-64 turns them on by
default on a CPU with any of :data:`ONEDNN_DEFAULT_FLAGS` (``tensorflow/core/util/port.cc``,
``DefaultOneDnnPolicy``), and ``TF_ENABLE_ONEDNN_OPTS`` (0/1/false/true) overrides that. mfr
leaves the setting to the user and records which one ran, and the CPU flags that decided it.
"""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["ONEDNN_DEFAULT_FLAGS", "cpu_flags", "cpu_model", "numerics", "onednn_setting"]

#: /proc/cpuinfo flags any one of which makes TensorFlow turn oneDNN on by default (Linux x86)
ONEDNN_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
                        "amx_bf16")


def _cpuinfo_field(name: str) -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The first CPU's flags in /proc/cpuinfo (empty where there is none)."""
    return frozenset((_cpuinfo_field("flags") or "").split())


@lru_cache(maxsize=1)
def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def onednn_setting(env: str | None = None, flags: frozenset[str] | None = None,
                   machine: str | None = None, ask_tensorflow: bool = True) -> dict[str, Any]:
    """TensorFlow's oneDNN setting as port.cc decides it: ``{"on", "why", "cpu_flags"}``.

    `env` is ``TF_ENABLE_ONEDNN_OPTS`` (default: the environment's), `flags` the CPU flags
    (default: :func:`cpu_flags`). When TensorFlow is imported (and `ask_tensorflow`), its own
    answer (``IsMklEnabled``) is used, and said so where it differs. ``on`` is None where the default is not known
    (not Linux x86-64).
    """
    env = os.environ.get("TF_ENABLE_ONEDNN_OPTS") if env is None else env
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    deciding = sorted(f for f in ONEDNN_DEFAULT_FLAGS if f in flags)
    value = (env or "").strip().lower()
    if value in ("1", "true", "0", "false"):
        on: bool | None = value in ("1", "true")
        why = f"TF_ENABLE_ONEDNN_OPTS={env}"
    elif sys.platform.startswith("linux") and machine in ("x86_64", "amd64"):
        on = bool(deciding)
        why = (f"TensorFlow's default on this CPU: it has {', '.join(deciding)}" if deciding
               else f"TensorFlow's default on this CPU: it has none of "
                    f"{', '.join(ONEDNN_DEFAULT_FLAGS)}")
    else:
        on, why = None, f"TensorFlow's default on {sys.platform}/{machine} (not checked)"
    tf_says = _tensorflow_says() if ask_tensorflow else None
    if tf_says is not None and tf_says != on:
        on, why = tf_says, f"{why}; TensorFlow itself reports {'on' if tf_says else 'off'}"
    return {"on": on, "why": why, "cpu_flags": deciding}


def _tensorflow_says() -> bool | None:
    """TensorFlow's own ``IsMklEnabled()``, only when TensorFlow is already imported."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # noqa: BLE001 - a private module; its absence just means "unknown"
        return None


def numerics() -> dict[str, Any]:
    """What decides the floating-point order of a run: the CPU, the oneDNN setting, the float
    precision pinned (``--precision``) and the device it applies to
    (:func:`mfr.core.precision.precision_in_effect`)."""
    from mfr.core.precision import precision_in_effect

    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "tensorflow_onednn": onednn_setting(), "precision": precision_in_effect()}
