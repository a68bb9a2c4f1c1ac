"""Batched decoding with per-sequence KV caches, in slots: B sequences of different lengths advance one token
each per step, and under a sliding window each cache is Mistral's rolling buffer (position p lives in slot
p mod W, overwriting position p − W).

    cache = SlotCache.for_model(cfg, batch=3)
    logits = prefill(model, [[5, 6, 7], [8], [9, 10]], cache)       # (3, V): each prompt's last position
    logits = decode_step(model, torch.tensor([1, 2, 3]), cache)     # (3, V): one new token per sequence

`SlotCache` holds, per layer, K and V of shape (B, n_kv_heads, capacity, head_dim) and one length per sequence.
Slot s of sequence b holds position p = P_b − ((P_b − s) mod capacity), P_b its newest position: with
capacity = the context that is simply slot s = position s; with capacity = W it is the rolling buffer.
`slot_positions` gives that map, the page draws it, `decode_step` masks by it.

Why not `Transformer.forward(ids, cache)`: it runs one position vector for the whole batch (every sequence at
the same length, sharing one `KVCache`). Here each sequence is at its own position, so `decode_step` calls the
model's own modules (embedding, norms, projections, MLP, unembedding; `apply_rope`) in the same order and
writes the per-sequence part — RoPE angles, cache slots, mask, ALiBi distance — itself. Hook points are
not recorded on this path. `tests/test_inference.py` checks it against the model's own cached forward, one
sequence at a time, on every variant.

Worked example: capacity 4 (a window of 4), after 6 positions: slots hold positions [4, 5, 2, 3]; position 6
goes to slot 2 and evicts position 2.

What is out: paging (model/inference/paging.py simulates it), continuous batching (sequences joining and
leaving between steps), sampling (the caller's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from model.net.kv_cache import KVCache
from model.net.positions import apply_rope, rope_angles, rope_attention_factor, sinusoidal_table


def slot_of(position: int, capacity: int) -> int:
    """Where position p is written: p mod capacity (slot = position until a window wraps around)."""
    return position % capacity


def slot_positions(length: int, capacity: int) -> np.ndarray:
    """The position each slot holds after `length` positions (−1 = never written). length=6, capacity=4 ->
    [4, 5, 2, 3]; length=2, capacity=4 -> [0, 1, −1, −1]."""
    s = np.arange(capacity)
    newest = length - 1
    pos = newest - np.mod(newest - s, capacity)  # the latest position ≤ newest that maps to slot s
    return np.where(pos >= 0, pos, -1)


@dataclass
class SlotCache:
    k: list[torch.Tensor]  # per layer (B, nkv, capacity, hd)
    v: list[torch.Tensor]  # per layer (B, nkv, capacity, hd)
    lengths: torch.Tensor  # (B,) positions seen by each sequence = the position its next token gets
    window: Optional[int]  # the ring's window: the model's sliding window on every layer (None = no ring)

    @classmethod
    def for_model(cls, cfg, batch: int, capacity: Optional[int] = None) -> "SlotCache":
        """Capacity: the window when every layer has it (older keys are never read again), else the context. A
        model whose window is on some layers only (an imported Qwen2's `sliding_layers`) gets no ring: its full
        layers read every position, and `decode_step` masks the windowed ones layer by layer."""
        ring = cfg.sliding_window if cfg.sliding_layers is None else None
        cap = capacity or ring or cfg.max_seq_len
        if ring is not None and cap < ring:
            raise ValueError(f"capacity {cap} is smaller than the window {ring}")
        shape = (batch, cfg.n_kv_heads, cap, cfg.head_dim)
        return cls([torch.zeros(shape) for _ in range(cfg.n_layers)], [torch.zeros(shape) for _ in range(cfg.n_layers)],
                   torch.zeros(batch, dtype=torch.long), ring)

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2]

    @property
    def batch(self) -> int:
        return self.k[0].shape[0]

    def key_positions(self) -> torch.Tensor:
        """(B, capacity): the absolute position in each slot, −1 where empty (`slot_positions` per sequence)."""
        newest = (self.lengths - 1)[:, None]  # (B, 1)
        pos = newest - torch.remainder(newest - torch.arange(self.capacity)[None, :], self.capacity)  # (B, cap)
        return torch.where(pos >= 0, pos, torch.full_like(pos, -1))

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


@torch.no_grad()
def prefill(model, prompts: list[list[int]], cache: SlotCache) -> torch.Tensor:
    """Run each prompt through the model's own forward (one `KVCache` each) and copy what it keeps into the
    sequence's slots. Returns the next-token logits of each prompt's last position, (B, V)."""
    if len(prompts) != cache.batch:
        raise ValueError(f"{len(prompts)} prompts for a cache of batch {cache.batch}")
    out = []
    for b, ids in enumerate(prompts):
        if not ids:
            raise ValueError(f"prompt {b} is empty")
        if len(ids) > cache.capacity and cache.window is None:
            raise ValueError(f"prompt {b} has {len(ids)} tokens; the cache holds {cache.capacity}")
        kv = KVCache.for_model(model.cfg)
        out.append(model(torch.tensor([ids]), cache=kv)[0, -1])  # (V,)
        for layer in range(model.cfg.n_layers):
            held = torch.arange(kv.layer_start(layer), kv.length)  # positions the model's cache kept in this layer
            held = held[-cache.capacity:]  # a ring keeps the last `capacity` of them
            slots = torch.remainder(held, cache.capacity)
            cache.k[layer][b, :, slots] = kv.k[layer][0, :, -len(held):]  # (nkv, n_held, hd)
            cache.v[layer][b, :, slots] = kv.v[layer][0, :, -len(held):]
        cache.lengths[b] = kv.length
    return torch.stack(out)  # (B, V)


@torch.no_grad()
def decode_step(model, tokens: torch.Tensor, cache: SlotCache) -> torch.Tensor:
    """Feed one token per sequence (tokens (B,)), each at its own position; write its K/V into its slot and
    attend over its own cache. Returns the next-token logits (B, V)."""
    cfg = model.cfg
    B = tokens.shape[0]
    nh, nkv, hd, g = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.group_size
    pos = cache.lengths.clone()  # (B,) each new token's position
    if cfg.pos_encoding == "learned" and int(pos.max()) >= cfg.max_seq_len:
        raise ValueError(f"position {int(pos.max())} is past the learned position table (max_seq_len={cfg.max_seq_len})")
    if cache.window is None and int(pos.max()) >= cache.capacity:
        raise ValueError(f"a sequence is at position {int(pos.max())}; the cache holds {cache.capacity}")
    rows = torch.arange(B)
    slot = torch.remainder(pos, cache.capacity)  # (B,)
    cache.lengths += 1
    k_pos = cache.key_positions()  # (B, cap) after the write
    rel = pos[:, None] - k_pos  # (B, cap) how far back each slot's key is
    allowed = (k_pos >= 0) & (rel >= 0)  # (B, cap); each layer's window is applied below
    x = model.tok_embed(tokens)[:, None] * model.embed_scale  # (B, 1, d)
    if cfg.pos_encoding == "learned":
        x = x + model.pos_embed(pos)[:, None]  # (B, 1, d)
    elif cfg.pos_encoding == "sinusoidal":
        x = x + sinusoidal_table(pos, cfg.d_model)[:, None]  # (B, 1, d)
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        h = block.ln1(x) if block.pre_norm else x  # (B, 1, d) post-norm: the stream is normalised already
        q = attn.W_q(h).view(B, nh, hd)  # (B, nh, hd)
        k = attn.W_k(h).view(B, nkv, hd)  # (B, nkv, hd)
        v = attn.W_v(h).view(B, nkv, hd)  # (B, nkv, hd)
        if cfg.pos_encoding == "rope":
            angles = rope_angles(pos, hd, cfg.rope_theta, cfg.rope_scaling)  # (B, hd/2): one position per sequence
            f = rope_attention_factor(cfg.rope_scaling)
            q = apply_rope(q[None], angles, f)[0]  # apply_rope's time axis carries the batch here
            k = apply_rope(k[None], angles, f)[0]
        cache.k[layer][rows, :, slot] = k  # (B, nkv, hd) into each sequence's own slot
        cache.v[layer][rows, :, slot] = v
        K = cache.k[layer].repeat_interleave(g, dim=1) if g > 1 else cache.k[layer]  # (B, nh, cap, hd)
        V = cache.v[layer].repeat_interleave(g, dim=1) if g > 1 else cache.v[layer]  # (B, nh, cap, hd)
        scores = torch.einsum("bhd,bhcd->bhc", q, K) / math.sqrt(hd)  # (B, nh, cap)
        if cfg.pos_encoding == "alibi":
            scores = scores - attn.slopes[None, :, None] * rel[:, None, :].to(scores.dtype)
        window = cfg.layer_window(layer)
        seen = allowed & (rel < window) if window is not None else allowed  # (B, cap)
        scores = scores.masked_fill(~seen[:, None, :], float("-inf"))
        z = torch.einsum("bhc,bhcd->bhd", F.softmax(scores, dim=-1), V)  # (B, nh, hd)
        if block.pre_norm:
            x = x + attn.W_o(z.reshape(B, 1, nh * hd))  # (B, 1, d)
            x = x + block.mlp(block.ln2(x))  # (B, 1, d)
        else:  # post-norm (Block.forward): norm after each residual add
            x = block.ln1(x + attn.W_o(z.reshape(B, 1, nh * hd)))  # (B, 1, d)
            x = block.ln2(x + block.mlp(x))  # (B, 1, d)
    if model.ln_final is not None:  # None: post-norm
        x = model.ln_final(x)  # (B, 1, d)
    return F.linear(x, model.W_U)[:, 0]  # (B, V)


# --------------------------------------------------------------------------------------------------------
# The rolling buffer, step by step (what the page draws)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollingStep:
    position: int  # the position written by this step (the prefill's: its last)
    slot: int  # where it went
    evicted: int  # the position it overwrote (−1: the slot was empty)
    slots: np.ndarray  # (capacity,) position held in each slot after the step, −1 = empty
    token: int  # the token at `position`


@torch.no_grad()
def rolling_generation(model, prompt: list[int], n_steps: int, temperature: float = 0.8, seed: int = 0,
                       capacity: Optional[int] = None) -> tuple[list[int], list[RollingStep]]:
    """Prefill `prompt` into a batch-1 `SlotCache`, then `n_steps` decode steps (sampled at `temperature` with
    a seeded generator; 0 = greedy). Returns every token (prompt then generated) and one `RollingStep` per
    model call: record 0 is the prefill, record k the k-th decode step. Each record is read back from the real
    cache's key positions."""
    from model.decoding.sampling import SamplerConfig, sample

    cache = SlotCache.for_model(model.cfg, 1, capacity)
    rng = np.random.default_rng(seed)
    sampler = SamplerConfig(temperature=temperature)
    ids = list(prompt)
    logits = prefill(model, [ids], cache)[0]
    last = len(ids) - 1  # the prefill's last write; it overwrote position last − capacity if the prompt wrapped
    steps = [RollingStep(last, slot_of(last, cache.capacity), last - cache.capacity if last >= cache.capacity else -1,
                         cache.key_positions()[0].numpy().copy(), ids[-1])]
    for _ in range(n_steps):
        if model.cfg.pos_encoding == "learned" and len(ids) >= model.cfg.max_seq_len:
            break
        if cache.window is None and len(ids) >= cache.capacity:
            break
        tok = sample(logits.double().numpy(), sampler, rng).token
        before = cache.key_positions()[0].numpy().copy()
        p = len(ids)
        logits = decode_step(model, torch.tensor([tok]), cache)[0]
        ids.append(tok)
        s = slot_of(p, cache.capacity)
        steps.append(RollingStep(p, s, int(before[s]), cache.key_positions()[0].numpy().copy(), tok))
    return ids, steps


def receptive_field(query: int, window: Optional[int], n_layers: int) -> list[int]:
    """The earliest position that can reach `query` through 1, 2, … n_layers attention layers: each layer lets
    a token read w − 1 positions further back, so after l layers it is query − l·(w − 1) (0 without a window).
    query=200, window=64, 4 layers -> [137, 74, 11, 0]."""
    return [max(0, query - l * (window - 1)) if window else 0 for l in range(1, n_layers + 1)]
