"""Quantization: our model at int8 and int4 — the grid each weight is rounded to, what a large weight does to a
per-tensor / per-channel / per-group scale, the error per layer, the held-out loss, perplexity and generated
text side by side, memory by format, and the measured CPU speed of PyTorch's int8 kernels.

Thin: quantized copies from `model/quantize/apply.py` (the shared model is never touched), views from
`model/quantize/inspect.py`, bytes from `model/accounting/counts.py` (the calculator's own numbers), the
full-split losses and the committed speed from results/quantization.json (`python -m model.quantize --out …`),
figures from `viz/quantization.py`.
"""

import json
from pathlib import Path

import numpy as np
import streamlit as st

from app_shared import (
    FOLDER_MAX_TOKENS, cached_figure, current_model, current_prompt, download_json, is_folder, load_model,
    model_config, model_name, plain_md, prompt_notices, require_model, require_shell, shared_result, sync_url,
    tokenizer_for, url_choice, url_int, url_tabs,
)
from model.accounting import counts as acc
from model.accounting.arch import arch_from_model_config
from model.net.checkpoints import variant_config
from model.quantize.apply import layer_matrices
from model.quantize.cli import RESULTS_PATH
from model.quantize.formats import FORMATS, GROUP_SIZES, int4
from viz.quantization import (drift_figure, histogram_with_grid, kept_text, layer_error_caption, layer_error_figure,
                              loss_vs_size_figure, memory_figure, next_token_figure, outlier_note, scope_error_figure,
                              speed_caption, speed_figure, speed_reading)

require_shell()  # first, before any widget: see app_shared.require_shell

SCOPE_NAMES = ["per tensor", "per channel", "per group"]
QUICK_WINDOWS = 4  # held-out windows for the live check: 1,024 tokens, about a second per format on one core
FOLDER_WINDOWS = 1  # a folder's model: one window of FOLDER_MAX_TOKENS (a 135 M model is ~70× ours per token)
NEW_TOKENS = 48
INT8 = "int8 (per-channel)"
TABS = ["Memory", "One matrix", "Error by layer", "Loss and text", "Speed"]


# --------------------------------------------------------------------------------------------------------
# Cached data
# --------------------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Quantizing the model…", max_entries=16)
def quantized(variant: str, fmt_name: str):
    """(model, report): a quantized copy, shared and read-only like the fp32 model it was copied from."""
    from model.quantize.apply import quantized_copy

    return quantized_copy(load_model(variant), FORMATS[fmt_name])


@st.cache_data(show_spinner=False)
def committed_results(path: str, mtime: float) -> dict | None:
    p = Path(path)
    return json.loads(p.read_text()) if p.is_file() else None


@st.cache_data(show_spinner=False, max_entries=64)
def matrix_weights(variant: str, name: str) -> np.ndarray:
    return load_model(variant).get_submodule(name).weight.detach().numpy().copy()


@shared_result()
def scope_view(variant: str, name: str, bits: int, scope: str, group: int, row: int, outlier: float):
    from model.quantize.inspect import scope_view as view, with_outlier

    w = matrix_weights(variant, name)
    col = int(np.abs(w).max(axis=0).argmax())  # the input column that already holds the largest weight
    if outlier != 1.0:
        w = with_outlier(w, col, outlier)
    return view(w, bits, scope, group, row), col


@st.cache_data(show_spinner="Quantizing every matrix…", max_entries=8)
def weight_errors(variant: str) -> dict[str, list[float]]:
    from model.quantize.apply import weight_errors as errors

    return errors(load_model(variant), list(FORMATS.values()))


@shared_result("Tracing each quantized model…")
def drift(variant: str, ids: tuple[int, ...]):
    from model.quantize.inspect import residual_drift

    return residual_drift(load_model(variant), {n: quantized(variant, n)[0] for n in FORMATS}, list(ids))


def quick_windows(variant: str) -> np.ndarray:
    """The live check's held-out windows (n, T + 1): ours, the first QUICK_WINDOWS of the held-out plays in our
    tokens at the full context; a folder's model, the plays' opening in its own tokenizer, FOLDER_WINDOWS of
    FOLDER_MAX_TOKENS (or its context, if shorter)."""
    from model.text.batches import encoded_split, val_windows

    if not is_folder(variant):
        ids, _ = encoded_split("val")
        return val_windows(ids, model_config(variant).max_seq_len)[:QUICK_WINDOWS]
    from model.text.corpus import load_corpus

    T = min(model_config(variant).max_seq_len, FOLDER_MAX_TOKENS)
    ids = np.array(tokenizer_for(variant).encode(load_corpus("val")[: 8 * T * FOLDER_WINDOWS + 64]), dtype=np.int64)
    return val_windows(ids, T)[:FOLDER_WINDOWS]


