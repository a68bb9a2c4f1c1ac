"""The shipped model variants and how they are saved and loaded (safetensors + JSON; nothing is unpickled).

Variants identical in data, size, steps and seed except for the one thing each comparison changes:
attention (MHA / GQA / MQA, all RoPE), positions (RoPE / sinusoidal / learned / ALiBi / none, all GQA), and
the architecture (post-norm, LayerNorm, a plain GELU MLP, a mixture of experts; all GQA + RoPE). Plus a sliding
window and the speculative-decoding draft.

Layout of one variant, `checkpoints/<name>/`:
    model.safetensors   weights in fp16 (a tied embedding is stored once); loaded back as fp32
    config.json         the ModelConfig
    train_log.json      loss curve, held-out losses, timings and the command that produced it
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from safetensors import SafetensorError

from model.net.config import ModelConfig

# torch is imported inside the functions that need it: the app reads VARIANTS and configs from here before its
# first chart, and importing torch costs a second of CPU that the first visitor would wait for.

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
# Logs of second trainings of a shipped variant, same recipe and seed, run only to record the per-block
# diagnostics its own log predates (`<variant>.train_log.json`). Their weights are not shipped and not the shipped
# run's: the two runs' losses part in the fourth decimal within ten steps and drift apart after (they ran
# different versions of the code), so the page names them as a second run.
DIAGNOSTIC_RUNS_DIR = Path(__file__).resolve().parents[2] / "results" / "diagnostic_runs"
DEFAULT_VARIANT = "gqa-rope"

VARIANTS: dict[str, dict] = {
    "gqa-rope": dict(),  # the default: 6 query heads share 2 K/V heads, RoPE (≈ 1.97 M params)
    "mha-rope": dict(n_kv_heads=6),  # every query head has its own K/V head (3× the KV cache of GQA)
    "mqa-rope": dict(n_kv_heads=1),  # one K/V head for all six (half of GQA's cache, a sixth of MHA's)
    "gqa-sinusoidal": dict(pos_encoding="sinusoidal"),  # Vaswani's fixed sin/cos table added to the input
    "gqa-learned": dict(pos_encoding="learned"),  # a trained table of max_seq_len vectors (GPT-2 style)
    "gqa-alibi": dict(pos_encoding="alibi"),  # per-head linear distance penalty on the scores
    "gqa-none": dict(pos_encoding="none"),  # no position signal at all; only the causal mask
    "gqa-window": dict(sliding_window=64),  # the default with each query seeing only its last 64 keys (Mistral)
    # The speculative-decoding draft: same tokenizer, data and recipe, a quarter of the width-by-depth
    # (2 layers of d_model 96, 3 query heads sharing 1 K/V head): a fifth of the parameters and FLOPs.
    # Whether drafting pays depends on the machine's per-step overhead; the Decoding page measures it.
    "draft": dict(d_model=96, n_layers=2, n_heads=3, n_kv_heads=1, d_mlp=256),
    # The architecture comparison: the default with one choice changed, at the default's size.
    "gqa-postnorm": dict(norm_position="post"),  # norm after each residual add (Vaswani et al.); no final norm
    "gqa-layernorm": dict(norm="layernorm"),  # LayerNorm (weight + bias, GPT-2) for RMSNorm: +1,728 params
    # GPT-2's two-matrix MLP; 4·d = 768 wide holds exactly SwiGLU's 3·192·512 = 294,912 weights per layer
    "gqa-gelu": dict(mlp="plain", mlp_act="gelu_tanh", d_mlp=768),
    # 4 SwiGLU experts of 256, 2 per token (Mixtral's routing): a token uses 2·3·192·256 = 294,912 MLP weights,
    # as the dense default; the model holds twice the MLP weights (≈ 3.15 M params, ≈ 1.97 M active per token)
    "gqa-moe": dict(n_experts=4, experts_per_token=2, d_mlp=256),
}

VARIANT_BLURBS = {
    "gqa-rope": "GQA (6 query / 2 K/V heads) + RoPE — the default",
    "mha-rope": "MHA (6 / 6) + RoPE",
    "mqa-rope": "MQA (6 / 1) + RoPE",
    "gqa-sinusoidal": "GQA + sinusoidal positions",
    "gqa-learned": "GQA + learned positions",
    "gqa-alibi": "GQA + ALiBi",
    "gqa-none": "GQA + no positional encoding",
    "gqa-window": "GQA + RoPE, sliding window of 64",
    "draft": "Draft: 2 layers × 96 wide (for speculative decoding)",
    "gqa-postnorm": "GQA + RoPE, post-norm (norm after each residual add)",
    "gqa-layernorm": "GQA + RoPE, LayerNorm instead of RMSNorm",
    "gqa-gelu": "GQA + RoPE, GELU MLP (2 matrices of 768) instead of SwiGLU",
    "gqa-moe": "GQA + RoPE, mixture of 4 experts (2 per token)",
}


def variant_config(name: str) -> ModelConfig:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    return ModelConfig(**VARIANTS[name])


def variants_differing_in(field: str) -> list[str]:
    """The variants whose config equals the default's in every field but `field` (the default included), in
    VARIANTS order: the models of one comparison. "pos_encoding" -> gqa-rope, gqa-sinusoidal, gqa-learned,
    gqa-alibi, gqa-none; a variant that changes anything else (the draft's size) is in no comparison."""
    def others(name: str) -> dict:
        d = variant_config(name).to_dict()
        d.pop(field, None)  # an optional field is absent while at its default (ModelConfig.to_dict)
        return d

    base = others(DEFAULT_VARIANT)
    return [n for n in VARIANTS if others(n) == base]


# The Compare page's two comparisons, derived from VARIANTS rather than listed again.
ATTENTION_VARIANTS = sorted(variants_differing_in("n_kv_heads"), key=lambda n: -variant_config(n).n_kv_heads)  # MHA → MQA
POSITION_VARIANTS = variants_differing_in("pos_encoding")  # RoPE, sinusoidal, learned, ALiBi, none
COMPARED_VARIANTS = [n for n in VARIANTS if n in ATTENTION_VARIANTS or n in POSITION_VARIANTS]  # both, once each
# The architecture comparison, listed: the GELU MLP and the MoE change more than one field (width, activation,
# experts) to stay at the default's size, so they cannot be derived as the two above are. The default first.
ARCHITECTURE_VARIANTS = [DEFAULT_VARIANT, "gqa-postnorm", "gqa-layernorm", "gqa-gelu", "gqa-moe"]


def variant_dir(name: str) -> Path:
    variant_config(name)  # validates the name
    return CHECKPOINT_DIR / name


def available_variants() -> list[str]:
    """Variants whose weights are present in this checkout."""
    return [n for n in VARIANTS if (CHECKPOINT_DIR / n / "model.safetensors").is_file()]


def save_checkpoint(model, out_dir: Path, log: Optional[dict] = None, dtype=None) -> None:
    """Weights in `dtype` (default fp16), config.json, and the training log if given."""
    import torch
    from safetensors.torch import save_file

    dtype = torch.float16 if dtype is None else dtype
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # state_dict() holds each tensor once (the tied unembedding is not a separate parameter here).
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(model.cfg.to_json() + "\n")
    if log is not None:
        (out_dir / "train_log.json").write_text(json.dumps(log, indent=1) + "\n")


def load_checkpoint(path: Path):
    """Load `path/model.safetensors` + `path/config.json` into an eval-mode Transformer (fp32, no grad).

    A missing, truncated or corrupted file raises ValueError with a message that says which file.
    """
    import torch
    from safetensors.torch import load_file

    from model.net.transformer import Transformer

    path = Path(path)
    try:
        cfg = ModelConfig.from_dict(json.loads((path / "config.json").read_text()))
    except FileNotFoundError:
        raise ValueError(f"no config.json in {path}") from None
    except (ValueError, TypeError) as e:  # bad JSON or UTF-8, unknown or invalid fields
        raise ValueError(f"{path / 'config.json'} is not a valid model config: {e}") from None
    model = Transformer(cfg)
    try:
        tensors = load_file(str(path / "model.safetensors"))
    except FileNotFoundError:
        raise ValueError(f"no model.safetensors in {path}") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path / 'model.safetensors'} is truncated or corrupted: {e}") from None
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    if bad:  # safetensors has no checksum; NaN/inf is what flipped bytes in fp16 weights most often look like
        raise ValueError(f"{path / 'model.safetensors'} is corrupted: NaN or inf in {', '.join(bad[:3])}")
    try:
        model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path / 'model.safetensors'} does not match config.json: {e}") from None
    model.eval().requires_grad_(False)
    return model


def load_variant(name: str):
    return load_checkpoint(variant_dir(name))


def load_train_log(name: str) -> Optional[dict]:
    """The variant's train_log.json (loss curve, held-out losses, timings, command), or None if absent."""
    p = variant_dir(name) / "train_log.json"
    return json.loads(p.read_text()) if p.is_file() else None


def diagnostic_runs() -> dict[str, Path]:
    """variant -> the log of its diagnostics-only re-run (see DIAGNOSTIC_RUNS_DIR), for the variants that have one."""
    suffix = ".train_log.json"
    return {p.name[: -len(suffix)]: p for p in sorted(DIAGNOSTIC_RUNS_DIR.glob(f"*{suffix}"))
            if p.name[: -len(suffix)] in VARIANTS}
