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
