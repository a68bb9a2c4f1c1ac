"""The guided lesson under AppTest: every step opens, reveals an answer, and that answer is what the model computes —
each figure recomputed here from the model's own tensors by a route of its own (torch forward, a fresh KV cache,
brute-force cosine, the HF top-p rule), not by calling the lesson's helpers. Each step's link opens its page
prepared, with no "cannot be used here" notice.

The browser walk through all steps is tests/test_browser_lesson.py.
"""

from __future__ import annotations

import math
from urllib.parse import parse_qsl
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app_shared import DEFAULT_PROMPT, PAGES, plain_md
from model.net.checkpoints import load_variant
from model.net.kv_cache import KVCache
from model.net.positions import apply_rope, rope_inv_freq
from model.net.trace import run_with_trace
from model.text.tokenizer import decode, encode, token_label
from viz import lesson

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
VARIANT = "gqa-rope"
TITLES = {f: t for f, t, _, _ in PAGES}


@pytest.fixture(scope="module")
def ref():
    """Independent reference numbers for the default prompt on the default variant."""
    model = load_variant(VARIANT)
    ids = encode(DEFAULT_PROMPT)
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0, -1].double()  # (V,) a plain forward, no hooks
        cache = KVCache.for_model(model.cfg)
        model(torch.tensor([ids]), cache=cache)
        before = cache.nbytes()
        model(torch.tensor([[ids[-1]]]), cache=cache)
        after = cache.nbytes()
    return dict(model=model, ids=ids, logits=logits, kv_total=before, kv_step=after - before,
                tr=run_with_trace(model, ids))


def open_step(k: int, reveal: bool = True) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["prompt"] = DEFAULT_PROMPT
    at.session_state["variant"] = VARIANT
    at.query_params["step"] = str(k)
    at.switch_page("pages/lesson.py").run()
    assert not at.exception, at.exception
    if reveal:
        at.button(key=f"lesson_reveal_{k}").click().run()
        assert not at.exception, at.exception
    return at


def answer(at: AppTest) -> str:
    for m in at.markdown:
        if str(m.value).startswith("**The model's answer**"):
            return str(m.value)
    raise AssertionError("no answer shown")


def step_link(at: AppTest) -> tuple[str, dict]:
    links = [e for e in at.get("page_link") if e.proto.label.startswith("Open ")]
    assert len(links) == 1
    p = links[0].proto
    return p.page, dict(parse_qsl(p.query_string))


def lab(i: int) -> str:
    return plain_md(token_label(int(i)))


@pytest.mark.slow
def test_every_step_opens_its_page_prepared():
    """Each step's 'Open … set up for this step' link names a page of the menu, and that page opened with the
    link's query runs without an error or a refused-URL notice. The last step's Next is disabled."""
    n = None
    k = 1
    while n is None or k <= n:
        at = open_step(k, reveal=False)
        n = n or int(at.get("progress")[0].proto.text.split(" of ")[1])
        page, query = step_link(at)
        page_file = next(f for f in TITLES if Path(f).stem == page)
        other = AppTest.from_file(APP, default_timeout=120)
        other.session_state["prompt"] = DEFAULT_PROMPT
        other.session_state["variant"] = VARIANT
        for key, value in query.items():
            other.query_params[key] = value
        other.switch_page(page_file).run()
        assert not other.exception, (k, page_file, other.exception)
        notices = " ".join(str(w.value) for w in other.warning)
        assert "cannot be used here" not in notices, (k, query, notices)
        k += 1
    assert n == 10
    last = open_step(n, reveal=False)
    assert last.button(key="lesson_next").disabled and not last.button(key="lesson_prev").disabled


def test_next_and_previous_move_the_step_in_the_url():
    at = open_step(3, reveal=False)
    at.button(key="lesson_next").click().run()
    assert at.query_params["step"] in (["4"], "4") and "4." in at.subheader[0].value
    at.button(key="lesson_prev").click().run()
    at.button(key="lesson_prev").click().run()
    assert at.query_params["step"] in (["2"], "2")


def test_a_bad_step_in_the_link_says_so():
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["prompt"] = DEFAULT_PROMPT
    at.query_params["step"] = "<b>x</b>"
    at.switch_page("pages/lesson.py").run()
    assert not at.exception
    assert any("not a step number" in str(w.value) for w in at.warning)
    assert at.query_params["step"] in (["1"], "1")


