"""The sentences the Compare page shows, each computed from the numbers it describes: an evaluation result in
(`results/evaluation.json`, as `model.evaluation` writes it), optionally the extra training seeds
(`results/seeds.json`'s runs, as `model.evaluation.seeds` writes them), Markdown strings out.

    intro(…)                      -> what is compared, how alike the models were trained, how far their sizes
                                     differ, and what "held-out" does and does not cover
    read_attention_variants(res)  -> MHA / GQA / MQA: held-out loss and which orders survive their uncertainty,
                                     size, the KV cache per token, decode speed
    read_positions(res, context)  -> the positional encodings: loss inside the training context, how it rises
                                     past it, how far back the heads look
    read_architecture(res)        -> post-norm, LayerNorm, GELU MLP, mixture of experts, each against the default:
                                     held-out loss, size (total and per-token for the MoE), the rise past the
                                     context, the MoE's load balance
    + the captions under the page's figures (attention intro, K/V sharing, training curves, loss by position,
      position signals, the last token's attention row) and the seed cell of the summary table.

The rule for an order (`model.evaluation.seeds.difference`): "A is lower than B" is said only when the 95 %
interval of A − B excludes 0 — over training seeds where both variants have at least two, else over the
held-out windows of their one shipped run (then with the note that seed-to-seed spread is not measured: the
windows say only that *these weights* differ on this text). Where neither was recorded, the numbers are given
and no order is claimed. A claim about architectures (what the literature expects) needs seeds. The
architecture comparison adds one condition for a window interval (`_against_default`): the difference must also
exceed SEED_MARGIN_Z · √2 times the largest seed-to-seed sd measured for any variant (results/seeds.json) — about
what a second training run of each of the two could move their difference by, at 95 %, were each run's spread
that large.

Pure functions: dicts and arrays in, strings out (variant names and numbers only, never user text).
No streamlit, no torch, no figures.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np

from model.evaluation.seeds import Difference, by_variant, difference, rise_past_context, summarise
from model.evaluation.stats import in_and_past_context, window_rise
from model.net.checkpoints import ARCHITECTURE_VARIANTS, ATTENTION_VARIANTS, DEFAULT_VARIANT, POSITION_VARIANTS

LEGEND = "(<: the 95 % interval of the difference excludes 0; ~: it does not)"
POS_NAMES = {"rope": "RoPE", "sinusoidal": "sinusoidal", "learned": "learned", "alibi": "ALiBi", "none": "none"}


# --------------------------------------------------------------------------------------------------------
# Differences and how to say them
# --------------------------------------------------------------------------------------------------------


def seed_values(seeds: Optional[Sequence[dict]], measure: str = "loss",
                context: int = 256) -> dict[str, dict[int, float]]:
    """{variant: {seed: value}} from seeds.json's runs: held-out nats/token ("loss"), bits/char ("bits") or the
    rise past the context ("rise"). Empty without seeds."""
    if not seeds:
        return {}
    key = {"loss": lambda r: r["heldout"]["nats_per_token"], "bits": lambda r: r["heldout"]["bits_per_char"],
           "rise": lambda r: rise_past_context(r, context)}[measure]
    return by_variant(list(seeds), key=key)


def _evidence(v: Mapping[str, dict], seeds: Mapping[str, dict[int, float]], a: str, b: str, measure: str,
              context: int) -> Difference:
    """A − B of held-out loss ("loss") or of the rise past the context ("rise"), with its interval."""
    if measure == "loss":
        h_a, h_b = v[a]["heldout"], v[b]["heldout"]
        windows = (h_a.get("window_losses") or [], h_b.get("window_losses") or [])
        point_a, point_b = h_a["nats_per_token"], h_b["nats_per_token"]
    else:
        (in_a, past_a), (in_b, past_b) = (in_and_past_context(v[n]["loss_by_position"], context) for n in (a, b))
        point_a, point_b = past_a - in_a, past_b - in_b
        w_a, w_b = (window_rise(v[n]["loss_by_position"], context) for n in (a, b))
        windows = (w_a, w_b) if w_a is not None and w_b is not None else None
    return difference(point_a, point_b, windows, (seeds.get(a, {}), seeds.get(b, {})))


def signed(x: float, digits: int) -> str:
    """+0.0428 / −0.0428 (a true minus sign, as the prose uses)."""
    return f"{x:+.{digits}f}".replace("-", "−")


def _interval(d: Difference, digits: int) -> str:
    unit = "training seeds" if d.source == "seeds" else "held-out windows"
    return (f"{signed(d.mean, digits)} (95 % interval {signed(d.lo, digits)} to {signed(d.hi, digits)}, over {d.n} "
            f"{unit})")


def pair_sentence(a: str, b: str, d: Difference, what: str, digits: int = 4) -> str:
    """One sentence about A − B that states an order only if `d` resolves it. `what` names the measure
    ("held-out loss"); lower is the claim made."""
    if d.source == "none":
        return (f"{a} − {b} in {what} = {signed(d.mean, digits)}; no interval could be computed for it (neither a "
                "per-window record nor two or more training seeds of both), so no order is claimed.")
    if not d.resolved:
        return f"{a} − {b} in {what} = {_interval(d, digits)}: the interval includes 0, so no order is claimed."
    lo, hi = (a, b) if d.mean < 0 else (b, a)
    where = "across training seeds" if d.source == "seeds" else "for these weights on these windows"
    return f"{lo}'s {what} is lower than {hi}'s {where}: {a} − {b} = {_interval(d, digits)}."


def _chain(order: Sequence[str], diffs: Sequence[Difference]) -> str:
    """'a < b ~ c'. The order is by best estimate, the intervals by paired evidence: where the two disagree
    (a resolved difference against the order), the sign says so ('>') rather than the order."""
    out = order[0]
    for n, d in zip(order[1:], diffs):
        out += (" ~ " if not d.resolved else " < " if d.mean < 0 else " > ") + n
    return out


def _best_estimate(point: Mapping[str, float], seeds: Mapping[str, dict[int, float]]) -> dict[str, float]:
    """The seed mean where a variant has two or more seeds, else its one shipped run's value."""
    return {n: float(np.mean(list(seeds[n].values()))) if len(seeds.get(n, {})) >= 2 else p for n, p in point.items()}


