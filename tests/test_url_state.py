"""Every view is a link: each page's state comes back from the URL's query parameters in a fresh session.

Per page, a non-default state is put in the URL only (a new AppTest is a new session, as a pasted link is), and
the widgets, session_state and — where cheap — the figures must show it; the page must also write the state back
into the URL. Bad values give the page's notice (never an exception), and what a link carries is never rendered
as markup. The Generation page replays a link's decode steps: the tokens match the session that made the link.
tests/test_browser_url.py does the same through a real browser's address bar.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_shared import DEFAULT_PROMPT
from model.accounting import counts as acc
from model.accounting.hf_configs import PRESETS, preset_arch
from model.text.tokenizer import encode
from app_support import chart

APP = str(Path(__file__).resolve().parent.parent / "app.py")
P = len(encode(DEFAULT_PROMPT))
CONTEXT = 256  # our variants' max_seq_len


def open_link(page: str, query: dict[str, str], timeout: int = 240) -> AppTest:
    """A fresh session opening `page` with these query parameters: what pasting a link does."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def url(at: AppTest) -> dict[str, str]:
    """The URL's query parameters after the run, one value each."""
    return {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def link_notices(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "link" in w.value]


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "warning", "info") for e in at.get(kind))


# (page, the link's query, the session_state it must produce). Values are typed as the widgets hold them.
CASES = [
    ("tokenization", {"tok_word": " yonder"}, {"tok_word": " yonder"}),
    ("embeddings", {"emb_pos": "5"}, {"emb_pos": 5}),
    ("attention", {"att_role": "induction", "att_sort": "True", "att_layer": "2", "att_head": "4"},
     {"att_role": "induction", "att_sort": True, "att_layer": 2, "att_head": 4}),
    ("logit_lens", {"lens_pos": "3"}, {"lens_pos": 3}),
    ("rope", {"rope_layer": "1", "rope_head": "3", "rope_pair": "5", "rope_which": "k", "rope_from": "2",
              "rope_to": "9", "rope_m": "7", "rope_n": "2", "rope_delta": "40"},
     {"rope_layer": 1, "rope_head": 3, "rope_pair": 5, "rope_which": "k", "rope_span": (2, 9), "rope_m": 7,
      "rope_n": 2, "rope_delta": 40}),
    ("inference", {"inf_preset": "Mistral-7B-v0.1", "inf_layer": "1", "inf_head": "2", "inf_bq": "4", "inf_bk": "16",
                   "inf_tile": "3", "inf_tblock": "64"},
     {"inf_preset": "Mistral-7B-v0.1", "inf_layer": 1, "inf_head": 2, "inf_bq": 4, "inf_bk": 16, "inf_tile": 3,
      "inf_tblock": 64}),
    ("inference", {"inf_tab": "KV-cache memory", "inf_step": "5", "inf_nreq": "4", "inf_first": "7", "inf_block": "32",
                   "inf_pstep": "3", "inf_mem": "4.0"},
     {"inf_tab": "KV-cache memory", "inf_step": 5, "inf_nreq": 4, "inf_first": 7, "inf_block": 32, "inf_pstep": 3,
      "inf_mem": 4.0}),
    ("quantization", {"q_tab": "One matrix", "q_layer": "2", "q_matrix": "attn.W_k", "q_bits": "8",
                      "q_scope": "per group", "q_group": "64", "q_row": "7", "q_outlier": "8"},
     {"q_tab": "One matrix", "q_layer": 2, "q_matrix": "attn.W_k", "q_bits": 8, "q_scope": "per group",
      "q_group": 64, "q_row": 7, "q_outlier": 8}),
]


