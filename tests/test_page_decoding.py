"""The Decoding page through AppTest: beam search walked step by step (the tree grows one column per click, the
reorder drawn is the search's own, the n-best table appears), speculative decoding walked round by round
(the rounds chart grows, the caches shown are the run's, greedy equals greedy), numbers in captions match
the data, and hostile prompts never raise.

The speculative tab uses the shipped draft when checkpoints/draft is present and another trained variant
(mqa-rope) when it is not: the page works with any draft of the same vocabulary.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_shared import DEFAULT_PROMPT
from model.net.checkpoints import available_variants
from app_support import chart, open_page as open_app_page

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/decoding.py"
DRAFT = "draft" if "draft" in available_variants() else "mqa-rope"
pytestmark = pytest.mark.usefixtures("shipped_variants")  # the checkpoints are committed: missing fails, never skips


def open_page(prompt: str = DEFAULT_PROMPT, query: dict | None = None, tab: str | None = None) -> AppTest:
    return open_app_page(PAGE, prompt, "gqa-rope", query, state={"dec_tab": tab} if tab else None, timeout=180)


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "warning", "info", "success")
                    for e in at.get(kind))


def nodes(spec: dict, name_start: str) -> list:
    return [t for t in spec["data"] if str(t.get("name", "")).startswith(name_start)]


def test_beam_search_step_by_step():
    at = open_page(query={"dec_beams": "3", "dec_beam_n": "8"})
    assert at.session_state["beam_view"] == 0
    assert "the best 6 (2B) form the pool" in texts(at)
    tree = chart(at, "beam_tree")
    assert max(tree["layout"]["xaxis"]["tickvals"]) == 1  # the prompt and step 1
    kept = nodes(tree, "kept")[0]
    assert len(kept["x"]) == 3  # three beams go on
    assert "cache.reorder([0, 0, 0])" in texts(at)  # the prompt's one row, copied into three
    for n in range(1, 4):
        click(at, "beam_view_next")
        assert at.session_state["beam_view"] == n
        tree = chart(at, "beam_tree")
        assert max(tree["layout"]["xaxis"]["tickvals"]) == n + 1
        assert len(nodes(tree, "kept")[0]["x"]) == 3 * (n + 1)
        # The reorder drawn is the one the caption states: new row i <- old row parents[i].
        m = re.search(r"cache\.reorder\(\[([\d, ]+)\]\)", texts(at))
        parents = [int(x) for x in m.group(1).split(",")]
        lines = [t for t in chart(at, "beam_reorder")["data"] if t.get("mode") == "lines"]
        assert [(-t["y"][0], -t["y"][1]) for t in lines] == [(p, i) for i, p in enumerate(parents)]
    click(at, "beam_view_back")
    assert at.session_state["beam_view"] == 2
    click(at, "beam_view_end")
    assert "The search stopped after this step" in texts(at)
    nbest = at.dataframe[0].value
    assert len(nbest) == 3 and list(nbest["score"]) == sorted(nbest["score"], reverse=True)


def test_comparison_caption_is_computed_from_the_table():
    at = open_page(query={"dec_beams": "4"})
    table = at.dataframe[-1].value
    assert list(table["strategy"])[:2] == ["greedy", "beam search, B = 4"]
    g, b = table.iloc[0], table.iloc[1]
    cap = next(c.value for c in at.get("caption") if c.value.startswith("Total log-prob"))
    assert f"beam {b['total log-prob']:.1f} vs greedy {g['total log-prob']:.1f}" in cap
    assert f"greedy {g['repeated 3-grams']:.0%}, beam {b['repeated 3-grams']:.0%}" in cap
    word = "higher" if b["total log-prob"] > g["total log-prob"] else "lower"
    assert f"— {word}" in cap


@pytest.mark.slow  # several speculative rounds through AppTest
def test_speculative_round_by_round():
    at = open_page(tab="Speculative decoding", query={"dec_draft": DRAFT, "dec_k": "3", "dec_t": "0.0",
                                                      "dec_n": "16"})
    spec = at.session_state  # the run itself is cached; the page's numbers are checked against what it draws
    rounds = chart(at, "spec_rounds")
    assert len(rounds["data"][0]["y"]) == 1 and spec["spec_view"] == 0
    assert "tokens are identical to the target's own greedy output" in texts(at)
    for n in (1, 2):
        click(at, "spec_view_next")
        assert len(chart(at, "spec_rounds")["data"][0]["y"]) == n + 1
        m = re.search(r"Target: (\d+) → (\d+) positions .*?cut back to \*\*(\d+)\*\*", texts(at))
        t0, t1, t2 = map(int, m.groups())
        assert t1 - t0 == 4  # the pending token and 3 guesses, scored in one forward
        assert t0 < t2 <= t1
    click(at, "spec_view_end")
    cap = next(c.value for c in at.get("caption") if c.value.startswith("After "))
    made, forwards = map(int, re.search(r"(\d+) tokens from (\d+) target", cap).groups())
    assert made == 16 and forwards == len(chart(at, "spec_rounds")["data"][0]["y"])
    sweep = chart(at, "spec_sweep")
    assert {t["name"] for t in sweep["data"]} >= {"T = 0 (greedy)", "T = 0.5", "T = 1"}


@pytest.mark.slow  # sampled speculative rounds through AppTest
def test_speculative_sampled_shows_the_draws():
    at = open_page(tab="Speculative decoding", query={"dec_draft": DRAFT, "dec_k": "4", "dec_t": "0.8",
                                                      "dec_n": "12"})
    verdict = chart(at, "spec_verdict")
    assert any(t["name"].startswith("u drawn") for t in verdict["data"])
    assert "plain sampling with the same seed agrees on" in texts(at)
    with pytest.raises(KeyError):
        chart(at, "spec_speed")  # timing runs only when asked
    click(at, "spec_measure")
    bars = {t["name"].split(":")[0].split(",")[0]: t for t in chart(at, "spec_speed")["data"]}
    assert set(bars) == {"ideal", "predicted from this CPU's step costs", "measured"}
    measured = [float(v) for v in bars["measured"]["y"]]
    best = max(range(len(measured)), key=measured.__getitem__)
    cap = next(c.value for c in at.get("caption") if c.value.startswith("By FLOPs"))
    assert f"Best measured: {measured[best]:.2f}× at K = {bars['measured']['x'][best]}" in cap


@pytest.mark.slow  # three full page runs, one a 400-word prompt
@pytest.mark.parametrize("prompt", ["x", "<b>bold</b> $x$ :red[no] [a](javascript:alert(1))", "word " * 400])
def test_hostile_prompts_never_raise(prompt):
    at = open_page(prompt, query={"dec_beam_n": "4"})
    if not at.button(key="beam_view_end").disabled:  # a full context leaves one step, nothing to walk
        click(at, "beam_view_end")
    at.session_state["dec_tab"] = "Speculative decoding"
    at.query_params["dec_draft"] = DRAFT
    at.run()
    assert not at.exception, at.exception


# --------------------------------------------------------------------------------------------------------
# Captions: change the numbers, the sentence changes with them
# --------------------------------------------------------------------------------------------------------


def _row(name, rep, lp_tok, n=48):
    return {"strategy": name, "tokens": n, "total log-prob": lp_tok * n, "log-prob per token": lp_tok,
            "repeated 3-grams": rep}


def test_comparison_caption_claims_only_what_the_rows_show():
    from viz.decoding import comparison_caption

    looping = [_row("greedy", 0.6, -1.0), _row("beam search, B = 4", 0.7, -0.9), _row("s0", 0.05, -2.0),
               _row("s1", 0.1, -2.2)]
    cap = comparison_caption(looping)
    assert "beam -43.2 vs greedy -48.0 — higher" in cap and "greedy 60%, beam 70%, sampled 5% and 10%" in cap
    assert "Looping (≥ 30% repeated): greedy, beam search, B = 4" in cap and "more of the loop" in cap
    assert "1.10 nats per token below greedy" in cap and "it does not loop" in cap
    # samples that repeat less than the searches but still loop: no "does not loop"
    cap = comparison_caption([looping[0], looping[1], _row("s0", 0.4, -2.0), _row("s1", 0.45, -2.2)])
    assert "repeated less than both." in cap and "does not loop" not in cap
    # nothing loops: no sentence about loops, no reason to sample drawn from it
    calm = [_row("greedy", 0.1, -1.0), _row("beam search, B = 4", 0.05, -0.9), _row("s0", 0.2, -2.0),
            _row("s1", 0.0, -2.2)]
    cap = comparison_caption(calm)
    assert "None repeats ≥ 30%" in cap and "more of the loop" not in cap and "does not loop" not in cap
    assert cap.endswith("below greedy.")


def test_acceptance_caption_explains_a_fall_only_when_it_falls():
    from viz.decoding import acceptance_caption

    def sweep(rates, tpf):
        return [{"temperature": t, "k": k, "acceptance_rate": rates[(t, k)], "tokens_per_target_forward": tpf[k]}
                for t in (0.0, 1.0) for k in (1, 4, 8)]

    tpf = {1: 1.5, 4: 2.1, 8: 2.1}
    falls = sweep({(0.0, 1): 0.8, (0.0, 4): 0.6, (0.0, 8): 0.4, (1.0, 1): 0.5, (1.0, 4): 0.3, (1.0, 8): 0.2}, tpf)
    cap = acceptance_caption(falls, [1, 4, 8], [0.0, 1.0], 32, 4)
    assert "falls from 80% at K = 1 to 40% at K = 8: every guess" in cap
    assert "highest at K = 4 and 8 (2.10)" in cap and "T = 0 accepts 60%, T = 1 accepts 30%" in cap
    rises = sweep({(0.0, 1): 0.4, (0.0, 4): 0.6, (0.0, 8): 0.7, (1.0, 1): 0.5, (1.0, 4): 0.3, (1.0, 8): 0.2}, tpf)
    cap = acceptance_caption(rises, [1, 4, 8], [0.0, 1.0], 32, 4)
    assert "rises from 40% at K = 1 to 70% at K = 8." in cap and "waste" not in cap


def test_speed_verdict_needs_runs_that_do_not_overlap():
    from viz.decoding import speed_caption

    def sp(plain, spec):
        return {"plain_runs_s": plain, "plain_seconds": sorted(plain)[1], "repeats": 3,
                "draft_over_target_flops": 0.2, "draft_over_target_cpu": 0.6,
                "costs": {"draft_1_cpu_s": 0.003, "target_1_cpu_s": 0.005, "target_7_cpu_s": 0.007},
                "by_k": [{"k": 2, "runs_s": spec, "measured_speedup": sorted(plain)[1] / sorted(spec)[1],
                          "measured_speedup_cpu": 1.0, "ideal_speedup": 1.8, "predicted_speedup": 1.1}]}

    assert "faster than plain decoding here: each of its 3 runs" in speed_caption(sp([1.0, 1.1, 1.2], [0.7, 0.8, 0.9]), 6)
    assert "slower than plain decoding here" in speed_caption(sp([1.0, 1.1, 1.2], [1.3, 1.4, 1.5]), 6)
    # a median ratio of 1.10× whose runs overlap: no verdict
    cap = speed_caption(sp([1.0, 1.1, 1.3], [0.9, 1.0, 1.2]), 6)
    assert "Best measured: 1.10× at K = 2 (median of 3" in cap and "do not say which is faster" in cap
    assert "plain decoding 1.00–1.30 s, speculative 0.90–1.20 s" in cap and "faster than" not in cap
    assert "far more than its FLOPs say" in cap and "the target on 7 tokens at once 7.00 ms" in cap
