"""The Building blocks page (RMSNorm step by step, the residual stream's norm, the gated MLP) and its parts.

Every number the page draws is checked against a route of its own: the residual stream, the norms' outputs and
the MLP's gate / up / product are recomputed here by running the model's modules by hand (no hook point), the
RMSNorm output against the model's own `hook_normalized`, the LayerNorm formula against torch's layer_norm, the
top neurons by an independent argmax. Then the page under AppTest: a link reopens its view, its charts carry those
numbers, a hostile prompt gives a message and no exception, and a Gemma folder (GeGLU) runs.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from app_shared import DEFAULT_PROMPT, PAGES
from model.analysis.blocks import (
    NORMS, activation, firing_positions, layernorm_formula, norm_hooks, residual_norms, residual_stages,
    rmsnorm_steps, top_neurons,
)
from model.net.checkpoints import load_variant
from model.net.trace import run_with_trace
from model.text.tokenizer import encode
from viz import blocks as vb
from app_support import arr, charts, open_page as open_app_page

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
PAGE = "pages/blocks.py"
VARIANT = "gqa-rope"
HTML = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def ref():
    """The default prompt on the default variant: the trace (hooks), and the residual stream and MLP parts
    recomputed by calling the modules by hand, with no hook point involved."""
    model = load_variant(VARIANT)
    ids = encode(DEFAULT_PROMPT)
    tr = run_with_trace(model, ids)
    with torch.no_grad():
        x = model.tok_embed(torch.tensor([ids]))  # (1, T, d); RoPE: no position vector, scale 1
        pos = torch.arange(len(ids))
        stream, mlp = [x[0].numpy()], []
        for b in model.blocks:
            mid = x + b.attn(b.ln1(x), pos)  # (1, T, d)
            h = b.ln2(mid)
            gate, up = b.mlp.W_gate(h), b.mlp.W_up(h)  # (1, T, d_mlp)
            mlp.append(dict(gate=gate[0].numpy(), up=up[0].numpy(), post=(F.silu(gate) * up)[0].numpy(),
                            ln2_in=mid[0].numpy()))
            x = mid + b.mlp.W_down(F.silu(gate) * up)
            stream += [mid[0].numpy(), x[0].numpy()]
    return dict(model=model, ids=ids, tr=tr, stream=np.stack(stream), mlp=mlp)


def trace_by_name(spec: dict, name: str) -> dict:
    return next(t for t in spec["data"] if t.get("name") == name)


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for k in ("title", "header", "markdown", "caption", "info", "warning", "error")
                     for e in at.get(k))


def open_page(prompt: str | None = None, query: dict | None = None, variant: str = VARIANT) -> AppTest:
    return open_app_page(PAGE, prompt, variant, query, timeout=240)


# --------------------------------------------------------------------------------------------------------
# The analysis, fast: against the model's hooks and independent recomputations
# --------------------------------------------------------------------------------------------------------


def test_the_page_is_listed_after_layer_by_layer():
    files = [p[0] for p in PAGES]
    assert files.index(PAGE) == files.index("pages/logit_lens.py") + 1


def test_rmsnorm_steps_equal_the_models_norm_everywhere(ref):
    """Every norm of the model (ln1 and ln2 of each block, ln_final), at every position: the output equals the
    model's own hook_normalized to 1e-5, and rms equals a NumPy recomputation."""
    model, tr = ref["model"], ref["tr"]
    L = model.cfg.n_layers
    for which in NORMS:
        for layer in range(L):
            src, dst, weight = norm_hooks(which, layer, L)
            g = model.get_parameter(weight).detach().numpy()
            for t in range(len(ref["ids"])):
                s = rmsnorm_steps(tr[src][t], g, model.cfg.norm_eps)
                np.testing.assert_allclose(s["out"], tr[dst][t], rtol=0, atol=1e-5)
                x = tr[src][t].astype(np.float64)
                assert s["rms"] == pytest.approx(np.sqrt(np.mean(x ** 2) + 1e-5), rel=1e-12)
                assert s["x_hat_norm"] == pytest.approx(np.linalg.norm(x / s["rms"]), rel=1e-12)
                assert s["out_norm"] == pytest.approx(np.linalg.norm(tr[dst][t]), rel=1e-5)
    # the inputs are the stream recomputed by hand: the hook names point at the right tensors
    assert norm_hooks("attn", 2, L)[0] == "blocks.2.hook_resid_pre"
    np.testing.assert_allclose(tr[norm_hooks("mlp", 2, L)[0]], ref["mlp"][2]["ln2_in"], atol=1e-5)
    np.testing.assert_allclose(tr[norm_hooks("final", 0, L)[0]], ref["stream"][-1], atol=1e-5)


