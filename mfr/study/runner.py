"""`mfr study`: the whole study, one executed notebook per step, resumable and skip-aware.

A profile (``configs/<name>.yaml``) becomes a plan of steps; each step runs one notebook of
``notebooks/`` with papermill, which calls :mod:`mfr.study.steps` and writes one run folder:

==============  ====================  =========================================
step            notebook              writes (under the study folder)
==============  ====================  =========================================
partition       01_partition          ``partition/`` (and ``synthetic/``: demo)
baseline        02_baseline           ``baseline/`` (val + test), ``cache/``
finetune_N<N>   03_finetune           ``train_N<N>/``, one step per N
finetune_N<N>   03_finetune           ``train_N<N>_s<seed>/``: ``--seeds``, one step
_s<seed>                              per N and extra seed
evaluation      04_analysis           ``evaluation/``
gradcam         05_gradcam            ``gradcam/`` (TensorFlow backend only)
pairs           06_pairs              ``pairs/``: Table 5.2 (``table_5_2_pairs``)
==============  ====================  =========================================

Steps wait for the steps they read (``needs``) and for those they must follow (``after``: a
fine-tuning step follows the baseline, which builds the image cache they share). An executor
(:mod:`mfr.study.executors`) runs them: one by one in this process (``local``, the default), or as
Ray tasks, independent steps at the same time (``ray``); either way this process alone decides
what is up to date and writes the ledger.

Each executed notebook is kept in ``notebooks/``; ``study.json`` records, per step, its
parameters, the fingerprints of its inputs (the notebook, the config, the dataset listing or
the run records of the folders it reads) and its duration. A step is skipped when its record
matches and its run folder is complete (:mod:`mfr.core.provenance`); an interrupted study resumes at
the first step that is not. A failing notebook stops the study at that step, keeps every
finished one, and names the executed notebook that holds the error. ``REPORT.md`` and
``REPORT.html`` (:mod:`mfr.report.document`) gather every table and figure at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfr.core.config import CONFIG_DIR, StudyConfig, load_config
from mfr.core.errors import InputError, MfrError, MissingError
from mfr.core.numerics import numerics
from mfr.core.outputs import versions, write_json
from mfr.core.provenance import file_digest, listing_digest
from mfr.core.run_record import read_json_record, read_run
from mfr.core.runs import setting_dir_name

if TYPE_CHECKING:
    from mfr.study.executors import Executor, StepContext

__all__ = ["NOTEBOOK_DIR", "Step", "StudyResult", "plan", "run_notebook", "run_study",
           "step_names"]

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
LEDGER = "study.json"


class StudyStepError(MfrError):
    """A step's notebook failed; the message names the executed notebook with the error."""


@dataclass
class Step:
    """One notebook run: its parameters, the run folder it writes, the steps it reads."""

    name: str
    notebook: str
    parameters: dict[str, Any]
    run_dir: Path
    needs: tuple[str, ...] = ()
    tensorflow: bool = False  # needs the TensorFlow backend (tf-keras-vis, MTCNN)
    after: tuple[str, ...] = ()  # steps it must follow without reading their run folders

    @property
    def output_notebook(self) -> str:
        """The executed notebook's name: the notebook's, with N (and the seed) for a
        fine-tuning step: ``03_finetune_N10.ipynb``, ``03_finetune_N10_s2022.ipynb``."""
        stem = Path(self.notebook).stem
        if self.name.startswith("finetune_"):
            return f"{stem}_{self.name.removeprefix('finetune_')}.ipynb"
        return f"{stem}.ipynb"


@dataclass
class StudyResult:
    out_dir: Path
    ledger: dict[str, Any]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    report: Path | None = None


def _profile_arg(profile: str | Path) -> str:
    """The profile as the notebooks get it: a name in configs/, or an absolute YAML path."""
    p = Path(profile)
    return str(p.resolve()) if p.suffix in (".yaml", ".yml") else str(profile)


def extra_seeds(config: StudyConfig) -> list[int]:
    """The seeds ``config.seeds`` adds to the config's own seed, each once, ascending."""
    return sorted(set(config.seeds) - {config.seed})


