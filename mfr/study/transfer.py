"""The thesis's question asked at scale (issue 26, `mfr transfer`): fine-tune the last N layers
of a face network on thousands of masked identities (MLFW's training identities: synthetic
masks on LFW photos), choose every setting on MLFW's validation identities only, and judge the
chosen networks on real masks that no run trained on or chose on (RMFRD, MFR2, M2FRED: every
masked x unmasked pair of their people), beside the pre-trained networks.

A transfer profile (``configs/mlfw-transfer.yaml``) is a study profile (the base config: the
training set's ``data_root``, ``protocol: identity``, ``seed``, ``seeds``, the SGD's fields,
``bootstrap_resamples``, ...) plus a ``transfer:`` mapping:

``backbones``       a list of ``{backbone, trainable_layers: [N, ...], face_box, image_size,
                    eval_face_box, eval_image_size}``: the networks, the N each may train, how
                    the training photos are aligned (MLFW's come aligned to the five-point
                    template: ``crop`` uses them as they are) and how the real photos are
                    (unaligned crops: a face finder)
``recipes``         a list of ``{name, overrides}``: the losses (and their fields) tried
``learning_rates``  the learning rates tried with each recipe and N
``epochs``          the most epochs a run trains; every epoch's network is scored
``eval_sets``       a list of ``{name, data_root, layout}``: the real-mask sets judged on

Layout under the output folder: ``partition/`` (MLFW's identity pairs: train and val),
``cache/`` (the training images), ``<backbone>/runs/<recipe>_N<n>_lr<rate>_s<seed>/`` (`mfr
train` run folders; every epoch's checkpoint kept), ``<backbone>/store/`` (its aligned faces
and frozen trunk's features, shared by its runs: :mod:`mfr.training.trunk_store`),
``eval/<set>/cache/`` (each real set's images), and the results: ``choice.csv`` (every
backbone x recipe x N x learning rate x epoch, scored on MLFW's validation pairs),
``transfer.csv`` / ``transfer.md`` (a row per network: the pre-trained one and, per recipe, its
best setting on MLFW validation; per real set AUC, EER, FNMR at FMR 1% and 0.1%, rank-1, with
subject-bootstrap 95% intervals for the profile's seed and the mean / sd / min / max over the
seeds), ``faces.csv`` (the share of each real set's photos, per side, whose face each stage of
the face finder found), ``transfer.png``, ``run.json``. Every run folder is reused when
complete with the same inputs and settings, so a rerun trains nothing.

Choices, on MLFW's validation identities only: per backbone and recipe, the (N, learning rate,
epochs) of highest validation AUC (ties: lower EER, fewer epochs, the grid's order), for the
profile's seed; the best recipe of a backbone is the best of those, the best overall the best
of the backbones'. The other seeds train the chosen setting again (the partition stays: a seed
changes the initialisation and the batch order). The real sets choose nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError

__all__ = ["Backbone", "EvalSet", "Recipe", "TransferPlan", "load_transfer", "run_transfer",
           "transfer_markdown"]

FLOAT_FORMAT = "%.6f"
DISTANCE = "sum_squared"
#: the keys of the profile's ``transfer`` mapping
TRANSFER_KEYS = ("backbones", "recipes", "learning_rates", "epochs", "eval_sets")
#: what the real sets report, per network
STATS = ("auc", "eer", "fnmr_at_fmr_1pct", "fnmr_at_fmr_0_1pct")


@dataclass(frozen=True)
class Backbone:
    """One network of the comparison: its N, and how its photos are aligned."""

    backbone: str
    trainable_layers: tuple[int, ...]
    face_box: str | None = None
    image_size: int = 112
    eval_face_box: str | None = None
    eval_image_size: int = 160


@dataclass(frozen=True)
class Recipe:
    """One training loss (and its fields) tried on every backbone."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalSet:
    """A real-mask set judged on (never trained or chosen on)."""

    name: str
    data_root: str
    layout: str


@dataclass
class TransferPlan:
    """A transfer profile: the base config and the comparison it asks for."""

    config: StudyConfig
    backbones: list[Backbone]
    recipes: list[Recipe]
    learning_rates: tuple[float, ...]
    epochs: int
    eval_sets: list[EvalSet]
    path: Path | None = None

    @property
    def seeds(self) -> list[int]:
        """The profile's seed first, then its other ``seeds``."""
        return [self.config.seed, *sorted(set(self.config.seeds) - {self.config.seed})]

    def network_config(self, b: Backbone, recipe: Recipe | None = None, **values: Any
                       ) -> StudyConfig:
        """The base config for backbone `b` (its alignment and image size, its released
        weights unless the profile names others), with `recipe`'s overrides and `values`."""
        # "vggface2" and "thesis": the backbone's released weights and its own preprocessing
        # (Backbone.config_defaults)
        cfg = self.config.replace(backbone=b.backbone, image_size=b.image_size,
                                  face_box=b.face_box, trainable_layers=b.trainable_layers[:1],
                                  weights="vggface2", preprocessing="thesis")
        if recipe is not None:
            cfg = cfg.replace(**recipe.overrides)
        return cfg.replace(**values) if values else cfg


_NAME = __import__("re").compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _data_path(value: str) -> str:
    """A data folder as a profile writes it: ``$MFR_DATA`` and ``~`` expanded (as the config's
    ``data_root``)."""
    import os

    from mfr.core.config import data_home

    return os.path.expanduser(value.replace("$MFR_DATA", str(data_home())))


def _plain(value: Any, where: str, what: str, kind: type | tuple) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise InputError(f"{where}: {what} must be {getattr(kind, '__name__', kind)}, got "
                         f"{value!r}")
    return value


