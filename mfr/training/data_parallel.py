"""Data parallelism across one machine's devices (JAX backend; ``--data-parallel``).

``keras.distribution.DataParallel`` over every device ``keras.distribution.list_devices()``
sees gives the device mesh and the layouts; the work is jitted over inputs laid out with them,
and XLA (GSPMD) inserts the communication:

- **Fine-tuning** (:class:`DataParallelJaxEngine`, :mod:`mfr.training.fit`): each SGD step's pair
  indices, labels and weights are sharded along the batch (``get_data_layout``); the trainable
  variables, the optimizer state and the non-trainable ones -- the **feature table** of trunk
  features (or preprocessed images) included -- are **replicated** on every device
  (``get_variable_layout``). So every device holds the whole table: its memory is
  ``TrainResult.timings["table_bytes"]`` *per device*, as on one device; data parallelism
  speeds the steps up, it does not fit a bigger table. Each device computes the loss terms of
  its share of the batch and their gradients; the sum over the batch (an all-reduce) and the
  update, identical on every device, follow from the jit's sharding.
- **Embedding** (:class:`ShardedForward`, :func:`mfr.evaluation.embeddings.embed_images`): a jitted
  ``model.stateless_call`` with the batch of images sharded, the weights replicated.

A batch of B rows is padded to a multiple of the device count with weight-0 rows (said once,
as a warning). The loss of a step is the weighted mean over its rows, ``sum(w l) / sum(w)``,
so the padding changes neither the loss nor the gradient: the SGD steps are the one-device
steps, up to the order of float32 summation across devices (the tests hold them to rtol 1e-5).
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from mfr.core.errors import InputError
from mfr.training.jax_engine import FusedJaxEngine, host_batches
from mfr.training.losses import LossSpec

__all__ = ["DataParallelJaxEngine", "ShardedForward", "device_count", "distribution",
           "padded_size", "require_jax"]


def require_jax(what: str = "--data-parallel") -> None:
    """InputError (one line) unless Keras runs on JAX."""
    backend = keras.backend.backend()
    if backend != "jax":
        raise InputError(f"{what} needs the JAX backend: run with KERAS_BACKEND=jax (this run "
                         f"uses {backend})")


def distribution() -> keras.distribution.DataParallel:
    """Data parallelism over every device this process sees (one mesh axis, "batch")."""
    require_jax()
    return keras.distribution.DataParallel(devices=keras.distribution.list_devices())


def device_count(dist: keras.distribution.DataParallel) -> int:
    return int(np.prod(dist.device_mesh.shape))


def padded_size(batch: int, n_devices: int) -> int:
    """`batch` rounded up to a multiple of `n_devices`."""
    return -(-int(batch) // n_devices) * n_devices


def _replicate(dist, variables) -> list:
    return [keras.distribution.distribute_tensor(v.value, dist.get_variable_layout(v))
            for v in variables]


def _shard(dist, array):
    """`array` split along its first axis across the devices."""
    return keras.distribution.distribute_tensor(array, dist.get_data_layout(array.shape))


class DataParallelJaxEngine(FusedJaxEngine):
    """:class:`~mfr.training.jax_engine.FusedJaxEngine`'s SGD steps with each batch sharded across the
    devices (see the module docstring: the feature table is replicated on every device).

    The epoch's batches are laid out (B', steps), B' = the batch size padded to a multiple of
    the device count, and sharded along B'; a step takes column k. Padding rows have weight 0.
    """

    step_axis = 1
    what = "the data-parallel JAX engine"

    def __init__(self, model: keras.Model, loss: LossSpec, config: Any):
        super().__init__(model, loss, config)
        self.dist = distribution()
        self.n_devices = device_count(self.dist)
        self._ntv = None
        self._said: set[int] = set()

    def _batches(self, u, m, y, batch_size):
        cols = host_batches(u, m, y, batch_size)
        width = padded_size(batch_size, self.n_devices)
        if width != batch_size and batch_size not in self._said:
            self._said.add(batch_size)
            warnings.warn(f"batch {batch_size} padded to {width} for {self.n_devices} devices; "
                          f"the loss is the mean over the {batch_size} real pairs, exactly",
                          stacklevel=2)
        cols = [np.pad(c, ((0, 0), (0, width - batch_size))) for c in cols]  # w = 0 rows
        return [_shard(self.dist, np.ascontiguousarray(c.T)) for c in cols], cols[-1]

    def _state(self):
        model = self.model
        if self._ntv is None:  # constant while training (BN in inference mode): copied once
            self._ntv = _replicate(self.dist, model.non_trainable_variables)
        return (_replicate(self.dist, model.trainable_variables),
                _replicate(self.dist, model.optimizer.variables), self._ntv)

    def _eval_fn(self):
        jax = self.jax

        def run(tv, ntv, *arrays):
            def step(carry, batch):
                return carry, self._loss(tv, ntv, *batch)

            return jax.lax.scan(step, 0, [a.T for a in arrays])[1]  # (steps, B') per step

        return jax.jit(run)

    def train_epoch(self, u, m, y, batch_size) -> np.ndarray:
        losses = super().train_epoch(u, m, y, batch_size)
        # the variables back on one device: checkpoints and the embeddings after training
        # read them as the one-device run does
        model = self.model
        for v in (*model.trainable_variables, *model.optimizer.variables):
            v.assign(np.asarray(v.value))
        return losses


class ShardedForward:
    """``model(x, training=False)`` jitted with the batch sharded across the devices and the
    weights replicated; a batch not divisible by the device count is padded (rows dropped
    from the output)."""

    def __init__(self, model: keras.Model):
        import jax

        self.dist = distribution()
        self.n_devices = device_count(self.dist)
        self.tv = _replicate(self.dist, model.trainable_variables)
        self.ntv = _replicate(self.dist, model.non_trainable_variables)
        self.fn = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        x = np.asarray(x, dtype=np.float32)
        x = np.pad(x, ((0, padded_size(n, self.n_devices) - n),) + ((0, 0),) * (x.ndim - 1))
        out = self.fn(self.tv, self.ntv, _shard(self.dist, x))
        return np.asarray(out, dtype=np.float32)[:n]
