"""What a Grad-CAM map says, in numbers: the attention share above the mask line, with a
bootstrap CI, and a deletion test of whether the map means anything.

Attention share (RQ1): the fraction of a map's mass in the rows above the mask line
(:func:`mfr.data.faces.mask_line`), the map first resized to the image. 1 = all attention on the
unoccluded upper face; the share of a map spread evenly is the line's height fraction (about
0.55), so a share is read against that, not against 0.5. A map with no mass (all zero) has no
share (NaN) and is counted apart.

Deletion test (Petsiuk et al. 2018's idea, one step): grey out the k% of the image that the map
ranks highest, and separately k% chosen at random, and compare how much each changes the pair
distance. Greying = the preprocessed input set to 0, i.e. the pixel set to the channel mean the
network subtracts. The random region is the top k% of a random map drawn on the CAM's own grid
(uniform noise, upsampled the same way), so it is as blob-like as the map's region and exactly
as large; several seeded draws are averaged. Margin = |change(map region)| - mean over draws of
|change(random region)|: a map that means something changes the distance more than chance.
Magnitudes, not signed rises: greying a random region can lower a pair's distance, and a map
pointing where the score never looks (change 0) must not beat that. The signed changes are
reported too (greying what makes a pair match should raise its distance). A setting passes when
the mean margin over its images is > 0 (the CI shows whether that is more than noise); one that
does not pass is reported as failing, and its maps are not an answer to RQ1.

CIs: percentile bootstrap of the mean over images (resampling images with replacement,
`n_boot` resamples, ``numpy.random.default_rng(seed)``), 95% by default.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from mfr.core.errors import InputError

__all__ = [
    "attention_share",
    "bootstrap_ci",
    "deletion_test",
    "grey_out",
    "random_regions",
    "summarise",
    "top_region",
]


def attention_share(cam: np.ndarray, row: int) -> float:
    """Fraction of the (H, W) map's mass in rows ``0 .. row-1``; NaN when the map is all zero."""
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2:
        raise InputError(f"expected an (H, W) map, got shape {cam.shape}")
    if np.any(cam < 0):
        raise InputError("a Grad-CAM map is >= 0 (ReLU); got negative values")
    if not 0 <= row <= cam.shape[0]:
        raise InputError(f"mask line row {row} outside the map's 0..{cam.shape[0]} rows")
    total = cam.sum()
    return float(cam[:row].sum() / total) if total > 0 else float("nan")