def load_transfer(profile: str | Path, **values: Any) -> TransferPlan:
    """A transfer profile (a name in ``configs/`` or a YAML path; read by the strict profile
    reader: no aliases, no repeated keys), its base config with `values` set; every name and
    setting checked before any work (one-line errors naming the file and the key)."""
    from mfr.backbones import get_backbone
    from mfr.core.config import CONFIG_DIR, _read_profile

    path = Path(profile)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{profile}.yaml"
    if not path.is_file():
        raise InputError(f"{path}: no such transfer profile (expected a YAML file)")
    data = dict(_read_profile(path))
    spec = data.pop("transfer", None)
    where = str(path)
    if not isinstance(spec, dict):
        raise InputError(f"{where}: expected a 'transfer' mapping ({', '.join(TRANSFER_KEYS)})")
    unknown = sorted(set(spec) - set(TRANSFER_KEYS))
    if unknown:
        raise InputError(f"{where}: transfer: unknown keys {unknown}; known: {list(TRANSFER_KEYS)}")
    data.setdefault("profile", path.stem)
    try:
        config = StudyConfig().replace(**data).replace(**values)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None
    if config.protocol != "identity":
        raise InputError(f"{where}: protocol must be identity (pairs by identity, any mask: "
                         f"MLFW has no mask flag), got {config.protocol}")
    backbones = []
    for i, b in enumerate(_plain(spec.get("backbones"), where, "transfer.backbones", list)):
        w = f"{where}: transfer.backbones[{i}]"
        b = dict(_plain(b, w, "an entry", dict))
        extra = sorted(set(b) - set(Backbone.__dataclass_fields__))
        if extra:
            raise InputError(f"{w}: unknown keys {extra}")
        try:
            entry = Backbone(backbone=str(b["backbone"]),
                             trainable_layers=tuple(int(n) for n in b["trainable_layers"]),
                             face_box=b.get("face_box"), image_size=int(b.get("image_size", 112)),
                             eval_face_box=b.get("eval_face_box"),
                             eval_image_size=int(b.get("eval_image_size", 160)))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{w}: expected backbone and trainable_layers (a list of N), "
                             f"got {e}") from None
        net = get_backbone(entry.backbone)
        net.check_trainable_layers(entry.trainable_layers)
        for box, size in ((entry.face_box, entry.image_size),
                          (entry.eval_face_box, entry.eval_image_size)):
            try:  # each alignment and image size checked as the config checks them
                config.replace(backbone=entry.backbone, face_box=box, image_size=size,
                               preprocessing="thesis")
            except ValueError as e:
                raise InputError(f"{w}: {e}") from None
        backbones.append(entry)
    recipes = []
    for i, r in enumerate(_plain(spec.get("recipes"), where, "transfer.recipes", list)):
        w = f"{where}: transfer.recipes[{i}]"
        r = dict(_plain(r, w, "an entry", dict))
        name = str(r.get("name", ""))
        if not _NAME.match(name) or name == "pretrained":
            raise InputError(f"{w}: name must be letters, digits, _ . + - (not 'pretrained'), "
                             f"got {name!r}")
        overrides = dict(_plain(r.get("overrides", {}), w, "overrides", dict))
        fixed = sorted(set(overrides) & {"backbone", "seed", "seeds", "data_root", "protocol",
                                         "trainable_layers", "learning_rate", "epochs",
                                         "face_box", "image_size", "weights"})
        if fixed:
            raise InputError(f"{w}: overrides may not set {fixed} (the comparison's own)")
        try:
            config.replace(**overrides)
        except ValueError as e:
            raise InputError(f"{w}: {e}") from None
        recipes.append(Recipe(name, overrides))
    if len({r.name for r in recipes}) != len(recipes) or not recipes:
        raise InputError(f"{where}: transfer.recipes: at least one, names unique")
    rates = tuple(float(x) for x in _plain(spec.get("learning_rates"), where,
                                           "transfer.learning_rates", list))
    for lr in rates:
        try:
            config.replace(learning_rate=lr)
        except ValueError as e:
            raise InputError(f"{where}: transfer.learning_rates: {e}") from None
    epochs = _plain(spec.get("epochs"), where, "transfer.epochs", int)
    config.replace(epochs=epochs)
    sets = []
    for i, e in enumerate(_plain(spec.get("eval_sets"), where, "transfer.eval_sets", list)):
        w = f"{where}: transfer.eval_sets[{i}]"
        e = dict(_plain(e, w, "an entry", dict))
        try:
            sets.append(EvalSet(str(e["name"]), _data_path(str(e["data_root"])),
                                str(e["layout"])))
        except KeyError as k:
            raise InputError(f"{w}: expected name, data_root and layout; missing {k}") from None
    if not backbones or not rates or not sets:
        raise InputError(f"{where}: transfer needs backbones, learning_rates and eval_sets")
    return TransferPlan(config, backbones, recipes, rates, int(epochs), sets, path)


# --------------------------------------------------------------------------- networks


def _run_dir(out: Path, b: Backbone, recipe: str, n: int, lr: float, seed: int) -> Path:
    return out / b.backbone / "runs" / f"{recipe}_N{n}_lr{lr:g}_s{seed}"


@dataclass
class _Net:
    """A backbone's network for one N: its trunk and head split once, the base weights kept,
    so every run's weights (a checkpoint's trained layers) are put on the same head."""

    backbone: Any
    n: int
    core: Any
    split: Any
    base: dict[str, list[np.ndarray]]
    config: StudyConfig

    @classmethod
    def make(cls, backbone: Any, config: StudyConfig, n: int) -> _Net:
        from mfr.training.siamese import split_trunk

        core = backbone.core(config)
        split = split_trunk(core, n)
        base = {layer.name: [np.asarray(w) for w in layer.get_weights()]
                for layer in core.layers if layer.trainable_weights}
        return cls(backbone, n, core, split, base, config)

    def load(self, checkpoint: Path | None) -> None:
        """The base weights back on the head, then (unless None) a checkpoint's trained
        layers: the network of that run at that epoch."""
        for layer in self.core.layers:
            if layer.name in self.base:
                layer.set_weights(self.base[layer.name])
        if checkpoint is None:
            return
        with np.load(checkpoint, allow_pickle=False) as z:
            for layer in self.core.layers:
                for i, w in enumerate(layer.trainable_weights):
                    key = f"w/{layer.name}/{i}"
                    if key not in z.files or tuple(z[key].shape) != tuple(w.shape):
                        raise InputError(f"{checkpoint}: no weight {key} of shape "
                                         f"{tuple(w.shape)} (a checkpoint of another N?)")
                    w.assign(z[key])

    def features(self, images: np.ndarray, store: Path, key: dict[str, Any],
                 progress: bool) -> list[np.ndarray]:
        """The trunk's features of `images` (aligned), kept in `store` under `key` plus the
        network's own facts (the same key schema as a training run's, so they are shared)."""
        import keras

        from mfr.training.trunk_store import trunk_features

        cfg, bb = self.config, self.backbone
        spec = bb.preprocessing(cfg.preprocessing)
        full = {**key, "backbone": bb.name, "boundary": self.split.boundary,
                "preprocessing": spec.name, "embed_batch_size": cfg.embed_batch_size,
                "precision": keras.config.dtype_policy().name,
                "backend": keras.backend.backend(), "shape": list(np.shape(images))}
        return trunk_features(self.split.trunk, images, lambda x: bb.preprocess(x, spec),
                              cfg.embed_batch_size, store, full, progress)

    def embed(self, features: list[np.ndarray]) -> np.ndarray:
        from mfr.evaluation.distances import l2_normalize
        from mfr.training.trunk_store import head_embeddings

        return l2_normalize(head_embeddings(self.split.head, features,
                                            self.config.embed_batch_size))


