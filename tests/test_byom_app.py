"""Bring your own model, the app side: the sidebar's model source (our variants | a folder, typed or picked from
the Hugging Face cache's snapshots, carried in the URL), every page on small random Llama / Qwen2 / Mistral /
Gemma folders saved by transformers (AppTest, every tab), a deep model paged in the attention grid, and every
refusal shown as an error on the page — never a traceback, never another model's weights.

The model-side import (logits and continuations equal to transformers') is tests/test_hf_import.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import app_shared
from app_shared import FOLDER_PREFIX, PAGES, cached_snapshots, folder_key, model_name
from app_support import charts

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
PROMPT = "the quick brown fox <|im_start|> jumps over the lazy dog. ROMEO: what light"
# (query parameter, its values): the pages whose tabs only compute when open
TABS = {"decoding": ("dec_tab", ["Beam search", "Speculative decoding"]),
        "inference": ("inf_tab", ["Tiled attention", "KV-cache memory", "Prefill vs decode"]),
        "quantization": ("q_tab", ["Memory", "One matrix", "Error by layer", "Loss and text", "Speed"])}


def page_file(stem: str) -> str:
    return next(p[0] for p in PAGES if Path(p[0]).stem == stem)


def tiny_tokenizer(vocab_size: int = 280):
    """A byte-level BPE with two special tokens (ids 0 and 1), trained on a few sentences (`tokenizers` only)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([PROMPT.replace("<|im_start|>", "")] * 10, trainer)
    return tok


def exported(folder: Path, tokenizer: bool = True, **cfg) -> Path:
    """A random Llama folder written by our own exporter (no transformers import: fast), with a tokenizer.json."""
    from model.net.config import ModelConfig
    from model.net.transformer import Transformer
    from model.training.export import export_hf

    base = dict(vocab_size=300, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=128, max_seq_len=128)
    export_hf(Transformer(ModelConfig(**{**base, **cfg}), init_seed=1).eval(), folder)
    if tokenizer:
        tiny_tokenizer().save(str(folder / "tokenizer.json"))
    return folder


def open_folder(folder, stem: str = "home", query: dict | None = None, prompt: str = PROMPT) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params["model"] = str(folder)
    at.session_state["prompt"] = prompt
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.switch_page(page_file(stem)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def unmd(text: str) -> str:
    """Markdown escaped by app_shared.plain_md, back to the text: "model\\_type" -> "model_type"."""
    return re.sub(r"\\(.)", r"\1", text)


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "error") for e in at.get(kind))


# --------------------------------------------------------------------------------------------------------
# Folders saved by transformers (the families' own layouts), built once for the module
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory) -> dict[str, Path]:
    from test_hf_import import build  # imports transformers: only the tests that need these folders pay for it

    out = {}
    for family in ("llama", "qwen2", "mistral", "gemma"):
        out[family] = tmp_path_factory.mktemp(family)
        build(family, out[family])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "gemma"])
def test_every_page_and_tab_runs_on_a_folder_model(hf_folders, family):
    """llama: Llama-3.1 RoPE scaling; qwen2: q/k/v biases and a window on layer 1 only; mistral: a window of 4 on
    every layer; gemma: GeGLU, (1 + w) norms, head_dim 32 with d_model 64."""
    folder = hf_folders[family]
    for entry in app_shared.listed_pages():
        stem = Path(entry[0]).stem
        key, tabs = TABS.get(stem, (None, [None]))
        for tab in tabs:
            at = open_folder(folder, stem, {key: tab} if tab else None)
            where = f"{stem} {tab or ''}"
            assert at.title, where
            assert not at.error, (where, [e.value for e in at.error])
            if stem == "compare":  # ours alone: it says so, and goes on with our variants
                assert "not one of them" in texts(at)
            elif stem == "lesson":  # the lesson ends on our variants' comparison: it says where it runs
                assert any("runs on our Shakespeare variants" in str(i.value) for i in at.info), where
            elif (stem, tab) != ("decoding", "Speculative decoding"):
                assert charts(at), where
            assert at.session_state["model_source"] == "folder"
            assert at.query_params["model"] == [str(folder)] or at.query_params["model"] == str(folder)


