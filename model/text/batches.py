"""Token ids of the corpus splits, and the fixed held-out windows every evaluation scores.

Training batches are drawn in `model/training/train.py` (one seeded generator, the same order for every
variant); this module only turns text into ids and cuts the held-out split into non-overlapping windows.
"""

from __future__ import annotations

import numpy as np


def encoded_split(split: str) -> tuple[np.ndarray, int]:
    """Token ids of a corpus split (uint16) and its length in characters."""
    from model.text.corpus import load_corpus
    from model.text.tokenizer import load_tokenizer  # tiktoken is loaded only when ids are needed

    text = load_corpus(split)
    ids = np.array(load_tokenizer().encode_ordinary(text), dtype=np.uint16)
    return ids, len(text)


def val_windows(val_ids: np.ndarray, seq_len: int) -> np.ndarray:
    """Non-overlapping windows of seq_len + 1 tokens covering the held-out split (fixed, no sampling)."""
    n = (len(val_ids) - 1) // seq_len
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]  # (n, seq_len + 1)
    return val_ids[idx].astype(np.int64)


def token_counts(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """How often each id occurs in `ids`: (vocab_size,) int64."""
    return np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_size)[:vocab_size]


def never_trained(vocab_size: int, split: str = "train") -> np.ndarray:
    """Boolean mask (vocab_size,): the ids that never occur in the split's text — the model never saw them as
    input and never had them as a target, so their embedding rows kept (a decayed version of) their random
    start. For our tokenizer: byte ids never seen alone, ids merged away into longer tokens, <|endoftext|>."""
    ids, _ = encoded_split(split)
    return token_counts(ids, vocab_size) == 0