@st.cache_data(show_spinner="Scoring held-out windows…", max_entries=8)
def quick_losses(variant: str) -> dict:
    """Mean loss on the live check's held-out windows (`quick_windows`), per model (fp32, each format, the Q8_0
    cache)."""
    import torch

    from model.quantize.measure import window_losses

    torch.set_num_threads(1)
    model = load_model(variant)
    w = quick_windows(variant)
    out = {"fp32": float(window_losses(model, w).mean())}
    out.update({n: float(window_losses(quantized(variant, n)[0], w).mean()) for n in FORMATS})
    out["fp32 + Q8_0 KV cache"] = float(window_losses(model, w, kv_int8=True).mean())
    return out


@st.cache_data(show_spinner=False, max_entries=64)
def next_tokens(variant: str, ids: tuple[int, ...], names: tuple[str, ...]) -> dict:
    from model.quantize.inspect import next_token

    out = {}
    for n in names:
        m = load_model(variant) if n == "fp32" else quantized(variant, n)[0]
        top, p = next_token(m, list(ids))
        out[n] = ([token_label(t) for t in top], p)
    return out


@st.cache_data(show_spinner="Generating…", max_entries=64)
def generations(variant: str, ids: tuple[int, ...], names: tuple[str, ...], seed: int) -> dict[str, list[int]]:
    from model.decoding.generate import generate
    from model.decoding.sampling import SamplerConfig

    out = {}
    for n in names:
        m = load_model(variant) if n == "fp32" else quantized(variant, n)[0]
        out[n] = generate(m, list(ids), NEW_TOKENS, SamplerConfig(temperature=0.8), seed=seed).generated_ids
    return out


def measure_speed_now(variant: str) -> dict:
    from model.quantize.measure import measure_speed

    return measure_speed(load_model(variant), repeats=5)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def speed_series(speed: dict) -> tuple[list[str], dict]:
    cases = list(speed["cases"])
    series = {}
    for key, label in (("fp32", "fp32"), ("int8", "torch int8")):
        series[label] = {k: [speed["cases"][c][key][f"{k}_ms"] for c in cases] for k in ("median", "min", "max")}
    return cases, series


# --------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------

variant = current_model()
cfg = model_config(variant)
folder = is_folder(variant)
token_label = tokenizer_for(variant).token_label
arch = arch_from_model_config(cfg, name=model_name(variant))
prompt = current_prompt()
n_quantized = sum(o * i * copies for _, o, i, copies in acc.weight_matrices(arch))  # an MoE: each expert's own
per_block = sum(copies for *_, copies in acc.weight_matrices(arch)) // cfg.n_layers  # every layer alike here
share = n_quantized / acc.count_params(arch).total
kept = kept_text(list(acc.kept_tensors(arch)), cfg.tie_embeddings)  # what every format leaves at fp16

st.title("Quantization: the model at int8 and int4")
if folder:
    st.caption(f":material/info: **{plain_md(model_name(variant))}** is quantized here as ours is, one tab at a time "
               "(each quantized copy of a model this size is computed when its tab first opens, then kept). The "
               "committed numbers and speeds are for our default model.")
st.markdown(
    "A quantized matrix stores each weight as a small integer **code** and, for each block of weights, one "
    "**scale**: the weight comes back as code × scale, the nearest point of an evenly spaced grid. Here the "
    f"{per_block} matrices of every block"
    + (f" — attention's 4 and each of the {arch.n_experts} experts' 3 —" if arch.n_experts else "")
    + f" are quantized ({share:.0%} of the parameters); the {kept} stay at fp16"
    + (" (quantizers keep a router in high precision: llama.cpp, GPTQ and AWQ all do)" if arch.n_experts else "")
    + ". The quantized copy is the same model class with the "
    "rounded weights, so every hook point below is the real thing; its arithmetic stays fp32 (PyTorch's "
    "own int8 kernels are timed in the last tab)."
)
require_model(variant)
# The block's matrices as the loaded model has them (SwiGLU's gate/up/down, the GELU MLP's in/out, each expert's
# three): read off its modules, as the quantized copy quantizes them.
MATRICES = layer_matrices(load_model(variant))


