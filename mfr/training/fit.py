"""Siamese fine-tuning of a backbone's last N layers (THESIS.md "Model"; SENet50 in the thesis):
arrays in, a trained model out.

One epoch = one pass over the training pairs in the order
``np.random.default_rng([seed, epoch]).permutation(n_train)`` (epoch counted from 0), in
batches of ``batch_size`` (the last one smaller), one SGD step per batch. The order depends
only on (seed, epoch), so a resumed run replays exactly the batches an uninterrupted run
takes. (The thesis shuffled once with ``shuffle(random_state=2021)`` and let Keras shuffle
each epoch, unseeded: its order cannot be reproduced; this one can.)

Two paths, the same SGD steps on the same batches:

- ``trunk_cache=True`` (default): everything before the trainable part is a fixed function of
  the image (BN in inference mode, frozen weights), so it is computed once per unique image
  (:func:`mfr.training.siamese.split_trunk`) and each step runs only the head on those features.
- ``trunk_cache=False`` ("thesis-style"): both twins' full network forward for every pair,
  every step, as the thesis did (on preprocessed images held in memory, not decoded per step).

Both keep their per-image inputs (features or images) in the model, on the device, so a step
moves only pair indices. Steps run through ``model.fit`` (any backend; ``steps_per_execution``
applies) or, under JAX, :class:`mfr.training.jax_engine.FusedJaxEngine` (``engine="fused"``, the default
there): the same SGD steps, without Keras's per-step overhead.

With an `out_dir`, :func:`train_siamese` writes ``history.csv`` and a checkpoint after every
epoch (:mod:`mfr.training.checkpoints`; ``resume=True`` continues from the latest) and
``final_trainable.h5`` (the trained layers only, legacy HDF5, the backbone's
:meth:`~mfr.backbones.base.Backbone.save_trained`). The run
folder's other files are :func:`mfr.study.steps.train_step`'s.

A non-finite loss stops the run (:class:`NonFiniteLossError`, naming the epoch and batch);
the checkpoint of the last good epoch is kept, so ``resume`` restarts from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import pandas as pd

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError
from mfr.core.outputs import write_csv
from mfr.core.progress import progress_bar
from mfr.data.pairs import PairSet
from mfr.training import checkpoints, siamese
from mfr.training.image_batches import pk_sizes
from mfr.training.losses import get_loss, loss_settings, pair_loss_fn, require_pair_batches

if TYPE_CHECKING:
    from mfr.backbones.base import Backbone
    from mfr.training.losses import LossSpec

__all__ = [
    "NonFiniteLossError",
    "TrainResult",
    "compact_pair_rows",
    "embed_rows",
    "epoch_order",
    "train_siamese",
]

# Hyperparameters a checkpoint must agree on to be resumed, beside the loss's own
# (:func:`mfr.training.losses.loss_settings`: the margin, for contrastive).
_FINGERPRINT_KEYS = ("optimizer", "learning_rate", "momentum", "batch_size", "seed",
                     "preprocessing")
#: the engines, as errors name them
_ENGINE_NAMES = {"fit": "model.fit (engine 'fit')", "fused": "the fused JAX engine",
                 "data_parallel": "the data-parallel JAX engine"}


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    history: pd.DataFrame
    trainable_layers: list[str]
    trainable_params: int
    path: str  # "cached" | "thesis-style"
    test_distances: np.ndarray | None = None
    test_pair_rows: np.ndarray | None = None
    test_embeddings: np.ndarray | None = None  # (n unique test images, D), L2-normalised
    embeddings: np.ndarray | None = None  # the unique val + test images', L2-normalised
    embedding_rows: np.ndarray | None = None  # their rows of `images` (sorted)
    timings: dict[str, Any] = field(default_factory=dict)
    resumed_from: int = 0  # epochs already done when this call started
    engine: str = "fit"  # "fit" | "fused"
    devices: int = 1  # devices the SGD steps ran on (data_parallel: every device, else 1)
    model: Any = None  # the Siamese model (u_idx, m_idx) -> d
    out_dir: Path | None = None  # where its files are, if anywhere


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the training pairs in `epoch` (0-based): depends on (seed, epoch) only."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def resume_fingerprint(config: StudyConfig, n: int, n_train: int,
                       loss: LossSpec | None = None) -> dict[str, Any]:
    """What a checkpoint must agree on with this run to be resumed by it."""
    fp = {**loss_settings(config, loss), **{k: getattr(config, k) for k in _FINGERPRINT_KEYS}}
    fp.update(trainable_layers=int(n), n_train=int(n_train))
    return fp


# --------------------------------------------------------------------------- inputs


def _check_pairs(name: str, pairs: PairSet, n_images: int) -> PairSet:
    u, m, y = (np.asarray(a) for a in pairs)
    if not (len(u) == len(m) == len(y)):
        raise InputError(f"{name} pairs: u_idx, m_idx and labels differ in length")
    for what, idx in (("u_idx", u), ("m_idx", m)):
        if idx.size and (idx.min() < 0 or idx.max() >= n_images):
            raise InputError(f"{name} pairs: {what} points outside the {n_images} cached images "
                             f"(the partition does not match the image cache)")
    if y.size and not np.isin(y, (0, 1)).all():
        raise InputError(f"{name} pairs: labels must be 0 or 1")
    return pairs.with_rows(u.astype(np.int64), m.astype(np.int64), y.astype(np.float32))


def compact_pair_rows(*sets: PairSet) -> tuple[np.ndarray, list[PairSet]]:
    """The image rows the pair sets use, each once and sorted, and the sets re-indexed into them.

    The model holds one input row per image it will ever see (trunk features or preprocessed
    images, on the device), so an image no pair uses is never computed or stored, and an image
    in many pairs is computed once. ``rows[i]`` is the image-array row behind model row i; the
    returned sets index model rows (int32, the dtype of the model's index inputs).
    """
    rows, inverse = np.unique(np.concatenate([np.r_[s.u_idx, s.m_idx] for s in sets]),
                              return_inverse=True)
    out, k = [], 0
    for s in sets:  # `inverse` is every set's u then m indices, concatenated in order
        n = len(s)
        out.append(s.with_rows(inverse[k:k + n].astype(np.int32),
                               inverse[k + n:k + 2 * n].astype(np.int32), s.labels))
        k += 2 * n
    return rows, out


def _feature_tables(images, rows, net_in, preprocess, batch_size, progress, desc):
    """net_in(preprocess(batch)) -> list of tensors, for `rows` of `images`, concatenated.

    Preprocessing (the backbone's) and `net_in` run on the device, in fixed-size batches (the
    last one padded, so no new shapes are compiled); the result stays on the device (no round
    trip).
    """
    ops = keras.ops
    chunks: list[list] = []
    starts = range(0, len(rows), batch_size)
    for s in progress_bar(starts, progress, total=len(starts), desc=desc):
        r = rows[s:s + batch_size]
        batch = np.asarray(images[r])
        if len(r) < batch_size and len(rows) > batch_size:
            batch = np.concatenate([batch, np.repeat(batch[:1], batch_size - len(r), axis=0)])
        x = preprocess(ops.convert_to_tensor(batch))
        chunks.append([f[:len(r)] for f in net_in(x)])
    return [ops.concatenate(list(parts), axis=0) if len(parts) > 1 else parts[0]
            for parts in zip(*chunks, strict=True)]


def _net_and_tables(core: keras.Model, images, rows: np.ndarray, cfg: StudyConfig,
                    backbone: Backbone, progress: bool,
                    store: tuple[Path, dict[str, Any]] | None = None) -> tuple[keras.Model, list]:
    """The network a step runs and its per-image inputs for `rows` of `images`: the head on
    cached trunk features (``trunk_cache``; with `store`, (folder, key), the features of every
    image kept on disk and shared by the runs of the same key: :mod:`mfr.training.trunk_store`),
    or the whole core on preprocessed images (thesis-style)."""
    if cfg.trunk_cache:
        split = siamese.split_trunk(core)
        net = split.head
        if store is not None:
            from mfr.training.trunk_store import trunk_features

            spec = backbone.preprocessing(cfg.preprocessing)
            folder, key = store
            key = {**key, "backbone": backbone.name, "boundary": split.boundary,
                   "preprocessing": spec.name, "embed_batch_size": cfg.embed_batch_size,
                   "precision": keras.config.dtype_policy().name,
                   "backend": keras.backend.backend(), "shape": list(np.shape(images))}
            features = trunk_features(split.trunk, images, lambda x: backbone.preprocess(x, spec),
                                      cfg.embed_batch_size, folder, key, progress)
            return net, [np.ascontiguousarray(f[rows]) for f in features]

        def net_in(x):
            f = split.trunk(x, training=False)
            return list(f) if isinstance(f, list | tuple) else [f]
        desc = "trunk features"
    else:
        net = core

        def net_in(x):
            return [x]
        desc = "preprocessing"
    spec = backbone.preprocessing(cfg.preprocessing)

    def preprocess(x):
        return backbone.preprocess(x, spec)
    return net, _feature_tables(images, rows, net_in, preprocess, cfg.embed_batch_size,
                                progress, desc)


def _compile(model: keras.Model, arrays: list, cfg: StudyConfig, jit_compile,
             loss_fn) -> keras.Model:
    model.table_bytes = float(sum(np.prod(a.shape) * 4 for a in arrays))
    model.compile(
        optimizer=siamese.make_optimizer(cfg.optimizer, cfg.learning_rate, cfg.momentum),
        loss=loss_fn,
        steps_per_execution=cfg.steps_per_execution,
        jit_compile=jit_compile,
    )
    model.optimizer.build(model.trainable_variables)
    return model


def _siamese_model(core: keras.Model, images, rows: np.ndarray, cfg: StudyConfig,
                   backbone: Backbone, progress: bool, jit_compile, loss_fn,
                   store: tuple[Path, dict[str, Any]] | None = None) -> keras.Model:
    """The Siamese model over `rows` of `images`, compiled with `loss_fn` (per pair)."""
    net, arrays = _net_and_tables(core, images, rows, cfg, backbone, progress, store)
    return _compile(siamese.build_siamese(net, arrays), arrays, cfg, jit_compile, loss_fn)


# --------------------------------------------------------------------------- one epoch


class _FiniteLossGuard(keras.callbacks.Callback):
    """Stop at the first batch whose running loss is NaN/inf; remember where."""

    def __init__(self, epoch: int, n_batches: int):
        super().__init__()
        self.epoch, self.n_batches = epoch, n_batches
        self.prev_end = -1
        self.bad: tuple[int, int] | None = None

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not np.isfinite(loss) and self.bad is None:
            self.bad = (self.prev_end + 2, batch + 1)  # 1-based batches of this execution
            self.model.stop_training = True
        self.prev_end = batch

    def message(self) -> str:
        first, last = self.bad
        where = f"batch {last}" if first == last else f"batches {first}..{last}"
        return (f"non-finite training loss in epoch {self.epoch + 1}, {where} of "
                f"{self.n_batches}; stopped, the last good checkpoint is kept (lower the learning "
                f"rate and run again, or resume)")


def _fit_epoch(model, x, y, batch_size: int, guard: _FiniteLossGuard, verbose: int) -> float:
    """One epoch of Keras ``fit`` in the given order; its mean loss, or NonFiniteLossError
    naming the first bad batch (all of them when only the epoch's mean is not finite)."""
    h = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=verbose,
                  callbacks=[guard])
    loss = float(h.history["loss"][-1])
    if guard.bad is not None or not np.isfinite(loss):
        if guard.bad is None:
            guard.bad = (1, guard.n_batches)
        raise NonFiniteLossError(guard.message())
    return loss


def _train_epoch(model, fused, train: PairSet, epoch: int, cfg: StudyConfig, verbose: int) -> float:
    """One epoch of SGD steps in :func:`epoch_order`; the epoch's mean training loss."""
    batch = epoch_order(cfg.seed, epoch, len(train))
    u, m, y = train.take(batch)
    n_batches = -(-len(train) // cfg.batch_size)
    guard = _FiniteLossGuard(epoch, n_batches)
    if fused is not None:
        from mfr.training.jax_engine import batch_mean

        batch_losses = fused.train_epoch(u, m, y, cfg.batch_size)
        bad = np.flatnonzero(~np.isfinite(batch_losses))
        if bad.size:
            guard.bad = (int(bad[0]) + 1, int(bad[0]) + 1)
            raise NonFiniteLossError(guard.message())
        sizes = np.minimum(cfg.batch_size, len(train) - cfg.batch_size * np.arange(n_batches))
        return batch_mean(batch_losses, sizes)
    return _fit_epoch(model, [u, m], y, cfg.batch_size, guard, verbose)


def _image_inputs(head, rows: np.ndarray, ids: np.ndarray):
    return [rows, ids.astype(np.int32)] if head is not None else rows


def _train_image_epoch(model, head, data, epoch: int, cfg: StudyConfig, verbose: int) -> float:
    """One epoch on images with subject ids: P x K batches (:mod:`mfr.training.image_batches`),
    one SGD step each; the epoch's mean training loss."""
    rows, ids, size = data.epoch(cfg.batch_size, cfg.seed, epoch)
    n_batches = len(rows) // size
    guard = _FiniteLossGuard(epoch, n_batches)
    return _fit_epoch(model, _image_inputs(head, rows, ids), ids.astype(np.float32), size, guard,
                      verbose)


def _image_loss(model, head, rows: np.ndarray, ids: np.ndarray, size: int) -> float:
    return float(model.evaluate(_image_inputs(head, rows, ids), ids.astype(np.float32),
                                batch_size=size, verbose=0))


def _val_loss(model, fused, val: PairSet, cfg: StudyConfig) -> float:
    if fused is not None:
        return fused.evaluate(val.u_idx, val.m_idx, val.labels, cfg.batch_size)
    return float(model.evaluate([val.u_idx, val.m_idx], val.labels, batch_size=cfg.batch_size,
                                verbose=0))


# --------------------------------------------------------------------------- the loop


def _pick_engine(engine: str) -> str:
    backend = keras.backend.backend()
    if engine == "auto":
        engine = "fused" if backend == "jax" else "fit"
    if engine not in ("fit", "fused") or (engine == "fused" and backend != "jax"):
        raise InputError(f"engine must be 'auto', 'fit' or (under JAX) 'fused', got {engine!r}")
    return engine


def train_siamese(
    core: keras.Model,
    n: int,
    images,
    train: PairSet,
    val: PairSet | None = None,
    test: PairSet | None = None,
    config: StudyConfig | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    verbose: int = 0,
    progress: bool = False,
    jit_compile: bool | str = "auto",
    engine: str = "auto",
    fingerprint: dict[str, Any] | None = None,
    backbone: Backbone | None = None,
    loss: LossSpec | None = None,
    trunk_store: tuple[Path, dict[str, Any]] | None = None,
) -> TrainResult:
    """Fine-tune `core`'s last `n` layers on `train` pairs of `images` (uint8 (N, H, W, 3)).

    Hyperparameters come from `config` (loss: an entry of :mod:`mfr.training.losses`, with its
    own fields, e.g. margin; a loss on images with subject ids (triplet, arcface, cosface,
    dlib_metric) trains the network alone on P x K batches of the train pairs' images
    (:mod:`mfr.training.fit_images`; the pairs need subjects) through ``model.fit``, its
    class-margin head, if any, checkpointed and saved as ``margin_head.npz``; optimizer, learning_rate, momentum, batch_size,
    epochs, seed, trunk_cache, steps_per_execution, preprocessing, embed_batch_size,
    keep_all_checkpoints, data_parallel: JAX only, each step's batch sharded across every
    device, :mod:`mfr.training.data_parallel`). `core` is modified in place (trainable flags,
    trained weights). The result holds the fine-tuned embeddings of the unique images of the
    `val` and `test` pairs (``embeddings``, ``embedding_rows``) and, with `test` pairs, their
    distances (the thesis's sum_squared).

    `engine`: "fit" (``model.fit`` one epoch at a time, any backend), "fused" (JAX only:
    :class:`mfr.training.jax_engine.FusedJaxEngine`; the same steps) or "auto" (fused under JAX).

    `fingerprint`: what a checkpoint in `out_dir` must have been made by to be resumed
    (default: the hyperparameters, N and the number of training pairs; :func:`mfr.study.steps.
    train_step` passes its run's whole fingerprint: inputs' contents and settings).

    `backbone`, `loss`: the config's, as the caller resolved them (:func:`mfr.study.steps.
    train_step` passes its own); looked up from `config` when None.

    `trunk_store`: (folder, key): the frozen trunk's features of every image of `images` kept
    in the folder and shared by runs of the same key (:mod:`mfr.training.trunk_store`; the key
    names the weights and the images, the rest is added here); ``trunk_cache`` only.
    """
    cfg = config or StudyConfig()
    if backbone is None:
        from mfr.backbones import get_backbone

        backbone = get_backbone(cfg.backbone)
    loss = loss if loss is not None else get_loss(cfg.loss)
    n = siamese.validate_trainable_layers(n, len(core.layers))
    if cfg.batch_size < 1 or cfg.epochs < 0 or cfg.steps_per_execution < 1:
        raise InputError("batch_size and steps_per_execution must be >= 1, epochs >= 0")
    train = _check_pairs("train", train, len(images))
    if len(train) == 0:
        raise InputError("no training pairs")
    val = _check_pairs("val", val, len(images)) if val is not None and len(val) else None
    test = _check_pairs("test", test, len(images)) if test is not None and len(test) else None
    out = Path(out_dir) if out_dir is not None else None
    fp = fingerprint if fingerprint is not None else resume_fingerprint(cfg, n, len(train), loss)
    ckpt = checkpoints.latest_checkpoint(out) if out is not None else None
    if ckpt is not None and not resume:
        raise InputError(f"{out}: holds checkpoints of an earlier run; resume it (--resume) or "
                         f"choose another output directory")
    if ckpt is not None:
        done = checkpoints.check_fingerprint(ckpt, fp)["epochs_done"]
        if done > cfg.epochs:
            raise InputError(f"{ckpt}: {done} epochs trained already; epochs {cfg.epochs} asks "
                             f"for fewer (choose another output folder)")
    on_images = loss.batches == "images_with_ids"
    if on_images and (cfg.data_parallel or engine not in ("auto", "fit")):
        # the JAX engines fuse the Siamese model's steps on pairs only
        require_pair_batches(loss, _ENGINE_NAMES["data_parallel" if cfg.data_parallel
                                                 else _pick_engine(engine)])
    engine = "fit" if on_images else _pick_engine(engine)
    if cfg.data_parallel:
        from mfr.training.data_parallel import require_jax

        require_jax()
        if engine != "fused":
            raise InputError("data_parallel runs the fused JAX engine (engine 'auto' or "
                             f"'fused'), not {engine!r}")
    loss_fn = loss.make(cfg) if on_images else pair_loss_fn(
        loss, cfg, _ENGINE_NAMES["data_parallel" if cfg.data_parallel else engine])
    names = siamese.set_trainable(core, n)
    layers = [core.get_layer(nm) for nm in names]
    if not layers:
        raise InputError(f"N={n}: the last {n} layers hold no trainable weights (nothing to train)")

    timings: dict[str, Any] = {}
    t0 = time.perf_counter()
    sets = [s for s in (train, val, test) if s is not None]
    rows, compact = compact_pair_rows(*sets)
    train_r = compact[0]
    val_r = compact[1] if val is not None else None
    test_r = compact[-1] if test is not None else None
    head = image_data = None
    if on_images:
        from mfr.training.fit_images import build_image_model, image_sets

        image_data = image_sets(train_r, val_r, head=loss.head is not None)
        pk_sizes(cfg.batch_size)  # a batch too small for P x K: an error before any work
        head = loss.make_head(cfg, len(image_data.subjects))
        net, arrays = _net_and_tables(core, images, rows, cfg, backbone, progress, trunk_store)
        model = _compile(build_image_model(net, arrays, head), arrays, cfg, jit_compile,
                         loss_fn)
        del arrays
    else:
        model = _siamese_model(core, images, rows, cfg, backbone, progress, jit_compile, loss_fn,
                               trunk_store)
    timings["table_s"] = time.perf_counter() - t0
    timings["table_bytes"] = model.table_bytes
    saved = layers + ([head] if head is not None else [])  # checkpointed: the head's too

    history: list[dict] = []
    start = 0
    if ckpt is not None:
        start, history = checkpoints.load_checkpoint(ckpt, model, saved, fp)
    fused = None
    if engine == "fused" and cfg.data_parallel:
        from mfr.training.data_parallel import DataParallelJaxEngine

        fused = DataParallelJaxEngine(model, loss, cfg)
    elif engine == "fused":
        from mfr.training.jax_engine import FusedJaxEngine

        fused = FusedJaxEngine(model, loss, cfg)
    t1 = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        te = time.perf_counter()
        if image_data is not None:
            row = {"epoch": epoch + 1,
                   "loss": _train_image_epoch(model, head, image_data, epoch, cfg, verbose)}
        else:
            row = {"epoch": epoch + 1,
                   "loss": _train_epoch(model, fused, train_r, epoch, cfg, verbose)}
        tv = time.perf_counter()
        if image_data is not None:
            val_batches = image_data.val_batches(cfg.batch_size, cfg.seed)
            if val_batches is not None:
                row["val_loss"] = _image_loss(model, head, *val_batches)
        elif val_r is not None:
            row["val_loss"] = _val_loss(model, fused, val_r, cfg)
        timings.setdefault("fit_s", []).append(tv - te)
        timings.setdefault("val_s", []).append(time.perf_counter() - tv)
        history.append(row)
        if out is not None:
            write_csv(out / "history.csv", pd.DataFrame(history))
            checkpoints.save_checkpoint(out, epoch + 1, model, saved, history, fp,
                                        keep_all=cfg.keep_all_checkpoints)
    timings["train_s"] = time.perf_counter() - t1
    timings["epochs_run"] = float(cfg.epochs - start)

    result = TrainResult(pd.DataFrame(history), names, siamese.trainable_param_count(layers),
                         "cached" if cfg.trunk_cache else "thesis-style", timings=timings,
                         resumed_from=start, model=model, engine=engine, out_dir=out,
                         devices=getattr(fused, "n_devices", 1))
    if out is not None:
        write_csv(out / "history.csv", result.history)
        backbone.save_trained(layers, out / "final_trainable.h5", core.name)
        if head is not None:
            from mfr.training.fit_images import save_margin_head

            save_margin_head(out, head, image_data.subjects, loss.record(cfg))
    if test_r is not None or val_r is not None:
        t2 = time.perf_counter()
        _embed_eval_pairs(result, model, rows, val_r, test_r, cfg.embed_batch_size)
        timings["test_s"] = time.perf_counter() - t2
    return result


def _embed_eval_pairs(result: TrainResult, model: keras.Model, rows: np.ndarray,
                      val: PairSet | None, test: PairSet | None, batch_size: int) -> None:
    """The fine-tuned embeddings of the val and test pairs' unique images (each once), and the
    test pairs' distances. `rows`: the image rows behind the model's rows."""
    from mfr.evaluation.distances import pair_distances

    sets = [s for s in (val, test) if s is not None]
    model_rows = np.unique(np.concatenate([np.r_[s.u_idx, s.m_idx] for s in sets]))
    emb = embed_rows(model, model_rows, batch_size)
    result.embeddings, result.embedding_rows = emb, rows[model_rows]
    if test is None:
        return
    test_rows, inv = np.unique(np.r_[test.u_idx, test.m_idx], return_inverse=True)
    nt = len(test)
    result.test_embeddings = emb[np.searchsorted(model_rows, test_rows)]
    result.test_pair_rows = inv  # rows of test_embeddings: unmasked then masked
    result.test_distances = pair_distances(result.test_embeddings, inv[:nt], inv[nt:],
                                           "sum_squared")


def embed_rows(model: keras.Model, rows: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """L2-normalised embeddings of table `rows`, through the Siamese model's own table and net."""
    table = model.get_layer("features")
    net = [la for la in model.layers if isinstance(la, keras.Model)][0]
    idx = keras.Input(shape=(), dtype="int32")
    f = table(idx)
    e = siamese.l2_normalize(keras.ops.cast(net(f if len(f) > 1 else f[0], training=False),
                                            "float32"))  # float32 under --precision bf16
    emb_model = keras.Model(idx, e)
    return np.asarray(emb_model.predict(np.asarray(rows, dtype=np.int32), batch_size=batch_size,
                                        verbose=0), dtype=np.float32)