def plan(config: StudyConfig, profile: str | Path, out_dir: str | Path) -> list[Step]:
    """The study's steps for `config` (loaded from `profile`), writing under `out_dir`.

    The config's seed runs every step; each extra seed of ``config.seeds`` adds one
    fine-tuning step per N (``finetune_N<N>_s<seed>``, run folder ``train_N<N>_s<seed>``), read
    by the evaluation (the spread across seeds); Grad-CAM explains the config seed's runs.
    """
    out = Path(out_dir).resolve()
    prof = _profile_arg(profile)
    pairs, cache = str(out / "partition"), str(out / "cache")
    finetunes = [f"finetune_N{n}" for n in config.trainable_layers]
    seeded = [(f"finetune_N{n}_s{seed}", n, seed) for n in config.trainable_layers
              for seed in extra_seeds(config)]
    steps = [
        Step("partition", "01_partition.ipynb",
             {"config": prof, "data_root": config.data_root, "out_dir": str(out)},
             out / "partition"),
        Step("baseline", "02_baseline.ipynb",
             {"config": prof, "pairs_dir": pairs, "out_dir": str(out / "baseline"),
              "cache_dir": cache, "split": "val,test"},
             out / "baseline", ("partition",)),
        *(Step(name, "03_finetune.ipynb",
               {"config": prof, "trainable_layers": n, "pairs_dir": pairs, "cache_dir": cache,
                "out_dir": str(out)},
               out / setting_dir_name(n), ("partition",), after=("baseline",))
          for name, n in zip(finetunes, config.trainable_layers, strict=True)),
        *(Step(name, "03_finetune.ipynb",
               {"config": prof, "trainable_layers": n, "seed": seed, "pairs_dir": pairs,
                "cache_dir": cache, "out_dir": str(out),
                "run_dir": str(out / setting_dir_name(n, seed))},
               out / setting_dir_name(n, seed), ("partition",), after=("baseline",))
          for name, n, seed in seeded),
        Step("evaluation", "04_analysis.ipynb", {"config": prof, "study_dir": str(out)},
             out / "evaluation", ("partition", "baseline", *finetunes,
                                  *(name for name, _, _ in seeded))),
        Step("gradcam", "05_gradcam.ipynb",
             {"study_dir": str(out), "n_images": config.gradcam_images, "seed": config.seed},
             out / "gradcam", ("partition", "baseline", *finetunes), tensorflow=True),
    ]
    if config.table_5_2_pairs is not None or config.data_root is None:
        # Table 5.2: photo pairs verified by the most fine-tuned model (the thesis: last 70);
        # a generated sample's study verifies drawn faces, already cropped
        last = max(config.trainable_layers)
        pairs_csv = config.table_5_2_pairs
        if pairs_csv == "test":  # photo pairs of the study's own test split
            pairs_csv = pairs
        steps.append(Step(
            "pairs", "06_pairs.ipynb",
            {"pairs_csv": str(Path(pairs_csv).expanduser().resolve()) if pairs_csv else None,
             "out_dir": str(out / "pairs"), "embedder": config.backbone,
             "model": str(out / setting_dir_name(last)), "seed": config.seed,
             # the study's own test photos are face crops already: no detection
             **({"detect": False} if config.table_5_2_pairs == "test" else {})},
            out / "pairs", ("evaluation", f"finetune_N{last}"),
            # MTCNN finds the faces in photos
            tensorflow=pairs_csv is not None and config.table_5_2_pairs != "test"))
    return steps


def step_names(steps: Sequence[Step]) -> list[str]:
    return [s.name for s in steps]