def short_matrix(m: str) -> str:
    """"attn.W_q" -> "W_q", "mlp.experts.2.W_up" -> "e2.W_up": a bar's label in the error-by-layer chart."""
    return m.split(".", 1)[1].replace("experts.", "e")


results = committed_results(str(RESULTS_PATH), RESULTS_PATH.stat().st_mtime if RESULTS_PATH.is_file() else 0.0)
tab_mem, tab_matrix, tab_layers, tab_loss, tab_speed = url_tabs(TABS, "q_tab")

# --- memory -----------------------------------------------------------------------------------------------
with tab_mem:
    names = ["fp32", "fp16", *FORMATS]
    mem = {n: acc.weight_memory(arch, n) for n in names}
    bpw = {n: None for n in ("fp32", "fp16")}
    bpw.update({n: 8 * (mem[n]["codes"] + mem[n]["scales"]) / n_quantized for n in FORMATS})
    st.plotly_chart(cached_figure(memory_figure, names, [mem[n]["codes"] for n in names],
                                  [mem[n]["scales"] for n in names], [mem[n]["kept"] for n in names],
                                  [bpw[n] for n in names], ", ".join(acc.kept_tensors(arch))),
                    width="stretch", key="q_memory")
    q4 = "Q4_0 (G=32)"
    st.caption(
        f"What is counted: every code (4-bit codes two to a byte) and every fp16 scale of the quantized "
        f"matrices, plus the tensors kept at fp16. Q4_0's scales add {mem[q4]['scales'] / mem[q4]['codes']:.1%} "
        f"to its 4-bit codes ({bpw[q4]:.2f} bits per weight); the whole model shrinks from "
        f"{mem['fp16']['total'] / 1e6:.2f} MB at fp16 to {mem[q4]['total'] / 1e6:.2f} MB "
        f"({mem[q4]['total'] / mem['fp16']['total']:.0%} of it, where 4-bit codes alone would be "
        f"{FORMATS[q4].bits / 16:.0%}), because the "
        f"{kept} at fp16 ({mem[q4]['kept'] / 1e6:.2f} MB) are {mem[q4]['kept'] / mem[q4]['total']:.0%} of what is "
        "left. No format here stores a zero point (all are symmetric: weight = code × scale). The same numbers are "
        "the accounting page's."
    )
    rows = [{"format": n, "bytes": f"{mem[n]['total']:,}", "scales (B)": f"{mem[n]['scales']:,}",
             "bits per quantized weight": f"{bpw[n]:.3f}" if bpw[n] else "",
             "bits per parameter, all": f"{acc.bits_per_param(arch, n):.3f}"} for n in names]
    st.dataframe(rows, hide_index=True, width="stretch")
    with st.expander("The real formats these follow", icon=":material/info:"):
        st.markdown("\n".join(f"- **{n}**: {f.mirrors}." for n, f in FORMATS.items()))
    kv32, kv8 = acc.kv_cache_bytes_per_token(arch, "fp32"), acc.kv_cache_bytes_per_token(arch, "Q8_0")
    st.caption(f"KV cache per token: {kv32:,} B at fp32, {kv8:,} B at Q8_0 (blocks of 32 along head_dim with "
               f"an fp16 scale, llama.cpp's `--cache-type-k q8_0`): {kv32 / kv8:.2f}× smaller.")

