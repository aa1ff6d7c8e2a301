"""Launchers: how a run's worker process is started, watched and signalled, behind one interface.

Every launcher builds an argument list (never a shell string) and can :meth:`~Launcher.describe` the equivalent
shell command lines for the UI to show. ``local`` and ``torchrun`` start a child in a new session so that it outlives
the app or the command line that launched it and so that a stop signal reaches its whole process group; ``slurm``
submits through submitit (``cluster="local"`` runs the same SLURM-shaped job on this machine, which is how it is
tested).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from learngene.errors import LearngeneError
from learngene.runs import liveness
from learngene.runs.rundir import STDERR_LOG, STDOUT_LOG  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

WORKER_MODULE = "learngene.training.worker"
# For tests only: a stand-in worker module (same command line) for every launcher that is not given one
# explicitly. Read in one place, :func:`default_worker_module`.
WORKER_MODULE_ENV = "LEARNGENE_WORKER_MODULE"
# submitit clusters the slurm launcher accepts. submitit's in-process "debug" cluster only runs a job when its
# result is awaited, which a detached run never does, so it is not offered.
SLURM_CLUSTERS = ("slurm", "local")


def default_worker_module() -> str:
    """The worker module launchers run: ``$LEARNGENE_WORKER_MODULE`` (tests) or the real worker."""
    return os.environ.get(WORKER_MODULE_ENV) or WORKER_MODULE


# ------------------------------------------------------------------------------------------------ validation
# Every string that reaches a launcher ends up in an argument list, a batch script or a registry row: refuse
# anything that could start a new line or a new option there, when the launcher is built.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_SLURM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # partitions, accounts, QOS, job names
_SBATCH_KEY = re.compile(r"[a-z][a-z0-9_-]*")
_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)"
_ENDPOINT = re.compile(_HOST + r":(\d{1,5})")
_RDZV_ID = re.compile(r"[A-Za-z0-9_.-]+")
_RDZV_BACKEND = re.compile(r"[a-z][a-z0-9_-]*")
# sbatch options whose value is a SLURM name (checked against its grammar, not only for control characters).
_SLURM_NAME_OPTIONS = {"account", "qos", "partition", "job_name", "reservation"}


def check_text(what: str, value: Any) -> str:
    """``value`` as text; LearngeneError if it holds a newline or another control character."""
    text = str(value)
    if _CONTROL.search(text):
        raise LearngeneError(f"{what} contains a newline or control character ({text!r}): remove it")
    return text


def _check_pattern(what: str, value: Any, pattern: re.Pattern[str], expected: str) -> str:
    text = check_text(what, value)
    if not pattern.fullmatch(text):
        raise LearngeneError(f"invalid {what} {text!r}: expected {expected}")
    return text


def check_worker_module(module: str) -> str:
    """A dotted module name (it becomes ``python -m MODULE``)."""
    return _check_pattern("worker module", module, _MODULE, "a dotted Python module name")


def check_slurm_name(what: str, value: Any, several: bool = False) -> str:
    """A SLURM partition / account / QOS / job name (``several``: a comma-separated list of them)."""
    text = check_text(what, value)
    parts = text.split(",") if several else [text]
    if not all(_SLURM_NAME.fullmatch(part) for part in parts):
        expected = "letters, digits, '_', '.', '+' or '-'" + (" (several: comma-separated)" if several else "")
        raise LearngeneError(f"invalid {what} {text!r}: expected {expected}")
    return text


def check_sbatch_options(extra: dict[str, Any]) -> dict[str, str]:
    """``--sbatch KEY=VALUE`` options: lowercase keys (``[a-z][a-z0-9_-]*``), values on one line."""
    checked = {}
    for key, value in extra.items():
        key = _check_pattern("--sbatch key", key, _SBATCH_KEY, "lowercase letters, digits, '_' or '-'")
        name = key.replace("-", "_")
        if name in _SLURM_NAME_OPTIONS:
            checked[key] = check_slurm_name(f"--sbatch {key}", value, several=name == "partition")
        else:
            checked[key] = check_text(f"--sbatch {key} value", value)
    return checked


def check_endpoint(endpoint: str) -> str:
    """A torchrun rendezvous endpoint ``HOST:PORT`` (host name, IPv4 or ``[IPv6]``; port 1-65535)."""
    text = check_text("--rdzv-endpoint", endpoint)
    match = _ENDPOINT.fullmatch(text)
    if not match or not 0 < int(match.group(3)) < 65536:
        raise LearngeneError(f"invalid --rdzv-endpoint {text!r}: expected HOST:PORT, e.g. node001:29400")
    return text


def check_run_dir(run_dir: str | os.PathLike) -> Path:
    """The run directory as an absolute path that is safe in a command line or a batch script."""
    path = Path(run_dir).resolve()
    check_text("run directory", path)
    return path


# ------------------------------------------------------------------------------------------ worker command
# Python 3.11+: -P keeps the working directory (the run directory) off sys.path. Python 3.10 has no -P: this
# bootstrap removes sys.path[0] before anything is imported, then runs the module as -m would.
_SAFE_PATH_FLAG = sys.version_info >= (3, 11)
_BOOTSTRAP = (
    "import sys; del sys.path[0]; del sys.argv[0]; import runpy; "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def python_module_command(module: str, args: list[str], safe_path_flag: bool = _SAFE_PATH_FLAG) -> list[str]:
    """``python -m MODULE ARGS`` with this interpreter, never importing from the working directory.

    The worker runs inside its run directory; with a plain ``-m`` a ``yaml.py`` planted there would be imported
    instead of the real one. ``PYTHONPATH`` still works, so a source checkout runs as before.
    """
    if safe_path_flag:
        return [sys.executable, "-P", "-m", module, *args]
    return [sys.executable, "-c", _BOOTSTRAP, module, *args]


@dataclass
class LaunchHandle:
    """What the registry needs to find a launched run again: a local process and/or a scheduler job."""

    pid: int | None = None
    pgid: int | None = None
    proc_start: str | None = None
    job_id: str | None = None


def worker_command(module: str, run_dir: str | os.PathLike, resume: bool) -> list[str]:
    """``python -P -m MODULE RUN_DIR [--resume]`` with this interpreter."""
    return python_module_command(module, worker_args(run_dir, resume))


def worker_args(run_dir: str | os.PathLike, resume: bool) -> list[str]:
    """The worker's own arguments: ``RUN_DIR [--resume]``."""
    return [str(check_run_dir(run_dir))] + (["--resume"] if resume else [])


