"""Inside fast inference: FlashAttention's tiles on the prompt's own q, k, v; KV-cache memory (a sliding window's
rolling buffer, paging); prefill vs decode on a roofline, with decode speed measured on this CPU.

Thin: widgets → one cached call into `model/inference/` (flash, batched, paging, roofline) → `viz/inference.py`.
Only the open tab runs (tabs bound to the URL); every selection is in the URL too.
"""

import numpy as np
import streamlit as st

from app_shared import (
    cached_figure, checkpoint_problem, current_model, current_prompt, is_folder, is_trained, load_model,
    model_config, model_error, model_name, plain_md, prompt_notices, require_shell, shape_model, shared_result,
    sync_url, tokenizer_for, trace_prompt, url_choice, url_int, url_tabs,
)
from model.accounting.arch import arch_from_model_config
from model.accounting.counts import (decode_compute_bound_batch, decode_intensity, gib_text, kv_cache_bytes,
                                     kv_cache_bytes_per_token, weight_bytes)
from model.accounting.hf_configs import PRESETS, preset_arch
from model.analysis.heads import kv_groups, kv_head_of
from model.evaluation.evaluate import RESULTS_PATH
from model.evaluation.stats import paired_difference
from model.inference import flash, paging, roofline
from model.inference.batched import receptive_field, rolling_generation, slot_of
from model.net.checkpoints import variant_config
from viz.compare import loss_by_position_figure
from viz.inference import (decode_batch_figure, decode_speed_figure, fit_figure, intensity_figure,
                           memory_layout_figure, memory_over_time_figure, receptive_field_figure,
                           rolling_buffer_figure, slot_timeline_figure, tile_state_figure, tiles_figure,
                           traffic_figure, window_cost_text)

require_shell()  # first, before any widget: see app_shared.require_shell

TABS = ["Tiled attention", "KV-cache memory", "Prefill vs decode"]
BLOCKS = [2, 4, 8, 16, 32, 64]  # tile sizes to step through (our prompts are tens of tokens)
TRAFFIC_BLOCKS = [16, 32, 64, 128, 256]  # FlashAttention-2 uses 64–128 on an A100
TRAFFIC_N = [2**k for k in range(6, 18)]  # 64 … 131,072 tokens
WINDOW_VARIANT = "gqa-window"
N_GEN = 160  # decode steps generated for the rolling buffer: enough to wrap a 64-slot window twice
REQ_BLOCKS = [8, 16, 32, 64]
KV_MEMORY_GIB = [0.25, 1.0, 4.0, 16.0, 64.0]
PREFILL_T = [16, 64, 256, 1024, 4096, 16384]
DECODE_B = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
MEASURE_B = [1, 2, 4, 8, 16, 32, 64]
BIG_MODEL_PARAMS = 50_000_000  # past this a folder's model is timed at batches up to 16 only (seconds, not minutes)
MEASURE_CONTEXT = 64
KV_DTYPE = "bf16"  # serving memory is counted at bf16, as the calculator does by default
PLOT_CONFIG = {"displaylogo": False}

variant = current_model()
cfg = model_config(variant)
folder = is_folder(variant)
prompt = current_prompt()

st.title("Inside fast inference")
st.markdown(
    "What a serving engine does to run this same model fast: attention computed in **tiles** that never write "
    "the T×T score matrix to slow memory (FlashAttention), the **KV cache** held in a rolling buffer under a "
    "sliding window or in fixed-size **pages** (vLLM), and why the **prefill** of a prompt is compute-bound while "
    "each **decode** step is memory-bound until the batch is large."
)
url_choice("inf_preset", list(PRESETS), "Llama-3-8B")
preset = st.columns([1, 2])[0].selectbox("Large model to compare with", list(PRESETS), key="inf_preset",
                                         help="A preset of the Parameters, FLOPs, memory page's calculator.")
sync_url("inf_preset")
big = preset_arch(preset)
ours = arch_from_model_config(cfg, name=f"{model_name(variant)}" if folder else f"ours ({variant})")
tab_tiles, tab_kv, tab_roof = url_tabs(TABS, "inf_tab")


# --------------------------------------------------------------------------------------------------------
# Cached computations (shared by every session; read-only)
# --------------------------------------------------------------------------------------------------------