# --- one matrix -------------------------------------------------------------------------------------------
with tab_matrix:
    if tab_matrix.open or not folder:
        c1, c2, c3, c4, c5 = st.columns([1, 1.2, 0.8, 1.6, 1])
        with c1:
            url_int("q_layer", 0, 0, cfg.n_layers - 1)
            layer = st.selectbox("Layer", list(range(cfg.n_layers)), key="q_layer", format_func=lambda l: f"layer {l}")
        with c2:
            url_choice("q_matrix", MATRICES, "mlp.W_down" if "mlp.W_down" in MATRICES else MATRICES[-1])
            matrix = st.selectbox("Matrix", MATRICES, key="q_matrix")
        with c3:
            url_choice("q_bits", [8, 4], 4)
            bits = st.radio("Bits", [8, 4], key="q_bits", horizontal=True)
        with c4:
            url_choice("q_scope", SCOPE_NAMES, "per channel")
            scope = st.radio("One scale", SCOPE_NAMES, key="q_scope", horizontal=True)
        with c5:
            url_choice("q_group", list(GROUP_SIZES), 32)
            group = st.selectbox("Group size G", list(GROUP_SIZES), key="q_group",
                                 help="weights per scale along a row, for 'per group'")
        name = f"blocks.{layer}.{matrix}"
        w = matrix_weights(variant, name)
        n_out, n_in = w.shape
        c1, c2 = st.columns([1, 2])
        with c1:
            url_int("q_row", int(np.abs(w).max(axis=1).argmax()), 0, n_out - 1)
            row = st.number_input(f"Row (output channel, 0–{n_out - 1})", 0, n_out - 1, key="q_row",
                                  help="opens on the row holding the matrix's largest weight")
        with c2:
            url_choice("q_outlier", [1, 4, 8, 16], 1)
            outlier = st.select_slider("Make one input channel an outlier: × its weights by", [1, 4, 8, 16],
                                       key="q_outlier", help="as the outlier features of large models; ×1 = as trained")
        sync_url("q_layer", "q_matrix", "q_bits", "q_scope", "q_group", "q_row", "q_outlier")
        v, col = scope_view(variant, name, int(bits), scope, int(group), int(row), float(outlier))
        where = {"per tensor": f"all {w.size:,} weights of {name}", "per channel": f"row {row} of {name}",
                 "per group": f"the group of {group} in row {row} holding its largest |w|"}[scope]
        st.plotly_chart(histogram_with_grid(v.values, v.grid, f"{where}: int{bits} grid, {scope}",
                                            marked=float(v.values[np.abs(v.values).argmax()])),
                        width="stretch", key="q_hist")
        zero = float(np.mean(v.back == 0))
        used = len(np.unique(np.round(v.back / v.step))) if v.step else 1
        err = float(np.linalg.norm(v.back - v.values) / np.linalg.norm(v.values))
        st.caption(
            f"{v.values.size:,} weights share one scale here: grid step {v.step:.4g}, largest |w| "
            f"{np.abs(v.values).max():.4f}. {zero:.1%} of them come back as exactly 0; they use {used} of the "
            f"grid's {len(v.grid)} values; relative error ‖w − Q(w)‖/‖w‖ = {err:.2%}."
            + (" Q4_0's rule puts the largest-magnitude weight exactly on code −8, so a weight of the opposite sign "
               "and the same size would be clipped to 7 steps." if bits == 4 else "")
        )
        t = v.total_errors
        st.plotly_chart(scope_error_figure(v.row_max, float(v.row_max.max()), v.row_errors,
                                           f"{name} at int{bits}: error of each row by where the scale lives"),
                        width="stretch", key="q_scopes")
        if outlier != 1:
            t0 = scope_view(variant, name, int(bits), scope, int(group), int(row), 1.0)[0].total_errors
            note = outlier_note(col, outlier, float(np.mean(v.row_argmax == col)), {k: t0[k] for k in SCOPE_NAMES},
                                {k: t[k] for k in SCOPE_NAMES}, int(group))
        else:
            note = (f" Try an outlier: input column {col}, the one holding this matrix's largest weight, "
                    "scaled up — as the outlier features of large models are.")
        st.caption(
            f"Whole-matrix relative error at int{bits}: per tensor {t['per tensor']:.2%}, per channel "
            f"{t['per channel']:.2%}, per group of {group} {t['per group']:.2%}. A scale is set by the largest |w| "
            f"it covers: the matrix's is {v.row_max.max():.3f}, the median row's {np.median(v.row_max):.3f} — one "
            f"scale for the whole matrix gives the median row a {v.row_max.max() / np.median(v.row_max):.1f}× "
            "coarser grid than its own would." + note
        )

