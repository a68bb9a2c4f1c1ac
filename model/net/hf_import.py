"""Bring your own model: a local Hugging Face folder of the Llama, Mistral, Qwen2 or Gemma family becomes our
traced Transformer, every hook point included.

    info = inspect_hf_folder("~/models/SmolLM-135M")   # config, files, dtypes, memory: nothing loaded yet
    model = load_hf_model("~/models/SmolLM-135M")      # an eval-mode Transformer in fp32
    tok = load_hf_tokenizer("~/models/SmolLM-135M")    # model/text/hf_tokenizer.py

A folder holds `config.json`, `model.safetensors` (or `model.safetensors.index.json` and its shards) and
`tokenizer.json`. Anything we cannot run is refused with a ValueError that says why, before any weight is read:
a family we do not implement, pickled `.bin` weights (we never unpickle: a pickle can run code), a quantized or
an fp8 checkpoint, a missing tokenizer, a model larger than this machine's free memory.

How the families map onto ModelConfig (the same reading as transformers' config classes):

    llama    RMSNorm, SwiGLU, RoPE; head_dim if given; rope_scaling "linear" or "llama3"; tied if tie_word_embeddings
    mistral  as llama; sliding_window (null = none) on every layer
    qwen2    as llama, plus biases on q, k and v; a window only if use_sliding_window, and then on the layers
             `layer_types` marks "sliding_attention" (older configs: layers >= max_window_layers)
    gemma    as llama with GeGLU (tanh GELU), tied, embeddings × √d_model, head_dim 256 unless given, and norms
             that multiply by (1 + w): we store 1 + w, the same fp32 sum transformers forms on every call

The weights: HF's names → ours (the table in `_our_name`); q and k rows are put back from HF's half-split RoPE
layout into our interleaved pairs (the inverse of `model/training/export.py`'s permutation); fp16 and bf16
weights become fp32 (exactly: every fp16 or bf16 number is an fp32 number; the app computes in fp32).
Out: gemma2 (post-norms and logit soft-capping), MoE families, attention or MLP biases beyond Qwen2's,
RoPE types other than linear and llama3 (dynamic NTK, YaRN, LongRoPE), partial rotary embeddings.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from model.net.config import ModelConfig, check_bool, check_int, short

FAMILIES = ("llama", "mistral", "qwen2", "gemma")
NOT_SUPPORTED = {  # families people will try, and what our model lacks for each
    "gemma2": "Gemma-2 adds a norm after attention and after the MLP and soft-caps its logits",
    "gemma3": "Gemma-3 adds post-norms, q/k norms and two RoPE bases",
    "gemma3_text": "Gemma-3 adds post-norms, q/k norms and two RoPE bases",
    "qwen3": "Qwen3 normalises q and k per head (q_norm, k_norm)",
    "mixtral": "Mixtral is a mixture of experts",
    "qwen2_moe": "Qwen2-MoE is a mixture of experts",
    "gpt2": "GPT-2 has LayerNorm, learned positions and biases everywhere",
    "phi3": "Phi-3 fuses q/k/v and gate/up and may use LongRoPE",
}
RUNNABLE_DTYPES = {"F32": 4, "F16": 2, "BF16": 2}  # safetensors' names → bytes; all become fp32 when loaded
# Beyond the fp32 weights: Python, torch and the app (~1 GiB), plus a fifth of the weights for one traced
# forward's activations and the tensor being converted. A rule of thumb, stated as one, not a measurement.
OVERHEAD_BYTES = 1 << 30
OVERHEAD_FRACTION = 0.2


@dataclass
class HFModelInfo:
    """What a folder holds, read without loading a weight."""

    folder: Path
    family: str  # the config's model_type
    config: ModelConfig
    weight_files: list[Path]  # model.safetensors, or the shards the index lists
    stored_dtypes: list[str]  # safetensors dtype names found, e.g. ["BF16"]
    n_params: int  # of our model built from the config (a tied embedding counted once)
    needed_bytes: int  # the memory estimate: fp32 weights + overhead (see OVERHEAD_*)
    notes: list[str] = field(default_factory=list)  # what the import changes, in words, for the app to show


# --------------------------------------------------------------------------------------------------------
# config.json → ModelConfig (no torch)
# --------------------------------------------------------------------------------------------------------

_MISSING = object()


def _get_int(c: dict, key: str, default=_MISSING, lo: int = 1) -> int:
    v = c.get(key)
    if v is None:
        if default is _MISSING:
            raise ValueError(f"config.json has no {key} (required for model_type {c.get('model_type')!r})")
        return default
    return check_int(key, v, lo)


def _number(c: dict, key: str, default: float) -> float:
    v = c.get(key)
    if v is None:
        return default
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise ValueError(f"{key} must be a number, got {short(v)}")
    return float(v)


def _rope(c: dict) -> tuple[float, Optional[dict]]:
    """(rope_theta, rope_scaling) from either layout: transformers 5 writes one `rope_parameters` dict with the
    theta inside; older configs have a top-level `rope_theta` and a `rope_scaling` dict (or null)."""
    p = c.get("rope_parameters") or c.get("rope_scaling") or {}
    if not isinstance(p, dict):
        raise ValueError(f"rope_parameters must be an object, got {short(p)}")
    if p and all(isinstance(v, dict) for v in p.values()):
        raise ValueError("per-layer-type RoPE parameters (as Gemma-3 has) are not supported")
    theta = _number(p, "rope_theta", _number(c, "rope_theta", 10000.0))
    partial = _number(p, "partial_rotary_factor", _number(c, "partial_rotary_factor", 1.0))
    if partial != 1.0:
        raise ValueError(f"partial_rotary_factor {partial} (RoPE on part of each head) is not supported")
    kind = p.get("rope_type", p.get("type", "default"))
    if kind == "default":
        return theta, None
    if kind == "linear":
        return theta, {"rope_type": "linear", "factor": _number(p, "factor", 1.0)}
    if kind == "llama3":
        old_ctx = p.get("original_max_position_embeddings",
                        c.get("original_max_position_embeddings", c.get("max_position_embeddings")))
        return theta, {"rope_type": "llama3", "factor": _number(p, "factor", 1.0),
                       "low_freq_factor": _number(p, "low_freq_factor", 1.0),
                       "high_freq_factor": _number(p, "high_freq_factor", 4.0),
                       "original_max_position_embeddings": check_int("original_max_position_embeddings", old_ctx)}
    raise ValueError(f"RoPE scaling {short(kind)} is not supported (only the default, 'linear' and 'llama3')")


def _window(c: dict, family: str, n_layers: int) -> tuple[Optional[int], Optional[tuple]]:
    """(sliding_window, sliding_layers) as transformers' Mistral and Qwen2 classes read them."""
    if family == "mistral":  # every layer (MistralConfig ignores layer_types, with a warning)
        w = c.get("sliding_window")
        return (None if w is None else check_int("sliding_window", w)), None
    if family != "qwen2" or not check_bool("use_sliding_window", c.get("use_sliding_window", False)):
        return None, None  # Llama and Gemma have no window; Qwen2 only when use_sliding_window
    w = _get_int(c, "sliding_window")
    types = c.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != n_layers:
            raise ValueError(f"layer_types must list one entry per layer ({n_layers})")
        layers = tuple(i for i, t in enumerate(types) if t == "sliding_attention")
    else:  # the older rule: the layers from max_window_layers on slide
        first = _get_int(c, "max_window_layers", n_layers, lo=0)
        layers = tuple(range(first, n_layers))
    if not layers:
        return None, None
    return w, (None if len(layers) == n_layers else layers)


