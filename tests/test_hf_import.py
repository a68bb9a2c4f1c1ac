"""Bring your own model: tiny random Llama / Mistral / Qwen2 / Gemma models that transformers builds and saves
come back through our import with transformers' own logits (1e-4, fp32) and greedy continuations; the export
round trip is exact; every refusal says why; the folder's tokenizer.json keeps typed special tokens as text."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.net.config import ModelConfig
from model.net.hf_import import (
    config_from_hf,
    inspect_hf_folder,
    load_hf_model,
    load_hf_tokenizer,
)
from model.net.positions import rope_inv_freq
from model.net.trace import run_with_trace
from model.net.transformer import Transformer

import transformers  # a test dependency (requirements-dev.txt): missing is a failure, not a skip

REPO = Path(__file__).resolve().parent.parent
V = 300
# initializer_range 0.2, not 0.02: with weights that small attention is near uniform and logits near 0, and a
# wrong RoPE layout moves the logits by under 1e-2; at 0.2 it moves them by ~7 (logits up to ~7).
SMALL = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.2)
# One case per family, each exercising what that family adds; windows of 4 so that a 30-token input slides.
FAMILIES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(  # Llama-3.1's RoPE scaling, with a context small enough
        rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0,  # that
                             high_freq_factor=4.0, original_max_position_embeddings=64))),  # all 3 regimes occur
    "llama-tied-linear": ("LlamaConfig", "LlamaForCausalLM", dict(
        tie_word_embeddings=True, num_key_value_heads=1, rope_parameters=dict(rope_type="linear", rope_theta=500.0,
                                                                               factor=2.0))),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=4)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(use_sliding_window=True, sliding_window=4,
                                                      max_window_layers=1, tie_word_embeddings=True)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(head_dim=32)),  # 4 × 32 ≠ 64, as Gemma-7B's 16 × 256 ≠ 3072
}
TEXT = "the quick brown fox jumps over the lazy dog. ROMEO: what light through yonder window breaks? café, naïve"


def tiny_tokenizer():
    """A byte-level BPE trained on a few sentences, with two special tokens (ids 0 and 1), under V ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=V - 20, special_tokens=["<|endoftext|>", "<|im_start|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([TEXT] * 10, trainer)
    return tok


def build(family: str, folder: Path, dtype=None, tokenizer: bool = True, **save_kw):
    """A random model of `family`, saved by transformers as safetensors (plus a tokenizer.json); returns it fp32."""
    cfg_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(0)
    hf = getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**{**SMALL, **extra}))
    with torch.no_grad():  # norms start at exactly 1 (Gemma's at 0): perturb them so a wrong norm would show
        for n, p in hf.named_parameters():
            if "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    if dtype is not None:
        hf = hf.to(dtype)
    hf.save_pretrained(folder, **save_kw)
    if tokenizer:
        tiny_tokenizer().save(str(folder / "tokenizer.json"))
    return getattr(transformers, model_cls).from_pretrained(folder, dtype=torch.float32).eval()


IDS = torch.randint(0, V, (1, 30), generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------------------------------------
# Logits and continuations equal transformers'
# --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_logits_and_greedy_continuation_equal_transformers(tmp_path, family):
    from model.decoding.generate import generate
    from model.decoding.sampling import SamplerConfig

    hf = build(family, tmp_path)
    ours = load_hf_model(tmp_path)
    with torch.no_grad():
        ref, got = hf(IDS).logits, ours(IDS)
    diff = (ref - got).abs().max().item()
    assert diff < 1e-4, diff
    print(f"{family}: max |Δlogit| = {diff:.1e}")

    prompt = IDS[:, :8]
    with torch.no_grad():  # min_new_tokens: do not stop at the random model's eos id
        want = hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=16,
                           min_new_tokens=16)[0, 8:].tolist()
    gen = generate(ours, prompt[0].tolist(), 16, SamplerConfig(temperature=0.0))  # KV cache, window evicting
    assert gen.generated_ids == want


