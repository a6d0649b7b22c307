"""The training losses, behind one registry (in the manner of timm's ``_registry.py``).

Each entry (:class:`LossSpec`) says

- what the model must output: ``"distance"`` (one distance per pair: the Siamese model's) or
  ``"embedding"`` (one embedding per image);
- what batches the loss trains on: ``"pairs"`` (the (u, m, label) rows of a
  :class:`mfr.data.pairs.PairSet`) or ``"images_with_ids"`` (images with their subject ids, as a
  triplet or a margin-softmax loss wants);
- the config fields it reads (its hyperparameters: a training run's fingerprint records them
  through :func:`loss_settings`, and no other loss's);
- where it comes from, and its factory: ``"module:function"``, a function of those fields that
  returns the per-sample loss ``fn(y_true, y_pred)`` written in ``keras.ops`` (any backend;
  Keras's ``compile`` averages it over the batch, the JAX engines weight it with the batch's
  padding mask).

A new loss is one module holding its factory and one entry in :data:`LOSSES`. Factories are
imported only when a loss is made, so the config checks and ``mfr --help`` need no Keras.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mfr.core.errors import InputError

__all__ = ["BATCHES", "DEFAULT_LOSS", "LOSSES", "OUTPUTS", "LossSpec", "contrastive_loss",
           "get_loss", "loss_names", "loss_settings", "pair_loss_fn", "require_pair_batches"]

#: what a model trained with a loss outputs
OUTPUTS = ("distance", "embedding")
#: what batches a loss trains on
BATCHES = ("pairs", "images_with_ids")
#: the thesis's loss; runs made before the registry trained it (see :func:`loss_settings`)
DEFAULT_LOSS = "contrastive"


@dataclass(frozen=True)
class LossSpec:
    """One loss: its name, what the model outputs, its batches, its config fields, its source,
    and its factory (``"module:function"``, called with the fields as keyword arguments)."""

    name: str
    output: str
    batches: str
    fields: tuple[str, ...]
    source: str
    factory: str

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"loss {self.name!r}: output must be one of {OUTPUTS}, "
                             f"got {self.output!r}")
        if self.batches not in BATCHES:
            raise ValueError(f"loss {self.name!r}: batches must be one of {BATCHES}, "
                             f"got {self.batches!r}")
        if ":" not in self.factory:
            raise ValueError(f"loss {self.name!r}: factory must be 'module:function', "
                             f"got {self.factory!r}")

    def settings(self, config: Any) -> dict[str, Any]:
        """This loss's own hyperparameters, as `config` (a StudyConfig) sets them."""
        return {f: getattr(config, f) for f in self.fields}

    def make(self, config: Any) -> Callable:
        """The per-sample loss ``fn(y_true, y_pred)`` with `config`'s hyperparameters (the
        factory is looked up now, so a replaced one is the one used)."""
        module, _, name = self.factory.partition(":")
        return getattr(importlib.import_module(module), name)(**self.settings(config))

    def record(self, config: Any) -> dict[str, Any]:
        """What a run's record says of its loss: the entry's facts and its hyperparameters."""
        return {"name": self.name, "output": self.output, "batches": self.batches,
                "source": self.source, **self.settings(config)}


#: name -> entry; a new loss is one line here (and its module)
LOSSES: dict[str, LossSpec] = {s.name: s for s in (
    LossSpec("contrastive", output="distance", batches="pairs", fields=("margin",),
             source="Eq. 3.4 of the thesis: y*d^2 + (1-y)*max(0, A-d)^2 (A: margin)",
             factory="mfr.training.losses:contrastive_loss"),
)}


def loss_names() -> list[str]:
    """The registered losses, in registry order."""
    return list(LOSSES)


def get_loss(name: str) -> LossSpec:
    """The entry of loss `name`; InputError (one line) listing the names for an unknown one."""
    if name not in LOSSES:
        raise InputError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    return LOSSES[name]


def loss_settings(config: Any) -> dict[str, Any]:
    """The settings a training run's results depend on through its loss: the loss's own
    fields (``margin`` for contrastive) and, for any loss but :data:`DEFAULT_LOSS`, its name
    (``loss``). Contrastive was the one loss before the registry and those runs recorded only
    its margin: recording its name would make every earlier run look stale, so its absence
    means contrastive."""
    spec = get_loss(config.loss)
    named = {} if spec.name == DEFAULT_LOSS else {"loss": spec.name}
    return {**named, **spec.settings(config)}


def require_pair_batches(spec: LossSpec, engine: str) -> None:
    """InputError (one line) unless `spec` trains the Siamese model (a distance per pair) on
    pair batches, as `engine` (named in the message) does; checked before any work."""
    if spec.batches != "pairs" or spec.output != "distance":
        able = [s.name for s in LOSSES.values() if s.batches == "pairs" and s.output == "distance"]
        raise InputError(f"loss {spec.name!r} trains on {spec.batches} with a model that outputs "
                         f"{'an' if spec.output == 'embedding' else 'a'} {spec.output}; {engine} "
                         f"trains the Siamese model (a distance per pair) on pair batches: use "
                         f"one of {', '.join(able)}")


def pair_loss_fn(spec: LossSpec, config: Any, engine: str) -> Callable:
    """`spec`'s per-pair loss with `config`'s hyperparameters, for `engine` (a pair-batch
    engine: :func:`require_pair_batches` first)."""
    require_pair_batches(spec, engine)
    return spec.make(config)


# --------------------------------------------------------------------------- the losses


def contrastive_loss(margin: float = 5.0) -> Callable:
    """Eq. 3.4 per pair: y*d^2 + (1-y)*max(0, margin - d)^2 (Keras averages it over the batch).

    With the thesis's margin 5 > max d = 4 the impostor term never vanishes."""
    from keras import ops

    margin = float(margin)

    def contrastive(y_true, d):
        y = ops.cast(ops.reshape(y_true, ops.shape(d)), d.dtype)
        return y * ops.square(d) + (1.0 - y) * ops.square(ops.relu(margin - d))

    contrastive.__name__ = "contrastive"
    return contrastive