@shared_result("Tiling the attention…")
def tiled_run(variant: str, ids: tuple[int, ...], layer: int, head: int, bq: int, bk: int) -> dict:
    tr = trace_prompt(variant, ids)
    c = model_config(variant)
    inp = flash.head_inputs(tr.acts, c, layer, head)
    res = flash.tiled_attention(**inp, block_q=bq, block_k=bk)
    ref, pattern = flash.explicit_attention(**inp)
    z = tr[f"blocks.{layer}.attn.hook_z"][:, head]  # the model's own float32 output
    allowed = flash.allowed_mask(inp["q_pos"], inp["k_pos"], inp["window"])
    return {"res": res, "pattern": np.where(allowed, pattern, np.nan), "vs_explicit": float(np.abs(res.out - ref).max()),
            "vs_model": float(np.abs(res.out - z).max())}


@shared_result("Generating through the rolling buffer…")
def rolling_run(variant: str, ids: tuple[int, ...]):
    return rolling_generation(load_model(variant), list(ids), N_GEN)


@st.cache_data(show_spinner=False, max_entries=8)
def exchanges(max_len: int, model: str) -> list:
    """The held-out plays' speech / reply pairs as request lengths, in tokens of `model`'s tokenizer."""
    from model.text.corpus import load_corpus

    return paging.exchanges_from_text(load_corpus("val"), tokenizer_for(model).encode, max_len)


@st.cache_data(show_spinner=False)
def evaluation(mtime: float) -> dict | None:
    import json

    return json.loads(RESULTS_PATH.read_text()) if RESULTS_PATH.is_file() else None


@st.cache_resource(show_spinner="Measuring this CPU's matmul FLOP/s and copy bandwidth…")
def this_machine():
    return roofline.measure_machine(1)


@st.cache_resource(show_spinner="Measuring decode speed on this CPU…", max_entries=8)
def decode_speeds(variant: str, trained: bool) -> list[dict]:
    # Time depends on the shapes alone; the trained weights are used when this checkout has them.
    m = load_model(variant) if trained else shape_model(variant)
    big_model = sum(p.numel() for p in m.parameters()) > BIG_MODEL_PARAMS
    return roofline.measure_decode(m, [b for b in MEASURE_B if b <= 16] if big_model else MEASURE_B, MEASURE_CONTEXT,
                                   steps=6, repeats=2)


def size(n: float) -> str:
    return gib_text(int(n))


# --------------------------------------------------------------------------------------------------------
# Tiled attention
# --------------------------------------------------------------------------------------------------------

