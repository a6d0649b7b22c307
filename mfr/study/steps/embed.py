"""The baseline step: the pre-trained (or random-init) backbone's embeddings and pair distances
(`mfr embed`, notebook 02)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mfr.backbones import get_backbone
from mfr.core.config import StudyConfig
from mfr.core.errors import InputError, MissingError
from mfr.core.integrity import check_recorded
from mfr.core.outputs import write_csv, write_json, write_text
from mfr.core.precision import with_precision
from mfr.core.provenance import (
    claim,
    complete,
    marks_its_runs,
)
from mfr.data.image_cache import ImageCache
from mfr.data.pairs import (
    SPLITS,
    own_pair_sets,
    parse_splits,
    read_pair_csvs,
    unique_pair_paths,
)
from mfr.evaluation.distances import DISTANCE_FLOAT_FORMAT
from mfr.report import thesis_tables
from mfr.study.steps.inputs import resolve_data_root
from mfr.study.steps.prepare import (
    image_cache_for,
    input_fingerprint,
    keep_readable,
    pair_distances,
    read_partition,
)
from mfr.study.steps.settings import devices_for, embed_settings


@dataclass
class EmbedRun:
    """What :func:`embed_step` made (all of it is also on disk under `out_dir`)."""

    out_dir: Path
    distances: pd.DataFrame  # a row per kept pair: split, paths, label, one column per metric
    summary: dict[str, Any]  # summary.json
    embeddings: Any  # mfr.evaluation.embeddings.Embeddings
    cache: ImageCache
    dropped: pd.DataFrame  # pairs dropped because an image failed to decode

    def summary_table(self, split: str | None = None, metric: str = "sum_squared") -> pd.DataFrame:
        split = split or next(iter(self.summary["splits"]))
        label = f"this run ({split}, {self.summary['weights_desc']})"
        return thesis_tables.summary_table(self.summary["splits"][split][metric], label=label)


@marks_its_runs
@with_precision
def embed_step(
    config: StudyConfig,
    pairs_dir: str | Path,
    out_dir: str | Path,
    data_root: str | Path | None = None,
    split: str | Sequence[str] = "test",
    cache_dir: str | Path | None = None,
    model=None,
    progress: bool = True,
    force: bool = False,
) -> EmbedRun:
    """The baseline (Table 5.1, first row) for the pairs of a partition (`mfr embed`).

    pairs CSVs -> one image cache for the union of the partition's splits (each unique image
    decoded once; reused if present and unchanged) -> embeddings of the unique images of
    `split` (each embedded once) -> distances of every pair for each metric -> summary.

    Writes into `out_dir`: ``cache/`` (unless `cache_dir`), ``embeddings/`` (npy, index,
    run.json), ``distances.csv``, ``summary.json``, ``summary.md``, ``run.json``. When
    `out_dir` already holds this run, complete, it is read back, not computed again.

    Args:
        config: its weights (``None`` = random initialisation with
            ``keras.utils.set_random_seed(config.seed)``, for the offline demo only, flagged
            loudly in every output), preprocessing, embed_batch_size, image_size, pooling and
            decoder.
        data_root: the folder the pair paths are relative to (default:
            :func:`resolve_data_root`).
        split: ``"test"`` (default), ``"train"``, ``"val"``, ``"all"`` or a comma list.
        model: a ready model to use instead of building the backbone with ``config.weights``.
        force: replace whatever `out_dir` holds.
    """
    from mfr.evaluation.embeddings import Embeddings, embed_images, load_embeddings, save_embeddings

    cfg = config
    backbone = get_backbone(cfg.backbone)  # resolved once, here
    devices = devices_for(cfg)  # --data-parallel under TensorFlow: an error before any work
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    splits = parse_splits(split, own_pair_sets(pairs_dir))
    pairs = read_partition(pairs_dir, splits, required=splits)  # bad input: before slow work
    root = resolve_data_root(data_root, pairs_dir, cfg, cache_dir)
    if root is None:
        raise InputError(f"no data root: pass --data-root DIR ({pairs_dir / 'run.json'} "
                         f"records none)")
    if not root.is_dir():
        raise MissingError(f"{root}: data root is not a directory")
    if model is None:
        backbone.check_weights(cfg.weights, progress)
    fp = {"settings": {**embed_settings(cfg, backbone), "splits": splits},
          "weights": "given model" if model is not None
          else backbone.weights_fingerprint(cfg.weights, cfg.seed),
          **input_fingerprint(pairs_dir, pairs, root)}
    others = [s for s in SPLITS if s not in splits and (pairs_dir / f"{s}.csv").is_file()]
    all_pairs = {**pairs, **read_pair_csvs(pairs_dir, others)}
    if claim(out_dir, "embed", fp, config=cfg, force=force) == "complete":
        emb = load_embeddings(out_dir / "embeddings")
        return EmbedRun(out_dir, pd.read_csv(check_recorded(out_dir / "distances.csv")),
                        json.loads(check_recorded(out_dir / "summary.json").read_text(
                            encoding="utf-8")),
                        emb, ImageCache.open(cache_dir), pd.DataFrame())

    cache = image_cache_for(root, all_pairs, cache_dir, cfg, progress)
    if len(cache) == 0 or not any(p in cache for p in unique_pair_paths(*pairs.values())):
        raise InputError(f"{root}: none of the images of {pairs_dir} could be read under "
                         f"this data root (see {cache.cache_dir / 'failed.csv'}); is it the "
                         f"folder the pair paths are relative to?")
    kept, dropped_df = keep_readable(pairs, cache)

    weights_desc, warning = backbone.describe_weights(cfg.weights, cfg.seed)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    if model is None:
        model = backbone.core(cfg)
    paths = unique_pair_paths(*kept.values()) if any(len(k) for k in kept.values()) else []
    images, rows = backbone.network_inputs(cache.images, cache.index_of(paths), progress,
                                           cfg.face_box, cache=cache)
    vectors = embed_images(model, images, preprocessing=backbone.preprocessing(cfg.preprocessing),
                           batch_size=cfg.embed_batch_size, progress=progress,
                           rows=rows, data_parallel=cfg.data_parallel)
    meta = {"weights_desc": weights_desc, "random_weights": cfg.weights is None,
            "preprocessing": cfg.preprocessing, "decoder": cfg.decoder, "splits": splits,
            "warning": warning}
    save_embeddings(out_dir / "embeddings", vectors, paths, meta=meta, config=cfg)
    emb = Embeddings(vectors, paths, meta)

    distances, summaries = pair_distances(kept, emb.vectors, emb, list(kept))
    write_csv(out_dir / "distances.csv", distances, float_format=DISTANCE_FLOAT_FORMAT)

    summary = {
        "weights": cfg.weights,
        "weights_desc": weights_desc,
        "random_weights": cfg.weights is None,
        "warning": warning,
        "preprocessing": cfg.preprocessing,
        "decoder": cfg.decoder,
        "metric_thesis": "sum_squared",
        "splits": summaries,
        "thesis_table_5_1_pretrained": thesis_tables.thesis_row("pre-trained"),
        "n_images_embedded": len(paths),
        "n_images_failed": len(cache.failed),
        "n_pairs_dropped": len(dropped_df),
    }
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "summary.md", thesis_tables.baseline_markdown(summary))
    complete(out_dir, "embed", fp, config=cfg,
             outputs=["distances.csv", "summary.json", "summary.md", "embeddings"],
             data_root=str(root.resolve()), pairs_dir=str(pairs_dir.resolve()), splits=splits,
             cache_dir=str(cache.cache_dir), weights_desc=weights_desc,
             random_weights=cfg.weights is None, warning=warning, decoder=cfg.decoder,
             n_images_embedded=len(paths), n_images_failed=len(cache.failed),
             n_pairs_dropped=len(dropped_df), failed_images=cache.failed.to_dict("records"),
             data_parallel=cfg.data_parallel, devices=devices,
             weights_licence=backbone.licence_note() if cfg.weights is not None else None)
    return EmbedRun(out_dir, distances, summary, emb, cache, dropped_df)
