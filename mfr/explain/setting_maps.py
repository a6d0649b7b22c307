"""Grad-CAM of a study's settings on the same genuine test pairs (`mfr gradcam`, notebook 05).

A study folder (what the demo and a full sweep write)::

    DIR/partition/    pair CSVs (test.csv: the pairs the images come from)
    DIR/baseline/     an `mfr embed` run (run.json: "command": "embed", a config)
    DIR/train_N<N>/   `mfr train` runs (run.json: trainable_layers, a config; final_trainable.h5)
    DIR/train_N<N>_s<seed>/  the same N with another seed (`mfr study --seeds`)

:func:`find_settings` finds them as the evaluation does (:func:`mfr.core.runs.discover_settings`:
baseline first, then N ascending; the seed replicates when asked for); :func:`run_gradcam` takes
`n_images` genuine test pairs (chosen with the seed: one per subject first, in a seeded order),
and for every setting and both images of each pair computes the Grad-CAM of the pair score
(:mod:`mfr.explain.gradcam`; the partner's embedding under the same model is the fixed reference), the
share above the mask line (:mod:`mfr.data.faces`, :mod:`mfr.explain.attention`) and the deletion test.
The mask lines depend on the image only, so they are found once.

Writes into `out_dir`: ``attention.csv`` (per image and setting), ``deletion.csv``,
``attention_summary.csv`` and ``.md`` (per setting and role, with bootstrap CIs and
``maps_pass_deletion_test``), ``overlays_masked.png``, ``overlays_unmasked.png``,
``attention_share.png``, ``run.json``. A pair whose image cannot be read is skipped, listed in
run.json, and the next candidate pair is taken.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mfr.core.errors import InputError, MissingError
from mfr.core.outputs import atomic_path, write_csv, write_text
from mfr.core.progress import progress_bar
from mfr.core.runs import Setting, discover_settings, read_setting, setting_label
from mfr.data.pairs import select_pairs
from mfr.explain import attention

if TYPE_CHECKING:
    from mfr.backbones.base import Backbone

__all__ = ["GradcamRun", "Setting", "find_settings", "read_setting", "run_gradcam",
           "select_pairs", "setting_label"]  # Setting, read_setting, setting_label: mfr.core.runs

ROLES = ("masked", "unmasked")
FLOAT_FORMAT = "%.6g"  # random-init distances can be ~1e-5: significant digits, not decimals


def find_settings(study_dir: str | Path, replicates: bool = False) -> list[Setting]:
    """The settings of a study folder, as the evaluation finds and orders them
    (:func:`mfr.core.runs.discover_settings`: by run.json, whatever the folder names), whether or
    not a run finished (the step refuses an unfinished one, naming it).

    `replicates`: also the seed replicates (``train_N<N>_s<seed>``). Off by default: the
    study's Grad-CAM step explains the study seed's runs and does not wait for the replicates,
    which may still be training beside it (:func:`mfr.study.runner.plan`)."""
    study = Path(study_dir)
    found = [s for s in discover_settings(study, usable=None) if replicates or not s.replicate]
    if not found:
        raise MissingError(f"{study}: no baseline/run.json and no train_N<N>/run.json "
                           f"(expected the run folders of `mfr embed` and `mfr train`)")
    return found


class _ImageSource:
    """Images by pair path: from an image cache that holds them, else decoded from the data
    root (:func:`mfr.data.images.load_image`), at the model's input size."""

    def __init__(self, cache_dirs: Sequence[Path], data_root: Path | None, size: int,
                 decoder: str):
        from mfr.data.image_cache import ImageCache

        self.caches = []
        for d in dict.fromkeys(Path(c) for c in cache_dirs):
            try:
                cache = ImageCache.open(d)
            except (FileNotFoundError, ValueError, OSError):
                continue
            if cache.size == size:
                self.caches.append(cache)
        self.data_root, self.size, self.decoder = data_root, size, decoder

    def get(self, path: str) -> np.ndarray:
        from mfr.data.images import load_image

        for cache in self.caches:
            if path in cache:
                return np.asarray(cache.images[cache.index_of([path])[0]])
        if self.data_root is None:
            raise MissingError(f"{path}: in no image cache, and no data root to read it from")
        return load_image(self.data_root / path, self.size, self.decoder)


