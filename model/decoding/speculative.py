"""Speculative decoding: a small draft model guesses K tokens, the target model checks all K in one forward.

One round (Leviathan et al. 2023, Chen et al. 2023), with the same sampler settings for both models:

    draft    K cheap cached steps; step i draws x_i from q_i, the draft's distribution
    target   ONE cached forward over [the pending token, x_1 … x_K] → p_1 … p_{K+1}
    verdict  in order, x_i is accepted with probability min(1, p_i(x_i) / q_i(x_i)); at the first rejection
             the target draws its own token from the residual norm(max(0, p_i − q_i)) and the round ends;
             when all K are accepted it draws a bonus token from p_{K+1}
    caches   both are cut back to the tokens kept (`KVCache.truncate`): the target scored K + 1 positions and
             the draft fed K − 1 of its guesses, and a rejected guess left in either cache would be attended
             to by every later token though it was never emitted

"The pending token" is the last token emitted (at first the prompt's last): neither cache holds it yet, so
each round starts by feeding it. A round emits 1 to K + 1 tokens for one target forward, distributed exactly
as the target's own samples (accept-or-residual is a rejection sampler). At temperature 0 both distributions
are one-hot: x_i is accepted iff it is the target's argmax, the residual is the target's argmax, and the
output is the target's own greedy output, token for token.

Worked example (one position, three tokens): q = [.6, .3, .1], p = [.3, .5, .2], the draft proposes token 0:
accepted with probability .3 / .6 = .5; overall the draft's guess is accepted with Σ min(p, q) = .7, and the
residual max(0, p − q) = [0, .2, .1] → [0, .667, .333]. Token 0 comes out with .6 × .5 = .3 = p[0]; token 1
with .3 × 1 + .3 × .667 = .5 = p[1]; token 2 with .1 × 1 + .3 × .333 = .2 = p[2]. The target's distribution.

Counted: proposed and accepted draft tokens, target forwards (rounds; the prefill of the prompt comes on
top, as it does for plain decoding) and draft forwards. What it does not do: tree drafts, batches, models with
a sliding window (their cache cannot be cut back), or adaptive K.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from model.decoding.generate import generate
from model.decoding.sampling import SamplerConfig, min_p_mask, softmax, top_k_mask, top_p_mask
from model.net.kv_cache import KVCache


def distribution(logits, sampler: SamplerConfig) -> np.ndarray:
    """The distribution `sampling.sample` would draw from (its `final`): one-hot at the argmax when greedy,
    else softmax(logits / T) with top-k, top-p and min-p applied in that order, renormalised. (V,) float64."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    if sampler.greedy:
        out = np.zeros(len(logits))
        out[int(np.argmax(logits))] = 1.0
        return out
    p = softmax(logits / sampler.temperature)
    keep = np.ones(len(p), dtype=bool)
    keep = min_p_mask(p, sampler.min_p, top_p_mask(p, sampler.top_p, top_k_mask(p, sampler.top_k, keep)))
    p = np.where(keep, p, 0.0)
    return p / p.sum()


@dataclass(frozen=True)
class Proposal:
    token: int  # the draft's guess
    q: float  # its probability under the draft (what it was drawn with)
    p: float  # its probability under the target, same settings
    u: Optional[float]  # the uniform draw it was tested with (None when greedy, or not reached)
    verdict: str  # "accepted", "rejected", or "not checked" (an earlier guess was rejected)
    q_model: float = float("nan")  # the draft's plain softmax (T = 1, no filters) of it: informative when greedy,
    p_model: float = float("nan")  # where q and p are one-hot; likewise the target's

    @property
    def accept_prob(self) -> float:
        """min(1, p / q): the chance this guess survives the check."""
        return min(1.0, self.p / self.q) if self.q > 0 else 0.0


