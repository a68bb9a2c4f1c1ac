"""Parameters, FLOPs, memory: exact counts for our model, a preset, or any pasted/uploaded config.json.

Thin: widgets → `model/accounting/counts.py` (pure arithmetic) → `viz/accounting.py` (figures). The one thing run on
torch is the live check: `sum(p.numel())` and FlopCounterMode on a real forward of a module built from the
variant's config. Counts depend on shapes only, so no checkpoint is read: this page loads no weights — except a
folder's model (the sidebar's "A folder"), whose live check runs the loaded model itself, on fewer tokens.
"""

import json

import streamlit as st

from app_shared import (current_model, is_folder, model_config, model_name, plain_md, require_shell, shape_model,
                        shared_result, sync_url, url_choice, url_float, url_int, url_tabs, url_text)
from model.accounting import counts as acc
from model.accounting.arch import arch_from_model_config, attention_variants
from model.accounting.hf_configs import ALL_PRESETS, FAMILIES, PRESETS, arch_from_json_text, preset_arch
from viz.accounting import (active_params_bars, crossover_caption, flops_vs_seq_len, kv_cache_vs_context, param_bars,
                            ridge_caption, training_fit_caption, training_memory_bars, weights_caption)

require_shell()  # first, before any widget: see app_shared.require_shell

MAX_UPLOAD_BYTES = 1_000_000  # a config.json is a few kB
FOLDER_LIVE = (1, 64)  # (batch, tokens) at most for a folder's model: a forward of a 100 M+ model is seconds
# A pasted config travels in the link as text. Percent-encoded, 8,000 characters of JSON are up to ~24 kB of URL:
# well inside what browsers and the server's request line take, and far more than a config.json needs.
MAX_URL_CONFIG_CHARS = 8_000
PASTE_DEFAULT = json.dumps(PRESETS["Mistral-7B-v0.1"], indent=1)
TABS = ["Parameters", "FLOPs", "Memory", "Training", "GPU: compute or memory bound?", "Check against the live model"]


def size_text(x: float) -> str:
    """Enough digits to show a 2 M-parameter model's cache as well as a 405 B model's weights."""
    return f"{x:,.2f}" if x >= 1 else f"{x:.3g}"


@shared_result("Running the live model…")
def live_numbers(variant: str, batch: int, seq_len: int) -> dict:
    return acc.measure_model(shape_model(variant), batch, seq_len)


st.title("Parameters, FLOPs and memory")
st.markdown(
    "Exact counts for a decoder-only transformer, term by term, each with its formula. FLOPs are matmul FLOPs "
    "in PyTorch's `FlopCounterMode` convention (2·m·n·k per matmul); memory is shown in bytes and in GiB "
    f"(2³⁰ bytes — a GB, 10⁹ bytes, is {1 - 1e9 / 2**30:.0%} smaller)."
)

# --- which model --------------------------------------------------------------------------------------------
SOURCES = ["Our model", "Preset", "Paste a config.json", "Upload a config.json"]
variant = current_model()
folder = is_folder(variant)
url_choice("acc_source", SOURCES, "Our model")
source = st.radio("Model", SOURCES, key="acc_source", horizontal=True,
                  format_func=lambda x: "The sidebar's model" if x == "Our model" and folder else x)
