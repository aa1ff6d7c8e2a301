"""The one test for "a whole number" that every user-facing count and size goes through (depth, heads, classes,
image size, number of images, batch size, MinHds).

``int(x) != x`` alone raises on NaN and strings and lets ``True`` pass as 1, so bad input ended in int()'s or
numpy's own errors instead of the field's message.
"""

from __future__ import annotations

import math
import numbers


def is_whole(value) -> bool:
    """True for a finite whole number (6, 6.0, numpy integers); False for strings, bools, NaN, infinity, 6.5."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            and int(value) == value)
