"""`mfr study --executor ray`: the study's independent steps at the same time, as Ray tasks.

Every step whose dependencies are done is submitted at once (:func:`mfr.study.executors.
dependencies`): after the baseline, every fine-tuning setting and seed; after those, the
evaluation and Grad-CAM. Each task asks for ``num_cpus`` CPUs and ``num_gpus`` GPUs (default:
one where the cluster has GPUs, else none), so Ray runs as many at once as the machines hold,
and is retried ``max_retries`` times when its worker dies (a killed process, a lost node): the
retry finds the step's run folder ``running`` and redoes or resumes it
(:mod:`mfr.core.provenance`). A step that fails (its notebook raises) is not retried: the study
stops after the steps already running finish, as the local executor stops at that step.

The tasks run the step's notebook (:func:`mfr.study.runner.run_notebook`) on a Ray worker and write
into the study folder by its absolute path, so on a cluster the study folder, the data, the
weights (``~/.keras`` or ``$KERAS_HOME``) and this repository (its notebooks and configs) must
be at the same paths on every node (a shared filesystem), with mfr installed in each node's
Python. The driver alone decides what is up to date and writes ``study.json``, after each
step finishes: the same provenance and skip rules as the local executor.

``address``: None starts a Ray instance on this machine (or joins ``$RAY_ADDRESS``); else a
running cluster (``ray start --head`` prints it: ``HOST:6379``, or ``ray://HOST:10001`` for
Ray Client), checked to answer (a TCP connection, :data:`CONNECT_TIMEOUT_S`) before anything
starts.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from mfr.core.errors import InputError, MfrError, MissingError
from mfr.core.progress import progress_bar
from mfr.study.executors import Runner, Schedule, Step, StepContext, dependencies

__all__ = ["CONNECT_TIMEOUT_S", "INSTALL", "RayExecutor", "WorkerDiedError", "check_address",
           "parse_address"]

INSTALL = "pip install 'mfr[cluster]'"
CONNECT_TIMEOUT_S = 3.0
_PORTS = {"ray": 10001, "": 6379}  # Ray Client's default port, the GCS's


class WorkerDiedError(MfrError):
    """A step's Ray worker died on every try (a killed process, a lost node)."""


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a Ray address: ``ray://HOST[:PORT]`` (Ray Client) or ``HOST[:PORT]``
    (the head's GCS); None for ``auto`` / ``local`` (no host to check)."""
    text = address.strip()
    if text in ("auto", "local"):
        return None
    scheme, _, rest = text.rpartition("://")
    if scheme not in _PORTS:
        raise InputError(f"--ray-address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    host, _, port = rest.rstrip("/").rpartition(":") if ":" in rest else (rest, "", "")
    if not port:
        host, port = rest.rstrip("/"), str(_PORTS[scheme])
    if not host or not port.isdigit():
        raise InputError(f"--ray-address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    return host.strip("[]"), int(port)


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """MissingError (one line) unless something accepts a connection at `address`."""
    where = parse_address(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=timeout).close()
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise MissingError(f"--ray-address {address}: no Ray cluster answers at "
                           f"{where[0]}:{where[1]} ({why}, {timeout:g} s); start one there "
                           f"(`ray start --head`) or give the address it printed") from None


def _run_step(runner: Runner, step: Step, context: StepContext) -> float:
    """The Ray task: run one step; its seconds."""
    t0 = time.perf_counter()
    runner(step, context)
    return time.perf_counter() - t0


class RayExecutor:
    """Independent steps at the same time as Ray tasks (see the module docstring).

    Args:
        address: a running cluster's address; None: a Ray instance on this machine.
        num_gpus: GPUs per step; None: 1 where the cluster has a GPU, else 0.
        num_cpus: CPUs per step.
        max_retries: times a step is run again when its worker dies.
        runner: runs one step on the worker (default: the driver's,
            :func:`mfr.study.runner.run_notebook`).
    """

    def __init__(self, address: str | None = None, num_gpus: float | None = None,
                 num_cpus: float | None = None, max_retries: int | None = None,
                 runner: Runner | None = None):
        self.address = address
        self.num_gpus = num_gpus
        self.num_cpus = 1.0 if num_cpus is None else num_cpus
        self.max_retries = 2 if max_retries is None else max_retries
        self.runner = runner
        if self.num_gpus is not None and self.num_gpus < 0:
            raise InputError(f"--num-gpus must be >= 0, got {self.num_gpus:g}")
        if self.num_cpus <= 0:
            raise InputError(f"--num-cpus must be > 0, got {self.num_cpus:g}")
        if self.max_retries < 0:
            raise InputError(f"--max-retries must be >= 0, got {self.max_retries}")
        if address is not None:
            parse_address(address)

    def check(self) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise MissingError(f"--executor ray needs Ray, which is not installed: "
                               f"{INSTALL}") from None
        if self.address is not None:
            check_address(self.address)

    def _connect(self) -> bool:
        """Join the cluster (or start a local instance); True when this call started it."""
        import ray

        if ray.is_initialized():
            return False
        try:
            ray.init(address=self.address, include_dashboard=False)
        except ConnectionError as e:
            raise MissingError(f"--ray-address {self.address}: "
                               f"{' '.join(str(e).split())[:300]}") from None
        return True

    def run(self, steps: Sequence[Step], schedule: Schedule, context: StepContext,
            runner: Runner) -> None:
        import ray

        started = self._connect()
        try:
            self._run(ray, steps, schedule, context, self.runner or runner)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray: Any, steps: Sequence[Step], schedule: Schedule,
             context: StepContext, runner: Runner) -> None:
        deps = dependencies(steps)
        gpus = self.num_gpus
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(_run_step).options(num_cpus=self.num_cpus, num_gpus=gpus,
                                             max_retries=self.max_retries,
                                             retry_exceptions=False)
        on_worker = replace(context, progress=False)  # one bar: the driver's
        pending, done, running = list(steps), set(), {}
        error: BaseException | None = None
        bar = progress_bar(None, context.progress, total=len(steps), desc="study", unit="step")
        tick = getattr(bar, "update", lambda n: None)
        while True:
            submitted = True
            while error is None and submitted:  # submit every step whose dependencies are done
                submitted = False
                for step in [s for s in pending if all(d in done for d in deps[s.name])]:
                    pending.remove(step)
                    todo = schedule.begin(step)
                    if todo is None:  # skipped: up to date, or not for this backend
                        done.add(step.name)
                        tick(1)
                        submitted = True
                    else:
                        running[task.remote(runner, todo, on_worker)] = step
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                step = running.pop(ref)
                try:
                    seconds = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - sorted out by _step_error
                    error = error or _step_error(ray, step, e, self.max_retries)
                    continue
                schedule.end(step, seconds)
                done.add(step.name)
                tick(1)
        getattr(bar, "close", lambda: None)()
        if error is not None:
            raise error
        if pending:  # every dependency is a chosen step earlier in plan order: cannot happen
            raise RuntimeError(f"steps never ready: {[s.name for s in pending]}")


def _step_error(ray: Any, step: Step, e: BaseException, max_retries: int) -> BaseException:
    """What the driver raises for a step that did not finish: the step's own one-line error
    (a failing notebook), a line for a worker that kept dying, else the exception (a bug)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, MfrError):
        return cause
    if isinstance(e, ray.exceptions.RayError) and not isinstance(e, ray.exceptions.RayTaskError):
        return WorkerDiedError(f"step {step.name}: its Ray worker died "
                              f"{max_retries + 1} time(s) ({type(e).__name__}); the finished "
                              f"steps are kept, run the study again to resume")
    return e
