"""Siamese fine-tuning of SENet50's last N layers (THESIS.md "Model"), resumable and fast.

One epoch = one pass over the training pairs in the order
``np.random.default_rng([seed, epoch]).permutation(n_train)`` (epoch counted from 0), in
batches of ``batch_size`` (the last one smaller), one SGD step per batch. The order depends
only on (seed, epoch), so a resumed run replays exactly the batches an uninterrupted run
takes. (The thesis shuffled once with ``shuffle(random_state=2021)`` and let Keras shuffle
each epoch, unseeded: its order cannot be reproduced; this one can.)

Two paths, the same SGD steps on the same batches:

- ``trunk_cache=True`` (default): everything before the trainable part is a fixed function of
  the image (BN in inference mode, frozen weights), so it is computed once per unique image
  (:func:`mfr.siamese.split_trunk`) and each step runs only the head on those features.
- ``trunk_cache=False`` ("thesis-style"): both twins' full SENet50 forward for every pair,
  every step, as the thesis did (on preprocessed images held in memory, not decoded per step).

Both keep their per-image inputs (features or images) in the model, on the device, so a step
moves only pair indices. Steps run through ``model.fit`` (any backend; ``steps_per_execution``
applies) or, under JAX, lean compiled steps with the pair indices on the device
(``engine="fused"``, the default there; ``steps_per_execution`` steps per call): the same SGD
steps, without Keras's per-step overhead.

Outputs in ``out_dir``:

- ``history.csv``: epoch (1-based), loss (mean training loss over the epoch's pairs, as Keras
  reports it), val_loss (after the epoch).
- ``checkpoints/epoch_<E>.npz``: after each epoch, the trainable layers' weights, the
  optimizer's variables and the history so far; written atomically. ``resume=True`` continues
  from the latest one.
- ``final_trainable.h5``: the trained layers only, in keras-vggface's legacy HDF5 layout
  (:func:`mfr.models.weights.save_legacy_h5`); load it over the base weights with
  ``load_legacy_h5(model, path, strict=False)`` (:func:`load_finetuned`).
- with test pairs: ``distances.csv``, ``summary.json`` (:mod:`mfr.distances`), from the
  fine-tuned model's embeddings of the unique test images; ``run.json``.

A non-finite loss stops the run (:class:`NonFiniteLossError`, naming the epoch and batch);
the checkpoints of earlier epochs are kept, so ``resume`` would restart from the last good one.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import keras
import numpy as np
import pandas as pd

from mfr import siamese
from mfr.config import StudyConfig
from mfr.outputs import atomic_path, run_metadata, write_csv, write_json
from mfr.progress import progress_bar

__all__ = [
    "NonFiniteLossError",
    "PairSet",
    "TrainResult",
    "epoch_order",
    "latest_checkpoint",
    "load_finetuned",
    "run_training",
    "train_siamese",
]

CHECKPOINT_FORMAT = 1
# Hyperparameters a checkpoint must agree on to be resumed.
_FINGERPRINT_KEYS = ("margin", "optimizer", "learning_rate", "momentum", "batch_size", "seed",
                     "preprocessing")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class PairSet(NamedTuple):
    u_idx: np.ndarray  # rows of the unmasked images
    m_idx: np.ndarray  # rows of the masked images
    labels: np.ndarray  # 1 genuine, 0 impostor

    @classmethod
    def of(cls, pairs) -> PairSet:
        return cls(*(np.asarray(a) for a in pairs[:3]))

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.u_idx)


@dataclass
class TrainResult:
    history: pd.DataFrame
    trainable_layers: list[str]
    trainable_params: int
    path: str  # "cached" | "thesis-style"
    test_distances: np.ndarray | None = None
    test_pair_rows: np.ndarray | None = None
    test_embeddings: np.ndarray | None = None  # (n unique test images, 2048), L2-normalised
    timings: dict[str, Any] = field(default_factory=dict)
    resumed_from: int = 0  # epochs already done when this call started
    engine: str = "fit"  # "fit" | "fused"
    model: Any = None  # the Siamese model (u_idx, m_idx) -> d


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the training pairs in `epoch` (0-based): depends on (seed, epoch) only."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


# --------------------------------------------------------------------------- checkpoints


def _ckpt_dir(out_dir: Path) -> Path:
    return Path(out_dir) / "checkpoints"


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The checkpoint of the last completed epoch in `out_dir`, or None."""
    d = _ckpt_dir(Path(out_dir))
    found = sorted(d.glob("epoch_*.npz")) if d.is_dir() else []
    return found[-1] if found else None