def _train_run(cfg: StudyConfig, n: int, pairs_dir: Path, run: Path, cache_dir: Path,
               store: Path) -> str:
    """One run of the grid (`mfr train`'s step, resumed when it was cut). Returns "" or, for a
    run whose loss stopped being finite, where it stopped."""
    from mfr.study.steps import train_step
    from mfr.training.fit import NonFiniteLossError

    try:
        train_step(cfg, n, pairs_dir, run, cache_dir=cache_dir, resume=True, progress=False,
                   require_test=False, trunk_store=store)
    except NonFiniteLossError as e:
        return " ".join(str(e).split())
    return ""


class _Trainer:
    """Trains the grid's runs one at a time, each in a child process, a fresh child every
    `runs_per_process` runs (``isolate=False``: in this process).

    Why: TensorFlow keeps what a traced ``fit`` step captured after the model is gone (measured
    here: each run's feature table, +1.0 GB a run for MobileFaceNet at N = 5 on MLFW, under
    ``tf.function`` and not in eager mode; ``clear_session`` and ``gc`` do not return it), so 40
    runs in one process ran out of this machine's 24 GB. A child's memory goes back to the
    system when it ends. The children are spawned (no fork of a threaded parent) and inherit the
    environment: backend, oneDNN and thread settings, weights folders.
    """

    def __init__(self, isolate: bool = True, runs_per_process: int = 4):
        self.isolate, self.runs_per_process = isolate, runs_per_process
        self._pool: Any = None

    def __enter__(self) -> _Trainer:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __call__(self, cfg: StudyConfig, n: int, pairs_dir: Path, run: Path, cache_dir: Path,
                 store: Path, diverged: dict[str, str], progress: bool) -> None:
        """Train `run` (resumed when it was cut); a run whose loss stops being finite is one
        setting that failed, not the study's end: its finite epochs' checkpoints stay and are
        scored; `diverged` says where it stopped (a rerun trains its diverging epoch again,
        and it diverges again: the same seed, the same order)."""
        if not self.isolate:
            note = _train_run(cfg, n, pairs_dir, run, cache_dir, store)
        else:
            if self._pool is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                    max_tasks_per_child=self.runs_per_process)
            note = self._pool.submit(_train_run, cfg, n, pairs_dir, run, cache_dir,
                                     store).result()
        if note:
            diverged[run.name] = note
            _log(progress, f"{run.name}: diverged ({note})")


def _checkpoint_path(run: Path, epoch: int) -> Path:
    return run / "checkpoints" / f"epoch_{epoch:03d}.npz"


def _checkpoint(run: Path, epoch: int) -> Path:
    path = _checkpoint_path(run, epoch)
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint of epoch {epoch} (expected every epoch's: "
                         f"keep_all_checkpoints)")
    return path


def _scores(vectors: np.ndarray, pairs: Any) -> dict[str, float]:
    """AUC and EER of a pair set (:class:`mfr.data.pairs.PairSet` into `vectors`)."""
    from mfr.evaluation.distances import pair_distances
    from mfr.evaluation.metrics import verification_metrics

    d = pair_distances(vectors, pairs.u_idx, pairs.m_idx, DISTANCE)
    m = verification_metrics(d, pairs.labels)
    return {"auc": m["auc"], "eer": m["eer"], "fnmr_at_fmr_1pct": m["fnmr_at_fmr_1pct"]}


def _best(rows: pd.DataFrame) -> pd.Series | None:
    """Highest AUC; ties: lower EER, fewer epochs, the grid's order. Epochs a diverged run
    never finished (no score) are no candidates; None when no row has a score."""
    order = rows.assign(_neg=-rows["auc"], _row=np.arange(len(rows)))
    order = order[order["auc"].notna()]
    if not len(order):
        return None
    return order.sort_values(["_neg", "eer", "epochs", "_row"], kind="stable").iloc[0]


# --------------------------------------------------------------------------- the study


@dataclass
class TransferResult:
    """What :func:`run_transfer` made (all of it also on disk under `out_dir`)."""

    out_dir: Path
    choice: pd.DataFrame  # every setting scored on MLFW's validation pairs
    table: pd.DataFrame  # a row per network: MLFW validation and each real set
    faces: pd.DataFrame  # the face finder's stages per real set and side
    verdict: dict[str, Any]
    hygiene: dict[str, Any]
    seconds: dict[str, float]


def _spec(plan: TransferPlan) -> dict[str, Any]:
    return {"backbones": [vars(b) | {"trainable_layers": list(b.trainable_layers)}
                          for b in plan.backbones],
            "recipes": [vars(r) for r in plan.recipes],
            "learning_rates": list(plan.learning_rates), "epochs": plan.epochs,
            "eval_sets": [vars(e) for e in plan.eval_sets]}


def _log(progress: bool, text: str) -> None:
    if progress:
        print(f"transfer: {text}", flush=True)


def _val_rows(kept: pd.DataFrame, cache: Any):
    """The validation pairs as indices into their unique images (rows of the cache), and those
    rows."""
    from mfr.data.pairs import pair_indices

    idx = pair_indices(kept, cache)
    rows, inv = np.unique(np.r_[idx.u_idx, idx.m_idx], return_inverse=True)
    k = len(idx)
    return idx.with_rows(inv[:k], inv[k:], idx.labels), rows


def run_transfer(plan: TransferPlan, out_dir: str | Path, progress: bool = True,
                 force: bool = False, isolate: bool = True) -> TransferResult:
    """Run (or resume) the comparison `plan` asks for in `out_dir` (see the module
    docstring). Returns the :class:`TransferResult`. `isolate`: train each run in a child
    process (:class:`_Trainer`: bounded memory); False trains in this one (a few runs, or a
    test that patches the training)."""
    with _Trainer(isolate) as train:
        return _run_transfer(plan, out_dir, progress, force, train)