def config_from_hf(c: dict) -> ModelConfig:
    """A Hugging Face config dict → our ModelConfig, or ValueError naming what we cannot run."""
    if not isinstance(c, dict):
        raise ValueError(f"config.json must hold a JSON object, got {type(c).__name__}")
    family = c.get("model_type")
    if family in NOT_SUPPORTED:
        raise ValueError(f"model_type {family!r} is not supported: {NOT_SUPPORTED[family]}. "
                         f"Supported: {', '.join(FAMILIES)}")
    if family not in FAMILIES:
        raise ValueError(f"model_type {short(family)} is not supported; supported: {', '.join(FAMILIES)}")
    if c.get("quantization_config"):
        method = c["quantization_config"].get("quant_method", "?") if isinstance(c["quantization_config"], dict) else "?"
        raise ValueError(f"this is a quantized checkpoint ({short(method)}); only fp32, fp16 and bf16 weights can run")
    gemma = family == "gemma"
    d = _get_int(c, "hidden_size")
    n_layers = _get_int(c, "num_hidden_layers")
    nh = _get_int(c, "num_attention_heads")
    nkv = _get_int(c, "num_key_value_heads", nh)
    hd = c.get("head_dim", 256 if gemma else None)  # GemmaConfig's default is 256; Llama's is d / n_heads
    hd = None if hd is None else check_int("head_dim", hd)
    act = c.get("hidden_activation") or c.get("hidden_act") or ("gelu_pytorch_tanh" if gemma else "silu")
    # transformers runs Gemma's legacy "gelu" as the tanh approximation (GemmaConfig says so when it loads one).
    ok_acts = ("gelu", "gelu_pytorch_tanh") if gemma else ("silu",)
    if act not in ok_acts:
        raise ValueError(f"hidden_act {short(act)} is not supported for {family} (expected {' or '.join(ok_acts)})")
    if c.get("attention_bias") or c.get("mlp_bias"):
        raise ValueError("attention_bias / mlp_bias (biases on o_proj or the MLP) are not supported; "
                         "only Qwen2's q/k/v biases are")
    if c.get("use_bidirectional_attention"):
        raise ValueError("use_bidirectional_attention: this model is not causal")
    theta, scaling = _rope(c)
    window, layers = _window(c, family, n_layers)
    return ModelConfig(
        vocab_size=_get_int(c, "vocab_size"),
        d_model=d, n_layers=n_layers, n_heads=nh, n_kv_heads=nkv,
        d_mlp=_get_int(c, "intermediate_size"),
        max_seq_len=_get_int(c, "max_position_embeddings", 2048),
        pos_encoding="rope", rope_theta=theta, rope_scaling=scaling,
        norm_eps=_number(c, "rms_norm_eps", 1e-6),
        tie_embeddings=check_bool("tie_word_embeddings", c.get("tie_word_embeddings", gemma)),
        sliding_window=window, sliding_layers=layers,
        head_dim_override=hd if hd is not None and hd * nh != d else None,
        qkv_bias=family == "qwen2",
        mlp_act="gelu_tanh" if gemma else "silu",
        # transformers multiplies by the fp32 tensor of hidden_size ** 0.5; this float rounds to the same fp32.
        embed_scale=float(d) ** 0.5 if gemma else None,
    )