def ranking(order: Sequence[str], diffs: Sequence[Difference], what: str, digits: int = 4) -> str:
    """'By <what>: a < b ~ c (legend; each adjacent difference with its interval).' Neighbours only: the order
    of a and c is not claimed beyond what the chain implies. Empty when an adjacent pair has no interval."""
    if any(d.source == "none" for d in diffs):
        return ""
    details = "; ".join(f"{a} − {b} = {_interval(d, digits)}" for a, b, d in zip(order, order[1:], diffs))
    return f"By {what}: **{_chain(order, diffs)}** {LEGEND}. Adjacent differences: {details}."


def seed_status(names: Sequence[str], seeds: Mapping[str, dict[int, float]], digits: int = 4) -> str:
    """Who was trained how often, and the seed spread where there is one."""
    many = {n: summarise(list(seeds[n].values())) for n in names if len(seeds.get(n, {})) >= 2}
    once = [n for n in names if n not in many]
    if not many:
        return ("Each variant was trained once (one seed), so how much a second training run would differ — the "
                "seed-to-seed spread — is not measured here.")
    out = ("Over training seeds (mean ± sd): "
           + ", ".join(f"{n} {s['mean']:.{digits}f} ± {s['sd']:.{digits}f} (n = {s['n']})" for n, s in many.items())
           + ".")
    if once:
        out += f" Trained once, their seed spread not measured: {', '.join(once)}."
    return out


def _window_note(diffs: Sequence[Difference]) -> str:
    if any(d.source == "windows" for d in diffs):
        return (" Where the interval is over windows it says only how precisely this text measures these particular "
                "weights: in each such pair at least one variant was trained once, so how much of the difference a "
                "different seed would undo is not measured.")
    return ""


def seed_cell(values: Mapping[int, float], digits: int = 4) -> str:
    """The summary table's seed column: '3 seeds: 3.8127 ± 0.0031 (sd)', or that there is one run."""
    if len(values) < 2:
        return "1 run: spread not measured"
    s = summarise(list(values.values()))
    return f"{s['n']} seeds: {s['mean']:.{digits}f} ± {s['sd']:.{digits}f} (sd)"


def _size_line(v: Mapping[str, dict], best: str, d_best: Optional[Difference], second: Optional[str]) -> str:
    params = {n: r["params"] for n, r in v.items()}
    big, small = max(params, key=params.get), min(params, key=params.get)
    if params[big] == params[small]:
        return f"All have the same number of parameters ({params[big]:,})."
    line = (f"They are not the same size: {small} has {params[small]:,} parameters, {big} {params[big]:,} "
            f"(+{100 * (params[big] / params[small] - 1):.1f} %).")
    if best == big and second is not None and d_best is not None and d_best.resolved:
        line += (f" The lowest loss, {best}'s, {abs(d_best.mean):.3f} nats below {second}, comes with "
                 f"{100 * (params[best] / params[second] - 1):.1f} % more parameters than {second}: this comparison "
                 "cannot separate its attention from its size.")
    return line


def _ratio(x: float) -> str:
    return f"{round(x, 1):g}"


# --------------------------------------------------------------------------------------------------------
# The page's intro and captions
# --------------------------------------------------------------------------------------------------------


def _recipe_sentence(names: Sequence[str], recipes: Mapping[str, dict]) -> str:
    """Whether the training logs of `names` agree on every setting, or which ones differ. A log written before
    the trainer recorded `init_seed` had the one every shipped variant used, 0."""
    logged = {n: {"init_seed": 0, **r} for n, r in recipes.items() if n in names}
    if not logged:
        return ""
    keys = sorted({k for r in logged.values() for k in r})
    differ = [k for k in keys if len({repr(r.get(k)) for r in logged.values()}) > 1]
    first = next(iter(logged.values()))
    if not differ:
        out = (f" Trained alike, by their training logs: the same Shakespeare text in the same order (data "
               f"seed {first.get('seed')}), {first.get('steps', 0):,} steps, the same optimiser settings and "
               "dropout.")
    else:
        out = f" Their training logs differ in: {', '.join(differ)}."
    if len(logged) < len(names):
        out += f" ({', '.join(n for n in names if n not in logged)}: no training log in this checkout.)"
    return out