def job_command(
    module: str, run_dir: str | os.PathLike, resume: bool, nodes: int, gpus_per_node: int,
    node: int = 0, master: str = "localhost", job_id: str = "0", rdzv_port: int = 29500,
) -> list[str]:
    """What one node of a SLURM job runs: the worker, or torchrun over the node's GPUs when there are several."""
    if nodes * max(gpus_per_node, 1) <= 1:
        return worker_command(module, run_dir, resume)
    # Built directly, not through TorchrunLauncher: describe() shows $MASTER_HOST, which is no endpoint to check.
    args = torchrun_args(max(gpus_per_node, 1), nodes, node, f"{master}:{rdzv_port}", job_id,
                         standalone=nodes == 1)
    return torchrun_command(args, module, run_dir, resume)


def torchrun_args(
    nproc_per_node: int, nnodes: int, node_rank: int, rdzv_endpoint: str | None, rdzv_id: str,
    rdzv_backend: str = "c10d", standalone: bool = False,
) -> list[str]:
    """torchrun's own options for one node."""
    if standalone:
        return ["--standalone", "--nnodes", "1", "--nproc-per-node", str(nproc_per_node)]
    return [
        "--nnodes", str(nnodes),
        "--nproc-per-node", str(nproc_per_node),
        "--node-rank", str(node_rank),
        "--rdzv-backend", rdzv_backend,
        "--rdzv-endpoint", str(rdzv_endpoint),
        "--rdzv-id", rdzv_id,
    ]  # fmt: skip