@pytest.mark.slow
def test_config_reading_agrees_with_transformers_and_the_calculators(tmp_path):
    from model.accounting.counts import count_params
    from model.accounting.hf_configs import arch_from_json_file

    hf = build("qwen2", tmp_path, tokenizer=False)
    info = inspect_hf_folder(tmp_path, need_tokenizer=False)
    cfg = info.config
    assert (cfg.qkv_bias, cfg.tie_embeddings, cfg.sliding_window, cfg.sliding_layers) == (True, True, 4, (1,))
    assert [cfg.layer_window(i) for i in range(2)] == [None, 4]  # as hf.config.layer_types says
    assert hf.config.layer_types == ["full_attention", "sliding_attention"]
    n_hf = sum(p.numel() for p in hf.parameters())
    assert info.n_params == n_hf == count_params(arch_from_json_file(tmp_path)).total


@pytest.mark.slow
def test_stored_bf16_runs_in_fp32_and_says_so(tmp_path):
    hf = build("llama", tmp_path, dtype=torch.bfloat16)  # reloaded in fp32: the same bf16-rounded numbers
    info = inspect_hf_folder(tmp_path)
    assert info.stored_dtypes == ["BF16"] and any("BF16 run in fp32" in n for n in info.notes)
    with torch.no_grad():
        torch.testing.assert_close(load_hf_model(tmp_path)(IDS), hf(IDS).logits, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_a_sharded_checkpoint_loads_from_its_index(tmp_path):
    hf = build("mistral", tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").is_file() and len(list(tmp_path.glob("*.safetensors"))) > 2
    assert not (tmp_path / "model.safetensors").exists()
    with torch.no_grad():
        torch.testing.assert_close(load_hf_model(tmp_path)(IDS), hf(IDS).logits, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_every_hook_point_of_an_imported_model_records(tmp_path):
    build("qwen2", tmp_path, tokenizer=False)
    m = load_hf_model(tmp_path)
    tr = run_with_trace(m, IDS[0, :12].numpy())
    assert set(tr.names()) == set(m.hook_names())
    ours = Transformer(ModelConfig(vocab_size=V, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=128))
    assert m.hook_names() == ours.hook_names()  # the same names as our own RoPE model: every page finds them
    assert tr["blocks.0.attn.hook_q"].shape == (12, 4, 16)
    assert tr["blocks.0.mlp.hook_post"].shape == (12, 128)
    pattern = tr["blocks.1.attn.hook_pattern"]  # the sliding layer: each query reads its last 4 keys only
    assert (pattern[:, 11, :8] == 0).all() and np.allclose(pattern[:, 11, 8:].sum(-1), 1)
    assert (tr["blocks.0.attn.hook_pattern"][:, 11, :8] > 0).all()  # the full layer reads them all
    np.testing.assert_allclose(tr.logits, m(IDS[:, :12])[0].numpy(), atol=1e-6)


# --------------------------------------------------------------------------------------------------------
# Our export, imported back
# --------------------------------------------------------------------------------------------------------


def test_export_round_trip_of_a_random_model_is_exact(tmp_path):
    from model.training.export import export_hf

    torch.manual_seed(0)
    m = Transformer(ModelConfig(vocab_size=V, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=128,
                                max_seq_len=64, tie_embeddings=False), init_seed=3).eval()
    export_hf(m, tmp_path)
    back = load_hf_model(tmp_path)
    assert back.cfg == ModelConfig(vocab_size=V, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=128,
                                   max_seq_len=64, tie_embeddings=False, norm_eps=m.cfg.norm_eps)
    for k, v in m.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    assert torch.equal(back(IDS[:, :20]), m(IDS[:, :20]))


def test_export_round_trip_of_the_shipped_default(tmp_path, shipped_variants):
    from model.net.checkpoints import load_variant
    from model.text.tokenizer import encode
    from model.training.export import export_hf

    ours = load_variant("gqa-rope")
    back = load_hf_model(export_hf(ours, tmp_path))
    ids = torch.tensor([encode("ROMEO.\nWhat say you, my lord?")])
    assert torch.equal(back(ids), ours(ids))


def test_an_imported_qwen2_is_not_exported_as_llama(tmp_path):
    from model.training.export import export_hf

    m = Transformer(config_from_hf(dict(model_type="qwen2", **SMALL)))
    with pytest.raises(ValueError, match="qkv_bias"):
        export_hf(m, tmp_path)


# --------------------------------------------------------------------------------------------------------
# Refusals: a reason, never a traceback
# --------------------------------------------------------------------------------------------------------


def write_config(folder: Path, **c) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", **SMALL, **c}))
    return folder


def test_pickled_weights_are_refused_without_being_opened(tmp_path):
    write_config(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not even a pickle")  # unpickling would fail differently
    with pytest.raises(ValueError, match=r"only pickled weights \(pytorch_model.bin\): we never unpickle"):
        load_hf_model(tmp_path)


@pytest.mark.parametrize("config, words", [
    (dict(model_type="bert"), "model_type 'bert' is not supported; supported: llama, mistral, qwen2, gemma"),
    (dict(model_type="gemma2"), "soft-caps its logits"),
    (dict(model_type="gpt2"), "learned positions"),
    (dict(model_type=None), "model_type None is not supported"),
    (dict(quantization_config={"quant_method": "gptq"}), "quantized checkpoint ('gptq')"),
    (dict(rope_parameters={"rope_type": "yarn", "factor": 4.0}), "RoPE scaling 'yarn' is not supported"),
    (dict(partial_rotary_factor=0.5), "partial_rotary_factor"),
    (dict(attention_bias=True), "attention_bias"),
    (dict(hidden_act="gelu"), "hidden_act 'gelu' is not supported for llama"),
    (dict(hidden_size=None), "no hidden_size"),
    (dict(num_key_value_heads=3), "n_kv_heads (3) must divide n_heads (4)"),
])
def test_configs_we_cannot_run_are_refused_by_name(tmp_path, config, words):
    c = {k: v for k, v in {"model_type": "llama", **SMALL, **config}.items() if v is not None}  # None: absent
    (tmp_path / "config.json").write_text(json.dumps(c))
    with pytest.raises(ValueError) as e:
        load_hf_model(tmp_path)
    assert words in str(e.value)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        inspect_hf_folder(tmp_path)
    write_config(tmp_path)
    with pytest.raises(ValueError, match=r"no model.safetensors \(or model.safetensors.index.json\)"):
        inspect_hf_folder(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "shard-1.safetensors"}}))
    with pytest.raises(ValueError, match="lists shards that are not in .*: shard-1.safetensors"):
        inspect_hf_folder(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        inspect_hf_folder(tmp_path / "nowhere")


@pytest.mark.slow
def test_a_missing_tokenizer_is_refused_with_what_to_do(tmp_path):
    from model.decoding.generate import main

    build("llama", tmp_path, tokenizer=False)
    (tmp_path / "tokenizer.model").write_bytes(b"sentencepiece")
    with pytest.raises(ValueError, match=r"no tokenizer.json in .*it has tokenizer.model; save the fast tokenizer"):
        inspect_hf_folder(tmp_path)
    with pytest.raises(ValueError, match="no tokenizer.json"):
        load_hf_tokenizer(tmp_path)
    assert main(["--model", str(tmp_path), "--prompt", "hi"]) == 2  # the CLI prints the reason, returns 2
    load_hf_model(tmp_path)  # the weights alone need no tokenizer (the export round trip has none)


@pytest.mark.slow
def test_too_large_for_the_memory_is_refused_from_the_config_alone(tmp_path):
    write_config(tmp_path)  # no weights at all: the estimate comes first
    with pytest.raises(ValueError) as e:
        inspect_hf_folder(tmp_path, available_bytes=2**29)
    msg = str(e.value)
    assert msg.startswith("too large for this machine: 112,448 parameters need about 1.0 GiB in fp32")
    assert "0.5 GiB is free of" in msg and "MemAvailable, /proc/meminfo" in msg
    # A real shape: Llama-3-70B's config on this machine, refused before any file is looked for.
    from model.accounting.hf_configs import PRESETS

    write_config(tmp_path, **PRESETS["Llama-3-70B"])
    with pytest.raises(ValueError, match=r"too large for this machine: 70,553,706,496 parameters need about 316\.\d GiB"):
        inspect_hf_folder(tmp_path)


@pytest.mark.slow
def test_dtypes_we_cannot_run_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    build("llama", tmp_path)
    sd = load_file(str(tmp_path / "model.safetensors"))
    sd["model.norm.weight"] = sd["model.norm.weight"].to(torch.float8_e4m3fn)
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"weights stored as F8_E4M3 cannot run here \(only F32, F16 and BF16\)"):
        load_hf_model(tmp_path)


@pytest.mark.slow
def test_weights_that_do_not_fit_the_config_are_named(tmp_path):
    from safetensors.torch import load_file, save_file

    build("llama", tmp_path)
    sd = load_file(str(tmp_path / "model.safetensors"))
    extra = dict(sd, **{"model.layers.0.self_attn.q_norm.weight": torch.ones(16)})
    save_file(extra, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="unexpected tensor 'model.layers.0.self_attn.q_norm.weight'"):
        load_hf_model(tmp_path)
    del sd["model.layers.1.mlp.up_proj.weight"]
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"lack 1 tensor.*blocks.1.mlp.W_up.weight \(HF: model.layers.1.mlp.up_proj"):
        load_hf_model(tmp_path)


