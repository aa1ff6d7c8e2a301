"""Reading a statistics file (``learngene analyze``'s JSON) without torch, for the cheap commands (``cluster``).

:mod:`learngene.attention.statistics` computes the statistics and needs torch; reading them back needs only JSON
and numpy, so ``learngene cluster`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from learngene.errors import LearngeneError


def read_stats_file(path: str | Path) -> dict:
    """Read a statistics file; a bare JSON list of L lists of H numbers is accepted as the MAD table alone."""
    path = Path(path)
    if path.is_dir():
        raise LearngeneError(f"{path} is a folder, not a statistics file; give the JSON file that "
                             "`learngene analyze --out` wrote")
    if not path.is_file():
        raise LearngeneError(f"statistics file {path} does not exist; create it with `learngene analyze`")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LearngeneError(f"{path} is not valid JSON ({error})") from error
    if isinstance(data, list):
        data = {"mean_attention_distance": data}
    if not isinstance(data, dict) or "mean_attention_distance" not in data:
        raise LearngeneError(f"{path} has no 'mean_attention_distance' table (a list of L lists of H numbers)")
    table = data["mean_attention_distance"]
    rows = {len(row) if isinstance(row, list) else -1 for row in table} if isinstance(table, list) else {-1}
    if not table or -1 in rows or len(rows) != 1 or 0 in rows:
        raise LearngeneError(
            f"the mean_attention_distance table in {path} must be L lists of the same number H >= 1 of numbers"
        )
    try:
        array = np.asarray(table, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise LearngeneError(f"the mean_attention_distance table in {path} holds non-numbers") from error
    if not np.all(np.isfinite(array)):
        raise LearngeneError(f"the mean_attention_distance table in {path} contains NaN or infinite values")
    if np.any(array < 0):
        # A distance cannot be negative: such a table is not MADs (log values, a wrong column), and clustering it
        # would give a plausible-looking learngene.
        layer, head = (int(i) for i in np.argwhere(array < 0)[0])
        raise LearngeneError(
            f"{path} holds a negative mean attention distance ({array[layer, head]:g} px at layer {layer}, head "
            f"{head}); MADs are distances in pixels (0 or more): give the MAD table itself"
        )
    return data
