"""Decoding strategies on the real model: beam search as a tree (greedy's path through it, the KV cache rows
reordered between steps, greedy / beam / sampled side by side), and speculative decoding with the small draft
model, one round at a time, with acceptance and speed as K and the temperature change.

Thin: searches and runs come from `model/decoding/beam.py`, `speculative.py` and `repetition.py` (cached per
setting: they are deterministic given the seed), figures from `viz/decoding.py`. Settings, the tab and the step
or round shown (beam_view, spec_view: 0-based) are in the URL.
"""

import numpy as np
import streamlit as st

from app_shared import (
    cached_figure, checkpoint_problem, current_model, current_prompt, download_json, is_folder, is_trained, load_model,
    model_config, model_error, model_name, plain_md, prompt_notices, require_model, require_shell, shared_result,
    sync_url, tokenizer_for, url_choice, url_int, url_tabs,
)
from model.accounting import counts as acc
from model.accounting.arch import arch_from_model_config
from model.decoding.beam import greedy_on_tree, tree_columns
from model.net.checkpoints import VARIANTS, variant_config
from viz.decoding import (acceptance_caption, acceptance_figure, beam_tree_figure, cache_reorder_figure,
                          comparison_caption, rounds_figure, speed_caption, speedup_figure, verdict_figure)

require_shell()  # first, before any widget: see app_shared.require_shell

TABS = ["Beam search", "Speculative decoding"]
PENALTIES = [-1.0, 0.0, 0.5, 1.0, 1.5, 2.0]
N_COMPARE = 48  # tokens per strategy in the comparison table: long enough for a loop to show
SAMPLE_T = 0.8  # the app's default temperature
TEMPERATURES = [0.0, 0.2, 0.5, 0.8, 1.0, 1.2, 1.5]
SWEEP_KS, SWEEP_TS, SWEEP_N = (1, 2, 4, 6, 8), (0.0, 0.5, 1.0), 32  # 15 seeded runs
SPEED_KS = (1, 2, 3, 4, 6)
SPEED_REPEATS = 3  # timed runs of each: the captions compare their spread, not only their medians
PLOT_CONFIG = {"displaylogo": False}

variant = current_model()
cfg = model_config(variant)
folder = is_folder(variant)
tok = tokenizer_for(variant)
decode, encode, token_label = tok.decode, tok.encode, tok.token_label
prompt = current_prompt()
# The token that ends a hypothesis: the model's end-of-text id (ours: <|endoftext|>; a folder's: eos_token_id in
# its config.json), or the first token of ".\n" — for ours the single token ".↵", for others often just ".".
LINE_STOP = encode(".\n")[0]
STOPS = ({"eot": f"{tok.eos_id} {tok.token_label(tok.eos_id)}"} if tok.eos_id is not None else {})
STOPS["line"] = f"“{token_label(LINE_STOP)}”, " + ("a line ending in a full stop" if token_label(LINE_STOP) == ".↵"
                                                   else "a full stop")

st.title("Decoding strategies: beam search and speculative decoding")
st.markdown(
    "Sampling picks one token at a time. **Beam search** keeps the B most probable partial continuations and "
    "grows all of them, step by step. **Speculative decoding** does not change *what* is generated — it makes "
    "the same text (the same distribution, when sampling) in fewer forwards of the model: a small draft model "
    "guesses K tokens and the model checks all K in one forward. Whether that is faster depends on what the "
    "draft and the checks cost on the machine; the last section measures it here."
)
require_model(variant)
model = load_model(variant)
if not prompt_notices(prompt):
    st.stop()
ids = tuple(prompt.ids)


def stop_id(stop: str) -> int:
    return tok.eos_id if stop == "eot" and tok.eos_id is not None else LINE_STOP


def tail(tokens, n: int = 4) -> str:
    """The last n tokens of a beam as text, for labels: '… ␣glad␣to␣see'."""
    if not tokens:
        return "(the prompt)"
    return ("…" if len(tokens) > n else "") + "".join(token_label(t) for t in tokens[-n:])


# --------------------------------------------------------------------------------------------------------
# Cached runs: deterministic per setting, shared by every session
# --------------------------------------------------------------------------------------------------------


