"""Generation = prefill once, then one cached decode step per token, each choice made by `sampling.sample`.

    python -m model.decoding.generate --prompt "ROMEO." --max-new-tokens 60 --temperature 0.8 --seed 0
    python -m model.decoding.generate --prompt "ROMEO." --max-new-tokens 20 --temperature 0 --json
    python -m model.decoding.generate --prompt "ROMEO." --max-new-tokens 20 --beams 4 --length-penalty 1 --json
    python -m model.decoding.generate --prompt "ROMEO." --max-new-tokens 40 --speculative 4 --draft draft --json
    python -m model.decoding.generate --model ~/models/SmolLM-135M --prompt "Once upon a time" --temperature 0

Temperature 0 is greedy and deterministic; otherwise the seed fixes the draw. Generation stops at the
model's context length (`max_seq_len`) unless the model has a sliding window, whose cache never grows past it.
`--beams B` runs beam search instead (`beam.py`; deterministic, so temperature and filters do not apply) and adds
the n-best list; `--speculative K` decodes with a draft model (`speculative.py`; same sampler settings) and
adds its acceptance statistics. The JSON keeps its shape (prompt_ids, generated_ids, text) in every mode.
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


def context_room(cfg, length: int) -> Optional[int]:
    """How many more positions the model can take after `length`; None = no limit.

    None, not a big number: a sliding window (without a learned position table, which ends at max_seq_len)
    keeps its cache at the window's size, so the model can go on for ever. max_seq_len=8, length=5 → 3.
    """
    if cfg.sliding_window is not None and cfg.pos_encoding != "learned":
        return None
    return max(0, cfg.max_seq_len - length)


@torch.no_grad()
def generate(model, prompt_ids: list[int], max_new_tokens: int, sampler: SamplerConfig, seed: int = 0) -> Generation:
    if not prompt_ids:
        raise ValueError("the prompt is empty: give at least one token to continue")
    cfg = model.cfg
    if len(prompt_ids) > cfg.max_seq_len and context_room(cfg, 0) is not None:
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
    p.add_argument("--model", default=None, metavar="DIR",
                   help="a local Hugging Face folder (llama, mistral, qwen2, gemma) instead of a shipped variant")
    p.add_argument("--json", action="store_true", help="print one JSON object: prompt_ids, generated_ids, text")
    p.add_argument("--beams", type=int, default=None, metavar="B", help="beam search with B beams (deterministic)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam score = sum log p / length ** this")
    p.add_argument("--early-stopping", choices=["false", "true", "never"], default="false",
                   help="beam search's stopping rule, as in transformers (default false)")
    p.add_argument("--speculative", type=int, default=None, metavar="K", help="speculative decoding, K draft tokens")
    p.add_argument("--draft", default="draft", choices=list(VARIANTS), help="the draft model for --speculative")
    a = p.parse_args(argv)
    if a.beams is not None and a.speculative is not None:
        p.error("--beams and --speculative are two different ways to decode: choose one")
    try:
        if a.max_new_tokens < 0:
            raise ValueError("--max-new-tokens must be >= 0")
        sampler = SamplerConfig(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, min_p=a.min_p)
        if a.model is not None:  # its own weights and tokenizer.json (model/net/hf_import.py)
            from model.net.hf_import import load_hf_model, load_hf_tokenizer

            if a.beams is not None or a.speculative is not None:
                raise ValueError("--beams and --speculative run on the shipped variants only (their tokenizer)")
            tok = load_hf_tokenizer(a.model)  # first: a missing tokenizer is named before any weight is read
            model, encode, decode, a.variant = load_hf_model(a.model), tok.encode, tok.decode, None
        else:
            model = load_variant(a.variant)
        ids = encode(a.prompt)
        if not ids:
            raise ValueError("the prompt is empty: give at least one character to continue")
        room = max(1, model.cfg.max_seq_len - a.max_new_tokens)  # keep the end of a long prompt, leave room to write
        if len(ids) > room and context_room(model.cfg, 0) is not None:
            print(f"note: the prompt is {len(ids)} tokens; keeping its last {room} so that "
                  f"{a.max_new_tokens} new tokens fit the {model.cfg.max_seq_len}-token context", file=sys.stderr)
            ids = ids[-room:]
        extra: dict = {}
        if a.beams is not None:
            gen, extra = _beams(model, ids, a)
        elif a.speculative is not None:
            gen, extra = _speculative(model, ids, a, sampler)
        else:
            gen = generate(model, ids, a.max_new_tokens, sampler, a.seed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = decode(gen.generated_ids)
    if a.json:
        print(json.dumps({"prompt_ids": gen.prompt_ids, "generated_ids": gen.generated_ids, "text": text,
                          "variant": a.variant, "model": a.model, "stopped": gen.stopped, **extra}))
    else:
        print(text)
        if gen.stopped:
            print(f"[{gen.stopped}]", file=sys.stderr)
        for key, v in extra.items():
            print(f"[{key}: {json.dumps(v)}]", file=sys.stderr)
    return 0


def _beams(model, ids: list[int], a) -> tuple[Generation, dict]:
    """Beam search for the CLI: the best hypothesis as the Generation, the n-best list (best first) beside it."""
    from model.decoding.beam import BeamConfig, beam_search
    from model.text.tokenizer import decode

    stop = {"false": False, "true": True, "never": "never"}[a.early_stopping]
    r = beam_search(model, ids, a.max_new_tokens, BeamConfig(a.beams, a.length_penalty, stop))
    best = list(r.best.ids) if r.best else []
    n_best = [{"generated_ids": list(h.ids), "text": decode(list(h.ids)), "score": h.score, "logprob": h.logprob,
               "length": len(h.ids), "ended_by": h.ended_by} for h in r.hypotheses]
    return (Generation(list(ids), best, stopped=r.stopped),
            {"beams": {"num_beams": a.beams, "length_penalty": a.length_penalty, "early_stopping": stop,
                       "forwards": r.forwards, "n_best": n_best}})


def _speculative(model, ids: list[int], a, sampler: SamplerConfig) -> tuple[Generation, dict]:
    """Speculative decoding for the CLI: the tokens as the Generation, the acceptance statistics beside them."""
    from model.decoding.speculative import speculative_generate
    from model.net.checkpoints import load_variant

    r = speculative_generate(model, load_variant(a.draft), ids, a.max_new_tokens, a.speculative, sampler, a.seed)
    return (Generation(list(ids), r.generated_ids, stopped=r.stopped),
            {"speculative": {"draft": a.draft, **r.stats()}})


if __name__ == "__main__":
    sys.exit(main())