def _run_transfer(plan: TransferPlan, out_dir: str | Path, progress: bool, force: bool,
                  train: _Trainer) -> TransferResult:
    from mfr.backbones import get_backbone
    from mfr.core.outputs import write_csv, write_json, write_text
    from mfr.core.provenance import claim, complete, file_digest
    from mfr.data.image_cache import ImageCache
    from mfr.study.steps import partition_step
    from mfr.study.steps.prepare import keep_readable, read_partition

    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    out = Path(out_dir).resolve()
    cfg0 = plan.config
    fp = {"config": cfg0.to_dict(), "transfer": _spec(plan)}
    claim(out, "transfer", fp, config=cfg0, force=force, reopen=True)
    hygiene = _names_hygiene(plan)

    t = time.perf_counter()
    pairs_dir = out / "partition"
    import warnings

    with warnings.catch_warnings():  # MLFW has no test split here: the real sets are the test
        warnings.filterwarnings("ignore", message="test split has 0 genuine")
        partition_step(cfg0, pairs_dir)
    frames = read_partition(pairs_dir, required=("train", "val"))
    seconds["partition"] = time.perf_counter() - t

    choice_rows: list[dict[str, Any]] = []
    diverged: dict[str, str] = {}  # run folder name -> where its loss stopped being finite
    networks: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (backbone, row) -> per seed
    nets: dict[tuple[str, int], _Net] = {}
    for b in plan.backbones:
        bb = get_backbone(b.backbone)
        base_cfg = plan.network_config(b)
        store = out / b.backbone / "store"
        cache_dir = out / f"cache_{b.image_size}"
        t = time.perf_counter()
        for recipe in plan.recipes:  # the grid, the profile's seed, every epoch checkpointed
            for n in b.trainable_layers:
                for lr in plan.learning_rates:
                    cfg = plan.network_config(b, recipe, learning_rate=lr, epochs=plan.epochs,
                                              keep_all_checkpoints=True, trainable_layers=(n,))
                    run = _run_dir(out, b, recipe.name, n, lr, cfg0.seed)
                    _log(progress, f"{b.backbone} {run.name}")
                    train(cfg, n, pairs_dir, run, cache_dir, store, diverged, progress)
        seconds[f"{b.backbone}: train grid"] = time.perf_counter() - t

        t = time.perf_counter()  # every (run, epoch) scored on MLFW's validation pairs
        cache = ImageCache.open(cache_dir)
        kept, _ = keep_readable(frames, cache)
        val, val_rows = _val_rows(kept["val"], cache)
        images, _ = bb.network_inputs(cache.images, face_box=base_cfg.face_box, cache=cache)
        key = {"weights": bb.weights_fingerprint(base_cfg.weights, base_cfg.seed),
               "image_cache": file_digest(cache.cache_dir / "cache.json"),
               "face_box": base_cfg.face_box if bb.aligns else None}
        feats: dict[int, list[np.ndarray]] = {}
        for n in b.trainable_layers:
            nets[(b.backbone, n)] = net = _Net.make(bb, base_cfg, n)
            feats[n] = [np.asarray(f[val_rows]) for f in net.features(images, store, key,
                                                                       progress)]
        net = nets[(b.backbone, b.trainable_layers[0])]
        net.load(None)
        pre = _scores(net.embed(feats[b.trainable_layers[0]]), val)
        choice_rows.append({"backbone": b.backbone, "recipe": "pretrained", "n": 0, "lr": 0.0,
                            "epochs": 0, "seed": cfg0.seed, **pre, "diverged": ""})
        for recipe in plan.recipes:
            for n in b.trainable_layers:
                for lr in plan.learning_rates:
                    run = _run_dir(out, b, recipe.name, n, lr, cfg0.seed)
                    for e in range(1, plan.epochs + 1):
                        note = diverged.get(run.name, "")
                        if note and not _checkpoint_path(run, e).is_file():
                            s = {"auc": np.nan, "eer": np.nan, "fnmr_at_fmr_1pct": np.nan}
                        else:
                            nets[(b.backbone, n)].load(_checkpoint(run, e))
                            s = _scores(nets[(b.backbone, n)].embed(feats[n]), val)
                            note = ""
                        choice_rows.append({"backbone": b.backbone, "recipe": recipe.name,
                                            "n": n, "lr": lr, "epochs": e, "seed": cfg0.seed,
                                            **s, "diverged": note})
        seconds[f"{b.backbone}: scoring"] = time.perf_counter() - t

        t = time.perf_counter()  # the chosen settings, trained again with the other seeds
        mine = pd.DataFrame([r for r in choice_rows if r["backbone"] == b.backbone])
        networks[(b.backbone, "pretrained")] = [{"seed": cfg0.seed, "checkpoint": None,
                                                 "n": b.trainable_layers[0], **pre}]
        for recipe in plan.recipes:
            best = _best(mine[mine["recipe"] == recipe.name])
            if best is None:  # every setting of it diverged before its first epoch ended
                _log(progress, f"{b.backbone} {recipe.name}: every setting diverged")
                continue
            n, lr, e = int(best["n"]), float(best["lr"]), int(best["epochs"])
            rows = [{"seed": cfg0.seed, "n": n, "lr": lr, "epochs": e, "auc": best["auc"],
                     "eer": best["eer"], "fnmr_at_fmr_1pct": best["fnmr_at_fmr_1pct"],
                     "checkpoint": _checkpoint(_run_dir(out, b, recipe.name, n, lr,
                                                        cfg0.seed), e)}]
            for seed in plan.seeds[1:]:
                cfg = plan.network_config(b, recipe, learning_rate=lr, epochs=e, seed=seed,
                                          keep_all_checkpoints=True, trainable_layers=(n,))
                run = _run_dir(out, b, recipe.name, n, lr, seed)
                _log(progress, f"{b.backbone} {run.name} (chosen setting, seed {seed})")
                train(cfg, n, pairs_dir, run, cache_dir, store, diverged, progress)
                if run.name in diverged:  # this seed diverged before the chosen epoch
                    continue
                ckpt = _checkpoint(run, e)
                net = nets[(b.backbone, n)]
                net.load(ckpt)
                rows.append({"seed": seed, "n": n, "lr": lr, "epochs": e, "checkpoint": ckpt,
                             **_scores(net.embed(feats[n]), val)})
            networks[(b.backbone, recipe.name)] = rows
        seconds[f"{b.backbone}: seeds"] = time.perf_counter() - t

    choice = pd.DataFrame(choice_rows)
    write_csv(out / "choice.csv", choice, float_format=FLOAT_FORMAT)
    t = time.perf_counter()
    real, faces, near = _judge(plan, out, networks, nets, progress)
    seconds["real sets"] = time.perf_counter() - t
    hygiene["near_duplicates"] = near
    table = _table(plan, networks, real)
    verdict = _verdict(plan, table)
    verdict["diverged_runs"] = dict(sorted(diverged.items()))
    write_csv(out / "transfer.csv", table, float_format=FLOAT_FORMAT)
    write_csv(out / "faces.csv", faces, float_format=FLOAT_FORMAT)
    seconds["total (this invocation)"] = time.perf_counter() - t_start
    write_text(out / "transfer.md", transfer_markdown(table, faces, verdict, hygiene, plan,
                                                      seconds))
    figures = _figure(table, plan, out)
    write_json(out / "hygiene.json", hygiene)
    complete(out, "transfer", fp, config=cfg0,
             outputs=["choice.csv", "transfer.csv", "transfer.md", "faces.csv",
                      "hygiene.json", *figures],
             profile=str(plan.path), verdict=verdict,
             seconds={k: round(v, 1) for k, v in seconds.items()})
    return TransferResult(out, choice, table, faces, verdict, hygiene, seconds)


