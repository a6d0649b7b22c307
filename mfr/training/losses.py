"""The training losses, behind one registry (in the manner of timm's ``_registry.py``).

Each entry (:class:`LossSpec`) says

- what the model must output: ``"distance"`` (one distance per pair: the Siamese model's) or
  ``"embedding"`` (one embedding per image);
- what batches the loss trains on: ``"pairs"`` (the (u, m, label) rows of a
  :class:`mfr.data.pairs.PairSet`) or ``"images_with_ids"`` (images with their subject ids, as a
  triplet or a margin-softmax loss wants);
- its hyperparameters (:class:`LossParam`: name, default, range, help naming the source): they
  live here, with the entry, and become fields of :class:`mfr.core.config.StudyConfig` (so YAML
  keys, notebook parameters and flags of `mfr train` / `mfr study`: ``--arcface-scale``) and
  nothing else; a training run's fingerprint records its loss's, no other loss's
  (:func:`loss_settings`);
- where it comes from, and its factory: ``"module:function"``, a function of those fields that
  returns the per-sample loss ``fn(y_true, y_pred)`` written in ``keras.ops`` (any backend;
  Keras's ``compile`` averages it over the batch, the JAX engines weight it with the batch's
  padding mask). An ``"embedding"`` loss gets the subject ids and the network's raw output
  (each loss normalises it as its source does) and returns the batch's loss;
- for a class-margin loss, its head (``head``: ``"module:function"``, called with the number of
  training subjects and the fields): a trainable layer ``[embedding, ids] -> logits`` trained
  with the network and saved with the run, not used at test time.

A new loss is one module holding its factory and one entry in :data:`LOSSES` (its parameters
included). Factories are imported only when a loss is made, so the config checks and ``mfr
--help`` need no Keras.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mfr.core.errors import InputError

__all__ = ["BATCHES", "DEFAULT_LOSS", "LOSSES", "OUTPUTS", "LossParam", "LossSpec",
           "contrastive_loss", "get_loss", "loss_names", "loss_params", "loss_settings",
           "pair_loss_fn", "require_pair_batches"]

#: what a model trained with a loss outputs
OUTPUTS = ("distance", "embedding")
#: what batches a loss trains on
BATCHES = ("pairs", "images_with_ids")
#: the thesis's loss; runs made before the registry trained it (see :func:`loss_settings`)
DEFAULT_LOSS = "contrastive"


@dataclass(frozen=True)
class LossParam:
    """One hyperparameter of a loss: its config field name (unique across losses: the YAML key
    and ``--flag``), its default, its help (naming its source), and its range (``minimum`` /
    ``maximum`` inclusive, ``above`` / ``below`` exclusive; every value must be finite)."""

    name: str
    default: float
    help: str
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None


@dataclass(frozen=True)
class LossSpec:
    """One loss: its name, what the model outputs, its batches, its hyperparameters, its
    source, and its factory (``"module:function"``, called with the hyperparameters as
    keyword arguments)."""

    name: str
    output: str
    batches: str
    params: tuple[LossParam, ...]
    source: str
    factory: str
    head: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The config fields holding this loss's hyperparameters."""
        return tuple(p.name for p in self.params)

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
        if self.head is not None and (":" not in self.head or self.output != "embedding"):
            raise ValueError(f"loss {self.name!r}: a head is 'module:function' and needs "
                             f"output 'embedding', got {self.head!r}")

    def settings(self, config: Any) -> dict[str, Any]:
        """This loss's own hyperparameters, as `config` (a StudyConfig) sets them."""
        return {f: getattr(config, f) for f in self.fields}

    def make(self, config: Any) -> Callable:
        """The per-sample loss ``fn(y_true, y_pred)`` with `config`'s hyperparameters (the
        factory is looked up now, so a replaced one is the one used)."""
        module, _, name = self.factory.partition(":")
        return getattr(importlib.import_module(module), name)(**self.settings(config))

    def make_head(self, config: Any, n_classes: int) -> Any:
        """This loss's class-margin head over `n_classes` training subjects (a Keras layer
        ``[embedding, ids] -> logits``, its class weights initialised from ``config.seed``),
        or None for a loss without one."""
        if self.head is None:
            return None
        module, _, name = self.head.partition(":")
        return getattr(importlib.import_module(module), name)(
            n_classes, seed=config.seed, **self.settings(config))

    def record(self, config: Any) -> dict[str, Any]:
        """What a run's record says of its loss: the entry's facts and its hyperparameters."""
        return {"name": self.name, "output": self.output, "batches": self.batches,
                "source": self.source, **self.settings(config)}


