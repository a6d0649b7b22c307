"""JAX only: the fine-tuning loop's SGD steps compiled lean, without Keras's per-step overhead.

The same steps as ``model.fit`` -- the same batches in the same order, the same mean loss
per batch (the config's, from :mod:`mfr.training.losses`), ``optimizer.stateless_apply`` -- without the data adapter and the
callbacks, which cost more than a small head's step on a GPU. :mod:`mfr.training.fit` uses it under
JAX (``engine="fused"``, the default there).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from mfr.training.losses import LossSpec, pair_loss_fn

__all__ = ["FusedJaxEngine", "batch_mean", "host_batches"]


class FusedJaxEngine:
    """JAX only: lean compiled SGD steps, the same steps as ``model.fit`` -- the same batches
    in the same order, the same mean loss per batch, ``optimizer.stateless_apply``
    -- without Keras's per-step data adapter and callbacks. The epoch's pair indices go to the
    device once; each call runs ``spe`` steps (unrolled), indexed by a step counter kept on the
    device, so a call moves no data and does not wait for the previous one. Every batch's loss
    is kept, so a non-finite one is located exactly. (A ``lax.scan`` over the steps was tried:
    XLA:CPU runs convolution gradients inside a loop body ~10x slower.)

    `loss`: a registry entry (:mod:`mfr.training.losses`) made with `config`'s hyperparameters; one
    that does not train on pairs is refused (InputError). Steps per call: `config`'s
    ``steps_per_execution``."""

    #: the axis of the batch arrays that counts steps (a subclass may lay them out otherwise)
    step_axis = 0

    #: what the engine is called in an error
    what = "the fused JAX engine"

    def __init__(self, model: keras.Model, loss: LossSpec, config: Any):
        self.loss_fn = pair_loss_fn(loss, config, self.what)  # refused before JAX is needed
        import jax

        self.jax = jax
        self.model = model
        self.spe = max(1, int(config.steps_per_execution))
        self._train: dict = {}
        self._eval: dict = {}

    def _loss(self, tv, ntv, u, m, y, w):
        """The batch's mean loss over its real pairs (w = 1; padding w = 0)."""
        d, _ = self.model.stateless_call(tv, ntv, [u, m], training=True)
        ops = keras.ops
        return ops.sum(self.loss_fn(y, d) * w) / ops.sum(w)

    def _train_fn(self, n_steps: int):
        jax = self.jax
        opt = self.model.optimizer
        grad = jax.value_and_grad(self._loss)

        def run(tv, ov, k, ntv, *arrays):
            losses = []
            for _ in range(n_steps):
                batch = [jax.lax.dynamic_index_in_dim(a, k, self.step_axis, keepdims=False)
                         for a in arrays]
                loss, g = grad(tv, ntv, *batch)
                tv, ov = opt.stateless_apply(ov, g, tv)
                losses.append(loss)
                k = k + 1
            return tv, ov, k, keras.ops.stack(losses)

        return jax.jit(run, donate_argnums=(0, 1))

    def _eval_fn(self):
        jax = self.jax

        def run(tv, ntv, *arrays):
            def step(carry, batch):
                return carry, self._loss(tv, ntv, *batch)

            return jax.lax.scan(step, 0, arrays)[1]

        return jax.jit(run)

    def _batches(self, u, m, y, batch_size):
        """(steps, B) device arrays u, m, y, w; the last batch padded with w = 0 (no new
        shape to compile; its mean is over its real pairs, as Keras's smaller last batch)."""
        cols = host_batches(u, m, y, batch_size)
        jnp = self.jax.numpy
        return [jnp.asarray(c) for c in cols], cols[-1]

    def _state(self):
        model = self.model
        return ([v.value for v in model.trainable_variables],
                [v.value for v in model.optimizer.variables],
                [v.value for v in model.non_trainable_variables])

    def _fn(self, n_steps: int):
        if n_steps not in self._train:
            self._train[n_steps] = self._train_fn(n_steps)
        return self._train[n_steps]

    def train_epoch(self, u, m, y, batch_size) -> np.ndarray:
        jnp = self.jax.numpy
        model = self.model
        tv, ov, ntv = self._state()
        arrays, _ = self._batches(u, m, y, batch_size)
        n = arrays[0].shape[self.step_axis]
        k = jnp.zeros((), "int32")
        losses, done = [], 0
        while done < n:
            steps = self.spe if n - done >= self.spe else 1
            tv, ov, k, batch_losses = self._fn(steps)(tv, ov, k, ntv, *arrays)
            losses.append(batch_losses)
            done += steps
        for v, a in zip(model.trainable_variables, tv, strict=True):
            v.assign(a)
        for v, a in zip(model.optimizer.variables, ov, strict=True):
            v.assign(a)
        return np.concatenate([np.asarray(x) for x in losses])

    def evaluate(self, u, m, y, batch_size) -> float:
        tv, _, ntv = self._state()
        arrays, w = self._batches(u, m, y, batch_size)
        if self._eval.get("fn") is None:
            self._eval["fn"] = self._eval_fn()
        losses = np.asarray(self._eval["fn"](tv, ntv, *arrays))
        return batch_mean(losses, w.sum(axis=1))


def host_batches(u, m, y, batch_size: int) -> list[np.ndarray]:
    """u, m, y and the weights w as (steps, batch_size) numpy arrays, in order; the last batch
    padded with w = 0 rows (index 0, label 0)."""
    n = len(u)
    steps = -(-n // batch_size)
    pad = steps * batch_size - n
    w = np.r_[np.ones(n, np.float32), np.zeros(pad, np.float32)]
    cols = [np.r_[np.asarray(a), np.zeros(pad, np.asarray(a).dtype)]
            for a in (u, m, y)] + [w]
    return [c.reshape(steps, batch_size) for c in cols]


def batch_mean(losses: np.ndarray, sizes: np.ndarray) -> float:
    """Keras's reported epoch loss: the batch losses averaged with the batch sizes as weights."""
    return float(np.sum(losses.astype(np.float64) * sizes) / np.sum(sizes))
