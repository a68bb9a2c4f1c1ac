"""Compare variants: MHA vs GQA vs MQA, the positional encodings, and four architectural choices (post-norm,
LayerNorm, a GELU MLP, a mixture of experts), each against the default, on models trained alike.

Opens instantly from the committed `results/evaluation.json` (made by `python -m model.evaluation`) and, once
the extra training seeds are measured, `results/seeds.json` (`python -m model.evaluation.seeds`: then the table,
the bars and the sentences carry the seed spread); a button re-runs the quick evaluation here. Training curves
come from each checkpoint's `train_log.json`. The live parts (attention side by side, every variant's next-token
guess) run the sidebar's prompt through each compared variant whose checkpoint loads, via the shared cached
traces; a missing or unreadable checkpoint is named and left out, never replaced by other weights. The quick
re-run and the next-token guesses cover the architecture variants too; the Architecture tab's tables and figures
draw from the evaluation's rows and say which of its variants have no weights or no row yet, with the commands
that make them. Thin: numbers
from `model/evaluation/` (evaluate, stats, seeds), the sentences from `viz/compare_text.py`, figures from
`viz/compare.py`.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import streamlit as st

from app_shared import (
    cached_figure, checkpoint_problem, current_model, current_prompt, download_csv, download_json, is_folder,
    load_model, model_error, model_name, plain_md, prompt_notices, require_shell, sync_url, trace_prompt, url_choice,
    url_int, url_tabs,
)
from model.analysis import rope as rope_probe
from model.analysis.lens import top_k
from model.decoding.sampling import softmax
from model.evaluation import seeds as seed_runs
from model.evaluation.evaluate import QUICK, RESULTS_PATH, evaluate_shipped
from model.evaluation.stats import in_and_past_context
from model.net.checkpoints import (ARCHITECTURE_VARIANTS, ATTENTION_VARIANTS, COMPARED_VARIANTS, DEFAULT_VARIANT,
                                   POSITION_VARIANTS, VARIANT_BLURBS, available_variants, load_train_log,
                                   variant_config, variant_dir)
from model.text.corpus import VAL_WORKS
from model.text.tokenizer import token_label
from viz.compare import (attended_distance_figure, attention_side_by_side, kv_sharing_compare, last_token_attention,
                         loss_bars, loss_by_position_figure, next_token_bars, params_bars, position_signals_figure,
                         training_curves)
from viz.compare_text import (architecture_change, architecture_intro, attention_intro, by_position_caption,
                              curves_caption, intro, kv_caption, last_token_caption, position_signals_caption,
                              positions_intro, read_architecture, read_attention_variants, read_positions, seed_cell,
                              seed_values)

require_shell()  # first, before any widget: see app_shared.require_shell

ATTENTION = ATTENTION_VARIANTS  # MHA, GQA, MQA: the default's config but for n_kv_heads
POSITIONS = POSITION_VARIANTS  # RoPE, sinusoidal, learned, ALiBi, none: the default's config but for pos_encoding
ARCHITECTURE = ARCHITECTURE_VARIANTS  # the default, post-norm, LayerNorm, GELU MLP, MoE: listed in checkpoints.py
TABS = ["Attention variants", "Positional encodings", "Architecture"]
GRID_MAX_TOKENS = 48  # attention grids side by side: past this many tokens a cell is under a pixel
SMOOTH = 50  # training-loss moving average, in steps
TOP_K = 8
CONTEXT = variant_config(DEFAULT_VARIANT).max_seq_len
PLOT_CONFIG = {"displaylogo": False}


# --------------------------------------------------------------------------------------------------------
# Cached data (the file's mtime is part of each key, so a fresh evaluation or checkpoint is picked up)
# --------------------------------------------------------------------------------------------------------


def _mtime(p: Path) -> float:
    return p.stat().st_mtime if p.is_file() else 0.0


@st.cache_data(show_spinner=False)
def committed_results(path: str, mtime: float) -> dict | None:
    p = Path(path)
    return json.loads(p.read_text()) if p.is_file() else None


@st.cache_data(show_spinner=False)
def committed_seeds(path: str, mtime: float) -> list[dict] | None:
    """results/seeds.json's runs (the shipped seed 0 and the extra ones), or None before it exists."""
    p = Path(path)
    return json.loads(p.read_text())["runs"] if p.is_file() else None


