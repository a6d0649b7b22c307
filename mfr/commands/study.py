"""`mfr study`: every step of the study as an executed notebook, then REPORT.md/.html
(:mod:`mfr.study`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the whole study (or one step) with papermill; write results/<profile>/REPORT.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="demo", metavar="PROFILE",
                        help="demo (offline, generated sample), thesis, balanced, mfr2, or a "
                             "YAML path; default demo")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="the study folder (default results/<profile>)")
    parser.add_argument("--only", default=None, metavar="STEP",
                        help="run only this step (partition, baseline, finetune_N<N> or "
                             "finetune, evaluation, gradcam, pairs)")
    parser.add_argument("--force", action="store_true",
                        help="run every step again, even those that are up to date")
    parser.add_argument("--kernel", default="python3",
                        help="Jupyter kernel for the notebooks (default python3: this Python)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from mfr.study import run_study

    result = run_study(args.profile, args.out, force=args.force, only=args.only,
                       kernel=args.kernel, progress=not args.no_progress)
    ran = ", ".join(result.ran) or "nothing"
    skipped = ", ".join(result.skipped) or "nothing"
    print(f"ran: {ran}; skipped (up to date or not for this backend): {skipped}")
    if result.report is not None:
        print(f"report: {result.report} (and REPORT.html); executed notebooks in "
              f"{result.out_dir / 'notebooks'}")
    return 0