def intro(compared: Sequence[str], kinds: Sequence[str], encodings: Sequence[str], others: Mapping[str, str],
          params: Mapping[str, int], recipes: Mapping[str, dict], n_plays: int,
          heldout_tokens: Optional[int], architectures: Mapping[str, str] = {}) -> str:
    """The page's first paragraph. params: compared variant → parameters (empty without an evaluation);
    recipes: variant → its train_log's "train" settings (those whose log is in the checkout); architectures:
    the architecture comparison's variants but the default → the one choice each changes (`architecture_change`),
    which that tab presents (trained or not)."""
    out = (f"{len(compared)} models that differ in one thing: how many **K/V heads** attention has "
           f"({' / '.join(kinds)}), or how **position** gets in "
           f"({', '.join(POS_NAMES.get(e, e) for e in encodings)}).")
    if architectures:
        out += (f" A third comparison, **Architecture**, sets the default beside {len(architectures)} more that each "
                "change one architectural choice at its size: " + "; ".join(
                    f"{n} ({c})" for n, c in architectures.items()) + " — its own tab says which are trained.")
    out += _recipe_sentence(compared, recipes)
    sized = {n: p for n, p in params.items() if n in compared}
    if len(sized) >= 2:
        big, small = max(sized, key=sized.get), min(sized, key=sized.get)
        if sized[big] != sized[small]:
            out += (f" They are not the same size: from {sized[small]:,} parameters ({small}) to {sized[big]:,} "
                    f"({big}, +{100 * (sized[big] / sized[small] - 1):.1f} %) — fewer K/V heads mean smaller K/V "
                    "projections, a learned table adds rows — so each comparison is of the change *and* the size "
                    "that comes with it.")
    tokens = f" ({heldout_tokens:,} tokens)" if heldout_tokens else ""
    out += (f" The losses, loss by position and attention statistics are measured on held-out text: {n_plays} "
            f"whole plays{tokens} none of them trained on. Two limits: the training recipe (steps, dropout) was "
            "chosen by the default model's loss on those same plays — there is no third split — so its figure may "
            "be slightly optimistic; and the training curves are training loss, with held-out checks along the way.")
    if others:
        out += (" The app's other checkpoints change something else, so they are in no comparison: "
                + "; ".join(f"{n} — {b}" for n, b in others.items()) + ".")
    return out


def _kind(h: int, k: int) -> str:
    return "MHA" if k == h else "MQA" if k == 1 else "GQA"


def attention_intro(heads: Mapping[str, tuple[int, int]], encodings: Sequence[str]) -> str:
    """heads[name] = (n_heads, n_kv_heads); encodings: the positional encoding of each."""
    parts = []
    for n, (h, k) in heads.items():
        kind = _kind(h, k)
        if kind == "MHA":
            parts.append(f"**multi-head** attention ({n}) gives each of its {h} query heads its own key and value head")
        elif kind == "MQA":
            parts.append(f"**multi-query** attention ({n}) shares a single K/V head among all {h} query heads")
        else:
            parts.append(f"**grouped-query** attention ({n}) lets groups of {h // k} query heads share one K/V head "
                         f"({k} K/V heads for {h} query heads)")
    text = "; ".join(parts)
    pos = [POS_NAMES.get(e, e) for e in sorted(set(encodings))]
    use = f"All {len(heads)} use {pos[0]}." if len(pos) == 1 else f"Positions: {', '.join(pos)}."
    return "**" + text[2].upper() + text[3:] + ". Fewer K/V heads = a smaller KV cache per token. " + use


def kv_caption(heads: Mapping[str, tuple[int, int]]) -> str:
    """Under the K/V-sharing figure: the mapping and the cache ratios, from the head counts."""
    big = max(heads, key=lambda n: heads[n][1])
    rest = [n for n in heads if n != big]
    ratios = " and ".join(f"{_ratio(heads[big][1] / heads[n][1])}× {n}'s" for n in rest)
    return ("Query head h reads K/V head h // (n_heads / n_kv_heads) — Llama's `repeat_kv` order. The cache stores "
            f"only the K/V heads, so {big}'s is {ratios}." if rest else "")


def positions_intro(encodings: Mapping[str, str], heads: Mapping[str, tuple[int, int]]) -> str:
    """encodings[name] = pos_encoding; heads[name] = (n_heads, n_kv_heads)."""
    kinds = sorted({_kind(h, k) for h, k in heads.values()})
    use = (f"All {len(encodings)} use {kinds[0]}." if len(kinds) == 1 else f"Attention: {', '.join(kinds)}.")
    return ("Attention itself ignores order: permute the keys and values together and each output stays the same. "
            "Position has to be put in. **RoPE** rotates q and k by an angle proportional to the position; "
            "**sinusoidal** and **learned** add a position vector to the input; **ALiBi** subtracts a per-head "
            "penalty proportional to distance from the scores; **none** adds nothing — only the causal mask is left. "
            + use)


def curves_caption(recipes: Mapping[str, dict], window: int, heldout_windows: Optional[int]) -> str:
    """Under the training curves. recipes: variant → its train_log's "train" settings."""
    whole = f" uses all {heldout_windows} windows" if heldout_windows else " uses the whole held-out split"
    out = (f"Lines: training loss, a {window}-step moving average of each step's batch. Diamonds: held-out loss at "
           f"each evaluation during training (a sample of the held-out windows; the table's number{whole}).")
    seeds = {r.get("seed") for r in recipes.values()}
    if len(recipes) >= 2:
        out += (f" Data seed {seeds.pop()} for all of them: the same batches in the same order." if len(seeds) == 1
                else " Data seeds differ: " + ", ".join(f"{n} {r.get('seed')}" for n, r in recipes.items()) + ".")
    return out


