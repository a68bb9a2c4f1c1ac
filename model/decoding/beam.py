"""Beam search over the KV cache, with Hugging Face's semantics (`generate(num_beams=B, do_sample=False)`).

Greedy keeps the one most likely continuation; beam search keeps the B most likely partial continuations
("beams"), scored by their summed log-probability, and extends all of them each step:

    prefill the prompt once                          → logits (1, V): one beam, the prompt
    each step  every beam × every token is a candidate, scored  beam's sum + log p(token | beam)
               the pool: the best 2B candidates (2B, so that B go on even if B of them end the text)
               a pool member that ends (end-of-text, or the last position allowed) and ranks in the top B
                 becomes a *hypothesis*, scored  sum / n_generated ** length_penalty; the B best are kept
               the B best pool members that do not end are the next step's beams
    the cache  row i of the cache must hold the past of the beam that new beam i extends: before the B new
               tokens are fed (one forward, batch B) the rows are reordered — `KVCache.reorder(parents)`.
               Several new beams may share a parent (its row is copied) and a parent may have none (its row
               is dropped); feeding without the reorder gives each beam another beam's past, silently.
    stop       at max_new_tokens, or (HF's default `early_stopping=False`) once B hypotheses are kept and the
               best running beam, divided by its *current* length ** length_penalty, cannot beat the worst

Worked example (B = 2, three tokens, no end-of-text): the prompt's log-probs are [-0.5, -1.1, -3.0], so the
beams are (0) at -0.5 and (1) at -1.1; the cache's one row is copied into two: reorder [0, 0]. Next, beam (0)
gives [-1.2, -1.2, -1.0] and beam (1) gives [-0.05, -3.7, -3.7]: sums (0,0) -1.7, (0,1) -1.7, (0,2) -1.5,
(1,0) -1.15, … The best two are (1,0) at -1.15 and (0,2) at -1.5: reorder [1, 0] — the rows swap. Greedy took
token 0 then token 2 (-1.5); the beam found (1, 0) at -1.15 by keeping a first token that looked worse.

Matching transformers exactly (tests/test_decoding.py runs both on our HF export): the pool is 2B wide
(max(2, 1 + number of EOS ids) × B); only the pool's top B may end as hypotheses; the length in the penalty
counts the generated tokens, the ending one included, and not the prompt (transformers 5.x:
`cur_len + 1 - decoder_prompt_len`); `early_stopping` True stops at B hypotheses and "never" stops only when
no beam can win even at max length. Our scores are float64 (HF's float32): numbers agree to ~1e-5.
What it does not do: sampling beams (`do_sample=True`), diverse or constrained beams, batches of prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import torch

from model.decoding.generate import context_room
from model.net.kv_cache import KVCache
from model.text.tokenizer import EOT_ID


@dataclass(frozen=True)
class BeamConfig:
    num_beams: int = 4  # B: beams kept each step (1 = greedy, with hypotheses)
    length_penalty: float = 1.0  # hypothesis score = summed log p / n_generated ** this (HF's default; 0 = raw sum)
    early_stopping: Union[bool, str] = False  # HF's default heuristic; True = stop at B hypotheses; "never"
    eos_id: Optional[int] = EOT_ID  # the token that ends a hypothesis (None: only max_new_tokens ends them)

    def __post_init__(self) -> None:
        if not isinstance(self.num_beams, (int, np.integer)) or self.num_beams < 1:
            raise ValueError(f"num_beams must be an integer >= 1, got {self.num_beams!r}")
        lp = self.length_penalty
        if not isinstance(lp, (int, float)) or not np.isfinite(lp):
            raise ValueError(f"length_penalty must be a finite number, got {lp!r}")
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"early_stopping must be True, False or 'never', got {self.early_stopping!r}")

    @property
    def pool_size(self) -> int:
        """Candidates kept for selection each step: HF's max(2, 1 + n_eos) × B."""
        return max(2, 1 + (self.eos_id is not None)) * self.num_beams


@dataclass(frozen=True)
class Hypothesis:
    ids: tuple[int, ...]  # generated ids, the ending token included (as HF returns them)
    logprob: float  # summed natural-log probability of those ids
    score: float  # logprob / len(ids) ** length_penalty: what hypotheses are ranked by
    ended_by: str  # "eos" or "length"
    step: int  # the step that ended it


