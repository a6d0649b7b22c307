"""The thesis's test pairs against every pair of the same images: same networks, same subjects.

README's earlier reading of the thesis's method on RMFRD ("fine-tuning removes what separation
there was") came from one split (the thesis's: 25 test subjects of rmfrd-dev) and the thesis
protocol's test pairs: every genuine pair and as many impostors, the *first* ones in
enumeration order, so that a few unmasked photos carry every impostor pair. This script
separates the pair sampling from the rest: it trains the networks of that study again (the
thesis's partition of ``configs/rmfrd-dlib.yaml``, at N = 4, 15, 27, with the thesis's values
and with ``configs/rmfrd-dlib-tuned.yaml``'s, those `mfr search` chose; dlib's released network
beside) and scores each on two pair sets of the *same* test images:

- ``thesis``: the partition's test.csv (as in README's Table 5.1);
- ``all_pairs``: every unmasked x masked pair of those images (the pairs the thesis sampled
  from).

with subject-bootstrap 95% intervals (1000 resamples, seed 2021: the same draws for every
network). Runs under ``<splits>/thesis_split/`` and reuses the image cache, aligned faces and
trunk store of an `mfr splits` folder (``--splits``, default results/rmfrd_splits: run
``mfr splits --profile rmfrd-splits`` first, or they are computed here). Writes
``<splits>/sampling.json`` and ``sampling.md``.

    python benchmarks/rmfrd_test_sampling.py [--data-root ../shared/data/rmfrd-dev]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mfr.core.config import load_config  # noqa: E402
from mfr.core.outputs import versions, write_json, write_text  # noqa: E402

NS = (4, 15, 27)
#: profile -> its runs' name prefix (both have the thesis's partition: only lr and epochs differ)
PROFILES = {"rmfrd-dlib": "thesis", "rmfrd-dlib-tuned": "tuned"}
STATS = ("auc", "eer", "fnmr_at_fmr_1pct")


def _all_pairs(test: pd.DataFrame) -> pd.DataFrame:
    """Every unmasked x masked pair of the images of `test` (in sorted order)."""
    u = test[["unmasked_path", "unmasked_subject"]].drop_duplicates().sort_values("unmasked_path")
    m = test[["masked_path", "masked_subject"]].drop_duplicates().sort_values("masked_path")
    pairs = u.merge(m, how="cross")
    pairs["label"] = (pairs["unmasked_subject"] == pairs["masked_subject"]).astype(np.int64)
    return pairs.reset_index(drop=True)


def _metrics(run: Path, test: pd.DataFrame, resamples: int, seed: int) -> dict:
    from mfr.data.pairs import pair_indices
    from mfr.evaluation.distances import pair_distances
    from mfr.evaluation.embeddings import load_embeddings
    from mfr.evaluation.pair_sets import pair_set_metrics

    emb = load_embeddings(run / "embeddings")
    out = {}
    for name, pairs in (("thesis", test), ("all_pairs", _all_pairs(test))):
        idx = pair_indices(pairs, emb)
        frame = pairs.assign(sum_squared=pair_distances(emb.vectors, idx.u_idx, idx.m_idx,
                                                        "sum_squared"))
        m = pair_set_metrics(frame, ("sum_squared",), n_resamples=resamples, seed=seed)
        m = m["sum_squared"]
        out[name] = {"pairs": len(frame), "genuine": m["n_genuine"],
                     "impostor": m["n_impostor"],
                     "unmasked_images_in_impostors": int(
                         frame.loc[frame["label"] == 0, "unmasked_path"].nunique()),
                     **{s: m[s] for s in STATS},
                     "ci": {s: [m["ci"][s]["low"], m["ci"][s]["high"]] for s in STATS}}
    return out


def main() -> int:
    from mfr.study.steps import embed_step, partition_step, train_step

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "rmfrd-dev"))
    ap.add_argument("--splits", type=Path, default=ROOT / "results" / "rmfrd_splits")
    args = ap.parse_args()
    cfg = load_config("rmfrd-dlib", data_root=args.data_root)
    work = args.splits / "thesis_split"
    cache, store = args.splits / "cache", args.splits / "trunk_store"
    t0 = time.perf_counter()
    partition_step(cfg, work / "partition")
    test = pd.read_csv(work / "partition" / "test.csv")
    runs = {"pretrained": work / "pretrained"}
    embed_step(cfg, work / "partition", runs["pretrained"], split="val,test", cache_dir=cache,
               progress=False)
    for profile, prefix in PROFILES.items():
        pcfg = load_config(profile, data_root=args.data_root)
        for n in NS:
            runs[f"{prefix} N{n}"] = work / f"{prefix}_N{n}"
            train_step(pcfg, n, work / "partition", runs[f"{prefix} N{n}"], cache_dir=cache,
                       resume=True, progress=False, trunk_store=store)
    rows = {name: _metrics(run, test, cfg.bootstrap_resamples, cfg.seed)
            for name, run in runs.items()}
    seconds = round(time.perf_counter() - t0, 1)
    shown = os.path.relpath(os.path.abspath(args.data_root), ROOT)
    write_json(args.splits / "sampling.json", {
        "what": __doc__.split("\n")[0], "data_root": shown, "profiles": PROFILES,
        "test_subjects": int(pd.concat([test["unmasked_subject"], test["masked_subject"]])
                             .nunique()),
        "distance": "sum_squared", "bootstrap_resamples": cfg.bootstrap_resamples,
        "rows": rows, "versions": versions()})
    first = rows["pretrained"]
    lines = [
        "# The thesis's test pairs against every pair of the same images", "",
        f"Data: {shown}, the thesis's partition (profile rmfrd-dlib: its 25 test subjects, "
        f"`*.jpg` only); networks: dlib's released one, and the last N layers trained with the "
        f"thesis's values (thesis: SGD 1e-5, 8 epochs) or the search's (tuned: SGD 1e-4, 4 "
        f"epochs); distance "
        f"sum_squared; brackets: subject bootstrap, {cfg.bootstrap_resamples} resamples. "
        f"thesis: the partition's test pairs ({first['thesis']['genuine']} genuine, "
        f"{first['thesis']['impostor']} impostor, the impostors on "
        f"{first['thesis']['unmasked_images_in_impostors']} unmasked photos); all pairs: every "
        f"unmasked x masked pair of the same images ({first['all_pairs']['genuine']} / "
        f"{first['all_pairs']['impostor']}, on "
        f"{first['all_pairs']['unmasked_images_in_impostors']} unmasked photos).", "",
        "| network | AUC, thesis's pairs | AUC, all pairs | EER, thesis's pairs | EER, all pairs "
        "| FNMR at FMR 1%, thesis's pairs | FNMR at FMR 1%, all pairs |",
        "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        cells = [f"{r[p][s]:.3f} [{r[p]['ci'][s][0]:.3f}, {r[p]['ci'][s][1]:.3f}]"
                 for s in STATS for p in ("thesis", "all_pairs")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    write_text(args.splits / "sampling.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"{seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