def by_position_caption(series: Mapping[str, dict], context: int, bucket: int, windows: int, requested: int) -> str:
    """Under loss by position. series[name] = {"y": bucket means, "inside": mean loss at 1 … context}."""
    out = (f"Each point: the mean loss over {bucket} consecutive positions of {windows} held-out windows of "
           f"{requested} tokens. Every model was trained on windows of {context}: right of the dotted line, each one "
           "meets positions it never saw — the extrapolation test of the ALiBi paper (Press et al. 2022), on our own "
           "models.")
    high = [n for n, s in series.items() if len(s["y"]) and s["y"][0] > s["inside"]]
    if high and len(high) == len(series):
        out += (f" The first {bucket} positions are above each model's own mean over 1–{context}: with few tokens "
                "of context there is little to go on.")
    elif high:
        out += f" The first {bucket} positions are above the model's own mean over 1–{context} for {', '.join(high)}."
    return out


def position_signals_caption(rope_angles: np.ndarray, context: int, has_learned: bool) -> str:
    """Under the position-signal panels. rope_angles: (positions, pairs) m·θᵢ in radians, as drawn."""
    a = np.asarray(rope_angles, dtype=np.float64)
    swept = a[-1] - a[0]  # radians each pair turns from the first to the last position drawn
    turns = swept / (2 * np.pi)
    full = int((turns >= 1).sum())
    learned = (f"the learned table is whatever training made of its {context} rows (and has no row {context})"
               if has_learned else "the learned table is not shown (no learned checkpoint loads here)")
    return (f"Positions 0–{len(a) - 1}. Over them RoPE's fastest pair (left column) turns {turns[0]:.1f} full turns "
            f"and its slowest {np.degrees(swept[-1]):.1f}°; {full} of its {len(turns)} pairs complete at least one "
            f"turn. The sinusoidal table uses the same kind of spectrum but is added to the input; {learned}; ALiBi's "
            "bias falls linearly with distance, steeply for some heads and gently for others (each panel on its own "
            "colour scale: see the titles for how far each falls); 'none' adds nothing.")


def last_token_caption(rows: Mapping[str, np.ndarray], n_prompt: int, n_keys: int) -> str:
    """Under the last token's attention. rows[name] = [layer·head, key] over the last `n_keys` of `n_prompt`
    keys; when cut, the attention on the keys left out is 1 − the row's sum."""
    out = "What the last token attends to in every layer (rows, top to bottom) and head, "
    if n_keys >= n_prompt:
        return out + (f"over all {n_prompt} tokens (columns, oldest left; each row sums to 1). This is the row each "
                      "variant's prediction is built from.")
    sums = np.concatenate([np.asarray(r, dtype=np.float64).sum(axis=1) for r in rows.values()]) if rows else np.ones(1)
    off = np.clip(1.0 - sums, 0.0, 1.0)  # float rounding can put a full row a hair above 1
    lo, hi = f"{100 * off.min():.0f}", f"{100 * off.max():.0f}"
    share = f"{lo} %" if lo == hi else f"between {lo} % and {hi} %"
    return out + (f"over the last {n_keys} of {n_prompt} tokens: positions {n_prompt - n_keys}–{n_prompt - 1} "
                  "(columns, oldest left). The rows are cut, so the drawn cells of a row sum to less than 1: the "
                  f"{n_prompt - n_keys} earlier keys (positions 0–{n_prompt - n_keys - 1}), not drawn, hold {share} "
                  f"of a row's attention (mean {100 * off.mean():.0f} %).")


# --------------------------------------------------------------------------------------------------------
# What our numbers show
# --------------------------------------------------------------------------------------------------------