# --- error by layer ---------------------------------------------------------------------------------------
with tab_layers:
    if tab_layers.open or not folder:
        errs = weight_errors(variant)
        labels = [f"L{l} {short_matrix(m)}" for l in range(cfg.n_layers) for m in MATRICES]
        st.plotly_chart(cached_figure(layer_error_figure, labels, errs), width="stretch", key="q_layers")
        mean = {n: float(np.mean(e)) for n, e in errs.items()}
        st.caption(layer_error_caption(mean, INT8, "Q4_0 (G=32)"))
        st.subheader("Where the error reaches the residual stream", anchor=False)
        if prompt_notices(prompt):
            stages, d = drift(variant, prompt.ids)
            st.plotly_chart(cached_figure(drift_figure, stages, d), width="stretch", key="q_drift")
            st.caption(
                "For your prompt, the quantized model's residual stream after each block against fp32's, read from "
                "the same hook points (`blocks.i.hook_resid_post`"
                + (", `ln_final.hook_normalized`" if cfg.norm_position == "pre" else
                   "; this post-norm model has no final norm") + ") and the logits. "
                f"At the logits: {INT8} {d[INT8][-1]:.2%}, Q4_0 (G=32) {d['Q4_0 (G=32)'][-1]:.2%}. The embedding "
                "is kept at fp16, so the stream enters block 0 unchanged."
            )

# --- loss and text ----------------------------------------------------------------------------------------
with tab_loss:
    if tab_loss.open or not folder:
        st.subheader("Held-out loss", anchor=False)
        if results is None:
            st.info("No results/quantization.json in this checkout: run `python -m model.quantize --out "
                    "results/quantization.json`. The live check below still runs.", icon=":material/info:")
        else:
            rv, h = results["variant"], results["heldout"]
            f32 = results["fp32"]
            # (label, MB or None, bits per quantized weight or None, held-out entry); numbers as text in the table,
            # so a row without a size shows a blank rather than "None"
            entries = [("fp32", f32["bytes"]["fp16"] / 1e6, 16.0, {**f32["heldout"], "delta_nats": 0.0})]
            entries += [(n, e["bytes"]["total"] / 1e6, e["bits_per_weight"], e["heldout"])
                        for n, e in results["formats"].items()]
            entries += [(label, None, None, results[key]["heldout"])
                        for key, label in (("kv_int8", "fp32 + Q8_0 KV cache"),
                                           ("torch_dynamic_int8", "torch dynamic int8"))
                        if results.get(key, {}).get("heldout")]
            st.dataframe(
                [{"model": n + (" (fp16 weights, as shipped)" if n == "fp32" else ""),
                  "MB": f"{mb:.3f}" if mb is not None else "", "bits/weight": f"{b:.3f}" if b is not None else "",
                  "nats/token": f"{e['nats_per_token']:.4f}", "Δ vs fp32": f"{e['delta_nats']:+.4f}",
                  "± SE": f"{e['delta_se']:.5f}" if e.get("delta_se") is not None else "",
                  "perplexity": f"{e['perplexity']:.2f}", "bits/char": f"{e['bits_per_char']:.4f}"}
                 for n, mb, b, e in entries],
                hide_index=True, width="stretch")
            sized = [x for x in entries if x[1] is not None]
            st.plotly_chart(cached_figure(loss_vs_size_figure, [n for n, *_ in sized], [mb for _, mb, _, _ in sized],
                                          [e["delta_nats"] for *_, e in sized], [e.get("delta_se") for *_, e in sized]),
                            width="stretch", key="q_loss_size")
            worst = max(results["formats"].items(), key=lambda kv: kv[1]["heldout"]["delta_nats"])
            st.caption(
                f"**{rv}**, {'every' if h['all_windows'] else 'the first'} {h['windows']} held-out windows of "
                f"{variant_config(rv).max_seq_len} tokens ({h['tokens']:,} tokens), from results/quantization.json ({results['date'][:10]}). Δ is the "
                "mean over the same windows of the quantized model's loss minus fp32's; ± one standard error of that "
                f"paired mean. The largest cost is {worst[0]}'s {worst[1]['heldout']['delta_nats']:+.4f} nats/token "
                f"(perplexity {f32['heldout']['perplexity']:.2f} → {worst[1]['heldout']['perplexity']:.2f}). "
                "torch dynamic int8 also rounds each Linear's input to int8 (one scale per call)."
                + ("" if rv == variant else f" The sidebar's {'model' if folder else 'variant'} is "
                   f"{plain_md(model_name(variant))}: its live check is below.")
            )
            download_json(results, "quantization.json", "Download the results (JSON)")

        n_win = FOLDER_WINDOWS if folder else QUICK_WINDOWS
        st.subheader(f"Live check: {model_name(variant)}, first {n_win} held-out window{'s' if n_win > 1 else ''}",
                     anchor=False)
        ql = quick_losses(variant)
        st.dataframe([{"model": n, "nats/token": f"{x:.4f}", "Δ vs fp32": f"{x - ql['fp32']:+.4f}",
                       "perplexity": f"{np.exp(x):.2f}"} for n, x in ql.items()], hide_index=True, width="stretch")
        st.caption(f"{quick_windows(variant)[:, 1:].size:,} tokens"
                   + (" of the held-out plays in this model's own tokenizer" if folder else "")
                   + ", computed now on this machine, without standard errors: a small sample, so read the differences "
                   "from the full split above.")

        st.subheader("Next token and generated text", anchor=False)
        if prompt_notices(prompt):
            c1, c2 = st.columns([1, 2])
            with c1:
                url_choice("q_gen_group", list(GROUP_SIZES), 32)
                g4 = st.selectbox("int4 group size", list(GROUP_SIZES), key="q_gen_group")
            with c2:
                url_int("q_seed", 0, 0, 10_000)
                seed = st.number_input("Seed (the same for all three: same random draws)", 0, 10_000, key="q_seed")
            sync_url("q_gen_group", "q_seed")
            trio = ("fp32", INT8, int4(int(g4)).name)
            room = cfg.max_seq_len - NEW_TOKENS
            ids = prompt.ids[-room:]
            st.plotly_chart(next_token_figure(next_tokens(variant, ids, trio)), width="stretch", key="q_next")
            gens = generations(variant, ids, trio, int(seed))
            decode = tokenizer_for(variant).decode
            cols = st.columns(3)
            for c, n in zip(cols, trio):
                with c:
                    st.markdown(f"**{n}**")
                    st.code(decode(gens[n]), language=None, wrap_lines=True)
            same = {n: common_prefix(gens["fp32"], gens[n]) for n in trio[1:]}
            st.caption(
                f"{NEW_TOKENS} tokens at temperature 0.8 after "
                + (f"the prompt's {len(ids)} tokens" if len(ids) == len(prompt.ids)
                   else f"the prompt's last {len(ids)} tokens")
                + f", seed {seed}: the same random draws for all three. "
                + "; ".join(f"{n} writes the same tokens as fp32 for the first {k} of {NEW_TOKENS}"
                            for n, k in same.items())
                + ". After the first different token the texts part ways as two samples do; that alone says nothing "
                "about quality — the held-out loss above does."
            )

