"""How likely a continuation is under the model, and how much it repeats itself — to put greedy, beam search and
sampling side by side on the same numbers.

    token_logprobs(model, prompt, ids)   log p(ids[t] | prompt, ids[:t]) for every t: one forward, T = 1, no filters
    repeated_ngram_share(ids, n)         the share of the n-grams that already occurred earlier in `ids`
    longest_repeat(ids)                  the longest run of tokens that occurs twice in `ids` (may overlap)

Worked example: ids = [5, 6, 7, 5, 6, 7, 5] has 3-grams 567, 675, 756, 567, 675 — the last two are repeats, so
repeated_ngram_share = 2 / 5 = 0.4; the longest repeat is 5 6 7 5 (positions 0–3 and 3–6), length 4. A
continuation stuck in a loop drives the share towards 1.
What it does not do: judge quality — a continuation can be likely, varied and still nonsense.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def token_logprobs(model, prompt_ids: list[int], ids: list[int]) -> np.ndarray:
    """(len(ids),) natural-log probability the model gives each of `ids` after the prompt and the ids before it."""
    if not ids:
        return np.zeros(0)
    seq = torch.tensor([list(prompt_ids) + list(ids)])  # (1, P + T)
    logits = model(seq)[0, len(prompt_ids) - 1 : -1].double()  # (T, V) the logits that predicted each of ids
    logp = torch.log_softmax(logits, dim=-1)  # (T, V)
    return logp[torch.arange(len(ids)), torch.tensor(ids)].numpy()


def repeated_ngram_share(ids: list[int], n: int = 3) -> float:
    """Share of `ids`' n-grams that already occurred earlier in `ids` (0 when there are none)."""
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    if not grams:
        return 0.0
    seen, repeats = set(), 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)


def longest_repeat(ids: list[int]) -> int:
    """Length of the longest run of tokens that occurs at two different places in `ids` (overlap allowed)."""
    best, n = 0, len(ids)
    for shift in range(1, n):  # compare ids with itself shifted: a run of equal pairs is a repeat
        run = 0
        for i in range(n - shift):
            run = run + 1 if ids[i] == ids[i + shift] else 0
            best = max(best, run)
    return best
