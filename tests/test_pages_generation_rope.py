"""The Generation and RoPE pages, driven through AppTest: buttons change this session's stepper as they
should (cache = prompt + steps, Back is exact, seeds repeat), the figures carry the right data, and hostile
prompts never raise."""

from pathlib import Path

import numpy as np
import torch
from streamlit.testing.v1 import AppTest

from app_shared import DEFAULT_PROMPT
from model.text.tokenizer import encode
from app_support import arr, chart, open_page as open_app_page

APP = str(Path(__file__).resolve().parent.parent / "app.py")
P = len(encode(DEFAULT_PROMPT))


def open_page(page: str, prompt: str = DEFAULT_PROMPT, variant: str = "gqa-rope", query: dict | None = None) -> AppTest:
    return open_app_page(page, prompt, variant, query, timeout=60)  # straight to the page: the home page never runs


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "warning", "info") for e in at.get(kind))


# --------------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------------


def test_next_back_run_reset_drive_the_cache():
    at = open_page("pages/generation.py", query={"n_steps": "4"})
    s = at.session_state["gen_stepper"]
    assert s.cache.length == P and f"cache: {P} positions" in texts(at)
    for n in (1, 2, 3):
        click(at, "gen_next")
        assert s.cache.length == P + n and len(s.records) == n + 1
    # The cache heatmap has one row per cached position; the new token's attention covers them all.
    cache = chart(at, "gen_cache")
    assert [arr(t["z"]).shape[0] for t in cache["data"]] == [P + 3, P + 3]
    assert [len(t["y"]) for t in cache["data"]] == [P + 3, P + 3]
    assert len(chart(at, "gen_attn")["data"][0]["x"]) == P + 3
    assert f"cache: {P + 3} positions" in texts(at)

    kept = list(s.records)
    snapshot = s.cache.clone()
    click(at, "gen_next")
    redo = s.records[-1]
    click(at, "gen_back")
    assert s.records == kept and s.cache.length == P + 3
    assert all(torch.equal(a, b) for a, b in zip(s.cache.k + s.cache.v, snapshot.k + snapshot.v))
    click(at, "gen_next")
    assert s.records[-1].token == redo.token  # same seed, same state: the same choice again

    # The cost sentence is this step's own count: not P + 3 times the cached step (a no-cache step needs the
    # logits at the last position only), and it follows the step shown.
    r = s.records[-1]
    info = " ".join(i.value for i in at.info)
    assert f"{r.flops_cached:,} FLOPs" in info and f"{r.flops_recompute / r.flops_cached:,.1f}× more" in info
    assert r.flops_recompute < (P + 3) * r.flops_cached

    click(at, "gen_run")
    assert s.cache.length == P + 8 and len(s.records) == 9
    info = " ".join(i.value for i in at.info)
    assert f"{s.records[-1].flops_recompute / s.records[-1].flops_cached:,.1f}× more" in info
    click(at, "gen_reset")
    assert s.cache.length == P and len(s.records) == 1


def test_seeded_runs_repeat():
    runs = []
    for _ in range(2):
        at = open_page("pages/generation.py", query={"seed": "7", "n_steps": "5", "temperature": "1.0"})
        click(at, "gen_run")
        runs.append(at.session_state["gen_stepper"].generated_ids)
    assert runs[0] == runs[1] and len(runs[0]) == 6


def test_sampling_panel_respects_the_filters_and_redraws_without_the_model():
    at = open_page("pages/generation.py", query={"top_k": "5", "temperature": "1.0"})
    spec = chart(at, "gen_dist")
    bars = [t for t in spec["data"] if t["type"] == "bar"]
    assert len(bars) == 3 and all(arr(b["y"]).sum() <= 1 + 1e-9 for b in bars)
    kept = arr(next(t for t in spec["data"] if t["type"] == "heatmap")["z"])
    assert kept[0].sum() <= 5
    final = arr(bars[2]["y"])
    assert np.all(final[kept[2] == 0] == 0)
    s = at.session_state["gen_stepper"]
    length = s.cache.length
    at.select_slider(key="temperature").set_value(0.0).run()  # greedy: redrawn from the stored logits
    assert not at.exception
    r = s.records[-1]
    assert r.token == int(np.argmax(r.logits)) and s.cache.length == length
    assert any("greedy" in i.value for i in at.info)


