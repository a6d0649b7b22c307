"""Benchmark: open-set identification (NIST FRVT 1:N, NISTIR 8271) on the real-mask sets, with
unmasked galleries and masked probes, per backbone, beside the 1:1 numbers of the same photos.

Data: the development halves in ``../shared/data`` (``mfr2-dev/mfr2``: 27 people, MFR2's own
mask labels; ``m2fred-dev``: 22; ``rmfrd-dev``: 121), every person with both unmasked and
masked photos. The photos are face crops: no MTCNN crop first (``detect=False``); each backbone's
own face alignment runs (MobileFaceNet: ArcFace's five-point warp from MTCNN's landmarks, the
``cascade`` face box; dlib's ResNet: its 5-point chip in MTCNN's box, face box ``mtcnn``).
SENet50 is measured only where its VGGFace2 weights are on this machine (they are not here: the
report says so).

Protocol, per dataset and backbone, ``--splits`` seeded random splits of the people: with seed
2021 + i, the first half (rounded down) of a permutation of the sorted people is enrolled with
all their unmasked photos (several templates per identity, each identity ranked by its nearest); every masked photo of an enrolled
person is a mated search, every masked photo of the other half a non-mated search. Per split:
rank-1 and rank-5 (closed set: mated searches), the CMC, FNIR(N, 1, T) at the T where FPIR(N, T)
is 1% and 10% (:func:`mfr.evaluation.open_set.fnir_at_fpir`: T chosen on the split's own
non-mated searches), and the FNIR-FPIR curve. Reported: the mean over splits and the range.
Two policies for a photo where the backbone's face finder finds no face: ``skip`` (the gallery's
default: not enrolled, not searched; a mated probe so lost is a miss, as NIST counts a failure to
make a template) and ``keep`` (embedded from the fall-back: the template stretched onto the crop).
Beside it: a threshold calibrated on the gallery alone (``mfr identify --fpir``: the gallery's
own photos searched leave-one-identity-out) and the FPIR and FNIR the masked probes actually get
at it; and the 1:1 numbers of the same photos (every masked x unmasked pair of the dataset's
people: AUC, EER, on the same distance).

Every number goes through the gallery (:class:`mfr.gallery.store.Gallery`: ``add_embedded``,
``search``) and :func:`mfr.gallery.measure.gallery_searches`; rank-1 and both FNIRs of every
split are recomputed independently here (:func:`independent`: a distance matrix, each
identity's minimum, counts; plain numpy) and must agree, or the run stops.

Embeddings are computed once per backbone and dataset (``--cache``, default
``results/open_set/cache``, not committed) and reused by every split and policy.

    nice python benchmarks/open_set_real.py            # results/open_set/open_set.{json,md,png}
    python benchmarks/open_set_real.py --backbones mobilefacenet --datasets mfr2 --splits 2 \
        --out /tmp/os
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from mfr.core.outputs import versions, write_json, write_text  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DATASETS = {"mfr2": "mfr2-dev/mfr2", "m2fred": "m2fred-dev", "rmfrd": "rmfrd-dev"}
#: backbone -> its embedder's options here
BACKBONES = {"mobilefacenet": {"face_box": "cascade"}, "dlib_resnet": {"face_box": "mtcnn"},
             "senet50": {}}
TARGETS = {"fnir_at_fpir_1pct": 0.01, "fnir_at_fpir_10pct": 0.1}
CURVE = np.geomspace(0.005, 1.0, 41)
POLICIES = ("skip", "keep")
MAX_CMC = 10


# --------------------------------------------------------------------------- embeddings


def embed_dataset(emb, name: str, cache: Path):
    """(Dataset, Embedded of every image, in dataset order: no_face="keep"), cached."""
    from mfr.core.provenance import listing_digest
    from mfr.data.datasets import load_dataset
    from mfr.gallery.photos import Embedded, embed_photos
    from mfr.gallery.signature import signature

    ds = load_dataset(DATA / DATASETS[name], "balanced")
    paths = [str(ds.abspath(im)) for im in ds.images]
    key = hashlib.sha256(json.dumps([signature(emb), listing_digest(Path("/"), paths)],
                                    sort_keys=True).encode()).hexdigest()[:16]
    f = cache / f"{emb.name}_{name}_{key}.npz"
    if f.is_file():
        with np.load(f, allow_pickle=False) as z:
            e = Embedded(z["vectors"], z["norms"], [str(s) for s in z["status"]],
                         z["no_face"], [str(s) for s in z["finder"]],
                         [str(s) for s in z["notes"]])
            seconds = float(z["seconds"]) if "seconds" in z.files else None
        return ds, paths, e, seconds, True
    t0 = time.perf_counter()
    e = embed_photos(paths, emb, detect=False, no_face="keep")
    seconds = time.perf_counter() - t0
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(f, vectors=e.vectors, norms=e.norms, no_face=e.no_face,
             status=np.array(e.status), finder=np.array(e.finder), notes=np.array(e.notes),
             seconds=np.float64(seconds))
    return ds, paths, e, seconds, False


def with_policy(e, policy: str, emb):
    """The embeddings as a gallery with `policy` sees them: under "skip", a photo whose face
    finder found no face is not embedded (its status says so)."""
    from mfr.gallery.photos import Embedded

    if policy == "keep":
        return e
    box = getattr(emb, "face_box", None)
    status = [f"no face found ({emb.name}'s face finder, {box})" if nf and s == "ok" else s
              for s, nf in zip(e.status, e.no_face, strict=True)]
    return Embedded(e.vectors, e.norms, status, e.no_face, e.finder, e.notes)


# --------------------------------------------------------------------------- independent


def independent(gal_vec, gal_norm, gal_ids, probe_vec, probe_norm, probe_ok, probe_ids,
                enrolled, distance: str) -> dict:
    """rank-1 and FNIR at FPIR 1% / 10%, in plain numpy, from the embeddings alone."""
    enrolled = set(enrolled)
    p = probe_vec.astype(np.float64)
    g = gal_vec.astype(np.float64)
    if distance == "euclidean_raw":
        pr, gr = p * probe_norm[:, None], g * gal_norm[:, None]
        d = np.sqrt(np.maximum((pr ** 2).sum(1)[:, None] + (gr ** 2).sum(1)[None, :]
                               - 2 * pr @ gr.T, 0))
    else:  # sum_squared of unit rows
        d = 2.0 - 2.0 * (p @ g.T)
    names = sorted(set(gal_ids))
    per = np.stack([d[:, [i for i, x in enumerate(gal_ids) if x == n]].min(1) for n in names],
                   axis=1)
    mated = np.array([s in enrolled for s in probe_ids])
    hit1, mate_d = [], []
    for i, s in enumerate(probe_ids):
        if not mated[i]:
            continue
        if not probe_ok[i] or s not in names:
            hit1.append(False)
            mate_d.append(np.inf)
            continue
        m = per[i, names.index(s)]
        others = np.delete(per[i], names.index(s))
        hit1.append(bool((others > m).all()))
        mate_d.append(m if hit1[-1] else np.inf)
    nm_top = np.sort([per[i].min() if probe_ok[i] else np.inf
                      for i in range(len(probe_ids)) if not mated[i]])
    out = {"rank_1": float(np.mean(hit1))}
    n = len(nm_top)
    for key, x in TARGETS.items():
        i0 = int(np.floor(x * n + 1e-9))
        t = np.nextafter(nm_top[i0], -np.inf) if i0 < n and np.isfinite(nm_top[i0]) else np.inf
        out[key] = float(np.mean([not (md <= t) for md in mate_d]))
    return out


# --------------------------------------------------------------------------- one split


def one_split(emb, e, ds, paths, people, seed: int, policy: str) -> dict:
    from mfr.evaluation.open_set import fnir, fnir_at_fpir, fpir, open_set_metrics
    from mfr.gallery.decide import calibrate_fpir
    from mfr.gallery.measure import gallery_searches
    from mfr.gallery.store import Gallery

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(people))
    enrolled = sorted(people[i] for i in order[: len(people) // 2])
    pe = with_policy(e, policy, emb)
    subject = np.array([im.subject for im in ds.images])
    masked = np.array([bool(im.masked) for im in ds.images])
    t0 = time.perf_counter()
    g = Gallery(emb, detect=False, no_face=policy)
    for name in enrolled:
        rows = np.flatnonzero((subject == name) & ~masked)
        g.add_embedded(name, [paths[r] for r in rows], pe.take(rows))
    build = time.perf_counter() - t0
    prow = np.flatnonzero(masked & np.isin(subject, people))
    probes = pe.take(prow)
    t0 = time.perf_counter()
    s = gallery_searches(g, probes, subject[prow], enrolled)
    search = time.perf_counter() - t0
    m = open_set_metrics(s, TARGETS, ranks=(1, 5))
    gv, gn, gi = g.templates()
    check = independent(gv, gn, list(gi.astype(str)), probes.vectors, probes.norms, probes.ok,
                        list(subject[prow]), enrolled, g.distance)
    for key, v in check.items():
        got = m[key] if key == "rank_1" else m[key]["fnir"]
        if not np.isclose(got, v, rtol=0, atol=1e-12):
            raise AssertionError(f"independent check: {key} {got} (gallery) != {v} (numpy), "
                                 f"seed {seed}, policy {policy}")
    calibrated = {}
    for key, x in TARGETS.items():
        thr = calibrate_fpir(g, x)
        calibrated[key.replace("fnir_at_", "gallery_")] = {
            "threshold": thr.value, "gallery_fpir": thr.details["reached"],
            "probe_fpir": float(fpir(s, thr.value)), "probe_fnir": float(fnir(s, thr.value))}
    curve = [fnir_at_fpir(s, float(x))["fnir"] for x in CURVE]
    m["cmc"] = m["cmc"][:MAX_CMC]  # the report keeps the first ranks
    return {"seed": seed, "n_templates": g.n_templates,
            "n_identities_with_templates": len(set(gi)),
            "n_gallery_photos_skipped": int(len(g.skipped())),
            "n_probes_not_searched": int((~probes.ok).sum()),
            "metrics": m, "independent": check, "calibrated": calibrated,
            "curve_fnir": curve, "seconds": {"gallery": build, "search": search}}


def one_to_one(e, ds, distance: str) -> dict:
    """Every masked x unmasked pair of the dataset's people (photos embedded: all of them,
    the fall-back where no face was found), on the gallery's distance."""
    from mfr.evaluation.metrics import verification_metrics
    from mfr.gallery.raw_search import raw_distances

    subject = np.array([im.subject for im in ds.images])
    masked = np.array([bool(im.masked) for im in ds.images])
    ok = e.ok
    u, mk = np.flatnonzero(~masked & ok), np.flatnonzero(masked & ok)
    if distance == "euclidean_raw":
        d = raw_distances(e.vectors[mk], e.norms[mk], e.vectors[u], e.norms[u])
    else:
        d = 2.0 - 2.0 * (e.vectors[mk].astype(np.float64) @ e.vectors[u].astype(np.float64).T)
    labels = (subject[mk][:, None] == subject[u][None, :]).astype(int)
    m = verification_metrics(d.ravel(), labels.ravel())
    return {k: m.get(k) for k in ("auc", "eer", "fnmr_at_fmr_1pct", "n_genuine",
                                  "n_impostor")}


