"""Step-through generation: prefill once, then one cached decode step per click — and every step kept.

    s = Stepper(cfg, prompt_ids, seed=0, label=token_label)
    s.prefill(model, sampler)      # one parallel pass over the whole prompt  -> record 0, first token chosen
    s.next(model, sampler)         # feed the last chosen token: one decode step -> record 1
    s.back(model)                  # exact undo: cache truncated, generator state restored, record popped
    s.run_n(model, 5, sampler); s.reset(model, sampler, seed=1)

Record k is what the k-th model call made (k = 0 is the prefill): its logits predict position P + k (P prompt
tokens) and its chosen token is fed by call k + 1. So after the prefill and n decode steps the cache holds
P + n positions, n + 1 tokens have been chosen, and the last one waits to be fed. That wait is what makes
sampler changes cheap: the last choice can be redrawn from the stored logits (`resample_last`) without a
model call, because nothing downstream has seen it yet.

Randomness is a seeded `np.random.Generator` whose state is saved before every draw, so Back then Next draws
the same token. The state is plain data (ids, the KV cache's tensors, the generator's state dict, records)
meant for one user's `st.session_state`; the model is passed to each call and never written to — it is
shared by every session.

Each record keeps only what is small: the logits (V floats), the new token's attention row per layer and the
counts; the full sampling breakdown is recomputed on demand by `StepRecord.result()` (one softmax, ~0.1 ms),
which replays the stored generator state and so gives the same token.

What it does not do: batches, beam search, stop tokens (our models have none; generation runs to the context).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from model.accounting.arch import arch_from_model_config, attention_variants
from model.accounting.counts import decode_step_flops, kv_cache_bytes, prefill_flops
from model.decoding.generate import context_room
from model.net.kv_cache import KVCache
from model.decoding.sampling import SampleResult, SamplerConfig, sample
from model.net.trace import run_with_trace

CACHE_DTYPE = "fp32"  # the app's cache holds float32 K and V (4 bytes a number)


@dataclass
class StepRecord:
    index: int  # 0 = the prefill, k = the k-th decode step
    fed: tuple[int, ...]  # ids fed by this call: the whole prompt for the prefill, one token after
    first_pos: int  # absolute position of fed[0]
    logits: np.ndarray  # (V,) float32, the next-token logits this call produced (the last fed position's)
    sampler: SamplerConfig  # the settings the token below was drawn with
    rng_before: dict  # the generator's state before the draw (replaying it gives the same token)
    token: int  # the chosen id (fed by the next call)
    label: str  # its display label
    prob: float  # its probability in the raw softmax
    rank: int  # its 0-based rank in the raw softmax
    attn: list[np.ndarray]  # per layer, [head, n_keys]: the last fed token's attention row (softmax, sums to 1)
    key_positions: np.ndarray  # (n_keys,) absolute positions those rows attend over
    cache_len: int  # positions seen after this call (= cache.length)
    cache_start: int  # oldest position still held (> 0 only once a sliding window evicts)
    cache_shapes: list[tuple[tuple[int, ...], tuple[int, ...]]]  # per layer (K shape, V shape) after this call
    cache_bytes: int  # bytes of every K and V after this call
    flops_cached: int  # matmul FLOPs of this call as run (the prefill: its one parallel pass)
    flops_recompute: int  # the same next-token logits without a cache: every layer at every position, the
    #                       unembedding at the last only (the only logits a step uses)

    @property
    def is_prefill(self) -> bool:
        return self.index == 0

    @property
    def n_cached(self) -> int:
        return self.cache_len - self.cache_start

    def result(self, sampler: Optional[SamplerConfig] = None) -> SampleResult:
        """Every distribution of this step's draw (raw, tempered, kept sets, final), replayed from the stored
        logits and generator state. With `sampler`, what the draw would have been under other settings."""
        return _draw(self.logits, sampler or self.sampler, self.rng_before)[0]


def _generator(state: dict) -> np.random.Generator:
    g = np.random.default_rng()
    g.bit_generator.state = state
    return g


def _draw(logits: np.ndarray, sampler: SamplerConfig, rng_state: dict) -> tuple[SampleResult, dict]:
    """One draw from the state `rng_state`; returns the result and the generator's state after it."""
    g = _generator(rng_state)
    res = sample(logits, sampler, g)
    return res, g.bit_generator.state


