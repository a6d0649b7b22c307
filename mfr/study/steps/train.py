"""The fine-tuning step: one Siamese setting N, trained, with its val + test embeddings and
distances (`mfr train`, notebook 03)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from mfr.backbones import get_backbone
from mfr.core.config import StudyConfig
from mfr.core.errors import InputError, MissingError
from mfr.core.integrity import check_recorded
from mfr.core.outputs import write_csv, write_json
from mfr.core.precision import with_precision
from mfr.core.provenance import (
    claim,
    complete,
    file_digest,
    marks_its_runs,
    state,
)
from mfr.core.run_record import read_run
from mfr.core.runs import setting_dir_name
from mfr.data.image_cache import ImageCache
from mfr.data.pairs import (
    pair_indices,
)
from mfr.evaluation.distances import DISTANCE_FLOAT_FORMAT
from mfr.study.steps.inputs import resolve_data_root
from mfr.study.steps.prepare import (
    check_cache_source,
    image_cache_for,
    input_fingerprint,
    keep_readable,
    pair_distances,
    read_partition,
)
from mfr.study.steps.settings import devices_for, train_settings
from mfr.training.losses import get_loss


def _fine_tuned_distances(config: StudyConfig, n: int, result, kept: dict[str, pd.DataFrame],
                          cache: ImageCache, out: Path, weights_desc: str, warning: str | None
                          ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Save the fine-tuned embeddings of the val + test images (``out/embeddings``, as `mfr
    embed`'s) and return the val and test pairs' distance table and summaries."""
    from mfr.evaluation.embeddings import Embeddings, save_embeddings

    if result.embeddings is None:  # no val and no test pairs
        return pd.DataFrame(columns=["split", *kept["test"].columns]), {}
    paths = [cache.paths[r] for r in result.embedding_rows]
    meta = {"weights_desc": weights_desc, "random_weights": config.weights is None,
            "preprocessing": config.preprocessing, "decoder": config.decoder,
            "splits": ["val", "test"], "trainable_layers": n, "warning": warning}
    save_embeddings(out / "embeddings", result.embeddings, paths, meta=meta, config=config)
    emb = Embeddings(result.embeddings, paths, meta)
    return pair_distances(kept, emb.vectors, emb, ("val", "test"), skip_empty=True)


def default_train_dir(config: StudyConfig, n: int) -> Path:
    return Path("results") / config.profile / setting_dir_name(n)


