"""Paged KV-cache memory (vLLM's PagedAttention, Kwon et al. 2023) against contiguous allocation, simulated on
request lengths — bookkeeping only, no tensors.

A request has a prompt of P tokens and produces O more; its cache grows from P to P + O positions.
- **Contiguous**: each request gets one slab of `max_len` positions (the model's context) up front, because
  nobody knows in advance how long its output will be. Reserved = max_len, used = its current length.
- **Paged**: the cache is cut into fixed blocks of `block_size` positions; a request's *block table* lists the
  physical blocks that hold its logical blocks 0, 1, 2, … in order, anywhere in memory. A new block is taken from
  the free list only when the last one is full, so at most block_size − 1 positions per request are idle.
  A finished request's blocks go back to the free list and are reused (lowest id first) by others.

Fragmentation here is *internal*: positions reserved but not (yet) holding a key. (The external fragmentation of
real allocators, gaps between slabs, is not modelled: a slab is assumed to fit whenever the total does.)

Worked example: block size 16, requests of 10, 17 and 33 positions → 1 + 2 + 3 = 6 blocks = 96 positions
reserved for 60 used (36 idle); contiguous with max_len 64 reserves 3 × 64 = 192.

The schedule is the simplest one: every request arrives at step 0 (the prefill writes its prompt); each decode
step adds one position to each request still generating; a request that has all P + O positions is freed at the
next step. What is out: arrival over time, admission control, preemption and swapping, prefix sharing,
copy-on-write for beam search, and sliding windows (a windowed layer would hold at most w positions per request).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class Request:
    prompt: int  # P: positions written by the prefill
    output: int  # O: tokens generated, one decode step each

    @property
    def total(self) -> int:
        return self.prompt + self.output

    def length_at(self, step: int) -> int:
        """Positions held after `step` decode steps (0 once finished and freed, from step O + 1 on)."""
        return 0 if step > self.output else self.prompt + step


def blocks_needed(n_positions: int, block_size: int) -> int:
    """ceil(n / block_size): 10, 17, 33 positions in blocks of 16 -> 1, 2, 3."""
    return -(-n_positions // block_size)


@dataclass(frozen=True)
class PagedState:
    """Memory after one step of the paged schedule."""

    step: int
    lengths: tuple[int, ...]  # positions held per request (0 = not live)
    tables: tuple[tuple[int, ...], ...]  # per request, its physical block ids in logical order
    n_blocks: int  # physical blocks the pool has needed so far (the high-water mark of block ids + 1)

    @property
    def used(self) -> int:
        return sum(self.lengths)

    def reserved(self, block_size: int) -> int:
        return block_size * sum(len(t) for t in self.tables)

    def owner_map(self) -> np.ndarray:
        """(n_blocks,) the request owning each physical block, −1 = free."""
        own = np.full(self.n_blocks, -1)
        for r, t in enumerate(self.tables):
            own[list(t)] = r
        return own


def simulate_paged(requests: Sequence[Request], block_size: int) -> list[PagedState]:
    """The paged schedule, one state per step from the prefill (step 0) until every request is freed."""
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    free: list[int] = []  # a heap of freed physical ids: the lowest is reused first
    next_new = 0  # the pool grows when nothing is free
    tables: list[list[int]] = [[] for _ in requests]
    states = []
    last = max((r.output for r in requests), default=0) + 1  # the step at which the longest is freed
    for step in range(last + 1):
        for r, req in enumerate(requests):
            n = req.length_at(step)
            if n == 0 and tables[r]:  # finished: every block back to the free list
                for b in tables[r]:
                    heapq.heappush(free, b)
                tables[r] = []
            while len(tables[r]) < blocks_needed(n, block_size):
                if free:
                    tables[r].append(heapq.heappop(free))
                else:
                    tables[r].append(next_new)
                    next_new += 1
        states.append(PagedState(step, tuple(q.length_at(step) for q in requests), tuple(tuple(t) for t in tables),
                                 next_new))
    return states


@dataclass(frozen=True)
class MemoryOverTime:
    steps: np.ndarray  # (S,)
    used: np.ndarray  # (S,) positions holding a key
    paged: np.ndarray  # (S,) positions reserved in blocks
    contiguous: np.ndarray  # (S,) positions reserved as max_len slabs of the live requests
    live: np.ndarray  # (S,) requests not yet freed


def memory_over_time(requests: Sequence[Request], block_size: int, max_len: int) -> MemoryOverTime:
    """Positions used and reserved at every step under both schemes (multiply by bytes per position)."""
    states = simulate_paged(requests, block_size)
    live = np.array([sum(n > 0 for n in s.lengths) for s in states])
    return MemoryOverTime(np.array([s.step for s in states]), np.array([s.used for s in states]),
                          np.array([s.reserved(block_size) for s in states]), live * max_len, live)


def fragmentation(used: int, reserved: int) -> float:
    """Share of the reserved positions that hold nothing: 1 − used / reserved (0 when nothing is reserved)."""
    return 1 - used / reserved if reserved else 0.0


def requests_that_fit(requests: Sequence[Request], memory_bytes: int, bytes_per_position: int, block_size: int,
                      max_len: int) -> dict[str, int]:
    """How many of these requests can be in flight at once in `memory_bytes`, each at its full length P + O
    (the worst moment): taken in order, cycling through the list, until the next one does not fit.

    contiguous: floor(M / (max_len · bytes)) whatever the lengths; paged: blocks of the actual lengths;
    exact: positions with no rounding at all (the bound paging approaches as blocks shrink).
    Blocks of 16, lengths [10, 17, 33], 96 positions of memory -> contiguous (max_len 64) 1; paged 3
    (1 + 2 + 3 blocks = 96 positions); exact 5 (10 + 17 + 33, then 10 + 17 again: 87 ≤ 96).
    """
    if not requests:
        return {"contiguous": 0, "paged": 0, "exact": 0}
    budget = memory_bytes // bytes_per_position  # positions that fit
    out = {"contiguous": int(budget // max_len)}
    for key, size in (("paged", lambda n: blocks_needed(n, block_size) * block_size), ("exact", lambda n: n)):
        sizes = [size(min(r.total, max_len)) for r in requests]
        per_cycle = sum(sizes)
        full, left = divmod(budget, per_cycle) if per_cycle else (0, 0)
        n = full * len(sizes)
        for s in sizes:
            if s > left:
                break
            left -= s
            n += 1
        out[key] = int(n)
    return out


def exchanges_from_text(text: str, encode, max_len: Optional[int] = None) -> list[Request]:
    """Real request lengths from a play: each speech (a block between blank lines that starts with a
    speaker's heading) is a prompt, the next speech its reply. Token counts via `encode`, each capped so that
    prompt + reply fits in `max_len` (the reply is cut first)."""
    speeches = [b for b in text.split("\n\n") if b.strip() and b.split("\n", 1)[0].rstrip().endswith(".")
                and b.split("\n", 1)[0].isupper() and "\n" in b]
    lens = [len(encode(s)) for s in speeches]
    out = []
    for p, o in zip(lens, lens[1:]):
        if max_len is not None:
            p = min(p, max_len - 1)
            o = min(o, max_len - p)
        out.append(Request(p, max(1, o)))
    return out