@shared_result("Beam search…")
def run_beams(variant: str, ids: tuple, beams: int, penalty: float, eos: int, n: int):
    from model.decoding.beam import BeamConfig, beam_search
    from model.decoding.generate import generate
    from model.decoding.repetition import token_logprobs
    from model.decoding.sampling import SamplerConfig

    m = load_model(variant)
    result = beam_search(m, list(ids), n, BeamConfig(beams, penalty, False, eos))
    greedy = generate(m, list(ids), n, SamplerConfig(temperature=0)).generated_ids
    return result, greedy, np.cumsum(token_logprobs(m, list(ids), greedy))


@shared_result("Greedy, beam and sampled continuations…")
def compare_strategies(variant: str, ids: tuple, beams: int, penalty: float, eos: int) -> list[dict]:
    from model.decoding.beam import BeamConfig, beam_search
    from model.decoding.generate import generate
    from model.decoding.repetition import longest_repeat, repeated_ngram_share, token_logprobs
    from model.decoding.sampling import SamplerConfig

    m = load_model(variant)
    runs = [("greedy", generate(m, list(ids), N_COMPARE, SamplerConfig(temperature=0)).generated_ids)]
    best = beam_search(m, list(ids), N_COMPARE, BeamConfig(beams, penalty, False, eos)).best
    runs.append((f"beam search, B = {beams}", list(best.ids) if best else []))
    for seed in (0, 1):
        g = generate(m, list(ids), N_COMPARE, SamplerConfig(temperature=SAMPLE_T), seed=seed).generated_ids
        runs.append((f"sampled, T = {SAMPLE_T}, seed {seed}", g))
    rows = []
    for name, g in runs:
        lp = token_logprobs(m, list(ids), g)
        rows.append({"strategy": name, "tokens": len(g), "total log-prob": float(lp.sum()),
                     "log-prob per token": float(lp.mean()) if len(g) else float("nan"),
                     "repeated 3-grams": repeated_ngram_share(g, 3), "longest repeat (tokens)": longest_repeat(g),
                     "text": decode(g)})
    return rows


@shared_result("Speculative decoding…")
def run_speculative(variant: str, draft: str, ids: tuple, k: int, temperature: float, seed: int, n: int):
    from model.decoding.generate import generate
    from model.decoding.sampling import SamplerConfig
    from model.decoding.speculative import speculative_generate

    sampler = SamplerConfig(temperature=temperature)
    r = speculative_generate(load_model(variant), load_model(draft), list(ids), n, k, sampler, seed)
    plain = generate(load_model(variant), list(ids), n, sampler, seed).generated_ids
    return r, plain


@shared_result("Acceptance for every K and temperature (one run each)…")
def sweep(variant: str, draft: str, ids: tuple) -> list[dict]:
    from model.decoding.speculative import acceptance_sweep

    return acceptance_sweep(load_model(variant), load_model(draft), list(ids), SWEEP_N, list(SWEEP_KS),
                            list(SWEEP_TS))


@shared_result("Timing plain and speculative decoding on this CPU…")
def speed(variant: str, draft: str, ids: tuple, temperature: float) -> dict:
    from model.decoding.sampling import SamplerConfig
    from model.decoding.speculative import measure_speed

    return measure_speed(load_model(variant), load_model(draft), list(ids), SWEEP_N, list(SPEED_KS),
                         SamplerConfig(temperature=temperature), seed=0, repeats=SPEED_REPEATS)


def stepper(key: str, n: int, ident: tuple, unit: str) -> int:
    """Next / Back / To the end / Reset over steps 0 … n − 1; the step shown lives in session_state[key] and
    goes back to 0 when `ident` (the settings it belongs to) changes."""
    if st.session_state.get(key + "_ident") != ident:
        first = key + "_ident" not in st.session_state
        st.session_state[key + "_ident"] = ident
        if first:  # a link's step, read once per session (the runs are deterministic: the same step comes back)
            url_int(key, 0, 0, n - 1)
        else:
            st.session_state[key] = 0
    st.session_state[key] = min(max(0, st.session_state.get(key, 0)), n - 1)

    def move(to: int) -> None:
        st.session_state[key] = min(max(0, to), n - 1)

    now = st.session_state[key]
    # Four equal button columns, the position on its own line: at 900 px a 1.1-wide "Back" had 4 px for its label.
    b = st.columns(4, vertical_alignment="center")
    b[0].button(f"Next {unit}", key=key + "_next", type="primary", icon=":material/skip_next:", width="stretch",
                on_click=move, args=(now + 1,), disabled=now >= n - 1)
    b[1].button("Back", key=key + "_back", icon=":material/undo:", width="stretch", on_click=move, args=(now - 1,),
                disabled=now == 0)
    b[2].button("To end", key=key + "_end", icon=":material/fast_forward:", width="stretch", on_click=move,
                args=(n - 1,), disabled=now >= n - 1)
    b[3].button("Reset", key=key + "_reset", icon=":material/restart_alt:", width="stretch", on_click=move, args=(0,))
    st.markdown(f"**{unit} {now + 1} of {n}**")
    sync_url(key)  # 0-based, as in session_state
    return now