# --------------------------------------------------------------------------- summary


def _stats(values) -> dict | None:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return None
    return {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))}


def summarise(splits: list[dict]) -> dict:
    m = [s["metrics"] for s in splits]
    out = {"rank_1": _stats([x["rank_1"] for x in m]),
           "rank_5": _stats([x.get("rank_5") for x in m]),
           "cmc": [float(np.mean([x["cmc"][r] for x in m]))
                   for r in range(min(MAX_CMC, min(len(x["cmc"]) for x in m)))],
           "n_mated": _stats([x["n_mated"] for x in m]),
           "n_nonmated": _stats([x["n_nonmated"] for x in m]),
           "n_identities": _stats([x["n_identities"] for x in m]),
           "n_probes_not_searched": _stats([s["n_probes_not_searched"] for s in splits]),
           "n_gallery_photos_skipped": _stats([s["n_gallery_photos_skipped"] for s in splits]),
           "curve_fnir": [float(np.mean(c)) for c in zip(*(s["curve_fnir"] for s in splits),
                                                          strict=True)],
           "notes": sorted({n for x in m for n in x["notes"]})}
    for key in TARGETS:
        out[key] = _stats([x[key]["fnir"] for x in m if x[key]])
        out[key.replace("fnir", "fpir_reached")] = _stats([x[key]["fpir"] for x in m if x[key]])
        c = key.replace("fnir_at_", "gallery_")
        out[c] = {f: _stats([s["calibrated"][c][f] for s in splits])
                  for f in ("threshold", "gallery_fpir", "probe_fpir", "probe_fnir")}
    return out