@dataclass
class Round:
    index: int
    start: int  # tokens emitted before this round
    proposals: list[Proposal]  # the K draft tokens (fewer near max_new_tokens or the context's end)
    extra: int  # the target's own token: resampled from the residual, or the bonus after K acceptances
    extra_kind: str  # "resampled" or "bonus"
    extra_p: float  # its probability under the target's distribution p
    extra_p_model: float  # … and under the target's plain softmax (T = 1, no filters): informative when greedy
    residual_mass: float  # 1 − Σ min(p, q) at the rejected position (0 for a bonus): the rejection chance
    target_len: tuple[int, int, int]  # the target cache: before, after the verifying forward, after the cut
    draft_len: tuple[int, int, int]  # the draft cache: before, after drafting, after the cut
    draft_forwards: int  # draft forwards this round (the first may feed 2 tokens: its catch-up)

    @property
    def n_accepted(self) -> int:
        return sum(x.verdict == "accepted" for x in self.proposals)

    @property
    def emitted(self) -> list[int]:
        return [x.token for x in self.proposals[: self.n_accepted]] + [self.extra]


@dataclass
class SpecResult:
    prompt_ids: list[int]
    k: int
    sampler: SamplerConfig
    generated_ids: list[int] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    draft_forwards: int = 0
    stopped: str = ""
    caches: Optional[tuple] = None  # (target's, draft's) KVCache at the end, when asked for (tests read them)

    @property
    def proposed(self) -> int:
        return sum(len(r.proposals) for r in self.rounds)

    @property
    def accepted(self) -> int:
        return sum(r.n_accepted for r in self.rounds)

    @property
    def target_forwards(self) -> int:
        """Forwards of the target that produced tokens: one per round (the prompt's prefill is extra)."""
        return len(self.rounds)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else float("nan")

    @property
    def tokens_per_target_forward(self) -> float:
        """Plain decoding makes 1 (a forward per token); a round makes 1 to K + 1."""
        return len(self.generated_ids) / self.target_forwards if self.rounds else float("nan")

    def stats(self) -> dict:
        return {"k": self.k, "proposed": self.proposed, "accepted": self.accepted,
                "acceptance_rate": self.acceptance_rate, "target_forwards": self.target_forwards,
                "draft_forwards": self.draft_forwards, "tokens": len(self.generated_ids),
                "tokens_per_target_forward": self.tokens_per_target_forward}


def _check_pair(target, draft) -> None:
    if target.cfg.vocab_size != draft.cfg.vocab_size:
        raise ValueError(f"the draft's vocabulary ({draft.cfg.vocab_size}) is not the target's "
                         f"({target.cfg.vocab_size}): they must share a tokenizer")
    for name, m in (("target", target), ("draft", draft)):
        if m.cfg.sliding_window is not None:
            raise ValueError(f"the {name} has a sliding window: its cache cannot be cut back after a rejection")