if tab_tiles.open:
    with tab_tiles:
        problem = checkpoint_problem(variant)
        if problem:
            model_error(variant, problem)
        elif prompt_notices(prompt):
            T = len(prompt.ids)
            url_int("inf_layer", 0, 0, cfg.n_layers - 1)
            url_int("inf_head", 0, 0, cfg.n_heads - 1)
            url_choice("inf_bq", BLOCKS, 8)
            url_choice("inf_bk", BLOCKS, 8)
            c = st.columns(4)
            layer = c[0].selectbox("Layer", list(range(cfg.n_layers)), key="inf_layer")
            head = c[1].selectbox("Query head", list(range(cfg.n_heads)), key="inf_head")
            bq = c[2].selectbox("Q block (rows)", BLOCKS, key="inf_bq", help="FlashAttention's Br")
            bk = c[3].selectbox("K/V block (keys)", BLOCKS, key="inf_bk", help="FlashAttention's Bc")
            run = tiled_run(variant, prompt.ids, layer, head, bq, bk)
            res = run["res"]
            tiles = res.tiles
            url_int("inf_tile", 0, 0, len(tiles) - 1)
            if len(tiles) > 1:
                st.slider("Tile, in execution order", 0, len(tiles) - 1, key="inf_tile",
                          help="Q block by Q block, each against the K/V blocks left to right (FlashAttention-2's order).")
            n = min(int(st.session_state.get("inf_tile", 0)), len(tiles) - 1)
            sync_url("inf_layer", "inf_head", "inf_bq", "inf_bk", "inf_tile")
            t = tiles[n]
            skipped_causal = sum(x.status == flash.SKIP_CAUSAL for x in tiles)
            skipped_window = sum(x.status == flash.SKIP_WINDOW for x in tiles)
            (r0, r1), (c0, c1) = t.q_rows, t.k_cols
            group = kv_groups(cfg.n_heads, cfg.n_kv_heads)[kv_head_of(head, cfg.n_heads, cfg.n_kv_heads)]
            head_note = (f"; K/V head {kv_head_of(head, cfg.n_heads, cfg.n_kv_heads)}, shared by query heads "
                         f"{group[0]}–{group[-1]}" if len(group) > 1 else "")
            st.markdown(
                f"**Tile {n + 1} of {len(tiles)}**: Q block {t.i} (queries {r0}–{r1 - 1}) against K/V block {t.j} "
                f"(keys {c0}–{c1 - 1}) — **{t.status}**. Layer {layer}, head {head}{head_note}; the prompt's {T} "
                f"tokens make {res.n_q_blocks} Q blocks × {res.n_k_blocks} K/V blocks."
            )
            left, right = st.columns([3, 2], gap="large")
            left.plotly_chart(tiles_figure(run["pattern"], [dict(q=x.q_rows, k=x.k_cols, computed=x.computed)
                                                            for x in tiles], n, list(prompt.labels)),
                              key="inf_tiles", config=PLOT_CONFIG)
            left.caption("The head's attention pattern (the explicit softmax; grey = masked) with the tile grid: rows "
                         "of tiles are Q blocks, columns K/V blocks. Red: this tile; amber: skipped before it, no work at all; veiled: still to come.")
            with right:
                st.markdown(
                    "Per query row the tile keeps three running values in fast memory, updated with this tile's "
                    "scores S:\n\n"
                    "- m′ = max(m, rowmax S)\n"
                    "- l′ = e^(m − m′)·l + rowsum e^(S − m′)\n"
                    "- O′ = (e^(m − m′)·l·O + e^(S − m′)·V) / l′\n\n"
                    "When a row's max goes up, everything summed so far is scaled down by e^(m − m′): the "
                    "softmax is exact without ever seeing the whole row at once. After the last tile of a Q "
                    "block, O is written to slow memory once."
                )
            c = st.columns(5)
            c[0].metric("computed", f"{res.n_computed}", help="Tiles with at least one allowed (query, key) pair.")
            c[1].metric("causal skips", f"{skipped_causal}", help="Tiles whose every key comes after every query.")
            c[2].metric("window skips", f"{skipped_window}" if cfg.sliding_window else "—",
                        help="Tiles whose every key is older than the window." if cfg.sliding_window else
                        "This variant has no sliding window.")
            c[3].metric("vs explicit", f"{run['vs_explicit']:.1e}",
                        help="max |tiled − explicit| over the head's output, both in float64 from the same q, k, v.")
            c[4].metric("vs hook_z", f"{run['vs_model']:.1e}",
                        help="max |tiled − the model's own attention output| (hook_z, computed in float32).")
            rows = list(range(r0, r1))
            st.plotly_chart(tile_state_figure(t.scores, rows, list(range(c0, c1)), t.m_before, t.m_after, t.l_before,
                                              t.l_after, t.O_before, t.O_after), key="inf_tile_state", config=PLOT_CONFIG)
            if t.computed:
                fin = np.isfinite(t.m_before)
                rose = int((t.m_after[fin] > t.m_before[fin]).sum())
                first = int((~fin & np.isfinite(t.m_after)).sum())
                seen = int(fin.sum())
                st.caption(
                    f"This tile: {first} of {r1 - r0} query rows see their first allowed key here (m was −∞, so l and "
                    "O start from this tile alone)"
                    + (f"; of the {seen} that had seen keys before, {rose} found a larger score here, so their l and O "
                       f"were rescaled by e^(m − m′) < 1, and {seen - rose} kept their max" if seen else "")
                    + f". Largest change of O in this tile: {float(np.abs(t.O_after - t.O_before).max()):.3g}.")
            else:
                st.caption(f"This tile is {t.status}: every (query, key) pair in it is masked, so a kernel never "
                           "loads it — m, l and O carry over unchanged.")

            st.subheader("Memory traffic: materialise T×T, or tile", anchor=False)
            url_choice("inf_tblock", TRAFFIC_BLOCKS, 128)
            block = st.select_slider("Tile size for this chart (Br = Bc)", TRAFFIC_BLOCKS, key="inf_tblock")
            sync_url("inf_tblock")
            series = {a.name: flash.attention_traffic_bytes(a, TRAFFIC_N, block, 2) for a in (ours, big)}
            st.plotly_chart(cached_figure(traffic_figure, tuple(TRAFFIC_N),
                                          {k: {kk: tuple(vv) for kk, vv in v.items()} for k, v in series.items()}),
                            key="inf_traffic", config=PLOT_CONFIG)
            st.markdown(
                f"Per head and layer of a prefill of N tokens, in elements of d = head_dim (bf16, 2 bytes each):\n\n"
                f"- **naive** (Dao et al. 2022, Algorithm 0): read Q, K, write S; read S, write P; read P, V, write "
                f"O → `{flash.NAIVE_FORMULA}`\n"
                f"- **tiled**: read Q and write O once; read each computed tile's K and V blocks → "
                f"`{flash.TILED_FORMULA}` ≈ 2·N·d + N²·d / B under the causal mask (half the tiles are skipped)\n\n"
                "Then × query heads × layers (× batch). A layer with a sliding window reads only the K blocks its "
                "window reaches, so its tiled traffic grows like N, not N²."
            )
            N = TRAFFIC_N[-1]
            ratios = {k: v["naive"][-1] / v["tiled"][-1] for k, v in series.items()}
            st.caption(
                f"At N = {N:,}: " + "; ".join(
                    f"{k}: naive {size(series[k]['naive'][-1])}, tiled {size(series[k]['tiled'][-1])} "
                    f"({ratios[k]:,.1f}× less)" for k in series)
                + ". As N grows, full-attention layers tend to the ratio 4N² / (N²·d/B) = 4·B/d; windowed layers' "
                  "tiled traffic only grows like N, so their ratio keeps growing: "
                + "; ".join(f"{a.name} 4·{block}/{a.head_dim} = {4 * block / a.head_dim:g}" if not a.n_window_layers
                            else f"{a.name} has {a.n_window_layers} of {a.n_layers} layers windowed" for a in (ours, big))
                + ". At the same tile size a larger head dimension leaves less to save, which is why kernels pick "
                  "the largest tiles their fast memory holds."
            )