# --------------------------------------------------------------------------------------------------------
# RoPE scaling against transformers' own frequencies
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    dict(rope_type="linear", factor=4.0),
    dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192),
    dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64),
])
def test_rope_scaling_equals_transformers_inv_freq(params):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    theta = 500000.0
    c = transformers.LlamaConfig(hidden_size=2048, num_attention_heads=16, max_position_embeddings=131072,
                                 rope_parameters=dict(params, rope_theta=theta))
    want, _ = ROPE_INIT_FUNCTIONS[params["rope_type"]](c, "cpu")
    got = rope_inv_freq(128, theta, config_from_hf(c.to_dict()).rope_scaling)
    torch.testing.assert_close(got, want, atol=0, rtol=1e-6)
    if params["rope_type"] == "llama3":  # the three regimes are all present: kept, blended, interpolated
        plain = rope_inv_freq(128, theta)
        ratio = (plain / got).numpy()
        assert np.isclose(ratio, 1).any() and np.isclose(ratio, params["factor"]).any()
        assert ((ratio > 1.001) & (ratio < params["factor"] - 0.001)).any()


def test_old_style_rope_scaling_and_theta_are_read():
    c = dict(model_type="llama", **SMALL, rope_theta=500000.0,
             rope_scaling={"type": "linear", "factor": 2.0})  # transformers 4's layout, as most hub configs have
    cfg = config_from_hf(c)
    assert cfg.rope_theta == 500000.0 and cfg.rope_scaling == {"rope_type": "linear", "factor": 2.0}