def _run_record(run_dir: Path) -> str | None:
    """A digest of what a run folder's run.json says made it and what it wrote."""
    run = read_run(run_dir, lenient=True)
    if run is None or run.get("status") != "complete":
        return None
    blob = json.dumps({"fingerprint": run.get("fingerprint"), "outputs": run.get("outputs")},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _inputs(step: Step, steps: dict[str, Step], config: StudyConfig, out: Path) -> dict[str, Any]:
    """Fingerprints of everything a step reads: its notebook, the config, and the dataset (the
    partition) or the run records of the folders it reads (every other step)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_STEP_INPUTS}
    inputs: dict[str, Any] = {"notebook": file_digest(NOTEBOOK_DIR / step.notebook),
                              "config": settings}
    if step.name == "partition":
        root = Path(config.data_root) if config.data_root else out / "synthetic"
        inputs["data"] = listing_digest(root) if root.is_dir() else None
    for need in step.needs:
        inputs[need] = _run_record(steps[need].run_dir)
    return json.loads(json.dumps(inputs, sort_keys=True, default=str))


#: config fields that change no step's inputs: ``seeds`` adds steps (it changes none), and
#: ``data_parallel`` is speed
_NOT_STEP_INPUTS = ("seeds", "data_parallel")


def _up_to_date(step: Step, record: dict[str, Any] | None, inputs: dict[str, Any],
                out: Path) -> bool:
    """The step ran before with these parameters and inputs, its run folder is complete and
    was written by its command, and its executed notebook is there."""
    run = read_run(step.run_dir, lenient=True) or {}
    return (record is not None and record.get("status") == "complete"
            and record.get("parameters") == step.parameters and record.get("inputs") == inputs
            and run.get("status") == "complete" and run.get("command") == _COMMANDS[step.notebook]
            and (out / "notebooks" / step.output_notebook).is_file())


#: the command each notebook's run folder records
_COMMANDS = {"01_partition.ipynb": "partition", "02_baseline.ipynb": "embed",
             "03_finetune.ipynb": "train", "04_analysis.ipynb": "evaluate",
             "05_gradcam.ipynb": "gradcam", "06_pairs.ipynb": "verify"}


def _tensorflow_backend() -> bool:
    import keras

    return keras.backend.backend() == "tensorflow"


def _check_can_run(config: StudyConfig, profile: str | Path) -> None:
    """Before any notebook: every setting the study will run is one its steps take (each N
    against the backbone's layers; the config's own checks ran when it was loaded), and the
    data and the weights a profile needs are there (one line saying what to fetch otherwise)."""
    from mfr.backbones import get_backbone

    backbone = get_backbone(config.backbone)
    try:
        backbone.check_trainable_layers(config.trainable_layers)
    except InputError as e:
        raise InputError(f"profile {Path(str(profile)).stem}: trainable_layers: {e}") from None
    if config.data_root is not None and not Path(config.data_root).is_dir():
        from mfr.data.datasets import dataset_names
        from mfr.data.fetch import dataset_dir

        # the dataset whose home ($MFR_DATA/<name>) holds the data root, else any of them
        root = Path(config.data_root).expanduser().absolute()
        homes = [n for n in dataset_names(fetchable=True)
                 if root.is_relative_to(dataset_dir(n).absolute())]
        name = homes[0] if homes else "|".join(dataset_names(fetchable=True))
        raise MissingError(
            f"{config.data_root}: no dataset here (profile {Path(str(profile)).stem}); "
            f"fetch it with `mfr data fetch {name}`, or unpack a download there "
            f"(`mfr data fetch {name} --from FILE`)")
    backbone.check_weights(config.weights, progress=True)


def _check_study_folder(out: Path) -> None:
    """A study folder is a study's, or new: never a run folder of a step (its ``run.json``
    says so), whose record a study inside it would leave wrong."""
    run = out / "run.json"
    if run.exists():
        run_record = read_run(out, lenient=True)
        command = run_record.get("command") if run_record is not None else None
        command = command or "a step"
        raise InputError(f"{out}: is the run folder of mfr {command} (see {run}), not a study "
                         f"folder; choose another --out")


def _ipc_kernel_manager(busy: dict[str, bool] | None = None):
    """A kernel manager that talks to its kernel over local sockets (IPC), not TCP: nothing
    on the network, and no plain-text warning from every kernel.

    Each kernel gets socket paths of its own (``$TMPDIR/mfr-kernel-<random>-<n>``): jupyter's
    default, ``kernel-ipc-<n>`` in the working directory, is picked by looking for free
    numbers, which two kernels started at once in the same study folder (the Ray executor)
    can both pick, and then talk to each other's kernel.

    `busy` (``{"busy": bool}``, kept by :func:`run_notebook`'s cell hooks): whether a cell is
    running. jupyter_client interrupts (SIGINT) every kernel it shuts down; a kernel that ran
    its last cell has nothing to interrupt, and one caught between messages logs
    ``KeyboardInterrupt caught in kernel.`` on stderr. So only a busy kernel (a study
    interrupted mid-cell) is interrupted, and given up to 5 s to end its cell (its step then
    marks its run) before it is asked to shut down."""
    import asyncio
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
        _quiet_shutdown = False

        @default("ip")
        def _ip_default(self) -> str:
            return os.path.join(tempfile.gettempdir(), f"mfr-kernel-{uuid.uuid4().hex[:16]}")

        async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            if busy is not None and busy.get("busy") and not now:
                # shut down mid-cell (the study was interrupted): stop the cell, and let it
                # end in order (its run marked) before the kernel is asked to go
                busy["stopped"] = True
                await super()._async_interrupt_kernel()
                for _ in range(100):
                    if not busy.get("busy"):
                        break
                    await asyncio.sleep(0.05)
            self._quiet_shutdown = busy is not None
            try:
                await super()._async_shutdown_kernel(now=now, restart=restart)
            finally:
                self._quiet_shutdown = False

        shutdown_kernel = _async_shutdown_kernel

        async def _async_interrupt_kernel(self) -> None:
            if not self._quiet_shutdown:
                await super()._async_interrupt_kernel()

        interrupt_kernel = _async_interrupt_kernel

    return IPCKernelManager


class StudyInterrupted(KeyboardInterrupt):
    """The study was interrupted (Ctrl-C, SIGTERM) while a step's notebook ran."""


def check_kernel(kernel: str) -> None:
    """A Jupyter kernel named `kernel` is installed; else a one-line MissingError saying how
    to install one (before any step runs)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise MissingError(_no_kernel(kernel)) from None


def _no_kernel(kernel: str) -> str:
    return (f"no Jupyter kernel named {kernel!r} (`jupyter kernelspec list` shows the installed "
            f"ones); install one with `python -m ipykernel install --user --name {kernel}` in "
            f"mfr's environment, or pass --kernel NAME")


def run_notebook(step: Step, context: StepContext) -> Path:
    """Run a step's notebook with papermill (the executors' default step runner, here or on
    a Ray worker); StudyStepError names the executed notebook on failure, StudyInterrupted
    says a cell was interrupted (Ctrl-C or SIGTERM to the study).

    The kernel runs in a fresh empty folder, never the study folder: the folder a kernel
    starts in is first on its import path (and IPython and matplotlib read their config files
    there), so a ``matplotlib.py`` or ``numpy.py`` in a study folder copied from elsewhere
    would run. Every path a notebook gets is absolute."""
    import shutil
    import signal
    import tempfile

    import papermill as pm
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import DeadKernelError

    out, kernel, progress = context.out_dir, context.kernel, context.progress
    nb_out = out / "notebooks" / step.output_notebook
    nb_out.parent.mkdir(parents=True, exist_ok=True)
    busy = {"busy": False}

    def running(**_: Any) -> None:
        busy["busy"] = True

    def ran(**_: Any) -> None:
        busy["busy"] = False

    _quiet_interrupted_cell(busy)
    _absolute_path_variables()  # the kernel starts elsewhere: its path variables must not move
    empty = tempfile.mkdtemp(prefix="mfr-kernel-cwd-")
    # nbclient sets its own SIGINT/SIGTERM handlers while a notebook runs and leaves
    # Python's defaults after it: the CLI's (an orderly end) are put back
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        pm.execute_notebook(str(NOTEBOOK_DIR / step.notebook), str(nb_out),
                            parameters=step.parameters, kernel_name=kernel, cwd=empty,
                            progress_bar=progress, log_output=False,
                            kernel_manager_class=_ipc_kernel_manager(busy),
                            on_cell_execute=running, on_cell_executed=ran, on_cell_error=ran)
    except pm.PapermillExecutionError as e:
        if e.ename == "KeyboardInterrupt":
            raise StudyInterrupted(f"step {step.name}; the executed notebook: {nb_out}") from None
        raise StudyStepError(f"step {step.name} failed ({e.ename}: "
                             f"{' '.join(str(e.evalue).split())[:300]}); the executed notebook "
                             f"with the error: {nb_out}") from None
    except DeadKernelError:
        if busy.get("stopped"):
            raise StudyInterrupted(f"step {step.name}; the executed notebook so far: "
                                   f"{nb_out}") from None
        raise StudyStepError(f"step {step.name} failed: its kernel died (killed, or out of "
                             f"memory); the executed notebook so far: {nb_out}") from None
    except NoSuchKernel:
        raise MissingError(_no_kernel(kernel)) from None
    finally:
        shutil.rmtree(empty, ignore_errors=True)
        if threading.current_thread() is threading.main_thread():
            for s, handler in handlers.items():
                if handler is not None:
                    signal.signal(s, handler)
    return nb_out


def _absolute_path_variables() -> None:
    """mfr's folder variables (``MFR_DATA``, ``KERAS_HOME``, each backbone's weights folder,
    e.g. ``MFR_MOBILEFACENET_DIR``) made absolute against this process's folder before a kernel
    starts in another: a relative one would name another folder there."""
    from mfr.backbones import backbone_names, get_backbone

    names = {"MFR_DATA", "KERAS_HOME"} | {
        v for v in (get_backbone(n).facts.weights.env_dir for n in backbone_names()) if v}
    for name in sorted(names):
        value = os.environ.get(name)
        if value and not os.path.isabs(os.path.expanduser(value)):
            os.environ[name] = os.path.abspath(os.path.expanduser(value))


def _write_profile(out: Path, config: StudyConfig) -> Path:
    """``out/profile.yaml``: `config` as a profile (its name kept), for a study run with
    config fields set over its profile's."""
    import yaml

    from mfr.core.outputs import write_text

    out.mkdir(parents=True, exist_ok=True)
    return write_text(out / "profile.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))


def _quiet_interrupted_cell(busy: dict[str, bool]) -> None:
    """An interrupted study (Ctrl-C in papermill's cell loop) leaves the cell's task to end
    on its own with the KeyboardInterrupt the kernel reports, and asyncio would print that
    task's traceback ("Task exception was never retrieved") after `mfr study` said it was
    interrupted: that one is dropped, everything else goes to asyncio's own handler."""
    from jupyter_core.utils import ensure_event_loop
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    def handler(loop: Any, context: dict[str, Any]) -> None:
        if busy.get("stopped") and isinstance(context.get("exception"),
                                              CellExecutionError | DeadKernelError):
            return
        loop.default_exception_handler(context)

    ensure_event_loop().set_exception_handler(handler)


def run_study(profile: str | Path = "demo", out_dir: str | Path | None = None, *,
              force: bool = False, only: str | None = None, kernel: str = "python3",
              progress: bool = True, seeds: Sequence[int] | str | None = None,
              executor: Executor | None = None,
              data_root: str | Path | None = None,
              overrides: Mapping[str, Any] | None = None) -> StudyResult:
    """Run (or resume) the study of `profile` in `out_dir` (default ``results/<profile>``).

    Args:
        force: run every step again from scratch (the notebooks get ``force=True``).
        only: run just this step (a step name, or ``finetune`` for every N); the others are
            neither run nor checked.
        kernel: the Jupyter kernel papermill starts (the venv's ``python3`` by default).
        seeds: more seeds for the fine-tuning steps (``config.seeds``; default the profile's).
        executor: runs the steps (:mod:`mfr.study.executors`): default the local executor, one step
            after the other in this process; :class:`mfr.study.executors.ray_executor.RayExecutor`
            runs independent steps at once as Ray tasks.
        data_root: the dataset folder, in place of the profile's ``data_root`` (e.g. a
            subset of RMFRD in RMFRD's layout, for a profile whose data root is the full set).
        overrides: config fields set over the profile's (`mfr study --arcface-scale 32 ...`):
            the study then runs on the profile with them, written into the study folder as
            ``profile.yaml`` (every step's notebook reads it).

    Returns:
        A :class:`StudyResult`; ``REPORT.md``/``REPORT.html`` are written unless `only`.
    """
    from mfr.study.executors import LocalExecutor, StepContext

    config = load_config(profile)
    if overrides:
        config = config.replace(**overrides)
    if data_root is not None:
        config = config.replace(data_root=str(Path(data_root).expanduser().resolve()))
    if seeds is not None:
        try:
            config = config.replace(seeds=seeds)
        except ValueError as e:
            raise InputError(str(e)) from None
    out = Path(out_dir) if out_dir is not None else Path("results") / config.profile
    out = out.resolve()
    _check_study_folder(out)
    if overrides:  # the profile as this study runs it, read by every step's notebook
        profile = _write_profile(out, config)
    steps = plan(config, profile, out)
    by_name = {s.name: s for s in steps}
    valid = step_names(steps)
    if only is not None and only not in valid and only != "finetune":
        raise InputError(f"unknown step {only!r}; the steps of profile {config.profile}: "
                         f"{', '.join(valid)} (or finetune: every N)")
    executor = executor or LocalExecutor()
    executor.check()  # e.g. Ray installed, its address answers: before anything starts
    if isinstance(executor, LocalExecutor) and executor.runner is None:
        check_kernel(kernel)  # here (a Ray worker's kernel is checked where it runs)
    _check_can_run(config, profile)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the kernels' TensorFlow: no banners
    out.mkdir(parents=True, exist_ok=True)
    ledger_path = out / LEDGER
    ledger = (read_json_record(ledger_path, "the ledger of `mfr study`")
              if ledger_path.is_file() else {})
    if ledger.get("profile") not in (None, config.profile):
        raise InputError(f"{out}: holds the study of profile {ledger['profile']} (see "
                         f"{ledger_path}); choose another --out")
    ledger.update(profile=config.profile, config=config.to_dict())
    ledger.setdefault("steps", {})
    result = StudyResult(out, ledger)
    chosen = [s for s in steps if only is None or s.name == only
              or (only == "finetune" and s.name.startswith("finetune_"))]
    schedule = _Ledger(ledger, ledger_path, by_name, config, out, force, result)
    try:
        executor.run(chosen, schedule, StepContext(out, kernel, progress), run_notebook)
    except BaseException as e:  # an error, Ctrl-C, SIGTERM: no step is left "running"
        schedule.unfinished(e)
        raise
    ledger["versions"] = versions()
    ledger["numerics"] = numerics()
    write_json(ledger_path, ledger)
    if only is None:
        from mfr.report.document import write_report

        result.report = write_report(out, config, ledger, steps)
    return result


@dataclass
class _Ledger:
    """The driver's side of running a step: whether it runs (:meth:`begin`) and its record in
    ``study.json`` (:meth:`begin`, :meth:`end`). Executors call it from the driver only."""

    ledger: dict[str, Any]
    path: Path
    steps: dict[str, Step]
    config: StudyConfig
    out: Path
    force: bool
    result: StudyResult

    def begin(self, step: Step) -> Step | None:
        """The step to run (its parameters as the notebook gets them), or None: skipped (not
        for this backend, or up to date)."""
        record = self.ledger["steps"].get(step.name)
        if step.tensorflow and not _tensorflow_backend():
            self.ledger["steps"][step.name] = {
                "status": "skipped", "parameters": step.parameters,
                "reason": "needs the TensorFlow backend (tf-keras-vis, MTCNN); this run used "
                          + os.environ.get("KERAS_BACKEND", "jax")}
            self.result.skipped.append(step.name)
            write_json(self.path, self.ledger)
            return None
        if not self.force and _up_to_date(step, record, _inputs(step, self.steps, self.config,
                                                                 self.out), self.out):
            self.result.skipped.append(step.name)
            return None
        # The study owns its run folders: a step recorded with other parameters or inputs
        # (stale, or a study committed or copied from elsewhere) replaces what its folder
        # holds; a step interrupted with these parameters resumes (training from its last
        # checkpoint); a step with no record lets its folder decide (up to date, or refused).
        interrupted = (record is not None
                       and record.get("status") in ("running", "failed", "interrupted")
                       and record.get("parameters") == step.parameters)
        replace_folder = self.force or (record is not None and not interrupted)
        params = {**step.parameters, **({"force": True} if replace_folder and "force" in
                                        _notebook_parameters(step.notebook) else {})}
        self.ledger["steps"][step.name] = {"status": "running", "parameters": step.parameters,
                                           "notebook": f"notebooks/{step.output_notebook}"}
        write_json(self.path, self.ledger)
        return replace(step, parameters=params)

    def unfinished(self, e: BaseException) -> None:
        """The study stopped (`e`): every step still recorded ``running`` becomes
        ``interrupted`` (Ctrl-C, a signal) or ``failed``, with the error, and so does its run
        folder when the notebook's kernel left it ``running`` and is gone
        (:func:`mfr.core.provenance.release_unfinished`). Resumed by the next `mfr study`."""
        from mfr.core.provenance import ending, release_unfinished

        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        why = ending(e)
        changed = False
        for name, record in self.ledger["steps"].items():
            if record.get("status") != "running":
                continue
            record.update(status=status, error=why)
            changed = True
            if name in self.steps:
                release_unfinished(self.steps[name].run_dir, f"mfr study: step {name} {status}"
                                                             f" ({why})")
        if changed:
            write_json(self.path, self.ledger)

    def end(self, step: Step, seconds: float) -> None:
        """Record a step that finished: complete, its duration and the inputs it ran on."""
        self.ledger["steps"][step.name].update(
            status="complete", seconds=round(seconds, 1),
            inputs=_inputs(step, self.steps, self.config, self.out))
        write_json(self.path, self.ledger)
        self.result.ran.append(step.name)


def _notebook_parameters(notebook: str) -> set[str]:
    """The names a notebook's parameters cell defines."""
    nb = json.loads((NOTEBOOK_DIR / notebook).read_text("utf-8"))
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"])
            return {line.split("=")[0].strip() for line in src.splitlines()
                    if "=" in line and not line.lstrip().startswith("#")}
    return set()


def profiles() -> list[str]:
    """The profiles in configs/."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