@st.cache_data(show_spinner=False)
def train_curve(variant: str, mtime: float) -> dict | None:
    log = load_train_log(variant)
    if log is None:
        return None
    return {"train_loss": log.get("train_loss", []), "val": log.get("val", []), "heldout": log.get("heldout"),
            "elapsed_s": log.get("elapsed_s"), "command": log.get("command", ""), "train": log.get("train", {}),
            "device": log.get("device"), "aux_loss": log.get("aux_loss")}


@st.cache_data(show_spinner=False)
def position_signals(learned_variant: str | None) -> dict:
    """What each encoding feeds the model at the default's sizes. Only the learned table needs weights: those
    of `learned_variant` (None when no learned variant's checkpoint loads)."""
    cfg = variant_config(DEFAULT_VARIANT)
    n = cfg.max_seq_len
    sin = rope_probe.sinusoidal_position_table(dataclasses.replace(cfg, pos_encoding="sinusoidal"))
    learned = rope_probe.absolute_position_table(load_model(learned_variant)) if learned_variant else None
    return {"rope": rope_probe.angle_table(n, cfg.head_dim, cfg.rope_theta), "sinusoidal": sin, "learned": learned,
            "alibi": rope_probe.alibi_head_slopes(cfg.n_heads)}


def curves(names: list[str]) -> dict:
    out = {}
    for n in names:
        c = train_curve(n, _mtime(variant_dir(n) / "train_log.json"))
        if c is not None:
            out[n] = c
    return out


# --------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------

committed = committed_results(str(RESULTS_PATH), _mtime(RESULTS_PATH))
res = st.session_state.get("cmp_quick") or committed
seeds_path = seed_runs.SEEDS_PATH  # read at run time: tests point it at a synthetic file
seeds = committed_seeds(str(seeds_path), _mtime(seeds_path))

st.title("Compare variants")
if is_folder(current_model()):  # the sidebar holds a folder's model: this page is about ours alone
    st.info(f"This page compares **our** Shakespeare variants, trained alike so that one design choice differs "
            f"between them; the sidebar's model, {plain_md(model_name(current_model()), 120)}, is not one of them and "
            "has no trained siblings to compare with. Everything below is about our variants; the live parts read "
            "your prompt in our tokenizer.", icon=":material/info:")
CHANGES = {n: architecture_change(dataclasses.asdict(variant_config(n))) for n in ARCHITECTURE}
st.markdown(intro(
    COMPARED_VARIANTS, [variant_config(n).attention_kind for n in ATTENTION],
    [variant_config(n).pos_encoding for n in POSITIONS],
    {n: VARIANT_BLURBS.get(n, n) for n in available_variants()  # shipped ones only
     if n not in COMPARED_VARIANTS and n not in ARCHITECTURE},
    {n: r["params"] for n, r in (res or {}).get("variants", {}).items()},
    {n: c["train"] for n, c in curves(COMPARED_VARIANTS).items()}, len(VAL_WORKS),
    (res or {}).get("data", {}).get("tokens"),
    {n: architecture_change(dataclasses.asdict(variant_config(n)), short=True) for n in ARCHITECTURE
     if n != DEFAULT_VARIANT}))

trained = available_variants()
missing = [v for v in COMPARED_VARIANTS if v not in trained]
if missing:
    st.warning(f"No checkpoint in this checkout for **{', '.join(missing)}**: their training curves and live "
               "views are left out; the measured numbers below still show what the committed evaluation found.",
               icon=":material/warning:")
EVERY = list(dict.fromkeys(COMPARED_VARIANTS + ARCHITECTURE))  # every variant this page compares, once each
broken = {v: p for v in EVERY if v in trained and (p := checkpoint_problem(v))}
for v, problem in broken.items():
    model_error(v, problem, "it is left out of the live views and the quick re-run")
live = [v for v in EVERY if v in trained and v not in broken]  # only weights that really loaded