@dataclass(frozen=True)
class Candidate:
    parent: int  # the beam (cache row) it extends
    token: int
    logprob: float  # log p(token | that beam)
    score: float  # the beam's summed log-prob + logprob
    rank: int  # among all beams × V candidates of this step (0 = best); the pool is rank < 2B
    ends: bool  # it is the end-of-text token, or the last position allowed
    fate: str  # "kept" (a beam of the next step), "hypothesis" (kept as finished), "pruned"
    slot: int = -1  # its beam (cache row) in the next step when kept


@dataclass
class BeamStep:
    index: int  # 0 = scored from the prefill's logits
    beams: list[tuple[int, ...]]  # the beams this step expands (generated ids so far), one per cache row
    beam_scores: list[float]  # their summed log-probs
    candidates: list[Candidate]  # the pool, plus each beam's best child when it is not in the pool
    parents: list[int]  # the reorder before the next forward: new row i <- old row parents[i] (empty: stopped)
    hypotheses: list[Hypothesis]  # the best (up to B) finished so far, after this step; best first
    stopped: str = ""  # why the search ends after this step ("" = it goes on)

    @property
    def kept(self) -> list[Candidate]:
        return sorted((c for c in self.candidates if c.fate == "kept"), key=lambda c: c.slot)


@dataclass
class BeamResult:
    prompt_ids: list[int]
    config: BeamConfig
    hypotheses: list[Hypothesis]  # best first, up to B
    steps: list[BeamStep] = field(default_factory=list)
    forwards: int = 0  # model calls: the prefill + one per later step (each feeds B tokens at once)
    stopped: str = ""

    @property
    def best(self) -> Optional[Hypothesis]:
        return self.hypotheses[0] if self.hypotheses else None


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Natural-log probabilities along the last axis, in float64: [0, ln 2] -> [-1.0986, -0.4055]."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def best_first(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest scores, best first, ties to the lower index: [1, 3, 3, 0], 2 -> [1, 2]."""
    scores = np.asarray(scores)
    return np.lexsort((np.arange(scores.size), -scores))[:n]


