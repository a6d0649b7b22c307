"""The verification steps: two photos (`mfr verify`), or a CSV of photo pairs as Table 5.2
(notebook 06)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mfr.core.errors import InputError, MissingError
from mfr.core.outputs import write_csv, write_text
from mfr.core.precision import with_precision
from mfr.core.provenance import (
    claim,
    complete,
    file_digest,
    marks_its_runs,
)
from mfr.core.run_record import read_run
from mfr.study.steps.inputs import require_complete


def verify_embedder(embedder: str = "senet50", model: str | Path | None = None,
                    weights: str | None = "vggface2", preprocessing: str | None = None,
                    seed: int = 2021, progress: bool = True, **settings):
    """The embedder `mfr verify` and notebook 06 compare with: a backbone (its generic
    embedder) from a run folder (`model`: an `mfr embed` or `mfr train` run of it, its network
    as the run left it) or from `weights` (its released ones, a weights file, None = seeded
    random init) with `preprocessing` and its own `settings` (``face_box``, ``pooling``); or a
    reference embedder (``dlib_reference``: dlib's own C++). The weights are made sure of
    (found or downloaded) before any slow work."""
    from mfr.backbones import BACKBONES, get_backbone
    from mfr.backbones.embedders import embedder_names, get_embedder

    if embedder not in BACKBONES:
        if model is not None:
            raise InputError(f"--model is not an option of {embedder}: it is a senet50 option, "
                             f"as of every backbone's embedder ({', '.join(BACKBONES)}: an "
                             f"`mfr embed` or `mfr train` run folder)")
        return get_embedder(embedder)
    if model is not None:
        require_complete(Path(model), "run")
        return get_embedder(embedder, run_dir=model, seed=seed)
    emb = get_embedder(embedder, weights=weights, preprocessing=preprocessing, seed=seed,
                       **settings)
    try:
        get_backbone(embedder).check_weights(emb.weights, progress)
    except MissingError as e:
        others = [n for n in embedder_names() if n != embedder]
        raise MissingError(f"{e}; or verify with another --embedder ({', '.join(others)})"
                           ) from None
    return emb


@with_precision
def verify_step(image_a: str | Path, image_b: str | Path, embedder: str = "senet50",
                model: str | Path | None = None, weights: str | None = "vggface2",
                preprocessing: str | None = None, seed: int = 2021,
                threshold: float | str | Path | None = None, detect: bool = True,
                progress: bool = True, *, precision: str = "float32", **settings):
    """Are two photos of the same person (`mfr verify IMG_A IMG_B`)? The faces found and cropped
    (MTCNN; `detect` False: the whole images), embedded with :func:`verify_embedder`'s model,
    compared with its own distance and decided at `threshold` (a number, a thresholds.json,
    or None: the model's study calibration, dlib's documented tolerance, else no decision).
    Reads run folders, writes nothing. Returns a :class:`mfr.verify.photos.Verification`.
    `precision`: the network's (:mod:`mfr.core.precision`; the backbones'). `settings`: the
    backbone's own (``pooling``, ``face_box``)."""
    from mfr.evaluation.thresholds import parse_threshold
    from mfr.verify.photos import read_photo, verify_pair

    spec = parse_threshold(threshold) if isinstance(threshold, str) else threshold
    for image in (image_a, image_b):  # a wrong path fails before any model is loaded
        read_photo(image)
    emb = verify_embedder(embedder, model, weights, preprocessing, seed, progress, **settings)
    return verify_pair(image_a, image_b, emb, spec, detect)