c1, c2 = st.columns([2, 1], vertical_alignment="center")  # [3, 1] clipped the button's label at 1280 px
with c2:
    rerun = st.button("Re-run the quick evaluation", icon=":material/refresh:", disabled=not live, key="cmp_rerun",
                      help="A few windows of everything, on this machine, now (tens of seconds). Noisier than "
                           "the committed full run; it does not overwrite it.")
    if st.session_state.get("cmp_quick") and st.button("Back to the committed full run", icon=":material/undo:",
                                                        key="cmp_back"):
        del st.session_state["cmp_quick"]
        res = committed
if rerun:
    bar = st.progress(0.0, "starting…")
    res = evaluate_shipped(live, settings=QUICK, progress=lambda f, t: bar.progress(min(1.0, f), t),
                           command="quick re-run from the compare page", quick=True)
    st.session_state["cmp_quick"] = res
    st.rerun()  # draw the page again from the new numbers, with the way back offered
with c1:
    if res is None:
        st.info("No evaluation result yet (`results/evaluation.json`). Run `python -m model.evaluation`, or "
                "re-run the quick one here.", icon=":material/info:")
    else:
        kind = "a **quick** run (few windows: noisy)" if res.get("quick") else "the full run"
        merged: dict[tuple, list[str]] = {}  # rows added later by `--merge`, grouped by the run that made them
        for n, r in res.get("variants", {}).items():
            if m := r.get("merged_from"):
                merged.setdefault((m.get("date") or "", m.get("command") or ""), []).append(n)
        later = "".join(f" · {', '.join(ns)} added {d[:16].replace('T', ' ')} UTC by `{c}`"
                        for (d, c), ns in merged.items())
        st.caption(f":material/science: Showing {kind} from {res['date'][:16].replace('T', ' ')} UTC: "
                   f"`{res.get('command', '')}` · torch {res['torch']} · {res['cpu']}, {res['threads']} thread · "
                   f"{res['data']['tokens']:,} held-out tokens · took {res['elapsed_s']:.0f} s{later}.")

R = (res or {}).get("variants", {})
baselines = (res or {}).get("baselines", {})
seed_loss = seed_values(seeds)  # {variant: {seed: nats/token}}; empty before results/seeds.json exists
prompt = current_prompt(DEFAULT_VARIANT)  # our variants share one tokenizer, whatever the sidebar's model
has_prompt = prompt_notices(prompt)  # shown once, here; False when the prompt is empty


def summary_rows(names: list[str]) -> list[dict]:
    rows = []
    for n in names:
        if n not in R:
            continue
        r = R[n]
        sp = r["decode"]["tokens_per_s"]
        rows.append({"variant": n, "attention": f"{r['attention_kind']} ({r['n_heads']}/{r['n_kv_heads']})",
                     "positions": r["pos_encoding"], "held-out nats/token": r["heldout"]["nats_per_token"],
                     "over training seeds (nats/token)": seed_cell(seed_loss.get(n, {})),
                     "perplexity": r["heldout"]["perplexity"], "bits/char": r["heldout"]["bits_per_char"],
                     "KV bytes/token (fp32)": r["kv_bytes_per_token"], "parameters": r["params"],
                     "decode tok/s (median)": sp["median"],
                     "decode tok/s (min–max)": f"{sp['min']:.0f}–{sp['max']:.0f}"})
    return rows


def summary_table(names: list[str]) -> None:
    rows = summary_rows(names)
    if not rows:
        st.info("None of these variants is in the evaluation result.")
        return
    st.dataframe(rows, hide_index=True, column_config={
        "held-out nats/token": st.column_config.NumberColumn(format="%.4f"),
        "bits/char": st.column_config.NumberColumn(format="%.4f"),
        "parameters": st.column_config.NumberColumn(format="localized"),
        "KV bytes/token (fp32)": st.column_config.NumberColumn(format="localized"),
    })
    b = ", ".join(f"{k} {v['nats_per_token']:.2f} nats/token ({v['bits_per_char']:.2f} bits/char, {v['smoothing']})"
                  for k, v in baselines.items())
    dec = R[rows[0]["variant"]]["decode"]
    threads = res.get("settings", {}).get("threads", res.get("threads"))
    st.caption("Held-out nats/token, perplexity and bits/char are the shipped run of each variant; the seed column "
               "is every training run's held-out loss, mean ± sample sd. Speed: greedy cached decoding of "
               f"{dec['new_tokens']} tokens after a {dec['prompt_tokens']}-token prompt, {threads} "
               f"thread{'s' if threads != 1 else ''}, {len(dec['runs'])} runs; the CPU is shared, so treat small "
               f"differences as noise. Count-based baselines on the same text: {b}.")