# --------------------------------------------------------------------------------------------------------
# The folder: files, dtypes, memory
# --------------------------------------------------------------------------------------------------------


def read_config(folder: Path) -> dict:
    p = Path(folder) / "config.json"
    if not Path(folder).is_dir():
        raise ValueError(f"{folder} is not a folder")
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"no config.json in {folder}") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{p} is not valid JSON: {str(e)[:120]}") from None


def weight_files(folder: Path) -> list[Path]:
    """model.safetensors, or the shards model.safetensors.index.json lists; pickled weights are refused."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{index} is not a safetensors index: {str(e)[:120]}") from None
        files = [folder / n for n in names]
        missing = [f.name for f in files if not f.is_file() or f.resolve().parent != folder.resolve()]
        if missing:
            raise ValueError(f"{index.name} lists shards that are not in {folder}: {', '.join(missing[:3])}")
        return files
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    pickled = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt*"))
    if pickled:
        raise ValueError(f"{folder} has only pickled weights ({', '.join(pickled[:3])}): we never unpickle, since "
                         "a pickle can run any code. Convert them to safetensors first (transformers: "
                         "model.save_pretrained(dir, safe_serialization=True) on a machine you trust).")
    raise ValueError(f"no model.safetensors (or model.safetensors.index.json) in {folder}")


def _headers(files: list[Path]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (safetensors dtype, shape)} from the files' headers; no tensor data is read."""
    from safetensors import SafetensorError, safe_open

    out = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as h:
                for k in h.keys():
                    s = h.get_slice(k)
                    out[k] = (s.get_dtype(), tuple(s.get_shape()))
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{f} is not a readable safetensors file: {str(e)[:120]}") from None
    return out