# --------------------------------------------------------------------------------------------------------
# KV-cache memory
# --------------------------------------------------------------------------------------------------------

if tab_kv.open:
    with tab_kv:
        st.subheader("A sliding window's rolling buffer", anchor=False)
        # One ring for every layer: a model whose window is on some layers only (a Qwen2) is not drawn as one.
        wv = variant if cfg.sliding_window and cfg.sliding_layers is None else WINDOW_VARIANT
        wcfg = model_config(wv)
        W, L = wcfg.sliding_window, wcfg.n_layers
        W_ours = variant_config(WINDOW_VARIANT).sliding_window  # the evaluated window, in the loss section below
        w_prompt = prompt if wv == variant else current_prompt(WINDOW_VARIANT)  # our model reads our tokens
        w_label = tokenizer_for(wv).token_label
        if wv != variant:
            has = ("has its window on some layers only, not one ring for all" if cfg.sliding_window else
                   "has no window")
            st.caption(f"The sidebar's {'model' if folder else 'variant'} {has}, so this part runs **{wv}** (each "
                       f"query sees its last {W} keys; otherwise our default model)"
                       + (", on your prompt in our tokenizer." if folder else "."))
        w_problem = checkpoint_problem(wv)
        if not is_trained(wv):  # a second model, not the sidebar's: say it is missing, and go on with the rest
            st.info(f"The trained **{wv}** is not in this checkout yet, so the rolling buffer is not drawn "
                    "(it needs the model's real tokens).", icon=":material/hourglass_empty:")
        elif w_problem:
            model_error(wv, w_problem)
        elif prompt_notices(w_prompt):
            ids, steps = rolling_run(wv, w_prompt.ids)
            labels = [w_label(i) for i in ids]
            first_evict = next((k for k, s in enumerate(steps) if s.evicted >= 0), len(steps) - 1)
            url_int("inf_step", first_evict, 0, len(steps) - 1)
            st.slider("Model call (0 = the prefill, then one decode step each)", 0, len(steps) - 1, key="inf_step")
            sync_url("inf_step")
            k = int(st.session_state.inf_step)
            s = steps[k]
            st.markdown(
                f"Mistral's cache for a window of W = {W} is a ring of {W} slots per layer: position p goes to slot "
                f"p mod {W}, overwriting position p − {W}, which no query can read any more. The memory stays "
                f"{W} positions however long the text: "
                f"{kv_cache_bytes(arch_from_model_config(wcfg), 10**6, 1, 'fp32'):,} bytes (fp32, every layer) at a "
                f"million tokens, as at {W}. "
                + (f"The prompt's {len(w_prompt.ids)} positions fill the first slots in the prefill; "
                   if len(w_prompt.ids) <= W else
                   f"The prompt's {len(w_prompt.ids)} positions wrap round the ring in the prefill: only its last {W} "
                   "stay; ")
                + f"{N_GEN} sampled tokens follow (temperature 0.8, seed 0)."
            )
            st.plotly_chart(rolling_buffer_figure(s.slots, labels, s.slot, s.position, s.evicted),
                            key="inf_ring", config=PLOT_CONFIG)
            held = int((s.slots >= 0).sum())
            st.caption(
                (f"Call 0, the prefill: it wrote positions 0–{s.position} in one pass, the last one " if k == 0 else
                 f"Call {k}, decode step {k}: ")
                + f"position {s.position} "
                f"(“{plain_md(labels[s.position], 20)}”) → slot {s.position} mod {W} = {s.slot}; "
                + (f"it evicts position {s.evicted} (“{plain_md(labels[s.evicted], 20)}”), written "
                   f"{s.position - s.evicted} positions earlier. " if s.evicted >= 0 else
                   "the slot was empty, nothing evicted. ")
                + f"{held} of {W} slots hold a key; the oldest held is position {int(s.slots[s.slots >= 0].min())}.")
            pos = np.arange(len(ids))
            st.plotly_chart(slot_timeline_figure(pos, [slot_of(p, W) for p in pos],
                                                 [p - W if p >= W else -1 for p in pos], s.position, W),
                            key="inf_slots", config=PLOT_CONFIG)
            st.caption(f"Every position's slot: a sawtooth of period {W}. From position {W} on, every write evicts the "
                       f"position {W} before it; the red ring is this call's write.")
            earliest = receptive_field(s.position, W, L)
            st.plotly_chart(receptive_field_figure(s.position, earliest, W), key="inf_field", config=PLOT_CONFIG)
            st.caption(
                f"Evicted is not forgotten: a key in layer 1 can read {W - 1} positions back, and what it read is in "
                f"its output, which layer 2's keys carry another {W - 1} back. After {L} layers position "
                f"{s.position} can draw on positions ≥ {earliest[-1]}"
                + (f" — the whole text so far (L·(W − 1) = {L * (W - 1)} ≥ {s.position})." if earliest[-1] == 0 else
                   f": {s.position - earliest[-1]} back = L·(W − 1) = {L}·{W - 1}, the receptive field of L × W.")
            )

        st.subheader("What the window costs: loss by position", anchor=False)
        if folder:
            st.caption(f"Measured on our variants' held-out evaluation (results/evaluation.json), trained alike with "
                       f"and without a window — not on {plain_md(model_name(variant))}, which has no such twin.")
        res = evaluation(RESULTS_PATH.stat().st_mtime if RESULTS_PATH.is_file() else 0.0)
        shown = [n for n in ("gqa-rope", WINDOW_VARIANT) if res and n in res.get("variants", {})]
        if WINDOW_VARIANT not in shown:
            st.info(f"**{WINDOW_VARIANT}** is not in the committed evaluation yet (`results/evaluation.json`): "
                    + ("it has a checkpoint, so `python -m model.evaluation --variants gqa-window` adds it."
                       if is_trained(WINDOW_VARIANT) else "its checkpoint is not in this checkout."),
                    icon=":material/hourglass_empty:")
        if shown:
            series = {}
            for n in shown:
                b = res["variants"][n]["loss_by_position"]
                series[n] = {"x": b["bucket_centre"], "y": b["bucket_mean"], "end": b["evaluated"], "note": b["note"]}
            ctx = variant_config(WINDOW_VARIANT).max_seq_len
            fig = loss_by_position_figure(series, ctx, max(b["end"] for b in series.values()))
            fig.update_layout(showlegend=True)  # even with one line: say whose it is
            st.plotly_chart(fig, key="inf_loss_pos", config=PLOT_CONFIG)
            parts, rise = [], {}
            for n in shown:
                m = np.asarray(res["variants"][n]["loss_by_position"]["mean"], dtype=np.float64)
                past = float(m[ctx:].mean()) if len(m) > ctx else None
                if past is not None:
                    rise[n] = past - float(m[:ctx].mean())
                parts.append(f"{n}: positions 1–{W_ours} {m[:W_ours].mean():.3f}, {W_ours + 1}–{ctx} "
                             f"{m[W_ours:ctx].mean():.3f}"
                             + (f", {ctx + 1}–{len(m)} {past:.3f}" if past is not None else "")
                             + f" (held-out {res['variants'][n]['heldout']['nats_per_token']:.3f})")
            cost = ""
            per_window = [res["variants"][n]["heldout"].get("window_losses") for n in (WINDOW_VARIANT, "gqa-rope")
                          if n in shown]
            if len(per_window) == 2 and all(per_window):  # the same held-out windows for both: paired
                gap, gap_se = paired_difference(*per_window)
                n_pos = len(res["variants"][WINDOW_VARIANT]["loss_by_position"]["mean"])
                cost = window_cost_text(WINDOW_VARIANT, "gqa-rope", gap, gap_se, rise, W_ours, ctx, n_pos) + " "
            st.caption("Mean held-out loss (nats/token): " + "; ".join(parts) + ". " + cost
                       + "The dotted line is the training context.")

        st.subheader("Paged KV cache: blocks instead of one slab per request", anchor=False)
        reqs_all = exchanges(cfg.max_seq_len, variant)
        url_int("inf_nreq", 8, 1, 32)
        url_int("inf_first", 0, 0, len(reqs_all) - 1)
        url_choice("inf_block", REQ_BLOCKS, 16)
        c = st.columns(3)
        n_req = c[0].number_input("Requests", 1, 32, key="inf_nreq")
        first = c[1].number_input("First exchange", 0, len(reqs_all) - 1, key="inf_first",
                                  help=f"{len(reqs_all):,} exchanges in the held-out plays")
        block = c[2].select_slider("Block size (positions)", REQ_BLOCKS, key="inf_block")
        reqs = [reqs_all[(first + i) % len(reqs_all)] for i in range(n_req)]
        states = paging.simulate_paged(reqs, block)
        url_int("inf_pstep", 0, 0, len(states) - 1)
        st.slider("Decode step", 0, len(states) - 1, key="inf_pstep")
        sync_url("inf_nreq", "inf_first", "inf_block", "inf_pstep")
        ps = states[int(st.session_state.inf_pstep)]
        st.markdown(
            "Real request lengths: each speech of the held-out plays is a prompt and the next speech its reply "
            f"(tokens{' of this model' if folder else ''}, each pair capped at "
            f"{'its' if folder else 'our'} context of {cfg.max_seq_len:,}). Every request arrives at step 0; each "
            "decode step adds a position to each request still generating; a finished one frees its memory."
        )
        st.plotly_chart(memory_layout_figure(ps.lengths, ps.tables, block, cfg.max_seq_len), key="inf_pages",
                        config=PLOT_CONFIG)
        live = sum(x > 0 for x in ps.lengths)
        contig = live * cfg.max_seq_len
        st.caption(
            f"Step {ps.step}: {live} requests live, {ps.used:,} positions hold a key. Contiguous reserves "
            f"{contig:,} ({100 * paging.fragmentation(ps.used, contig):.0f} % idle); paged "
            f"{ps.reserved(block):,} in {ps.reserved(block) // block} blocks of {block} "
            f"({100 * paging.fragmentation(ps.used, ps.reserved(block)):.0f} % idle, all of it in last blocks). "
            "Paged labels read request·logical block; gaps are freed blocks waiting for reuse.")
        st.dataframe([{"request": r, "prompt": q.prompt, "reply": q.output, "positions now": ps.lengths[r],
                       "block table (physical ids)": ", ".join(map(str, ps.tables[r])) or "—"}
                      for r, q in enumerate(reqs)], hide_index=True, height=min(400, 38 + 35 * len(reqs)))
        mot = paging.memory_over_time(reqs, block, cfg.max_seq_len)
        mot_big = paging.memory_over_time(reqs, block, big.max_seq_len)
        per = {ours.name: kv_cache_bytes_per_token(ours, KV_DTYPE), big.name: kv_cache_bytes_per_token(big, KV_DTYPE)}
        st.plotly_chart(memory_over_time_figure({
            ours.name: {"steps": mot.steps.tolist(), **{k: (getattr(mot, k) * per[ours.name]).tolist()
                                                        for k in ("used", "paged", "contiguous")}},
            big.name: {"steps": mot_big.steps.tolist(), **{k: (getattr(mot_big, k) * per[big.name]).tolist()
                                                           for k in ("used", "paged", "contiguous")}}}),
            key="inf_mem_time", config=PLOT_CONFIG)
        peak_used = int(mot.used.max())
        windowed = [a.name for a in (ours, big) if a.n_window_layers]
        st.caption(
            (f"(The simulation ignores sliding windows: {', '.join(windowed)} would hold at most "
             "its window per request in its windowed layers.) " if windowed else "")
            + f"The same requests, {KV_DTYPE} cache: {per[ours.name]:,} B a position for ours, {per[big.name]:,} for "
            f"{big.name}, whose slab is its context of {big.max_seq_len:,}. At the busiest step "
            f"{peak_used:,} positions are used; contiguous reserves {int(mot.contiguous.max()):,} (ours) and "
            f"{int(mot_big.contiguous.max()):,} ({big.name}), paged {int(mot.paged.max()):,} for both.")
        url_choice("inf_mem", KV_MEMORY_GIB, 16.0)
        mem = st.select_slider("Memory left for the KV cache (GiB, after the weights)", KV_MEMORY_GIB, key="inf_mem")
        sync_url("inf_mem")
        fits = {a.name: paging.requests_that_fit(reqs, int(mem * 2**30), per[a.name], block, a.max_seq_len)
                for a in (ours, big)}
        st.plotly_chart(fit_figure(fits, {a.name: f"{mem:g} GiB, {per[a.name]:,} B/position" for a in (ours, big)}),
                        key="inf_fit", config=PLOT_CONFIG)
        st.caption(
            "Requests of these lengths in flight at once, each at its full length: "
            + "; ".join(f"{k}: contiguous {v['contiguous']:,}, paged {v['paged']:,} "
                        f"({v['paged'] / max(v['contiguous'], 1):,.1f}×), exact {v['exact']:,}" for k, v in fits.items())
            + ". Contiguous depends only on the context; paging packs the real lengths and loses at most a block's "
              "worth per request.")