def read_attention_variants(res: dict, names: Sequence[str] = tuple(ATTENTION_VARIANTS),
                            seeds: Optional[Sequence[dict]] = None) -> list[str]:
    """Findings about MHA/GQA/MQA from an evaluation result (only the variants it holds) and, when given,
    seeds.json's runs."""
    v = {n: res["variants"][n] for n in names if n in res.get("variants", {})}
    if len(v) < 2:
        return ["Fewer than two of MHA / GQA / MQA are evaluated here, so there is nothing to compare yet."]
    sv = seed_values(seeds)
    loss = {n: r["heldout"]["nats_per_token"] for n, r in v.items()}
    est = _best_estimate(loss, sv)
    order = sorted(est, key=est.get)
    diffs = [_evidence(v, sv, a, b, "loss", 0) for a, b in zip(order, order[1:])]
    n_win = v[order[0]]["heldout"].get("windows")
    line = ("Held-out loss of the shipped runs: " + ", ".join(f"{n} {loss[n]:.4f}" for n in v)
            + f" nats/token{f' over {n_win} windows' if n_win else ''}. " + seed_status(list(v), sv))
    rank = ranking(order, diffs, "held-out loss")
    line += (" " + rank + _window_note(diffs)) if rank else (
        " " + " ".join(pair_sentence(a, b, d, "held-out loss") for a, b, d in zip(order, order[1:], diffs)))
    out = [line, _size_line(v, order[0], diffs[0], order[1])]

    # The literature's claim is about architectures: only seeds can speak to it.
    by_kv = sorted(v, key=lambda n: -v[n]["n_kv_heads"])  # more K/V heads first
    kv_pairs = [(fewer, more, _evidence(v, sv, fewer, more, "loss", 0)) for more, fewer in zip(by_kv, by_kv[1:])]
    lit = "The literature (Shazeer 2019; Ainslie et al. 2023) finds that fewer K/V heads cost a little quality. "
    seeded = [(f, m, d) for f, m, d in kv_pairs if d.source == "seeds"]
    if not seeded:
        lit += ("One training run each cannot test that here: a difference between two single runs mixes the "
                "architecture with the luck of the seed.")
    else:
        lit += " ".join(pair_sentence(f, m, d, "held-out loss") for f, m, d in seeded)
        if len(seeded) == len(kv_pairs) and all(d.resolved and d.mean > 0 for _, _, d in seeded):
            lit += " This is the order the literature expects."
        elif any(d.resolved and d.mean < 0 for _, _, d in seeded):
            lit += " Where fewer K/V heads come out lower, that is a finding about models this small."
        untested = [f"{f} vs {m}" for f, m, d in kv_pairs if d.source != "seeds"]
        if untested:
            lit += f" Not tested across seeds: {', '.join(untested)}."
    out.append(lit)

    kv = {n: r["kv_bytes_per_token"] for n, r in v.items()}
    measured = {n: r.get("decode", {}).get("kv_bytes_per_token_measured") for n, r in v.items()}
    big = max(kv, key=kv.get)
    if kv[big] == min(kv.values()):
        kv_line = f"The KV cache per token is the same for all of them: {kv[big]:,} B (fp32)."
    else:
        kv_line = ("The KV cache per token (fp32) is where they differ by construction: "
                   + ", ".join(f"{n} {kv[n]:,} B" + (f" ({_ratio(kv[big] / kv[n])}× smaller than {big}'s)"
                                                     if kv[n] != kv[big] else "") for n in kv) + ".")
    kv_line += " These are the formula 2 (K and V) × layers × K/V heads × head size × 4 bytes"
    if all(measured[n] is not None and abs(measured[n] - kv[n]) < 0.5 for n in kv):
        kv_line += "; the real cache held exactly that per position after the speed runs."
    elif any(measured[n] is not None for n in kv):
        kv_line += ("; the real cache after the speed runs held "
                    + ", ".join(f"{n} {measured[n]:,.0f} B" for n in kv if measured[n] is not None) + " per position.")
    else:
        kv_line += "; the real cache was not measured in this run."
    if kv[big] != min(kv.values()):
        kv_line += (" The trade the literature describes: the cache shrinks by n_heads / n_kv_heads; the quality it "
                    "costs here is above.")
    out.append(kv_line)

    if all("decode" in r for r in v.values()):
        out.append(_speed_line(res, v, kv))
    return out


def _speed_line(res: dict, v: Mapping[str, dict], kv: Mapping[str, int]) -> str:
    sp = {n: r["decode"]["tokens_per_s"] for n, r in v.items()}
    overlap = max(s["min"] for s in sp.values()) <= min(s["max"] for s in sp.values())
    by_speed = sorted(sp, key=lambda n: -sp[n]["median"])
    follows_cache = by_speed == sorted(kv, key=kv.get)  # smallest cache fastest
    dec = next(iter(v.values()))["decode"]
    n_tok = dec["prompt_tokens"] + dec["new_tokens"]
    biggest = max(kv.values()) * n_tok
    weights = max(r["params"] for r in v.values()) * 4
    threads = res.get("settings", {}).get("threads", res.get("threads"))
    runs = len(dec.get("runs", []))
    line = (f"Decode speed (median of {runs} runs, "
            + ", ".join(f"{n} {s['median']:.0f} tok/s" for n, s in sp.items())
            + f", {threads} CPU thread{'s' if threads != 1 else ''}): after {n_tok} tokens the largest cache holds "
            f"{biggest / 1024:.0f} KiB, {100 * biggest / weights:.0f} % of the {weights / 1e6:.1f} MB of fp32 weights "
            "read every step. ")
    if overlap:
        line += "The runs' min–max ranges overlap: no speed difference is measured."
    elif follows_cache:
        line += ("The ranges do not overlap and the order follows the cache size; fewer K/V heads also mean fewer "
                 "weights to read (smaller K/V projections), and one run of each cannot separate the two.")
    else:
        line += ("The ranges do not overlap, yet the order does not follow the cache size: the machine is shared "
                 f"(load average {res.get('load_average_at_start', ['?'])[0]} when the run began), so we do not read "
                 "it as the architectures'.")
    return line