# --------------------------------------------------------------------------- the real sets


def _eval_images(plan: TransferPlan, es: EvalSet):
    """(dataset, unmasked, masked) of a real set: every image of every person (protocol
    balanced: every image format; no cap per person)."""
    from mfr.study.steps.evaluate import _dataset_images

    cfg = plan.config.replace(protocol="balanced", max_per_subject=0, data_root=es.data_root)
    return _dataset_images(cfg, Path(es.data_root), es.layout)


def _judge(plan: TransferPlan, out: Path, networks: dict, nets: dict, progress: bool):
    """Every network of `networks` on every real set: every masked x unmasked pair, AUC, EER,
    FNMR at FMR 1% and 0.1% (subject-bootstrap intervals for the profile's seed), rank-1 of
    the masked photos against the unmasked ones; the face finder's stages per set and side;
    near-duplicate faces of the training set."""
    from mfr.backbones import get_backbone
    from mfr.core.provenance import file_digest
    from mfr.data.image_cache import build_image_cache, reusable
    from mfr.data.pairs import drop_failed_pairs, pair_indices
    from mfr.evaluation.distances import pair_distances
    from mfr.evaluation.embeddings import Embeddings
    from mfr.evaluation.pair_sets import (
        identification_metrics,
        masked_vs_unmasked_pairs,
        pair_set_metrics,
    )

    cfg0 = plan.config
    rows: list[dict[str, Any]] = []
    faces: list[dict[str, Any]] = []
    near: dict[str, Any] = {}
    for es in plan.eval_sets:
        ds, unmasked, masked = _eval_images(plan, es)
        paths = sorted(set(unmasked["path"]) | set(masked["path"]))
        for b in plan.backbones:
            bb = get_backbone(b.backbone)
            _log(progress, f"{es.name}: {b.backbone}")
            cache_dir = out / "eval" / es.name / f"cache_{b.eval_image_size}"
            cache = (reusable(cache_dir, paths, b.eval_image_size, ds.root, cfg0.decoder)
                     or build_image_cache(ds.root, paths, cache_dir, size=b.eval_image_size,
                                          progress=progress, decoder=cfg0.decoder,
                                          config=cfg0))
            box = b.eval_face_box if bb.aligns else None
            images, _ = bb.network_inputs(cache.images, face_box=box, cache=cache)
            failed = set(cache.failed["path"])
            if bb.aligns:
                flags = pd.read_csv(cache.cache_dir / f"aligned_{bb.name}_{box}_flags.csv",
                                    keep_default_na=False)
                failed |= set(flags.loc[flags["failed"].astype(bool), "path"])
                faces += _face_rows(es.name, b.backbone, box, flags, masked)
            u_ok = unmasked[~unmasked["path"].isin(failed)]
            m_ok = masked[~masked["path"].isin(failed)]
            pairs = masked_vs_unmasked_pairs(u_ok, m_ok)
            base_cfg = plan.network_config(b)
            key = {"weights": bb.weights_fingerprint(base_cfg.weights, base_cfg.seed),
                   "image_cache": file_digest(cache.cache_dir / "cache.json"), "face_box": box}
            store = out / b.backbone / "store"
            feats = {}
            for (name, row), seeds in networks.items():
                if name != b.backbone:
                    continue
                for s in seeds:
                    n = int(s["n"])
                    if n not in feats:
                        feats[n] = nets[(b.backbone, n)].features(images, store, key, progress)
                    net = nets[(b.backbone, n)]
                    net.load(s["checkpoint"])
                    emb = Embeddings(net.embed(feats[n]), list(cache.paths))
                    kept, _ = drop_failed_pairs(pairs, emb)
                    idx = pair_indices(kept, emb)
                    frame = kept.assign(**{DISTANCE: pair_distances(
                        emb.vectors, idx.u_idx, idx.m_idx, DISTANCE)})
                    main = s["seed"] == cfg0.seed
                    boots = cfg0.bootstrap_resamples if main else 0
                    m = pair_set_metrics(frame, (DISTANCE,), boots, cfg0.seed)[DISTANCE]
                    ident = identification_metrics(emb, m_ok, u_ok, (DISTANCE,), boots,
                                                   cfg0.seed)[DISTANCE]
                    rows.append({"set": es.name, "backbone": b.backbone, "row": row,
                                 "seed": s["seed"], "n_subjects": len(ds.subjects),
                                 "n_unmasked": len(u_ok), "n_masked": len(m_ok),
                                 "n_genuine": m["n_genuine"], "n_impostor": m["n_impostor"],
                                 **{k: m[k] for k in STATS},
                                 **_interval(m.get("ci"), STATS),
                                 "rank1": ident.get("rank_1"),
                                 **_interval(ident.get("ci"), ("rank_1",), "rank1")})
                    if row == "pretrained" and main:
                        near.setdefault(es.name, {})[b.backbone] = _near_duplicates(
                            plan, out, b, emb, nets, ds)
    return pd.DataFrame(rows), pd.DataFrame(faces), near


def _interval(ci: dict | None, keys: Sequence[str], name: str | None = None) -> dict[str, Any]:
    """``<key>_low`` / ``<key>_high`` of a bootstrap's intervals (None without one)."""
    out = {}
    for k in keys:
        entry = (ci or {}).get(k) or {}
        out[f"{name or k}_low"], out[f"{name or k}_high"] = entry.get("low"), entry.get("high")
    return out