def test_tokens_step(ref):
    a = answer(open_step(1))
    word = lesson.replay_pieces(DEFAULT_PROMPT)
    counts = {w: len(encode(w)) for w in word}
    most = max(counts.values())
    ids = next(encode(w) for w in word if counts[w] == most)  # the first piece with the most tokens
    assert decode(ids) in word
    assert f"**{most} tokens**" in a and f"ids {', '.join(map(str, ids))}" in a
    assert f"**{len(ref['ids'])} tokens**" in a


def test_embedding_step(ref):
    a = answer(open_step(2))
    E = ref["model"].tok_embed.weight.detach().double().numpy()
    at = open_step(2, reveal=False)
    q = next(str(m.value) for m in at.markdown if "Predict" in str(m.value))
    pos = int(q.split("Token ")[1].split(",")[0])
    row = E[ref["ids"][pos]]
    cos = E @ row / (np.linalg.norm(E, axis=1) * np.linalg.norm(row))
    cos[ref["ids"][pos]] = -np.inf
    best = int(np.argmax(cos))
    assert f"**{E.shape[1]} numbers**" in a and f"(id {best}), cosine similarity {cos[best]:.3f}" in a


def test_attention_step(ref):
    a = answer(open_step(3))
    at = open_step(3, reveal=False)
    _, query = step_link(at)
    layer, head = int(query["att_layer"]), int(query["att_head"])
    cfg = ref["model"].cfg
    tr = ref["tr"]
    q = tr[f"blocks.{layer}.attn.hook_rot_q"][-1, head]  # (hd,) the last query, rotated
    k = tr[f"blocks.{layer}.attn.hook_rot_k"][:, head // cfg.group_size]  # (T, hd) its K/V head's keys
    s = k.astype(np.float64) @ q / math.sqrt(cfg.head_dim)
    w = np.exp(s - s.max())
    w /= w.sum()
    key = int(np.argmax(w))
    assert f"Key **{key}, `{lab(ref['ids'][key])}`**" in a and f"weight **{w[key]:.2f}**" in a
    # and it is the strongest previous-token head: mean weight on the token just before, over positions 1…T-1
    scores = []
    for l in range(cfg.n_layers):
        P = tr[f"blocks.{l}.attn.hook_pattern"]  # (H, T, T)
        scores.append([float(np.mean(np.diagonal(P[h], offset=-1))) for h in range(cfg.n_heads)])
    assert (layer, head) == tuple(int(i) for i in np.unravel_index(np.argmax(scores), (cfg.n_layers, cfg.n_heads)))


def test_lens_step(ref):
    a = answer(open_step(4))
    at = open_step(4, reveal=False)
    _, query = step_link(at)
    pos = int(query["lens_pos"])
    model = ref["model"]
    tr = ref["tr"]
    L = model.cfg.n_layers
    with torch.no_grad():
        tops = []
        for name in ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(L)]:
            x = torch.as_tensor(tr[name][pos]).float()
            tops.append(int((model.ln_final(x) @ model.W_U.T).argmax()))  # the model's own final norm and unembedding
    nxt = ref["ids"][pos + 1]
    assert tops[-1] == nxt  # the step picks a position the model finally gets right
    first = tops.index(nxt)
    assert f"the real next token is **`{lab(nxt)}`**" in " ".join(str(m.value) for m in at.markdown)
    assert "first becomes the top guess" in a
    # no other position the model gets right forms its guess later
    assert ", ".join(f"`{lab(t)}`" for t in tops[:first]) in a


def test_greedy_and_temperature_steps(ref):
    p = torch.softmax(ref["logits"], -1).numpy()
    top = int(np.argmax(p))
    a = answer(open_step(5))
    assert a.split("\n\n", 1)[1].startswith(f"**`{lab(top)}`** with probability **{p[top]:.3f}**")
    hot = torch.softmax(ref["logits"] / lesson.HOT_T, -1).numpy()
    h1, h2 = (float(-(x * np.log2(np.clip(x, 1e-300, None))).sum()) for x in (p, hot))

    def kept(probs):  # transformers' TopPLogitsWarper: drop the ascending-sorted tokens whose cumsum ≤ 1 − top_p
        s = np.sort(probs)
        return int((np.cumsum(s) > 1 - lesson.NUCLEUS).sum())

    a = answer(open_step(6))
    assert f"from **{p[top]:.3f}** to **{hot[top]:.3f}**" in a and f"**{h1:.2f} to {h2:.2f} bits**" in a
    assert f"keeps **{kept(hot):,} tokens instead of {kept(p):,}**" in a and kept(hot) > kept(p)