def read_positions(res: dict, context: int = 256, names: Sequence[str] = tuple(POSITION_VARIANTS),
                   seeds: Optional[Sequence[dict]] = None) -> list[str]:
    """Findings about the positional encodings from an evaluation result and, when given, seeds.json's runs."""
    v = {n: res["variants"][n] for n in names if n in res.get("variants", {})}
    if not v:
        return ["None of the positional-encoding variants is evaluated here yet."]
    sv, sv_rise = seed_values(seeds), seed_values(seeds, "rise", context)
    loss = {n: r["heldout"]["nats_per_token"] for n, r in v.items()}
    est = _best_estimate(loss, sv)
    order = sorted(est, key=est.get)
    diffs = [_evidence(v, sv, a, b, "loss", context) for a, b in zip(order, order[1:])]
    line = ("Inside the training context (held-out loss of the shipped runs, nats/token): "
            + ", ".join(f"{n} {loss[n]:.4f}" for n in order) + ". " + seed_status(order, sv))
    if len(order) >= 2:
        rank = ranking(order, diffs, "held-out loss")
        line += (" " + rank + _window_note(diffs)) if rank else (
            " " + " ".join(pair_sentence(a, b, d, "held-out loss") for a, b, d in zip(order, order[1:], diffs)))
    out = [line]
    if len(v) >= 2:
        out.append(_size_line(v, order[0], diffs[0], order[1]))
    if "gqa-none" in loss and "gqa-rope" in loss:
        d = _evidence(v, sv, "gqa-none", "gqa-rope", "loss", context)
        if d.resolved and d.mean > 0:
            out.append(f"No positional encoding is {d.mean:.3f} nats behind RoPE: gqa-none − gqa-rope = "
                       f"{_interval(d, 4)}. Haviv et al. "
                       "2022 show a causal decoder can infer position from its mask alone; here that does not make "
                       "up for all RoPE gives.")
        elif d.resolved:
            out.append(f"No positional encoding is {-d.mean:.3f} nats *ahead* of RoPE: gqa-none − gqa-rope = "
                       f"{_interval(d, 4)} — "
                       "unexpected.")
        else:
            out.append(pair_sentence("gqa-none", "gqa-rope", d, "held-out loss")
                       + " (Haviv et al. 2022 show a causal decoder can infer position from its mask alone.)")
    if "gqa-learned" in loss and "gqa-none" in loss:
        d = _evidence(v, sv, "gqa-learned", "gqa-none", "loss", context)
        if d.resolved and d.mean > 0:
            out.append(f"Learned positions end up behind none at all here: gqa-learned − gqa-none = "
                       f"{_interval(d, 4)}; Vaswani et al. 2017 found learned and sinusoidal positions nearly "
                       "identical. We have not established why (a "
                       f"{context}-row table learned from scratch in the same steps as the rest).")
        else:
            out.append(pair_sentence("gqa-learned", "gqa-none", d, "held-out loss"))

    rows, past = [], {}
    for n, r in v.items():
        inside, beyond = in_and_past_context(r["loss_by_position"], context)
        if beyond is None:
            note = r["loss_by_position"]["note"] or "not evaluated past the context"
            rows.append(f"{n} {inside:.2f} → {note.split(' (')[0]}")
            continue
        past[n] = beyond - inside
        spread = ""
        if len(sv_rise.get(n, {})) >= 2:
            s = summarise(list(sv_rise[n].values()))
            spread = f"; over {s['n']} seeds {signed(s['mean'], 2)} ± {s['sd']:.2f} sd"
        rows.append(f"{n} {inside:.2f} → {beyond:.2f} ({signed(beyond - inside, 2)}{spread})")
    requested = max(r["loss_by_position"]["requested"] for r in v.values())
    if requested <= context:
        return out
    out.append(f"Mean loss at positions 1–{context} → {context + 1}–{requested} (shipped runs): "
               + "; ".join(rows) + ".")
    if len(past) >= 2:
        p_est = _best_estimate(past, sv_rise)
        p_order = sorted(p_est, key=p_est.get)
        p_diffs = [_evidence(v, sv_rise, a, b, "rise", context) for a, b in zip(p_order, p_order[1:])]
        rank = ranking(p_order, p_diffs, f"how much the loss rises past {context}", 3)
        if rank:
            out.append(rank + _window_note(p_diffs))
        else:
            bare = [n for n in p_order if window_rise(v[n]["loss_by_position"], context) is None
                    and len(sv_rise.get(n, {})) < 2]
            out.append("How precisely each rise is measured needs every window's loss or several training seeds; "
                       f"{', '.join(bare)} have neither in these results, so the rises are not ranked.")
    lit = ["gqa-alibi", "gqa-rope", "gqa-sinusoidal"]
    if all(n in past for n in lit):
        what = f"rise past {context}"
        d1 = _evidence(v, sv_rise, "gqa-alibi", "gqa-rope", "rise", context)
        d2 = _evidence(v, sv_rise, "gqa-rope", "gqa-sinusoidal", "rise", context)
        text = ("The ALiBi paper (Press et al. 2022) reports that past the training length ALiBi extrapolates, "
                f"rotary degrades and sinusoidal fails. Ours: {pair_sentence('gqa-alibi', 'gqa-rope', d1, what, 3)} "
                f"{pair_sentence('gqa-rope', 'gqa-sinusoidal', d2, what, 3)}")
        if d1.resolved and d2.resolved and d1.mean < 0 and d2.mean < 0:
            text += (" Both in the paper's order" + (" across seeds." if d1.source == d2.source == "seeds" else
                                                     ", for these weights."))
        elif (d1.resolved and d1.mean > 0) or (d2.resolved and d2.mean > 0):
            text += (f" Where ours differ, that is a finding about {max(r['params'] for r in v.values()) / 1e6:.1f}-M-"
                     "parameter models on one corpus, not a refutation.")
        out.append(text)
    if "gqa-none" in past and "gqa-rope" in past:
        d = _evidence(v, sv_rise, "gqa-none", "gqa-rope", "rise", context)
        said = pair_sentence("gqa-none", "gqa-rope", d, f"rise past {context}", 3)
        who = "Kazemnejad et al. 2023, who find NoPE length-generalises better than RoPE on their (synthetic) tasks"
        lead = ("In line with " if d.mean < 0 else "Unlike ") if d.resolved else "Compare "
        out.append(f"No positional encoding past the context: {said} {lead}{who}.")
    dist = {n: float(np.mean(r["attention"]["mean_distance"])) for n, r in v.items()}
    a0 = next(iter(v.values()))["attention"]
    out.append("Mean attended distance over all heads and layers (tokens; spread evenly would be "
               f"{a0['uniform']['mean_distance']:.0f}): " + ", ".join(f"{n} {dist[n]:.1f}" for n in dist)
               + f". One sample of {a0['windows']} windows whose window-to-window spread is not recorded, so these "
               "are not ranked.")
    return out


