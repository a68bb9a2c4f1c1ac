"""Every sentence a concept page (embeddings, attention, RoPE, home, logit lens, tokenization) states about a
number, an order or a comparison is computed from the data it describes. Each test here changes the data and
sees the sentence change; the page tests check the pages show the sentences of the model's own tensors.

Issue 13: "Scaled by 1/√d" (the model divides by √d_head), the sinusoidal variant's √d_model drawn nowhere, a
RoPE pair called "barely moving" while it turns 316°, a learned position table said to favour neighbours while
its similarity is flat, "All four role scores" drawing one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.analysis.geometry import cosine_by_distance, cosine_matrix
from model.analysis.heads import ROLES
from model.analysis.rope import inv_freq
from model.net.config import ModelConfig
from model.net.transformer import Transformer
from viz.attention import role_heatmaps
from viz.embeddings import (embed_scale_sentence, norms_caption, position_similarity_sentence, position_table_sentence,
                            scale_label)
from viz.lens import embedding_row_sentence
from viz.rope import angle_table_sentence, pair_turn_sentence, wavelength_sentence

DISTANCES = [1, 2, 4, 8, 16, 32, 64, 128]


# ---- the embedding scale ---------------------------------------------------------------------------------


def test_token_scale_is_the_models_own():
    """One definition: the config's token_scale is what the Transformer multiplies by (the home diagram reads the
    config alone, without torch)."""
    small = dict(vocab_size=64, d_model=48, n_layers=1, n_heads=2, n_kv_heads=1, d_mlp=64, max_seq_len=16)
    for pe, want in [("sinusoidal", math.sqrt(48)), ("rope", 1.0), ("learned", 1.0), ("alibi", 1.0), ("none", 1.0)]:
        cfg = ModelConfig(pos_encoding=pe, **small)
        assert cfg.token_scale == pytest.approx(want) and Transformer(cfg).embed_scale == cfg.token_scale
    gemma_like = ModelConfig(pos_encoding="rope", embed_scale=7.0, **small)
    assert gemma_like.token_scale == 7.0 == Transformer(gemma_like).embed_scale


def test_scale_sentences_follow_the_numbers():
    assert scale_label(math.sqrt(192), 192) == "√192 ≈ 13.86" and scale_label(2.5, 192) == "2.5"
    assert embed_scale_sentence(1.0, 192, 1.1) == ""
    s = embed_scale_sentence(math.sqrt(192), 192, 1.0, 9.8)
    assert "√192 ≈ 13.86" in s and "becomes 13.9" in s and "9.80" in s
    assert "becomes 27.7" in embed_scale_sentence(math.sqrt(192), 192, 2.0, 9.8)
    norms = np.array([0.5, 1.0, 1.5])
    plain = norms_caption(norms, 1.09, 2048)
    assert "median 1.00 for this prompt, 1.09 over all 2,048 rows" in plain and "multiplies" not in plain
    assert "median 2.00" in norms_caption(norms * 2, 1.09, 2048)
    assert "√192 ≈ 13.86" in norms_caption(norms, 1.09, 2048, math.sqrt(192), 192, 9.8)


# ---- position tables --------------------------------------------------------------------------------------


def test_cosine_by_distance():
    S = cosine_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    mean, p5, p95 = cosine_by_distance(S, [1, 2, 3])
    np.testing.assert_allclose(mean[:2], [0.0, 1.0], atol=1e-12)
    assert np.isnan(mean[2]) and np.isnan(p5[2]) and np.isnan(p95[2])  # no pair 3 apart in 3 rows


def _sentence(mean, spread=0.0):
    mean = np.asarray(mean, dtype=float)
    return position_similarity_sentence(DISTANCES, mean, mean - spread, mean + spread)


def test_position_similarity_sentence_says_what_the_table_does():
    # the trained gqa-learned table's means: flat to 16, falling after
    learned = [0.59, 0.61, 0.60, 0.58, 0.57, 0.53, 0.43, 0.19]
    s = _sentence(learned, spread=0.5)
    assert "0.59 at distance 1" in s and "0.19 at distance 128" in s
    assert "Up to distance 16" in s and "does not single out the token just before" in s and "5 % are below" in s
    assert "nearby positions get similar vectors" not in s
    # the sinusoidal formula's: highest for neighbours, falling steadily
    sinus = [0.97, 0.90, 0.76, 0.72, 0.62, 0.56, 0.48, 0.36]
    s = _sentence(sinus)
    assert "highest for neighbours and falls" in s and "Up to distance" not in s and "5 %" not in s
    assert "barely depends on distance" in _sentence([0.5] * 8)
    assert "does not fall with distance" in _sentence([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert "not steadily" in _sentence([0.9, 0.5, 0.8, 0.4, 0.7, 0.3, 0.6, 0.2])


def test_position_table_sentence():
    same = np.stack([np.sin(np.arange(4) + m) for m in range(5)] + [np.cos(np.arange(4) + 9)])
    same = same / np.linalg.norm(same, axis=1, keepdims=True) * 3.0
    assert position_table_sentence(same) == "Every row has the same length, 3.00."
    P = np.full((10, 4), 0.1)
    P[0] = 2.0
    s = position_table_sentence(P)
    assert "from 0.20 to 4.00" in s and "position 0 (4.00)" in s and "look faint" in s
    P[0] = 0.15
    assert "look faint" not in position_table_sentence(P)


# ---- RoPE -------------------------------------------------------------------------------------------------


def test_pair_turn_sentence_states_the_angle_swept():
    th = inv_freq(32, 10000.0)
    s = pair_turn_sentence(3, th[3], 32, 256)  # the default prompt: wavelength 35.3, yet 316° across 32 tokens
    assert "one full turn every 35.3 positions" in s and "turns 316°" in s and "2,598° (7.2 turns)" in s
    assert "barely" not in s and "hardly" not in s
    assert "turns 1,776° (4.9 turns)" in pair_turn_sentence(0, th[0], 32, 256)
    assert "repeats itself" in pair_turn_sentence(0, th[0], 32, 256)
    short = pair_turn_sentence(15, th[15], 32, 256)
    assert "0.3°" in short and "hardly tells positions apart" in short
    two = pair_turn_sentence(3, th[3], 2, 256)  # 10.2°: just past "hardly"
    assert "turns 10°" in two and "hardly" not in two
    assert "one position, which does not turn" in pair_turn_sentence(3, th[3], 1, 256)


def test_wavelength_and_angle_table_sentences():
    th = inv_freq(32, 10000.0)
    s = wavelength_sentence(th, 256)
    assert s.startswith("7 of 16 pairs") and "pairs 7–15" in s and "260° (pair 7)" in s and "2.6° (pair 15)" in s
    assert "Only pairs 13–15 turn less than 10°" in s
    longer = wavelength_sentence(th, 4096)
    assert longer.startswith("12 of 16 pairs") and "pairs 12–15" in longer and "less than 10°" not in longer
    assert wavelength_sentence(th, 10**6).endswith("context.")  # every pair turns: nothing more to say
    a = angle_table_sentence(th, 64)
    assert "positions 0 … 63" in a and "pair 0 turns 3,610° (10.0 turns)" in a and "pair 15 turns 0.6°" in a


# ---- attention, lens ----------------------------------------------------------------------------------------


def test_role_heatmaps_draws_every_role():
    rng = np.random.default_rng(0)
    roles = {r: rng.uniform(size=(4, 6)) for r in ROLES}
    roles["induction"][1, 2] = np.nan
    fig = role_heatmaps(roles, kv_of_head=[0, 0, 0, 1, 1, 1])
    assert [t.name for t in fig.data] == list(ROLES)
    for t, r in zip(fig.data, ROLES):
        np.testing.assert_allclose(np.asarray(t.z, dtype=float), roles[r].astype(np.float32), equal_nan=True)
    assert fig.data[3].text[1][2] == "–" and fig.data[0].x[3] == "H3 (kv1)"
    assert [a.text for a in fig.layout.annotations] == list(ROLES)


def test_embedding_row_sentence_counts():
    ids = np.array([5, 6, 7, 8])
    assert "4 of 4 positions" in embedding_row_sentence(ids, ids)
    assert "1 of 4 positions" in embedding_row_sentence(np.array([5, 0, 0, 0]), ids)


# ---- the model backs the embeddings page's sentence on order ----------------------------------------------


def _block0_reads(variant: str, ids: list[int]) -> np.ndarray:
    from model.net.checkpoints import load_variant
    from model.net.trace import run_with_trace

    tr = run_with_trace(load_variant(variant), ids, names=lambda n: n == "blocks.0.hook_attn_out")
    return tr["blocks.0.hook_attn_out"][-1]  # (d,) what the last token's block-0 attention adds


def test_without_a_position_signal_block0_ignores_the_order_of_earlier_tokens(shipped_variants):
    """The embeddings page says: in the first block of a model with no position signal, shuffling the earlier
    tokens does not change what a token reads — and the position vector is what changes that."""
    from model.text.tokenizer import encode

    ids = encode("ROMEO.\nBut soft, what light through yonder window breaks?")
    shuffled = list(np.random.default_rng(0).permutation(ids[:-1])) + ids[-1:]
    assert shuffled != ids
    with torch.no_grad():
        np.testing.assert_allclose(_block0_reads("gqa-none", ids), _block0_reads("gqa-none", shuffled), atol=1e-5)
        a, b = _block0_reads("gqa-learned", ids), _block0_reads("gqa-learned", shuffled)
    assert np.abs(a - b).max() > 1e-2


# ---- the pages show the sentences of the model's own tensors -----------------------------------------------


def test_embeddings_page_sinusoidal_draws_stored_rows_and_states_the_scale(shipped_variants):
    from test_pages_concepts import arr, charts, open_page, texts

    from model.net.checkpoints import load_variant
    from model.text.tokenizer import encode

    at = open_page("embeddings", variant="gqa-sinusoidal", prompt="It is the east")
    t = texts(at)
    assert "√192 ≈ 13.86" in t and "dog bit" not in t and "just before me" not in t
    assert "defined at every position" in t and "256 rows" not in t
    rows = load_variant("gqa-sinusoidal").tok_embed.weight.detach().numpy()[encode("It is the east")]
    c = charts(at)
    np.testing.assert_allclose(arr(c["emb_heatmap"]["data"][0]["z"]), rows, atol=1e-6)  # not × √d_model
    np.testing.assert_allclose(arr(c["emb_norms"]["data"][0]["y"]), np.linalg.norm(rows, axis=1), rtol=1e-5)


def test_embeddings_page_learned_similarity_sentence_is_the_tables(shipped_variants):
    from test_pages_concepts import open_page, texts

    from model.analysis.rope import absolute_position_table
    from model.net.checkpoints import load_variant

    at = open_page("embeddings", variant="gqa-learned", prompt="It is the east")
    mean, _, _ = cosine_by_distance(cosine_matrix(absolute_position_table(load_variant("gqa-learned"))), [1, 32])
    t = texts(at)
    assert f"{mean[0]:.2f} at distance 1" in t and f"{mean[1]:.2f} at distance 32" in t
    assert "Nearby positions get similar vectors" not in t and "256 rows, one per position" in t


def test_attention_page_head_dim_all_roles_and_cut_grid(shipped_variants):
    from test_pages_concepts import HOSTILE, charts, open_page, texts

    from model.net.checkpoints import variant_config

    at = open_page("attention", prompt=HOSTILE["long"])
    t = texts(at)
    hd = variant_config("gqa-rope").head_dim
    assert f"1/√{hd}" in t and f"d_head = {hd}" in t and "measured on all 256" in t and "1/√d)" not in t
    assert [d["name"] for d in charts(at)["att_roles"]["data"]] == list(ROLES)


def test_home_diagram_shows_the_scale_and_head_dim(shipped_variants):
    import json

    from streamlit.testing.v1 import AppTest
    from test_pages_concepts import APP

    from model.net.checkpoints import variant_config

    for variant, scaled in [("gqa-sinusoidal", True), ("gqa-rope", False)]:
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state["variant"] = variant
        at.run()
        assert not at.exception
        stages = " ".join(json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["text"])
        assert ("× √192 ≈ 13.86" in stages) == scaled
        assert f"q·k/√{variant_config(variant).head_dim}" in stages


def test_rope_page_states_degrees_turned_and_the_sinusoidal_scale(shipped_variants):
    from streamlit.testing.v1 import AppTest
    from test_pages_concepts import APP, charts, page_file, texts

    from app_shared import DEFAULT_PROMPT
    from model.net.checkpoints import variant_config
    from model.text.tokenizer import encode

    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["rope_pair"] = "3"
    at.run()
    at.switch_page(page_file("rope")).run()
    assert not at.exception
    cfg = variant_config("gqa-rope")
    th = inv_freq(cfg.head_dim, cfg.rope_theta)
    t = texts(at)
    assert pair_turn_sentence(3, th[3], len(encode(DEFAULT_PROMPT)), cfg.max_seq_len) in t
    assert wavelength_sentence(th, cfg.max_seq_len) in t and "position-free dimensions" not in t
    at.session_state["variant"] = "gqa-sinusoidal"
    at.run()
    assert not at.exception and "√192 ≈ 13.86" in texts(at)
    titles = " ".join(str(s["layout"].get("title", {}).get("text", "")) for s in charts(at).values())
    assert "sinusoidal formula at positions 0–255" in titles


def test_tokenization_page_counts_merges_and_tokens():
    from test_pages_concepts import open_page, texts

    from model.text.tokenizer import cl100k, encode, shipped_ranks

    at = open_page("tokenization", prompt="But soft, what light through yonder window breaks?")
    t = texts(at)
    enc = cl100k()
    assert f"learned {len(shipped_ranks()) - 256:,} merges" in t
    assert f"learned {len(enc._mergeable_ranks) - 256:,} from" in t
    real = len(enc._mergeable_ranks) + len(enc._special_tokens)
    assert real < enc.n_vocab and f"GPT-4's cl100k ({real:,} tokens)" in t  # n_vocab counts unused ids too
    assert f"ids {encode(' through')}, exactly what the real encoder" in t  # the replay checked, not assumed


def test_logit_lens_counts_the_embedding_rows_own_token():
    from test_pages_concepts import open_page, texts

    from app_shared import DEFAULT_PROMPT
    from model.analysis.lens import lens_stages, logit_lens
    from model.net.checkpoints import load_variant
    from model.net.trace import run_with_trace
    from model.text.tokenizer import encode

    model, ids = load_variant("gqa-rope"), encode(DEFAULT_PROMPT)
    name = lens_stages(model.cfg.n_layers)[0][0]
    resid = run_with_trace(model, ids, names=lambda n: n == name)[name]
    logits = logit_lens(resid[None], model.ln_final.weight.detach().numpy(), model.cfg.norm_eps,
                        model.W_U.detach().numpy())[0]
    k = int((logits.argmax(-1) == np.array(ids)).sum())
    at = open_page("logit_lens", prompt=DEFAULT_PROMPT)
    assert f"{k} of {len(ids)} positions" in texts(at)