@torch.no_grad()
def speculative_generate(target, draft, prompt_ids: list[int], max_new_tokens: int, k: int,
                         sampler: SamplerConfig = SamplerConfig(temperature=0.0), seed: int = 0,
                         keep_caches: bool = False) -> SpecResult:
    """Continue `prompt_ids` by up to `max_new_tokens` tokens, K draft tokens per round (greedy by default)."""
    if not prompt_ids:
        raise ValueError("the prompt is empty: give at least one token to continue")
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"K (draft tokens per round) must be an integer >= 0, got {k!r}")
    _check_pair(target, draft)
    P, ctx = len(prompt_ids), target.cfg.max_seq_len
    if P > ctx:
        raise ValueError(f"the prompt has {P} tokens; this model's context is {ctx}")
    rng = np.random.default_rng(seed)
    out = SpecResult(prompt_ids=list(prompt_ids), k=int(k), sampler=sampler)
    seq = list(prompt_ids)  # every token so far; seq[-1] is pending (in neither cache)
    tc, dc = KVCache.for_model(target.cfg), KVCache.for_model(draft.cfg)
    if P > 1:
        target(torch.tensor([seq[:-1]]), cache=tc)  # the prefill, minus the pending last token
        draft(torch.tensor([seq[:-1]]), cache=dc)

    def draw(dist: np.ndarray) -> int:
        return int(np.argmax(dist)) if sampler.greedy else int(rng.choice(len(dist), p=dist))

    while len(out.generated_ids) < max_new_tokens:
        L = len(seq)
        if L > ctx:  # as `generate`: the last token emitted need not fit
            out.stopped = f"reached the model's context of {ctx} tokens"
            break
        # K guesses, but never past max_new_tokens (the round's own token comes on top) or the context.
        k_now = max(0, min(k, max_new_tokens - len(out.generated_ids) - 1, ctx - L))
        t0, d0 = tc.length, dc.length

        # 1. The draft guesses: catch up on what it has not fed (the pending token, and x_K after a round
        #    that accepted everything), then one step per guess.
        guesses, qs, q_soft = [], [], []
        n_draft = 0
        if k_now:
            logits = draft(torch.tensor([seq[dc.length:]]), cache=dc)[0, -1]  # (V,)
            n_draft += 1
            for i in range(k_now):
                q = distribution(logits.numpy(), sampler)
                x = draw(q)
                guesses.append(x)
                qs.append(q)
                q_soft.append(float(softmax(logits.numpy().astype(np.float64))[x]))
                if i < k_now - 1:
                    logits = draft(torch.tensor([[x]]), cache=dc)[0, -1]  # (V,)
                    n_draft += 1
        d1 = dc.length

        # 2. The target scores the pending token and every guess in one forward: K + 1 distributions.
        t_logits = target(torch.tensor([seq[tc.length:] + guesses]), cache=tc)[0]  # (k_now + 1, V)
        t1 = tc.length
        ps = [distribution(row, sampler) for row in t_logits.numpy()]
        p_soft = [float(softmax(row.astype(np.float64))[x]) for row, x in zip(t_logits.numpy(), guesses)]

        # 3. The verdicts, in order.
        props, rejected_at = [], None
        for i, (x, q) in enumerate(zip(guesses, qs)):
            if rejected_at is not None:
                props.append(Proposal(x, float(q[x]), float(ps[i][x]), None, "not checked", q_soft[i], p_soft[i]))
                continue
            ratio = min(1.0, ps[i][x] / q[x])
            u = None if sampler.greedy else float(rng.random())
            ok = ratio >= 1.0 if u is None else u < ratio
            props.append(Proposal(x, float(q[x]), float(ps[i][x]), u, "accepted" if ok else "rejected", q_soft[i],
                                  p_soft[i]))
            if not ok:
                rejected_at = i
        if rejected_at is None:
            dist, kind, residual_mass = ps[k_now], "bonus", 0.0
        else:
            i = rejected_at
            res = np.maximum(ps[i] - qs[i], 0.0)
            residual_mass = float(res.sum())  # = 1 − Σ min(p, q)
            dist = res / residual_mass if residual_mass > 0 else ps[i]  # > 0 whenever a rejection can happen
            kind = "resampled"
        extra = draw(dist)
        n_acc = sum(x.verdict == "accepted" for x in props)
        emitted = guesses[:n_acc] + [extra]  # at most k_now + 1 <= the tokens still asked for

        # 4. Cut both caches back to the tokens kept: all but the new pending one.
        seq += emitted
        tc.truncate(len(seq) - 1)
        dc.truncate(min(dc.length, len(seq) - 1))
        out.generated_ids += emitted
        out.draft_forwards += n_draft
        p_model = float(softmax(t_logits[n_acc].numpy().astype(np.float64))[extra])
        out.rounds.append(Round(len(out.rounds), len(out.generated_ids) - len(emitted), props, extra, kind,
                                float(ps[n_acc][extra]), p_model, residual_mass, (t0, t1, tc.length),
                                (d0, d1, dc.length), n_draft))
    if keep_caches:
        out.caches = (tc, dc)
    return out


# --------------------------------------------------------------------------------------------------------
# How fast, on this machine
# --------------------------------------------------------------------------------------------------------


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _medians(fn, repeats: int) -> tuple[float, float]:
    xs = [_timed(fn) for _ in range(repeats)]
    return float(statistics.median(x[0] for x in xs)), float(statistics.median(x[1] for x in xs))


@torch.no_grad()
def step_costs(target, draft, context: int, k_max: int, repeats: int = 20) -> dict:
    """Median wall and CPU seconds of one cached forward at `context` cached positions: the draft feeding one
    token, and the target feeding j = 1 … k_max + 1 tokens at once (what verifying K guesses costs)."""
    ids = torch.arange(context + k_max + 1).remainder(target.cfg.vocab_size - 1)[None]  # (1, context + k_max + 1)
    out = {}
    for name, m in (("target", target), ("draft", draft)):
        c = KVCache.for_model(m.cfg)
        m(ids[:, :context], cache=c)
        for j in range(1, (k_max + 2) if name == "target" else 2):
            def one():
                m(ids[:, context: context + j], cache=c)
                c.truncate(context)
            one()
            out[f"{name}_{j}_s"], out[f"{name}_{j}_cpu_s"] = _medians(one, repeats)
    return out