def _fingerprint(config: StudyConfig, n: int, n_train: int) -> dict[str, Any]:
    fp = {k: getattr(config, k) for k in _FINGERPRINT_KEYS}
    fp.update(trainable_layers=int(n), n_train=int(n_train))
    return fp


def _save_checkpoint(out_dir: Path, epoch: int, model, layers, history, fingerprint) -> Path:
    arrays: dict[str, np.ndarray] = {}
    for layer in layers:
        for i, w in enumerate(layer.trainable_weights):
            arrays[f"w/{layer.name}/{i}"] = keras.ops.convert_to_numpy(w)
    for i, v in enumerate(model.optimizer.variables):
        arrays[f"opt/{i}"] = keras.ops.convert_to_numpy(v)
    meta = {"format": CHECKPOINT_FORMAT, "epochs_done": epoch, "history": history,
            "fingerprint": fingerprint}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    path = _ckpt_dir(out_dir) / f"epoch_{epoch:03d}.npz"
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def _check_fingerprint(path: Path, fingerprint) -> dict:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
    if meta.get("fingerprint") != fingerprint:
        raise ValueError(
            f"{path}: checkpoint made with other settings {meta.get('fingerprint')}, this run "
            f"has {fingerprint}; use another --out or the same settings")
    return meta


def _load_checkpoint(path: Path, model, layers, fingerprint) -> tuple[int, list[dict]]:
    meta = _check_fingerprint(path, fingerprint)
    with np.load(path, allow_pickle=False) as z:
        for layer in layers:
            ws = layer.trainable_weights
            for i, w in enumerate(ws):
                key = f"w/{layer.name}/{i}"
                if key not in z.files or tuple(z[key].shape) != tuple(w.shape):
                    raise ValueError(f"{path}: no weight {key} of shape {tuple(w.shape)}")
                w.assign(z[key])
        opt_vars = model.optimizer.variables
        n_opt = sum(1 for k in z.files if k.startswith("opt/"))
        if n_opt != len(opt_vars):
            raise ValueError(f"{path}: {n_opt} optimizer variables, expected {len(opt_vars)}")
        for i, v in enumerate(opt_vars):
            v.assign(z[f"opt/{i}"])
    return int(meta["epochs_done"]), list(meta["history"])


def _test_kill_hook(epochs_done: int) -> None:
    """Tests only: ``MFR_TEST_KILL_AFTER_EPOCH=E`` SIGKILLs this process right after epoch E's
    checkpoint, a deterministic stand-in for a run killed mid-training."""
    if os.environ.get("MFR_TEST_KILL_AFTER_EPOCH") == str(epochs_done):
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- NaN guard


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


# --------------------------------------------------------------------------- training


def _table_arrays(images, rows, net_in, preprocessing, batch_size, progress, desc):
    """net_in(preprocessed batch) -> list of tensors, for `rows` of `images`, concatenated.

    Preprocessing and `net_in` run on the device, in fixed-size batches (the last one padded,
    so no new shapes are compiled); the result stays on the device (no round trip).
    """
    from mfr.models import preprocess

    ops = keras.ops
    chunks: list[list] = []
    starts = range(0, len(rows), batch_size)
    for s in progress_bar(starts, progress, total=len(starts), desc=desc):
        r = rows[s:s + batch_size]
        batch = np.asarray(images[r])
        if len(r) < batch_size and len(rows) > batch_size:
            batch = np.concatenate([batch, np.repeat(batch[:1], batch_size - len(r), axis=0)])
        x = preprocess(ops.convert_to_tensor(batch), mode=preprocessing)
        chunks.append([f[:len(r)] for f in net_in(x)])
    return [ops.concatenate(list(parts), axis=0) if len(parts) > 1 else parts[0]
            for parts in zip(*chunks, strict=True)]


