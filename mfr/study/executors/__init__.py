"""How `mfr study` runs its steps: an executor takes the chosen steps in plan order and runs
each once the steps it depends on are done.

- ``local`` (:class:`LocalExecutor`, the default): one step after the other, in this process.
- ``ray`` (:class:`mfr.study.executors.ray_executor.RayExecutor`, ``pip install 'mfr[cluster]'``):
  every step whose dependencies are done runs at once as a Ray task, on this machine or a
  cluster's nodes.

The driver (:func:`mfr.study.runner.run_study`) keeps the decisions: before a step runs, the
executor asks it (``schedule.begin``: skipped as up to date or not for this backend, else the
step to run); when the step's runner returns, it tells it (``schedule.end``), and the driver
records the step in ``study.json``. The driver hands the executor its runner (the step's
notebook through papermill: :func:`mfr.study.runner.run_notebook`); an executor made with another
``runner`` runs that instead. Steps are :class:`mfr.study.runner.Step`: a name, the steps it reads
(``needs``) and the steps it must follow (``after``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mfr.core.errors import InputError
from mfr.core.progress import progress_bar

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "Runner", "Schedule", "Step",
           "StepContext", "dependencies", "get_executor"]

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class StepContext:
    """What a runner needs besides the step: where the study is, which kernel, progress bars."""

    out_dir: Path
    kernel: str = "python3"
    progress: bool = True


class Step(Protocol):
    """What an executor needs of a step (:class:`mfr.study.runner.Step`)."""

    name: str
    needs: tuple[str, ...]
    after: tuple[str, ...]


#: runs one step (its notebook) to the end; raises on failure
Runner = Callable[[Any, StepContext], Any]


class Schedule(Protocol):
    """The driver's side (:class:`mfr.study.runner._Ledger`)."""

    def begin(self, step: Step) -> Step | None: ...

    def end(self, step: Step, seconds: float) -> None: ...


class Executor(Protocol):
    def check(self) -> None:
        """Can it run at all (one-line MfrError if not)? Called before anything starts."""

    def run(self, steps: Sequence[Step], schedule: Schedule, context: StepContext,
            runner: Runner) -> None:
        """Run `steps` (plan order) with `runner` (unless the executor was made with its own),
        each after its dependencies among them."""


def dependencies(steps: Sequence[Step]) -> dict[str, list[str]]:
    """Each step's dependencies among `steps` (what it reads, and what it must follow); a
    dependency not among them (``mfr study --only``) is not waited for."""
    names = {s.name for s in steps}
    return {s.name: [d for d in (*s.needs, *s.after) if d in names] for s in steps}


class LocalExecutor:
    """Every step in this process, one after the other, in plan order (which respects the
    dependencies)."""

    def __init__(self, runner: Runner | None = None):
        self.runner = runner

    def check(self) -> None:
        return None

    def run(self, steps: Sequence[Step], schedule: Schedule, context: StepContext,
            runner: Runner) -> None:
        runner = self.runner or runner
        for step in progress_bar(steps, context.progress, total=len(steps), desc="study",
                                 unit="step"):
            todo = schedule.begin(step)
            if todo is None:
                continue
            t0 = time.perf_counter()
            runner(todo, context)
            schedule.end(step, time.perf_counter() - t0)


def get_executor(name: str = "local", **options: Any) -> Executor:
    """An executor by name: ``local`` (no options) or ``ray`` (the options of
    :class:`~mfr.study.executors.ray_executor.RayExecutor`)."""
    if name == "local":
        given = sorted(k for k, v in options.items() if v is not None)
        if given:
            raise InputError(f"{', '.join('--' + k.replace('_', '-') for k in given)}: "
                             f"options of --executor ray, not of the local executor")
        return LocalExecutor()
    if name == "ray":
        from mfr.study.executors.ray_executor import RayExecutor

        return RayExecutor(**options)
    raise InputError(f"unknown executor {name!r}; one of {', '.join(EXECUTORS)}")