sync_url("acc_source")
try:
    if source == "Our model":
        arch = arch_from_model_config(model_config(variant), name=model_name(variant))
        st.caption(f"**{plain_md(model_name(variant))}**, the folder's model chosen in the sidebar (its config.json)."
                   if folder else f"The **{variant}** variant chosen in the sidebar.")
    elif source == "Preset":
        url_choice("acc_preset", list(ALL_PRESETS), "Llama-2-7B")
        name = st.selectbox("Preset", list(ALL_PRESETS), key="acc_preset",
                            help=f"mixtures of experts: {', '.join(ALL_PRESETS.keys() - PRESETS.keys())}")
        sync_url("acc_preset")
        arch = preset_arch(name)
    elif source == "Paste a config.json":
        url_text("acc_paste", PASTE_DEFAULT, MAX_URL_CONFIG_CHARS)
        text = st.text_area(
            f"A Hugging Face config.json ({', '.join(FAMILIES)}) or one of ours", key="acc_paste", height=220,
            max_chars=MAX_UPLOAD_BYTES,
        )
        # The link carries what was pasted, unless it is the example (the URL stays short) or too long to carry.
        if text == PASTE_DEFAULT:
            st.query_params.pop("acc_paste", None)
        elif len(text) > MAX_URL_CONFIG_CHARS:
            st.query_params.pop("acc_paste", None)  # an older, shorter paste there would open the wrong config
            st.warning(f"This config is {len(text):,} characters: too long to carry in the page's link (at most "
                       f"{MAX_URL_CONFIG_CHARS:,}), so a link copied now opens with the example config instead. "
                       "Remove what the count does not need (e.g. the tokenizer's fields) to share it.",
                       icon=":material/link_off:")
        else:
            sync_url("acc_paste")
        arch = arch_from_json_text(text, name="your config")
    else:
        up = st.file_uploader("config.json", type=["json"], key="acc_upload")
        if up is None:
            st.info("Upload a config.json to count it.", icon=":material/upload_file:")
            st.stop()
        if up.size > MAX_UPLOAD_BYTES:
            raise ValueError(f"the file is {up.size:,} bytes; a config.json is a few kB (limit {MAX_UPLOAD_BYTES:,})")
        try:
            raw = up.getvalue().decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the file is not UTF-8 text") from None
        arch = arch_from_json_text(raw, name="your config")
except ValueError as e:
    st.error("This config cannot be used: " + plain_md(str(e)), icon=":material/error:")
    st.stop()

st.caption(
    f"V = {arch.vocab_size:,} · d = {arch.d_model:,} · L = {arch.n_layers} · nh = {arch.n_heads} · "
    f"nkv = {arch.n_kv_heads} ({arch.attention_kind}) · hd = {arch.head_dim} · m = {arch.d_mlp:,} "
    f"({arch.mlp} MLP) · {arch.norm} · {arch.positions} positions · "
    f"{'tied' if arch.tie_embeddings else 'untied'} head"
    + (f" · window w = {arch.sliding_window:,} on {arch.n_window_layers} layers" if arch.n_window_layers else "")
    + (" · q/k norms" if arch.qk_norm else "")
    + (f" · **mixture of experts**: E = {arch.n_experts} experts of width me = {arch.d_expert:,}, k = "
       f"{arch.experts_per_token} per token" + (f", a shared expert of width ms = {arch.d_shared:,}" if arch.d_shared else "")
       + (f", on {arch.n_moe_layers} of {arch.n_layers} layers" if arch.n_dense_layers else "")
       if arch.n_experts else "")
)

c1, c2, c3, c4 = st.columns(4)
# s opens at the model's context, and follows it when another model is chosen (as an unkeyed input did); a link's
# s is read before any such change, so it is kept.
s_default = min(arch.max_seq_len, 2**20)
if st.session_state.get("acc_seq_for", (arch.name, arch.max_seq_len)) != (arch.name, arch.max_seq_len):
    st.session_state.acc_seq = s_default
st.session_state.acc_seq_for = (arch.name, arch.max_seq_len)
url_int("acc_seq", s_default, 1, 2**20)
url_int("acc_batch", 1, 1, 4096)
url_choice("acc_wdtype", list(acc.WEIGHT_FORMATS), list(acc.WEIGHT_FORMATS)[1])
url_choice("acc_kvdtype", list(acc.KV_FORMATS), list(acc.KV_FORMATS)[1])
seq_len = c1.number_input("Sequence length s", 1, 2**20, key="acc_seq",
                          help="tokens in the prefill; also the context of the decode step")