def test_rmsnorm_worked_example_and_layernorm_formula(ref):
    s = rmsnorm_steps(np.array([3.0, 4.0]), np.ones(2), 0.0)
    assert s["rms"] == pytest.approx(np.sqrt(12.5)) and s["x_hat_norm"] == pytest.approx(np.sqrt(2))
    ln = layernorm_formula(np.array([1.0, 3.0]), 0.0)
    assert (ln["mean"], ln["std"]) == (2.0, 1.0) and list(ln["out"]) == [-1.0, 1.0]
    x = ref["tr"]["blocks.1.hook_resid_mid"][5]
    want = F.layer_norm(torch.tensor(x, dtype=torch.float64), (x.shape[0],), eps=1e-5).numpy()
    np.testing.assert_allclose(layernorm_formula(x, 1e-5)["out"], want, atol=1e-10)
    with pytest.raises(ValueError):
        norm_hooks("post", 0, 4)


def test_residual_norms_against_the_stream_recomputed_by_hand(ref):
    model, tr = ref["model"], ref["tr"]
    stages = residual_stages(model.cfg.n_layers)
    assert len(stages) == 2 * model.cfg.n_layers + 1 and stages[0][1] == "embedding"
    res = residual_norms(np.stack([tr[h] for h, _ in stages]))
    want = np.linalg.norm(ref["stream"].astype(np.float64), axis=-1)  # (S, T)
    np.testing.assert_allclose(res["norms"], want, rtol=1e-4)
    med = np.median(want, axis=1)
    np.testing.assert_allclose(res["median"], med, rtol=1e-4)
    assert res["growth"] == pytest.approx(med[-1] / med[0], rel=1e-4)
    assert res["growth"] > 10  # the stream really grows in this model (≈ 60× on this prompt)


def test_the_mlp_product_is_silu_gate_times_up(ref):
    """From the hooks: hook_post == silu(hook_pre) * hook_pre_linear; and the hooks equal the matrices run by hand."""
    tr = ref["tr"]
    for l, hand in enumerate(ref["mlp"]):
        gate, up, post = (tr[f"blocks.{l}.mlp.{h}"] for h in ("hook_pre", "hook_pre_linear", "hook_post"))
        np.testing.assert_allclose(post, activation(gate, "silu") * up, atol=1e-5)
        np.testing.assert_allclose(activation(gate, "silu"), F.silu(torch.tensor(gate)).numpy(), atol=1e-6)
        for name, got in (("gate", gate), ("up", up), ("post", post)):
            np.testing.assert_allclose(got, hand[name], atol=1e-5)
    z = np.linspace(-8, 8, 101)
    np.testing.assert_allclose(activation(z, "gelu_tanh"), F.gelu(torch.tensor(z), approximate="tanh").numpy(),
                               atol=1e-12)


def test_top_neurons_are_the_independent_argmax(ref):
    post = ref["mlp"][1]["post"]  # (T, d_mlp), by hand
    top = top_neurons(ref["tr"]["blocks.1.mlp.hook_post"], 8)
    peak = torch.tensor(post).abs().max(dim=0).values  # (d_mlp,)
    want = torch.topk(peak, 8).indices.numpy()
    assert list(top) == list(want)
    fires = firing_positions(post, top, 3)
    for n, where in zip(top, fires):
        assert list(where) == list(np.argsort(-np.abs(post[:, n]))[:3])
    assert top_neurons(post, 10_000).shape == (post.shape[1],) and top_neurons(post, 0).shape == (0,)


# --------------------------------------------------------------------------------------------------------
# The figures, fast: titled axes, titled colour bars, escaped labels
# --------------------------------------------------------------------------------------------------------