@torch.no_grad()
def beam_search(model, prompt_ids: list[int], max_new_tokens: int, cfg: BeamConfig = BeamConfig()) -> BeamResult:
    """Run beam search from `prompt_ids` for at most `max_new_tokens` tokens (fewer if the context ends)."""
    if not prompt_ids:
        raise ValueError("the prompt is empty: give at least one token to continue")
    mcfg = model.cfg
    P, B, lp = len(prompt_ids), cfg.num_beams, float(cfg.length_penalty)
    room = context_room(mcfg, P)  # None: no limit (a sliding window)
    if room is not None and P > mcfg.max_seq_len:
        raise ValueError(f"the prompt has {P} tokens; this model's context is {mcfg.max_seq_len}")
    # As in `generate`, the last token chosen is never fed, so a full context still gives one more.
    n_new = int(max_new_tokens) if room is None else min(int(max_new_tokens), room + 1)
    out = BeamResult(prompt_ids=list(prompt_ids), config=cfg, hypotheses=[])
    if n_new < 1:
        return out
    if n_new < max_new_tokens:
        out.stopped = f"reached the model's context of {mcfg.max_seq_len} tokens"
    max_length = P + n_new
    V = mcfg.vocab_size

    cache = KVCache.for_model(mcfg)
    logits = model(torch.tensor([prompt_ids]), cache=cache)[:, -1]  # (1, V) the prefill: one beam, one row
    out.forwards = 1
    beams: list[tuple[int, ...]] = [()]
    scores = np.zeros(1)  # (n_beams,) summed log-probs of the running beams
    hyps: list[Hypothesis] = []  # finished, best first, at most B
    can_improve = True  # HF's is_early_stop_heuristic_unsatisfied: once False it stays False
    cur = P  # tokens in each running sequence, prompt included

    for step in range(n_new):
        total = scores[:, None] + log_softmax(logits.numpy())  # (n_beams, V) every candidate's score
        flat = total.ravel()  # (n_beams·V,) candidate j = beam j // V, token j % V
        pool = best_first(flat, cfg.pool_size)  # (2B,) best first
        parent, token = pool // V, pool % V
        ends = (token == cfg.eos_id) | (cur + 1 >= max_length)  # (2B,) end-of-text, or the last position

        # The B best that do not end go on (when every pool member ends, the search stops below).
        going = [j for j in range(len(pool)) if not ends[j]][:B]
        # Only the pool's top B may become hypotheses, and none once the search can no longer improve (or,
        # with early_stopping=True, once B are kept).
        blocked = not can_improve or (cfg.early_stopping is True and len(hyps) == B)
        new = [] if blocked else [
            Hypothesis(beams[parent[j]] + (int(token[j]),), float(flat[pool[j]]),
                       float(flat[pool[j]]) / (cur + 1 - P) ** lp, "eos" if token[j] == cfg.eos_id else "length",
                       step)
            for j in range(min(B, len(pool))) if ends[j]]
        order = sorted(range(len(hyps) + len(new)), key=lambda i: -(hyps + new)[i].score)[:B]  # stable: old first
        entered = {i - len(hyps) for i in order if i >= len(hyps)}
        hyps = [(hyps + new)[i] for i in order]

        # What this step did to each candidate it looked at: the pool, and each beam's own best child.
        new_slots = {j: s for s, j in enumerate(going)}
        new_ids = iter(range(len(new)))
        made = {j: next(new_ids) for j in range(min(B, len(pool))) if ends[j] and not blocked}
        cands = []
        for j, flat_j in enumerate(pool):
            fate = "kept" if j in new_slots else "hypothesis" if made.get(j, -1) in entered else "pruned"
            cands.append(Candidate(int(parent[j]), int(token[j]), float(flat[flat_j] - scores[parent[j]]),
                                   float(flat[flat_j]), j, bool(ends[j]), fate, new_slots.get(j, -1)))
        in_pool = set(int(x) for x in pool)
        for b in range(len(beams)):
            t = int(np.argmax(total[b]))
            if b * V + t not in in_pool:
                rank = int((flat > total[b, t]).sum())
                cands.append(Candidate(b, t, float(total[b, t] - scores[b]), float(total[b, t]), rank,
                                       bool(t == cfg.eos_id or cur + 1 >= max_length), "pruned"))

        cur += 1
        next_scores = flat[pool[going]] if going else np.zeros(0)
        if can_improve and len(hyps) == B and going:
            # HF's `_check_early_stop_heuristic`: the best running beam at its current length (or, with
            # "never" and a positive penalty, at max length) against the worst hypothesis kept.
            length = (max_length - P) if (cfg.early_stopping == "never" and lp > 0) else (cur - P)
            can_improve = bool(next_scores[0] / length ** lp > hyps[-1].score)
        if not going:
            stopped = out.stopped or f"reached max_new_tokens ({n_new})"
        elif cfg.early_stopping is True and len(hyps) == B:
            stopped = f"{B} hypotheses finished (early_stopping=True)"
        elif not can_improve:
            stopped = "no running beam can beat the hypotheses kept"
        else:
            stopped = ""
        out.steps.append(BeamStep(step, list(beams), scores.tolist(), cands,
                                  [] if stopped else [int(parent[j]) for j in going], list(hyps), stopped))
        if stopped:
            if going:  # beams could have gone on: an early stop, worth saying (as a full context is, above)
                out.stopped = stopped
            break

        rows = [int(parent[j]) for j in going]
        beams = [beams[r] + (int(token[j]),) for r, j in zip(rows, going)]
        scores = next_scores
        cache.reorder(rows)  # row i now holds the past of the beam that new beam i extends
        feed = torch.tensor([[int(token[j])] for j in going])  # (B, 1) each beam's new token
        logits = model(feed, cache=cache)[:, -1]  # (B, V) one forward for every beam
        out.forwards += 1
    out.hypotheses = hyps
    return out


# --------------------------------------------------------------------------------------------------------
# For drawing: the tree as plain data
# --------------------------------------------------------------------------------------------------------


def greedy_on_tree(result: BeamResult, greedy_ids: list[int]) -> list[int]:
    """Per step, the index in that step's `candidates` of greedy's token, or -1 once greedy's prefix is no
    longer a beam. (While it is, its next token is that beam's best child, which is always recorded.)"""
    out = []
    for s, step in enumerate(result.steps):
        prefix = tuple(greedy_ids[:s])
        hit = -1
        if s < len(greedy_ids) and prefix in step.beams:
            b = step.beams.index(prefix)
            hit = next((i for i, c in enumerate(step.candidates) if c.parent == b and c.token == greedy_ids[s]), -1)
        out.append(hit)
    return out


def tree_columns(result: BeamResult, label=str) -> list[list[dict]]:
    """One column per step: its candidates as dicts (parent, slot, token, label, logprob, score, rank, fate,
    ends) — what `viz.decoding.beam_tree_figure` draws. `label` maps a token id to its display text."""
    return [[dict(parent=c.parent, slot=c.slot, token=c.token, label=label(c.token), logprob=c.logprob,
                  score=c.score, rank=c.rank, fate=c.fate, ends=c.ends) for c in step.candidates]
            for step in result.steps]