batch = c2.number_input("Batch b", 1, 4096, key="acc_batch")
w_dtype = c3.selectbox("Weights dtype", list(acc.WEIGHT_FORMATS), key="acc_wdtype",
                       help="quantized formats are counted with their scales; see the Memory tab")
kv_dtype = c4.selectbox("KV cache dtype", list(acc.KV_FORMATS), key="acc_kvdtype",
                        help="Q8_0 / Q4_0: llama.cpp's quantized cache, blocks of 32 along head_dim with an fp16 scale")
sync_url("acc_seq", "acc_batch", "acc_wdtype", "acc_kvdtype")
seq_len, batch = int(seq_len), int(batch)

params = acc.count_params(arch)
tab_p, tab_f, tab_m, tab_t, tab_g, tab_live = url_tabs(TABS, "acc_tab")

# --- parameters -------------------------------------------------------------------------------------------
with tab_p:
    if arch.n_experts:
        active = acc.active_params(arch)
        p1, p2 = st.columns(2)
        p1.metric("Parameters", f"{params.total:,}", help="every tensor: what memory holds")
        p2.metric("Active per token", f"{active.total:,}", f"{active.total / params.total:.1%} of them",
                  delta_color="off", delta_arrow="off",
                  help="the router, the k experts a token is routed to, the shared expert, and everything else")
        groups_t, groups_a = params.by_group(), active.by_group()
        st.plotly_chart(active_params_bars(list(groups_t), list(groups_t.values()),
                                           [groups_a[g] for g in groups_t]), width="stretch")
        st.caption(f"A token's forward uses {arch.experts_per_token} of the {arch.n_experts} experts in each MoE "
                   "layer, so its FLOPs follow the active count, while memory (weights, gradients, optimizer "
                   "states, and the weights a decode step may read) follows the total. Active = total − "
                   f"Lm·(E − k)·(one expert) = {params.total:,} − {arch.n_moe_layers}·{arch.n_experts - arch.experts_per_token}"
                   f"·{(params.total - active.total) // max(1, arch.n_moe_layers * (arch.n_experts - arch.experts_per_token)):,}.")
    else:
        st.metric("Parameters", f"{params.total:,}")
    # height="content" on every table here: no inner scroll hiding the last row
    st.dataframe(params.rows(), hide_index=True, width="stretch", height="content")
    options = [p for p in ALL_PRESETS if p != arch.name]
    # The link lists the compared presets comma-separated (no preset name has a comma) under acc_with.
    first = "acc_with" not in st.session_state
    url_text("acc_with", "", 2_000)
    if first:
        asked = [p for p in st.session_state.acc_with.split(",") if p]
        unknown = [p for p in asked if p not in options]
        if unknown:
            st.warning(f"The link's acc\\_with names {plain_md(', '.join(unknown), 120)}, which cannot be compared "
                       "here; the others are shown.", icon=":material/link_off:")
        st.session_state.acc_compare = [p for p in asked if p in options]
    elif "acc_compare" in st.session_state:  # the model changed to one of them: it cannot be compared with itself
        st.session_state.acc_compare = [p for p in st.session_state.acc_compare if p in options]
    url_choice("acc_percent", [False, True], False)
    others = st.multiselect("Compare with", options, key="acc_compare")
    percent = st.toggle("Show shares (%)", key="acc_percent", help="compare models of very different sizes")
    st.session_state.acc_with = ",".join(others)
    sync_url("acc_with", "acc_percent")
    archs = [arch] + [preset_arch(p) for p in others]
    groups = ["embedding", "attention", "mlp", "norms", "head"]
    per_model = [acc.count_params(a).by_group() for a in archs]
    st.plotly_chart(param_bars([a.name for a in archs], groups, [[g.get(k, 0) for g in per_model] for k in groups],
                               percent=percent), width="stretch")
    st.subheader("Beside the closed-form counts", anchor=False)
    gpt2 = acc.gpt2_param_formula(arch)
    st.markdown("GPT-2's architecture (Radford et al. 2019) counted in closed form — per layer attention "
                "4d² + 4d, MLP 8d² + 5d, two LayerNorms 4d, and a tied embedding:")
    st.latex(r"N_\text{GPT-2} = Vd + L\,(12d^2 + 13d)")
    st.markdown(
        f"gives **{gpt2:,}** ({gpt2 - params.total:+,} from the exact count). It assumes MHA, a two-matrix MLP "
        "of width 4d, LayerNorm and biases everywhere and a tied head, and leaves out the position table and "
        "the final norm."
    )
    n_exact, n_kaplan, n_12 = acc.non_embedding_params(arch), acc.kaplan_params(arch), acc.twelve_d2_params(arch)
    st.markdown("Kaplan et al. (2020, *Scaling Laws for Neural Language Models*, eq. 2.1) count only the "
                "non-embedding parameters N; with their standard shape d_attn = d, d_ff = 4d this is the common "
                "12·d² per layer:")
    st.latex(r"N \approx 2\,d\,L\,(2\,d_\text{attn} + d_\text{ff}) \;=\; 12\,L\,d^2 "
             r"\quad (d_\text{attn} = d,\; d_\text{ff} = 4d)")
    st.markdown(
        f"Here d_attn = nh·hd = {arch.n_heads * arch.head_dim:,} and d_ff = m = {arch.d_mlp:,}: "
        f"2dL(2d_attn + d_ff) = **{n_kaplan:,}** and 12·L·d² = **{n_12:,}**, against an exact non-embedding "
        f"count of **{n_exact:,}** ({n_kaplan - n_exact:+,} and {n_12 - n_exact:+,}). The formula takes K and V "
        "as wide as Q (MHA) and a two-matrix MLP, and leaves out norms and biases."
    )