def _face_rows(name: str, backbone: str, box: str, flags: pd.DataFrame,
               masked: pd.DataFrame) -> list[dict[str, Any]]:
    """The share of a set's photos per side whose face each stage found (``stage`` of the
    aligned cache's flags)."""
    is_masked = flags["path"].isin(set(masked["path"]))
    out = []
    for side, sel in (("masked", is_masked), ("unmasked", ~is_masked)):
        part = flags[sel]
        stages = part["stage"] if "stage" in part else pd.Series(
            np.where(part["no_face_detected"].astype(bool), "no_face_detected", box),
            index=part.index)
        for stage, count in stages.value_counts().sort_index().items():
            out.append({"set": name, "backbone": backbone, "face_box": box, "side": side,
                        "stage": stage, "images": int(count),
                        "share": float(count) / max(len(part), 1)})
    return out


# --------------------------------------------------------------------------- identity hygiene


def _names_hygiene(plan: TransferPlan) -> dict[str, Any]:
    """People of a real set whose name is also in the training set's (or in two real sets):
    :func:`mfr.data.identities.shared_identities` (names are a first filter:
    :func:`_near_duplicates` looks at the faces)."""
    from mfr.data.datasets import get_dataset, load_dataset
    from mfr.data.identities import shared_identities

    sets = {"train": load_dataset(plan.config.data_root, "balanced")}
    for es in plan.eval_sets:
        sets[es.name] = get_dataset(es.layout).load(Path(es.data_root), "balanced")
    found = shared_identities(sets)
    return {"by_name": found,
            "by_name_note": "names compared normalised (accents, case, separators, part order); "
                            "identities that are numbers (M2FRED) cannot be checked by name"}


def _near_duplicates(plan: TransferPlan, out: Path, b: Backbone, emb: Any, nets: dict,
                     ds: Any) -> dict[str, Any]:
    """The faces of a real set that the pre-trained network finds nearer to a training photo
    than any two photos of different validation identities are to each other (a strict bar:
    no impostor pair of MLFW's validation set is that near): the people to look at by eye."""
    from mfr.data.image_cache import ImageCache
    from mfr.evaluation.distances import pair_distances

    cache = ImageCache.open(out / f"cache_{b.image_size}")
    key_n = b.trainable_layers[0]
    net = nets[(b.backbone, key_n)]
    net.load(None)
    from mfr.core.provenance import file_digest

    bb = net.backbone
    base_cfg = plan.network_config(b)
    images, _ = bb.network_inputs(cache.images, face_box=base_cfg.face_box, cache=cache)
    key = {"weights": bb.weights_fingerprint(base_cfg.weights, base_cfg.seed),
           "image_cache": file_digest(cache.cache_dir / "cache.json"),
           "face_box": base_cfg.face_box if bb.aligns else None}
    train = net.embed(net.features(images, out / b.backbone / "store", key, False))
    val = pd.read_csv(out / "partition" / "val.csv")
    impostor = val[val["label"] == 0]
    index = {p: i for i, p in enumerate(cache.paths)}
    u = np.array([index[p] for p in impostor["unmasked_path"] if p in index])
    m = np.array([index[p] for p in impostor["masked_path"] if p in index])
    bar = float(pair_distances(train, u, m, DISTANCE).min()) if len(u) else 0.0
    nearest = np.full(len(emb.vectors), np.inf)
    which = np.zeros(len(emb.vectors), np.int64)
    for s in range(0, len(train), 4096):
        block = train[s:s + 4096]
        d = 2.0 - 2.0 * (emb.vectors.astype(np.float64) @ block.astype(np.float64).T)
        arg = d.argmin(axis=1)
        better = d[np.arange(len(d)), arg] < nearest
        nearest[better], which[better] = d[np.arange(len(d)), arg][better], s + arg[better]
    hits = np.flatnonzero(nearest < bar)
    subject = {im.path: im.subject for im in ds.images}
    found = [{"image": emb.paths[i], "subject": subject.get(emb.paths[i]),
              "training_photo": cache.paths[which[i]], "distance": float(nearest[i])}
             for i in hits]
    return {"bar": bar, "bar_rule": "the smallest sum_squared distance of MLFW's validation "
                                    "impostor pairs (no two different validation identities "
                                    "are nearer)",
            "n_images": len(emb.vectors), "n_below_bar": len(found),
            "subjects_below_bar": sorted({f["subject"] for f in found if f["subject"]}),
            "images": found}


# --------------------------------------------------------------------------- tables


def _nearest_identities(images: Sequence[dict[str, Any]]) -> str:
    """'subject -> training identity (k of m)' for each subject of `images` (near-duplicate
    rows: ``subject``, ``training_photo`` as ``<split>/<identity>/<file>``), sorted."""
    by: dict[str, list[str]] = {}
    for im in images:
        by.setdefault(str(im["subject"]), []).append(Path(im["training_photo"]).parent.name)
    parts = []
    for subject in sorted(by):
        names = sorted(by[subject])
        top = max(sorted(set(names)), key=names.count)
        parts.append(f"{subject} -> {top} ({names.count(top)} of {len(names)})")
    return ", ".join(parts)


def _spread(values: Sequence[float], name: str) -> dict[str, Any]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if not v.size:
        return {f"{name}_{k}": None for k in ("mean", "sd", "min", "max")}
    return {f"{name}_mean": float(v.mean()), f"{name}_sd": float(v.std(ddof=1)) if v.size > 1
            else 0.0, f"{name}_min": float(v.min()), f"{name}_max": float(v.max())}


