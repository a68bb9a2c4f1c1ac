"""The token-boundary lesson: the same text with and without a trailing newline, and what the model predicts
after each.

In our BPE ".\n" (and ",\n", "?\n", …) is one token. A prompt that stops at "." has a last token the model
rarely saw at the end of a line — in training "." followed by a newline was almost always merged into ".\n" —
so its next-token guess is about what follows a bare "." (usually a space), not about the next line. Numbers
here come from the model, never typed: `boundary_pair` runs both texts, `boundary_sentence` states what the
two runs show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BoundaryCase:
    text: str  # the text the model read
    ids: tuple[int, ...]  # its token ids
    last_label: str  # the last token's display label
    top_ids: np.ndarray  # (k,) the k most likely next tokens, most likely first
    top_probs: np.ndarray  # (k,) their probabilities


def trailing_variants(text: str) -> tuple[str, str]:
    """(the text without trailing newlines, the same with exactly one). "a.\\n\\n" -> ("a.", "a.\\n")."""
    base = text.rstrip("\n")
    return base, base + "\n"


def top_next(logits_last: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most probable next tokens from one position's logits (V,): ids and softmax probabilities,
    descending, ties by lower id."""
    z = np.asarray(logits_last, dtype=np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.lexsort((np.arange(len(p)), -p))[:k]
    return order, p[order]


def boundary_pair(logits_fn, encode, label, text: str, k: int = 8, max_tokens: int | None = None
                  ) -> tuple[BoundaryCase, BoundaryCase] | None:
    """Run the model (`logits_fn(ids) -> (T, V)`) on the text without and with its trailing newline; None when
    the text without newlines is empty. `max_tokens` keeps the last tokens of a long text (the model's context)."""
    cases = []
    for t in trailing_variants(text):
        ids = list(encode(t))
        if max_tokens is not None:
            ids = ids[-max_tokens:]
        if not ids:
            return None
        top_ids, top_probs = top_next(np.asarray(logits_fn(ids))[-1], k)
        cases.append(BoundaryCase(t, tuple(ids), label(ids[-1]), top_ids, top_probs))
    return cases[0], cases[1]


def newline_merges(without: BoundaryCase, with_nl: BoundaryCase) -> bool:
    """True when adding the newline changed the last token instead of adding one (".\\n" is one token)."""
    return len(with_nl.ids) == len(without.ids)


def boundary_sentence(without: BoundaryCase, with_nl: BoundaryCase, label) -> str:
    """What the two runs show, from their numbers: the last token of each, whether the newline merged into it,
    and each run's top guess with its probability."""
    merged = newline_merges(without, with_nl)
    how = (f"the newline does not add a token: it merges with the last one, so “{without.last_label}” becomes "
           f"“{with_nl.last_label}” (still {len(with_nl.ids)} tokens)" if merged else
           f"the newline is a token of its own (“{with_nl.last_label}”, {len(without.ids)} → {len(with_nl.ids)} "
           "tokens)")
    g0, p0 = label(int(without.top_ids[0])), float(without.top_probs[0])
    g1, p1 = label(int(with_nl.top_ids[0])), float(with_nl.top_probs[0])
    same = g0 == g1
    return (f"With this text {how}. Without it the model's top guess is “{g0}” (p = {p0:.3f}); with it, "
            f"“{g1}” (p = {p1:.3f})" + (" — the same token." if same else " — a different token: the model predicts "
                                        "what follows the last token, and the two texts end in different tokens."))