def machine_memory() -> tuple[int, int]:
    """(MemAvailable, MemTotal) in bytes from /proc/meminfo: what can be allocated without swapping, and all."""
    info = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) * 1024  # the file says kB and means KiB
    except (OSError, ValueError, IndexError):
        pass
    total = info.get("MemTotal", 0)
    return info.get("MemAvailable", total), total


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def inspect_hf_folder(folder, available_bytes: Optional[int] = None, need_tokenizer: bool = True) -> HFModelInfo:
    """Everything that can be checked before loading, in this order: the config and its family; the memory
    estimate (from the config alone) against `available_bytes` (default: this machine's MemAvailable); the
    weight files, their dtypes, names and shapes; the tokenizer. ValueError with the first reason that fails."""
    import torch

    from model.net.transformer import Transformer

    folder = Path(folder).expanduser()
    c = read_config(folder)
    cfg = config_from_hf(c)
    with torch.device("meta"):  # shapes only: no memory is allocated, even for a 70B config
        skeleton = Transformer(cfg)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    n_params = sum(math.prod(s) for s in expected.values())
    needed = int(n_params * 4 * (1 + OVERHEAD_FRACTION)) + OVERHEAD_BYTES
    avail, total = machine_memory()
    if available_bytes is not None:
        avail = available_bytes
    if avail and needed > avail:
        raise ValueError(f"too large for this machine: {n_params:,} parameters need about {_gib(needed)} in fp32 "
                         f"(4 bytes each, plus {OVERHEAD_FRACTION:.0%} and {_gib(OVERHEAD_BYTES)} for running it); "
                         f"{_gib(avail)} is free of {_gib(total)} (MemAvailable, /proc/meminfo)")
    files = weight_files(folder)
    headers = _headers(files)
    dtypes = sorted({dt for dt, _ in headers.values()})
    bad = [dt for dt in dtypes if dt not in RUNNABLE_DTYPES]
    if bad:
        raise ValueError(f"weights stored as {', '.join(bad)} cannot run here (only F32, F16 and BF16)")
    got = {}
    for name, (_, shape) in headers.items():
        ours = _our_name(name, cfg)
        if ours is not None:
            got[ours] = shape
    missing = sorted(set(expected) - set(got))
    if missing:
        raise ValueError(f"the weights lack {len(missing)} tensor(s) this config needs, e.g. {missing[0]} "
                         f"(HF: {_hf_name(missing[0])})")
    wrong = [k for k in expected if got[k] != expected[k]]
    if wrong:
        k = wrong[0]
        raise ValueError(f"{_hf_name(k)} has shape {list(got[k])}; config.json implies {list(expected[k])}")
    if need_tokenizer and not (folder / "tokenizer.json").is_file():
        raise ValueError(_no_tokenizer_message(folder))
    notes = []
    narrow = [dt for dt in dtypes if dt != "F32"]
    if narrow:
        notes.append(f"weights stored as {' and '.join(narrow)} run in fp32 (converted exactly on loading)")
    if c["model_type"] == "gemma":
        notes.append("Gemma: the norms store w and scale by (1 + w); we hold 1 + w. Embeddings are × √d_model.")
    if cfg.rope_scaling is not None:
        notes.append(f"RoPE frequencies rescaled ({cfg.rope_scaling['rope_type']}, factor {cfg.rope_scaling['factor']})")
    return HFModelInfo(folder=folder, family=c["model_type"], config=cfg, weight_files=files, stored_dtypes=dtypes,
                       n_params=n_params, needed_bytes=needed, notes=notes)


def _no_tokenizer_message(folder: Path) -> str:
    other = [n for n in ("tokenizer.model", "vocab.json", "tokenizer_config.json") if (folder / n).is_file()]
    hint = (f" (it has {', '.join(other)}; save the fast tokenizer with transformers' "
            "AutoTokenizer.from_pretrained(dir).save_pretrained(dir) to write tokenizer.json)") if other else ""
    return f"no tokenizer.json in {folder}: the app reads the tokenizer only from that file{hint}"


# --------------------------------------------------------------------------------------------------------
# Weights: HF names → ours, RoPE layout, dtype
# --------------------------------------------------------------------------------------------------------

_LAYER_NAMES = {  # HF's name inside model.layers.{i}. → ours inside blocks.{i}.
    "input_layernorm.weight": "ln1.weight",
    "post_attention_layernorm.weight": "ln2.weight",
    "self_attn.q_proj.weight": "attn.W_q.weight",
    "self_attn.k_proj.weight": "attn.W_k.weight",
    "self_attn.v_proj.weight": "attn.W_v.weight",
    "self_attn.o_proj.weight": "attn.W_o.weight",
    "self_attn.q_proj.bias": "attn.W_q.bias",
    "self_attn.k_proj.bias": "attn.W_k.bias",
    "self_attn.v_proj.bias": "attn.W_v.bias",
    "mlp.gate_proj.weight": "mlp.W_gate.weight",
    "mlp.up_proj.weight": "mlp.W_up.weight",
    "mlp.down_proj.weight": "mlp.W_down.weight",
}
_TOP_NAMES = {"model.embed_tokens.weight": "tok_embed.weight", "model.norm.weight": "ln_final.weight",
              "lm_head.weight": "unembed.weight"}