# --- FLOPs ------------------------------------------------------------------------------------------------
with tab_f:
    fwd, causal = acc.prefill_flops(arch, batch, seq_len), acc.prefill_flops(arch, batch, seq_len, causal=True)
    dec, rec = acc.decode_step_flops(arch, batch, seq_len), acc.decode_step_flops(arch, batch, seq_len, cached=False)
    train = acc.training_flops(arch, batch, seq_len)
    st.dataframe(
        [{"what": w, "FLOPs": f"{v:,}", "≈": f"{v:.3g}"} for w, v in (
            (f"forward, prefill of {seq_len:,} tokens × batch {batch} (FlopCounterMode)", fwd.total),
            ("forward, causal-aware", causal.total),
            (f"one decode step at context {seq_len:,}, with the KV cache", dec.total),
            (f"one decode step at context {seq_len:,}, no cache (every layer at all {seq_len:,} positions, "
             "logits at the last only)", rec.total),
            ("training step (forward + backward ≈ 3 × forward)", train),
        )],
        hide_index=True, width="stretch", height="content",
    )
    st.dataframe(
        [{"component": t.name, "formula": t.formula, "FlopCounterMode": f"{t.value:,}", "causal-aware": f"{u.value:,}"}
         for t, u in zip(fwd.terms, causal.terms)],
        hide_index=True, width="stretch", height="content",
    )
    st.caption(
        "FlopCounterMode convention: our model computes the full s×s score matrix and masks it afterwards, so "
        "PyTorch counts every pair. Causal-aware counts only the pairs a query may read (k ≤ q, within the window): "
        "s(s+1)/2 without a window — what a FlashAttention-style kernel that skips masked tiles approaches. "
        "Everything else (projections, MLP, unembedding at every position) is the same in both. Training ≈ 3× "
        "forward: each matmul's backward is two matmuls of its size."
    )
    st.subheader("Beside Narayanan et al.'s formula", anchor=False)
    st.markdown("The forward count of Narayanan et al. (2021, Megatron-LM), term by term against the exact count "
                "(FlopCounterMode convention):")
    st.latex(r"\text{FLOPs}_\text{forward} = (24\,b s d^2 + 4\,b s^2 d)\,L + 2\,b s d V")
    st.dataframe(
        [{**r, "formula": f"{r['formula']:,}", "ours": f"{r['ours']:,}", "difference": f"{r['difference']:+,}"}
         for r in acc.megatron_comparison(arch, batch, seq_len)],
        hide_index=True, width="stretch", height="content",
    )
    st.subheader("Beside Kaplan et al.'s estimates", anchor=False)
    st.markdown("Kaplan et al. (2020, eq. 2.2 and §2.1) count forward FLOPs per token from the non-embedding "
                "parameters N and the context, and training as 6N per token:")
    st.latex(r"C_\text{forward} \approx 2N + 2\,L\,n_\text{ctx}\,d_\text{attn} \qquad "
             r"C_\text{train} \approx 6N")
    st.dataframe(
        [{**r, "formula": f"{r['formula']:,}", "ours": f"{r['ours']:,}", "difference": f"{r['difference']:+,}"}
         for r in acc.kaplan_comparison(arch, batch, seq_len)],
        hide_index=True, width="stretch", height="content",
    )
    st.caption(f"For b·s = {batch * seq_len:,} tokens with n_ctx = s = {seq_len:,} and N = "
               f"{acc.non_embedding_params(arch):,}.")
    crossover = acc.attention_crossover_seq_len(arch)
    top = min(2**22, max(4 * int(crossover), 2 * seq_len, 1024))
    seq_lens = [2**k for k in range(4, top.bit_length())]
    st.plotly_chart(flops_vs_seq_len(seq_lens, acc.flops_by_group_vs_seq_len(arch, seq_lens, batch), float(crossover)),
                    width="stretch")
    st.caption(crossover_caption(float(crossover), arch.mlp == "gated") if not arch.n_experts else
               f"Per layer, attention scores cost 4·b·s²·nh·hd and the MoE MLP a router (2·b·s·d·E) and the k = "
               f"{arch.experts_per_token} experts each token is sent to: attention overtakes it at s* = "
               f"{float(crossover):,.0f} tokens.")