def torchrun_command(args: list[str], module: str, run_dir: str | os.PathLike, resume: bool) -> list[str]:
    """torchrun with ``args`` starting the worker in every rank, all of them off the working directory's path.

    ``--no-python`` hands torchrun the whole rank command, so the ranks get ``-P`` (or the bootstrap) too instead of
    torchrun's own ``python -u -m MODULE``.
    """
    return python_module_command("torch.distributed.run", [
        *args, "--no-python", *worker_command(module, run_dir, resume),
    ])


def _child_env(gpus: list[str] | None = None) -> dict[str, str]:
    # Make the package importable in the child even from a source checkout that was never pip-installed, and keep
    # its output unbuffered so stdout.log / stderr.log follow the run live.
    import learngene

    env = dict(os.environ)
    root = str(Path(next(iter(learngene.__path__))).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env["PYTHONUNBUFFERED"] = "1"
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)  # this run's slot(s); concurrent runs get other GPUs
    return env


class Launcher(ABC):
    """Starts a run's worker and answers questions about it.

    Subclasses are plain keyword-argument objects: :meth:`options` returns the arguments, which the registry stores
    so that a resume relaunches the same way.
    """

    name: str = ""

    @abstractmethod
    def command(self, run_dir: str | os.PathLike, resume: bool = False) -> list[str]:
        """The argument list that runs the worker for ``run_dir`` (on this node)."""

    def describe(self, run_dir: str | os.PathLike, resume: bool = False) -> list[str]:
        """Equivalent shell command lines, for display only (one per line / node)."""
        return [shlex.join(self.command(run_dir, resume))]

    @abstractmethod
    def launch(
        self, run_dir: str | os.PathLike, resume: bool = False, gpus: list[str] | None = None
    ) -> LaunchHandle:
        """Start the run; returns at once with the handle.

        Args:
            run_dir: The run directory (holds ``config.yaml``).
            resume: Continue from ``checkpoints/last.pt``.
            gpus: ``CUDA_VISIBLE_DEVICES`` entries assigned to this run by the manager (None: inherit).
        """

    def slots(self) -> int:
        """How many of this machine's slots the run occupies while it runs."""
        return 1

    def is_alive(self, record: dict[str, Any]) -> bool | None:
        """Whether the run's process or job still runs; None when this machine cannot tell (another host)."""
        if record.get("host") and record["host"] != socket.gethostname():
            return None
        return liveness.is_alive(record.get("pid"), record.get("proc_start"))

    def exit_code(self, record: dict[str, Any]) -> int | None:
        """The process's exit code if this process launched it and it has ended, else None."""
        return liveness.child_exit_code(record.get("pid"))

    def stop(self, record: dict[str, Any], force: bool = False) -> bool:
        """Ask the run to checkpoint and exit (SIGTERM to the leader), or kill it and everything below (``force``).

        Returns whether a signal was delivered.
        """
        if force:
            return liveness.kill_tree(record.get("pid"), record.get("pgid"), record.get("proc_start"))
        return liveness.signal_run(
            record.get("pid"), record.get("pgid"), record.get("proc_start"), signal.SIGTERM
        )

    def options(self) -> dict[str, Any]:
        """The keyword arguments that recreate this launcher."""
        return {}


