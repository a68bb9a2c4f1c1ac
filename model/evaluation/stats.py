"""Numbers read back from an evaluation result (`results/evaluation.json`): plain NumPy, no torch, so the
Compare page's sentences (`viz/compare_text.py`) can use them without loading a model.

`paired_difference` is how precisely the held-out text measures two sets of weights (same windows, paired);
`in_and_past_context` splits the loss-by-position curve at the training length, and `window_rise` gives the
same split window by window, where the evaluation recorded it. None of them says anything about
seed-to-seed variation of training (`model.evaluation.seeds` measures that).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np


def paired_difference(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of a − b over the same windows, and its standard error (std / √n): how sure the *evaluation* is.

    It says nothing about seed-to-seed variation of training. a=[1, 2, 3], b=[0, 2, 2] -> (0.667, 0.333).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2:
        return float(d.mean()) if len(d) else float("nan"), float("nan")
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def in_and_past_context(by_pos: dict, context: int) -> tuple[float, Optional[float]]:
    """Mean loss at positions 1 … context, and past it (None where the model was not evaluated past it).

    by_pos={"mean": [4, 2, 3, 1]}, context=2 -> (3.0, 2.0);  context=4 -> (2.5, None).
    """
    m = np.asarray(by_pos["mean"], dtype=np.float64)
    inside = float(m[:context].mean())
    return inside, (float(m[context:].mean()) if len(m) > context else None)


def window_rise(by_pos: dict, context: int) -> Optional[list[float]]:
    """Each window's mean loss past the context minus inside it, or None where the evaluation did not record
    them per window (evaluations before that was kept), split them elsewhere, or stopped at the context.

    {"context": 2, "window_inside": [3.0, 4.0], "window_past": [3.5, 6.0]}, context=2 -> [0.5, 2.0].
    """
    inside, past = by_pos.get("window_inside"), by_pos.get("window_past")
    if by_pos.get("context") != context or inside is None or past is None:
        return None
    return [float(p - i) for i, p in zip(inside, past)]
