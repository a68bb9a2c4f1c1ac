"""Export a shipped variant to Hugging Face's Llama format.

    python -m model.training.export --variant gqa-rope --format hf OUT_DIR

writes `OUT_DIR/config.json` + `OUT_DIR/model.safetensors`, which `transformers.LlamaForCausalLM
.from_pretrained(OUT_DIR)` loads (transformers is not needed to export, only to load).

The one subtle part is RoPE's pairing. We rotate interleaved pairs (x0, x1), (x2, x3), … as llama2.c and the
RoPE paper write it; Hugging Face's Llama rotates halves (x_j, x_{j + d/2}). Permuting the rows of W_q and
W_k within each head — evens first, then odds — turns one layout into the other: q and k get the same
permutation, so every q·k, and so every output, is unchanged. (transformers' `convert_llama_weights_to_hf.py`
applies this same permutation to Meta's interleaved checkpoints.)

Variants that Llama cannot express — sinusoidal, learned or no positions, ALiBi — are refused with a message;
so is a sliding window (LlamaConfig has none), and so are the architecture variants: post-norm, LayerNorm and a
plain GELU MLP have no Llama equivalent, and a mixture of experts is not a Llama (its faithful target would be
Mixtral — same routing, same SwiGLU experts — which this export does not write).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from model.net.checkpoints import VARIANTS, load_variant
from model.net.config import IMPORT_FIELDS
from model.net.positions import rope_permutation  # interleaved pairs -> halves; hf_import applies its inverse


def _permute_heads(w: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    perm = rope_permutation(head_dim)
    return w.view(n_heads, head_dim, -1)[:, perm, :].reshape(n_heads * head_dim, -1)  # (heads·hd, d)


def hf_config(cfg) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_mlp,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": cfg.vocab_size - 1,
        "eos_token_id": cfg.vocab_size - 1,
        "torch_dtype": "float32",
    }


def hf_state_dict(model) -> dict[str, torch.Tensor]:
    cfg = model.cfg
    sd = {"model.embed_tokens.weight": model.tok_embed.weight, "model.norm.weight": model.ln_final.weight}
    for l, b in enumerate(model.blocks):
        p = f"model.layers.{l}."
        sd[p + "input_layernorm.weight"] = b.ln1.weight
        sd[p + "self_attn.q_proj.weight"] = _permute_heads(b.attn.W_q.weight, cfg.n_heads, cfg.head_dim)
        sd[p + "self_attn.k_proj.weight"] = _permute_heads(b.attn.W_k.weight, cfg.n_kv_heads, cfg.head_dim)
        sd[p + "self_attn.v_proj.weight"] = b.attn.W_v.weight
        sd[p + "self_attn.o_proj.weight"] = b.attn.W_o.weight
        sd[p + "post_attention_layernorm.weight"] = b.ln2.weight
        sd[p + "mlp.gate_proj.weight"] = b.mlp.W_gate.weight
        sd[p + "mlp.up_proj.weight"] = b.mlp.W_up.weight
        sd[p + "mlp.down_proj.weight"] = b.mlp.W_down.weight
    if not cfg.tie_embeddings:
        sd["lm_head.weight"] = model.unembed.weight
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in sd.items()}


# What each architecture field, when set, makes of the model, for the refusal's message.
_NOT_LLAMA = {
    "norm_position": "post-norm (Llama normalises before each sublayer)",
    "norm": "LayerNorm (Llama has RMSNorm, without a bias)",
    "mlp": "a plain two-matrix MLP (Llama's is SwiGLU)",
    "n_experts": "a mixture of experts (Mixtral's architecture, not Llama's; no Mixtral export is written)",
}


def check_exportable(cfg) -> None:
    arch = [_NOT_LLAMA[f] for f in _NOT_LLAMA if f in cfg.to_dict()]
    if arch:
        raise ValueError(f"this variant is not a Llama: it has {'; '.join(arch)}, so it cannot be exported as one")
    if cfg.pos_encoding != "rope":
        raise ValueError(
            f"Llama has no {cfg.pos_encoding!r} positions (it only knows RoPE): this variant cannot be exported"
        )
    if cfg.sliding_window is not None:
        raise ValueError("LlamaConfig has no sliding window: a model that uses one cannot be exported as Llama")
    extra = sorted(set(cfg.to_dict()) & set(IMPORT_FIELDS) - {"head_dim_override"})  # head_dim is written
    if extra:  # an imported Qwen2 or Gemma: Llama's config has no place for these
        raise ValueError(f"the Llama export writes our own architecture; this model also sets {', '.join(extra)}")


def export_hf(model, out_dir: Path) -> Path:
    check_exportable(model.cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(hf_config(model.cfg), indent=2) + "\n")
    save_file(hf_state_dict(model), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    return out_dir


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Export a shipped variant for Hugging Face transformers.")
    p.add_argument("--variant", default="gqa-rope", choices=list(VARIANTS))
    p.add_argument("--format", default="hf", choices=["hf"])
    p.add_argument("out_dir", type=Path)
    a = p.parse_args(argv)
    try:
        out = export_hf(load_variant(a.variant), a.out_dir)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}/config.json and {out}/model.safetensors (load with LlamaForCausalLM.from_pretrained)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
