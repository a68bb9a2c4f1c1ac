"""Choosing the next token from the logits — outside the model, as in llama2.c.

`sample` returns the chosen id *and* every distribution a teacher wants to show along the way:

    logits ─softmax→ raw ─/T→ tempered ─top-k→ ─top-p→ ─min-p→ kept set ─renormalise→ final ─draw→ id

Order of the filters is Hugging Face's (temperature, top-k, top-p, min-p); each filter sees the survivors of
the one before. Temperature 0 means greedy: the argmax, no randomness (and `final` is one-hot).
Everything is float64 NumPy so the numbers shown are the numbers used. A seeded `np.random.Generator` makes
draws reproducible; the app stores its state per step so "Back" replays the same choice.

Worked example: logits [2, 1, 0], T = 1, top_k = 2 → raw [.665, .245, .090]; kept {0, 1};
final [.731, .269, 0].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class SamplerConfig:
    temperature: float = 0.8  # < 1 sharpens, > 1 flattens; 0 = greedy (our small models loop when greedy)
    top_k: Optional[int] = None  # keep the k most likely tokens (None or 0 = off)
    top_p: Optional[float] = None  # keep the smallest set whose probability reaches p (None or 1 = off)
    min_p: Optional[float] = None  # keep tokens with p >= min_p * p_max (None or 0 = off)

    def __post_init__(self) -> None:
        t = self.temperature
        if not isinstance(t, (int, float)) or not np.isfinite(t) or t < 0:
            raise ValueError(f"temperature must be a number >= 0, got {t!r}")
        if self.top_k is not None and (not isinstance(self.top_k, (int, np.integer)) or self.top_k < 0):
            raise ValueError(f"top_k must be a non-negative integer, got {self.top_k!r}")
        if self.top_p is not None and not (0 < self.top_p <= 1):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.min_p is not None and not (0 <= self.min_p <= 1):
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class SampleResult:
    token: int  # the chosen id
    raw: np.ndarray  # (V,) softmax of the logits (temperature 1)
    tempered: np.ndarray  # (V,) softmax of logits / T (= raw when greedy)
    kept_top_k: np.ndarray  # (V,) bool, survivors after top-k
    kept_top_p: np.ndarray  # (V,) bool, after top-p (applied to the top-k survivors)
    kept_min_p: np.ndarray  # (V,) bool, after min-p: the final kept set
    final: np.ndarray  # (V,) the distribution actually drawn from (renormalised over the kept set)
    entropy_raw: float  # nats, of `raw`
    entropy_final: float  # nats, of `final`
    greedy: bool

    @property
    def kept(self) -> np.ndarray:
        return self.kept_min_p

    @property
    def prob(self) -> float:
        """Probability the chosen token had in the model's own (raw) distribution."""
        return float(self.raw[self.token])

    @property
    def rank(self) -> int:
        """0-based rank of the chosen token in the raw distribution."""
        return self.rank_of(self.token)

    def rank_of(self, token: int) -> int:
        """0-based rank of any token in the raw distribution: how many tokens are strictly more likely
        (tied tokens share a rank). raw=[.1, .5, .2, .2]: token 1 -> 0, tokens 2 and 3 -> 1, token 0 -> 3."""
        return int((self.raw > self.raw[token]).sum())


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / Σ exp(x) along `axis`, shifted by the max so large logits do not overflow. Float inputs keep
    their precision (the lens's float32 stacks stay float32); sampling hands it float64 logits."""
    x = np.asarray(x)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def top_k_mask(p: np.ndarray, k: Optional[int], alive: np.ndarray) -> np.ndarray:
    """The k most probable of the alive tokens (ties broken by lower id, so the set has exactly k)."""
    if not k or k >= alive.sum():
        return alive.copy()
    order = np.lexsort((np.arange(len(p)), -np.where(alive, p, -1.0)))  # by prob desc, then id asc
    keep = np.zeros_like(alive)
    keep[order[:k]] = True
    return keep


def top_p_mask(p: np.ndarray, top_p: Optional[float], alive: np.ndarray) -> np.ndarray:
    """Nucleus: the smallest most-probable set of alive tokens whose mass (renormalised) reaches top_p."""
    if top_p is None or top_p >= 1:
        return alive.copy()
    q = np.where(alive, p, 0.0)
    q = q / q.sum()
    order = np.lexsort((np.arange(len(q)), -q))
    cum = np.cumsum(q[order])
    n = int(np.searchsorted(cum, top_p - 1e-12) + 1)  # include the token that crosses the threshold
    keep = np.zeros_like(alive)
    keep[order[: max(1, n)]] = True
    return keep & alive


def min_p_mask(p: np.ndarray, min_p: Optional[float], alive: np.ndarray) -> np.ndarray:
    """Keep alive tokens whose probability is at least min_p × the top alive probability."""
    if not min_p:
        return alive.copy()
    q = np.where(alive, p, 0.0)
    return alive & (q >= min_p * q.max())


def sample(logits, cfg: SamplerConfig, rng: Optional[np.random.Generator] = None) -> SampleResult:
    """Pick the next token from `logits` (V,) under `cfg`; `rng` is needed unless greedy."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    raw = softmax(logits)
    if cfg.greedy:
        token = int(np.argmax(logits))
        every = np.ones(len(raw), dtype=bool)
        final = np.zeros_like(raw)
        final[token] = 1.0
        only = ~every
        only[token] = True
        return SampleResult(token, raw, raw, only, only, only, final, entropy(raw), 0.0, True)
    tempered = softmax(logits / cfg.temperature)
    alive = np.ones(len(raw), dtype=bool)
    k_keep = top_k_mask(tempered, cfg.top_k, alive)
    p_keep = top_p_mask(tempered, cfg.top_p, k_keep)
    m_keep = min_p_mask(tempered, cfg.min_p, p_keep)
    final = np.where(m_keep, tempered, 0.0)
    final = final / final.sum()
    if rng is None:
        raise ValueError("sampling needs a random generator (or temperature 0 for greedy)")
    token = int(rng.choice(len(final), p=final))
    return SampleResult(token, raw, tempered, k_keep, p_keep, m_keep, final, entropy(raw), entropy(final), False)