def _table(plan: TransferPlan, networks: dict, real: pd.DataFrame) -> pd.DataFrame:
    """A row per (backbone, network, set): the profile seed's numbers with their intervals,
    and the spread over the seeds; the set ``mlfw_val`` is MLFW's validation pairs (synthetic
    masks: what chose)."""
    seed0 = plan.config.seed
    rows = []
    for (backbone, name), seeds in networks.items():
        first = seeds[0]
        head = {"backbone": backbone, "network": name, "n": first.get("n") if name !=
                "pretrained" else None, "lr": first.get("lr"), "epochs": first.get("epochs"),
                "seeds": ",".join(str(s["seed"]) for s in seeds)}
        rows.append({**head, "set": "mlfw_val", "auc": first["auc"], "eer": first["eer"],
                     "fnmr_at_fmr_1pct": first["fnmr_at_fmr_1pct"],
                     **_spread([s["auc"] for s in seeds], "auc"),
                     **_spread([s["eer"] for s in seeds], "eer")})
        mine = real[(real["backbone"] == backbone) & (real["row"] == name)]
        for es in plan.eval_sets:
            part = mine[mine["set"] == es.name]
            main = part[part["seed"] == seed0].iloc[0].to_dict()
            rows.append({**head, "set": es.name,
                         **{k: v for k, v in main.items() if k not in
                            ("set", "backbone", "row", "seed")},
                         **_spread(part["auc"].tolist(), "auc"),
                         **_spread(part["eer"].tolist(), "eer")})
    cols = ["backbone", "network", "n", "lr", "epochs", "seeds", "set", "auc", "auc_low",
            "auc_high", "eer", "eer_low", "eer_high", "fnmr_at_fmr_1pct", "fnmr_at_fmr_1pct_low",
            "fnmr_at_fmr_1pct_high", "fnmr_at_fmr_0_1pct", "fnmr_at_fmr_0_1pct_low",
            "fnmr_at_fmr_0_1pct_high", "rank1", "rank1_low", "rank1_high", "auc_mean", "auc_sd",
            "auc_min", "auc_max", "eer_mean", "eer_sd", "eer_min", "eer_max", "n_subjects",
            "n_unmasked", "n_masked", "n_genuine", "n_impostor"]
    table = pd.DataFrame(rows)
    return table.reindex(columns=cols)


def _verdict(plan: TransferPlan, table: pd.DataFrame) -> dict[str, Any]:
    """The issue's goal, checked: the recipe chosen on MLFW validation (highest validation AUC
    of every backbone's recipes) against the best pre-trained network of each real set (lowest
    EER): its EER at most half on at least two sets, and on none above the pre-trained
    network's 95% interval."""
    val = table[(table["set"] == "mlfw_val") & (table["network"] != "pretrained")]
    best = val.sort_values(["auc", "eer"], ascending=[False, True], kind="stable").iloc[0]
    sets = [es.name for es in plan.eval_sets]
    per_set = {}
    halved, worse = 0, []
    for name in sets:
        pre = table[(table["set"] == name) & (table["network"] == "pretrained")]
        ref = pre.sort_values("eer", kind="stable").iloc[0]
        mine = table[(table["set"] == name) & (table["backbone"] == best["backbone"])
                     & (table["network"] == best["network"])].iloc[0]
        ratio = float(mine["eer"]) / float(ref["eer"]) if ref["eer"] else float("nan")
        is_worse = ref["eer_high"] is not None and pd.notna(ref["eer_high"]) and \
            float(mine["eer"]) > float(ref["eer_high"])
        halved += ratio <= 0.5
        if is_worse:
            worse.append(name)
        per_set[name] = {"best_pretrained": str(ref["backbone"]),
                         "best_pretrained_eer": float(ref["eer"]),
                         "best_pretrained_eer_interval": [ref["eer_low"], ref["eer_high"]],
                         "chosen_eer": float(mine["eer"]), "eer_ratio": ratio,
                         "chosen_eer_seed_mean": mine["eer_mean"]}
    met = halved >= 2 and not worse
    return {"chosen": {"backbone": str(best["backbone"]), "network": str(best["network"]),
                       "n": int(best["n"]), "lr": float(best["lr"]),
                       "epochs": int(best["epochs"]),
                       "mlfw_val_auc": float(best["auc"])},
            "per_set": per_set, "sets_halved": int(halved), "sets_worse": worse,
            "goal": "EER at most half the best pre-trained network's on at least two of the "
                    "real sets, and nowhere above its 95% interval",
            "met": bool(met)}


def _ci(row: pd.Series, key: str) -> str:
    v, lo, hi = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if v is None or not pd.notna(v):
        return "n/a"
    text = f"{v:.3f}"
    if lo is not None and pd.notna(lo) and hi is not None and pd.notna(hi):
        text += f" [{lo:.3f}, {hi:.3f}]"
    return text


def _sd(row: pd.Series, key: str) -> str:
    m, sd = row.get(f"{key}_mean"), row.get(f"{key}_sd")
    if m is None or not pd.notna(m) or len(str(row.get("seeds", "")).split(",")) < 2:
        return ""
    return f"{m:.3f} ± {sd:.3f}"


def _label(row: pd.Series) -> str:
    if row["network"] == "pretrained":
        return f"{row['backbone']} pre-trained"
    return (f"{row['backbone']} {row['network']} (N={int(row['n'])}, lr {row['lr']:g}, "
            f"{int(row['epochs'])} ep.)")