def _pct(s: dict | None) -> str:
    if s is None:
        return "n/a"
    return f"{s['mean']:.1%} ({s['min']:.0%}-{s['max']:.0%})"


def markdown(report: dict) -> str:
    lines = ["# Open-set identification on real masks: unmasked gallery, masked probes", "",
             "NIST FRVT 1:N measures (NISTIR 8271) on the development halves of the real-mask "
             "sets in `../shared/data` (`benchmarks/open_set_real.py`; protocol in its "
             "docstring). Per dataset and backbone, "
             f"{report['splits']} seeded random splits of the people: half enrolled with their "
             "unmasked photos, every masked photo a search (mated for an enrolled person, "
             "non-mated for the other half). Mean over splits (range). FNIR at FPIR x: "
             "FNIR(N, 1, T) at the threshold where x of the split's non-mated searches return "
             "a candidate. No face found: `skip` (the default: not enrolled, not searched; a "
             "mated probe so lost is a miss) or `keep` (embedded from the fall-back). 1:1: "
             "every masked x unmasked pair of the same photos (`keep`).", ""]
    for name, why in report["not_run"].items():
        lines += [f"- **{name}**: not measured: {why}", ""]
    head = ("| dataset | backbone | photos (no face found) | no face | N | mated / non-mated | "
            "rank-1 | rank-5 | FNIR @ FPIR 1% | FNIR @ FPIR 10% | 1:1 AUC | 1:1 EER |")
    lines += [head, "|" + "---|" * 12]
    for r in report["results"]:
        s, o = r["summary"], r["one_to_one"]
        lines.append(f"| {r['dataset']} | {r['backbone']} | {r['n_photos']} "
                     f"({r['n_no_face_found']}) | {r['policy']} | "
                     f"{s['n_identities']['mean']:.0f} | {s['n_mated']['mean']:.0f} / "
                     f"{s['n_nonmated']['mean']:.0f} | {_pct(s['rank_1'])} | "
                     f"{_pct(s['rank_5'])} | {_pct(s['fnir_at_fpir_1pct'])} | "
                     f"{_pct(s['fnir_at_fpir_10pct'])} | {o['auc']:.3f} | {o['eer']:.3f} |")
    lines += ["", "## A threshold calibrated on the gallery alone (`mfr identify --fpir`)", "",
              "The gallery's own photos searched leave-one-identity-out set the threshold at "
              "FPIR 1% / 10%; the masked probes then get the FPIR and FNIR below (mean over "
              "splits, policy `skip`).", "",
              "| dataset | backbone | target | threshold | FPIR on the gallery | FPIR of "
              "masked probes | FNIR of masked probes |", "|" + "---|" * 7]
    for r in report["results"]:
        if r["policy"] != "skip":
            continue
        for key, label in (("gallery_fpir_1pct", "1%"), ("gallery_fpir_10pct", "10%")):
            c = r["summary"][key]
            lines.append(f"| {r['dataset']} | {r['backbone']} | {label} | "
                         f"{c['threshold']['mean']:.3f} | {_pct(c['gallery_fpir'])} | "
                         f"{_pct(c['probe_fpir'])} | {_pct(c['probe_fnir'])} |")
    lines += ["", "Every split's rank-1 and FNIRs were recomputed from the same embeddings in "
              "plain numpy (`independent` in the script) and agreed exactly.", ""]
    coarse = {}  # FPIR targets finer than one non-mated search of a split
    for r in report["results"]:
        for x in TARGETS.values():
            n = [sp["metrics"]["n_nonmated"] for sp in r["splits"]]
            if any(k * x < 1 for k in n):
                coarse.setdefault((x, r["dataset"]), []).extend(n)
    if coarse:
        lines += ["Notes:", ""]
        for (x, ds), n in sorted(coarse.items()):
            lines.append(f"- {ds}: {min(n)}-{max(n)} non-mated searches per split, so the "
                         f"smallest FPIR above 0 is 1/{max(n)} = {1 / max(n):.1%} or more, above "
                         f"{x:.0%}: its FNIR at FPIR {x:.0%} is the FNIR at FPIR 0")
        lines.append("")
    emb = ", ".join(f"{k} {v:.0f} s" for k, v in report["embedding_seconds"].items()
                    if v is not None)
    lines += [f"Run: {report['seconds']:.0f} s on {report['machine']} (embedding the photos, "
              f"once each, measured when first made: {emb}).", ""]
    return "\n".join(lines)


