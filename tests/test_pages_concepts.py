"""The four concept pages (tokenization, embeddings, attention, logit lens) run in AppTest: every variant,
hostile prompts, the interactions a teacher uses — and the charts' data is checked, not just drawn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app_shared import PAGES
from model.net.checkpoints import VARIANTS, available_variants, variant_config
from model.text.tokenizer import EOT_ID, bytes_label, cl100k, encode, token_label
from viz.tokens import plotly_text
from app_support import arr, charts, open_page as open_app_page

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
HTML = "<img src=x onerror=alert(1)>"
HOSTILE = {
    "empty": "",
    "whitespace": "   \n\t  \n",
    "html": HTML,
    "special": "Hello<|endoftext|>world",
    "long": "To be, or not to be, that is the question. " * 470,  # ~20,000 characters
    "scripts": "Ça va? 日本語 and emoji 😀👍🏽 — مرحبا Привет\u200b",
}


def page_file(stem: str) -> str:
    """The page's path as the app lists it (app_shared.PAGES), so a moved folder needs no edit here."""
    for entry in PAGES:
        if Path(entry[0]).stem == stem:
            return entry[0]
    raise AssertionError(f"the app lists no page {stem!r}")


def open_page(stem: str, prompt: str | None = None, variant: str | None = None, query: dict | None = None) -> AppTest:
    return open_app_page(page_file(stem), prompt, variant, query, timeout=60, home_first=True)