# --- speed ------------------------------------------------------------------------------------------------
with tab_speed:
    st.markdown(
        "The quantized copies above compute in fp32. PyTorch's own int8 path is "
        "`torch.ao.quantization.quantize_dynamic`: every `nn.Linear` gets int8 weights (one scale per output "
        "channel) and quantizes its input to int8 on each call, then runs an int8 matrix multiply (fbgemm / "
        "oneDNN on x86). The unembedding (a plain matmul"
        + (" with the tied embedding" if cfg.tie_embeddings else "")
        + ") and attention's own products stay fp32. Timed on one thread, fp32 and int8 taking turns."
    )
    if results is not None and results.get("speed", {}).get("cases"):
        cases, series = speed_series(results["speed"])
        st.plotly_chart(cached_figure(speed_figure, cases, series), width="stretch", key="q_speed")
        st.caption(f"Committed ({results['variant']}, {results['date'][:10]}, {results['cpu']}): "
                   + speed_caption(results["speed"]))
    if st.button("Measure on this machine now", icon=":material/timer:", key="q_measure",
                 help="about 10 seconds on one thread"):
        with st.spinner("Timing fp32 and int8…"):
            st.session_state["q_speed_result"] = (model_name(variant), measure_speed_now(variant))
    mine = st.session_state.get("q_speed_result")
    if mine is not None:
        mv, sp = mine
        if sp.get("cases"):
            cases, series = speed_series(sp)
            st.plotly_chart(speed_figure(cases, series), width="stretch", key="q_speed_now")
            st.caption(f"Measured just now ({mv}): " + speed_caption(sp))
        else:
            st.warning(sp.get("unavailable", "no measurement"), icon=":material/warning:")
    timed = (mine if mine is not None and mine[1].get("cases") else
             (results["variant"], results.get("speed")) if results is not None else (variant, None))
    if timed[1] and timed[1].get("cases"):
        timed_arch = arch if timed[0] == model_name(variant) else arch_from_model_config(variant_config(timed[0]))
        biggest = max(((o, i) for _, o, i in acc.block_matrices(timed_arch)), key=lambda oi: oi[0] * oi[1])
        st.caption(speed_reading(timed[1], biggest))