# --- memory ---------------------------------------------------------------------------------------------
with tab_m:
    quantized_weights = sum(o * i * c for _, o, i, c in acc.weight_matrices(arch))
    mems = {k: acc.weight_memory(arch, k) for k in acc.WEIGHT_FORMATS}
    per_q = {k: 8 * (m["codes"] + m["scales"]) / quantized_weights for k, m in mems.items()
             if k not in acc.DTYPE_BITS}  # codes and scales per weight of the matrices a format quantizes
    st.dataframe(
        [{"weights": k, "bits / parameter": f"{acc.bits_per_param(arch, k):.3f}",
          "bits / quantized weight": f"{per_q[k]:.3f}" if k in per_q else "",
          "bytes": f"{m['total']:,}", "of which scales": f"{m['scales']:,}", "kept at fp16": f"{m['kept']:,}",
          "GiB (2³⁰ B)": size_text(acc.gib(m["total"])), "GB (10⁹ B)": size_text(m["total"] / 1e9)}
         for k, m in mems.items()],
        hide_index=True, width="stretch", height="content",
    )
    st.caption(weights_caption(acc.kept_tensors(arch), params.total, per_q))
    per_tok, kv = acc.kv_cache_bytes_per_token(arch, kv_dtype), acc.kv_cache_bytes(arch, seq_len, batch, kv_dtype)
    m1, m2 = st.columns(2)
    m1.metric("KV cache per token", f"{per_tok:,} B", help=f"2 (K and V) · L · nkv · hd · bytes at {kv_dtype}")
    m2.metric(f"KV cache, {seq_len:,} tokens × batch {batch}", acc.gib_text(kv), help=f"{kv:,} bytes")
    if arch.n_window_layers:
        st.caption(f"{arch.n_window_layers} of {arch.n_layers} layers keep only the last {arch.sliding_window:,} "
                   "positions: their cache stops growing there.")
    contexts = [2**k for k in range(4, max(arch.max_seq_len, seq_len, 256).bit_length() + 1)]
    variants = attention_variants(arch)
    st.plotly_chart(kv_cache_vs_context(contexts, acc.kv_cache_vs_context(variants, contexts, batch, kv_dtype),
                                        title=f"KV cache vs context ({kv_dtype}, batch {batch})", chosen=seq_len),
                    width="stretch")
    st.caption(" · ".join(f"{k}: {v.n_kv_heads} K/V heads" for k, v in variants.items())
               + ". Query heads and everything else stay the same; only the cache (and K/V weights) shrink.")

