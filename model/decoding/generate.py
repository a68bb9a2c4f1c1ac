"""Generation = prefill once, then one cached decode step per token, each choice made by `sampling.sample`.

    python -m model.decoding.generate --prompt "ROMEO." --max-new-tokens 60 --temperature 0.8 --seed 0
    python -m model.decoding.generate --prompt "ROMEO." --max-new-tokens 20 --temperature 0 --json

Temperature 0 is greedy and deterministic; otherwise the seed fixes the draw. Generation stops at the
model's context length (`max_seq_len`) unless the model has a sliding window, whose cache never grows past it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from model.net.kv_cache import KVCache
from model.decoding.sampling import SampleResult, SamplerConfig, sample


@dataclass
class Generation:
    prompt_ids: list[int]
    generated_ids: list[int] = field(default_factory=list)
    steps: list[SampleResult] = field(default_factory=list)
    stopped: str = ""  # why it ended early ("" when it made every token asked for)


def context_room(cfg, length: int) -> int:
    """How many more positions the model can take after `length` (unbounded with a sliding window)."""
    if cfg.sliding_window is not None and cfg.pos_encoding != "learned":
        return sys.maxsize
    return max(0, cfg.max_seq_len - length)


@torch.no_grad()
def generate(model, prompt_ids: list[int], max_new_tokens: int, sampler: SamplerConfig, seed: int = 0) -> Generation:
    if not prompt_ids:
        raise ValueError("the prompt is empty: give at least one token to continue")
    cfg = model.cfg
    if len(prompt_ids) > cfg.max_seq_len and context_room(cfg, 0) != sys.maxsize:
        raise ValueError(f"the prompt has {len(prompt_ids)} tokens; this model's context is {cfg.max_seq_len}")
    rng = np.random.default_rng(seed)
    cache = KVCache.for_model(cfg)
    out = Generation(prompt_ids=list(prompt_ids))
    logits = model(torch.tensor([prompt_ids]), cache=cache)[0, -1]  # (V,) prefill: all prompt tokens at once
    for _ in range(max_new_tokens):
        res = sample(logits.numpy(), sampler, rng)
        out.generated_ids.append(res.token)
        out.steps.append(res)
        if len(out.generated_ids) == max_new_tokens:
            break
        if context_room(cfg, cache.length) == 0:
            out.stopped = f"reached the model's context of {cfg.max_seq_len} tokens"
            break
        logits = model(torch.tensor([[res.token]]), cache=cache)[0, -1]  # (V,) one decode step
    return out


def main(argv: Optional[list[str]] = None) -> int:
    from model.net.checkpoints import DEFAULT_VARIANT, VARIANTS, load_variant
    from model.text.tokenizer import decode, encode

    p = argparse.ArgumentParser(description="Continue a prompt with one of the shipped models.")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", default=DEFAULT_VARIANT, choices=list(VARIANTS))
    p.add_argument("--json", action="store_true", help="print one JSON object: prompt_ids, generated_ids, text")
    a = p.parse_args(argv)
    try:
        if a.max_new_tokens < 0:
            raise ValueError("--max-new-tokens must be >= 0")
        sampler = SamplerConfig(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, min_p=a.min_p)
        model = load_variant(a.variant)
        ids = encode(a.prompt)
        if not ids:
            raise ValueError("the prompt is empty: give at least one character to continue")
        room = max(1, model.cfg.max_seq_len - a.max_new_tokens)  # keep the end of a long prompt, leave room to write
        if len(ids) > room and context_room(model.cfg, 0) != sys.maxsize:
            print(f"note: the prompt is {len(ids)} tokens; keeping its last {room} so that "
                  f"{a.max_new_tokens} new tokens fit the {model.cfg.max_seq_len}-token context", file=sys.stderr)
            ids = ids[-room:]
        gen = generate(model, ids, a.max_new_tokens, sampler, a.seed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = decode(gen.generated_ids)
    if a.json:
        print(json.dumps({"prompt_ids": gen.prompt_ids, "generated_ids": gen.generated_ids, "text": text,
                          "variant": a.variant, "stopped": gen.stopped}))
    else:
        print(text)
        if gen.stopped:
            print(f"[{gen.stopped}]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