def test_our_config_json_is_unchanged_by_the_import_fields():
    assert list(ModelConfig().to_dict()) == ["vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_mlp",
                                             "max_seq_len", "pos_encoding", "rope_theta", "norm_eps",
                                             "tie_embeddings", "sliding_window"]
    qwen = config_from_hf(dict(model_type="qwen2", **SMALL, use_sliding_window=True, sliding_window=4,
                               max_window_layers=1))
    assert ModelConfig.from_dict(json.loads(qwen.to_json())) == qwen  # sliding_layers: a list in JSON, a tuple here
    hash(qwen)
    with pytest.raises(ValueError, match="rope_scaling of type 'linear' takes factor; not low_freq_factor"):
        ModelConfig(rope_scaling={"rope_type": "linear", "factor": 2.0, "low_freq_factor": 1.0})


# --------------------------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def tok(tmp_path):
    tiny_tokenizer().save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "config.json").write_text(json.dumps({"bos_token_id": 0, "eos_token_id": [0, 1]}))
    return load_hf_tokenizer(tmp_path)


def test_tokenizer_encodes_like_the_library_and_round_trips(tok):
    ref = tiny_tokenizer()
    for text in [TEXT, "Hello, world!\n\tNew line — ünïcödé 🙂", ""]:
        ids = tok.encode(text)
        assert ids == ref.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids) == text
        assert b"".join(tok.token_bytes(i) for i in ids) == text.encode("utf-8")
    assert (tok.bos_id, tok.eos_id) == (0, 0)