# --------------------------------------------------------------------------------------------------------
# The architecture comparison: norm placement, norm kind, MLP, mixture of experts
# --------------------------------------------------------------------------------------------------------


def architecture_change(cfg: Mapping[str, object], short: bool = False) -> str:
    """The architectural choice a variant's config makes, in words; cfg: ModelConfig fields as a dict.
    {"norm_position": "post", …} -> "post-norm: the norm after each residual add (Vaswani et al. 2017), no final
    norm" (short: "post-norm"); the default's fields -> "the default: pre-norm RMSNorm, SwiGLU MLP 512 wide"."""
    act = {"silu": "SiLU", "gelu_tanh": "GELU"}.get(str(cfg.get("mlp_act", "silu")), str(cfg.get("mlp_act")))
    gated = {"SiLU": "SwiGLU", "GELU": "GeGLU"}.get(act, f"gated {act}")
    e, k, width = cfg.get("n_experts"), cfg.get("experts_per_token", 2), cfg.get("d_mlp")
    parts = []  # (short, long)
    if cfg.get("norm_position", "pre") == "post":
        parts.append(("post-norm", "post-norm: the norm after each residual add (Vaswani et al. 2017), no final norm"))
    if cfg.get("norm", "rmsnorm") == "layernorm":
        parts.append(("LayerNorm", "LayerNorm (subtracts the mean, then a weight and a bias: GPT-2) instead of "
                                   "RMSNorm"))
    if e:
        parts.append((f"a mixture of {e} experts, {k} per token",
                      f"{e} {gated} experts {width} wide, {k} per token (Mixtral's routing), instead of one MLP"))
    elif cfg.get("mlp", "gated") == "plain":
        parts.append((f"a {act} MLP", f"a two-matrix {act} MLP {width} wide (GPT-2's) instead of SwiGLU"))
    if not parts:
        return "the default" if short else f"the default: pre-norm RMSNorm, {gated} MLP {width} wide"
    return "; ".join(p[0] if short else p[1] for p in parts)


def architecture_intro(changes: Mapping[str, str], default: str, recipes: Mapping[str, dict],
                       devices: Mapping[str, str] = {}) -> str:
    """The Architecture tab's paragraph. changes: variant → `architecture_change` (the default included);
    recipes: variant → its train_log's "train" settings; devices: variant → the log's device, where logged."""
    rest = [n for n in changes if n != default]
    out = (f"{len(rest)} variants each change one architectural choice of the default ({default}: "
           f"{changes.get(default, 'pre-norm RMSNorm, SwiGLU').removeprefix('the default: ')}) and keep the rest, "
           "with about as many parameters per token: " + "; ".join(f"**{n}** — {changes[n]}" for n in rest)
           + ". Each is compared with the default, not ranked against the others: they change different things.")
    if len([n for n in recipes if n in changes]) >= 2:  # one log alone says nothing about training alike
        out += _recipe_sentence(list(changes), recipes)
    if len(set(devices.values())) > 1:
        out += (" Trained on different hardware (" + ", ".join(f"{n} {d}" for n, d in devices.items())
                + "), both in bf16 autocast: the same recipe, not the same arithmetic.")
    return out


def largest_seed_spread(sv: Mapping[str, dict[int, float]]) -> Optional[tuple[str, dict]]:
    """The variant whose values over training seeds have the largest sample sd, and their summary; None when no
    variant has two seeds. {"a": {0: 3.80, 1: 3.84}, "b": {0: 3.81}} -> ("a", {"sd": 0.0283, "n": 2, …})."""
    many = {n: summarise(list(s.values())) for n, s in sv.items() if len(s) >= 2}
    if not many:
        return None
    name = max(many, key=lambda n: many[n]["sd"])
    return name, many[name]


SEED_MARGIN_Z = 1.96  # two single runs, each with the largest measured seed sd s: their difference's sd is √2·s


def seed_margin(sd: float) -> float:
    """How far a difference between two single training runs could move with the seeds, at 95 %, if each run's
    seed-to-seed sd were `sd`: 1.96 · √2 · sd (0.0167 → 0.0463)."""
    return SEED_MARGIN_Z * math.sqrt(2) * sd


