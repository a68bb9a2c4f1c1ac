"""A small Llama-style decoder whose every step can be captured.

Read top to bottom: RMSNorm and the mask → attention → SwiGLU MLP → block → the model. Around it, one
module each: the config (`config.py`), hook points (`hooks.py`), position signals (`positions.py`), the KV
cache (`kv_cache.py`); sampling lives outside the model (`model/decoding/sampling.py`), as in llama2.c.

Attention is computed explicitly — scores, mask, softmax, weighted sum — so every intermediate can be shown.
`fused=True` swaps in `F.scaled_dot_product_attention` for training speed; tests check both give the same
numbers. Hook names follow TransformerLens (`blocks.0.attn.hook_pattern`, `hook_attn_scores`,
`blocks.0.mlp.hook_pre` / `hook_pre_linear` / `hook_post`); where ours differ, the comment says why.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.net.config import ModelConfig
from model.net.hooks import HookPoint
from model.net.kv_cache import KVCache
from model.net.positions import alibi_slopes, apply_rope, rope_angles, sinusoidal_table

# --------------------------------------------------------------------------------------------------------
# Leaves: norm and mask
# --------------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """x / rms(x) * weight. No mean subtraction, no bias (Llama). Gemma's norm multiplies by (1 + w): its
    import stores 1 + w here (model/net/hf_import.py), the very fp32 sum transformers forms on every call."""

    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        # After the weight (unlike TransformerLens, which folds it away): this is what the next layer reads,
        # and what the logit lens needs for ln_final.
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)  # (B, T, d)
        return self.hook_normalized(x * self.weight)  # (B, T, d)


def attention_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: Optional[int]) -> torch.Tensor:
    """True where query at q_pos may read key at k_pos: causal, and within the sliding window if any."""
    rel = q_pos[:, None] - k_pos[None, :]  # (T, Tk) distance back from the query
    allowed = rel >= 0
    if window is not None:
        allowed = allowed & (rel < window)
    return allowed  # (T, Tk)


# --------------------------------------------------------------------------------------------------------
# Attention, MLP, block
# --------------------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Grouped-query attention: n_heads query heads share n_kv_heads K/V heads (g = n_heads / n_kv_heads each)."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.cfg, self.layer = cfg, layer
        nh, nkv, hd, d = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.d_model
        self.W_q = nn.Linear(d, nh * hd, bias=cfg.qkv_bias)  # biases only in imported Qwen2 models
        self.W_k = nn.Linear(d, nkv * hd, bias=cfg.qkv_bias)
        self.W_v = nn.Linear(d, nkv * hd, bias=cfg.qkv_bias)
        self.W_o = nn.Linear(nh * hd, d, bias=False)
        self.window = cfg.layer_window(layer)  # None = full causal attention in this layer
        self.hook_q = HookPoint()  # [pos, head, d_head] before rotation
        self.hook_k = HookPoint()  # [pos, kv_head, d_head] before rotation
        self.hook_v = HookPoint()  # [pos, kv_head, d_head]
        if cfg.pos_encoding == "rope":
            self.hook_rot_q = HookPoint()  # [pos, head, d_head] after RoPE
            self.hook_rot_k = HookPoint()  # [pos, kv_head, d_head] after RoPE
        if cfg.pos_encoding == "alibi":
            self.register_buffer("slopes", alibi_slopes(nh), persistent=False)  # (nh,)
        self.hook_attn_scores = HookPoint()  # [head, query_pos, key_pos] scaled, + ALiBi bias, masked (-inf)
        self.hook_pattern = HookPoint()  # [head, query_pos, key_pos] softmax of the scores; rows sum to 1
        self.hook_z = HookPoint()  # [pos, head, d_head] pattern-weighted values, before W_o

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        cache: Optional[KVCache] = None,
        fused: bool = False,
    ) -> torch.Tensor:
        cfg = self.cfg
        B, T, _ = x.shape
        nh, nkv, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        q = self.hook_q(self.W_q(x).view(B, T, nh, hd))  # (B, T, nh, hd)
        k = self.hook_k(self.W_k(x).view(B, T, nkv, hd))  # (B, T, nkv, hd)
        v = self.hook_v(self.W_v(x).view(B, T, nkv, hd))  # (B, T, nkv, hd)
        if cfg.pos_encoding == "rope":
            angles = rope_angles(positions, hd, cfg.rope_theta, cfg.rope_scaling)  # (T, hd/2)
            q = self.hook_rot_q(apply_rope(q, angles))  # (B, T, nh, hd)
            k = self.hook_rot_k(apply_rope(k, angles))  # (B, T, nkv, hd)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, hd)

        # The cache stores rotated keys: RoPE of a key depends only on its own position, so it never changes.
        k_pos = positions
        if cache is not None:
            k, v, k_pos = cache.update(self.layer, k, v, positions)  # (B, nkv, Tk, hd), Tk = cached + T

        # GQA: K/V head j serves query heads j*g … j*g+g-1 (Llama's repeat_kv order).
        g = cfg.group_size
        k = k.repeat_interleave(g, dim=1) if g > 1 else k  # (B, nh, Tk, hd)
        v = v.repeat_interleave(g, dim=1) if g > 1 else v  # (B, nh, Tk, hd)

        allowed = attention_mask(positions, k_pos, self.window)  # (T, Tk)
        bias = None
        if cfg.pos_encoding == "alibi":
            dist = (positions[:, None] - k_pos[None, :]).to(x.dtype)  # (T, Tk) how far back each key is
            bias = -self.slopes[:, None, None] * dist  # (nh, T, Tk) linear penalty on distance

        if fused:
            mask = allowed if bias is None else bias.masked_fill(~allowed, float("-inf"))
            z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hd)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(hd)  # (B, nh, T, Tk)
            if bias is not None:
                scores = scores + bias
            scores = self.hook_attn_scores(scores.masked_fill(~allowed, float("-inf")))  # (B, nh, T, Tk)
            pattern = self.hook_pattern(F.softmax(scores, dim=-1))  # (B, nh, T, Tk)
            z = pattern @ v  # (B, nh, T, hd)
        z = self.hook_z(z.transpose(1, 2))  # (B, T, nh, hd)
        return self.W_o(z.reshape(B, T, nh * hd))  # (B, T, d)


class MLP(nn.Module):
    """SwiGLU: W_down(silu(W_gate x) * W_up x) — three matrices, not two. Gemma's GeGLU is the same with the
    tanh approximation of GELU in place of SiLU (cfg.mlp_act)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.act = F.silu if cfg.mlp_act == "silu" else partial(F.gelu, approximate="tanh")
        self.W_gate = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.W_up = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.W_down = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)
        self.hook_pre = HookPoint()  # [pos, d_mlp] W_gate x, before SiLU (TransformerLens: hook_pre)
        self.hook_pre_linear = HookPoint()  # [pos, d_mlp] W_up x (TransformerLens: hook_pre_linear)
        self.hook_post = HookPoint()  # [pos, d_mlp] act(gate) * up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.hook_pre(self.W_gate(x))  # (B, T, d_mlp)
        up = self.hook_pre_linear(self.W_up(x))  # (B, T, d_mlp)
        post = self.hook_post(self.act(gate) * up)  # (B, T, d_mlp)
        return self.W_down(post)  # (B, T, d)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig, layer: int, dropout: float = 0.0) -> None:
        super().__init__()
        # Residual dropout (GPT-2's place: on what each sublayer adds). Active only in train(); the app, the
        # cache and every hook run in eval(), where it is the identity. Not inside attention, so the fused
        # kernel and the explicit path still see the same numbers while training.
        self.drop = nn.Dropout(dropout)
        self.ln1 = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, layer)
        self.ln2 = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)
        self.hook_resid_pre = HookPoint()  # [pos, d_model]
        self.hook_attn_out = HookPoint()  # [pos, d_model] what attention adds to the stream
        self.hook_resid_mid = HookPoint()  # [pos, d_model]
        self.hook_mlp_out = HookPoint()  # [pos, d_model] what the MLP adds
        self.hook_resid_post = HookPoint()  # [pos, d_model]

    def forward(self, x, positions, cache=None, fused=False):
        x = self.hook_resid_pre(x)  # (B, T, d)
        attn_out = self.hook_attn_out(self.drop(self.attn(self.ln1(x), positions, cache, fused)))  # (B, T, d)
        x = self.hook_resid_mid(x + attn_out)  # (B, T, d)
        mlp_out = self.hook_mlp_out(self.drop(self.mlp(self.ln2(x))))  # (B, T, d)
        return self.hook_resid_post(x + mlp_out)  # (B, T, d)