@marks_its_runs
@with_precision
def train_step(
    config: StudyConfig,
    n: int,
    pairs_dir: str | Path,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    data_root: str | Path | None = None,
    resume: bool = False,
    verbose: int = 0,
    progress: bool = True,
    force: bool = False,
    require_test: bool = True,
    trunk_store: str | Path | None = None,
):
    """Fine-tune the last `n` layers on a partition's pairs (`mfr train`, one N).

    The image cache (`cache_dir`, default ``pairs_dir/cache``) is reused when it was made from
    these pairs' unchanged images, else built from the data root (:func:`resolve_data_root`).
    Every check on the input (N, the CSVs, the weights, the output folder) comes before the
    model is built. A folder holding this run complete is read back, not trained again; with
    more ``epochs`` and `resume` it is continued from its last checkpoint. `require_test`
    False: a partition without test pairs is trained on (one whose runs are judged on other
    datasets, as MLFW's in the study at scale, :mod:`mfr.study.transfer`). `trunk_store`: a
    folder where the frozen trunk's features of the image cache are kept and shared by every
    run of the same backbone, weights, N and images (:mod:`mfr.training.trunk_store`; recorded
    in the fingerprint: the features are batched over all images, not this run's).

    Writes into `out_dir` (default ``results/<profile>/train_N<n>``): ``history.csv``,
    ``checkpoints/``, ``final_trainable.h5`` (:func:`mfr.training.fit.train_siamese`; with a
    class-margin loss also ``margin_head.npz``, its trained head),
    ``embeddings/`` (the fine-tuned embeddings of the val and test images, as `mfr embed`'s),
    ``distances.csv`` and ``summary.json`` of the val and test pairs under the fine-tuned
    model, ``run.json``. Returns the :class:`mfr.training.fit.TrainResult`.
    """
    from mfr.training import checkpoints
    from mfr.training.fit import TrainResult, train_siamese

    backbone, loss = get_backbone(config.backbone), get_loss(config.loss)  # resolved once, here
    n = backbone.check_trainable_layers(n)[0]
    devices_for(config)  # --data-parallel under TensorFlow: an error before any work
    pairs_dir = Path(pairs_dir)
    needed = ("train", "test") if require_test else ("train",)
    frames = read_partition(pairs_dir, required=needed)
    if len(frames["val"]) == 0:
        warnings.warn(f"{pairs_dir / 'val.csv'}: no validation pairs; history.csv will have "
                      f"no val_loss", stacklevel=2)
    out = Path(out_dir) if out_dir is not None else default_train_dir(config, n)
    backbone.check_weights(config.weights, progress)
    cache_dir = Path(cache_dir) if cache_dir is not None else pairs_dir / "cache"
    root = resolve_data_root(data_root, pairs_dir, config, cache_dir)
    if root is None:
        raise MissingError(f"{cache_dir}: no image cache, and no data root to build it "
                           f"(pass --cache-dir or --data-root)")
    fp = {"settings": {**train_settings(config, backbone, loss), "trainable_layers": n,
                       **({"trunk_store": True} if trunk_store is not None else {})},
          "weights": backbone.weights_fingerprint(config.weights, config.seed),
          **input_fingerprint(pairs_dir, frames, root)}
    run = read_run(out, lenient=True) or {}
    done = run.get("epochs_trained", 0)
    reopen = False
    if state(out, "train", fp) == "complete" and not force and config.epochs != done:
        if config.epochs < done:
            raise InputError(f"{out}: trained for {done} epochs already; epochs {config.epochs} "
                             f"asks for fewer (choose another output folder, or --force)")
        if not resume:
            raise InputError(f"{out}: complete at {done} epochs; to train on to "
                             f"{config.epochs}, add --resume")
        reopen = True
    check_cache_source(root, frames, cache_dir, config)
    claimed = claim(out, "train", fp, config=config, force=force, reopen=reopen)
    if claimed == "complete":
        history = pd.read_csv(check_recorded(out / "history.csv"))
        return TrainResult(history, run["trainable_layer_names"],
                           run["trainable_params"], run["path"], engine=run["engine"],
                           resumed_from=len(history), out_dir=out)
    if checkpoints.latest_checkpoint(out) is not None and not resume:
        raise InputError(f"{out}: holds checkpoints of an earlier run; resume it (--resume) or "
                         f"choose another output directory")
    cache = image_cache_for(root, frames, cache_dir, config, progress)
    kept, _ = keep_readable(frames, cache)
    for s in needed:
        if len(kept[s]) == 0:
            raise InputError(f"{pairs_dir / f'{s}.csv'}: no pair left: every one has an image "
                             f"that failed to decode (see {cache.cache_dir / 'failed.csv'})")
    idx = {s: pair_indices(df, cache) for s, df in kept.items()}

    images, _ = backbone.network_inputs(cache.images, progress=progress,
                                        face_box=config.face_box, cache=cache)
    store = None
    if trunk_store is not None:  # what the features depend on beyond the network: the images
        store = (Path(trunk_store), {"weights": fp["weights"],
                                     "image_cache": file_digest(cache.cache_dir / "cache.json"),
                                     "face_box": config.face_box if backbone.aligns else None})
    result = train_siamese(backbone.core(config), n, images, idx["train"], idx["val"],
                           idx["test"], config=config, out_dir=out, resume=resume,
                           verbose=verbose, progress=progress, fingerprint=fp,
                           backbone=backbone, loss=loss, trunk_store=store)
    weights_desc, warning = backbone.describe_weights(config.weights, config.seed)
    dist, metrics = _fine_tuned_distances(config, n, result, kept, cache, out, weights_desc,
                                          warning)
    write_csv(out / "distances.csv", dist, float_format=DISTANCE_FLOAT_FORMAT)
    # Same layout as `mfr embed`'s summary.json: splits -> split -> metric -> statistics.
    write_json(out / "summary.json", {"trainable_layers": n, "metric_thesis": "sum_squared",
                                      "random_weights": config.weights is None,
                                      "weights_desc": weights_desc, "splits": metrics})
    complete(out, "train", fp, config=config,
             outputs=["history.csv", "final_trainable.h5", "distances.csv", "summary.json",
                      "embeddings", *(["margin_head.npz"] if loss.head is not None else [])],
             trainable_layers=n, trainable_layer_names=result.trainable_layers,
             trainable_params=result.trainable_params, path=result.path,
             epochs_trained=len(result.history), resumed_from_epoch=result.resumed_from,
             engine=result.engine, data_parallel=config.data_parallel, devices=result.devices,
             loss=loss.record(config),
             pairs_dir=str(pairs_dir.resolve()), cache_dir=str(Path(cache.cache_dir).resolve()),
             final_weights=f"final_trainable.h5 ({config.backbone}: trained layers only, "
                           f"legacy HDF5)",
             weights_licence=backbone.licence_note() if config.weights is not None else None,
             epoch_order=("P subjects x K images, mfr.training.image_batches.pk_epoch with "
                          "np.random.default_rng([seed, epoch])"
                          if loss.batches == "images_with_ids" else
                          "np.random.default_rng([seed, epoch]).permutation(n_train)"))
    return result