def test_history_strip_and_step_view():
    at = open_page("pages/generation.py", query={"n_steps": "3"})
    click(at, "gen_run")
    strip = chart(at, "gen_history")["data"][0]
    assert len(arr(strip["x"])) == 4
    at.select_slider(key="gen_view").set_value(1).run()
    assert not at.exception
    assert [len(t["y"]) for t in chart(at, "gen_cache")["data"]][0] == P + 1  # the cache as it was at step 1
    assert arr(chart(at, "gen_history")["data"][0]["marker"]["line"]["width"])[1] == 3
    at.session_state["prompt"] = "A new prompt"  # a new prompt starts over, wherever the view was
    at.run()
    assert not at.exception, at.exception
    s = at.session_state["gen_stepper"]
    assert len(s.records) == 1 and s.cache.length == len(encode("A new prompt"))


def test_empty_prompt_is_a_message():
    at = open_page("pages/generation.py", prompt="")
    assert any("Type a prompt" in i.value for i in at.info)


def test_prompt_at_the_context_limit_stops_with_a_message():
    at = open_page("pages/generation.py", prompt="word " * 600)
    s = at.session_state["gen_stepper"]
    assert s.cache.length == 256 and "context is full" in s.message
    assert at.button(key="gen_next").disabled
    assert any("context is full" in w.value for w in at.warning)


def test_html_prompt_is_text():
    at = open_page("pages/generation.py", prompt="<script>alert(1)</script><b>bold</b> & <i>x</i>")
    click(at, "gen_next")
    for c in at.get("plotly_chart"):
        assert "<script" not in c.proto.spec and "<i>" not in c.proto.spec


def test_other_variants_generate():
    for variant in ("mqa-rope", "gqa-learned"):
        at = open_page("pages/generation.py", variant=variant)
        click(at, "gen_next")
        assert at.session_state["gen_stepper"].cache.length == P + 1


# --------------------------------------------------------------------------------------------------------
# RoPE
# --------------------------------------------------------------------------------------------------------


def test_rope_relative_position_panel_agrees():
    at = open_page("pages/rope.py", query={"rope_layer": "1", "rope_head": "4", "rope_pair": "2"})
    both = arr(chart(at, "rope_shift")["data"][0]["y"])
    assert np.abs(both - both[0]).max() < 1e-5
    q_only = arr(chart(at, "rope_shift")["data"][1]["y"])
    assert np.abs(q_only - q_only[0]).max() > 1e-3
    arrows = chart(at, "rope_arrows")
    before, after = arrows["data"][0], arrows["data"][1]
    r_before = np.hypot(arr(before["x"]), arr(before["y"]))
    np.testing.assert_allclose(np.hypot(arr(after["x"]), arr(after["y"])), r_before, atol=1e-4)  # rotation keeps lengths
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["difference"]) < 1e-5


def test_rope_page_for_the_other_encodings():
    expected = {"gqa-sinusoidal": "rope_table", "gqa-learned": "rope_table", "gqa-alibi": "rope_alibi"}
    for variant in ("gqa-sinusoidal", "gqa-learned", "gqa-alibi", "gqa-none"):
        at = open_page("pages/rope.py", variant=variant)
        assert "does not use RoPE" in texts(at)
        if variant in expected:
            chart(at, expected[variant])


def test_rope_page_hostile_prompts_in_one_session():
    at = open_page("pages/rope.py", prompt="word " * 600)  # cut to the context
    at.number_input(key="rope_m").set_value(200).run()
    for prompt in ("x", "", "<b>hi</b> & <script>"):  # shorter prompts: the chosen positions follow
        at.session_state["prompt"] = prompt
        at.run()
        assert not at.exception, at.exception
        for c in at.get("plotly_chart"):
            assert "<script" not in c.proto.spec