# --------------------------------------------------------------------------------------------------------
# Prefill vs decode
# --------------------------------------------------------------------------------------------------------

if tab_roof.open:
    with tab_roof:
        machine = this_machine()
        hw = machine.hardware
        st.markdown(
            "A kernel that does F FLOPs and moves B bytes takes at least max(F / peak, B / bandwidth): below the "
            "**ridge point** peak / bandwidth FLOPs per byte, memory is the limit. A prefill pushes T tokens through "
            "each weight matrix it reads; a decode step pushes one token per sequence — B of them at batch B."
        )
        url_choice("inf_model", ["ours", "preset"], "ours")
        url_choice("inf_T", PREFILL_T, 256)
        url_choice("inf_B", DECODE_B, 1)
        url_choice("inf_dtype", ["bf16", "fp32"], "bf16")
        c = st.columns([2, 2, 2, 1])
        which = c[0].segmented_control("Model", ["ours", "preset"], key="inf_model", required=True,
                                       format_func=lambda x: ours.name if x == "ours" else big.name) or "ours"
        T = c[1].select_slider("Prefill length T (= the decode context)", PREFILL_T, key="inf_T")
        B = c[2].select_slider("Decode batch B", DECODE_B, key="inf_B")
        dtype = c[3].selectbox("dtype", ["bf16", "fp32"], key="inf_dtype")
        sync_url("inf_model", "inf_T", "inf_B", "inf_dtype")
        a = ours if which == "ours" else big
        pre = roofline.prefill_matmuls(a, T, 1, dtype)
        dec = roofline.decode_matmuls(a, B, T, dtype)
        ms = roofline.machines(hw)
        ridges = {k: m.ridge for k, m in ms.items()}
        st.plotly_chart(intensity_figure([x.name for x in pre], [x.intensity for x in pre], [x.intensity for x in dec],
                                         ridges, f"prefill, T = {T}", f"decode, B = {B}, context {T}"),
                        key="inf_intensity", config=PLOT_CONFIG)
        lowest = min(ridges.values())
        mem_pre = [x.name for x in pre if x.intensity < lowest]
        cb_dec = [x.name for x in dec if x.intensity >= min(ridges.values())]
        st.caption(
            f"{a.name}, {dtype}, each matmul reading its weights, K/V and input and writing its output"
            + (f" (the experts' matmuls read all {a.n_experts} experts' weights, as the whole-step count does: at "
               f"batch × k ≥ {a.n_experts} a step uses every expert; below that fewer are read, so their intensity is "
               "higher than shown)" if a.n_experts else "") + ". Prefill: "
            f"from {min(x.intensity for x in pre):.3g} to {max(x.intensity for x in pre):.3g} FLOPs/byte; decode: "
            f"{min(x.intensity for x in dec):.3g} to {max(x.intensity for x in dec):.3g}. "
            + (f"Below even the lowest ridge ({lowest:.3g}) at prefill: {', '.join(mem_pre)}. " if mem_pre else
               f"Every prefill matmul is above the lowest ridge ({lowest:.3g}). ")
            + (f"At decode only {', '.join(cb_dec)} reach the lowest ridge." if cb_dec else
               "At decode none reaches even the lowest ridge: every one is memory-bound on every machine here.")
            + " The attention matmuls read K/V for only 2·(nh / nkv) FLOPs per value they read, whatever B.")
        def from_batch(x, m) -> str:
            b = decode_compute_bound_batch(x, m, T, dtype, dtype)
            return "never" if b is None else f"{b:,}"

        rows = [{"machine": name, "peak": m.peak_flops / 1e12, "bandwidth": m.mem_bandwidth / 1e9, "ridge": m.ridge,
                 "ours": from_batch(ours, m), big.name: from_batch(big, m)} for name, m in ms.items()]
        st.dataframe(rows, hide_index=True, column_config={
            "peak": st.column_config.NumberColumn("peak TFLOP/s", format="%.3g"),
            "bandwidth": st.column_config.NumberColumn("GB/s", format="%.3g"),
            "ridge": st.column_config.NumberColumn("ridge FLOPs/byte", format="%.3g"),
            "ours": st.column_config.TextColumn(f"compute-bound from B: {ours.name}"),
            big.name: st.column_config.TextColumn(f"… {big.name}")})
        st.caption(
            f"GPU peaks are dense bf16 tensor-core figures, the CPUs' fp32. This CPU, measured now on one torch thread: "
            f"a {machine.matmul_n}×{machine.matmul_n} fp32 matmul at {hw.peak_flops / 1e9:.1f} GFLOP/s and a "
            f"{machine.copy_bytes // 2**20} MiB copy at {hw.mem_bandwidth / 1e9:.1f} GB/s (read + write) → ridge "
            f"{hw.ridge:.2f} FLOPs/byte; the machine is shared, so both are lower bounds on what it can do. "
            f"The batch columns are the calculator's `decode_compute_bound_batch` at context {T} "
            "(never: the cache's own traffic keeps decode memory-bound at any batch).")
        batches = [2**k for k in range(0, 13)]
        inten = {x.name: [decode_intensity(x, b, T, dtype, dtype).flops_per_byte for b in batches] for x in (ours, big)}
        cross = {x.name: {k: decode_compute_bound_batch(x, m, T, dtype, dtype) for k, m in ms.items()}
                 for x in (ours, big)}
        st.plotly_chart(decode_batch_figure(batches, inten, ridges, cross), key="inf_decode_batch", config=PLOT_CONFIG)
        st.caption(
            f"A whole decode step (weights read once for the batch, plus every sequence's cache at context {T}): "
            f"intensity grows with B until the cache dominates. ◆ = where it crosses a machine's ridge. "
            + "; ".join(f"{x}: from B = {cross[x][hw.name]} on this CPU" if cross[x][hw.name] else
                        f"{x}: never compute-bound on this CPU" for x in cross) + ".")

        st.subheader(f"Decode speed on this CPU vs the roofline ({model_name(variant)})", anchor=False)
        rows = decode_speeds(variant, checkpoint_problem(variant) is None)
        bs = [r["batch"] for r in rows]
        measured = [r["tokens_per_s"] for r in rows]
        pred = roofline.predicted_decode_tokens_per_s(ours, bs, MEASURE_CONTEXT, hw, "fp32")
        st.plotly_chart(decode_speed_figure(bs, measured, pred, hw.name), key="inf_speed", config=PLOT_CONFIG)
        best = int(np.argmax(measured))
        eff = [m / p for m, p in zip(measured, pred)]
        st.caption(
            f"Batched decode with per-sequence caches (`model.inference.batched`), fp32, one thread, context "
            f"{MEASURE_CONTEXT}: {measured[0]:,.0f} tokens/s at B = 1, the most {measured[best]:,.0f} at B = {bs[best]}"
            f" ({measured[best] / measured[0]:.1f}× B = 1). The roofline allows {pred[0]:,.0f} at B = 1 and "
            f"{pred[-1]:,.0f} at B = {bs[-1]}; measured reaches {100 * min(eff):.0f}–{100 * max(eff):.0f} % of it. "
            + (f"Far below the bound at every batch: a {roofline.n_params(ours) / 1e6:.1f} M-parameter model is "
               f"too small for the roofline to bind — reading its {weight_bytes(ours, 'fp32') / 1e6:.1f} MB of fp32 "
               f"weights takes {1e3 * weight_bytes(ours, 'fp32') / hw.mem_bandwidth:.2f} ms, while a step measured "
               f"{1e3 * rows[0]['seconds_per_step']:.1f} ms at B = 1: dozens of small kernels whose fixed cost "
               "(Python, dispatch) is not in the roofline." if max(eff) < 0.5 else
               "Within a factor of two of the bound somewhere: the roofline is close to binding here."))
