"""Numbers read back from an evaluation result (`results/evaluation.json`): plain NumPy, no torch, so the
Compare page's sentences (`viz/compare_text.py`) can use them without loading a model.

`paired_difference` is how precisely the held-out text measures two sets of weights (same windows, paired);
`in_and_past_context` splits the loss-by-position curve at the training length. Neither says anything about
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