def texts(at: AppTest) -> str:
    """Every markdown, caption, info and warning on the page, joined."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts)


CONCEPT_PAGES = ["tokenization", "embeddings", "attention", "logit_lens"]


# ---- every page, every variant -----------------------------------------------------------------------


@pytest.mark.slow  # every page on every variant
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_model_pages_run_on_every_variant(variant, shipped_variants):
    cfg = variant_config(variant)  # the seven shipped are asserted committed; an unshipped one must say so
    for stem in ["embeddings", "attention", "logit_lens"]:
        at = open_page(stem, variant=variant)
        c = charts(at)
        if variant not in available_variants():  # e.g. one still training: a clear error, no stand-in weights
            assert not c and any(variant in e.value and "cannot be loaded" in e.value for e in at.error), stem
            continue
        assert c, stem
        if stem == "attention":
            grid = [t for t in c["att_grid"]["data"] if t["type"] == "heatmap" and t["name"] != "mask"]
            assert len(grid) == cfg.n_layers * cfg.n_heads
            assert ("att_kv" in c) == (cfg.n_kv_heads < cfg.n_heads)
        if stem == "embeddings":
            has_table = cfg.pos_encoding in ("sinusoidal", "learned")
            assert ("emb_pos_table" in c) == has_table and ("emb_pos_sim" in c) == has_table
            if has_table:
                P = arr(c["emb_pos_table"]["data"][0]["z"])
                S = arr(c["emb_pos_sim"]["data"][0]["z"])
                assert P.shape == (cfg.max_seq_len, cfg.d_model) and S.shape == (cfg.max_seq_len,) * 2
                np.testing.assert_allclose(np.diag(S), 1.0, atol=1e-5)
            else:
                assert cfg.pos_encoding.upper() in texts(at).upper().replace("NO POSITIONAL", "NONE")
                links = [e.proto.page for e in at.get("page_link")]
                expected = "attention" if cfg.pos_encoding == "alibi" else "rope"
                if (REPO / page_file("rope")).exists() or expected == "attention":
                    assert expected in links  # "where position enters instead" links to that page


@pytest.mark.slow  # five prompts through every concept page; test_hostile's shared path stays fast
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_prompts(name):
    prompt = HOSTILE[name]
    for stem in CONCEPT_PAGES:
        at = open_page(stem, prompt=prompt)
        if not encode(prompt):
            assert "Type a prompt" in texts(at) and not charts(at)
            continue
        assert charts(at), stem
        if name == "long" and stem != "tokenization":
            assert "Only the first" in texts(at)
        for spec in charts(at).values():
            assert "<img" not in json.dumps(spec)  # every label escaped


# ---- tokenization -----------------------------------------------------------------------------------


def test_tokenization_boxes_match_both_encoders():
    prompt = "But soft, what light through yonder window breaks? 😀 日本"
    at = open_page("tokenization", prompt=prompt)
    c = charts(at)
    ours = [token_label(i) for i in encode(prompt)]
    gpt4 = [bytes_label(cl100k().decode_single_token_bytes(i)) for i in cl100k().encode_ordinary(prompt)]
    assert c["tok_boxes_ours"]["data"][0]["text"] == [plotly_text(t) for t in ours]
    assert c["tok_boxes_cl100k"]["data"][0]["text"] == [plotly_text(t) for t in gpt4]
    assert "<0xF0>" in ours  # our vocabulary splits the emoji into bytes, shown honestly
    metrics = [m.value for m in at.metric]
    assert metrics[0] == str(len(ours)) and metrics[2] == str(len(gpt4))


def test_merge_replay_ends_in_the_encoders_tokens():
    at = open_page("tokenization", prompt="But soft, what light through yonder window breaks?")
    assert at.selectbox(key="tok_word").value == " through"  # default: the longest piece
    for word in [" yonder", " window", "But"]:
        at.selectbox(key="tok_word").set_value(word).run()
        assert not at.exception
        bar = charts(at)["tok_replay"]["data"][0]
        rows = np.array(bar["y"])
        last = [t for t, r in zip(bar["text"], rows) if r == rows.max()]
        assert last == [plotly_text(token_label(i)) for i in encode(word)]
        first = [t for t, r in zip(bar["text"], rows) if r == 0]
        assert len(first) == len(word.encode("utf-8"))  # it starts from the bytes
        assert at.query_params["tok_word"] == [word] or at.query_params["tok_word"] == word


def test_replay_word_comes_from_the_url():
    at = open_page("tokenization", prompt="It is the east, and Juliet is the sun.", query={"tok_word": " Juliet"})
    assert at.selectbox(key="tok_word").value == " Juliet"
    at = open_page("tokenization", prompt="It is the east.", query={"tok_word": "not in the prompt"})
    assert at.selectbox(key="tok_word").value in {" east", " the", "It", " is"}  # falls back, no error


def test_special_token_lookalike_is_plain_text():
    at = open_page("tokenization", prompt="<|endoftext|>")
    ids = encode("<|endoftext|>")
    assert EOT_ID not in ids and len(ids) > 1
    drawn = charts(at)["tok_boxes_ours"]["data"][0]["text"]
    assert drawn == [plotly_text(token_label(i)) for i in ids]
    assert any("ordinary tokens" in str(i.value) for i in at.info)


# ---- embeddings -------------------------------------------------------------------------------------


def test_embeddings_data():
    prompt = "It is the east, and Juliet is the sun."
    ids = encode(prompt)
    at = open_page("embeddings", prompt=prompt)
    c = charts(at)
    cfg = variant_config("gqa-rope")
    assert arr(c["emb_heatmap"]["data"][0]["z"]).shape == (len(ids), cfg.d_model)
    vocab, marked, ring = c["emb_map"]["data"]
    from model.text.batches import never_trained

    n_never = int(never_trained(cfg.vocab_size).sum())  # counted from the corpus, independently of the page
    assert n_never > 0
    assert len(arr(vocab["x"])) == cfg.vocab_size - n_never  # never-trained tokens are left out by default
    assert len(arr(marked["x"])) == len(set(ids))
    at.toggle(key="emb_untrained").set_value(True).run()
    assert not at.exception
    assert sum(len(arr(t["x"])) for t in charts(at)["emb_map"]["data"]
               if t.get("name") not in (marked.get("name"), ring.get("name"))) == cfg.vocab_size
    at.selectbox(key="emb_pos").set_value(3).run()
    assert not at.exception
    nn = at.dataframe[0].value
    assert int(nn["id"].iloc[0]) == ids[3] and nn["cosine"].iloc[0] == pytest.approx(1.0)
    assert at.query_params["emb_pos"] in (["3"], "3")


# ---- attention --------------------------------------------------------------------------------------


def test_attention_grid_zoom_and_roles():
    prompt = "ROMEO.\nBut soft, what light through yonder window breaks?"
    T = len(encode(prompt))
    at = open_page("attention", prompt=prompt)
    cfg = variant_config("gqa-rope")
    c = charts(at)
    grid = [t for t in c["att_grid"]["data"] if t["type"] == "heatmap" and t["name"] != "mask"]
    assert len(grid) == cfg.n_layers * cfg.n_heads
    for t in grid:
        z = arr(t["z"])
        assert z.shape == (T, T)
        np.testing.assert_allclose(np.nansum(z, axis=1), 1.0, rtol=1e-4)
        assert np.isnan(z[np.triu_indices(T, 1)]).all()  # the causal mask, drawn as grey

    at.selectbox(key="att_layer").set_value(2).run()
    at.selectbox(key="att_head").set_value(4).run()
    assert not at.exception
    zoom = charts(at)["att_zoom"]
    assert "layer 2, head 4" in zoom["layout"]["title"]["text"]
    scores, pattern = (arr(t["z"]) for t in zoom["data"] if t["name"] in ("scores", "pattern"))
    np.testing.assert_allclose(np.nansum(pattern, axis=1), 1.0, rtol=1e-4)
    # softmax of the drawn scores is the drawn pattern
    e = np.exp(np.nan_to_num(scores - np.nanmax(scores, axis=1, keepdims=True), nan=-np.inf))
    np.testing.assert_allclose(e / e.sum(1, keepdims=True), np.nan_to_num(pattern), atol=1e-4)
    assert at.query_params["att_layer"] in (["2"], "2") and at.query_params["att_head"] in (["4"], "4")

    at.selectbox(key="att_role").set_value("induction").run()
    at.toggle(key="att_sort").set_value(True).run()
    assert not at.exception
    titles = [a["text"] for a in charts(at)["att_grid"]["layout"]["annotations"]]
    for l in range(cfg.n_layers):
        row = [float(t.split("·")[1]) for t in titles[l * cfg.n_heads:(l + 1) * cfg.n_heads]]
        assert row == sorted(row, reverse=True)


def test_attention_state_from_the_url_and_variant_switch():
    at = open_page("attention", query={"att_layer": "3", "att_head": "5", "att_role": "self"})
    assert at.selectbox(key="att_layer").value == 3 and at.selectbox(key="att_head").value == 5
    assert at.selectbox(key="att_role").value == "self"
    at.session_state["variant"] = "gqa-alibi"  # the typed-widget path: see the last test
    at.run()
    assert not at.exception and "ALiBi" in texts(at)
    at.session_state["variant"] = "mha-rope"
    at.run()
    assert not at.exception and "att_kv" not in charts(at)
    at = open_page("attention", query={"att_layer": "99", "att_head": "-4"})  # out of range: clamped
    assert at.selectbox(key="att_layer").value == 3 and at.selectbox(key="att_head").value == 0


def test_long_prompt_grid_is_capped_and_zoom_is_full():
    at = open_page("attention", prompt=HOSTILE["long"])
    c = charts(at)
    grid = [t for t in c["att_grid"]["data"] if t["name"] != "mask"]
    assert arr(grid[0]["z"]).shape == (48, 48)
    assert arr(c["att_zoom"]["data"][-1]["z"]).shape == (256, 256)


# ---- logit lens -------------------------------------------------------------------------------------


def test_logit_lens_last_row_is_the_models_prediction():
    from app_shared import load_model
    from model.net.trace import forward_logits

    prompt = "It is the east, and Juliet is the sun."
    ids = encode(prompt)
    at = open_page("logit_lens", prompt=prompt)
    c = charts(at)
    top = c["lens_top"]["data"][0]
    cfg = variant_config("gqa-rope")
    assert arr(top["z"]).shape == (cfg.n_layers + 1, len(ids))
    assert top["y"][0] == "embedding" and top["y"][-1] == f"after block {cfg.n_layers - 1}"
    logits = forward_logits(load_model("gqa-rope"), ids)
    expected = [plotly_text(token_label(int(i))) for i in logits.argmax(-1)]
    assert top["text"][-1] == expected
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(arr(top["z"])[-1], p.max(-1), rtol=1e-3)
    nxt = arr(c["lens_next"]["data"][0]["z"])
    np.testing.assert_allclose(nxt[-1, :-1], p[np.arange(len(ids) - 1), ids[1:]], rtol=1e-3)
    assert np.isnan(nxt[:, -1]).all()


def test_logit_lens_window_and_position():
    at = open_page("logit_lens", prompt=HOSTILE["long"])
    at.slider(key="lens_start").set_value(100).run()
    assert not at.exception
    top = charts(at)["lens_top"]["data"][0]
    assert top["x"][0].startswith("100 ") and len(top["x"]) == 24
    at.selectbox(key="lens_pos").set_value(10).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["stage"])[0] == "embedding" and len(table) == variant_config("gqa-rope").n_layers + 1
    assert at.query_params["lens_pos"] in (["10"], "10")


def test_prompt_typed_in_the_sidebar_follows_the_user_to_each_page():
    """The real widget path: type into the sidebar's text area on the home page, then open each page."""
    prompt = "Good night, good night! Parting is such sweet sorrow."
    T = len(encode(prompt))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_area(key="prompt").input(prompt).run()
    assert not at.exception
    for stem, key in [("tokenization", "tok_boxes_ours"), ("embeddings", "emb_heatmap"), ("attention", "att_zoom"),
                      ("logit_lens", "lens_next")]:
        at.switch_page(page_file(stem))
        at.run()
        assert not at.exception, stem
        spec = charts(at)[key]
        z = spec["data"][-1].get("z")
        n = len(spec["data"][0]["text"]) if z is None else arr(z).shape[-1]
        assert n == (T if stem != "embeddings" else variant_config("gqa-rope").d_model), stem
        if stem == "embeddings":
            assert arr(z).shape[0] == T
