"""The float precision a run's network computes in (``--precision``), pinned and recorded.

On an NVIDIA GPU of Ampere or later (Hopper included), TensorFlow and JAX both run float32
convolutions and matrix products as TF32 by default (a 10-bit mantissa), so "float32" there is
not float32 unless it is pinned. Each step that builds a network or embeds runs inside
:func:`precision_scope` (the :func:`with_precision` decorator), which pins the setting and puts
it back on exit, so that a test or a notebook does not inherit another step's policy; the
setting in effect (and the device it applies to) goes into every run.json that the step
writes, under ``numerics.precision`` (:func:`mfr.core.numerics.numerics`).

- ``float32``: full float32: TensorFlow's TF32 execution off, JAX's default matmul precision
  ``highest``, Keras's global policy ``float32``. The same as no setting on a CPU.
- ``tf32``: TF32 allowed (TensorFlow's default; JAX's ``tensorfloat32``), float32 policy. Only
  an NVIDIA GPU of compute capability 8.0 or later has TF32; anywhere else it is refused
  (:class:`mfr.core.errors.InputError`), rather than recorded as a setting that did nothing.
- ``bf16``: Keras's ``mixed_bfloat16`` policy: the network's layers compute in bfloat16 with
  float32 variables; the embeddings are cast to float32 before they are L2-normalised, and the
  Siamese distance and the loss are computed in float32. float32 parts stay pinned as above.

Keras-free at import; Keras, TensorFlow and JAX are touched only when a setting is applied.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from mfr.core.errors import InputError

__all__ = ["PRECISIONS", "apply_precision", "device_kind", "precision_in_effect",
           "precision_scope", "with_precision"]

#: the settings ``--precision`` takes
PRECISIONS = ("float32", "bf16", "tf32")

#: Keras's global dtype policy for each setting
_POLICY = {"float32": "float32", "tf32": "float32", "bf16": "mixed_bfloat16"}
#: JAX's ``jax_default_matmul_precision`` for each setting (None: JAX's own default)
_JAX_MATMUL = {"float32": "highest", "tf32": "tensorfloat32", "bf16": "highest"}

_IN_EFFECT: list[dict[str, Any]] = []  # the records of the scopes entered, innermost last

F = TypeVar("F", bound=Callable[..., Any])


def _backend() -> str:
    import keras

    return keras.config.backend()


def _tensorflow_runs() -> bool:
    """TensorFlow's flags matter: it is the Keras backend, or it is imported (MTCNN, decoding)."""
    return _backend() == "tensorflow" or "tensorflow" in sys.modules


def device_kind() -> dict[str, Any]:
    """The device the Keras backend computes on: ``{"platform", "kind", "compute_capability"}``
    (the last a string such as ``"9.0"`` on an NVIDIA GPU, else None)."""
    backend = _backend()
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        cc = getattr(d, "compute_capability", None)
        return {"platform": d.platform, "kind": str(d.device_kind),
                "compute_capability": str(cc) if cc is not None else None}
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            cc = details.get("compute_capability")
            return {"platform": "gpu", "kind": str(details.get("device_name", gpus[0].name)),
                    "compute_capability": ".".join(map(str, cc)) if cc else None}
    import platform  # the CPU's model is numerics.cpu, beside this record

    return {"platform": "cpu", "kind": platform.machine(), "compute_capability": None}


def _has_tf32(device: dict[str, Any]) -> bool:
    cc = device.get("compute_capability")
    if device["platform"] not in ("gpu", "cuda") or not cc:
        return False
    try:
        return int(str(cc).split(".")[0]) >= 8
    except ValueError:
        return False


def _state() -> dict[str, Any]:
    """What the frameworks are set to now, to be put back."""
    import keras

    state: dict[str, Any] = {"policy": keras.mixed_precision.global_policy().name}
    if _backend() == "jax":
        import jax

        state["jax_matmul"] = jax.config.jax_default_matmul_precision
    if _tensorflow_runs():
        import tensorflow as tf

        state["tf32"] = tf.config.experimental.tensor_float_32_execution_enabled()
    return state


def _set(policy: str, jax_matmul: str | None, tf32: bool | None) -> None:
    import keras

    keras.mixed_precision.set_global_policy(policy)
    if jax_matmul is not None or _backend() == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", jax_matmul)
    if tf32 is not None:
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(tf32)


def apply_precision(name: str) -> dict[str, Any]:
    """Pin precision `name` (one of :data:`PRECISIONS`) for what is built and run next; the
    record of it (the setting, the device, each framework's switch), as run.json keeps it.

    InputError: an unknown name, or ``tf32`` without an NVIDIA GPU of compute capability 8.0+.
    """
    if name not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    device = device_kind()
    if name == "tf32" and not _has_tf32(device):
        raise InputError(f"precision tf32: TF32 exists only on an NVIDIA GPU of compute "
                         f"capability 8.0+ (Ampere or later); this run computes on "
                         f"{device['platform']} ({device['kind']}): use float32 or bf16")
    backend = _backend()
    jax_matmul = _JAX_MATMUL[name] if backend == "jax" else None
    tf32 = (name == "tf32") if _tensorflow_runs() else None
    _set(_POLICY[name], jax_matmul, tf32)
    record: dict[str, Any] = {
        "setting": name, "keras_policy": _POLICY[name], "keras_backend": backend,
        "device": device,
        "convolutions_and_matmuls": {"float32": "float32 (TF32 off)", "tf32": "TF32 allowed",
                                     "bf16": "bfloat16 (float32 variables, embeddings, "
                                             "distances and loss)"}[name]}
    if jax_matmul is not None:
        record["jax_default_matmul_precision"] = jax_matmul
    if tf32 is not None:
        record["tensorflow_tf32_execution"] = tf32
    return record


@contextlib.contextmanager
def precision_scope(name: str) -> Iterator[dict[str, Any]]:
    """:func:`apply_precision` for the block, the frameworks' settings put back after it (and
    after an error); yields the record, which :func:`precision_in_effect` returns meanwhile."""
    before = _state()
    try:
        record = apply_precision(name)
        _IN_EFFECT.append(record)
        try:
            yield record
        finally:
            _IN_EFFECT.pop()
    finally:
        _set(before["policy"], before.get("jax_matmul"), before.get("tf32"))


def precision_in_effect() -> dict[str, Any]:
    """The innermost :func:`precision_scope`'s record; outside any, what no step pinned."""
    if _IN_EFFECT:
        return dict(_IN_EFFECT[-1])
    return {"setting": None, "why": "not pinned by mfr here: the frameworks' defaults "
                                    "(float32 on a CPU; TF32 on an Ampere+ NVIDIA GPU)",
            "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow")}


def with_precision(step: F) -> F:
    """Run `step` inside :func:`precision_scope`: of its keyword ``precision=`` where given,
    else of its StudyConfig's (an argument with a ``precision``, or ``config=``), else float32."""
    @functools.wraps(step)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        config = kwargs.get("config") or next((a for a in args if hasattr(a, "precision")), None)
        name = kwargs.get("precision") or getattr(config, "precision", None) or "float32"
        with precision_scope(name):
            return step(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