def test_kv_step(ref):
    a = answer(open_step(7))
    cfg = ref["model"].cfg
    assert f"**{ref['kv_total']:,} bytes** (fp32)" in a and f"adds **{ref['kv_step']:,} bytes**" in a
    assert f"would add {ref['kv_step'] * cfg.n_heads // cfg.n_kv_heads:,}" in a


def test_rope_step(ref):
    a = answer(open_step(8))
    at = open_step(8, reveal=False)
    _, query = step_link(at)
    layer, head, m, n = (int(query[k]) for k in ("rope_layer", "rope_head", "rope_m", "rope_n"))
    cfg = ref["model"].cfg
    tr = ref["tr"]
    q = torch.as_tensor(tr[f"blocks.{layer}.attn.hook_q"][m, head]).double()
    k = torch.as_tensor(tr[f"blocks.{layer}.attn.hook_k"][n, head // cfg.group_size]).double()

    inv = rope_inv_freq(cfg.head_dim, cfg.rope_theta).double()  # (hd/2,)

    def score(mm, nn):  # the model's own rotation (its pairing), with the angles m·θᵢ in float64
        rq = apply_rope(q.view(1, 1, 1, -1), (mm * inv)[None])
        rk = apply_rope(k.view(1, 1, 1, -1), (nn * inv)[None])
        return float((rq * rk).sum()) / math.sqrt(cfg.head_dim)

    s0, s1 = score(m, n), score(m + lesson.SHIFT, n + lesson.SHIFT)
    assert abs(s0 - s1) < 1e-9
    assert f"**{s0:.6f}** at ({m}, {n})" in a and f"**{s1:.6f}** at ({m + lesson.SHIFT}, {n + lesson.SHIFT})" in a
    # and the model's own rotated q·k at (m, n) is that score
    rq, rk = tr[f"blocks.{layer}.attn.hook_rot_q"][m, head], tr[f"blocks.{layer}.attn.hook_rot_k"][n, head // cfg.group_size]
    assert float(rq.astype(np.float64) @ rk) / math.sqrt(cfg.head_dim) == pytest.approx(s0, abs=1e-4)


def test_comparison_steps_carry_the_compare_pages_sentences():
    """The two comparison answers are the Compare page's own sentences (which state an order only where its
    interval excludes 0): each line of the answer is on that page."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["prompt"] = DEFAULT_PROMPT
    at.session_state["variant"] = VARIANT
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    page = " ".join(str(e.value) for kind in ("markdown", "caption", "info") for e in at.get(kind))
    for k in (9, 10):
        lines = answer(open_step(k)).split("\n- ")[1:]
        assert lines
        for line in lines:
            assert line.strip() in page, line


def test_home_diagram_names_every_shape_and_defines_every_stage():
    """The home diagram's data: each box's shape names its axes with this prompt's and this model's sizes, every
    box has a plain-language definition on hover, and the page a click opens is one of the menu's."""
    import json

    from model.net.checkpoints import variant_config

    cfg = variant_config(VARIANT)
    T = len(encode(DEFAULT_PROMPT))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["prompt"] = DEFAULT_PROMPT
    at.session_state["variant"] = VARIANT
    at.switch_page("pages/home.py").run()
    assert not at.exception
    fig = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith("-home_path"))
    names, shapes, hits = (next(t for t in fig["data"] if t.get("name") == n) for n in ("stage", "shape", "stage-hit"))
    names = [n.replace("<b>", "").replace("</b>", "") for n in names["text"]]
    shape_of = dict(zip(names, shapes["text"]))
    assert shape_of["Tokens (BPE)"] == f"{T} token ids = {T} positions"
    assert shape_of["Token embedding"] == f"{T} positions × {cfg.d_model} d_model"
    assert shape_of["softmax → attention pattern"] == f"{cfg.n_heads} heads × {T} queries × {T} keys"
    assert shape_of["unembedding → logits"] == f"{T} positions × {cfg.vocab_size:,} vocabulary"
    assert T != cfg.head_dim  # the default prompt's length is not d_head: "32 × 32" would be unreadable
    per_box = len(hits["customdata"]) // len(names)
    hover = hits["hovertext"][::per_box]
    assert len(hover) == len(names) and all(len(h.split("<br>", 1)[1]) > 40 for h in hover)
    text = " ".join(hover)
    for term in ("RMSNorm", "SwiGLU", "residual stream", "logits", f"d_model = {cfg.d_model}"):
        assert term in text, term
    menu = {f for f, _, _, _ in PAGES}
    assert {p for p in hits["customdata"] if p} <= menu and len({p for p in hits["customdata"] if p}) >= 5
