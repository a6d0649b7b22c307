"""Benchmark: 1:N gallery search, exact (numpy) against faiss indexes re-ranked exactly
(:mod:`mfr.gallery.search`, :mod:`mfr.gallery.index`), on stand-in embeddings.

Galleries of 1k, 100k and 1M identities (one template each), d = 128 (MobileFaceNet's and
dlib's size), 1,000 probes, top 5. For each: the exact search's latency for one probe (median
and 90th percentile over single-probe calls of ``top_k``, everything included) and for the
1,000 probes in one call, and its peak numpy memory (tracemalloc); for each index: build time,
serialised size, resident memory added, the same latencies, and recall@5 / recall@1 against
the exact search (the fraction of the exact top 5 / top 1 identities that the index returns).
At ``--select-size`` (100k) several index kinds and settings are compared (the choice of the
default); at 1M the default (PQ fast-scan) and an HNSW graph.

Two distributions (``--distributions``):

- ``random``: gallery and probes uniform on the unit sphere (normalised Gaussians). The
  hardest case for an approximate index: every point's neighbours are nearly as far as any
  other point (in 128-d, cosines ~ N(0, 1/128)), so no partition or graph narrows the search.
- ``clustered``: closer to face embeddings, which are not uniform: 1,000 cluster centres
  uniform on the sphere; an identity is normalise(a c + g / sqrt(d)) with c a random centre,
  g standard normal and a = 0.656 (two identities of one cluster at cosine ~0.30, of two at
  ~0); half the probes are mated, normalise(x + 1.33 h / sqrt(d)) of a random enrolled
  identity x (cosine to it ~0.60, as a masked probe to its unmasked gallery photo), half
  non-mated, fresh identities drawn the same way.

Threads are pinned (``--threads``, default 1: numpy's BLAS through threadpoolctl, faiss's
OpenMP) so that a shared machine's timings mean something; the load average is recorded
before and after each size. ``--extra-dims`` repeats the exact search and the default index at
``--select-size`` for larger embeddings (d = 512, 2048), random only.

    nice python benchmarks/bench_gallery_search.py      # results/benchmarks/gallery_search_cpu.json
    python benchmarks/bench_gallery_search.py --sizes 1000 --distributions random --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from mfr.core.numerics import cpu_flags, cpu_model  # noqa: E402
from mfr.core.outputs import versions, write_json  # noqa: E402

CLUSTERS, CLUSTER_WEIGHT, PROBE_NOISE = 1000, 0.656, 1.33


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _normal(rng, n, d, chunk=1 << 17):
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, chunk):
        out[s:s + chunk] = rng.standard_normal((min(chunk, n - s), d), dtype=np.float32)
    return out


def make_data(kind: str, n: int, d: int, n_probes: int, seed: int):
    """(gallery, probes, mate row of each probe or -1) of one distribution (module docstring)."""
    rng = np.random.default_rng([seed, n, d, kind == "clustered"])
    if kind == "random":
        return _unit(_normal(rng, n, d)), _unit(_normal(rng, n_probes, d)), np.full(n_probes, -1)
    centres = _unit(_normal(rng, CLUSTERS, d))

    def identities(m):
        x = _normal(rng, m, d) / np.float32(np.sqrt(d))
        for s in range(0, m, 1 << 17):
            x[s:s + (1 << 17)] += CLUSTER_WEIGHT * centres[rng.integers(0, CLUSTERS,
                                                                        len(x[s:s + (1 << 17)]))]
        return _unit(x)

    gallery = identities(n)
    n_mated = n_probes // 2
    mates = rng.integers(0, n, n_mated)
    noisy = gallery[mates] + PROBE_NOISE * _normal(rng, n_mated, d) / np.float32(np.sqrt(d))
    probes = np.r_[_unit(noisy), identities(n_probes - n_mated)].astype(np.float32)
    return gallery, probes, np.r_[mates, np.full(n_probes - n_mated, -1)]


def _latencies(fn, probes: np.ndarray, n: int) -> dict:
    fn(probes[:1])  # warm
    times, cpu = [], time.process_time()
    for i in range(min(n, len(probes))):
        t = time.perf_counter()
        fn(probes[i:i + 1])
        times.append(time.perf_counter() - t)
    q = np.percentile(times, [10, 50, 90]) * 1e3
    return {"n": len(times), "p10_ms": round(float(q[0]), 3), "median_ms": round(float(q[1]), 3),
            "p90_ms": round(float(q[2]), 3),
            "cpu_share": round((time.process_time() - cpu) / sum(times), 2)}


def _batch(fn, probes: np.ndarray, repeats: int):
    """Wall seconds of `repeats` calls; ``cpu_share``: process CPU time over wall time (with
    one thread, below 1 means the process waited for a core: a busy machine)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn(probes)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {"seconds": [round(w, 3) for w in walls],
            "median_s": round(statistics.median(walls), 3),
            "cpu_share": round(sum(cpus) / sum(walls), 2)}, out