def kv_bytes_by_attention(cfg, context: int) -> dict[str, int]:
    """The KV cache after `context` positions for the MHA, GQA and MQA versions of this model (fp32, batch 1),
    from `model.accounting` (2·L·nkv·hd·4 bytes a position)."""
    arch = arch_from_model_config(cfg)
    return {k: kv_cache_bytes(a, context, 1, CACHE_DTYPE) for k, a in attention_variants(arch).items()}


class Stepper:
    """One user's generation in progress. Build it, `prefill`, then `next` / `back` / `run_n` / `reset`.

    Operations return a message ("" when all went well) instead of raising for what a user can cause
    (an empty prompt, a full context), so a page can show it.
    """

    def __init__(self, cfg, prompt_ids, seed: int = 0, label: Callable[[int], str] = str) -> None:
        self.cfg = cfg
        self.prompt_ids = [int(i) for i in prompt_ids]
        self.seed = int(seed)
        self.label = label
        self.arch = arch_from_model_config(cfg)
        self._pattern_names = [f"blocks.{i}.attn.hook_pattern" for i in range(cfg.n_layers)]
        self._clear()

    def _clear(self) -> None:
        self.cache = KVCache.for_model(self.cfg)
        self.rng_state: dict = np.random.default_rng(self.seed).bit_generator.state  # after the last draw
        self.records: list[StepRecord] = []
        self.message = ""  # why the last operation did nothing, or stopped early

    # --- what the page reads --------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The prefill has run: there is a current step."""
        return bool(self.records)

    @property
    def generated_ids(self) -> list[int]:
        """Every chosen token, the last one included (it is not in the cache yet)."""
        return [r.token for r in self.records]

    @property
    def n_steps(self) -> int:
        """Decode steps taken (the prefill is not one)."""
        return max(0, len(self.records) - 1)

    @property
    def room(self) -> Optional[int]:
        """Decode steps still possible before the context is full; None = no limit (a sliding window)."""
        return context_room(self.cfg, self.cache.length)

    def can_back(self) -> bool:
        return len(self.records) > 1

    # --- operations -----------------------------------------------------------------------------------

    def prefill(self, model, sampler: SamplerConfig) -> str:
        """Start over from the prompt: one parallel forward over all of it, then draw the first token."""
        self._clear()
        P = len(self.prompt_ids)
        if P == 0:
            self.message = "The prompt is empty: type something in the sidebar for the model to continue."
        elif P > self.cfg.max_seq_len and context_room(self.cfg, 0) is not None:
            self.message = (f"The prompt has {P} tokens; this model's context is {self.cfg.max_seq_len}. "
                            "Shorten it to generate.")
        else:
            self._call(model, self.prompt_ids, sampler)
            if self.room == 0:
                self.message = self._full_message()
        return self.message

    def next(self, model, sampler: SamplerConfig) -> str:
        """Feed the last chosen token: one cached decode step, then draw the next token."""
        self.message = ""
        if not self.ready:
            return self.prefill(model, sampler)
        if self.room == 0:
            self.message = self._full_message()
            return self.message
        self._call(model, [self.records[-1].token], sampler)
        return self.message

    def run_n(self, model, n: int, sampler: SamplerConfig) -> str:
        for _ in range(max(0, int(n))):
            if self.next(model, sampler):
                break
        return self.message

    def back(self, model=None) -> str:
        """Undo the last decode step exactly: the cache forgets its position, the generator rewinds, the
        record goes. The prefill itself is not undone (Reset does that)."""
        self.message = ""
        if not self.can_back():
            self.message = "Nothing to undo: this is the prefill. Reset starts over."
            return self.message
        last = self.records.pop()
        self.rng_state = last.rng_before
        target = self.cache.length - 1
        if self.cache.start > 0:
            # A sliding window has evicted positions, and the cache cannot bring them back: rebuild it from the
            # fed ids (the window masks the prefill the same way, so the kept rows agree to float rounding).
            if model is None:
                raise ValueError("stepping back past an evicted window needs the model to rebuild the cache")
            ids = (self.prompt_ids + self.generated_ids)[:target]  # every token fed so far, minus the last
            self.cache = KVCache.for_model(self.cfg)
            with torch.no_grad():
                model(torch.tensor([ids]), cache=self.cache)
        else:
            self.cache.truncate(target)
        return self.message

    def reset(self, model, sampler: SamplerConfig, seed: Optional[int] = None) -> str:
        if seed is not None:
            self.seed = int(seed)
        return self.prefill(model, sampler)

    def resample_last(self, sampler: SamplerConfig) -> bool:
        """Redraw the current (last) token under new settings from its stored logits — no model call.

        Valid because the last token is not in the cache yet. Returns True when the choice changed."""
        if not self.ready or self.records[-1].sampler == sampler:
            return False
        r = self.records[-1]
        res, after = _draw(r.logits, sampler, r.rng_before)
        changed = res.token != r.token
        r.sampler, r.token, r.label, r.prob, r.rank = sampler, res.token, self.label(res.token), res.prob, res.rank
        self.rng_state = after
        return changed

    # --- one model call ---------------------------------------------------------------------------------

    def _call(self, model, fed: list[int], sampler: SamplerConfig) -> None:
        first = self.cache.length
        tr = run_with_trace(model, fed, cache=self.cache, names=self._pattern_names)
        logits = tr.logits[-1].astype(np.float32)  # (V,) the last fed position's prediction
        rows = [tr[n][:, -1, :].astype(np.float32) for n in self._pattern_names]  # per layer [head, n_keys]
        last = self.cache.length - 1
        key_positions = np.arange(last - rows[0].shape[-1] + 1, last + 1)  # (n_keys,)
        res, after = _draw(logits, sampler, self.rng_state)
        c = self.cache.length
        if len(fed) > 1 or first == 0:
            flops = flops_re = prefill_flops(self.arch, 1, c).total
        else:
            flops = decode_step_flops(self.arch, 1, c, cached=True).total
            flops_re = decode_step_flops(self.arch, 1, c, cached=False).total
        self.records.append(StepRecord(
            index=len(self.records), fed=tuple(fed), first_pos=first, logits=logits, sampler=sampler,
            rng_before=self.rng_state, token=res.token, label=self.label(res.token), prob=res.prob, rank=res.rank,
            attn=rows, key_positions=key_positions, cache_len=c, cache_start=self.cache.start,
            cache_shapes=self.cache.shapes(), cache_bytes=self.cache.nbytes(), flops_cached=flops,
            flops_recompute=flops_re,
        ))
        self.rng_state = after

    def _full_message(self) -> str:
        return (f"The context is full: this model was trained on {self.cfg.max_seq_len} positions and the cache "
                f"holds {self.cache.length}. The last token shown was chosen but cannot be fed. "
                "Back or Reset to go on, or shorten the prompt.")

    # --- views --------------------------------------------------------------------------------------------

    def cache_rows(self, layer: int, upto: Optional[int] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Layer `layer`'s cached K and V as [position, kv_head · d_head] arrays, and the positions of the rows.

        `upto`: show the cache as it was when it held that many positions (the cache only appends, so its first
        rows are exactly what it held then; with an evicting window, rows still held)."""
        k, v = self.cache.k[layer], self.cache.v[layer]
        if k is None:
            empty = np.zeros((0, self.cfg.n_kv_heads * self.cfg.head_dim), dtype=np.float32)
            return empty, empty, np.arange(0)
        positions = np.arange(self.cache.layer_start(layer), self.cache.length)  # (n_cached,) of this layer
        K = k[0].permute(1, 0, 2).reshape(k.shape[2], -1).numpy()  # (n_cached, nkv·hd)
        V = v[0].permute(1, 0, 2).reshape(v.shape[2], -1).numpy()  # (n_cached, nkv·hd)
        if upto is not None:
            keep = positions < upto
            K, V, positions = K[keep], V[keep], positions[keep]
        return K, V, positions

    def token_ids(self) -> list[int]:
        """Prompt then every chosen token: position p holds token_ids()[p]."""
        return self.prompt_ids + self.generated_ids