def test_figures_have_titles_and_escape_labels(ref):
    tr = ref["tr"]
    s = rmsnorm_steps(tr["blocks.0.hook_resid_pre"][3], np.ones(192), 1e-5)
    post = tr["blocks.0.mlp.hook_post"]
    top = top_neurons(post, 5)
    labels = [HTML] * post.shape[0]
    figs = [vb.rmsnorm_figure(s["x"], s["x_hat"], s["g"], s["out"]),
            vb.layernorm_figure(s["x_hat"], layernorm_formula(s["x"], 1e-5)["out"]),
            vb.residual_norm_lines(np.ones((3, 4)), np.ones(3), ["a", "b", "c"], 1, HTML),
            vb.residual_norm_heatmap(np.ones((3, 4)), ["a", "b", "c"], labels[:4]),
            vb.swiglu_figure(*(tr[f"blocks.0.mlp.{h}"][0] for h in ("hook_pre", "hook_pre", "hook_pre_linear",
                                                                      "hook_post")), "SiLU"),
            vb.neuron_heatmap(post[:, top], labels, top, "SiLU")]
    for fig in figs:
        spec = fig.to_plotly_json()
        assert "<img" not in json.dumps(spec)
        layout = spec["layout"]
        axes = [k for k in layout if re.fullmatch(r"[xy]axis\d*", k)]
        for letter in "xy":  # at least one titled axis per letter (shared axes carry one title)
            assert any(layout[a].get("title", {}).get("text") for a in axes if a[0] == letter), (letter, layout)
        for t in spec["data"]:
            if t["type"] == "heatmap":
                assert t["colorbar"]["title"]["text"]
    assert figs[2].layout.legend.y >= 1  # the legend above the plot, never over it


def test_sentences_are_computed_from_the_data(ref):
    s = rmsnorm_steps(np.array([3.0, 4.0]), np.array([1.0, 2.0]), 0.0)
    text = vb.rmsnorm_sentence(s)
    assert "**3.536**" in text and f"**{np.linalg.norm(s['out']):.4g}**" in text
    assert "**4.0×**" in vb.growth_sentence(np.array([1.0, 2.0, 4.0]), ["e", "a", "b"], 7)
    z, a = vb.activation_minimum(lambda v: activation(v, "silu"))
    assert z == pytest.approx(-1.2785, abs=1e-3) and a == pytest.approx(-0.2785, abs=1e-3)
    sent = vb.swiglu_sentence(np.array([1.0, -1.0, 2.0]), np.array([0.0, 3.0, 1.0]), "SiLU", (z, a))
    assert "2 of the 3 gate values" in sent and "at neuron 1" in sent and "just 1 neuron(s)" in sent


# --------------------------------------------------------------------------------------------------------
# The page under AppTest
# --------------------------------------------------------------------------------------------------------

LINK = {"blk_norm": "mlp", "blk_layer": "2", "blk_pos": "10", "blk_mlp_layer": "1", "blk_mlp_pos": "5",
        "blk_sort": "True", "blk_topn": "8"}


@pytest.fixture(scope="module")
def linked() -> AppTest:
    """The page opened from a link with a non-default view: what pasting the link in a fresh browser does."""
    return open_page(query=LINK)


@pytest.mark.slow
def test_a_link_reopens_the_view(linked):
    at = linked
    assert not [w.value for w in at.warning if "link" in w.value]
    assert at.selectbox(key="blk_norm").value == "mlp" and at.selectbox(key="blk_layer").value == 2
    assert at.selectbox(key="blk_pos").value == 10 and at.selectbox(key="blk_mlp_layer").value == 1
    assert at.selectbox(key="blk_mlp_pos").value == 5 and at.toggle(key="blk_sort").value is True
    assert at.slider(key="blk_topn").value == 8
    kept = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert all(kept.get(k) == v for k, v in LINK.items()), kept


@pytest.mark.slow
def test_the_rmsnorm_chart_is_the_models_norm(linked, ref):
    spec = charts(linked)["blk_rms"]
    x = arr(trace_by_name(spec, "x")["y"])
    np.testing.assert_allclose(x, ref["mlp"][2]["ln2_in"][10], atol=1e-5)  # the stream, recomputed by hand
    out = arr(trace_by_name(spec, "x / rms · g")["y"])
    np.testing.assert_allclose(out, ref["tr"]["blocks.2.ln2.hook_normalized"][10], rtol=0, atol=1e-5)
    g = arr(trace_by_name(spec, "g")["y"])
    np.testing.assert_allclose(g, ref["model"].blocks[2].ln2.weight.detach().numpy(), atol=1e-7)
    rms = np.sqrt(np.mean(x ** 2) + ref["model"].cfg.norm_eps)
    np.testing.assert_allclose(arr(trace_by_name(spec, "x / rms")["y"]), x / rms, atol=1e-6)
    shown = re.search(r"rms = √\(mean\(x²\) \+ ε\) = \*\*([0-9.e+-]+)\*\*", texts(linked))
    assert shown and float(shown.group(1)) == pytest.approx(rms, rel=1e-3)
    assert f"**{np.linalg.norm(out):.4g}**" in texts(linked)
    ln = arr(trace_by_name(charts(linked)["blk_ln"], "LayerNorm formula: (x − mean) / std")["y"])
    np.testing.assert_allclose(ln, (x - x.mean()) / np.sqrt(x.var() + 1e-5), atol=1e-6)
    assert "not what a trained LayerNorm model would compute" in texts(linked)


