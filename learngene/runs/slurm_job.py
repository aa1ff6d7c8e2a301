"""The callable a SLURM job runs (through submitit): the worker as a subprocess, requeued from its checkpoint.

Kept apart from :mod:`learngene.runs.launchers` because it subclasses submitit's ``Checkpointable`` and so imports
submitit, which only the slurm launcher needs.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable, DelayedSubmission

from learngene.runs import liveness, rundir
from learngene.runs.launchers import WORKER_MODULE, _child_env, job_command


@dataclasses.dataclass
class WorkerJob(Checkpointable):
    """Runs the worker (or torchrun over the node's GPUs) for one run directory on each node of the job.

    A subprocess rather than an in-process call so the worker gets exactly the same command line as with the other
    launchers. Signals:

    - SIGTERM / SIGINT (``scancel --signal=TERM``, a stop from the app): forwarded; the worker checkpoints, writes a
      ``stopped`` result and the job ends (on the local cluster without requeueing, even after a preemption).
    - SIGUSR2, SLURM's warning before preemption or the time limit (submitit asks for it): the worker is stopped
      the same way, then submitit's own handler calls :meth:`checkpoint` and requeues the job, which starts again
      with ``--resume`` from ``checkpoints/last.pt``.
    """

    run_dir: str
    resume: bool
    nodes: int = 1
    gpus_per_node: int = 0
    worker_module: str = WORKER_MODULE
    rdzv_port: int = 29500

    def command(self, node: int = 0, master: str = "localhost", job_id: str = "0") -> list[str]:
        """The argument list this node runs."""
        return job_command(self.worker_module, self.run_dir, self.resume, self.nodes, self.gpus_per_node,
                           node, master, job_id, self.rdzv_port)

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """What a requeued job runs: the same job, resuming from the last checkpoint if the worker saved one."""
        run_dir = Path(self.run_dir)
        resume = (run_dir / rundir.LAST_CHECKPOINT).is_file()
        # The job runs again: the preempted attempt's ``stopped`` result is no final state any more. Left in place
        # until the requeued worker clears it itself (after importing torch, or after waiting in SLURM's queue), it
        # made the live job look like a process lingering after its end, which the run manager kills.
        (run_dir / rundir.RESULT_FILE).unlink(missing_ok=True)
        return DelayedSubmission(dataclasses.replace(self, resume=resume), *args, **kwargs)

    def __call__(self) -> int:
        import submitit

        local = False
        try:
            env = submitit.JobEnvironment()
            argv = self.command(env.node, env.hostnames[0], str(env.job_id))
            local = env.cluster == "local"
        except RuntimeError:  # not inside a submitit job (called directly): run as a single node
            argv = self.command()
        run_dir = Path(self.run_dir)
        # This task and its worker end with their parent: killed outright, submitit's local controller (the run's
        # pid) would otherwise leave both training as orphans that no stop reaches, after the run was ended as
        # failed and its slot freed. (Under SLURM, slurmstepd ends them itself.)
        liveness.end_with_parent()
        with open(run_dir / rundir.STDOUT_LOG, "ab") as out, open(run_dir / rundir.STDERR_LOG, "ab") as err:
            process = subprocess.Popen(argv, cwd=run_dir, stdout=out, stderr=err, env=_child_env(),
                                       preexec_fn=liveness.end_with_parent)

        usr2 = getattr(signal, "SIGUSR2", None)
        requeue_handler = signal.getsignal(usr2) if usr2 is not None else None  # submitit's, if it set one
        preempted: list[int] = []
        stopped: list[int] = []

        def forward(signum: int, _frame: Any) -> None:
            # Only signal here: waiting for the worker inside a handler could deadlock on Popen's wait lock.
            (preempted if signum == usr2 else stopped).append(signum)
            process.send_signal(signal.SIGTERM if signum == usr2 else signum)

        for sig in (signal.SIGTERM, signal.SIGINT, usr2):
            if sig is not None:
                signal.signal(sig, forward)
        code = process.wait()
        # On the local cluster a SIGTERM can only be a stop (the controller forwarding ours), and a stop overrides a
        # preemption: one that came while the preempted worker was still exiting reached no worker that could act
        # on it, and a requeue would train on as if never asked. (SLURM itself sends SIGTERM before SIGUSR2 when it
        # preempts a job, so there a SIGTERM cannot tell a stop from a preemption.)
        if preempted and not (local and stopped) and callable(requeue_handler):
            # The worker has saved checkpoints/last.pt and exited: let submitit checkpoint this callable and requeue
            # the job (it exits this process; on a local cluster with a requeue code its controller restarts it).
            requeue_handler(preempted[0], None)
        # The worker's own result.json is the source of truth; the code only matters to SLURM's accounting.
        return code