def _against_default(a: str, b: str, d: Difference, sv: Mapping[str, dict[int, float]],
                     spread: Optional[tuple[str, dict]], what: str, digits: int) -> str:
    """pair_sentence, with one more condition where the interval is over windows: a difference within
    `seed_margin` of the largest seed-to-seed sd measured for any variant is not called an order — the windows
    separate these weights, but a second training run of each could move their difference that much."""
    once = [n for n in (a, b) if len(sv.get(n, {})) < 2]
    if d.source != "windows" or not d.resolved:
        return pair_sentence(a, b, d, what, digits)
    runs = " and ".join(once) + (" were" if len(once) > 1 else " was") + " trained once"
    if spread is None:
        return (pair_sentence(a, b, d, what, digits) + f" No variant has a second training seed here, so how much "
                f"of that a different seed would undo is not measured ({runs}).")
    name, s = spread
    margin = seed_margin(s["sd"])
    ref = (f"±{margin:.{digits}f}, what second training runs could move the difference by (1.96 × √2 × the largest "
           f"seed-to-seed sd measured here, {s['sd']:.{digits}f}: {name}, n = {s['n']})")
    if abs(d.mean) <= margin:
        return (f"{a} − {b} in {what} = {_interval(d, digits)}: the windows separate these weights, but by less than "
                f"{ref}, and {runs}, so no order is claimed.")
    return (pair_sentence(a, b, d, what, digits)
            + f" That is beyond {ref}; {runs}, so {'their' if len(once) > 1 else 'its'} own spread is not measured.")


def read_architecture(res: dict, default: str = DEFAULT_VARIANT, names: Sequence[str] = tuple(ARCHITECTURE_VARIANTS),
                      seeds: Optional[Sequence[dict]] = None, context: int = 256,
                      aux_loss: Optional[Mapping[str, Sequence[float]]] = None) -> list[str]:
    """Findings about the architecture variants, each against the default, from an evaluation result (only the
    variants it holds), seeds.json's runs when given, and the MoE's logged load-balancing loss (aux_loss:
    variant → per-step values, unweighted)."""
    v = {n: res["variants"][n] for n in names if n in res.get("variants", {})}
    if default not in v or len(v) < 2:
        return [f"Fewer than two of {', '.join(names)} are evaluated here (the default, {default}, among them), so "
                "there is nothing to compare yet."]
    rest = [n for n in v if n != default]
    sv, sv_rise = seed_values(seeds), seed_values(seeds, "rise", context)
    spread = largest_seed_spread(sv)
    loss = {n: r["heldout"]["nats_per_token"] for n, r in v.items()}
    n_win = v[default]["heldout"].get("windows")
    line = ("Held-out loss of the shipped runs: " + ", ".join(f"{n} {loss[n]:.4f}" for n in v)
            + f" nats/token{f' over {n_win} windows' if n_win else ''}. " + seed_status(list(v), sv))
    if spread is not None and any(len(sv.get(n, {})) < 2 for n in rest):
        name, s = spread
        line += (f" Over the variants trained several times the seed-to-seed sd reached {s['sd']:.4f} ({name}, "
                 f"n = {s['n']}): with a spread that large in each, the difference between two runs trained once "
                 f"could move by ±{seed_margin(s['sd']):.4f} (1.96 × √2 × {s['sd']:.4f}), so a smaller difference is "
                 "not called an order, even where the held-out windows separate it.")
    out = [line]
    for n in rest:
        d = _evidence(v, sv, n, default, "loss", context)
        out.append(_against_default(n, default, d, sv, spread, "held-out loss", 4))

    total = {n: r["params"] for n, r in v.items()}
    active = {n: r.get("active_params", r["params"]) for n, r in v.items()}
    size = "Parameters: " + ", ".join(f"{n} {total[n]:,}" + (f" ({active[n]:,} used per token)"
                                                             if active[n] != total[n] else "") for n in v) + "."
    for n in (n for n in rest if active[n] != total[n]):
        size += (f" Against the default, {n} holds {signed(100 * (total[n] / total[default] - 1), 1)} % parameters "
                 f"and uses {signed(100 * (active[n] / active[default] - 1), 1)} % per token: it is compared at about "
                 "the default's compute per token, not at its memory.")
    out.append(size)

    rows, rise = [], {}
    for n, r in v.items():
        inside, beyond = in_and_past_context(r["loss_by_position"], context)
        if beyond is not None:
            rise[n] = beyond - inside
            rows.append(f"{n} {inside:.2f} → {beyond:.2f} ({signed(beyond - inside, 2)})")
    requested = max(r["loss_by_position"]["requested"] for r in v.values())
    if rows and requested > context:
        enc = {POS_NAMES.get(r["pos_encoding"], r["pos_encoding"]) for r in v.values()}
        text = (f"Mean loss at positions 1–{context} → {context + 1}–{requested}, past the {context}-token context "
                f"they were trained on{f' (all {enc.pop()})' if len(enc) == 1 else ''}: " + "; ".join(rows) + ".")
        if default in rise:
            rise_spread = largest_seed_spread(sv_rise)
            for n in (n for n in rest if n in rise):
                d = _evidence(v, sv_rise, n, default, "rise", context)
                text += " " + _against_default(n, default, d, sv_rise, rise_spread, f"rise past {context}", 3)
        out.append(text)

    for n in rest:
        e, k = v[n].get("n_experts"), v[n].get("experts_per_token")
        aux = list((aux_loss or {}).get(n) or [])
        if e and k and aux:
            last = aux[-100:]
            m = float(np.mean(last))
            out.append(f"{n}'s load-balancing loss (Switch Transformer's E · Σ fᵢ·Pᵢ, unweighted) averaged {m:.3f} "
                       f"over its last {len(last)} training steps: it is {k} when the tokens spread evenly over the "
                       f"{e} experts and {e} when every token goes to the same {k}, so the routing ended "
                       f"{100 * (m - k) / (e - k):.0f} % of the way from even to collapsed.")
    return out