@st.cache_resource(show_spinner=False, max_entries=8)
def curves_figure(names: tuple[str, ...], mtimes: tuple[float, ...]):
    """Shared and cached like app_shared.cached_figure, but keyed by the logs' mtimes: hashing the curves
    themselves (thousands of floats) costs more than drawing them."""
    return training_curves(curves(list(names)), SMOOTH)


def training_section(names: list[str], key: str) -> None:
    cs = curves(names)
    if not cs:
        st.info("No training logs in this checkout.")
        return
    st.plotly_chart(curves_figure(tuple(cs), tuple(_mtime(variant_dir(n) / "train_log.json") for n in cs)),
                    key=key, config=PLOT_CONFIG)
    st.caption(curves_caption({n: c["train"] for n, c in cs.items()}, SMOOTH,
                              next(iter(R.values()))["heldout"].get("windows") if R else None))


def grids_section(names: list[str], key: str) -> None:
    if not has_prompt:
        st.info("Type a prompt in the sidebar to see the patterns.", icon=":material/edit_note:")
        return
    show = [n for n in names if n in live]
    if not show:
        st.info("None of these variants has a checkpoint that loads in this checkout.", icon=":material/info:")
        return
    L = variant_config(show[0]).n_layers
    url_int(key, L - 1, 0, L - 1)
    layer = st.selectbox("Layer", list(range(L)), key=key, format_func=lambda l: f"layer {l}")
    n = min(len(prompt.ids), GRID_MAX_TOKENS)
    ids = prompt.ids[:n]
    pats = {v: trace_prompt(v, ids)[f"blocks.{layer}.attn.hook_pattern"] for v in show}
    st.plotly_chart(cached_figure(attention_side_by_side, pats, list(prompt.labels[:n]), layer), key=f"{key}_fig",
                    config=PLOT_CONFIG)
    cut = f" (the first {n} of {len(prompt.ids)} tokens)" if n < len(prompt.ids) else ""
    st.caption(f"Your prompt{cut}, layer {layer}: one row per variant, one column per query head; query down, key "
               "across, grey = masked future. Hover a cell for the two tokens.")


def reading(lines: list[str]) -> None:
    st.markdown("\n".join(f"- {l}" for l in lines))


tab_attn, tab_pos, tab_arch = url_tabs(TABS, "cmp_tab")

# ---- Attention variants ------------------------------------------------------------------------------
with tab_attn:
    heads = {n: (variant_config(n).n_heads, variant_config(n).n_kv_heads) for n in ATTENTION}
    st.markdown(attention_intro(heads, [variant_config(n).pos_encoding for n in ATTENTION]))
    st.subheader("Training curves", anchor=False)
    training_section(ATTENTION, "cmp_curves_attn")
    st.subheader("Quality, memory, size, speed", anchor=False)
    summary_table(ATTENTION)
    names = [n for n in ATTENTION if n in R]
    if names:
        seed_bits = {n: list(s.values()) for n, s in seed_values(seeds, "bits").items()}
        st.plotly_chart(cached_figure(loss_bars, names, [R[n]["heldout"]["bits_per_char"] for n in names],
                                      {k: v["bits_per_char"] for k, v in baselines.items()}, seed_bits),
                        key="cmp_bars_attn", config=PLOT_CONFIG)
        if any(len(seed_bits.get(n, [])) >= 2 for n in names):
            st.caption("Bars: the shipped run. Dots: every training seed; whisker: their mean ± sample sd.")
        else:
            st.caption("Bars: the one shipped run of each variant; each was trained once, so the seed-to-seed "
                       "spread is not drawn — it is not measured.")
    st.subheader("Which query heads read which K/V head", anchor=False)
    st.plotly_chart(cached_figure(kv_sharing_compare, heads), key="cmp_kv", config=PLOT_CONFIG)
    st.caption(kv_caption(heads))
    st.subheader("The same prompt, side by side", anchor=False)
    grids_section(ATTENTION, "cmp_layer_attn")
    st.subheader("What our numbers show", anchor=False)
    if R:
        reading(read_attention_variants(res, seeds=seeds))
    else:
        st.info("Run the evaluation to fill this in.")