# --------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig, dropout: float = 0.0, init_seed: int = 0) -> None:
        """`dropout` is a training knob, not part of the architecture: it has no parameters, is the identity
        in eval(), and so is not in ModelConfig (the shipped config.json, the calculators) — see TrainConfig."""
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.cfg = cfg
        self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.hook_embed = HookPoint()  # [pos, d_model] token embeddings
        if cfg.pos_encoding == "learned":
            self.pos_embed = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        if cfg.pos_encoding in ("learned", "sinusoidal"):
            self.hook_pos_embed = HookPoint()  # [pos, d_model] absolute position vectors added to the stream
        self.embed_drop = nn.Dropout(dropout)  # on the input stream (token + absolute position), as GPT-2
        self.blocks = nn.ModuleList(Block(cfg, i, dropout) for i in range(cfg.n_layers))
        self.ln_final = RMSNorm(cfg.d_model, cfg.norm_eps)
        if not cfg.tie_embeddings:
            self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._init_weights(init_seed)
        for name, m in self.named_modules():
            if isinstance(m, HookPoint):
                m.name = name

    def _init_weights(self, seed: int) -> None:
        # GPT-2's scheme: N(0, 0.02), and the two projections that write into the residual stream scaled by
        # 1/sqrt(2L) so the stream's variance does not grow with depth. Seeded apart from torch's global
        # generator, so the shipped variants all start from seed 0 and extra training seeds change it.
        g = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if name.endswith("ln1.weight") or name.endswith("ln2.weight") or name == "ln_final.weight":
                continue
            if name.endswith(".bias"):  # Qwen2's q/k/v biases (none in our variants, so their draws are unchanged)
                with torch.no_grad():
                    p.zero_()
                continue
            std = 0.02 / math.sqrt(2 * self.cfg.n_layers) if name.endswith(("W_o.weight", "W_down.weight")) else 0.02
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * std)

    @property
    def embed_scale(self) -> float:
        """What the token embedding is multiplied by before positions are added (`ModelConfig.token_scale`:
        Gemma's √d_model, √d_model for the sinusoidal variant as in Vaswani et al. §3.4, 1 for every other)."""
        return self.cfg.token_scale

    @property
    def W_U(self) -> torch.Tensor:
        """Unembedding matrix (V, d): the token embedding itself when tied."""
        return self.tok_embed.weight if self.cfg.tie_embeddings else self.unembed.weight

    def hook_names(self) -> list[str]:
        return [name for name, m in self.named_modules() if isinstance(m, HookPoint)]

    def forward(self, ids: torch.Tensor, cache: Optional[KVCache] = None, fused: bool = False) -> torch.Tensor:
        """ids (B, T) → logits (B, T, V). With a cache, the T tokens continue what it holds (llama2.c style)."""
        cfg = self.cfg
        B, T = ids.shape
        start = cache.length if cache is not None else 0
        if cfg.pos_encoding == "learned" and start + T > cfg.max_seq_len:
            raise ValueError(
                f"position {start + T - 1} is past the learned position table (max_seq_len={cfg.max_seq_len})"
            )
        positions = torch.arange(start, start + T, device=ids.device)  # (T,)
        x = self.hook_embed(self.tok_embed(ids))  # (B, T, d) the rows of the embedding table, as stored
        if self.embed_scale != 1.0:
            # Vaswani et al. (§3.4) multiply the embeddings by √d: the fixed table has unit amplitude (norm
            # ≈ √(d/2)), and without the scale it drowns token embeddings initialised at std 0.02 — we trained
            # it that way once and the model never got past 5.1 nats/token. Gemma does the same without any
            # table. After the hook, so hook_embed is always the table's own row (TransformerLens's meaning)
            # and pages show the scale as a step.
            x = x * self.embed_scale  # (B, T, d)
        if cfg.pos_encoding == "learned":
            x = x + self.hook_pos_embed(self.pos_embed(positions)[None])  # (B, T, d) + (1, T, d)
        elif cfg.pos_encoding == "sinusoidal":
            x = x + self.hook_pos_embed(sinusoidal_table(positions, cfg.d_model).to(x.dtype)[None])  # (B, T, d) + (1, T, d)
        x = self.embed_drop(x)  # (B, T, d)
        for block in self.blocks:
            x = block(x, positions, cache, fused)  # (B, T, d)
        if cache is not None:
            cache.advance(T)
        x = self.ln_final(x)  # (B, T, d)
        return F.linear(x, self.W_U)  # (B, T, V)