def bootstrap_ci(values, seed: int, n_boot: int = 2000,
                 level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of the finite `values` and its percentile bootstrap CI
    (images resampled with replacement). NaNs for no values; (v, v, v) for one."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    a = (1.0 - level) / 2.0
    low, high = np.quantile(means, [a, 1.0 - a])
    return mean, float(low), float(high)


def _region_size(shape: tuple[int, int], fraction: float) -> int:
    if not 0.0 < fraction < 1.0:
        raise InputError(f"deletion fraction must be in (0, 1), got {fraction}")
    return max(1, int(round(fraction * shape[0] * shape[1])))


def top_region(cam: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean (H, W) mask of the ``round(fraction * H * W)`` pixels the map ranks highest
    (ties: raster order, so the result is deterministic)."""
    cam = np.asarray(cam)
    k = _region_size(cam.shape, fraction)
    order = np.argsort(-cam.ravel(), kind="stable")[:k]
    mask = np.zeros(cam.size, dtype=bool)
    mask[order] = True
    return mask.reshape(cam.shape)


def random_regions(shape: tuple[int, int], fraction: float, grid: tuple[int, int],
                   rng: np.random.Generator, draws: int) -> list[np.ndarray]:
    """`draws` random regions as large as :func:`top_region`'s: the top pixels of uniform
    noise on `grid` (the CAM's own resolution) upsampled to `shape`."""
    from mfr.explain.gradcam import upsample

    return [top_region(upsample(rng.random(grid).astype(np.float32), shape), fraction)
            for _ in range(draws)]


def grey_out(x: np.ndarray, mask: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """A copy of the preprocessed input (H, W, 3) with the masked pixels set to `fill`: the
    backbone's neutral input (:attr:`mfr.backbones.base.Preprocessing.neutral`: 0, the channel
    mean the preprocessing subtracted; mid-grey for a network that normalises raw pixels)."""
    out = np.array(x, dtype=np.float32, copy=True)
    out[np.asarray(mask, dtype=bool)] = fill
    return out


def deletion_test(embed: Callable[[np.ndarray], np.ndarray], x: np.ndarray, reference: np.ndarray,
                  cam: np.ndarray, grid: tuple[int, int], fraction: float,
                  rng: np.random.Generator, draws: int, fill: float = 0.0) -> dict[str, float]:
    """One image's deletion test.

    Args:
        embed: preprocessed inputs (n, H, W, 3) -> their L2-normalised embeddings (n, D).
        x: the image's preprocessed input (H, W, 3).
        reference: the partner's embedding (the pair's other image).
        cam: the image's map at the image size (H, W); NaNs out when it is all zero.
        grid: the map's native resolution (for the random regions).
        fill: the value a greyed pixel gets (:func:`grey_out`).

    Returns:
        ``distance`` (unchanged pair), ``distance_top`` (map region greyed),
        ``distance_random_mean`` / ``_sd`` (over `draws` random regions), the signed changes
        ``change_top`` and ``change_random`` (mean over draws), ``abs_change_random`` (mean
        of the draws' |change|) and ``margin`` = |change_top| - abs_change_random.
    """
    from mfr.explain.gradcam import pair_distance

    cam = np.asarray(cam)
    regions = random_regions(cam.shape, fraction, grid, rng, draws)  # drawn either way: the
    if not np.any(cam > 0):                                            # rng stays in step
        nan = float("nan")
        d0 = float(pair_distance(embed(np.asarray(x, np.float32)[None]), reference)[0])
        return {"distance": d0, "distance_top": nan, "distance_random_mean": nan,
                "distance_random_sd": nan, "change_top": nan, "change_random": nan,
                "abs_change_random": nan, "margin": nan}
    batch = np.stack([np.asarray(x, np.float32), grey_out(x, top_region(cam, fraction), fill),
                      *(grey_out(x, r, fill) for r in regions)])
    d = pair_distance(embed(batch), np.broadcast_to(reference, (len(batch), len(reference))))
    d0, d_top, d_rand = float(d[0]), float(d[1]), d[2:]
    abs_rand = float(np.abs(d_rand - d0).mean())
    return {"distance": d0, "distance_top": d_top,
            "distance_random_mean": float(d_rand.mean()),
            "distance_random_sd": float(d_rand.std(ddof=1)) if len(d_rand) > 1 else 0.0,
            "change_top": d_top - d0, "change_random": float(d_rand.mean()) - d0,
            "abs_change_random": abs_rand, "margin": abs(d_top - d0) - abs_rand}


def summarise(table: pd.DataFrame, seed: int, n_boot: int = 2000, level: float = 0.95,
              order: list[str] | None = None) -> pd.DataFrame:
    """One row per (setting, role) of a per-image table with columns ``setting``, ``label``,
    ``role``, ``share_above``, ``line_how``, ``line_fraction``, ``margin``: the share's mean
    with its bootstrap CI, median, how the lines were found, the deletion margin's mean with
    its CI, and ``maps_pass_deletion_test`` (mean margin > 0). Settings in `order` (default:
    sorted), roles sorted."""
    order = list(order) if order is not None else sorted(table["setting"].unique())
    rows = []
    for (setting, role), g in table.groupby(["setting", "role"], sort=True):
        share = g["share_above"].to_numpy(np.float64)
        s_mean, s_low, s_high = bootstrap_ci(share, seed, n_boot, level)
        m_mean, m_low, m_high = bootstrap_ci(g["margin"].to_numpy(np.float64), seed, n_boot, level)
        rows.append({
            "setting": setting, "label": g["label"].iloc[0], "role": role,
            "n_images": len(g), "n_zero_maps": int(np.isnan(share).sum()),
            "n_line_landmarks": int((g["line_how"] == "landmarks").sum()),
            "share_above_mean": s_mean, "share_above_ci_low": s_low,
            "share_above_ci_high": s_high,
            "share_above_median": float(np.nanmedian(share)) if np.isfinite(share).any()
            else float("nan"),
            "line_fraction_mean": float(g["line_fraction"].mean()),
            "deletion_margin_mean": m_mean, "deletion_margin_ci_low": m_low,
            "deletion_margin_ci_high": m_high,
            "maps_pass_deletion_test": bool(np.isfinite(m_mean) and m_mean > 0),
            "order": order.index(setting),
        })
    out = pd.DataFrame(rows)
    return out.sort_values(["order", "role"], kind="stable").drop(columns="order").reset_index(
        drop=True)