# ---- Positional encodings ----------------------------------------------------------------------------
with tab_pos:
    st.markdown(positions_intro({n: variant_config(n).pos_encoding for n in POSITIONS},
                                {n: (variant_config(n).n_heads, variant_config(n).n_kv_heads) for n in POSITIONS}))
    st.subheader("Training curves", anchor=False)
    training_section(POSITIONS, "cmp_curves_pos")
    st.subheader("Quality, memory, size, speed", anchor=False)
    summary_table(POSITIONS)
    series = {n: {"x": R[n]["loss_by_position"]["bucket_centre"], "y": R[n]["loss_by_position"]["bucket_mean"],
                  "end": R[n]["loss_by_position"]["evaluated"], "note": R[n]["loss_by_position"]["note"]}
              for n in POSITIONS if n in R}
    x_max = max((R[n]["loss_by_position"]["requested"] for n in series), default=CONTEXT)
    st.subheader(f"Loss by position, out to {x_max:,} tokens", anchor=False)
    if series:
        st.plotly_chart(cached_figure(loss_by_position_figure, series, CONTEXT, x_max), key="cmp_by_pos",
                        config=PLOT_CONFIG)
        any_r = R[next(iter(series))]["loss_by_position"]
        inside = {n: {"y": s["y"], "inside": in_and_past_context(R[n]["loss_by_position"], CONTEXT)[0]}
                  for n, s in series.items()}
        st.caption(by_position_caption(inside, CONTEXT, any_r["bucket"], any_r["windows"], any_r["requested"]))
    st.subheader("How far back the heads look", anchor=False)
    stats = {n: np.array(R[n]["attention"]["mean_distance"]) for n in POSITIONS if n in R}
    if stats:
        a0 = R[next(iter(stats))]["attention"]
        st.plotly_chart(cached_figure(attended_distance_figure, stats, a0["uniform"]["mean_distance"]), key="cmp_dist",
                        config=PLOT_CONFIG)
        st.caption(f"Mean attended distance Σₖ pattern·(q − k), averaged over queries of {a0['windows']} held-out "
                   f"windows of {a0['seq_len']} tokens: big dots are each layer's mean over heads, small dots single "
                   "heads. The dashed line is what attention spread evenly over the context would give.")
        with st.expander("Entropy and first-token share, per head", icon=":material/table:"):
            rows = [{"variant": n, "layer": l, "head": h,
                     "mean distance": R[n]["attention"]["mean_distance"][l][h],
                     "entropy (nats)": R[n]["attention"]["entropy"][l][h],
                     "first-token share": R[n]["attention"]["first_token"][l][h]}
                    for n in list(stats) + [m for m in ATTENTION if m in R and m not in stats]
                    for l in range(len(R[n]["attention"]["mean_distance"]))
                    for h in range(len(R[n]["attention"]["mean_distance"][0]))]
            st.dataframe(rows, hide_index=True, height=300)
            st.caption("Entropy 0 = one key only; spread evenly it would average "
                       f"{a0['uniform']['entropy']:.2f} nats. The first-token share is the attention parked on the "
                       "window's first token — an 'attention sink' when large.")
            download_csv(rows, "attention_stats.csv", "Download attention statistics (CSV)")
    st.subheader("The position signal each one uses", anchor=False)
    sig = position_signals(next((v for v in live if variant_config(v).pos_encoding == "learned"), None))
    st.plotly_chart(cached_figure(position_signals_figure, sig["rope"], sig["sinusoidal"], sig["learned"], sig["alibi"]),
                    key="cmp_signals", config=PLOT_CONFIG)
    st.caption(position_signals_caption(sig["rope"], CONTEXT, sig["learned"] is not None))
    st.page_link("pages/rope.py", label="RoPE's rotations on the model's own q and k", icon=":material/360:")
    st.subheader("The same prompt, side by side", anchor=False)
    grids_section(POSITIONS, "cmp_layer_pos")
    st.subheader("What our numbers show", anchor=False)
    if R:
        reading(read_positions(res, CONTEXT, seeds=seeds))
    else:
        st.info("Run the evaluation to fill this in.")