@dataclass
class GradcamRun:
    """What :func:`run_gradcam` made (all of it is also on disk under `out_dir`)."""

    out_dir: Path
    settings: list[Setting]
    pairs: pd.DataFrame  # the explained pairs: pair, masked/unmasked path, subject
    attention: pd.DataFrame  # attention.csv
    deletion: pd.DataFrame  # deletion.csv
    summary: pd.DataFrame  # attention_summary.csv
    images: dict[str, np.ndarray]  # role -> uint8 (K, H, W, 3)
    lines: dict[str, list[tuple[int, str]]]  # role -> per image (row, how)
    maps: dict[str, dict[str, np.ndarray]]  # setting -> role -> (K, H, W) at the image size
    skipped: list[dict[str, str]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)  # what run.json says beside provenance


def _load_core(setting: Setting, backbone: Backbone):
    """The setting's network: its run folder's as the run left it, else its config's (the
    backbone's released weights, or the seeded random init)."""
    if setting.run_dir is not None:
        return backbone.load_run(setting.run_dir)
    return backbone.core(setting.config)


def _explain_setting(core, setting: Setting, backbone: Backbone, images: dict[str, np.ndarray],
                     layer: str, fraction: float, draws: int, seed: int, progress: bool):
    """Maps (at the image size), per-image distances and deletion results of one setting."""
    from mfr.explain.gradcam import embed_preprocessed, gradcam, upsample

    spec = backbone.preprocessing(setting.config.preprocessing)
    x = {r: backbone.preprocess(images[r], spec) for r in ROLES}
    emb = {r: embed_preprocessed(core, x[r]) for r in ROLES}
    partner = {"masked": "unmasked", "unmasked": "masked"}
    k, size = len(images["masked"]), images["masked"].shape[1:3]
    cams = {r: gradcam(core, x[r], emb[partner[r]], layer=layer) for r in ROLES}  # batched
    maps = {r: np.stack([upsample(c, size) for c in cams[r]]) for r in ROLES}
    raw_max = {r: cams[r].max(axis=(1, 2)) for r in ROLES}
    deletion = []

    def embed(batch):
        return embed_preprocessed(core, batch)

    for i in progress_bar(range(k), progress, desc=f"deletion {setting.name}", unit="pair"):
        for ri, r in enumerate(ROLES):
            # The same random regions for every setting: seeded by (seed, image, role) only.
            rng = np.random.default_rng([seed, i, ri])
            deletion.append({"role": r, "pair": i, **attention.deletion_test(
                embed, x[r][i], emb[partner[r]][i], maps[r][i], cams[r].shape[1:], fraction,
                rng, draws, spec.neutral)})
    return maps, raw_max, pd.DataFrame(deletion)


def _summary_markdown(summary: pd.DataFrame, settings: list[Setting], n_boot: int, level: float,
                      fraction: float, draws: int, layer: str) -> str:
    def ci(m, lo, hi, fmt="{:.3f}"):
        if not np.isfinite(m):
            return "n/a"
        return f"{fmt.format(m)} [{fmt.format(lo)}, {fmt.format(hi)}]"

    rows = ["| setting | image | n | share above line, mean [95% CI] | median | lines from "
            "landmarks | uniform map | deletion margin, mean [95% CI] | maps pass deletion test |",
            "|---|---|---|---|---|---|---|---|---|"]
    for s in summary.itertuples():
        rows.append(
            f"| {s.label} | {s.role} | {s.n_images}"
            + (f" ({s.n_zero_maps} zero maps)" if s.n_zero_maps else "")
            + f" | {ci(s.share_above_mean, s.share_above_ci_low, s.share_above_ci_high)}"
            f" | {s.share_above_median:.3f} | {s.n_line_landmarks}/{s.n_images}"
            f" | {s.line_fraction_mean:.3f}"
            f" | {ci(s.deletion_margin_mean, s.deletion_margin_ci_low, s.deletion_margin_ci_high, '{:.3g}')}"
            f" | {'yes' if s.maps_pass_deletion_test else '**NO**'} |")
    failing = summary[~summary.maps_pass_deletion_test]
    lines = ["# Grad-CAM: attention above the mask line", ""]
    if any(s.random_init for s in settings):
        lines += ["**Random initialisation** (no pre-trained weights): these maps show the "
                  "machinery, not what the thesis's model attends to.", ""]
    lines += rows + [""]
    if len(failing):
        lines += ["**Maps that fail the deletion test** (greying the region they rank highest "
                  "changes the pair distance no more than greying random regions of the same "
                  "size): "
                  + ", ".join(f"{r.label} ({r.role})" for r in failing.itertuples())
                  + ". Their attention shares are not an answer to RQ1.", ""]
    lines += [
        f"Share: fraction of the Grad-CAM mass (layer `{layer}`, ReLU, bilinearly resized to "
        "the image) in the rows above the mask line: halfway between the eyes' mean height and "
        "the nose tip (MTCNN landmarks), else a fixed fraction of the height. 'uniform map': "
        "the mean line height as a fraction, the share of a map spread evenly.",
        f"Deletion test: margin = |change of the pair distance| when the top {fraction:.0%} "
        f"of the map is greyed (set to the channel mean), minus the mean |change| over {draws} "
        f"random regions of the same size (top {fraction:.0%} of uniform noise on the map's "
        f"grid); pass = mean margin > 0 (deletion.csv has the signed changes).",
        f"95% CIs: percentile bootstrap of the mean over images ({n_boot} resamples, seeded)."
        if level == 0.95 else f"{level:.0%} CIs: percentile bootstrap ({n_boot} resamples).",
        ""]
    return "\n".join(lines)


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    return path