def _recall(got: np.ndarray, ref: np.ndarray) -> float:
    hits = [len(set(a.tolist()) & set(b.tolist())) / len(b) for a, b in zip(got, ref, strict=True)]
    return round(float(np.mean(hits)), 4)


def index_configs(n: int, d: int, select: bool) -> list[dict]:
    """The indexes measured at size n: every kind at the selection size, else the default
    and HNSW (1M) or the default alone."""
    from mfr.gallery.index import default_factory

    pq = {"family": "pq_fastscan", "factory": default_factory(d), "build": {},
          "sweep": [{"shortlist": r} for r in ((100, 300, 1000) if select else (300, 1000))]}
    hnsw = {"family": "hnsw", "factory": "HNSW32,Flat", "build": {"efConstruction": 80},
            "sweep": [{"shortlist": e, "params": {"efSearch": e}}
                      for e in ((64, 128, 256, 512, 1024) if select else (256, 512, 1024, 2048))]}
    if select:
        ivf = {"family": "ivf_pq_fastscan", "factory": f"IVF1024,{default_factory(d)}",
               "build": {}, "sweep": [{"shortlist": 1000, "params": {"nprobe": p}}
                                      for p in (32, 128, 512)]}
        sq8 = {"family": "sq8_flat", "factory": "SQ8", "build": {},
               "sweep": [{"shortlist": r} for r in (20, 100)]}
        return [pq, hnsw, ivf, sq8]
    return [pq, hnsw] if n >= 1_000_000 else [pq]


