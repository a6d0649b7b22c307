"""`mfr study`: every step of the study as an executed notebook, then REPORT.md/.html
(:mod:`mfr.study.runner`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mfr.commands._common import add_config_flags, apply_flags, given_config_flags
from mfr.core.config import MAX_LIST, MAX_SEED, StudyConfig
from mfr.core.readers.numbers import integer, integer_list, real
from mfr.study.executors import EXECUTORS

#: the fields `mfr study` has options of its own for (--profile, --data-root, --seeds), or that
#: name the study rather than set it
_OWN = ("profile", "data_root", "seeds")

HELP = "run the whole study (or one step) with papermill; write results/<profile>/REPORT.md"


def _seeds(text: str) -> str:
    """A comma list of seeds, each 0..MAX_SEED (the runner reads the text as the config does)."""
    integer_list(0, MAX_SEED, MAX_LIST)(text)
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="demo", metavar="PROFILE",
                        help="demo (offline, generated sample), thesis, balanced, mfr2, or a "
                             "YAML path; default demo")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="the study folder (default results/<profile>)")
    parser.add_argument("--only", default=None, metavar="STEP",
                        help="run only this step (partition, baseline, finetune_N<N> or "
                             "finetune, evaluation, gradcam, pairs)")
    parser.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                        help="the dataset folder, in place of the profile's data_root (the "
                             "same layout: e.g. a subset of RMFRD)")
    parser.add_argument("--force", action="store_true",
                        help="run every step again, even those that are up to date")
    parser.add_argument("--kernel", default="python3",
                        help="Jupyter kernel for the notebooks (default python3: this Python)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--seeds", type=_seeds, default=None, metavar="S[,S...]",
                        help=f"{StudyConfig.__dataclass_fields__['seeds'].metadata['help']} "
                             "(default the profile's)")
    group = parser.add_argument_group("executor (how the steps run; results do not depend on it)")
    group.add_argument("--executor", default="local", choices=EXECUTORS,
                       help="local: one step after the other here (default); ray: independent "
                            "steps at once as Ray tasks (pip install 'mfr[cluster]')")
    group.add_argument("--ray-address", default=None, metavar="ADDR",
                       help="a running Ray cluster (HOST:6379 or ray://HOST:10001, as `ray start "
                            "--head` prints); default: a Ray instance on this machine")
    group.add_argument("--num-gpus", type=real(0.0, 1024.0), default=None, metavar="G",
                       help="GPUs per step (default 1 where the cluster has GPUs, else 0; "
                            "0..1024, fractions share a GPU)")
    group.add_argument("--num-cpus", type=real(above=0.0, maximum=4096.0), default=None,
                       metavar="C", help="CPUs per step (default 1; more than 0, at most 4096)")
    group.add_argument("--max-retries", type=integer(0, 100), default=None, metavar="K",
                       help="runs of a step again when its Ray worker dies (default 2; 0..100)")
    # every other config field, as in `mfr train`: the profile's value unless given (the
    # study then runs on its own profile, written into the study folder as profile.yaml)
    add_config_flags(parser, *(f for f in StudyConfig.__dataclass_fields__ if f not in _OWN),
                     profile_flag=False)


def run(args: argparse.Namespace) -> int:
    from mfr.core.config import load_config
    from mfr.study.executors import get_executor
    from mfr.study.runner import run_study

    # the study's own options that share a field's name (--profile, --data-root, --seeds) are
    # passed as themselves, not as config flags
    overrides = {k: v for k, v in given_config_flags(args).items() if k not in _OWN}
    if overrides:  # each flag checked against the profile first: a bad value names its flag
        apply_flags(load_config(args.profile), overrides)

    executor = get_executor(args.executor, address=args.ray_address, num_gpus=args.num_gpus,
                            num_cpus=args.num_cpus, max_retries=args.max_retries)
    result = run_study(args.profile, args.out, force=args.force, only=args.only,
                       kernel=args.kernel, progress=not args.no_progress, seeds=args.seeds,
                       executor=executor, data_root=args.data_root,
                       overrides=overrides)
    ran = ", ".join(result.ran) or "nothing"
    skipped = ", ".join(result.skipped) or "nothing"
    print(f"ran: {ran}; skipped (up to date or not for this backend): {skipped}")
    if result.report is not None:
        print(f"report: {result.report} (and REPORT.html); executed notebooks in "
              f"{result.out_dir / 'notebooks'}")
    return 0