def transfer_markdown(table: pd.DataFrame, faces: pd.DataFrame, verdict: dict[str, Any],
                      hygiene: dict[str, Any], plan: TransferPlan,
                      seconds: dict[str, float]) -> str:
    """``transfer.md``: the verdict, a table per real set, MLFW validation, the face finder's
    stages, identity hygiene and the time it took."""
    from mfr.backbones import get_backbone

    cfg = plan.config
    v = verdict
    c = v["chosen"]
    lines = ["# The thesis's question at scale: fine-tuned on MLFW, judged on real masks", "",
             f"Trained on MLFW's training identities (`{cfg.data_root}`, protocol identity: "
             f"genuine pairs two photos of one identity, any mask); every setting chosen on "
             f"MLFW's validation identities; judged on every masked x unmasked pair of "
             f"{', '.join(e.name for e in plan.eval_sets)} (real masks, people nobody trained "
             f"or chose on). Distance: sum of squared differences of unit embeddings (the "
             f"thesis's; the same ranking as cosine). Intervals: 95% subject bootstrap "
             f"({cfg.bootstrap_resamples} resamples) of seed {cfg.seed}; ± : mean and sd over "
             f"seeds {', '.join(map(str, plan.seeds))}.", "",
             "Weights licences: " + "; ".join(
                 get_backbone(b.backbone).licence_note() for b in plan.backbones) + ".", "",
             f"**Chosen on MLFW validation**: {c['backbone']} {c['network']} (N={c['n']}, lr "
             f"{c['lr']:g}, {c['epochs']} epochs; validation AUC {c['mlfw_val_auc']:.3f}). "
             f"**Goal** ({v['goal']}): **{'met' if v['met'] else 'not met'}**: EER halved on "
             f"{v['sets_halved']} of {len(v['per_set'])} sets"
             + (f", worse beyond the interval on {', '.join(v['sets_worse'])}"
                if v["sets_worse"] else "") + ".", ""]
    lines += ["| set | best pre-trained (EER [95%]) | chosen recipe's EER | ratio |",
              "|---|---|---|---|"]
    for name, p in v["per_set"].items():
        lo, hi = p["best_pretrained_eer_interval"]
        interval = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and pd.notna(lo) else ""
        lines.append(f"| {name} | {p['best_pretrained']} {p['best_pretrained_eer']:.3f}"
                     f"{interval} | {p['chosen_eer']:.3f} | {p['eer_ratio']:.2f} |")
    lines.append("")
    for name in ["mlfw_val", *(e.name for e in plan.eval_sets)]:
        part = table[table["set"] == name]
        title = ("MLFW validation (synthetic masks: what chose)" if name == "mlfw_val"
                 else f"{name} (real masks)")
        lines += [f"## {title}", ""]
        if name == "mlfw_val":
            lines += ["| network | AUC | EER | FNMR@FMR1% | AUC over seeds | EER over seeds |",
                      "|---|---|---|---|---|---|"]
            for _, r in part.iterrows():
                lines.append(f"| {_label(r)} | {r['auc']:.3f} | {r['eer']:.3f} | "
                             f"{r['fnmr_at_fmr_1pct']:.3f} | {_sd(r, 'auc')} | {_sd(r, 'eer')} |")
        else:
            first = part.iloc[0]
            lines += [f"{int(first['n_subjects'])} people, {int(first['n_unmasked'])} unmasked "
                      f"and {int(first['n_masked'])} masked photos: {int(first['n_genuine'])} "
                      f"genuine and {int(first['n_impostor'])} impostor pairs.", "",
                      "| network | AUC | EER | FNMR@FMR1% | FNMR@FMR0.1% | rank-1 | AUC over "
                      "seeds | EER over seeds |", "|---|---|---|---|---|---|---|---|"]
            for _, r in part.iterrows():
                lines.append(f"| {_label(r)} | {_ci(r, 'auc')} | {_ci(r, 'eer')} | "
                             f"{_ci(r, 'fnmr_at_fmr_1pct')} | {_ci(r, 'fnmr_at_fmr_0_1pct')} | "
                             f"{_ci(r, 'rank1')} | {_sd(r, 'auc')} | {_sd(r, 'eer')} |")
        lines.append("")
    if len(faces):
        lines += ["## Finding the faces of the real sets", "",
                  "Share of each set's photos, per side, whose five landmarks each stage found "
                  "(no_face_detected: none did; the photo, a face crop, is used whole).", "",
                  "| set | backbone | face box | side | stage | photos | share |",
                  "|---|---|---|---|---|---|---|"]
        for _, r in faces.iterrows():
            lines.append(f"| {r['set']} | {r['backbone']} | {r['face_box']} | {r['side']} | "
                         f"{r['stage']} | {int(r['images'])} | {r['share']:.3f} |")
        lines.append("")
    names = hygiene.get("by_name") or {}
    matches = names.get("matches") or []
    shown = "; ".join(" = ".join(f"{i['dataset']}/{i['name']}" for i in m["identities"])
                      for m in matches[:10]) or "none"
    lines += ["## Identity hygiene", "",
              f"By name ({', '.join(f'{k}: {v}' for k, v in (names.get('identities') or {}).items())} "
              f"identities): shared {shown}"
              + (f"; not checkable by name: {', '.join(names['unnamed'])}"
                 if names.get("unnamed") else "") + f" ({hygiene.get('by_name_note', '')}).",
              ""]
    for name, per in (hygiene.get("near_duplicates") or {}).items():
        for backbone, nd in per.items():
            lines.append(f"By face ({backbone}, pre-trained): {nd['n_below_bar']} of "
                         f"{nd['n_images']} {name} photos nearer to a training photo than "
                         f"{nd['bar']:.3f} ({nd['bar_rule']}); each person so flagged, with "
                         f"the training identity nearest to most of their flagged photos: "
                         f"{_nearest_identities(nd.get('images') or []) or 'none'}.")
    if hygiene.get("near_duplicates"):
        lines += ["", "A person in both sets would come back to one training identity photo "
                  "after photo; read the names above: a flagged person beside a different "
                  "person is a look-alike under a mask, not a leak."]
    if v.get("diverged_runs"):
        lines += ["", "## Runs whose loss stopped being finite", "",
                  "Their finished epochs were scored and could be chosen; the rest could not.",
                  ""]
        lines += [f"- {k}: {note}" for k, note in v["diverged_runs"].items()]
    lines += ["", "## Time", ""]
    lines += [f"- {k}: {v:.0f} s" for k, v in seconds.items()]
    return "\n".join(lines) + "\n"


def _figure(table: pd.DataFrame, plan: TransferPlan, out: Path) -> list[str]:
    """``transfer.png/.svg``: EER with its interval per network and set (MLFW validation
    first), the pre-trained networks hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mfr.report.plots import save_figure

    sets = ["mlfw_val", *(e.name for e in plan.eval_sets)]
    labels = [_label(r) for _, r in table[table["set"] == sets[-1]].iterrows()]
    fig, axes = plt.subplots(1, len(sets), figsize=(3.2 * len(sets) + 3, 0.35 * len(labels) + 1.6),
                             sharey=True)
    for ax, name in zip(np.atleast_1d(axes), sets, strict=True):
        part = table[table["set"] == name].reset_index(drop=True)
        y = np.arange(len(part))[::-1]
        for i, (_, r) in enumerate(part.iterrows()):
            pre = r["network"] == "pretrained"
            lo, hi = r.get("eer_low"), r.get("eer_high")
            if lo is not None and pd.notna(lo):
                ax.plot([lo, hi], [y[i], y[i]], color="0.5", lw=1.5)
            ax.plot(r["eer"], y[i], "o", mfc="none" if pre else "C0", mec="C0")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("EER (lower is better)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    first = np.atleast_1d(axes)[0]
    first.set_yticks(np.arange(len(labels))[::-1], labels, fontsize=7)
    fig.suptitle("Fine-tuned on MLFW (filled) vs pre-trained (hollow): EER with 95% subject "
                 "bootstrap interval", fontsize=9)
    fig.tight_layout()
    paths = save_figure(fig, out / "transfer")
    plt.close(fig)
    return [p.name for p in paths]