def figure(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(r["dataset"] for r in report["results"]))
    fig, axes = plt.subplots(2, len(sets), figsize=(4.2 * len(sets), 7.2), squeeze=False)
    colours = {"mobilefacenet": "tab:blue", "dlib_resnet": "tab:orange", "senet50": "tab:green"}
    for j, ds in enumerate(sets):
        a, b = axes[0, j], axes[1, j]
        for r in report["results"]:
            if r["dataset"] != ds:
                continue
            style = "-" if r["policy"] == "skip" else "--"
            label = f"{r['backbone']} ({r['policy']})"
            c = colours.get(r["backbone"], "grey")
            a.plot(CURVE, r["summary"]["curve_fnir"], style, color=c, label=label)
            cmc = r["summary"]["cmc"]
            b.plot(range(1, len(cmc) + 1), cmc, style, color=c, marker="o", ms=3, label=label)
        a.set_xscale("log")
        a.set_xlabel("FPIR (non-mated masked searches)")
        a.set_ylabel("FNIR (rank 1)")
        a.set_ylim(0, 1)
        a.set_title(f"{ds}: FNIR vs FPIR")
        a.grid(alpha=0.3)
        b.set_xlabel("rank")
        b.set_ylabel("identification rate (CMC)")
        b.set_ylim(0, 1)
        b.set_title(f"{ds}: CMC, mated masked searches")
        b.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Unmasked gallery, masked probes: mean over "
                 f"{report['splits']} splits (solid: no-face photos skipped; dashed: kept)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default=",".join(BACKBONES))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "open_set")
    ap.add_argument("--cache", type=Path, default=ROOT / "results" / "open_set" / "cache")
    ap.add_argument("--report-only", action="store_true",
                    help="write open_set.md and .png again from OUT/open_set.json")
    args = ap.parse_args(argv)
    if args.report_only:
        report = json.loads((args.out / "open_set.json").read_text())
        write_text(args.out / "open_set.md", markdown(report))
        figure(report, args.out / "open_set.png")
        return 0
    os.environ.setdefault("MFR_MOBILEFACENET_DIR",
                          str(ROOT.parent / "shared" / "models" / "insightface-mobilefacenet"))
    from mfr.api import load_embedder
    from mfr.backbones import get_backbone

    t_all = time.perf_counter()
    report: dict = {"splits": args.splits, "protocol": __doc__, "not_run": {}, "results": [],
                    "embedding_seconds": {}, "versions": versions(),
                    "machine": f"{platform.processor() or platform.machine()}, "
                               f"{os.cpu_count()} CPUs (shared), load {os.getloadavg()[0]:.1f}"}
    for bb in args.backbones.split(","):
        if bb == "senet50" and not get_backbone("senet50").pretrained_file().is_file():
            report["not_run"][bb] = ("its VGGFace2 weights (rcmalli_vggface_tf_notop_senet50.h5) "
                                     "are not on this machine, and it has no internet")
            continue
        emb = load_embedder(bb, **BACKBONES[bb])
        for name in args.datasets.split(","):
            ds, paths, e, seconds, cached = embed_dataset(emb, name, args.cache)
            report["embedding_seconds"][f"{bb}/{name}"] = seconds
            print(f"{bb} {name}: {len(paths)} photos, embedded in "
                  f"{seconds if seconds is not None else float('nan'):.0f} s"
                  + (" (cached)" if cached else ""), flush=True)
            u = ds.by_subject(False)
            mk = ds.by_subject(True)
            people = sorted(s for s in ds.subjects if u[s] and mk[s])
            distance = emb.default_distance
            o = one_to_one(e, ds, distance)
            for policy in POLICIES:
                splits = [one_split(emb, e, ds, paths, people, 2021 + i, policy)
                          for i in range(args.splits)]
                summ = summarise(splits)
                report["results"].append({
                    "dataset": name, "backbone": bb, "policy": policy, "distance": distance,
                    "embedder": {k: v for k, v in emb.describe().items()
                                 if k not in ("n_images", "n_no_face_detected", "n_failed")},
                    "n_people": len(people), "n_photos": len(paths),
                    "n_no_face_found": int(e.no_face.sum()),
                    "n_failed": int((~e.ok).sum()),
                    "summary": summ, "one_to_one": o,
                    # per split: its numbers (the FNIR-FPIR curve only in the summary)
                    "splits": [{k: v for k, v in sp.items() if k != "curve_fnir"}
                               for sp in splits]})
                print(f"  {policy}: rank-1 {_pct(summ['rank_1'])}, FNIR@FPIR1% "
                      f"{_pct(summ['fnir_at_fpir_1pct'])}, FNIR@FPIR10% "
                      f"{_pct(summ['fnir_at_fpir_10pct'])}; 1:1 AUC {o['auc']:.3f}",
                      flush=True)
    report["seconds"] = time.perf_counter() - t_all
    report["curve_fpir"] = [float(x) for x in CURVE]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "open_set.json", report)
    write_text(args.out / "open_set.md", markdown(report))
    figure(report, args.out / "open_set.png")
    print(f"wrote {args.out}/open_set.json, .md, .png ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