@pytest.mark.slow
def test_a_folder_model_is_what_the_pages_run(hf_folders):
    """The sidebar, the tokenizer, the trace and the numbers are the folder's: not our variant's."""
    from model.net.hf_import import load_hf_model, load_hf_tokenizer

    folder = hf_folders["llama"]
    tok, model = load_hf_tokenizer(folder), load_hf_model(folder)
    ids = tok.encode(PROMPT)

    at = open_folder(folder, "tokenization")
    assert at.sidebar.radio[0].value == "folder" and at.sidebar.text_input[0].value == str(folder)
    table = at.dataframe[0].value  # the model's tokenizer, beside cl100k
    assert list(table["id"]) == ids and 1 not in ids  # the typed <|im_start|> stays text (ordinary pieces)
    pieces = list(table["piece"])  # the file's own spelling: a space is "Ġ" in a byte-level BPE
    assert pieces == [tok.piece(i) for i in ids] and any(x.startswith("Ġ") for x in pieces)
    assert "".join(table["token"]).startswith("the␣quick")  # the same bytes as the app shows ours
    assert any("ordinary tokens" in str(i.value) and "(id 1)" in str(i.value) for i in at.info)

    at = open_folder(folder, "home")
    top = at.dataframe[0].value  # the next-token guess: the folder model's own softmax
    with torch.no_grad():
        p = torch.softmax(model(torch.tensor([ids]))[0, -1], -1)
    want = torch.topk(p, 5)
    assert list(top["token"]) == [tok.token_label(int(i)) for i in want.indices]
    np.testing.assert_allclose(list(top["probability"]), want.values.numpy(), atol=1e-5)

    at = open_folder(folder, "rope")  # Llama-3.1's rescaled frequencies: the probe's score is the model's own
    own = next(m for m in at.metric if m.label == "the model's own score")
    probe = next(m for m in at.metric if m.label.startswith("score at (") and m.label.count(",") == 1)
    assert abs(float(own.value) - float(probe.value)) < 1e-4
    assert "rescales" in texts(at)


@pytest.mark.slow
def test_batched_decode_matches_the_model_on_imported_windows_and_scaling(hf_folders):
    """The inference page's batched path: Qwen2's window on one layer of two, Llama-3.1's scaled RoPE."""
    from model.inference.batched import SlotCache, decode_step, prefill
    from model.net.hf_import import load_hf_model

    for family in ("qwen2", "llama", "mistral"):
        m = load_hf_model(hf_folders[family])
        prompts = [[5, 6, 7, 8, 9, 10], [11, 12]]
        cache = SlotCache.for_model(m.cfg, 2)
        prefill(m, prompts, cache)
        seqs, toks = [list(p) for p in prompts], torch.tensor([1, 2])
        for _ in range(5):  # past the window of 4
            got = decode_step(m, toks, cache)
            for b in range(2):
                seqs[b].append(int(toks[b]))
                with torch.no_grad():
                    torch.testing.assert_close(got[b], m(torch.tensor([seqs[b]]))[0, -1], atol=1e-4, rtol=0)
            toks = got.argmax(-1)


# --------------------------------------------------------------------------------------------------------
# Many layers and heads: the grids page
# --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_deep_wide_model_pages_its_attention_grid(tmp_path):
    folder = exported(tmp_path, n_layers=20, n_heads=16, n_kv_heads=4, d_model=128)
    at = open_folder(folder, "attention", prompt="the quick brown fox")
    grid = [t for t in charts(at)["att_grid"]["data"] if t["type"] == "heatmap" and t["name"] != "mask"]
    assert len(grid) == 8 * 12  # one page: 8 layers × 12 heads, not 320 panels
    assert at.selectbox(key="att_layers").options == ["layers 0–7", "layers 8–15", "layers 16–19"]
    at.selectbox(key="att_layers").set_value(16)
    at.selectbox(key="att_heads").set_value(12).run()
    assert not at.exception
    grid = [t for t in charts(at)["att_grid"]["data"] if t["type"] == "heatmap" and t["name"] != "mask"]
    assert [t["name"] for t in grid][:4] == ["L16 H12", "L16 H13", "L16 H14", "L16 H15"] and len(grid) == 4 * 4
    assert at.query_params["att_layers"] in ("16", ["16"])
    heat = charts(at)["att_roles"]["data"][0]  # the role scores still cover every layer × head
    assert np.asarray(heat["z"]["bdata"] if isinstance(heat["z"], dict) else heat["z"]).size > 0

    at.switch_page(page_file("generation")).run()  # 20 layers: a list, and the attention rows paged
    assert not at.exception
    assert at.selectbox(key="gen_layer").options[:2] == ["layer 0", "layer 1"]
    rows = [t for t in charts(at)["gen_attn"]["data"] if t["type"] == "heatmap"]
    assert [t["name"] for t in rows] == [f"layer {l}" for l in range(8)]