def run_size(kind: str, n: int, d: int, args, configs: list[dict]) -> dict:
    from mfr.gallery import search as S
    from mfr.gallery.index import SearchIndex

    load0 = os.getloadavg()
    t = time.perf_counter()
    gallery, probes, mates = make_data(kind, n, d, args.probes, args.seed)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    g = S.templates(gallery)
    prep_s = time.perf_counter() - t
    entry: dict = {"distribution": kind, "n_gallery": n, "dim": d, "n_probes": len(probes),
                   "k": args.k, "generate_s": round(gen_s, 2), "templates_s": round(prep_s, 3),
                   "gallery_mb": round(gallery.nbytes / 2**20, 1), "rss_mb": round(_rss_mb()),
                   "load_avg_before": [round(x, 2) for x in load0]}

    def exact(p):
        return S.top_k(p, g, args.k)

    lat = _latencies(exact, probes, args.single_exact)
    batch, ref = _batch(exact, probes, args.repeats)
    tracemalloc.start()
    exact(probes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    entry["exact"] = {"latency_1_probe": lat, "batch": batch,
                      "peak_numpy_mb_batch": round(peak / 2**20, 1)}
    if kind == "clustered":
        mated = mates >= 0
        entry["data_check"] = {
            "median_cos_probe_to_mate": round(float(np.median(
                np.einsum("ij,ij->i", probes[mated], gallery[mates[mated]]))), 3),
            "median_top1_cos_mated": round(float(np.median(ref.similarity[mated, 0])), 3),
            "median_top1_cos_nonmated": round(float(np.median(ref.similarity[~mated, 0])), 3),
            "exact_rank1_is_mate": round(float(np.mean(ref.rows[mated, 0] == mates[mated])), 4)}
    else:
        entry["data_check"] = {"median_top1_cos": round(float(np.median(ref.similarity[:, 0])),
                                                        3),
                               "median_top5_cos": round(float(np.median(ref.similarity[:, -1])),
                                                        3)}
    print(f"[{kind} n={n} d={d}] exact 1 probe {lat['median_ms']} ms, "
          f"{len(probes)} probes {batch['median_s']} s", flush=True)
    entry["indexes"] = []
    for cfg in configs:
        gc.collect()
        rss0 = _rss_mb()
        t = time.perf_counter()
        index = SearchIndex.build(g, cfg["factory"], shortlist=cfg["sweep"][0]["shortlist"],
                                  seed=args.seed, threads=args.threads,
                                  **({"build_params": cfg["build"]} if cfg["build"] else {}))
        build_s = time.perf_counter() - t
        rec = {"family": cfg["family"], "factory": cfg["factory"], "build_params": cfg["build"],
               "build_s": round(build_s, 2), "index_mb": round(index.nbytes / 2**20, 1),
               "rss_added_mb": round(_rss_mb() - rss0), "train_size": index.info["train_size"],
               "sweep": []}
        for setting in cfg["sweep"]:
            index.tune(setting.get("params"), setting["shortlist"])

            def approx(p, index=index):
                return S.top_k(p, g, args.k, method="index", index=index, threads=args.threads)

            lat = _latencies(approx, probes, args.single_index)
            batch, got = _batch(approx, probes, args.repeats)
            row = {**setting, "latency_1_probe": lat, "batch": batch,
                   "recall_at_5": _recall(got.identity_index, ref.identity_index),
                   "recall_at_1": _recall(got.identity_index[:, :1], ref.identity_index[:, :1]),
                   "distances_exact": bool(np.array_equal(
                       got.similarity[got.identity_index == ref.identity_index],
                       ref.similarity[got.identity_index == ref.identity_index]))}
            rec["sweep"].append(row)
            print(f"  {cfg['factory']} {setting}: 1 probe {lat['median_ms']} ms, "
                  f"batch {batch['median_s']} s, recall@5 {row['recall_at_5']}", flush=True)
        entry["indexes"].append(rec)
        del index
    entry["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return entry


def best_settings(results: list[dict], target: float) -> list[dict]:
    """Per (distribution, size, index): the fastest single-probe setting with recall@5 >=
    target, or the best recall when none reaches it."""
    out = []
    for e in results:
        for rec in e.get("indexes", []):
            ok = [s for s in rec["sweep"] if s["recall_at_5"] >= target]
            pick = (min(ok, key=lambda s: s["latency_1_probe"]["median_ms"]) if ok
                    else max(rec["sweep"], key=lambda s: s["recall_at_5"]))
            out.append({"distribution": e["distribution"], "n_gallery": e["n_gallery"],
                        "dim": e["dim"], "factory": rec["factory"],
                        "reaches_target": bool(ok),
                        "setting": {k: v for k, v in pick.items() if k in ("shortlist", "params")},
                        "latency_1_probe_ms": pick["latency_1_probe"]["median_ms"],
                        "batch_s": pick["batch"]["median_s"], "recall_at_5": pick["recall_at_5"],
                        "build_s": rec["build_s"], "index_mb": rec["index_mb"],
                        "exact_latency_1_probe_ms":
                            e["exact"]["latency_1_probe"]["median_ms"]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    ap.add_argument("--select-size", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--extra-dims", type=int, nargs="*", default=[512, 2048])
    ap.add_argument("--distributions", nargs="+", default=["random", "clustered"],
                    choices=["random", "clustered"])
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of the batch search")
    ap.add_argument("--single-exact", type=int, default=50, help="single-probe calls timed")
    ap.add_argument("--single-index", type=int, default=200)
    ap.add_argument("--recall-target", type=float, default=0.99)
    ap.add_argument("--seed", type=int, default=2021)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "results" / "benchmarks" / "gallery_search_cpu.json")
    args = ap.parse_args(argv)

    import faiss
    from threadpoolctl import threadpool_info, threadpool_limits

    from mfr.gallery.index import faiss_threads

    result: dict = {
        "benchmark": "gallery_search",
        "command": " ".join(["python", "benchmarks/bench_gallery_search.py", *(argv or
                                                                               sys.argv[1:])]),
        "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                    "affinity_cpus": len(os.sched_getaffinity(0)),
                    "simd": sorted(f for f in cpu_flags() if f.startswith(("avx", "fma", "amx"))),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                       / 2**30, 1),
                    "platform": platform.platform(), "niceness": os.nice(0),
                    "note": "a machine shared with other jobs: see each size's load averages"},
        "versions": {**versions(), "faiss": faiss.__version__,
                     "faiss_compile": faiss.get_compile_options()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "distributions": {
            "random": "gallery and probes: normalised standard Gaussians (uniform on the sphere)",
            "clustered": f"{CLUSTERS} centres uniform on the sphere; identity = normalise("
                         f"{CLUSTER_WEIGHT} c + g / sqrt(d)); mated probe = normalise(x + "
                         f"{PROBE_NOISE} h / sqrt(d)) of a random enrolled identity x (half the "
                         f"probes); non-mated probes: fresh identities"},
        "results": [],
    }
    with threadpool_limits(args.threads), faiss_threads(args.threads):
        result["versions"]["blas"] = [  # as pinned for the timings
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info() if p.get("user_api") == "blas"]
        result["versions"]["faiss_threads"] = faiss.omp_get_max_threads()
        for kind in args.distributions:
            for n in args.sizes:
                cfgs = index_configs(n, args.dim, n == args.select_size)
                result["results"].append(run_size(kind, n, args.dim, args, cfgs))
                result["best"] = best_settings(result["results"], args.recall_target)
                write_json(args.out, result)
                gc.collect()
        if "random" in args.distributions:
            for d in args.extra_dims:
                cfgs = index_configs(args.select_size, d, False)
                result["results"].append(run_size("random", args.select_size, d, args, cfgs))
                result["best"] = best_settings(result["results"], args.recall_target)
                write_json(args.out, result)
                gc.collect()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