@pytest.mark.parametrize("page,query,state", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_link_reopens_the_view(page, query, state):
    at = open_link(f"pages/{page}.py", query)
    assert not link_notices(at), link_notices(at)
    for k, v in state.items():
        assert at.session_state[k] == v, (k, at.session_state[k], v)
    for k, v in query.items():  # and the page keeps them in its URL (a link copied now is the same link)
        assert url(at).get(k) == v, (k, url(at).get(k), v)


def test_attention_and_rope_figures_follow_the_link():
    at = open_link("pages/attention.py", {"att_layer": "3", "att_head": "1"})
    assert chart(at, "att_zoom")["layout"]["title"]["text"].startswith("layer 3, head 1")
    at = open_link("pages/rope.py", {"rope_m": "7", "rope_n": "2", "rope_delta": "40"})
    labels = [m.label for m in at.metric]
    assert "score at (7, 2)" in labels and "score at (47, 42)" in labels


def test_compare_tab_and_layers_from_the_link():
    at = open_link("pages/compare.py", {"cmp_tab": "Positional encodings", "cmp_layer_attn": "1",
                                        "cmp_layer_pos": "2"})
    assert not link_notices(at)
    assert at.session_state["cmp_tab"] == "Positional encodings" and url(at)["cmp_tab"] == "Positional encodings"
    assert at.selectbox(key="cmp_layer_attn").value == 1 and at.selectbox(key="cmp_layer_pos").value == 2


# --------------------------------------------------------------------------------------------------------
# Generation: a run at step k is a link
# --------------------------------------------------------------------------------------------------------


def test_a_generation_run_is_a_link():
    settings = {"seed": "3", "temperature": "0.5", "top_k": "40", "n_steps": "6"}
    at = open_link("pages/generation.py", settings)
    at.button(key="gen_run").click().run()
    at.button(key="gen_next").click().run()
    assert not at.exception
    made = at.session_state["gen_stepper"]
    assert made.n_steps == 7 and url(at)["gen_steps"] == "7"
    at.select_slider(key="gen_view").set_value(4).run()
    at.segmented_control(key="gen_layer").set_value(2).run()
    link = url(at)
    assert link["gen_view"] == "4" and link["gen_layer"] == "2"

    fresh = open_link("pages/generation.py", link)
    s = fresh.session_state["gen_stepper"]
    assert not link_notices(fresh)
    assert s.n_steps == 7 and s.generated_ids == made.generated_ids  # the same tokens, replayed
    assert s.cache.length == P + 7 and f"cache: {P + 7} positions" in texts(fresh)
    assert fresh.select_slider(key="gen_view").value == 4 and fresh.session_state["gen_layer"] == 2
    assert any(h.value.startswith("Step 4: decode step 4") for h in fresh.subheader)
    cache = chart(fresh, "gen_cache")  # step 4's cache: prompt + 4 positions, from layer 2
    assert len(cache["data"][0]["y"]) == P + 4


def test_generation_link_is_clamped_to_the_context():
    at = open_link("pages/generation.py", {"gen_steps": "100000", "gen_view": "3"})
    room = CONTEXT - P
    assert at.session_state["gen_stepper"].n_steps == room
    assert any("gen\\_steps=100000" in w and str(room) in w for w in link_notices(at))
    assert url(at)["gen_steps"] == str(room) and at.session_state["gen_view"] == 3


@pytest.mark.parametrize("bad", ["abc", "-4", "1e3", "<b>7</b>"])
def test_generation_bad_steps_start_from_the_prompt(bad):
    at = open_link("pages/generation.py", {"gen_steps": bad})
    assert at.session_state["gen_stepper"].n_steps == 0
    notices = link_notices(at)
    assert notices and all("<b>" not in w for w in notices)  # escaped: shown as text, never markup


# --------------------------------------------------------------------------------------------------------
# Decoding: the step and the round shown
# --------------------------------------------------------------------------------------------------------


def test_decoding_steps_from_the_link():
    at = open_link("pages/decoding.py", {"dec_beams": "2", "dec_beam_n": "4", "beam_view": "2"})
    assert at.session_state["beam_view"] == 2 and "**step 3 of" in texts(at)
    assert url(at)["beam_view"] == "2"
    at = open_link("pages/decoding.py", {"dec_tab": "Speculative decoding", "dec_k": "2", "dec_n": "8",
                                         "dec_t": "0.5", "spec_view": "1"})
    assert at.session_state["dec_k"] == 2 and at.session_state["dec_t"] == 0.5
    assert at.session_state["spec_view"] == 1 and "**round 2 of" in texts(at)


# --------------------------------------------------------------------------------------------------------
# Accounting: preset or pasted config, s, b, dtypes, the tab
# --------------------------------------------------------------------------------------------------------


def test_accounting_preset_view_from_the_link():
    q = {"acc_source": "Preset", "acc_preset": "Llama-3-8B", "acc_seq": "1000", "acc_batch": "4",
         "acc_wdtype": "fp16", "acc_kvdtype": "Q8_0", "acc_tab": "Memory", "acc_with": "GPT-2 small,Gemma-2B",
         "acc_percent": "True", "acc_hw": "H100 SXM", "acc_peak": "500", "acc_bw": "2.5"}
    at = open_link("pages/accounting.py", q)
    assert not link_notices(at)
    ss = at.session_state
    assert (ss["acc_source"], ss["acc_preset"], ss["acc_seq"], ss["acc_batch"]) == ("Preset", "Llama-3-8B", 1000, 4)
    assert (ss["acc_wdtype"], ss["acc_kvdtype"], ss["acc_tab"]) == ("fp16", "Q8_0", "Memory")
    assert ss["acc_compare"] == ["GPT-2 small", "Gemma-2B"] and ss["acc_percent"] is True
    assert ss["acc_hw"] == "H100 SXM" and ss["acc_peak_H100 SXM"] == 500.0 and ss["acc_bw_H100 SXM"] == 2.5
    bars = chart_by_index(at, 0)
    assert bars["data"][0]["x"] == ["Llama-3-8B", "GPT-2 small", "Gemma-2B"]
    assert sum(t["y"][0] for t in bars["data"]) == pytest.approx(100)  # shares (%), as the link asked
    kv = acc.kv_cache_bytes(preset_arch("Llama-3-8B"), 1000, 4, "Q8_0")
    assert any(m.value == acc.gib_text(kv) for m in at.metric)  # the Memory tab's cache at s = 1000, b = 4
    assert url(at)["acc_seq"] == "1000" and url(at)["acc_with"] == "GPT-2 small,Gemma-2B"


def chart_by_index(at: AppTest, i: int) -> dict:
    return json.loads(at.get("plotly_chart")[i].proto.spec)


def test_accounting_pasted_config_travels_in_the_link():
    config = json.dumps(PRESETS["Qwen2-0.5B"])
    at = open_link("pages/accounting.py", {"acc_source": "Paste a config.json", "acc_paste": config})
    assert at.text_area(key="acc_paste").value == config and not at.error
    bars = chart_by_index(at, 0)
    assert sum(t["y"][0] for t in bars["data"]) == acc.count_params(preset_arch("Qwen2-0.5B")).total
    assert url(at)["acc_paste"] == config


def test_accounting_long_paste_is_refused_with_a_message():
    long = json.dumps(dict(PRESETS["Qwen2-0.5B"], notes="x" * 9_000))
    at = open_link("pages/accounting.py", {"acc_source": "Paste a config.json", "acc_paste": long})
    assert any("characters; only the first 8,000 are used" in w.value for w in at.warning)
    assert at.error and "cannot be used" in at.error[0].value  # the cut JSON is not JSON: said, no traceback
    # Pasted in the page instead: it is used, and the link says it cannot carry it.
    at.text_area(key="acc_paste").input(long).run()
    assert not at.exception and not at.error
    assert any("too long to carry" in w.value for w in at.warning) and "acc_paste" not in url(at)


# --------------------------------------------------------------------------------------------------------
# Bad values: a notice, the fallback, no exception, nothing rendered as markup
# --------------------------------------------------------------------------------------------------------

BAD = [
    ("attention", {"att_layer": "99", "att_role": "<script>x</script>"}, {"att_layer": 3, "att_role": "previous-token"}),
    ("rope", {"rope_m": "-3", "rope_delta": "abc", "rope_which": "z"}, {"rope_m": 0, "rope_delta": 100, "rope_which": "q"}),
    ("accounting", {"acc_seq": "abc", "acc_tab": "Nope", "acc_wdtype": "fp64", "acc_peak": "nan"},
     {"acc_seq": 256, "acc_wdtype": "bf16", "acc_peak_A100 80GB": 312.0}),
    ("inference", {"inf_tab": "**bold**", "inf_bq": "3"}, {"inf_bq": 8}),
    ("compare", {"cmp_tab": "Nope"}, {"cmp_tab": "Attention variants"}),
]


@pytest.mark.parametrize("page,query,fallback", BAD, ids=[b[0] for b in BAD])
def test_bad_link_values_give_a_notice(page, query, fallback):
    at = open_link(f"pages/{page}.py", query)
    notices = link_notices(at)
    for k in query:  # one notice per bad value, naming it (Markdown-escaped: key_name -> key\_name)
        assert any(k.replace("_", "\\_") in w for w in notices), (k, notices)
    for w in notices:
        assert "<script>" not in w and "**bold**" not in w and "<b>" not in w
    for k, v in fallback.items():
        assert at.session_state[k] == v, (k, at.session_state[k], v)