@marks_its_runs
@with_precision
def verify_pairs_step(pairs_csv: str | Path, out_dir: str | Path, embedder: str = "dlib_reference",
                      model: str | Path | None = None, weights: str | None = "vggface2",
                      preprocessing: str | None = None, seed: int = 2021,
                      threshold: float | str | Path | None = None, detect: bool = True,
                      title: str | None = None, force: bool = False, progress: bool = True,
                      *, precision: str = "float32"):
    """Table 5.2 for a CSV of photo pairs (notebook 06): each pair's distance and decision as
    :func:`verify_step` makes them, each unique image prepared and embedded once. `pairs_csv`
    may also be a partition folder: five genuine and five impostor pairs of its test photos
    (:func:`mfr.verify.pairs.partition_photo_pairs`, picked with `seed`), paths written
    relative to its data root.

    Writes into `out_dir`: ``table_5_2.csv`` (a row per pair: paths -- relative to the CSV's folder where
    below it --, label, distance, threshold,
    decision, correct, note), ``table_5_2.md`` (with the model, distance, threshold source and
    the thesis's Table 5.2 for reference), ``table_5_2.png`` (the faces side by side),
    ``run.json``. Returns the :class:`mfr.verify.pairs.PairsVerification`.
    """
    from mfr.backbones import BACKBONES, get_backbone
    from mfr.core.outputs import atomic_path
    from mfr.evaluation.thresholds import parse_threshold
    from mfr.verify.figures import pairs_figure
    from mfr.verify.pairs import (
        pairs_markdown,
        partition_photo_pairs,
        read_pairs_csv,
        relative_path,
        relative_paths,
        verify_pairs,
    )
    from mfr.verify.photos import CROP_SCALE

    csv = Path(pairs_csv)
    if csv.is_dir():  # a partition: photo pairs of its test split
        pairs, base = partition_photo_pairs(csv, seed=seed)
        rel = relative_paths(pairs, base).to_csv(index=False)
        digest = hashlib.sha256(rel.encode())
        source = {"partition": file_digest(csv / "test.csv"), "pairs": digest.hexdigest()}
        csv = csv / "test.csv"
        title = title or f"Photo pairs of the test split ({csv.parent.name})"
    else:
        pairs = read_pairs_csv(csv)
        base = csv.parent.resolve()  # paths below the CSV's folder are written relative to it
        source = file_digest(csv)
    spec = parse_threshold(threshold) if isinstance(threshold, str) else threshold
    emb = verify_embedder(embedder, model, weights, preprocessing, seed, progress)
    images = sorted(set(pairs["image_a"]) | set(pairs["image_b"]))
    run = read_run(model, lenient=True) if model is not None else None
    # the images by content (a pairs table holds few): the same drawn faces in another
    # temporary folder are the same input
    fp = {"pairs": source,
          "images": {relative_path(img, base): file_digest(img) if Path(img).is_file() else None
                     for img in images},
          "embedder": embedder, "detect": detect, "crop_scale": CROP_SCALE,
          "model": {"run": (run or {}).get("fingerprint"),
                    "trained": (run or {}).get("outputs", {}).get("final_trainable.h5")}
          if model is not None else None,
          "weights": get_backbone(embedder).weights_fingerprint(emb.weights, emb.seed)
          if embedder in BACKBONES else None,
          "preprocessing": getattr(emb, "preprocessing", None), "precision": precision,
          "threshold": (f"file sha256:{file_digest(spec)}" if isinstance(spec, Path)
                        and spec.is_file() else spec)}
    out = Path(out_dir)
    claim(out, "verify", fp, force=force, reopen=True)
    result = verify_pairs(pairs, emb, spec, detect)
    write_csv(out / "table_5_2.csv", relative_paths(result.table, base), float_format="%.6f")
    write_text(out / "table_5_2.md", pairs_markdown(result, relative_to=base))
    fig = pairs_figure(result, title or f"Verified pairs: {csv.name}")
    with atomic_path(out / "table_5_2.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    complete(out, "verify", fp, outputs=["table_5_2.csv", "table_5_2.md", "table_5_2.png"],
             pairs_csv=str(csv.resolve()), embedder=result.embedder,
             threshold={"value": result.threshold.value, "source": result.threshold.source},
             distance=result.distance_name, preprocessing=result.preprocessing,
             n_pairs=len(result.table),
             n_pairs_without_distance=int(result.table["distance"].isna().sum()))
    return result