def flops_ratio(target, draft, context: int) -> float:
    """Draft ÷ target FLOPs of one cached decode step at `context` (from `model.accounting`)."""
    from model.accounting.arch import arch_from_model_config
    from model.accounting.counts import decode_step_flops

    f = lambda m: decode_step_flops(arch_from_model_config(m.cfg), 1, context).total  # noqa: E731
    return f(draft) / f(target)


def measure_speed(target, draft, prompt_ids: list[int], n_tokens: int, ks: list[int], sampler: SamplerConfig,
                  seed: int = 0, repeats: int = 3) -> dict:
    """Plain decoding (`generate`) against speculative decoding for each K — same prompt, seed and settings,
    prefill included, runs interleaved and repeated (medians) — beside what theory says. Per K:

        measured_speedup       plain's wall-clock time ÷ speculative's (`measured_speedup_cpu`: the same in CPU
                               seconds of this process, which a busy machine disturbs less)
        ideal_speedup          Leviathan et al.: tokens per target forward ÷ (1 + K·c) with c the draft's FLOPs
                               per step ÷ the target's, i.e. costs in proportion to FLOPs and verifying K + 1
                               tokens as cheap as one step (what a GPU nearly gives)
        predicted_speedup      the same bookkeeping with this CPU's measured step costs: tokens per target forward
                               × one target step ÷ (one target forward of K + 1 tokens + K draft steps)

    The gap between ideal and predicted is what eager PyTorch's fixed cost per forward does to a small draft.
    Every run's wall time is kept too (`plain_runs_s`, per K `runs_s`): a median ratio near 1 says nothing
    until the runs' spread is known.
    """
    ctx = len(prompt_ids) + n_tokens // 2
    costs = step_costs(target, draft, ctx, max(ks))
    c_flops = flops_ratio(target, draft, ctx)
    runs = {kk: speculative_generate(target, draft, prompt_ids, n_tokens, kk, sampler, seed) for kk in ks}
    plain_t, spec_t = [], {kk: [] for kk in ks}
    for _ in range(repeats):
        plain_t.append(_timed(lambda: generate(target, prompt_ids, n_tokens, sampler, seed)))
        for kk in ks:
            spec_t[kk].append(_timed(lambda: speculative_generate(target, draft, prompt_ids, n_tokens, kk, sampler,
                                                                  seed)))
    med = lambda xs, i: float(statistics.median(x[i] for x in xs))  # noqa: E731
    plain, plain_cpu = med(plain_t, 0), med(plain_t, 1)
    step, d_step = costs["target_1_cpu_s"], costs["draft_1_cpu_s"]
    rows = []
    for kk in ks:
        r = runs[kk]
        tpf = r.tokens_per_target_forward
        rows.append({**r.stats(), "seconds": med(spec_t[kk], 0), "cpu_seconds": med(spec_t[kk], 1),
                     "runs_s": [x[0] for x in spec_t[kk]],
                     "measured_speedup": plain / med(spec_t[kk], 0),
                     "measured_speedup_cpu": plain_cpu / med(spec_t[kk], 1),
                     "ideal_speedup": tpf / (1 + kk * c_flops),
                     "predicted_speedup": tpf * step / (costs[f"target_{kk + 1}_cpu_s"] + kk * d_step)})
    return {"plain_seconds": plain, "plain_cpu_seconds": plain_cpu, "plain_runs_s": [x[0] for x in plain_t],
            "n_tokens": n_tokens,
            "temperature": sampler.temperature, "repeats": repeats, "draft_over_target_flops": c_flops,
            "draft_over_target_cpu": d_step / step, "draft_over_target_wall": costs["draft_1_s"] / costs["target_1_s"],
            "costs": costs, "by_k": rows}


def acceptance_sweep(target, draft, prompt_ids: list[int], n_tokens: int, ks: list[int],
                     temperatures: list[float], seed: int = 0) -> list[dict]:
    """Acceptance rate and tokens per target forward for each (temperature, K): one seeded run each."""
    out = []
    for t in temperatures:
        for kk in ks:
            r = speculative_generate(target, draft, prompt_ids, n_tokens, kk, SamplerConfig(temperature=t), seed)
            out.append({"temperature": t, **r.stats()})
    return out

