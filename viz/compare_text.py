"""The sentences the Compare page shows under "What our numbers show": an evaluation result in
(`results/evaluation.json`, as `model.evaluation` writes it), a list of plain-language findings out — each one
claiming no more than was measured.

    read_attention_variants(res)  -> MHA / GQA / MQA: held-out loss and how precisely it is measured, the KV
                                     cache per token, decode speed
    read_positions(res, context)  -> the five positional encodings: loss inside the training context, how it
                                     rises past it, how far back the heads look

Pure functions: a dict in, a list of Markdown strings out (variant names and numbers only, never user text).
No streamlit, no torch, no figures.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from model.evaluation.stats import in_and_past_context, paired_difference
from model.net.checkpoints import ATTENTION_VARIANTS, POSITION_VARIANTS

SMALL = 0.05  # nats/token: differences below this between single-seed runs of this size are not read as a ranking


def read_attention_variants(res: dict, names: Sequence[str] = tuple(ATTENTION_VARIANTS)) -> list[str]:
    """Plain-language findings about MHA/GQA/MQA from an evaluation result (only the variants it holds)."""
    v = {n: res["variants"][n] for n in names if n in res.get("variants", {})}
    if len(v) < 2:
        return ["Fewer than two of MHA / GQA / MQA are evaluated here, so there is nothing to compare yet."]
    loss = {n: r["heldout"]["nats_per_token"] for n, r in v.items()}
    best, worst = min(loss, key=loss.get), max(loss, key=loss.get)
    spread = loss[worst] - loss[best]
    d, se = paired_difference(v[worst]["heldout"]["window_losses"], v[best]["heldout"]["window_losses"])
    n_win = v[best]["heldout"]["windows"]
    line = ("Held-out loss: " + ", ".join(f"{n} {loss[n]:.3f}" for n in v) + f" nats/token — a spread of "
            f"**{spread:.3f}**. On the same {n_win} held-out windows, {worst} − {best} = {d:+.3f} ± {se:.3f} "
            "(standard error over windows): that is how precisely this text measures these weights. Each variant "
            "was trained once, with one seed, so the variation between seeds is not measured here. ")
    if abs(d) > 3 * se:
        line += ("The difference is well beyond that error, so these particular weights do differ on this text; "
                 "whether the architecture or the seed made them differ, one run each cannot tell. ")
    else:
        line += "The difference is within a few standard errors: not even these weights are told apart. "
    order = sorted(loss, key=loss.get)
    if order == [n for n in ATTENTION_VARIANTS if n in loss]:  # MHA, GQA, MQA: fewer K/V heads down the list
        line += "The order (fewer K/V heads, slightly higher loss) is the one the literature expects. "
    if spread <= SMALL:
        line += ("But a few hundredths of a nat between single runs at this size is commonly within seed noise: "
                 "we do not claim a ranking from it.")
    else:
        line += (f"{spread:.2f} nats is more than the few hundredths usually put down to seeds, but with one run "
                 "each we cannot say how much of it is.")
    out = [line]
    kv = {n: r["kv_bytes_per_token"] for n, r in v.items()}
    if "mha-rope" in kv:
        ratios = ", ".join(f"{n} {kv[n]:,} B ({kv['mha-rope'] / kv[n]:.0f}× smaller)" for n in kv if n != "mha-rope")
        verdict = ("which is what our losses show as well, as far as one seed can tell" if spread <= SMALL else
                   "our quality gap is larger than that, see above")
        out.append(f"The KV cache per token is where they certainly differ: MHA {kv['mha-rope']:,} B; {ratios} "
                   "(fp32, measured on the real cache). The literature's trade (Shazeer 2019; Ainslie et al. 2023): "
                   "GQA and MQA shrink the cache by n_heads / n_kv_heads for little loss in quality — " + verdict + ".")
    sp = {n: r["decode"]["tokens_per_s"] for n, r in v.items()}
    overlap = max(s["min"] for s in sp.values()) <= min(s["max"] for s in sp.values())
    by_speed = sorted(sp, key=lambda n: -sp[n]["median"])
    follows_cache = by_speed == sorted(kv, key=kv.get)  # smallest cache fastest
    dec = next(iter(v.values()))["decode"]
    n_tok = dec["prompt_tokens"] + dec["new_tokens"]
    biggest = max(kv.values()) * n_tok
    weights_mb = max(r["params"] for r in v.values()) * 4 / 1e6
    out.append("Decode speed (" + ", ".join(f"{n} {s['median']:.0f} tok/s" for n, s in sp.items())
               + f", one CPU thread): after {n_tok} tokens the largest cache holds {biggest / 1024:.0f} KiB, next to "
               f"{weights_mb:.0f} MB of fp32 weights read every step, so the cache is not what limits decoding here. "
               + ("The runs' min–max ranges overlap: no speed difference is measured. " if overlap else
                  "The ranges do not overlap and the order follows the cache size, but at this size that comes from "
                  "the smaller K/V projections (fewer weights to read), not from reading less cache. "
                  if follows_cache else
                  "The ranges do not overlap, yet the order does not follow the cache size: we put that down to the "
                  f"machine (a shared CPU, load average {res.get('load_average_at_start', ['?'])[0]} when the run began), "
                  "not to the architectures. ")
               + "The speed-up GQA and MQA bring large models — less cache to read per step — does not show at "
               "this size.")
    return out


def read_positions(res: dict, context: int = 256, names: Sequence[str] = tuple(POSITION_VARIANTS)) -> list[str]:
    """Plain-language findings about the five positional encodings, from an evaluation result."""
    v = {n: res["variants"][n] for n in names if n in res.get("variants", {})}
    if not v:
        return ["None of the positional-encoding variants is evaluated here yet."]
    out = []
    loss = {n: r["heldout"]["nats_per_token"] for n, r in v.items()}
    best = min(loss, key=loss.get)
    line = (f"Inside the training context (held-out loss): best {best} {loss[best]:.3f} nats/token; "
            + ", ".join(f"{n} {loss[n] - loss[best]:+.3f}" for n in loss if n != best) + ".")
    if "gqa-none" in loss and "gqa-rope" in loss:
        gap = loss["gqa-none"] - loss["gqa-rope"]
        if gap > SMALL:
            line += (f" No positional encoding costs {gap:.3f} nats against RoPE: the causal mask alone lets a "
                     "decoder learn much about order (Haviv et al. 2022), but not all of it at this size.")
        elif gap >= -SMALL:
            line += (f" No positional encoding is within {abs(gap):.3f} nats of RoPE: here the causal mask alone "
                     "recovers nearly all the order the task needs (as Haviv et al. 2022 found for larger models).")
        else:
            line += (f" No positional encoding is {-gap:.3f} nats *better* than RoPE here — unexpected; one seed "
                     "each, so treat it with care.")
    if "gqa-learned" in loss and "gqa-none" in loss and loss["gqa-learned"] > loss["gqa-none"]:
        worse = loss["gqa-learned"] - loss["gqa-none"]
        line += (f" Learned positions end up worse than none at all here ({worse:+.3f} nats); in larger models they "
                 "usually come close to the others inside the context. We have not established why (one seed; a "
                 "256-row table learned from scratch in the same steps as the rest).")
    out.append(line)
    rows, past = [], {}
    for n, r in v.items():
        inside, beyond = in_and_past_context(r["loss_by_position"], context)
        if beyond is None:
            note = r["loss_by_position"]["note"] or "not evaluated past the context"
            rows.append(f"{n} {inside:.2f} → {note.split(' (')[0]}")
        else:
            past[n] = beyond - inside
            rows.append(f"{n} {inside:.2f} → {beyond:.2f} ({beyond - inside:+.2f})")
    requested = max(r["loss_by_position"]["requested"] for r in v.values())
    if requested <= context:
        return out
    out.append(f"Mean loss at positions 1–{context} → {context + 1}–{requested}: " + "; ".join(rows) + ".")
    if past:
        order = sorted(past, key=past.get)
        out.append("Ranked by how little the loss rises past the training length: " + " < ".join(order) + ".")
        lit = ["gqa-alibi", "gqa-rope", "gqa-sinusoidal"]
        if all(n in past for n in lit):
            agrees = past["gqa-alibi"] <= past["gqa-rope"] <= past["gqa-sinusoidal"]
            out.append(("This agrees" if agrees else "This does not fully agree")
                       + " with the ALiBi paper's ordering (Press et al. 2022: ALiBi extrapolates, rotary degrades, "
                       "sinusoidal fails). Ours are 2-M-parameter models trained for minutes on one corpus, one seed "
                       "each; where we differ, that is a finding about models this small, not a refutation.")
        if "gqa-none" in past and "gqa-rope" in past:
            out.append("No positional encoding past the context: "
                       + (f"its loss rises {past['gqa-none']:+.2f} against RoPE's {past['gqa-rope']:+.2f}, in line "
                          "with Kazemnejad et al. 2023, who find NoPE length-generalises better than RoPE on their "
                          "tasks." if past["gqa-none"] < past["gqa-rope"] else
                          f"its loss rises {past['gqa-none']:+.2f}, at least as much as RoPE's "
                          f"{past['gqa-rope']:+.2f}; Kazemnejad et al. 2023 report NoPE generalising better on their "
                          "(synthetic) tasks."))
    dist = {n: float(np.mean(r["attention"]["mean_distance"])) for n, r in v.items()}
    uni = next(iter(v.values()))["attention"]["uniform"]["mean_distance"]
    out.append("Mean attended distance over all heads and layers (tokens; spread evenly would be "
               f"{uni:.0f}): " + ", ".join(f"{n} {dist[n]:.1f}" for n in sorted(dist, key=dist.get)) + "."
               + (" ALiBi's heads look the nearest, as its distance penalty pushes them to."
                  if "gqa-alibi" in dist and min(dist, key=dist.get) == "gqa-alibi" else ""))
    return out