# --- training ---------------------------------------------------------------------------------------------
with tab_t:
    url_int("acc_train_batch", 1, 1, 4096)
    url_choice("acc_precision", list(acc.TRAIN_PRECISIONS), "bf16 mixed")
    url_choice("acc_gpu", list(acc.GPU_MEMORY), "H100 80GB")
    url_choice("acc_ckpt", [False, True], True)
    url_choice("acc_flash", [False, True], True)
    url_float("acc_tokens", 1.0, 1e-6, 1e5)
    t1, t2, t3 = st.columns(3)
    train_batch = int(t1.number_input("Micro-batch (sequences per step)", 1, 4096, key="acc_train_batch",
                                      help=f"each of {seq_len:,} tokens (the sequence length above)"))
    precision = t2.selectbox("Precision", list(acc.TRAIN_PRECISIONS), key="acc_precision",
                             help="mixed: 16-bit weights, gradients and activations, an fp32 master copy")
    gpu = t3.selectbox("GPU", list(acc.GPU_MEMORY), key="acc_gpu")
    t4, t5, t6 = st.columns(3)
    ckpt = t4.toggle("Activation checkpointing", key="acc_ckpt",
                     help="keep each layer's input only and recompute the layer in the backward")
    flash = t5.toggle("FlashAttention", key="acc_flash", help="no s × s attention pattern kept for the backward")
    tokens_b = t6.number_input("Training tokens (billions)", 1e-6, 1e5, key="acc_tokens", format="%g")
    sync_url("acc_train_batch", "acc_precision", "acc_gpu", "acc_ckpt", "acc_flash", "acc_tokens")
    parts = acc.training_memory(arch, train_batch, seq_len, precision, ckpt, flash)
    other = acc.training_memory(arch, train_batch, seq_len, precision, not ckpt, flash)
    labels = [f"{'with' if c else 'without'} checkpointing{' (chosen)' if c == ckpt else ''}" for c in (ckpt, not ckpt)]
    st.plotly_chart(training_memory_bars(labels, [parts, other], gpu, acc.GPU_MEMORY[gpu],
                                         title=f"Training memory by part ({precision}, AdamW, micro-batch "
                                               f"{train_batch} × {seq_len:,} tokens)"), width="stretch")
    st.markdown(training_fit_caption(parts, gpu, acc.GPU_MEMORY[gpu],
                                     None if ckpt else sum(other.values())))
    p = acc.TRAIN_PRECISIONS[precision]
    st.caption(
        f"Per parameter: {p['weights']} bytes of weights, {p['gradients']} of gradients"
        + (f", {p['master']} of fp32 master weights" if p["master"] else "")
        + f" and {acc.ADAMW_STATE_BYTES} of AdamW's two fp32 moments — "
        f"{p['weights'] + p['gradients'] + p['master'] + acc.ADAMW_STATE_BYTES} bytes (Rajbhandari et al. 2020, "
        "ZeRO, §3.1). Left out: the CUDA context and allocator slack (often 1–2 GiB), temporary buffers, and the "
        "logits' gradient that exists for a moment at the start of the backward."
    )
    act = acc.activation_memory(arch, train_batch, seq_len, p["activations"], ckpt, flash)
    st.dataframe([{"kept for the backward": t.name, "formula": t.formula, "bytes": f"{t.value:,}",
                   "GiB": size_text(acc.gib(t.value))} for t in act.terms],
                 hide_index=True, width="stretch", height="content")
    st.caption(
        "Activations as Korthikanti et al. (2022, *Reducing Activation Recomputation in Large Transformer Models*, "
        "§4.1) count them — every tensor a backward needs: each matmul's input, each norm's input, the attention "
        "pattern — adapted to GQA (only the nkv K/V heads), a gated MLP (4·m: gate, up, activation, product), "
        "RMSNorm and no dropout; p bytes a number (2 in mixed precision, 4 in fp32), the log-softmax of the logits "
        "in fp32. Checkpointing keeps each layer's input and recomputes one layer at a time in the backward. The "
        "tests measure our own model's saved tensors and find exactly this, plus named extras of its implementation."
    )
    tc = acc.training_compute(arch, seq_len, max(1, round(tokens_b * 1e9)))
    st.dataframe(
        [{"training compute": w, "FLOPs": f"{v:,}", "≈": f"{v:.3g}"} for w, v in (
            (f"exact: 3 × the forward of {tc['sequences']:,} sequences of {seq_len:,} tokens", tc["exact"]),
            (f"6·N·D: N = {tc['N']:,} {'active ' if arch.n_experts else ''}non-embedding parameters, "
             f"D = {tc['tokens']:,} tokens", tc["6ND"]),
        )],
        hide_index=True, width="stretch", height="content",
    )
    st.caption(f"6·N·D is {tc['6ND'] / tc['exact']:.1%} of the exact count: it leaves out attention over the "
               "context and the unembedding. Checkpointing adds one more forward (4× instead of 3×) for the "
               "recomputation, not counted here."
               + (" For a mixture of experts N counts a token's k experts, not all E." if arch.n_experts else ""))