@pytest.mark.slow
def test_the_growth_chart_is_the_streams_norm(linked, ref):
    norms = np.linalg.norm(ref["stream"].astype(np.float64), axis=-1)  # (S, T), by hand
    med = np.median(norms, axis=1)
    spec = charts(linked)["blk_growth"]
    np.testing.assert_allclose(arr(trace_by_name(spec, "median over positions")["y"]), med, rtol=1e-4)
    assert trace_by_name(spec, "median over positions")["x"][0] == "embedding"
    heat = charts(linked)["blk_growth_map"]["data"][0]
    np.testing.assert_allclose(arr(heat["z"]), norms, rtol=1e-4)
    assert f"**{med[-1] / med[0]:.1f}×**" in texts(linked)


@pytest.mark.slow
def test_the_swiglu_charts_are_the_mlp(linked, ref):
    hand = ref["mlp"][1]
    spec = charts(linked)["blk_swiglu"]
    product = trace_by_name(spec, "SiLU(gate) · up")
    order = arr(product["customdata"]).astype(int)  # sorted by |product|: the hover names each neuron
    assert list(order) == list(np.argsort(-np.abs(hand["post"][5]), kind="stable"))
    np.testing.assert_allclose(arr(product["y"]), hand["post"][5][order], atol=1e-5)
    np.testing.assert_allclose(arr(trace_by_name(spec, "gate = W_gate x")["y"]), hand["gate"][5][order], atol=1e-5)
    np.testing.assert_allclose(arr(trace_by_name(spec, "up = W_up x")["y"]), hand["up"][5][order], atol=1e-5)
    np.testing.assert_allclose(arr(trace_by_name(spec, "SiLU(gate)")["y"]),
                               F.silu(torch.tensor(hand["gate"][5]))[order].numpy(), atol=1e-5)
    want = torch.topk(torch.tensor(hand["post"]).abs().max(dim=0).values, 8).indices.tolist()  # independent
    heat = charts(linked)["blk_neurons"]["data"][0]
    assert heat["x"] == [f"n{i}" for i in want]
    np.testing.assert_allclose(arr(heat["z"]), hand["post"][:, want], atol=1e-5)
    table = linked.dataframe[0].value
    assert list(table["neuron"]) == want


@pytest.mark.slow
def test_choosing_the_final_norm_and_the_unsorted_strips():
    at = open_page()
    at.selectbox(key="blk_norm").set_value("final").run()
    at.toggle(key="blk_sort").set_value(False).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="blk_layer").disabled
    model = load_variant(VARIANT)
    tr = run_with_trace(model, encode(DEFAULT_PROMPT))
    T = len(tr.ids)
    out = arr(trace_by_name(charts(at)["blk_rms"], "x / rms · g")["y"])
    np.testing.assert_allclose(out, tr["ln_final.hook_normalized"][T - 1], rtol=0, atol=1e-5)
    prod = trace_by_name(charts(at)["blk_swiglu"], "SiLU(gate) · up")
    assert list(arr(prod["customdata"]).astype(int)) == list(range(model.cfg.d_mlp))  # unsorted: neuron order
    np.testing.assert_allclose(arr(prod["y"]), tr["blocks.0.mlp.hook_post"][T - 1], atol=1e-6)
    assert at.query_params["blk_norm"] in ("final", ["final"])


@pytest.mark.slow
@pytest.mark.parametrize("prompt, expect", [("", "Type a prompt"), (HTML, None)], ids=["empty", "html"])
def test_hostile_prompts(prompt, expect):
    at = open_page(prompt=prompt)
    shown = texts(at)
    if expect:
        assert any(expect in str(i.value) for i in at.info) and not at.get("plotly_chart")
    else:
        assert charts(at) and "<img" not in shown.replace("\\<", "")
        for spec in charts(at).values():
            assert "<img" not in json.dumps(spec)


@pytest.mark.slow
def test_bad_link_values_give_a_notice():
    at = open_page(query={"blk_layer": "99", "blk_norm": "<b>x</b>", "blk_topn": "abc"})
    notices = [w.value for w in at.warning if "link" in w.value]
    assert len(notices) == 3 and all("<b>" not in n for n in notices)
    assert at.session_state["blk_layer"] == 3 and at.session_state["blk_norm"] == "attn"