tab_beam, tab_spec = url_tabs(TABS, "dec_tab")

# ==========================================================================================================
# Beam search
# ==========================================================================================================
with tab_beam:
    if tab_beam.open is not False:
        url_int("dec_beams", 4, 1, 8)
        url_choice("dec_penalty", PENALTIES, 1.0)
        url_choice("dec_stop", list(STOPS), list(STOPS)[0])
        url_int("dec_beam_n", 12, 2, 24)
        c = st.columns([3, 3, 3, 3])
        c[0].select_slider("Beams B", list(range(1, 9)), key="dec_beams",
                           help="Continuations kept each step. B = 1 keeps one, like greedy.")
        c[1].select_slider("Length penalty", PENALTIES, key="dec_penalty",
                           help="A finished hypothesis scores (sum of log-probs) / length ** this: > 0 favours "
                                "longer ones, 0 = the raw sum, < 0 shorter ones. 1 is Hugging Face's default.")
        c[2].selectbox("Stop token", list(STOPS), key="dec_stop", format_func=STOPS.get,
                       help="The token that ends a hypothesis. " + (
                           "This model's end-of-text token comes from its config.json (eos_token_id)." if folder else
                           "Our training text has no <|endoftext|>, so the models never write it and only the "
                           "length ends beams; “.↵” ends them often."))
        c[3].slider("Tokens to generate", 2, 24, key="dec_beam_n")
        sync_url("dec_beams", "dec_penalty", "dec_stop", "dec_beam_n")
        s_ = st.session_state
        B, lp, eos, n = int(s_.dec_beams), float(s_.dec_penalty), stop_id(s_.dec_stop), int(s_.dec_beam_n)

        result, greedy, greedy_cum = run_beams(variant, ids, B, lp, eos, n)
        steps = result.steps
        view = stepper("beam_view", len(steps), (variant, ids, B, lp, eos, n), "step")
        step = steps[view]
        on_tree = greedy_on_tree(result, greedy)
        columns = tree_columns(result, token_label)[: view + 1]
        greedy_marks = [dict(index=on_tree[s], label=token_label(greedy[s]), score=float(greedy_cum[s]))
                        for s in range(min(view + 1, len(greedy)))]

        st.subheader(f"The tree after step {view + 1}", anchor=False)
        st.plotly_chart(beam_tree_figure(columns, greedy_marks, lp), key="beam_tree", config=PLOT_CONFIG)
        pool = [c_ for c_ in step.candidates if c_.rank < 2 * B]
        kept = step.kept
        ended = [c_ for c_ in step.candidates if c_.fate == "hypothesis"]
        n_cand = len(step.beams) * cfg.vocab_size
        parts = [f"Step {view + 1} extended {len(step.beams)} beam{'s' if len(step.beams) > 1 else ''} by every one "
                 f"of the {cfg.vocab_size:,} tokens: {n_cand:,} candidates, of which the best {len(pool)} (2B) "
                 f"form the pool; {len(kept)} go on as beams"]
        if ended:
            parts.append(f"{len(ended)} ended and {'were' if len(ended) > 1 else 'was'} kept as "
                         f"hypothes{'e' if len(ended) > 1 else 'i'}s")
        parts.append(f"the rest ({len(step.candidates) - len(kept) - len(ended)} drawn, grey) are pruned")
        st.caption("; ".join(parts) + ". Columns are sorted by cumulative log-probability (the numbers on the "
                   "edges), best on top; grey dots are pool members or a beam's best token that did not make it. "
                   "Orange: greedy's path — hover any node for its numbers.")
        g_idx = on_tree[view] if view < len(on_tree) else -1
        if view < len(greedy):
            best_now = max(step.candidates, key=lambda c_: c_.score)
            where = ("still one of the beams" if g_idx >= 0 else "no longer among the beams (drawn under the tree)")
            cmp = ("the same path" if g_idx >= 0 and step.candidates[g_idx] is best_now else
                   f"{best_now.score - greedy_cum[view]:+.2f} nats for the best candidate over greedy")
            st.caption(f"Greedy after {view + 1} token{'s' if view else ''}: cumulative log-prob "
                       f"{greedy_cum[view]:.2f}, {where}; {cmp}.")

        # --- the cache reorder --------------------------------------------------------------------------------
        st.subheader("The KV cache: one row per beam, reordered every step", anchor=False)
        left, right = st.columns([3, 2], gap="large")
        with left:
            if step.parents:
                new_beams = [step.beams[p] + (c_.token,) for p, c_ in zip(step.parents, kept)]
                st.plotly_chart(cache_reorder_figure(step.parents, [tail(b) for b in step.beams],
                                                     [tail(b) for b in new_beams]), key="beam_reorder",
                                config=PLOT_CONFIG)
            else:
                st.info(f"The search stopped after this step: {plain_md(step.stopped, 200)}. No reorder, no forward.",
                        icon=":material/flag:")
        with right:
            if step.parents:
                counts = {p: step.parents.count(p) for p in set(step.parents)}
                dropped = [r for r in range(len(step.beams)) if r not in counts]
                copied = [r for r, k in sorted(counts.items()) if k > 1]
                moved = [i for i, p in enumerate(step.parents) if p != i]
                lines = [f"Before the next forward, `cache.reorder({step.parents})`: new row *i* becomes a copy "
                         f"of old row parents[*i*], in all {cfg.n_layers} layers' K and V."]
                if len(step.beams) == 1:
                    lines.append(f"The prompt's single row is copied into {len(step.parents)}: every beam shares "
                                 "the prompt's keys and values.")
                else:
                    if copied:
                        lines.append(f"Row{'s' if len(copied) > 1 else ''} {', '.join(map(str, copied))} "
                                     f"{'are' if len(copied) > 1 else 'is'} copied more than once: "
                                     f"{'those beams have' if len(copied) > 1 else 'that beam has'} several "
                                     "children kept.")
                    if dropped:
                        lines.append(f"Row{'s' if len(dropped) > 1 else ''} {', '.join(map(str, dropped))} "
                                     f"{'are' if len(dropped) > 1 else 'is'} dropped: no child survived.")
                    if moved:
                        lines.append(f"{len(moved)} of {len(step.parents)} rows change content: fed without this "
                                     f"reorder, {'those' if len(moved) > 1 else 'that'} new beam"
                                     f"{'s' if len(moved) > 1 else ''} would read another beam's past — no error, "
                                     "just wrong text.")
                    else:
                        lines.append("This step every beam kept exactly one child in its own row: the reorder is "
                                     "the identity, which is why skipping it can go unnoticed for a while.")
                lines.append(f"Then one forward feeds the {len(step.parents)} new tokens as a batch of "
                             f"{len(step.parents)} × 1.")
                st.markdown(" ".join(lines))

        # --- hypotheses ---------------------------------------------------------------------------------------
        st.subheader("Finished hypotheses (n-best)", anchor=False)
        if step.hypotheses:
            st.dataframe([{"rank": i + 1, "score": round(h.score, 4), "sum of log-probs": round(h.logprob, 3),
                           "tokens": len(h.ids), "ended by": "the stop token" if h.ended_by == "eos" else "the length",
                           "at step": h.step + 1, "text": decode(list(h.ids))} for i, h in enumerate(step.hypotheses)],
                         hide_index=True, width="stretch", key="beam_nbest")
            st.caption(f"Score = sum of log-probs / tokens ^ {lp:g} (the stop token counts, the prompt does not), "
                       "as in Hugging Face transformers. "
                       + (f"Search stopped: {plain_md(step.stopped, 200)}." if step.stopped else
                          f"The search goes on: {len(step.hypotheses)} kept so far."))
        else:
            st.caption("None yet: a hypothesis is a pool candidate in the top B that ends — with the stop token, or "
                       "at the last token asked for.")

        # --- greedy / beam / sampled --------------------------------------------------------------------------
        st.subheader(f"Greedy, beam search and sampling over {N_COMPARE} tokens", anchor=False)
        rows = compare_strategies(variant, ids, B, lp, eos)
        st.dataframe([{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "text"}
                      for r in rows], hide_index=True, width="stretch", key="beam_compare",
                     column_config={"repeated 3-grams": st.column_config.ProgressColumn(
                         "repeated 3-grams", min_value=0.0, max_value=1.0, format="percent")})
        st.caption(comparison_caption(rows))
        with st.expander("The continuations", icon=":material/notes:", expanded=True):
            cols = st.columns(2)
            for i, r in enumerate(rows):
                with cols[i % 2]:
                    st.markdown(f"**{r['strategy']}**")
                    st.code(r["text"], language=None, wrap_lines=True)
        download_json({"variant": model_name(variant), "prompt_ids": list(ids), "num_beams": B, "length_penalty": lp,
                       "eos_id": eos, "stopped": result.stopped, "forwards": result.forwards,
                       "n_best": [{"ids": list(h.ids), "score": h.score, "logprob": h.logprob, "ended_by": h.ended_by}
                                  for h in result.hypotheses],
                       "steps": [{"parents": s_.parents, "beams": [list(b) for b in s_.beams],
                                  "candidates": [vars(c_) for c_ in s_.candidates]} for s_ in steps],
                       "comparison": rows}, "beam_search.json", "Download the search (JSON)")

