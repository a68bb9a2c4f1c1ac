"""Hugging Face export: LlamaForCausalLM loads it and continues a prompt exactly as we do."""

import pytest
import torch

from model.net.checkpoints import available_variants, load_variant
from model.net.config import ModelConfig
from model.training.export import export_hf, main, rope_permutation
from model.net.transformer import Transformer

transformers = pytest.importorskip("transformers")


def greedy(model_fn, ids, n):
    ids = list(ids)
    for _ in range(n):
        with torch.no_grad():
            ids.append(int(model_fn(torch.tensor([ids]))[0, -1].argmax()))
    return ids


def test_rope_permutation_evens_then_odds():
    assert rope_permutation(6).tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("kv, tied", [(2, True), (4, False), (1, True)])
def test_random_model_matches_llama_logits(tmp_path, kv, tied):
    torch.manual_seed(0)
    m = Transformer(ModelConfig(vocab_size=300, d_model=64, n_layers=2, n_heads=4, n_kv_heads=kv, d_mlp=128,
                                max_seq_len=64, tie_embeddings=tied)).eval()
    export_hf(m, tmp_path)
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 300, (1, 30), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, m(ids), atol=1e-4, rtol=0)


@pytest.mark.skipif("gqa-rope" not in available_variants(), reason="default checkpoint not in this checkout")
def test_shipped_default_greedy_continuation_is_the_same_in_transformers(tmp_path):
    from model.text.tokenizer import encode

    ours = load_variant("gqa-rope")
    assert main(["--variant", "gqa-rope", "--format", "hf", str(tmp_path)]) == 0
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    prompt = encode("ROMEO.\nWhat say you, my lord?")
    assert greedy(lambda x: hf(x).logits, prompt, 24) == greedy(ours, prompt, 24)


@pytest.mark.parametrize("pos", ["sinusoidal", "learned", "alibi", "none"])
def test_variants_llama_cannot_express_are_refused(tmp_path, pos):
    m = Transformer(ModelConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, d_mlp=32,
                                max_seq_len=16, pos_encoding=pos))
    with pytest.raises(ValueError, match=pos):
        export_hf(m, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()
