"""Embed each unique image once; save, load, and the whole baseline flow for a partition.

:func:`embed_images` takes the uint8 images of an :class:`mfr.image_cache.ImageCache` (or any
(N, H, W, 3) array), preprocesses each batch with :func:`mfr.models.preprocess` and runs the
network with ``model.predict_on_batch`` (Keras 3, any backend), returning L2-normalised float32
embeddings. :func:`embed_partition` is the whole baseline flow (the ``mfr embed`` command and
notebook 02): pair CSVs -> image cache -> embeddings -> distances -> summary.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.distances import (
    DISTANCE_FLOAT_FORMAT,
    THESIS_TABLE_5_1_PRETRAINED,
    distance_table,
    l2_normalize,
)
from mfr.image_cache import (
    SPLITS,
    ImageCache,
    _index_of,
    build_image_cache,
    drop_failed_pairs,
    pair_indices,
    read_pair_csvs,
    unique_pair_paths,
)
from mfr.outputs import run_metadata, save_npy, write_csv, write_json, write_text
from mfr.progress import progress_bar

__all__ = [
    "Embeddings",
    "EmbedRun",
    "embed_images",
    "embed_partition",
    "load_embeddings",
    "save_embeddings",
    "parse_splits",
]

RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS (weights=None, seed {seed}): this is NOT the pre-trained SENet50; the "
    "distances only exercise the pipeline (offline demo) and mean nothing about faces."
)


def _forward(model, batch_uint8: np.ndarray, preprocessing: str) -> np.ndarray:
    """One batch: preprocess (mfr.models.preprocess) and run the model; float32 numpy."""
    from mfr.models import preprocess

    x = preprocess(np.asarray(batch_uint8), mode=preprocessing)
    return np.asarray(model.predict_on_batch(x), dtype=np.float32)


def embed_images(
    model,
    images: np.ndarray,
    preprocessing: str = "thesis",
    batch_size: int = 64,
    progress: bool = True,
    rows: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Embed images (N, H, W, 3) uint8 (array or memmap) batch by batch.

    Args:
        model: a Keras model taking preprocessed float32 images (:func:`mfr.models.senet50`).
        images: uint8 RGB images; read one batch at a time, so a memmap stays on disk.
        preprocessing: ``"thesis"`` or ``"vggface2"`` (:func:`mfr.models.preprocess`).
        batch_size: images per forward pass.
        progress: show a tqdm bar.
        rows: embed only these rows of `images`, in this order (default: all).

    Returns:
        float32 (n, D) embeddings, each row L2-normalised (``tf.math.l2_normalize``'s epsilon).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) images, got shape {tuple(images.shape)}")
    order = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
    n = len(order)
    contiguous = rows is None
    starts = range(0, n, batch_size)
    chunks = []
    for s in progress_bar(starts, progress, desc="embed", unit="batch"):
        sel = slice(s, s + batch_size) if contiguous else order[s:s + batch_size]
        batch = np.asarray(images[sel])
        chunks.append(_forward(model, batch, preprocessing))
    if not chunks:
        out_dim = model.output_shape[-1]
        return np.zeros((0, out_dim), dtype=np.float32)
    return l2_normalize(np.concatenate(chunks).astype(np.float32, copy=False))


# --------------------------------------------------------------------------- save / load


@dataclass
class Embeddings:
    """Embeddings with the image paths of their rows."""

    vectors: np.ndarray  # (N, D) float32
    paths: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.vectors) != len(self.paths):
            raise ValueError(f"{len(self.vectors)} embeddings but {len(self.paths)} paths")
        self._rows = {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def failed_paths(self) -> set[str]:
        return set()

    def index_of(self, paths) -> np.ndarray:
        return _index_of(self._rows, paths, set(), "embeddings")


def save_embeddings(
    out_dir: str | Path,
    emb: np.ndarray,
    paths: Sequence[str],
    meta: dict[str, Any] | None = None,
    config: Any = None,
) -> Path:
    """Write ``embeddings.npy``, ``index.csv`` (path,row) and ``run.json`` (config, versions,
    `meta`) into `out_dir`; returns `out_dir`."""
    out_dir = Path(out_dir)
    emb = np.asarray(emb, dtype=np.float32)
    paths = [str(p) for p in paths]
    if len(emb) != len(paths):
        raise ValueError(f"{len(emb)} embeddings but {len(paths)} paths")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "run.json").unlink(missing_ok=True)  # written last: marks a complete set
    save_npy(out_dir / "embeddings.npy", emb)
    write_csv(out_dir / "index.csv", pd.DataFrame({"path": paths, "row": np.arange(len(paths))}))
    write_json(out_dir / "run.json", run_metadata(config, n_images=len(paths),
                                                  dim=int(emb.shape[1]) if emb.ndim == 2 else 0,
                                                  **(meta or {})))
    return out_dir


def load_embeddings(out_dir: str | Path) -> Embeddings:
    """Read what :func:`save_embeddings` wrote."""
    import json

    out_dir = Path(out_dir)
    run = out_dir / "run.json"
    if not run.is_file():
        raise FileNotFoundError(f"{run}: no complete embeddings here (expected embeddings.npy, "
                                f"index.csv and run.json from save_embeddings)")
    index = pd.read_csv(out_dir / "index.csv", dtype={"path": str}, keep_default_na=False)
    vectors = np.load(out_dir / "embeddings.npy")
    if len(index) != len(vectors):
        raise ValueError(f"{out_dir / 'index.csv'}: {len(index)} paths but embeddings.npy has "
                         f"{len(vectors)} rows")
    return Embeddings(vectors, index["path"].tolist(), json.loads(run.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- the baseline flow


@dataclass
class EmbedRun:
    """What :func:`embed_partition` made (all of it is also on disk under `out_dir`)."""

    out_dir: Path
    distances: pd.DataFrame  # a row per kept pair: split, paths, label, one column per metric
    summary: dict[str, Any]  # summary.json
    embeddings: Embeddings
    cache: ImageCache
    dropped: pd.DataFrame  # pairs dropped because an image failed to decode

    def summary_table(self, split: str | None = None, metric: str = "sum_squared") -> pd.DataFrame:
        from mfr.distances import summary_table

        split = split or next(iter(self.summary["splits"]))
        label = f"this run ({split}, {self.summary['weights_desc']})"
        return summary_table(self.summary["splits"][split][metric], label=label)


def parse_splits(split: str | Sequence[str]) -> list[str]:
    """``"test"``, ``"val,test"``, ``"all"`` or a list -> a list of split names."""
    names = split.split(",") if isinstance(split, str) else list(split)
    names = [s.strip() for s in names if s.strip()]
    if names == ["all"]:
        return list(SPLITS)
    bad = [s for s in names if s not in SPLITS]
    if bad or not names:
        raise ValueError(f"split must be one of {SPLITS}, 'all' or a comma-separated list; got {split!r}")
    return list(dict.fromkeys(names))


def embed_partition(
    data_root: str | Path,
    pairs_dir: str | Path,
    out_dir: str | Path,
    config: Any = None,
    split: str | Sequence[str] = "test",
    cache_dir: str | Path | None = None,
    model=None,
    progress: bool = True,
    decoder: str | None = None,
) -> EmbedRun:
    """The baseline (Table 5.1, first row) for the pairs of a partition.

    pairs CSVs -> one image cache for the union of the partition's splits (each unique image
    decoded once; reused if present) -> embeddings of the unique images of `split` (each
    embedded once) -> distances of every pair for each metric -> summary.

    Writes into `out_dir`: ``cache/`` (unless `cache_dir`), ``embeddings/`` (npy, index, run.json),
    ``distances.csv``, ``summary.json``, ``summary.md``, ``run.json``.

    Args:
        config: a :class:`mfr.config.StudyConfig` (default: the thesis's); uses its weights
            (``None`` = random initialisation with ``keras.utils.set_random_seed(config.seed)``,
            for the offline demo only, flagged loudly in every output), preprocessing,
            embed_batch_size, image_size and pooling.
        split: ``"test"`` (default), ``"train"``, ``"val"``, ``"all"`` or a comma list.
        model: a ready model to use instead of building ``senet50(config.weights)``.
        decoder: ``"pil"`` or ``"tf"`` (the thesis's exact JPEG decode; default: the config's), see
            :func:`mfr.image_cache.decode_rgb`.
    """
    from mfr.config import StudyConfig

    cfg = config if config is not None else StudyConfig()
    data_root, pairs_dir, out_dir = Path(data_root), Path(pairs_dir), Path(out_dir)
    decoder = decoder or cfg.decoder
    if not data_root.is_dir():
        raise FileNotFoundError(f"{data_root}: data root is not a directory")
    splits = parse_splits(split)
    pairs = read_pair_csvs(pairs_dir, splits)
    others = [s for s in SPLITS if s not in splits and (pairs_dir / f"{s}.csv").is_file()]
    all_pairs = {**pairs, **read_pair_csvs(pairs_dir, others)}

    cache = build_image_cache(
        data_root, unique_pair_paths(*all_pairs.values()),
        cache_dir if cache_dir is not None else out_dir / "cache",
        size=cfg.image_size, progress=progress, decoder=decoder, config=cfg,
    )
    if len(cache) == 0 or not any(p in cache._rows for p in unique_pair_paths(*pairs.values())):
        raise ValueError(f"{data_root}: none of the images of {pairs_dir} could be read under "
                         f"this data root (see {cache.cache_dir / 'failed.csv'}); is it the "
                         f"folder the pair paths are relative to?")
    kept, dropped = {}, []
    for s, df in pairs.items():
        k, d = drop_failed_pairs(df, cache)
        kept[s] = k
        if len(d):
            dropped.append(d.assign(split=s))
    dropped_df = pd.concat(dropped, ignore_index=True) if dropped else pd.DataFrame()
    if len(dropped_df):
        warnings.warn(f"dropped {len(dropped_df)} pairs whose image failed to decode "
                      f"(see {cache.cache_dir / 'failed.csv'})", stacklevel=2)

    random_weights = cfg.weights is None
    weights_desc = f"random init, seed {cfg.seed}" if random_weights else str(cfg.weights)
    warning = RANDOM_WEIGHTS_WARNING.format(seed=cfg.seed) if random_weights else None
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    if model is None:
        import keras

        from mfr.models import senet50

        if random_weights:
            keras.utils.set_random_seed(cfg.seed)
        model = senet50(weights=cfg.weights, pooling=cfg.pooling,
                        input_shape=(cfg.image_size, cfg.image_size, 3))

    paths = unique_pair_paths(*kept.values()) if any(len(k) for k in kept.values()) else []
    vectors = embed_images(model, cache.images, preprocessing=cfg.preprocessing,
                           batch_size=cfg.embed_batch_size, progress=progress,
                           rows=cache.index_of(paths))
    meta = {"weights_desc": weights_desc, "random_weights": random_weights,
            "preprocessing": cfg.preprocessing, "decoder": decoder, "splits": splits,
            "warning": warning}
    save_embeddings(out_dir / "embeddings", vectors, paths, meta=meta, config=cfg)
    emb = Embeddings(vectors, paths, meta)

    frames, summaries = [], {}
    for s, df in kept.items():
        idx = pair_indices(df, emb)
        frame, summaries[s] = distance_table(s, df, emb.vectors, idx.u_idx, idx.m_idx, idx.labels)
        frames.append(frame)
    distances = pd.concat(frames, ignore_index=True)
    write_csv(out_dir / "distances.csv", distances, float_format=DISTANCE_FLOAT_FORMAT)

    summary = {
        "weights": cfg.weights,
        "weights_desc": weights_desc,
        "random_weights": random_weights,
        "warning": warning,
        "preprocessing": cfg.preprocessing,
        "decoder": decoder,
        "metric_thesis": "sum_squared",
        "splits": summaries,
        "thesis_table_5_1_pretrained": THESIS_TABLE_5_1_PRETRAINED,
        "n_images_embedded": len(paths),
        "n_images_failed": len(cache.failed),
        "n_pairs_dropped": len(dropped_df),
    }
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "summary.md", _summary_md(summary))
    write_json(out_dir / "run.json", run_metadata(
        cfg, command="embed", data_root=str(data_root.resolve()),
        pairs_dir=str(pairs_dir.resolve()), splits=splits, cache_dir=str(cache.cache_dir),
        weights_desc=weights_desc, random_weights=random_weights, warning=warning, decoder=decoder,
        n_images_embedded=len(paths), n_images_failed=len(cache.failed),
        n_pairs_dropped=len(dropped_df),
        failed_images=cache.failed.to_dict("records"),
    ))
    return EmbedRun(out_dir, distances, summary, emb, cache, dropped_df)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.6f}"


def _summary_md(summary: dict[str, Any]) -> str:
    lines = ["# Baseline pair distances (mfr embed)", ""]
    if summary["warning"]:
        lines += [f"> **WARNING: {summary['warning']}**", ""]
    lines += [f"Weights: {summary['weights_desc']}; preprocessing: {summary['preprocessing']}; "
              f"distance: sum of squared differences of L2-normalised embeddings (the thesis's).",
              "", "| setting | median impostor | median genuine | gap | GMean | IMean | pairs |",
              "|---|---|---|---|---|---|---|"]
    for split, by_metric in summary["splits"].items():
        s = by_metric["sum_squared"]
        lines.append(f"| this run, {split} | {_fmt(s['median_impostor'])} | "
                     f"{_fmt(s['median_genuine'])} | {_fmt(s['gap'])} | {_fmt(s['gmean'])} | "
                     f"{_fmt(s['imean'])} | {s['n_pairs']} ({s['n_genuine']} genuine) |")
    t = summary["thesis_table_5_1_pretrained"]
    lines.append(f"| thesis Table 5.1, SENet50 pre-trained (test) | {_fmt(t['median_impostor'])} | "
                 f"{_fmt(t['median_genuine'])} | {_fmt(t['gap'])} | not reported | not reported | "
                 f"18190 |")
    lines += ["", f"Images embedded: {summary['n_images_embedded']}; failed to decode: "
              f"{summary['n_images_failed']}; pairs dropped: {summary['n_pairs_dropped']}.", ""]
    return "\n".join(lines)