class LocalLauncher(Launcher):
    """One worker process on this machine, in its own session (it survives the caller and owns a process group)."""

    name = "local"

    def __init__(self, worker_module: str | None = None) -> None:
        # Any module with the worker's command line works; tests substitute a tiny fake one.
        self.worker_module = check_worker_module(worker_module or default_worker_module())

    def options(self) -> dict[str, Any]:
        return {} if self.worker_module == WORKER_MODULE else {"worker_module": self.worker_module}

    def command(self, run_dir: str | os.PathLike, resume: bool = False) -> list[str]:
        return worker_command(self.worker_module, run_dir, resume)

    def launch(
        self, run_dir: str | os.PathLike, resume: bool = False, gpus: list[str] | None = None
    ) -> LaunchHandle:
        run_dir = Path(run_dir)
        argv = self.command(run_dir, resume)
        with open(run_dir / STDOUT_LOG, "ab") as out, open(run_dir / STDERR_LOG, "ab") as err:
            try:
                process = subprocess.Popen(
                    argv,
                    cwd=run_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=_child_env(gpus),
                    # A new session: no controlling terminal (Ctrl-C in the launching shell does not reach it), it
                    # outlives the app, and its pid is the process group that stop() signals.
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as error:
                raise LearngeneError(f"cannot start {argv[0]}: {error}") from error
        liveness.track_child(process)
        return LaunchHandle(
            pid=process.pid, pgid=process.pid, proc_start=liveness.process_start_time(process.pid)
        )


class TorchrunLauncher(LocalLauncher):
    """``torch.distributed.run`` (torchrun): the GPUs of this machine, or one node of a multi-node job.

    Args:
        nproc_per_node: Worker processes on this node (one per GPU).
        nnodes: Number of nodes; above 1 the same command runs on every node with its own ``node_rank``.
        node_rank: This node's rank (multi-node only).
        rdzv_endpoint: ``host:port`` of the rendezvous (required for several nodes).
        rdzv_id: Job id shared by all nodes (defaults to the run directory's name).
        rdzv_backend: Rendezvous backend.
        standalone: Single-node mode with a private rendezvous (the default when ``nnodes == 1``).
    """

    name = "torchrun"

    def __init__(
        self,
        nproc_per_node: int = 1,
        nnodes: int = 1,
        node_rank: int = 0,
        rdzv_endpoint: str | None = None,
        rdzv_id: str | None = None,
        rdzv_backend: str = "c10d",
        standalone: bool | None = None,
        worker_module: str | None = None,
    ) -> None:
        super().__init__(worker_module)
        if int(nproc_per_node) < 1 or int(nnodes) < 1:
            raise LearngeneError("torchrun needs --nproc-per-node >= 1 and --nnodes >= 1")
        if not 0 <= int(node_rank) < int(nnodes):
            raise LearngeneError(f"--node-rank must be between 0 and {int(nnodes) - 1}, got {node_rank}")
        if int(nnodes) > 1 and not rdzv_endpoint:
            raise LearngeneError("torchrun on several nodes needs --rdzv-endpoint HOST:PORT")
        self.nproc_per_node = int(nproc_per_node)
        self.nnodes = int(nnodes)
        self.node_rank = int(node_rank)
        self.rdzv_endpoint = check_endpoint(rdzv_endpoint) if rdzv_endpoint else None
        self.rdzv_id = _check_pattern("--rdzv-id", rdzv_id, _RDZV_ID, "letters, digits, '_', '.' or '-'") \
            if rdzv_id else None
        self.rdzv_backend = _check_pattern("--rdzv-backend", rdzv_backend, _RDZV_BACKEND, "a name such as c10d")
        self.standalone = (self.nnodes == 1) if standalone is None else bool(standalone)

    def _torchrun_args(self, run_dir: str | os.PathLike, node_rank: int) -> list[str]:
        return torchrun_args(self.nproc_per_node, self.nnodes, node_rank, self.rdzv_endpoint,
                             self.rdzv_id or Path(run_dir).name, self.rdzv_backend, self.standalone)

    def command(
        self, run_dir: str | os.PathLike, resume: bool = False, node_rank: int | None = None
    ) -> list[str]:
        rank = self.node_rank if node_rank is None else node_rank
        return torchrun_command(self._torchrun_args(run_dir, rank), self.worker_module, run_dir, resume)

    def describe(self, run_dir: str | os.PathLike, resume: bool = False) -> list[str]:
        if self.standalone:
            return [shlex.join(self.command(run_dir, resume))]
        return [
            f"# node {rank}: " + shlex.join(self.command(run_dir, resume, rank))
            for rank in range(self.nnodes)
        ]

    def slots(self) -> int:
        return self.nproc_per_node

    def stop(self, record: dict[str, Any], force: bool = False) -> bool:
        """SIGTERM each rank directly: torchrun would pass a SIGTERM on to every rank's whole process group,
        DataLoader workers included, whose death then fails the rank instead of letting it checkpoint. The ranks
        agree on stopping at the same step, exit 3, and rank 0 writes the ``stopped`` result."""
        pid = record.get("pid")
        if force or not liveness.is_alive(pid, record.get("proc_start")):
            return super().stop(record, force)
        ranks = liveness.children(pid)  # type: ignore[arg-type]
        if not ranks:  # not spawned yet: nothing to checkpoint, let torchrun end itself
            return super().stop(record)
        delivered = False
        for rank in ranks:
            try:
                os.kill(rank, signal.SIGTERM)
                delivered = True
            except ProcessLookupError:
                pass
        return delivered

    def options(self) -> dict[str, Any]:
        return {
            "nproc_per_node": self.nproc_per_node,
            "nnodes": self.nnodes,
            "node_rank": self.node_rank,
            "rdzv_endpoint": self.rdzv_endpoint,
            "rdzv_id": self.rdzv_id,
            "rdzv_backend": self.rdzv_backend,
            "standalone": self.standalone,
            **super().options(),
        }


# SLURM job states that mean "not finished yet" (anything else: look at result.json).
_SLURM_ACTIVE = {
    "PENDING",
    "RUNNING",
    "REQUEUED",
    "CONFIGURING",
    "COMPLETING",
    "RESIZING",
    "SUSPENDED",
    "UNKNOWN",
}


class SlurmLauncher(Launcher):
    """A SLURM job through submitit.

    Args:
        partition: SLURM partition (``--partition``).
        nodes: Number of nodes.
        gpus_per_node: GPUs per node; with more than one GPU in all the job runs torchrun on each node.
        time_min: Time limit in minutes.
        cpus_per_task: CPUs for the task on each node.
        mem_gb: Memory per node.
        extra: Further sbatch options, e.g. ``{"account": "proj", "qos": "high"}`` (``--account=proj --qos=high``).
        cluster: submitit cluster (one of :data:`SLURM_CLUSTERS`): None picks SLURM when available, ``"local"``
            runs the job on this machine.

    A job that SLURM preempts or that reaches its time limit checkpoints and requeues itself, then resumes from
    ``checkpoints/last.pt`` (see :class:`learngene.runs.slurm_job.WorkerJob`).
    """

    name = "slurm"

    def __init__(
        self,
        partition: str | None = None,
        nodes: int = 1,
        gpus_per_node: int = 1,
        time_min: int = 60,
        cpus_per_task: int | None = None,
        mem_gb: float | None = None,
        extra: dict[str, Any] | None = None,
        cluster: str | None = None,
        worker_module: str | None = None,
    ) -> None:
        self.worker_module = check_worker_module(worker_module or default_worker_module())
        if int(nodes) < 1 or int(gpus_per_node) < 0 or int(time_min) < 1:
            raise LearngeneError("slurm needs --nodes >= 1, --gpus-per-node >= 0 and --time-min >= 1")
        if cluster is not None and cluster not in SLURM_CLUSTERS:
            raise LearngeneError(
                f"unknown submitit cluster {check_text('cluster', cluster)!r}: use {' or '.join(SLURM_CLUSTERS)}"
            )
        self.partition = check_slurm_name("--partition", partition, several=True) if partition else None
        self.nodes = int(nodes)
        self.gpus_per_node = int(gpus_per_node)
        self.time_min = int(time_min)
        self.cpus_per_task = cpus_per_task
        self.mem_gb = mem_gb
        self.extra = check_sbatch_options(dict(extra or {}))
        self.cluster = cluster

    def options(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "time_min": self.time_min,
            "cpus_per_task": self.cpus_per_task,
            "mem_gb": self.mem_gb,
            "extra": self.extra,
            "cluster": self.cluster,
            **({} if self.worker_module == WORKER_MODULE else {"worker_module": self.worker_module}),
        }

    def slots(self) -> int:
        # A real cluster's scheduler queues SLURM jobs, not our slots; the local executor runs on this machine.
        return 1 if self.cluster == "local" else 0

    def _job(self, run_dir: str | os.PathLike, resume: bool):
        from learngene.runs.slurm_job import WorkerJob  # imports submitit: only when a job is submitted

        return WorkerJob(str(check_run_dir(run_dir)), resume, self.nodes, self.gpus_per_node, self.worker_module)

    def command(self, run_dir: str | os.PathLike, resume: bool = False) -> list[str]:
        return job_command(self.worker_module, run_dir, resume, self.nodes, self.gpus_per_node,
                           0, "$MASTER_HOST", "$SLURM_JOB_ID")

    @staticmethod
    def job_name(run_dir: str | os.PathLike) -> str:
        """The SLURM job name: the run directory's name (a run id), checked against SLURM's name grammar."""
        return check_slurm_name("job name (the run directory's name)", Path(run_dir).name)

    def sbatch_options(self, run_dir: str | os.PathLike) -> list[str]:
        """The ``#SBATCH`` options this launcher asks for (as submitit will write them)."""
        opts = [f"--job-name={self.job_name(run_dir)}", f"--nodes={self.nodes}", "--ntasks-per-node=1"]
        opts.append(f"--time={self.time_min}")
        if self.partition:
            opts.append(f"--partition={self.partition}")
        if self.gpus_per_node:
            opts.append(f"--gpus-per-node={self.gpus_per_node}")
        if self.cpus_per_task:
            opts.append(f"--cpus-per-task={self.cpus_per_task}")
        if self.mem_gb:
            opts.append(f"--mem={int(self.mem_gb)}G")
        opts += [f"--{key.replace('_', '-')}={value}" for key, value in self.extra.items()]
        return opts

    def describe(self, run_dir: str | os.PathLike, resume: bool = False) -> list[str]:
        lines = [f"#SBATCH {opt}" for opt in self.sbatch_options(run_dir)]
        return lines + [f"srun {shlex.join(self.command(run_dir, resume))}"]

    def _executor(self, run_dir: Path):
        try:
            import submitit
        except ImportError as error:
            raise LearngeneError("the slurm launcher needs submitit: pip install submitit") from error
        executor = submitit.AutoExecutor(folder=run_dir / "submitit", cluster=self.cluster)
        params: dict[str, Any] = {
            "name": self.job_name(run_dir),
            "timeout_min": self.time_min,
            "nodes": self.nodes,
            "tasks_per_node": 1,
            "gpus_per_node": self.gpus_per_node,
        }
        if self.cpus_per_task:
            params["cpus_per_task"] = int(self.cpus_per_task)
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        if executor.cluster == "slurm":
            if self.partition:
                params["slurm_partition"] = self.partition
            if self.extra:
                params["slurm_additional_parameters"] = {
                    k.replace("-", "_"): v for k, v in self.extra.items()
                }
        elif executor.cluster == "local":
            params.pop("nodes")  # the local executor runs one node
            if self.nodes > 1:
                raise LearngeneError(
                    "submitit's local cluster runs one node; use --nodes 1 or a real SLURM cluster"
                )
            params["gpus_per_node"] = min(self.gpus_per_node, _visible_gpu_count())
        try:
            executor.update_parameters(**params)
        except (ValueError, TypeError) as error:
            raise LearngeneError(f"invalid slurm options: {error}") from error
        return executor

    def launch(
        self, run_dir: str | os.PathLike, resume: bool = False, gpus: list[str] | None = None
    ) -> LaunchHandle:
        # ``gpus`` is ignored: SLURM (or submitit's local executor) assigns devices itself.
        run_dir = check_run_dir(run_dir)
        executor = self._executor(run_dir)
        try:
            job = executor.submit(self._job(run_dir, resume))
        except Exception as error:  # submitit raises plain exceptions for sbatch failures
            raise LearngeneError(
                f"SLURM submission failed: {str(error).strip().splitlines()[-1:]}"
            ) from error
        if executor.cluster == "local":
            # The local "job" is a controller process of ours; watch it like a local run (its id is its pid).
            process = job._process  # noqa: SLF001 - submitit exposes no public accessor
            liveness.track_child(process)
            return LaunchHandle(
                pid=process.pid, proc_start=liveness.process_start_time(process.pid), job_id=job.job_id
            )
        return LaunchHandle(job_id=str(job.job_id))

    def is_alive(self, record: dict[str, Any]) -> bool | None:
        if self.cluster == "local" or record.get("pid"):
            return super().is_alive(record)
        try:
            import submitit

            state = submitit.SlurmJob(Path(record["run_dir"]) / "submitit", str(record["job_id"])).state
        except Exception as error:  # sacct missing or failing: cannot tell
            log.debug("cannot query SLURM job %s: %s", record.get("job_id"), error)
            return None
        return state.split()[0].upper() in _SLURM_ACTIVE

    def stop(self, record: dict[str, Any], force: bool = False) -> bool:
        if record.get("pid"):
            # Local cluster: the controller forwards SIGTERM to the task, which forwards it to the worker. A forced
            # stop kills the whole tree: killing the controller alone would orphan the task and the worker.
            if force:
                return liveness.kill_tree(record["pid"], None, record.get("proc_start"))
            return liveness.signal_run(record["pid"], None, record.get("proc_start"), signal.SIGTERM)
        if not record.get("job_id"):
            return False
        argv = (
            ["scancel", str(record["job_id"])]
            if force
            else ["scancel", "--signal=TERM", str(record["job_id"])]
        )
        try:
            subprocess.run(argv, check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as error:
            raise LearngeneError(f"scancel failed for job {record['job_id']}: {error}") from error
        return True


def visible_gpus() -> list[str]:
    """This process's GPUs as ``CUDA_VISIBLE_DEVICES`` entries (empty on a machine without CUDA GPUs)."""
    count = _visible_gpu_count()
    listed = [part.strip() for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
    if listed and len(listed) >= count:
        return listed[:count]  # keep the user's restriction (and its ids or UUIDs) when handing GPUs to runs
    return [str(index) for index in range(count)]


def _visible_gpu_count() -> int:
    # Avoid importing torch (seconds) on machines that clearly have no NVIDIA GPU.
    if not (os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia")):
        return 0
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # a broken CUDA install counts as no GPU
        return 0


LAUNCHERS: dict[str, type[Launcher]] = {
    "local": LocalLauncher,
    "torchrun": TorchrunLauncher,
    "slurm": SlurmLauncher,
}


def make_launcher(name: str, options: dict[str, Any] | None = None) -> Launcher:
    """Build a launcher by name from its keyword options; LearngeneError for unknown names or options."""
    cls = LAUNCHERS.get(name)
    if cls is None:
        raise LearngeneError(f"unknown launcher {name!r}: choose one of {', '.join(LAUNCHERS)}")
    try:
        return cls(**(options or {}))
    except (TypeError, ValueError) as error:  # an unknown option, or a number that is not one
        raise LearngeneError(f"invalid options for the {name} launcher: {error}") from error


def handle_dict(handle: LaunchHandle) -> dict[str, Any]:
    """The handle as registry columns."""
    return asdict(handle)