@pytest.mark.slow
def test_a_gemma_folder_runs_with_geglu(tmp_path):
    """Gemma's GeGLU (cfg.mlp_act = gelu_tanh) and its (1 + w) norms: the page names GELU, and its numbers are
    the folder model's own hooks."""
    from test_hf_import import build

    from model.net.hf_import import load_hf_model, load_hf_tokenizer

    build("gemma", tmp_path)
    model, tok = load_hf_model(tmp_path), load_hf_tokenizer(tmp_path)
    assert model.cfg.mlp_act == "gelu_tanh"
    prompt = "the quick brown fox jumps"
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params["model"] = str(tmp_path)
    at.session_state["prompt"] = prompt
    at.switch_page(PAGE).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "GeGLU" in at.title[0].value and "GELU" in texts(at)
    tr = run_with_trace(model, tok.encode(prompt))
    T = len(tr.ids)
    spec = charts(at)["blk_swiglu"]
    gate, up = tr["blocks.0.mlp.hook_pre"][T - 1], tr["blocks.0.mlp.hook_pre_linear"][T - 1]
    want = F.gelu(torch.tensor(gate), approximate="tanh").numpy() * up
    np.testing.assert_allclose(arr(trace_by_name(spec, "GELU(gate) · up")["y"]), want, atol=1e-5)
    np.testing.assert_allclose(arr(trace_by_name(charts(at)["blk_rms"], "x / rms · g")["y"]),
                               tr["blocks.0.ln1.hook_normalized"][T - 1], atol=1e-5)


def test_position_spread_against_a_naive_recount():
    """TV distance from the mean distribution, by loops over positions and tokens; a constant row gives 0."""
    from model.analysis.blocks import position_spread
    from viz.blocks import spread_sentence

    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, (5, 7))
    p = [[math.exp(v) for v in row] for row in z]
    p = [[v / sum(row) for v in row] for row in p]
    mean = [sum(p[t][i] for t in range(5)) / 5 for i in range(7)]
    tv = [0.5 * sum(abs(p[t][i] - mean[i]) for i in range(7)) for t in range(5)]
    s = position_spread(z)
    np.testing.assert_allclose(s["tv"], tv, rtol=1e-12)
    assert s["max"] == pytest.approx(max(tv))
    assert s["entropy"] == pytest.approx(-sum(m * math.log(m) for m in mean))
    flat = position_spread(np.tile(z[0], (4, 1)))
    assert flat["max"] < 1e-12
    text = spread_sentence({"a": s, "b": flat}, 5)
    assert text.index(f"a {max(tv):.2g}") < text.index("b 0")  # largest first
    assert "b: under 0.01 at every position — practically the same guess whatever the context." in text
    assert "a:" not in text


def test_diagnostics_sentence_reads_the_whole_log():
    """Block 0's gradient as a fraction of the last block's over every logged step, the steps where it fell below
    1e-3 and the held-out loss meanwhile — from a log made here, against sums done by hand."""
    from model.analysis.blocks import diagnostics_series
    from viz.blocks import diagnostics_sentence

    tiny = [1e-8, 2e-8, 5e-2, 1e-1]  # block 0's norm per logged step; the last block's is 0.1 throughout
    diag = [{"step": 250 * (i + 1), "resid_rms": [1.0, 1.0],
             "grad_norm": {"total": 0.5, "blocks": [{"attn": t, "mlp": 0.0, "norms": 0.0},
                                                    {"attn": 0.1, "mlp": 0.0, "norms": 0.0}]}}
            for i, t in enumerate(tiny)]
    log = {"diagnostics": diag, "train": {"clip": 1.0},
           "val": [{"step": 250, "loss": 6.55}, {"step": 500, "loss": 6.54}, {"step": 750, "loss": 6.0},
                   {"step": 1000, "loss": 5.5}]}
    s = diagnostics_series(log)
    np.testing.assert_allclose(s["heldout"], [6.55, 6.54, 6.0, 5.5])
    text = diagnostics_sentence("p", s)
    assert "block 0's gradient norm relative to the last block's was lowest at step 250: 1e-07×" in text
    assert "was below 0.001× at 2 of them (the first at step 250, the last at 500)" in text
    assert "the held-out loss at those steps stayed between 6.540 and 6.550 nats/token, and was 5.500 at step 1,000" in text
    healthy = diagnostics_series({**log, "diagnostics": diag[2:]})
    assert "below 0.001×" not in diagnostics_sentence("p", healthy)
