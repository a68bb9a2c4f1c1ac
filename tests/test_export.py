"""Hugging Face export: LlamaForCausalLM loads it and computes our logits (tests/test_shipped_models.py checks the
shipped default's greedy continuation through it); what Llama cannot express is refused.

transformers is a test dependency (requirements-dev.txt): without it these tests fail, they do not skip.
"""

import pytest
import torch
import transformers

from model.net.config import ModelConfig
from model.training.export import export_hf, main, rope_permutation
from model.net.transformer import Transformer


def test_rope_permutation_evens_then_odds():
    assert rope_permutation(6).tolist() == [0, 2, 4, 1, 3, 5]


def test_head_permutation_is_the_one_transformers_applies_to_meta_checkpoints():
    # transformers' convert_llama_weights_to_hf.py, "permute for sliced rotary": Meta's interleaved q/k rows
    # → Hugging Face's halves. The module docstring says ours is this same permutation, not its inverse.
    from model.training.export import _permute_heads

    def permute(w, n_heads, dim1, dim2):
        return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)

    n_heads, hd, d = 3, 8, 5
    w = torch.randn(n_heads * hd, d)
    torch.testing.assert_close(_permute_heads(w, n_heads, hd), permute(w, n_heads, n_heads * hd, d), rtol=0, atol=0)
    inverse = w.view(n_heads, hd, d)[:, rope_permutation(hd).argsort(), :].reshape(n_heads * hd, d)
    assert not torch.equal(inverse, permute(w, n_heads, n_heads * hd, d))  # hd > 2: the inverse differs


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


def test_the_cli_refuses_a_variant_llama_cannot_express(tmp_path, capsys):
    assert main(["--variant", "gqa-alibi", "--format", "hf", str(tmp_path)]) == 2
    assert "alibi" in capsys.readouterr().err and not (tmp_path / "model.safetensors").exists()


@pytest.mark.parametrize("pos", ["sinusoidal", "learned", "alibi", "none"])
def test_variants_llama_cannot_express_are_refused(tmp_path, pos):
    m = Transformer(ModelConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, d_mlp=32,
                                max_seq_len=16, pos_encoding=pos))
    with pytest.raises(ValueError, match=pos):
        export_hf(m, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()