def _check_settings(settings: Sequence[Setting], n_images: int, random_draws: int,
                    layer: str | None) -> tuple[Backbone, str, int]:
    """The settings explained together: one backbone (resolved here, once), one input size,
    one face box; its Grad-CAM layer. Before any slow work."""
    from mfr.backbones import get_backbone

    if not settings:
        raise InputError("no setting to explain")
    if n_images < 1:
        raise InputError(f"n_images must be >= 1, got {n_images}")
    if random_draws < 1:
        raise InputError(f"random_draws must be >= 1, got {random_draws}")
    backbones = {s.config.backbone for s in settings}
    if len(backbones) != 1:
        raise InputError(f"the settings are of different backbones {sorted(backbones)}; explain "
                         f"them separately")
    backbone = get_backbone(backbones.pop())
    sizes = {s.config.image_size for s in settings}
    if len(sizes) != 1:
        raise InputError(f"the settings take different input sizes {sorted(sizes)}; explain "
                         f"them separately")
    boxes = {s.config.face_box for s in settings} if backbone.aligns else set()
    if len(boxes) > 1:
        raise InputError(f"the settings find faces with different face boxes {sorted(boxes)}; "
                         f"explain them separately")
    return backbone, layer or backbone.facts.gradcam_layer, sizes.pop()


def _image_source(settings: Sequence[Setting], pairs_dir: Path, data_root: str | Path | None,
                  size: int) -> tuple[_ImageSource, Path | None]:
    """Where the pairs' images are read: an image cache that holds them (``pairs_dir/cache``,
    the runs' ``cache_dir``), else the data root (default: the first run's recorded one)."""
    root = Path(data_root) if data_root is not None else None
    cache_dirs = [pairs_dir / "cache"]
    for s in settings:
        if s.run_dir is not None:
            meta = s.run
            if meta.get("cache_dir"):
                cache_dirs.append(Path(meta["cache_dir"]))
            cache_dirs.append(s.run_dir / "cache")
            if root is None and meta.get("data_root"):
                root = Path(meta["data_root"])
    return _ImageSource(cache_dirs, root, size, settings[0].config.decoder), root


def _pick_pairs(candidates: pd.DataFrame, source: _ImageSource, n_images: int, pairs_dir: Path
                ) -> tuple[pd.DataFrame, dict[str, np.ndarray], list[dict[str, str]]]:
    """The first `n_images` candidate pairs whose two images can be read, their images by
    role, and the skipped ones with the reason (one bad image never stops the run)."""
    picked, skipped = [], []
    imgs: dict[str, list[np.ndarray]] = {r: [] for r in ROLES}
    for row in candidates.itertuples():
        if len(picked) == n_images:
            break
        try:
            got = {r: source.get(getattr(row, f"{r}_path")) for r in ROLES}
        except (OSError, ValueError) as e:  # unreadable, corrupt, missing: skip, list, go on
            skipped.append({"masked_path": row.masked_path, "unmasked_path": row.unmasked_path,
                            "reason": str(e).splitlines()[0] if str(e) else type(e).__name__})
            continue
        picked.append(row)
        for r in ROLES:
            imgs[r].append(got[r])
    if not picked:
        raise InputError(f"{pairs_dir / 'test.csv'}: none of the genuine test pairs' images "
                         f"could be read (first: {skipped[0]['reason'] if skipped else '-'})")
    pairs = pd.DataFrame({"pair": range(len(picked)),
                          "subject": [p.masked_subject for p in picked],
                          "masked_path": [p.masked_path for p in picked],
                          "unmasked_path": [p.unmasked_path for p in picked]})
    images = {r: np.stack(imgs[r]) for r in ROLES}
    return pairs, images, skipped


