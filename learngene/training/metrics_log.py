"""The run's ``metrics.jsonl`` (one JSON object a line, flushed line by line) and optional TensorBoard events."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from learngene.atomic import disk_error, write_json_atomic  # noqa: F401 - write_json_atomic re-exported
from learngene.runs import rundir

log = logging.getLogger(__name__)



def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null (json.dumps would write invalid JSON), numpy/torch scalars become floats."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _clean(value.item())
    return value


class MetricsLogger:
    """Appends records to ``metrics.jsonl`` and mirrors numbers to TensorBoard when it is installed.

    Each line is written and flushed on its own, so a crash loses at most the line being written; on resume the file
    is appended to. A disabled logger (ranks other than 0) ignores everything.
    """

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / rundir.METRICS_FILE
        self.enabled = enabled
        self._file = None
        self._tb = None
        if not enabled:
            return
        try:
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as error:
            raise disk_error(self.path, error) from None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                try:
                    self._tb = SummaryWriter(log_dir=str(Path(run_dir) / rundir.TENSORBOARD_DIR))
                except OSError as error:
                    log.warning("TensorBoard disabled: %s", error)

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add ``time`` and append ``record`` as one line; returns the record as written."""
        record = {key: _clean(value) for key, value in record.items()}
        record.setdefault("time", round(time.time(), 3))
        if not self.enabled or self._file is None:
            return record
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as error:
            raise disk_error(self.path, error) from None
        if self._tb is not None and record.get("kind") in ("train", "eval"):
            prefix = record["kind"]
            for key, value in record.items():
                if key not in ("step", "epoch", "time", "kind") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{prefix}/{key}", value, global_step=int(record["step"]))
        return record

    def close(self) -> None:
        for handle in (self._file, self._tb):
            if handle is not None:
                try:
                    handle.close()
                except OSError as error:  # closing flushes: a full disk can surface here
                    log.warning("closing %s failed: %s", self.path, error)
        self._file = self._tb = None