# --- GPU bound --------------------------------------------------------------------------------------------
with tab_g:
    url_choice("acc_hw", list(acc.HARDWARE), list(acc.HARDWARE)[1])
    hw_name = st.selectbox("GPU", list(acc.HARDWARE), key="acc_hw")
    preset_hw = acc.HARDWARE[hw_name]
    pk, bk = f"acc_peak_{hw_name}", f"acc_bw_{hw_name}"  # per GPU: choosing another one opens on its own figures
    if "acc_peak" not in st.session_state:  # a link's figures (acc_peak, acc_bw) are for the GPU it names
        st.session_state[pk] = url_float("acc_peak", preset_hw.peak_flops / 1e12, 1.0, 1e5)
        st.session_state[bk] = url_float("acc_bw", preset_hw.mem_bandwidth / 1e12, 0.01, 1e3)
    st.session_state.setdefault(pk, preset_hw.peak_flops / 1e12)
    st.session_state.setdefault(bk, preset_hw.mem_bandwidth / 1e12)
    g1, g2 = st.columns(2)
    peak = g1.number_input("Peak dense FLOP/s (TFLOP/s)", 1.0, 1e5, key=pk)
    bw = g2.number_input("Memory bandwidth (TB/s)", 0.01, 1e3, key=bk)
    st.session_state.acc_peak, st.session_state.acc_bw = float(peak), float(bw)
    sync_url("acc_hw", "acc_peak", "acc_bw")
    hw = acc.Hardware(hw_name, peak * 1e12, bw * 1e12)
    pre = acc.prefill_intensity(arch, batch, seq_len, w_dtype, kv_dtype)
    dec_i = acc.decode_intensity(arch, batch, seq_len, w_dtype, kv_dtype)
    h1, h2, h3 = st.columns(3)
    h1.metric("Ridge point", f"{hw.ridge:,.0f} FLOP/B", help="peak FLOP/s ÷ bandwidth: below it, memory-bound")
    h2.metric("Prefill intensity", f"{pre.flops_per_byte:,.0f} FLOP/B",
              "compute-bound" if pre.flops_per_byte >= hw.ridge else "memory-bound", delta_color="off", delta_arrow="off")
    h3.metric("Decode intensity", f"{dec_i.flops_per_byte:,.1f} FLOP/B",
              "compute-bound" if dec_i.flops_per_byte >= hw.ridge else "memory-bound", delta_color="off", delta_arrow="off")
    b_short = acc.decode_compute_bound_batch(arch, hw, 1, w_dtype, kv_dtype)
    b_here = acc.decode_compute_bound_batch(arch, hw, seq_len, w_dtype, kv_dtype)
    st.markdown(
        f"Decode turns compute-bound at batch **{b_short:,}** for short contexts (weights dominate the traffic)"
        + (f", and at batch **{b_here:,}** at context {seq_len:,}." if b_here else
           f"; at context {seq_len:,} each sequence's KV cache read alone keeps it **memory-bound at any batch**.")
        if b_short else "Decode stays memory-bound at any batch on this GPU."
    )
    st.caption(ridge_caption({k: (h.peak_flops, h.mem_bandwidth) for k, h in acc.HARDWARE.items()}))
    if arch.n_experts:
        st.caption("For a mixture of experts the bytes count every expert as read, which a decode step at a large "
                   "batch does; at batch 1 it reads only the k experts its token is routed to in each layer, so "
                   "the intensity shown is a lower bound there.")