def _check_pairs(name: str, pairs: PairSet, n_images: int) -> PairSet:
    u, m, y = (np.asarray(a) for a in pairs)
    if not (len(u) == len(m) == len(y)):
        raise ValueError(f"{name} pairs: u_idx, m_idx and labels differ in length")
    for what, idx in (("u_idx", u), ("m_idx", m)):
        if idx.size and (idx.min() < 0 or idx.max() >= n_images):
            raise ValueError(f"{name} pairs: {what} points outside the {n_images} cached images "
                             f"(the partition does not match the image cache)")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} pairs: labels must be 0 or 1")
    return PairSet(u.astype(np.int64), m.astype(np.int64), y.astype(np.float32))


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
) -> TrainResult:
    """Fine-tune `core`'s last `n` layers on `train` pairs of `images` (uint8 (N, H, W, 3)).

    Hyperparameters come from `config` (margin, optimizer, learning_rate, momentum,
    batch_size, epochs, seed, trunk_cache, steps_per_execution, preprocessing,
    embed_batch_size). `core` is modified in place (trainable flags, trained weights).

    `engine`: "fit" (``model.fit`` one epoch at a time, any backend), "fused" (JAX only: lean
    compiled steps, see :class:`_FusedJax`; the same steps) or "auto" (fused under JAX).
    """
    cfg = config or StudyConfig()
    n = siamese.validate_trainable_layers(n, len(core.layers))
    if cfg.batch_size < 1 or cfg.epochs < 0 or cfg.steps_per_execution < 1:
        raise ValueError("batch_size and steps_per_execution must be >= 1, epochs >= 0")
    n_images = len(images)
    train = _check_pairs("train", train, n_images)
    if len(train) == 0:
        raise ValueError("no training pairs")
    val = _check_pairs("val", val, n_images) if val is not None and len(val) else None
    test = _check_pairs("test", test, n_images) if test is not None and len(test) else None
    out = Path(out_dir) if out_dir is not None else None
    fp = _fingerprint(cfg, n, len(train))
    ckpt = latest_checkpoint(out) if out is not None else None
    if ckpt is not None and not resume:
        raise ValueError(f"{out}: holds checkpoints of an earlier run; resume it (--resume) or "
                         f"choose another output directory")
    if ckpt is not None:
        _check_fingerprint(ckpt, fp)
    if engine == "auto":
        engine = "fused" if keras.backend.backend() == "jax" else "fit"
    if engine not in ("fit", "fused") or (engine == "fused" and keras.backend.backend() != "jax"):
        raise ValueError(f"engine must be 'auto', 'fit' or (under JAX) 'fused', got {engine!r}")
    names = siamese.set_trainable(core, n)
    layers = [core.get_layer(nm) for nm in names]
    if not layers:
        raise ValueError(f"N={n}: the last {n} layers hold no trainable weights (nothing to train)")

    timings: dict[str, Any] = {}
    t0 = time.perf_counter()
    # Every image any split uses, once; pairs index into this compact table.
    sets = [s for s in (train, val, test) if s is not None]
    rows, inverse = np.unique(np.concatenate([np.r_[s.u_idx, s.m_idx] for s in sets]),
                              return_inverse=True)
    remapped, k = [], 0
    for s in sets:
        nn = len(s)
        remapped.append(PairSet(inverse[k:k + nn].astype(np.int32),
                                inverse[k + nn:k + 2 * nn].astype(np.int32), s.labels))
        k += 2 * nn
    r = iter(remapped)
    train_r = next(r)
    val_r = next(r) if val is not None else None
    test_r = next(r) if test is not None else None

    if cfg.trunk_cache:
        split = siamese.split_trunk(core)
        net = split.head

        def net_in(x):
            f = split.trunk(x, training=False)
            return list(f) if isinstance(f, list | tuple) else [f]
        desc = "trunk features"
    else:
        net = core

        def net_in(x):
            return [x]
        desc = "preprocessing"
    arrays = _table_arrays(images, rows, net_in, cfg.preprocessing, cfg.embed_batch_size,
                           progress, desc)
    timings["table_s"] = time.perf_counter() - t0
    timings["table_bytes"] = float(sum(np.prod(a.shape) * 4 for a in arrays))

    model = siamese.build_siamese(net, arrays)
    del arrays
    model.compile(
        optimizer=siamese.make_optimizer(cfg.optimizer, cfg.learning_rate, cfg.momentum),
        loss=siamese.contrastive_loss(cfg.margin),
        steps_per_execution=cfg.steps_per_execution,
        jit_compile=jit_compile,
    )
    model.optimizer.build(model.trainable_variables)

    history: list[dict] = []
    start = 0
    if ckpt is not None:
        start, history = _load_checkpoint(ckpt, model, layers, fp)
    n_batches = -(-len(train_r) // cfg.batch_size)
    fused = _FusedJax(model, cfg.margin, cfg.steps_per_execution) if engine == "fused" else None
    sizes = np.minimum(cfg.batch_size, len(train_r) - cfg.batch_size * np.arange(n_batches))
    t1 = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        order = epoch_order(cfg.seed, epoch, len(train_r))
        args = (train_r.u_idx[order], train_r.m_idx[order], train_r.labels[order])
        te = time.perf_counter()
        if fused is not None:
            batch_losses = fused.train_epoch(*args, cfg.batch_size)
            bad = np.flatnonzero(~np.isfinite(batch_losses))
            if bad.size:
                guard = _FiniteLossGuard(epoch, n_batches)
                guard.bad = (int(bad[0]) + 1, int(bad[0]) + 1)
                raise NonFiniteLossError(guard.message())
            loss = _batch_mean(batch_losses, sizes)
        else:
            guard = _FiniteLossGuard(epoch, n_batches)
            h = model.fit([args[0], args[1]], args[2], batch_size=cfg.batch_size, epochs=1,
                          shuffle=False, verbose=verbose, callbacks=[guard])
            loss = float(h.history["loss"][-1])
            if guard.bad is not None or not np.isfinite(loss):
                if guard.bad is None:
                    guard.bad = (1, n_batches)
                raise NonFiniteLossError(guard.message())
        row = {"epoch": epoch + 1, "loss": loss}
        tv = time.perf_counter()
        if val_r is not None:
            if fused is not None:
                row["val_loss"] = fused.evaluate(val_r.u_idx, val_r.m_idx, val_r.labels,
                                                 cfg.batch_size)
            else:
                row["val_loss"] = float(model.evaluate([val_r.u_idx, val_r.m_idx],
                                                       val_r.labels, batch_size=cfg.batch_size,
                                                       verbose=0))
        timings.setdefault("fit_s", []).append(tv - te)
        timings.setdefault("val_s", []).append(time.perf_counter() - tv)
        history.append(row)
        if out is not None:
            write_csv(out / "history.csv", pd.DataFrame(history))
            _save_checkpoint(out, epoch + 1, model, layers, history, fp)
            _test_kill_hook(epoch + 1)
    timings["train_s"] = time.perf_counter() - t1
    timings["epochs_run"] = float(cfg.epochs - start)

    result = TrainResult(pd.DataFrame(history), names, siamese.trainable_param_count(layers),
                         "cached" if cfg.trunk_cache else "thesis-style", timings=timings,
                         resumed_from=start, model=model, engine=engine)
    if out is not None:
        write_csv(out / "history.csv", result.history)
        from mfr.models.weights import save_legacy_h5

        save_legacy_h5(SimpleNamespace(layers=layers, name=core.name),
                       out / "final_trainable.h5")
    if test_r is not None:
        t2 = time.perf_counter()
        test_rows, inv = np.unique(np.r_[test_r.u_idx, test_r.m_idx], return_inverse=True)
        emb = embed_rows(model, test_rows, cfg.embed_batch_size)
        from mfr.distances import pair_distances

        nt = len(test_r)
        result.test_embeddings = emb
        result.test_pair_rows = inv  # rows of test_embeddings: unmasked then masked
        result.test_distances = pair_distances(emb, inv[:nt], inv[nt:], "sum_squared")
        timings["test_s"] = time.perf_counter() - t2
    return result


def embed_rows(model: keras.Model, rows: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """L2-normalised embeddings of table `rows`, through the Siamese model's own table and net."""
    table = model.get_layer("features")
    net = [la for la in model.layers if isinstance(la, keras.Model)][0]
    idx = keras.Input(shape=(), dtype="int32")
    f = table(idx)
    e = siamese.l2_normalize(net(f if len(f) > 1 else f[0], training=False))
    emb_model = keras.Model(idx, e)
    return np.asarray(emb_model.predict(np.asarray(rows, dtype=np.int32), batch_size=batch_size,
                                        verbose=0), dtype=np.float32)


def load_finetuned(path: str | Path, base_weights="vggface2", pooling: str = "avg"):
    """SENet50 with `base_weights`, then a run's ``final_trainable.h5`` over them."""
    from mfr.models import senet50
    from mfr.models.weights import load_legacy_h5

    core = senet50(weights=base_weights, pooling=pooling)
    load_legacy_h5(core, path, strict=False)
    return core


# --------------------------------------------------------------------------- from files


def default_out_dir(config: StudyConfig, n: int) -> Path:
    return Path("results") / config.profile / f"train_N{n}"


def run_training(
    config: StudyConfig,
    n: int,
    pairs_dir: str | Path,
    cache_dir: str | Path,
    out_dir: str | Path | None = None,
    resume: bool = False,
    verbose: int = 0,
    progress: bool = True,
) -> TrainResult:
    """`mfr train`: a partition's pair CSVs + the image cache -> a trained run in `out_dir`.

    Every check on the input (N, the CSVs, that every pair's images are in the cache) comes
    before the model is built.
    """
    from mfr.distances import DISTANCE_FLOAT_FORMAT, distance_table
    from mfr.image_cache import ImageCache, pair_indices, read_pair_csvs

    n = siamese.validate_trainable_layers(n)
    frames = read_pair_csvs(pairs_dir)
    cache = ImageCache.open(cache_dir)
    try:
        idx = {s: pair_indices(df, cache) for s, df in frames.items()}
    except ValueError as e:
        raise ValueError(f"the partition {pairs_dir} does not match the image cache "
                         f"{cache_dir}: {e}") from None
    if cache.size != config.image_size:
        raise ValueError(f"{cache_dir}: images are {cache.size}px, the model takes "
                         f"{config.image_size}px")
    out = Path(out_dir) if out_dir is not None else default_out_dir(config, n)
    if latest_checkpoint(out) is not None and not resume:
        raise ValueError(f"{out}: holds checkpoints of an earlier run; resume it (--resume) or "
                         f"choose another output directory")

    from mfr.models import senet50

    keras.utils.set_random_seed(config.seed)  # weights=None: the same random core every time
    core = senet50(weights=config.weights, pooling=config.pooling,
                   input_shape=(config.image_size, config.image_size, 3))
    result = train_siamese(core, n, cache.images, PairSet.of(idx["train"]),
                           PairSet.of(idx["val"]), PairSet.of(idx["test"]), config=config,
                           out_dir=out, resume=resume, verbose=verbose, progress=progress)
    test_df = frames["test"]
    # pair_indices drops pairs whose image failed to decode; keep the same rows here.
    failed = cache.failed_paths
    if failed:
        bad = test_df["unmasked_path"].isin(failed) | test_df["masked_path"].isin(failed)
        test_df = test_df[~bad]
    nt = len(test_df)
    dist, metrics = distance_table("test", test_df.reset_index(drop=True),
                                   result.test_embeddings, result.test_pair_rows[:nt],
                                   result.test_pair_rows[nt:], idx["test"].labels)
    write_csv(out / "distances.csv", dist, float_format=DISTANCE_FLOAT_FORMAT)
    # Same layout as `mfr embed`'s summary.json: splits -> split -> metric -> statistics.
    write_json(out / "summary.json", {"trainable_layers": n, "metric_thesis": "sum_squared",
                                      "splits": {"test": metrics}})
    write_json(out / "run.json", run_metadata(
        config, trainable_layers=n, trainable_layer_names=result.trainable_layers,
        trainable_params=result.trainable_params, path=result.path,
        resumed_from_epoch=result.resumed_from, engine=result.engine,
        pairs_dir=str(pairs_dir), cache_dir=str(cache_dir),
        final_weights="final_trainable.h5 (trained layers only, keras-vggface legacy HDF5)",
        epoch_order="np.random.default_rng([seed, epoch]).permutation(n_train)"))
    return result


# --------------------------------------------------------------------------- JAX: fused epochs


class _FusedJax:
    """JAX only: lean compiled SGD steps, the same steps as ``model.fit`` -- the same batches
    in the same order, the same mean contrastive loss per batch, ``optimizer.stateless_apply``
    -- without Keras's per-step data adapter and callbacks. The epoch's pair indices go to the
    device once; each call runs ``spe`` steps (unrolled), indexed by a step counter kept on the
    device, so a call moves no data and does not wait for the previous one. Every batch's loss
    is kept, so a non-finite one is located exactly. (A ``lax.scan`` over the steps was tried:
    XLA:CPU runs convolution gradients inside a loop body ~10x slower.)"""

    def __init__(self, model: keras.Model, margin: float, steps_per_execution: int = 1):
        import jax

        self.jax = jax
        self.model = model
        self.spe = max(1, int(steps_per_execution))
        self.loss_fn = siamese.contrastive_loss(margin)
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
                batch = [jax.lax.dynamic_index_in_dim(a, k, keepdims=False) for a in arrays]
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
        n = len(u)
        steps = -(-n // batch_size)
        pad = steps * batch_size - n
        w = np.r_[np.ones(n, np.float32), np.zeros(pad, np.float32)]
        cols = [np.r_[np.asarray(a), np.zeros(pad, np.asarray(a).dtype)]
                for a in (u, m, y)] + [w]
        jnp = self.jax.numpy
        return [jnp.asarray(c.reshape(steps, batch_size)) for c in cols], w.reshape(steps, -1)

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
        n = arrays[0].shape[0]
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
        return _batch_mean(losses, w.sum(axis=1))


def _batch_mean(losses: np.ndarray, sizes: np.ndarray) -> float:
    """Keras's reported epoch loss: the batch losses averaged with the batch sizes as weights."""
    return float(np.sum(losses.astype(np.float64) * sizes) / np.sum(sizes))