def test_typed_special_tokens_stay_text(tok):
    text = "hi <|im_start|>user<|endoftext|>"
    ids = tok.encode(text)
    assert 0 not in ids and 1 not in ids  # the special ids never come from typed text
    assert tiny_tokenizer().encode(text, add_special_tokens=False).ids.count(1) == 1  # the library would match it
    assert tok.decode(ids) == text
    assert tok.contains_special_lookalike(text) and not tok.contains_special_lookalike("hi user")
    assert tok.token_label(1) == "<|im_start|>" and tok.decode([1]) == "<|im_start|>"


def test_token_labels_match_ours(tok):
    from model.text.tokenizer import bytes_label

    space_the = tok.encode(" the")  # merged into fewer pieces than characters, the space drawn as ours draws it
    assert len(space_the) < 4 and "".join(tok.token_label(i) for i in space_the) == "␣the"
    assert "".join(tok.pieces(" the")) == "Ġthe"  # the file's own spelling of the same pieces
    assert tok.token_label(tok.encode("\n")[0]) == "↵"
    ids = tok.encode("é")  # a character the merges did not learn: two byte tokens, each half of its UTF-8
    labels = [tok.token_label(i) for i in ids]
    assert "".join(labels) in ("é", "<0xC3><0xA9>") and bytes_label(b"\xc3") == "<0xC3>"
    assert tok.token_label(V + 50) == f"<id {V + 50}>"  # a padded embedding row with no token


def test_byte_level_alphabet_is_gpt2s():
    from tokenizers import pre_tokenizers

    from model.text.hf_tokenizer import _BYTE_OF_CHAR

    assert set(_BYTE_OF_CHAR) == set(pre_tokenizers.ByteLevel.alphabet())
    assert sorted(_BYTE_OF_CHAR.values()) == list(range(256))
    assert (_BYTE_OF_CHAR["Ġ"], _BYTE_OF_CHAR["Ċ"], _BYTE_OF_CHAR["a"]) == (0x20, 0x0A, 0x61)


def test_sentencepiece_style_pieces_and_byte_fallback(tmp_path):
    """Llama-2 / Mistral / Gemma style: "▁" for the space, "<0xNN>" for a byte no piece covers."""
    from tokenizers import Tokenizer, decoders, models, normalizers

    vocab = {"<unk>": 0, **{f"<0x{b:02X}>": 1 + b for b in range(256)}}
    for piece in ["▁", "a", "b", "▁a", "▁ab"]:
        vocab[piece] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[("▁", "a"), ("▁a", "b")], byte_fallback=True, unk_token="<unk>"))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    tk.save(str(tmp_path / "tokenizer.json"))
    t = load_hf_tokenizer(tmp_path)
    assert not t.byte_level
    ids = t.encode("ab é")
    assert [t.token_label(i) for i in ids] == ["␣ab", "␣", "<0xC3>", "<0xA9>"]
    assert t.decode(ids) == "ab é"


def test_a_corrupt_tokenizer_json_is_named(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json is not a tokenizer.json the tokenizers library can read"):
        load_hf_tokenizer(tmp_path)


# --------------------------------------------------------------------------------------------------------
# The command lines
# --------------------------------------------------------------------------------------------------------


def run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_cli_generate_and_accounting_on_a_model_folder(tmp_path):
    from model.decoding.generate import generate
    from model.decoding.sampling import SamplerConfig

    build("gemma", tmp_path)
    out = run("model.decoding.generate", "--model", str(tmp_path), "--prompt", "the quick brown", "--temperature",
              "0", "--max-new-tokens", "8", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    tok, m = load_hf_tokenizer(tmp_path), load_hf_model(tmp_path)
    assert got["prompt_ids"] == tok.encode("the quick brown") and got["model"] == str(tmp_path)
    assert got["generated_ids"] == generate(m, got["prompt_ids"], 8, SamplerConfig(temperature=0.0)).generated_ids
    assert got["text"] == tok.decode(got["generated_ids"])

    acc = run("model.accounting", str(tmp_path), "--json")
    assert acc.returncode == 0, acc.stderr
    assert json.loads(acc.stdout)["total_params"] == sum(p.numel() for p in m.parameters())

    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    bad = run("model.decoding.generate", "--model", str(tmp_path), "--prompt", "hi")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "we never unpickle" in bad.stderr