def _our_name(hf: str, cfg: ModelConfig) -> Optional[str]:
    """Our state-dict name for an HF tensor name; None for one we drop (a tied lm_head, old rotary buffers).
    Anything else unknown is an error: silently dropping a weight would give a model that runs, wrongly."""
    if hf == "lm_head.weight" and cfg.tie_embeddings:
        return None  # some tied checkpoints store the copy anyway; transformers ignores it too
    if hf in _TOP_NAMES:
        return _TOP_NAMES[hf]
    parts = hf.split(".", 3)  # model, layers, i, rest
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[2].isdigit():
        if parts[3] == "self_attn.rotary_emb.inv_freq":
            return None  # a buffer older transformers saved; we compute the frequencies from the config
        if parts[3] in _LAYER_NAMES and int(parts[2]) < cfg.n_layers:
            return f"blocks.{parts[2]}.{_LAYER_NAMES[parts[3]]}"
    raise ValueError(f"unexpected tensor {short(hf, 80)} in the weights: not part of a "
                     f"{'Qwen2' if cfg.qkv_bias else 'Llama-style'} model with {cfg.n_layers} layers")


def _hf_name(ours: str) -> str:
    for hf, o in _TOP_NAMES.items():
        if o == ours:
            return hf
    _, i, rest = ours.split(".", 2)
    return f"model.layers.{i}." + next(hf for hf, o in _LAYER_NAMES.items() if o == rest)


def _to_ours(name: str, t, cfg: ModelConfig, family: str):
    """One HF tensor as our parameter `name` holds it (fp32)."""
    import torch

    from model.net.positions import rope_permutation

    t = t.to(torch.float32)
    if name.endswith(("W_q.weight", "W_q.bias", "W_k.weight", "W_k.bias")):
        heads = cfg.n_heads if ".W_q." in name else cfg.n_kv_heads
        back = torch.argsort(rope_permutation(cfg.head_dim))  # halves → interleaved pairs: [0, 3, 1, 4, 2, 5] for hd 6
        shape = t.shape
        t = t.reshape(heads, cfg.head_dim, -1)[:, back].reshape(shape)  # rows (or bias entries) of each head
    if family == "gemma" and name.endswith(("ln1.weight", "ln2.weight", "ln_final.weight")):
        t = 1.0 + t  # Gemma's (1 + w), formed once here rather than on every call
    return t.contiguous()


def load_hf_model(folder, available_bytes: Optional[int] = None):
    """The folder's model as an eval-mode fp32 Transformer with no grad. Checks first (`inspect_hf_folder`;
    the tokenizer is not needed here), then reads one tensor at a time, so the peak is the fp32 model plus one
    tensor, not two copies of the model."""
    import torch
    from safetensors import safe_open

    from model.net.transformer import Transformer

    info = inspect_hf_folder(folder, available_bytes, need_tokenizer=False)
    cfg = info.config
    state = {}
    for f in info.weight_files:
        with safe_open(str(f), framework="pt") as h:
            for hf in h.keys():
                ours = _our_name(hf, cfg)
                if ours is None:
                    continue
                t = _to_ours(ours, h.get_tensor(hf), cfg, info.family)
                if not torch.isfinite(t).all():
                    raise ValueError(f"{f.name}: NaN or inf in {hf} (a corrupted or diverged checkpoint)")
                state[ours] = t
    with torch.device("meta"):  # the weights come from the file: skip the random init of a large model
        model = Transformer(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def load_hf_tokenizer(folder):
    """The folder's tokenizer.json (model/text/hf_tokenizer.py), or ValueError when there is none."""
    from model.text.hf_tokenizer import HFTokenizer

    folder = Path(folder).expanduser()
    if not (folder / "tokenizer.json").is_file():
        raise ValueError(_no_tokenizer_message(folder))
    return HFTokenizer.from_file(folder / "tokenizer.json", config=_maybe_config(folder))


def _maybe_config(folder: Path) -> Optional[dict]:
    try:
        return read_config(folder)
    except ValueError:
        return None