# --- live check -------------------------------------------------------------------------------------------
with tab_live:
    if source != "Our model":
        st.info("Choose **Our model** above to check these formulas against a real PyTorch module.",
                icon=":material/info:")
    else:
        cfg = model_config(variant)
        s_live, b_live = min(seq_len, cfg.max_seq_len), min(batch, 8)  # keep the real forward small
        if folder:
            b_live, s_live = min(b_live, FOLDER_LIVE[0]), min(s_live, FOLDER_LIVE[1])
        got = live_numbers(variant, b_live, s_live)
        ours = {
            "params": params.total,
            "forward_flops": acc.prefill_flops(arch, b_live, s_live).total,
            "decode_step_flops": acc.decode_step_flops(arch, b_live, s_live).total,
            "kv_cache_bytes": acc.kv_cache_bytes(arch, s_live, b_live, "fp32"),  # the module runs in fp32
        }
        st.markdown(f"Real forward passes of the loaded **{plain_md(model_name(variant))}** (kept to {s_live} tokens "
                    "and batch 1: a forward of a model this size costs seconds here), on random token ids:"
                    if folder else
                    f"Real forward passes of a **{variant}** module built from its config (counts, FLOPs and cache "
                    f"bytes depend on the shapes, not on the trained values, so no checkpoint is read), on random "
                    f"token ids, batch {b_live}, {s_live} tokens:")
        rows = [
            ("parameters", "sum(p.numel() for p in model.parameters())", "params"),
            (f"forward FLOPs, {s_live} tokens", "FlopCounterMode on model(ids)", "forward_flops"),
            (f"decode step FLOPs, context {s_live}", "FlopCounterMode on a cached step", "decode_step_flops"),
            (f"KV cache after {s_live} tokens (fp32)", "KVCache.nbytes()", "kv_cache_bytes"),
        ]
        for label, ref, k in rows:
            l1, l2 = st.columns(2)
            l1.metric(f"{label}: ours", f"{ours[k]:,}")
            same = got[k] == ours[k]
            l2.metric(ref, f"{got[k]:,}", "equal" if same else f"{got[k] - ours[k]:+,}",
                      delta_color="off" if same else "inverse", delta_arrow="off" if same else "auto")