#: name -> entry; a new loss is one line here (and its module)
LOSSES: dict[str, LossSpec] = {s.name: s for s in (
    LossSpec("contrastive", output="distance", batches="pairs",
             params=(LossParam("margin", 5.0, "contrastive margin A (the thesis's 5 exceeds "
                                               "the largest d, 4; at most 100: beyond it only "
                                               "scales the loss)", above=0.0, maximum=100.0),),
             source="Eq. 3.4 of the thesis: y*d^2 + (1-y)*max(0, A-d)^2 (A: margin)",
             factory="mfr.training.losses:contrastive_loss"),
    LossSpec("triplet", output="embedding", batches="images_with_ids",
             params=(LossParam("triplet_margin", 0.2, "triplet: margin of the batch-hard hinge "
                               "on Euclidean distances of unit embeddings (0.2: FaceNet's "
                               "alpha, Schroff et al. 2015; Hermans et al. 2017's batch hard; at "
                               "most 2, the largest such distance)", above=0.0, maximum=2.0),),
             source="batch-hard triplet loss, Hermans et al. 2017 (In Defense of the Triplet "
                    "Loss): per anchor max(0, margin + hardest positive - hardest negative), "
                    "Euclidean distances of L2-normalised embeddings, averaged over the batch",
             factory="mfr.training.loss_triplet:batch_hard_triplet_loss"),
    LossSpec("arcface", output="embedding", batches="images_with_ids",
             params=(LossParam("arcface_scale", 64.0, "arcface: logit scale s (Deng et al. "
                               "2019: 64; at most 1024)", above=0.0, maximum=1024.0),
                     LossParam("arcface_margin", 0.5, "arcface: additive angular margin m, "
                               "radians (Deng et al. 2019: 0.5)", above=0.0,
                               below=math.pi / 2)),
             source="ArcFace, Deng et al. 2019: softmax over s*cos(theta + m) for the true "
                    "subject, s*cos(theta) for the others (training subjects' class weights)",
             factory="mfr.training.loss_margin:margin_softmax_loss",
             head="mfr.training.loss_margin:arcface_head"),
    LossSpec("cosface", output="embedding", batches="images_with_ids",
             params=(LossParam("cosface_scale", 64.0, "cosface: logit scale s (Wang et al. "
                               "2018: 64; at most 1024)", above=0.0, maximum=1024.0),
                     LossParam("cosface_margin", 0.35, "cosface: additive cosine margin m "
                               "(Wang et al. 2018: 0.35)", above=0.0, below=2.0)),
             source="CosFace, Wang et al. 2018: softmax over s*(cos(theta) - m) for the true "
                    "subject, s*cos(theta) for the others (training subjects' class weights)",
             factory="mfr.training.loss_margin:margin_softmax_loss",
             head="mfr.training.loss_margin:cosface_head"),
    LossSpec("dlib_metric", output="embedding", batches="images_with_ids",
             params=(LossParam("dlib_metric_threshold", 0.6, "dlib_metric: distance threshold "
                               "(dlib's loss_metric_, dlib/dnn/loss.h: 0.6)", above=0.0),
                     LossParam("dlib_metric_margin", 0.04, "dlib_metric: margin around the "
                               "threshold (dlib's loss_metric_: 0.04)", above=0.0)),
             source="dlib's loss_metric_ (dlib/dnn/loss.h), the loss dlib's face ResNet was "
                    "trained with: same-subject distances below threshold - margin, the hardest "
                    "other-subject ones above threshold + margin, on the raw output",
             factory="mfr.training.loss_dlib_metric:dlib_metric_loss"),
)}


def loss_names() -> list[str]:
    """The registered losses, in registry order."""
    return list(LOSSES)


def get_loss(name: str) -> LossSpec:
    """The entry of loss `name`; InputError (one line) listing the names for an unknown one."""
    if name not in LOSSES:
        raise InputError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    return LOSSES[name]


def loss_params() -> list[LossParam]:
    """Every loss's hyperparameters, in registry order: the config fields they become. A name
    used twice is an error (one field cannot be two losses' knob)."""
    seen: dict[str, str] = {}
    out = []
    for spec in LOSSES.values():
        for p in spec.params:
            if p.name in seen:
                raise ValueError(f"loss {spec.name!r}: parameter {p.name!r} is loss "
                                 f"{seen[p.name]!r}'s too")
            seen[p.name] = spec.name
            out.append(p)
    return out


def loss_settings(config: Any, spec: LossSpec | None = None) -> dict[str, Any]:
    """The settings a training run's results depend on through its loss (`spec`: the config's,
    resolved by the caller; looked up when None): the loss's own hyperparameters (``margin``
    for contrastive) and, for any loss but :data:`DEFAULT_LOSS`, its name (``loss``).
    Contrastive was the one loss before the registry and those runs recorded only its margin:
    recording its name would make every earlier run look stale, so its absence means
    contrastive."""
    spec = spec if spec is not None else get_loss(config.loss)
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