def _mask_lines(images: dict[str, np.ndarray], fixed: float, progress: bool
                ) -> tuple[dict[str, list[tuple[int, str]]], dict[str, list[float]]]:
    """Each image's mask line (row, how it was found) and its face's detection confidence."""
    from mfr.data import faces

    lines: dict[str, list[tuple[int, str]]] = {r: [] for r in ROLES}
    confidence: dict[str, list[float]] = {r: [] for r in ROLES}
    for r in ROLES:
        for img in progress_bar(images[r], progress, desc=f"faces ({r})", unit="image"):
            face = faces.detect_largest_face(img)
            lines[r].append(faces.mask_line(img, fixed, face=face))
            confidence[r].append(face.confidence if face is not None else float("nan"))

    return lines, confidence


def _explain_settings(settings: Sequence[Setting], backbone: Backbone,
                      images: dict[str, np.ndarray],
                      pairs: pd.DataFrame, lines: dict[str, list[tuple[int, str]]],
                      confidence: dict[str, list[float]], layer: str, deletion_fraction: float,
                      random_draws: int, seed: int, progress: bool
                      ) -> tuple[list[dict[str, Any]], list[pd.DataFrame], dict[str, Any]]:
    """Each setting's network loaded in turn (one in memory at a time): its maps, the attention
    rows of every image and its deletion test."""
    size = images["masked"].shape[1]
    att_rows, del_frames, maps = [], [], {}
    for order, s in enumerate(settings):
        core = _load_core(s, backbone)
        layer_maps, raw_max, deletion = _explain_setting(
            core, s, backbone, images, layer, deletion_fraction, random_draws, seed, progress)
        del core
        gc.collect()
        maps[s.name] = layer_maps
        for r in ROLES:
            partner = "unmasked" if r == "masked" else "masked"
            for i in range(len(pairs)):
                row, how = lines[r][i]
                att_rows.append({
                    "order": order, "setting": s.name, "label": s.label, "role": r, "pair": i,
                    "subject": pairs.subject[i], "image_path": pairs[f"{r}_path"][i],
                    "partner_path": pairs[f"{partner}_path"][i],
                    "line_row": row, "line_fraction": row / size, "line_how": how,
                    "face_confidence": confidence[r][i],
                    "share_above": attention.attention_share(layer_maps[r][i], row),
                    "cam_max": raw_max[r][i]})
        del_frames.append(deletion.assign(setting=s.name, label=s.label, order=order))

    return att_rows, del_frames, maps