# ---- Architecture: norm placement, norm kind, MLP, mixture of experts ----------------------------------
with tab_arch:
    arch_logs = curves(ARCHITECTURE)
    st.markdown(architecture_intro(CHANGES, DEFAULT_VARIANT, {n: c["train"] for n, c in arch_logs.items()},
                                   {n: c["device"] for n, c in arch_logs.items() if c.get("device")}))
    unweighted = [n for n in ARCHITECTURE if n != DEFAULT_VARIANT and n not in trained]
    unevaluated = [n for n in ARCHITECTURE if n in trained and n not in R]
    if unweighted:
        who = ("None of the architecture variants has weights in this checkout yet"
               if len(unweighted) == len(ARCHITECTURE) - 1 else "No weights in this checkout yet for")
        st.info(f"{who}: **{', '.join(unweighted)}** (no `checkpoints/<name>/model.safetensors`). Each trains with "
                f"`python -m model.training.train --variant <name>` — `python -m model.training.train --variant "
                f"{unweighted[-1]}` for the last — on the same recipe as every other variant (about half an hour "
                "on one CPU core). Only variants with an evaluation row are drawn below.", icon=":material/info:")
    if unevaluated:
        st.info(f"Trained but not in this evaluation: **{', '.join(unevaluated)}**. "
                f"`python -m model.evaluation --variants {' '.join(unevaluated)} --merge` measures them (about 40 s "
                "each on one thread) and adds their rows to `results/evaluation.json`, leaving the others as they "
                "are.", icon=":material/info:")
    arch_rows = [n for n in ARCHITECTURE if n in R]
    if len(arch_logs) >= 2:
        st.subheader("Training curves", anchor=False)
        training_section(ARCHITECTURE, "cmp_curves_arch")
    if len(arch_rows) >= 2:
        st.subheader("Held-out loss", anchor=False)
        seed_bits = {n: list(x.values()) for n, x in seed_values(seeds, "bits").items()}
        st.dataframe([{"variant": n, "change": CHANGES[n], "held-out nats/token": R[n]["heldout"]["nats_per_token"],
                       "over training seeds (nats/token)": seed_cell(seed_loss.get(n, {})),
                       "bits/char": R[n]["heldout"]["bits_per_char"], "perplexity": R[n]["heldout"]["perplexity"],
                       "parameters": R[n]["params"], "used per token": R[n].get("active_params", R[n]["params"])}
                      for n in arch_rows], hide_index=True, column_config={
            "held-out nats/token": st.column_config.NumberColumn(format="%.4f"),
            "bits/char": st.column_config.NumberColumn(format="%.4f"),
            "parameters": st.column_config.NumberColumn(format="localized"),
            "used per token": st.column_config.NumberColumn(format="localized")})
        st.plotly_chart(cached_figure(loss_bars, arch_rows, [R[n]["heldout"]["bits_per_char"] for n in arch_rows],
                                      {k: b["bits_per_char"] for k, b in baselines.items()}, seed_bits),
                        key="cmp_bars_arch", config=PLOT_CONFIG)
        once = [n for n in arch_rows if len(seed_bits.get(n, [])) < 2]
        st.caption(" ".join(
            (["Bars: the shipped run. Dots: every training seed; whisker: their mean ± sample sd."]
             if len(once) < len(arch_rows) else ["Bars: the one shipped run of each variant."])
            + ["; ".join(f"{n}: 1 run, spread not measured" for n in once) + "."] * bool(once)))
        st.subheader("Parameters held and used per token", anchor=False)
        st.plotly_chart(cached_figure(params_bars, arch_rows, [R[n]["params"] for n in arch_rows],
                                      [R[n].get("active_params", R[n]["params"]) for n in arch_rows]),
                        key="cmp_params_arch", config=PLOT_CONFIG)
        st.caption("All parameters: what the model holds in memory. Used per token: what one token's forward "
                   "multiplies by — the router and the k experts it picks, for a mixture of experts; everything, "
                   "for the others (model.accounting's count).")
        arch_series = {n: {"x": R[n]["loss_by_position"]["bucket_centre"], "y": R[n]["loss_by_position"]["bucket_mean"],
                           "end": R[n]["loss_by_position"]["evaluated"], "note": R[n]["loss_by_position"]["note"]}
                       for n in arch_rows}
        arch_x = max(R[n]["loss_by_position"]["requested"] for n in arch_rows)
        st.subheader(f"Loss by position, out to {arch_x:,} tokens", anchor=False)
        st.plotly_chart(cached_figure(loss_by_position_figure, arch_series, CONTEXT, arch_x), key="cmp_by_pos_arch",
                        config=PLOT_CONFIG)
        lp = R[arch_rows[0]]["loss_by_position"]
        st.caption(by_position_caption(
            {n: {"y": x["y"], "inside": in_and_past_context(R[n]["loss_by_position"], CONTEXT)[0]}
             for n, x in arch_series.items()}, CONTEXT, lp["bucket"], lp["windows"], lp["requested"]))
    st.subheader("What our numbers show", anchor=False)
    if len(arch_rows) >= 2:
        reading(read_architecture(res, DEFAULT_VARIANT, ARCHITECTURE, seeds=seeds, context=CONTEXT,
                                  aux_loss={n: c["aux_loss"] for n, c in arch_logs.items() if c.get("aux_loss")}))
    else:
        st.info("Nothing to compare yet: the default's row and at least one architecture variant's are needed.",
                icon=":material/info:")