# ==========================================================================================================
# Speculative decoding
# ==========================================================================================================
with tab_spec:
    if tab_spec.open and folder:
        st.info(f"Speculative decoding needs a draft model that shares the target's tokenizer: the draft proposes "
                f"token ids and the target checks those same ids. Our draft was trained with our Shakespeare BPE, "
                f"not with **{plain_md(model_name(variant))}**'s tokenizer, so there is no draft for this model "
                "here. Choose **Ours (Shakespeare)** in the sidebar to step through speculative decoding.",
                icon=":material/info:")
    elif tab_spec.open:
        # Any other variant with weights can draft (the same tokenizer); one a link names is kept, so its page
        # says why it cannot be used. Defined but untrained variants are not offered, as in the sidebar.
        others = [v for v in VARIANTS if v != variant]
        url_choice("dec_draft", others, "draft" if "draft" in others else others[0])
        drafts = [v for v in others if is_trained(v) or v == st.session_state.dec_draft]
        url_int("dec_k", 4, 1, 8)
        url_choice("dec_t", TEMPERATURES, 0.0)
        url_int("dec_seed", 0, 0, 2**31 - 1)
        url_int("dec_n", 32, 4, 64)
        c = st.columns([3, 2, 3, 2, 2])
        c[0].selectbox("Draft model", drafts, key="dec_draft",
                       help="Any variant with the same tokenizer can draft; “draft” is the small one trained for it.")
        c[1].select_slider("K", list(range(1, 9)), key="dec_k", help="Draft tokens per round.")
        c[2].select_slider("Temperature", TEMPERATURES, key="dec_t",
                           help="For both models. 0 = greedy: the output is exactly the model's own greedy text.")
        c[3].number_input("Seed", 0, 2**31 - 1, key="dec_seed")
        c[4].slider("Tokens", 4, 64, key="dec_n")
        sync_url("dec_draft", "dec_k", "dec_t", "dec_seed", "dec_n")
        draft = st.session_state.dec_draft
        problem = checkpoint_problem(draft)
        if problem:
            model_error(draft, problem)
        else:
            dcfg = variant_config(draft)
            s_ = st.session_state
            k, T, seed, n = int(s_.dec_k), float(s_.dec_t), int(s_.dec_seed), int(s_.dec_n)
            n_t = sum(p.numel() for p in model.parameters())
            n_d = sum(p.numel() for p in load_model(draft).parameters())
            moe = (f" ({acc.active_params(arch_from_model_config(cfg)).total:,} used per token: {cfg.experts_per_token} "
                   f"of its {cfg.n_experts} experts)" if cfg.n_experts else "")
            st.caption(f"Target **{plain_md(variant)}**: {cfg.n_layers} layers × d {cfg.d_model}, {n_t:,} parameters{moe}. "
                       f"Draft **{plain_md(draft)}**: {dcfg.n_layers} layers × d {dcfg.d_model}, {n_d:,} parameters "
                       f"({n_d / n_t:.0%} of the target's).")
            spec, plain = run_speculative(variant, draft, ids, k, T, seed, n)
            if not spec.rounds:
                st.info("Nothing to generate: the context is full.", icon=":material/block:")
                st.stop()
            view = stepper("spec_view", len(spec.rounds), (variant, draft, ids, k, T, seed, n), "round")
            rd = spec.rounds[view]
            shown = spec.rounds[: view + 1]
            data = [dict(labels=[token_label(x.token) for x in r_.proposals],
                         verdicts=[x.verdict for x in r_.proposals],
                         q=[x.q for x in r_.proposals], p=[x.p for x in r_.proposals],
                         extra_label=token_label(r_.extra), extra_kind=r_.extra_kind, extra_p=r_.extra_p)
                    for r_ in shown]
            st.subheader("Rounds: the draft's guesses and the target's verdicts", anchor=False)
            st.plotly_chart(rounds_figure(data, view, k), key="spec_rounds", config=PLOT_CONFIG)
            emitted_so_far = rd.start + len(rd.emitted)
            acc_so_far = sum(r_.n_accepted for r_ in shown)
            prop_so_far = sum(len(r_.proposals) for r_ in shown)
            st.caption(f"After {view + 1} round{'s' if view else ''}: {emitted_so_far} tokens from {view + 1} target "
                       f"forward{'s' if view else ''} ({emitted_so_far / (view + 1):.2f} per forward; plain decoding "
                       f"makes 1), {acc_so_far} of {prop_so_far} guesses accepted.")

            st.subheader(f"Round {view + 1}", anchor=False)
            left, right = st.columns([3, 2], gap="large")
            with left:
                if rd.proposals:
                    g = spec.sampler.greedy
                    pr = rd.proposals
                    st.plotly_chart(verdict_figure([token_label(x.token) for x in pr],
                                                   [x.q_model if g else x.q for x in pr],
                                                   [x.p_model if g else x.p for x in pr],
                                                   [x.accept_prob for x in pr], [x.u for x in pr],
                                                   [x.verdict for x in pr], greedy=g),
                                    key="spec_verdict", config=PLOT_CONFIG)
                else:
                    st.info("No guesses this round (the last token asked for): one plain target step.",
                            icon=":material/info:")
            with right:
                said = []
                for i, x in enumerate(rd.proposals):
                    if x.verdict == "not checked":
                        continue
                    test = (f"u = {x.u:.3f} {'<' if x.verdict == 'accepted' else '≥'} {x.accept_prob:.3f}"
                            if x.u is not None else ("the target's argmax too" if x.verdict == "accepted" else
                                                     "not the target's argmax"))
                    probs = (f"softmax: draft {x.q_model:.3f}, target {x.p_model:.3f}" if x.u is None else
                             f"q {x.q:.3f}, p {x.p:.3f}, min(1, p/q) = {x.accept_prob:.3f}")
                    said.append(f"Guess {i + 1}, “{plain_md(token_label(x.token))}”: {probs}; {test} → **{x.verdict}**")
                unchecked = sum(x.verdict == "not checked" for x in rd.proposals)
                if unchecked:
                    said.append(f"{unchecked} later guess{'es' if unchecked > 1 else ''} not checked: "
                                f"{'they' if unchecked > 1 else 'it'} followed a rejected token.")
                if rd.extra_kind == "resampled":
                    said.append(f"Then the target's own token “{plain_md(token_label(rd.extra))}” "
                                f"(p {rd.extra_p:.3f}), "
                                f"drawn from the residual max(0, p − q), renormalised (its mass was "
                                f"{rd.residual_mass:.3f})." if not spec.sampler.greedy else
                                f"Then the target's own choice “{plain_md(token_label(rd.extra))}”: its argmax "
                                f"(softmax {rd.extra_p_model:.3f}).")
                else:
                    p_txt = f"softmax {rd.extra_p_model:.3f}" if spec.sampler.greedy else f"p {rd.extra_p:.3f}"
                    said.append(f"Every guess accepted: the target's last distribution gives a bonus token, "
                                f"“{plain_md(token_label(rd.extra))}” ({p_txt}).")
                st.markdown("\n".join(f"- {s}" for s in said))
                t0, t1, t2 = rd.target_len
                d0, d1, d2 = rd.draft_len
                st.markdown(f"**Caches.** Target: {t0} → {t1} positions (one forward scored the pending token and "
                            f"{len(rd.proposals)} guess{'es' if len(rd.proposals) != 1 else ''}) → cut back to "
                            f"**{t2}**. Draft: {d0} → {d1} ({rd.draft_forwards} forward"
                            f"{'s' if rd.draft_forwards != 1 else ''}) → **{d2}**. Each holds every kept token but "
                            f"the newest, which the next round feeds.")
            with st.expander("The text so far", icon=":material/notes:"):
                st.code(decode(list(ids)) + decode(spec.generated_ids[:emitted_so_far]), language=None,
                        wrap_lines=True)
            if spec.sampler.greedy:
                same = spec.generated_ids == plain
                st.success(f"Temperature 0: all {len(spec.generated_ids)} tokens are identical to the target's own "
                           "greedy output." if same else
                           "Temperature 0, yet the tokens differ from the target's greedy output: near-tied logits "
                           "rounded differently in the batched forward.",
                           icon=":material/check_circle:" if same else ":material/warning:")
            else:
                same_n = sum(a == b for a, b in zip(spec.generated_ids, plain))
                st.info(f"Temperature {T:g}: plain sampling with the same seed agrees on {same_n} of "
                        f"{len(plain)} positions — the random numbers are used differently — but the distribution of "
                        "what comes out is the target's own (tests/test_decoding.py checks it by counting seeded runs).",
                        icon=":material/casino:")

            # --- acceptance and speed -------------------------------------------------------------------------
            st.subheader("Acceptance and tokens per target forward, as K and the temperature change", anchor=False)
            sw = sweep(variant, draft, ids)
            st.plotly_chart(cached_figure(acceptance_figure, sw), key="spec_sweep", config=PLOT_CONFIG)
            st.caption(acceptance_caption(sw, list(SWEEP_KS), list(SWEEP_TS), SWEEP_N, 4))

            st.subheader("Wall-clock speed on this CPU", anchor=False)
            st.markdown(f"**Ideal** (Leviathan et al.): tokens per target forward ÷ (1 + K·c), c = the draft's FLOPs "
                        f"per step ÷ the target's — costs in proportion to FLOPs, and scoring K + 1 tokens as cheap as "
                        f"one step. **Predicted**: the same bookkeeping with this CPU's measured costs of one draft "
                        f"step, one target step and one target forward of K + 1 tokens. **Measured**: plain "
                        f"decoding's time ÷ speculative decoding's, {SWEEP_N} tokens each at temperature {T:g}, "
                        f"median of {SPEED_REPEATS} runs.")
            if st.button("Measure now", key="spec_measure", icon=":material/timer:",
                         help=f"Times plain and speculative decoding for K = {', '.join(map(str, SPEED_KS))}: a few "
                              "seconds of CPU. Cached afterwards."):
                st.session_state.spec_measured = True
            if st.session_state.get("spec_measured"):
                sp = speed(variant, draft, ids, T)
                rows_k = sp["by_k"]
                st.plotly_chart(speedup_figure([r_["k"] for r_ in rows_k], [r_["ideal_speedup"] for r_ in rows_k],
                                               [r_["predicted_speedup"] for r_ in rows_k],
                                               [r_["measured_speedup"] for r_ in rows_k]),
                                key="spec_speed", config=PLOT_CONFIG)
                st.caption(speed_caption(sp, SPEED_KS[-1]))
            download_json({"variant": variant, "draft": draft, "prompt_ids": list(ids), "k": k, "temperature": T,
                           "seed": seed, **spec.stats(), "generated_ids": spec.generated_ids,
                           "rounds": [{"proposals": [vars(x) for x in r_.proposals], "extra": r_.extra,
                                       "extra_kind": r_.extra_kind, "target_len": r_.target_len,
                                       "draft_len": r_.draft_len} for r_ in spec.rounds],
                           "sweep": sw}, "speculative_decoding.json", "Download the rounds (JSON)")