def _tables(att_rows: list[dict[str, Any]], del_frames: list[pd.DataFrame],
            settings: Sequence[Setting], deletion_fraction: float, random_draws: int, seed: int,
            n_boot: int, level: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """attention.csv, deletion.csv and attention_summary.csv as tables, in a fixed order."""
    att = pd.DataFrame(att_rows)
    dele = pd.concat(del_frames, ignore_index=True)
    dele = dele.merge(att[["setting", "role", "pair", "image_path"]], on=["setting", "role", "pair"])
    key = ["order", "role", "pair"]
    att = att.sort_values(key, kind="stable").reset_index(drop=True)
    dele = dele.sort_values(key, kind="stable").reset_index(drop=True)
    dele = dele.assign(fraction=deletion_fraction, random_draws=random_draws)[["setting", "label", "role", "pair", "image_path", "fraction", "random_draws",
                 "distance", "distance_top", "distance_random_mean", "distance_random_sd",
                 "change_top", "change_random", "abs_change_random", "margin"]]
    names = [s.name for s in settings]
    merged = att.merge(dele[["setting", "role", "pair", "distance", "margin"]],
                       on=["setting", "role", "pair"])
    summary = attention.summarise(merged, seed, n_boot, level, order=names)
    att = att.merge(dele[["setting", "role", "pair", "distance"]], on=["setting", "role", "pair"])
    att = att.drop(columns="order")

    return att, dele, summary


def _figures(out: Path, settings: Sequence[Setting], images: dict[str, np.ndarray],
             maps: dict[str, Any], lines: dict[str, list[tuple[int, str]]], pairs: pd.DataFrame,
             att: pd.DataFrame, summary: pd.DataFrame) -> list[Path]:
    """The overlays of each role and the attention-share plot."""
    from mfr.explain.figures import overlay_grid, plot_shares

    names = [s.name for s in settings]
    figures = []
    labels = {s.name: s.label for s in settings}
    for r in ROLES:
        passes = {s.name: bool(summary[(summary.setting == s.name) & (summary.role == r)]
                               .maps_pass_deletion_test.iloc[0]) for s in settings}
        shares = {s.name: att[(att.setting == s.name) & (att.role == r)].share_above.to_numpy()
                  for s in settings}
        fig = overlay_grid(images[r], {n: maps[n][r] for n in names}, lines[r], labels, passes,
                           shares, row_names=list(pairs.subject),
                           title=f"Grad-CAM of the {r} image of genuine pairs\n(score: minus "
                                 f"the distance to the {'unmasked' if r == 'masked' else 'masked'}"
                                 f" partner; dashed: mask line)")
        figures.append(_save(fig, out / f"overlays_{r}.png"))
    figures.append(_save(plot_shares(att, summary, names), out / "attention_share.png"))

    return figures


def run_gradcam(
    settings: Sequence[Setting],
    pairs_dir: str | Path,
    out_dir: str | Path,
    n_images: int = 4,
    seed: int = 2021,
    data_root: str | Path | None = None,
    deletion_fraction: float = 0.2,
    random_draws: int = 5,
    n_boot: int = 2000,
    level: float = 0.95,
    layer: str | None = None,
    fixed_fraction: float | None = None,
    progress: bool = True,
) -> GradcamRun:
    """Grad-CAM, attention shares and deletion test of `settings` on `n_images` genuine test
    pairs of `pairs_dir` (see the module docstring for what is written).

    Images come from an image cache that holds them (``pairs_dir/cache``, the runs'
    ``cache_dir``), else from `data_root` (default: the first run's recorded data root;
    :func:`mfr.study.steps.gradcam_step` passes the partition's)."""
    from mfr.core.integrity import check_recorded
    from mfr.data import faces
    from mfr.data.pairs import read_pairs
    from mfr.explain.gradcam import require_tensorflow

    require_tensorflow()  # before any slow work
    settings = list(settings)
    backbone, layer, size = _check_settings(settings, n_images, random_draws, layer)
    fixed = faces.FIXED_FRACTION if fixed_fraction is None else fixed_fraction
    pairs_dir, out = Path(pairs_dir), Path(out_dir)
    candidates = select_pairs(read_pairs(check_recorded(pairs_dir / "test.csv")), seed)
    source, root = _image_source(settings, pairs_dir, data_root, size)
    pairs, images, skipped = _pick_pairs(candidates, source, n_images, pairs_dir)
    # the images the network takes (dlib's face chips), explained and lined up at their size
    face_box = settings[0].config.face_box
    images = {r: backbone.align(images[r], face_box=face_box) for r in ROLES}
    lines, confidence = _mask_lines(images, fixed, progress)
    att_rows, del_frames, maps = _explain_settings(settings, backbone, images, pairs, lines,
                                                   confidence,
                                                   layer, deletion_fraction, random_draws, seed,
                                                   progress)
    att, dele, summary = _tables(att_rows, del_frames, settings, deletion_fraction,
                                 random_draws, seed, n_boot, level)

    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "attention.csv", att, float_format=FLOAT_FORMAT)
    write_csv(out / "deletion.csv", dele, float_format=FLOAT_FORMAT)
    write_csv(out / "attention_summary.csv", summary, float_format=FLOAT_FORMAT)
    write_text(out / "attention_summary.md", _summary_markdown(
        summary, settings, n_boot, level, deletion_fraction, random_draws, layer))

    figures = _figures(out, settings, images, maps, lines, pairs, att, summary)
    record = dict(
        pairs_dir=str(pairs_dir), data_root=str(root) if root else None,
        settings=[{"name": s.name, "label": s.label, "run_dir": str(s.run_dir) if s.run_dir
                   else None, "weights": s.config.weights, "random_init": s.random_init,
                   "trainable_layers": s.trainable_layers,
                   "preprocessing": s.config.preprocessing} for s in settings],
        layer=layer, n_images=len(pairs), n_images_requested=n_images, seed=seed,
        pairs=pairs.to_dict("records"), skipped_pairs=skipped,
        mask_line={"rule": "halfway between the eyes' mean y and the nose tip's y (MTCNN "
                           "landmarks of the largest face); else fixed fraction of the height",
                   "fixed_fraction": fixed},
        deletion={"fraction": deletion_fraction, "random_draws": random_draws,
                  "grey": "preprocessed input set to the backbone's neutral value (0: the "
                          "channel mean; raw input: mid-grey 127.5)",
                  "random_region": "top fraction of uniform noise on the map's grid, upsampled"},
        bootstrap={"n_boot": n_boot, "level": level, "resample": "images, with replacement",
                   "ci": "percentile"},
        figures=[p.name for p in figures])
    return GradcamRun(out, settings, pairs, att, dele, summary, images, lines, maps, skipped,
                      figures, record)
