"""Train one run directory: ``python -m learngene.training.worker RUN_DIR [--resume]`` or :func:`run_training`.

Reads ``RUN_DIR/config.yaml``, trains, writes everything into RUN_DIR and ends by writing ``RUN_DIR/result.json``:
``{"state": "succeeded"|"failed"|"stopped", "message", "step", "epoch", "best_top1", "exit_code"}``.
``step`` counts optimizer steps; ``epoch`` is the 0-based epoch of the latest step (also in every metrics line).
Exit codes: 0 succeeded, 3 stopped (SIGTERM/SIGINT/SIGUSR2: the current step finishes, ``last`` is saved), 1 failed
(the one-line message also goes to stderr and ``train.log``). Under torchrun every rank trains; only rank 0 writes files.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from learngene.atomic import disk_error, write_json_atomic
from learngene.errors import LearngeneError
from learngene.runs import liveness, rundir
from learngene.training.config import TrainConfig
from learngene.training.distributed import barrier, cleanup_distributed, env_dist_info, init_distributed
from learngene.training.runner import (
    ProgressCallback,
    Runner,
    StopFlag,
    oom_message,
    resolve_device,
    run_dir_deleted,
)

log = logging.getLogger("learngene.training")

EXIT_CODES = {"succeeded": 0, "failed": 1, "stopped": 3}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# SIGUSR2 is SLURM's warning before preemption or the time limit (and may reach every process of the job step):
# checkpoint and stop, the job then requeues itself and resumes (learngene.runs.slurm_job).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


@contextmanager
def _stop_on_signals(stop: StopFlag) -> Iterator[None]:
    """Turn SIGTERM/SIGINT/SIGUSR2 into a graceful stop request (only possible from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means "now"
        log.info("%s received: stopping after the current step", name)
        stop.request(f"{name} received")

    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def _run_log(run_dir: Path, enabled: bool) -> Iterator[None]:
    """Copy the ``learngene`` loggers' records into ``RUN_DIR/train.log`` for the duration of the run."""
    if not enabled:
        yield
        return
    root = logging.getLogger("learngene")
    handler = logging.FileHandler(run_dir / rundir.TRAIN_LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    old_level = root.level
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def _failure_message(error: BaseException, config: TrainConfig | None, device: torch.device | None) -> str:
    if isinstance(error, LearngeneError):
        return str(error)
    if isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ("can't allocate memory" in str(error) or "out of memory" in str(error))
    ):
        if config is not None and device is not None:
            return oom_message(config, device)
        return "out of memory: lower --batch-size"
    if isinstance(error, OSError) and error.filename:
        return str(disk_error(os.fsdecode(error.filename), error))
    text = str(error).strip()
    peer_gone = [sign for sign in _PEER_GONE if sign in text]
    if peer_gone and env_dist_info().distributed:
        # gloo's and NCCL's words for a peer that vanished (killed, out of memory, failed): this rank's error is only
        # the echo of that, and its text (a C++ source path, "... GLHF!") sent the user looking in the wrong place.
        return (f"another process of this distributed run ended first and rank {env_dist_info().rank} lost it "
                f"({peer_gone[0]}); torchrun names the first failure under \"Root Cause\" in stderr.log "
                "(`learngene runs logs RUN --stream stderr`)")
    if "Original Traceback" in text:
        # Raised again by torch from a DataLoader worker as "Caught X in DataLoader worker process N.\nOriginal
        # Traceback ...": the worker's own last line names the problem (and the file).
        last = text.splitlines()[-1].strip()
        kind, _, detail = last.partition(": ")
        message = f"{kind.rsplit('.', 1)[-1]}: {detail}" if detail else last
    else:
        first = text.splitlines()[0] if text else ""
        message = f"{type(error).__name__}: {first}" if first else type(error).__name__
    if message.startswith(_UNREADABLE_IMAGE):
        message = re.sub(r"<_io\.\w+ name=('[^']*')>", r"\1", message)  # PIL names the open file object
        message += " (a corrupt or non-image file in the dataset: remove or replace it)"
    return message


# How gloo and NCCL report that a peer process of the run is gone.
_PEER_GONE = ("Connection reset by peer", "Connection closed by peer", "NCCL communicator was aborted")

# How PIL and torchvision report an image file they cannot decode.
_UNREADABLE_IMAGE = ("UnidentifiedImageError", "OSError: image file is truncated")


def _append_traceback(path: Path | None) -> None:
    """Keep the full traceback of an unexpected failure in ``train.log`` (the message stays one line)."""
    if path is None:
        return
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(traceback.format_exc())
    except OSError as error:  # the run directory is gone or full: the one-line message still gets out
        log.debug("cannot append the traceback to %s: %s", path, error)


def run_training(run_dir: Path, resume: bool = False, progress: ProgressCallback | None = None,
                 stop: StopFlag | None = None) -> dict[str, Any]:
    """Train the run in ``run_dir`` in this process and return (and, on rank 0, write) its ``result.json``.

    Args:
        run_dir: directory holding ``config.yaml``; everything the run writes goes here.
        resume: continue from ``checkpoints/last.pt`` at its step, on the same schedule.
        progress: called on rank 0 with every metrics record (``kind`` start/train/eval) as it is written.
        stop: a flag another thread may set to stop gracefully (SIGTERM/SIGINT set it too).

    Returns:
        The result dict ``{"state", "message", "step", "epoch", "best_top1", "exit_code"}``.
    """
    run_dir = Path(run_dir)
    dist = env_dist_info()
    stop = stop or StopFlag()
    config: TrainConfig | None = None
    device: torch.device | None = None
    runner: Runner | None = None
    result: dict[str, Any] = {"state": "failed", "message": "", "step": 0, "epoch": 0, "best_top1": None}
    writable = run_dir.is_dir() and dist.is_main
    if writable:
        (run_dir / rundir.RESULT_FILE).unlink(missing_ok=True)  # a resumed run is running again, not stopped
    with _run_log(run_dir, writable), _stop_on_signals(stop):
        try:
            if not run_dir.is_dir():
                raise LearngeneError(f"run directory not found: {run_dir}")
            config = TrainConfig.from_yaml(run_dir / rundir.CONFIG_FILE).validate()
            device = resolve_device(config, dist)
            dist = init_distributed(device.type)
            runner = Runner(run_dir, config, dist, device, resume=resume, stop=stop, progress=progress)
            runner.setup()
            outcome = runner.run()
            result.update(state=outcome.state, message=outcome.message, step=outcome.step, epoch=outcome.epoch,
                          best_top1=outcome.best_top1)
            log.info("%s: %s", outcome.state, outcome.message)
        except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - every failure must end in result.json
            message = _failure_message(error, config, device)
            if isinstance(error, KeyboardInterrupt):
                message = "interrupted"
            elif writable and not run_dir.is_dir():
                # Whichever write noticed first (metrics, TensorBoard, a checkpoint), the cause is the same.
                message = str(run_dir_deleted(run_dir))
            if not isinstance(error, (LearngeneError, KeyboardInterrupt)):
                log.debug("traceback:\n%s", traceback.format_exc())
                _append_traceback(run_dir / rundir.TRAIN_LOG if writable else None)
            if runner is not None:
                result.update(step=runner.step, epoch=runner.epoch, best_top1=runner.best_top1)
            result.update(state="failed", message=message)
            log.error("failed: %s", message)
        finally:
            try:
                if runner is not None:
                    runner.close()
            except Exception as error:  # noqa: BLE001 - the result must still be written and the process end
                log.warning("cleanup after the run failed: %s", error)
        result["exit_code"] = EXIT_CODES[result["state"]]
        if writable:
            try:
                write_json_atomic(run_dir / rundir.RESULT_FILE, result)
            except LearngeneError as error:  # the disk is full: the caller still gets the result
                log.error("%s", error)
        _leave_process_group(together=result["state"] != "failed")
    return result


def _leave_process_group(together: bool) -> None:
    """Leave torchrun's process group; ranks that ended the same way (stopped, succeeded) leave together.

    torchrun takes any rank's non-zero exit, a stop's 3 included, for a failure of the whole group: it SIGTERMs every
    other rank's process group at once and SIGKILLs it 30 s later. A rank that left as soon as it had handed rank 0
    its state could so cut rank 0 while it still wrote the stop checkpoint or ``result.json``. Waiting here, after
    rank 0 has written both, closes that window. A failed rank cannot count on its peers reaching this point and
    leaves at once (torchrun then ends the others, which is what a failure should do).
    """
    try:
        if together:
            barrier()
        cleanup_distributed()
    except Exception as error:  # noqa: BLE001 - a peer that died already: this process ends anyway
        log.warning("leaving the process group failed: %s", error)


def _end_with_torchrun() -> None:
    """Under torchrun, end this rank (SIGKILL) when torchrun ends.

    torchrun starts each rank in a session of its own, so a torchrun killed outright (SIGKILL, the OOM killer)
    takes no rank with it: orphaned, the ranks trained on where no stop reaches them (a run's pid is torchrun's)
    while the registry had already ended the run as failed and freed its slot, and kept writing checkpoints and a
    result into a run that may be resumed meanwhile. SIGKILL rather than a graceful stop: a rank whose torchrun is
    gone may be blocked on torchrun's store, and ``checkpoints/last.pt`` is written atomically, so the last saved
    one stays whole for a resume.
    """
    if "TORCHELASTIC_RUN_ID" in os.environ:
        liveness.end_with_parent()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m learngene.training.worker",
                                     description="Train the run directory RUN_DIR (reads RUN_DIR/config.yaml).")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.pt")
    args = parser.parse_args(argv)
    _end_with_torchrun()
    is_main = env_dist_info().is_main
    logging.basicConfig(level=logging.INFO if is_main else logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
    result = run_training(args.run_dir, resume=args.resume)
    if result["state"] == "failed" and is_main:
        print(f"error: {result['message']}", file=sys.stderr)
    return int(result["exit_code"])


def exit_process(code: int, failed: bool) -> None:
    """End this worker process with ``code``, whatever its children do.

    ``result.json`` and the logs are written by now. A child that outlives the run (a DataLoader worker ignoring
    SIGTERM, a stuck compile worker) would keep the run ``running`` and its slot taken: survivors get a short grace,
    then SIGKILL, and a failed run leaves through ``os._exit`` so that no exit handler can wait on anything.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    killed = liveness.kill_own_children(grace_s=CHILD_GRACE_S)
    if failed or killed:
        os._exit(code)
    sys.exit(code)


CHILD_GRACE_S = 2.0  # how long leftover children may take to end by themselves once the run is over


if __name__ == "__main__":
    exit_code = main()
    exit_process(exit_code, failed=exit_code == EXIT_CODES["failed"])
