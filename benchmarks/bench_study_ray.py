"""Benchmark: the whole study under the Ray executor with 1 and with 2 local workers (and the
local executor), wall clock, on this machine.

Each run starts from an empty study folder (nothing to skip): a local Ray instance with
``num_cpus`` = the workers (each step asks for 1 CPU, so that many steps run at once), then
``mfr study --executor ray`` in-process. Checks that every run wrote the same bytes (pair CSVs,
distances, histories, metrics.json) and writes ``results/benchmarks/study_ray_<profile>.json``.

    python benchmarks/bench_study_ray.py [--profile demo] [--workers 1,2] [--local]
        [--embed-batch-size 16]

``--embed-batch-size`` runs a copy of the profile with fewer images per forward pass (speed
and memory only: not a setting any result depends on). On a 2-core, 24 GB machine it is
needed: at the demo's 64, one fine-tuning step peaks near 11 GB while it embeds, two at once
run the machine out of memory and Ray's memory monitor kills and retries them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from mfr.core.config import load_config  # noqa: E402
from mfr.core.outputs import versions, write_json  # noqa: E402
from mfr.core.runs import setting_dir_name  # noqa: E402


def _compared(out: Path, config) -> list[str]:
    rels = [f"partition/{s}.csv" for s in ("train", "val", "test")]
    rels += ["baseline/distances.csv", "evaluation/metrics.json"]
    rels += [f"{setting_dir_name(n)}/{f}" for n in config.trainable_layers
             for f in ("history.csv", "distances.csv")]
    return rels


def _digests(out: Path, rels: list[str]) -> dict[str, str]:
    return {r: hashlib.sha256((out / r).read_bytes().replace(str(out).encode(), b"<study>"))
            .hexdigest() for r in rels}


def _run(profile: str, out: Path, workers: int | None) -> dict:
    from mfr.study.runner import run_study

    if workers is None:
        t0 = time.perf_counter()
        result = run_study(profile, out, progress=False)
        return {"executor": "local", "wall_s": round(time.perf_counter() - t0, 1),
                "steps_s": {k: v.get("seconds") for k, v in result.ledger["steps"].items()}}
    import ray

    from mfr.study.executors.ray_executor import RayExecutor

    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=80 * 2**20)
    try:
        result = run_study(profile, out, progress=False, executor=RayExecutor())
    finally:
        ray.shutdown()
    return {"executor": "ray", "workers": workers, "wall_s": round(time.perf_counter() - t0, 1),
            "steps_s": {k: v.get("seconds") for k, v in result.ledger["steps"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--local", action="store_true", help="also the local executor")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--embed-batch-size", type=int, default=None,
                    help="images per forward pass (default the profile's)")
    args = ap.parse_args()
    config = load_config(args.profile)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    plans = ([None] if args.local else []) + [int(w) for w in args.workers.split(",")]
    runs, digests = [], []
    with tempfile.TemporaryDirectory(prefix="mfr-bench-ray-") as tmp:
        profile = args.profile
        if args.embed_batch_size is not None:
            config = config.replace(embed_batch_size=args.embed_batch_size)
            profile = Path(tmp) / f"{config.profile}.yaml"
            profile.write_text(yaml.safe_dump(config.to_dict()))
        for i, workers in enumerate(plans):
            out = Path(tmp) / f"run{i}"
            runs.append(_run(profile, out, workers))
            digests.append(_digests(out, _compared(out, config)))
            print(runs[-1], flush=True)
    ray_runs = {r["workers"]: r["wall_s"] for r in runs if r["executor"] == "ray"}
    record = {
        "benchmark": f"mfr study --profile {args.profile} from an empty folder: the Ray executor "
                     f"with 1 and 2 local workers (ray.init(num_cpus=W), 1 CPU per step)",
        "profile": config.to_dict(),
        "runs": runs,
        "speedup_2_over_1": (round(ray_runs[1] / ray_runs[2], 2)
                             if 1 in ray_runs and 2 in ray_runs else None),
        "byte_identical": all(d == digests[0] for d in digests),
        "machine": {"cpu_count": os.cpu_count(), "machine": platform.machine(),
                    "processor": platform.processor(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "versions": versions(),
    }
    out = args.out or ROOT / "results" / "benchmarks" / f"study_ray_{args.profile}.json"
    write_json(out, record)
    print(f"wrote {out}: speed-up {record['speedup_2_over_1']}, byte-identical "
          f"{record['byte_identical']}")


if __name__ == "__main__":
    main()