# --------------------------------------------------------------------------------------------------------
# Refusals: a reason on the page, no traceback, no model drawn
# --------------------------------------------------------------------------------------------------------


def write_config(folder: Path, **c) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    base = dict(model_type="llama", vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    (folder / "config.json").write_text(json.dumps({**base, **c}))
    return folder


def refused(folder, stem: str = "attention") -> str:
    at = open_folder(folder, stem)
    assert not charts(at), stem  # nothing drawn from any weights
    assert len(at.error) == 1 and "cannot be used" in at.error[0].value
    return unmd(at.error[0].value)


def test_pickled_weights_are_refused_on_the_page(tmp_path):
    write_config(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not even a pickle")  # unpickling would fail differently
    msg = refused(tmp_path)
    assert "we never unpickle" in msg and "pytorch_model.bin" in msg


@pytest.mark.parametrize("config, words", [
    (dict(model_type="gemma2"), "soft-caps its logits"),
    (dict(model_type="bert"), "model_type 'bert' is not supported"),
    (dict(quantization_config={"quant_method": "gptq"}), "quantized checkpoint"),
])
def test_a_family_we_cannot_run_is_refused_on_the_page(tmp_path, config, words):
    assert words in refused(write_config(tmp_path, **config), "home")


def test_a_model_too_large_for_this_machine_is_refused_from_its_config(tmp_path):
    from model.accounting.hf_configs import PRESETS

    msg = refused(write_config(tmp_path, **PRESETS["Llama-3-70B"]), "generation")  # no weights at all: config only
    assert "too large for this machine: 70,553,706,496 parameters" in msg


def test_a_missing_tokenizer_is_refused_with_what_to_do(tmp_path):
    exported(tmp_path, tokenizer=False)
    (tmp_path / "tokenizer.model").write_bytes(b"sentencepiece")
    msg = refused(tmp_path, "tokenization")
    assert "no tokenizer.json" in msg and "save_pretrained" in msg


def test_weights_in_a_dtype_we_cannot_run_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    exported(tmp_path)
    sd = load_file(str(tmp_path / "model.safetensors"))
    sd["model.norm.weight"] = sd["model.norm.weight"].to(torch.float8_e4m3fn)
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    assert "weights stored as F8_E4M3 cannot run here" in refused(tmp_path, "logit_lens")


def test_no_folder_and_a_path_that_is_not_one(tmp_path):
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["model_source"] = "folder"
    at.switch_page(page_file("attention")).run()  # the source chosen, no path typed yet: what to do, not an error
    assert not at.exception and not at.error and not charts(at)
    assert "Type the path of a model folder" in at.info[0].value
    assert "not a folder" in refused(tmp_path / "nowhere")


def test_compare_runs_whatever_the_folder(tmp_path):
    write_config(tmp_path, model_type="gemma2")  # refused everywhere else; Compare never runs the sidebar's model
    at = open_folder(tmp_path, "compare")
    assert not at.error and charts(at) and "not one of them" in texts(at)


# --------------------------------------------------------------------------------------------------------
# The sidebar's model source: URL, cache listing, way back
# --------------------------------------------------------------------------------------------------------


def test_folder_keys_and_names():
    key = folder_key("~/models/x/")
    assert key.startswith(FOLDER_PREFIX) and key.endswith("/models/x") and "~" not in key
    hub = "/h/hub/models--HuggingFaceTB--SmolLM-135M/snapshots/1a2b3c"
    assert model_name(FOLDER_PREFIX + hub) == "HuggingFaceTB/SmolLM-135M"
    assert app_shared.file_name(FOLDER_PREFIX + hub) == "HuggingFaceTB_SmolLM-135M"
    assert model_name("gqa-rope") == "gqa-rope" and not app_shared.is_folder("gqa-rope")


def test_the_hugging_face_cache_is_listed_not_downloaded(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    good = write_config(hub / "models--org--tiny" / "snapshots" / "abcdef123456")
    (hub / "models--org--noconfig" / "snapshots" / "0000").mkdir(parents=True)  # no config.json: not listed
    (hub / "datasets--org--data" / "snapshots" / "1111").mkdir(parents=True)  # a dataset: not listed
    assert cached_snapshots(hub) == [("org/tiny @ abcdef1", str(good))]
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert app_shared.hf_hub_cache() == hub

    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["model_source"] = "folder"
    at.run()
    pick = at.sidebar.selectbox(key="model_pick")
    assert pick.options == ["— pick one, or type a path below —", "org/tiny @ abcdef1"]
    pick.set_value(str(good)).run()  # picking fills the path (and the URL); this one has no weights: refused
    assert at.session_state["model"] == str(good) and at.query_params["model"] in (str(good), [str(good)])
    assert not at.exception and "no model.safetensors" in unmd(at.error[0].value)


def test_the_url_carries_the_folder_and_going_back_drops_it(tmp_path):
    folder = exported(tmp_path)
    at = open_folder(folder, "home")
    assert at.session_state["model_source"] == "folder" and not at.error
    assert model_name(folder_key(str(folder))) in unmd(texts(at))
    at.sidebar.radio[0].set_value("shipped").run()
    assert not at.exception
    assert "model" not in at.query_params and at.session_state["variant"] == "gqa-rope"
    assert "Shakespeare" in at.markdown[0].value  # our model again


def test_the_shipped_shell_is_unchanged_without_a_folder():
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert at.sidebar.radio[0].value == "shipped" and len(at.sidebar.selectbox) == 1
    assert app_shared.current_model.__name__ and at.session_state["variant"] == "gqa-rope"


def test_folders_can_be_switched_off(monkeypatch, tmp_path):
    monkeypatch.setattr(app_shared, "ALLOW_FOLDERS", False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["model"] = str(exported(tmp_path))
    at.run()
    assert not at.exception and not at.sidebar.radio and not at.sidebar.text_input
    assert "Shakespeare" in at.markdown[0].value  # the link's folder is ignored: our model runs


# --------------------------------------------------------------------------------------------------------
# The lens, one stage at a time
# --------------------------------------------------------------------------------------------------------


def test_lens_summary_equals_the_whole_lens():
    from model.analysis import lens
    from model.decoding.sampling import softmax

    rng = np.random.default_rng(0)
    for V in (3, 300):
        r = rng.normal(size=(3, 6, 16)).astype(np.float32)
        w, U = rng.normal(size=16).astype(np.float32), rng.normal(size=(V, 16)).astype(np.float32)
        ids = rng.integers(0, V, 6)
        probs = softmax(lens.logit_lens(r, w, 1e-6, U))
        idx, val, p_next = lens.lens_summary(r, w, 1e-6, U, ids, 5)
        want_idx, want_val = lens.top_k(probs, 5)
        k = min(5, V)
        assert (idx[..., :k] == want_idx).all()
        np.testing.assert_allclose(val[..., :k], want_val, rtol=1e-6)
        np.testing.assert_allclose(p_next, lens.next_token_probs(probs, ids), rtol=1e-6)


def test_rope_probe_follows_rope_scaling():
    """The RoPE page's float64 probe on a Llama-3.1-scaled config equals the model's own scores."""
    from model.analysis import rope as probe
    from model.net.config import ModelConfig
    from model.net.positions import rope_inv_freq
    from model.net.trace import run_with_trace
    from model.net.transformer import Transformer

    scaling = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=16)
    cfg = ModelConfig(vocab_size=50, d_model=64, n_layers=1, n_heads=4, n_kv_heads=2, d_mlp=64, max_seq_len=64,
                      rope_theta=500.0, rope_scaling=scaling)
    np.testing.assert_allclose(probe.inv_freq(16, 500.0, scaling), rope_inv_freq(16, 500.0, scaling).numpy(),
                               rtol=1e-6)
    tr = run_with_trace(Transformer(cfg, init_seed=2).eval(), list(range(1, 31)))
    q, k = tr["blocks.0.attn.hook_q"][29, 0].astype(np.float64), tr["blocks.0.attn.hook_k"][3, 0].astype(np.float64)
    got = probe.scores_at(q, k, 29, 3, 500.0, scaling)[0]
    assert abs(got - float(tr["blocks.0.attn.hook_attn_scores"][0, 29, 3])) < 1e-4
    assert abs(got - probe.scores_at(q, k, 29, 3, 500.0)[0]) > 1e-3  # unscaled would be wrong


@pytest.mark.parametrize("path, words", [
    ("/tmp/x\x00y", "NUL character"),
    ("{tmp}/a-file.txt", "is not a folder"),
    ("{tmp}", "no config.json"),
    ("x" * 1200, "characters long"),
])
def test_hostile_paths_are_reasons_not_tracebacks(tmp_path, path, words):
    (tmp_path / "a-file.txt").write_text("not a model")
    path = path.replace("{tmp}", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["model_source"] = "folder"
    at.session_state["model"] = path
    at.switch_page(page_file("embeddings")).run()
    assert not at.exception and not charts(at)
    assert words in unmd(at.error[0].value)