sync_url("cmp_layer_attn", "cmp_layer_pos", "cmp_live_set")

# ---- Live: the prompt through every variant ----------------------------------------------------------
st.divider()
st.subheader("Your prompt, every variant: what comes next?", anchor=False)
if has_prompt and not live:
    st.info("No compared variant's checkpoint loads in this checkout: there is no model to run your prompt "
            "through.", icon=":material/info:")
elif has_prompt:
    # Two groups, one at a time: ten panels at once were three screens of bars and heatmaps.
    groups = {"attention and positions": [v for v in COMPARED_VARIANTS if v in live],
              "architecture": [v for v in ARCHITECTURE if v in live]}
    # The architecture group needs the default and one more (the default alone compares nothing), unless it
    # is all that loads.
    groups = ({g: vs for g, vs in groups.items() if len(vs) >= (2 if g == "architecture" else 1)}
              or {g: vs for g, vs in groups.items() if vs})
    names = list(groups)
    url_choice("cmp_live_set", names, names[0])
    group = st.radio("Variants", names, key="cmp_live_set", horizontal=True,
                     format_func=lambda g: f"{g} ({len(groups[g])})") if len(names) > 1 else names[0]
    last = prompt.labels[-1]
    dists, rows_attn = {}, {}
    n_keys = min(len(prompt.ids), GRID_MAX_TOKENS)
    for v in groups[group]:
        tr = trace_prompt(v, prompt.ids)
        idx, p = top_k(softmax(tr.logits[-1].astype(np.float64)), TOP_K)
        dists[v] = ([token_label(int(i)) for i in idx], p.tolist())
        L = variant_config(v).n_layers
        rows_attn[v] = np.concatenate([tr[f"blocks.{l}.attn.hook_pattern"][:, -1, -n_keys:] for l in range(L)])
    st.plotly_chart(cached_figure(next_token_bars, dists), key="cmp_next", config=PLOT_CONFIG)
    st.caption(f"The {TOP_K} most likely next tokens after “{last}” for each variant (␣ = space, ↵ = newline).")
    st.plotly_chart(cached_figure(last_token_attention, rows_attn, list(prompt.labels),
                                  variant_config(groups[group][0]).n_layers),
                    key="cmp_last_attn", config=PLOT_CONFIG)
    st.caption(last_token_caption(rows_attn, len(prompt.ids), n_keys))

# ---- Downloads ---------------------------------------------------------------------------------------
if res is not None:
    c1, c2, c3 = st.columns(3)
    with c1:
        download_json(res, "evaluation.json", "Download the evaluation (JSON)")
    with c2:
        download_csv(summary_rows(COMPARED_VARIANTS), "compare_summary.csv", "Download the summary table (CSV)")
    with c3:
        pos_rows = [{"position": p + 1, **{n: (R[n]["loss_by_position"]["mean"][p]
                                              if p < len(R[n]["loss_by_position"]["mean"]) else None) for n in R}}
                    for p in range(max(len(r["loss_by_position"]["mean"]) for r in R.values()))] if R else []
        download_csv(pos_rows, "loss_by_position.csv", "Download loss by position (CSV)")
