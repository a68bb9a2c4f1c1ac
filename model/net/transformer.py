"""A small Llama-style decoder whose every step can be captured.

Read top to bottom: RMSNorm (and LayerNorm) and the mask → attention → SwiGLU MLP (and the plain GELU MLP,
and the mixture of experts) → block → the model. Around it, one module each: the config (`config.py`), hook
points (`hooks.py`), position signals (`positions.py`), the KV cache (`kv_cache.py`); sampling lives outside
the model (`model/decoding/sampling.py`), as in llama2.c.

Our model is pre-norm RMSNorm + SwiGLU. The alternatives the architecture comparison trains (ModelConfig's
`norm`, `norm_position`, `mlp`, `n_experts`) live beside what they replace, so each is one class or one branch.

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
from model.net.positions import alibi_slopes, apply_rope, rope_angles, rope_attention_factor, sinusoidal_table

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


class LayerNorm(nn.Module):
    """(x - mean(x)) / sqrt(var(x) + eps) * weight + bias (Ba et al. 2016; GPT-2's norm): RMSNorm plus the
    centring and a bias. The variance is the biased one, as `F.layer_norm` takes it."""

    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))
        self.hook_normalized = HookPoint()  # after weight and bias, as RMSNorm's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(-1, keepdim=True)  # (B, T, d) centred
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)  # (B, T, d)
        return self.hook_normalized(x * self.weight + self.bias)  # (B, T, d)


def make_norm(cfg: ModelConfig) -> nn.Module:
    return (LayerNorm if cfg.norm == "layernorm" else RMSNorm)(cfg.d_model, cfg.norm_eps)


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
            f = rope_attention_factor(cfg.rope_scaling)  # 1, or YaRN's: q·k grows by f²
            q = self.hook_rot_q(apply_rope(q, angles, f))  # (B, T, nh, hd)
            k = self.hook_rot_k(apply_rope(k, angles, f))  # (B, T, nkv, hd)
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


def activation(name: str):
    """cfg.mlp_act as a function: SiLU, or GELU's tanh approximation (Gemma's GeGLU; GPT-2's "gelu_new")."""
    return F.silu if name == "silu" else partial(F.gelu, approximate="tanh")


class MLP(nn.Module):
    """SwiGLU: W_down(silu(W_gate x) * W_up x) — three matrices, not two. Gemma's GeGLU is the same with the
    tanh approximation of GELU in place of SiLU (cfg.mlp_act)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.act = activation(cfg.mlp_act)
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


class PlainMLP(nn.Module):
    """Two matrices: W_out act(W_in x) — GPT-2's MLP with act = gelu_tanh (its "gelu_new"), without its biases
    (none of our matrices has one). The comparison's width is 768 = 4·d_model: 2·192·768 = 294,912 weights,
    exactly SwiGLU's 3·192·512, so the two MLPs differ in shape, not in size."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.act = activation(cfg.mlp_act)
        self.W_in = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.W_out = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)
        self.hook_pre = HookPoint()  # [pos, d_mlp] W_in x (TransformerLens: hook_pre)
        self.hook_post = HookPoint()  # [pos, d_mlp] act(W_in x) (TransformerLens: hook_post)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(self.W_in(x))  # (B, T, d_mlp)
        post = self.hook_post(self.act(pre))  # (B, T, d_mlp)
        return self.W_out(post)  # (B, T, d)


class Expert(nn.Module):
    """One expert of a mixture: the gated MLP's three matrices, without hook points — it runs on the tokens
    routed to it, a ragged subset with no batch or position axis; MoE's hooks capture what it computes."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.act = activation(cfg.mlp_act)
        self.W_gate = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.W_up = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.W_down = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.W_down(self.act(self.W_gate(x)) * self.W_up(x))  # (n, d_mlp) → (n, d)


class MoE(nn.Module):
    """Top-k mixture of experts with Mixtral's routing: a linear router (no bias) scores the n_experts experts
    for each token, the token goes to the k with the highest logits, and the MLP's output is their outputs
    weighted by the softmax of those k logits. (transformers' Mixtral takes the softmax over all experts, keeps
    the top k and renormalises them: the same weights, since e^l_i / Σ_all renormalised over the kept ones is
    e^l_i / Σ_kept.)

    Each expert runs once per call on exactly the tokens routed to it (gathered, then scattered back), so a
    token costs k experts' FLOPs, not n_experts' — plain matmuls that FlopCounterMode counts. Every expert runs
    even on zero tokens: its (0, d) matmul then gives a zero gradient rather than none, so AdamW steps every
    parameter every step as in a dense model (and a saved optimizer state has every expert). Nothing is stored
    on the module: the router logits reach the training loss through `hook_router_logits` (see
    `load_balancing_loss`), the way any capture does — the app shares one model across sessions.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.k = cfg.experts_per_token
        self.router = nn.Linear(cfg.d_model, cfg.n_experts, bias=False)
        self.experts = nn.ModuleList(Expert(cfg) for _ in range(cfg.n_experts))
        self.hook_router_logits = HookPoint()  # [pos, expert] the router's logits, before any softmax
        self.hook_expert_indices = HookPoint()  # [pos, k] the chosen experts, highest logit first (int64)
        self.hook_expert_weights = HookPoint()  # [pos, k] their weights: softmax over the k chosen logits
        self.hook_expert_out = HookPoint()  # [pos, k, d_model] each chosen expert's output, before weighting

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        k = self.k
        logits = self.hook_router_logits(self.router(x))  # (B, T, E)
        top, idx = logits.topk(k, dim=-1)  # (B, T, k) each, highest first
        idx = self.hook_expert_indices(idx)  # (B, T, k)
        # At least fp32, as Mixtral's router: under bf16 autocast the logits are bf16.
        weights = F.softmax(top, dim=-1, dtype=torch.promote_types(top.dtype, torch.float32))  # (B, T, k)
        weights = self.hook_expert_weights(weights)  # (B, T, k)
        flat, flat_idx = x.reshape(B * T, d), idx.reshape(B * T, k)  # (n, d), (n, k): every token of the batch
        out = flat.new_zeros(B * T, k, d)  # (n, k, d) each token's k expert outputs
        for e, expert in enumerate(self.experts):
            tok, slot = (flat_idx == e).nonzero(as_tuple=True)  # (n_e,) tokens routed to e, and which choice it was
            out[tok, slot] = expert(flat[tok]).to(out.dtype)  # (n_e, d)
        out = self.hook_expert_out(out.view(B, T, k, d))  # (B, T, k, d)
        return (weights.to(out.dtype)[..., None] * out).sum(-2)  # (B, T, d) not einsum: no matmul to count


def load_balancing_loss(router_logits: list[torch.Tensor], k: int) -> torch.Tensor:
    """The auxiliary loss that keeps a router from sending every token to the same experts: Switch Transformer's
    (Fedus et al. 2021, eqs. 4–6), as transformers' Mixtral computes it (`load_balancing_loss_func` in
    transformers/models/mixtral/modeling_mixtral.py, v5.25): over the tokens of every layer at once,
    f_i = the share of (token, layer) rows with expert i among their k choices, P_i = the mean router
    probability of expert i (softmax over all experts), loss = E · Σ_i f_i · P_i. The choices are counted, so
    f has no gradient; P carries it, pulling probability away from the busiest experts. Evenly routed
    (f_i = k/E, P_i = 1/E) the loss is k; every token on the same k experts with all the probability, E.

    router_logits: each MoE layer's `hook_router_logits` (any leading shape, E last).
    """
    logits = torch.cat([r.reshape(-1, r.shape[-1]) for r in router_logits]).float()  # (L·n, E)
    E = logits.shape[-1]
    probs = F.softmax(logits, dim=-1)  # (L·n, E)
    chosen = logits.topk(k, dim=-1).indices  # (L·n, k) the forward's own choices (top-k of the same logits)
    f = F.one_hot(chosen, E).sum(1).float().mean(0)  # (E,) Σ_i f_i = k
    P = probs.mean(0)  # (E,) Σ_i P_i = 1
    return E * (f * P).sum()


def make_mlp(cfg: ModelConfig) -> nn.Module:
    if cfg.n_experts:
        return MoE(cfg)
    return PlainMLP(cfg) if cfg.mlp == "plain" else MLP(cfg)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then + mlp(norm(x)). Post-norm (cfg.norm_position = "post",
    the original Transformer's, Vaswani et al. 2017): x = norm(x + attn(x)), then norm(x + mlp(x))."""

    def __init__(self, cfg: ModelConfig, layer: int, dropout: float = 0.0) -> None:
        super().__init__()
        # Residual dropout (GPT-2's place: on what each sublayer adds). Active only in train(); the app, the
        # cache and every hook run in eval(), where it is the identity. Not inside attention, so the fused
        # kernel and the explicit path still see the same numbers while training.
        self.drop = nn.Dropout(dropout)
        self.pre_norm = cfg.norm_position == "pre"
        # Post-norm keeps the names: ln1 follows attention's residual add, ln2 the MLP's.
        self.ln1 = make_norm(cfg)
        self.attn = Attention(cfg, layer)
        self.ln2 = make_norm(cfg)
        self.mlp = make_mlp(cfg)
        self.hook_resid_pre = HookPoint()  # [pos, d_model]
        self.hook_attn_out = HookPoint()  # [pos, d_model] what attention adds to the stream
        self.hook_resid_mid = HookPoint()  # [pos, d_model]
        self.hook_mlp_out = HookPoint()  # [pos, d_model] what the MLP adds
        self.hook_resid_post = HookPoint()  # [pos, d_model]

    def forward(self, x, positions, cache=None, fused=False):
        x = self.hook_resid_pre(x)  # (B, T, d)
        if self.pre_norm:
            attn_out = self.hook_attn_out(self.drop(self.attn(self.ln1(x), positions, cache, fused)))  # (B, T, d)
            x = self.hook_resid_mid(x + attn_out)  # (B, T, d)
            mlp_out = self.hook_mlp_out(self.drop(self.mlp(self.ln2(x))))  # (B, T, d)
            return self.hook_resid_post(x + mlp_out)  # (B, T, d)
        # Post-norm: the norm sits on the stream itself, so resid_mid and resid_post are normalised vectors.
        attn_out = self.hook_attn_out(self.drop(self.attn(x, positions, cache, fused)))  # (B, T, d)
        x = self.hook_resid_mid(self.ln1(x + attn_out))  # (B, T, d)
        mlp_out = self.hook_mlp_out(self.drop(self.mlp(x)))  # (B, T, d)
        return self.hook_resid_post(self.ln2(x + mlp_out))  # (B, T, d)


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
        # Post-norm has no final norm, as in Vaswani et al. 2017 (and GPT-1, BERT): its last block already ends
        # in a norm, so the unembedding reads a normalised vector either way. Pre-norm needs one — its stream is
        # never normalised, and grows ~60× over our 4 blocks — which is why GPT-2 added it. A second norm
        # right after post-norm's last one would only add another gain (d parameters) to a normalised vector.
        self.ln_final = make_norm(cfg) if cfg.norm_position == "pre" else None
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
            if name.endswith(".bias"):  # Qwen2's q/k/v biases, LayerNorm's (none in the others: their draws are unchanged)
                with torch.no_grad():
                    p.zero_()
                continue
            residual_out = name.endswith(("W_o.weight", "W_down.weight", "W_out.weight"))  # experts' W_down too
            std = 0.02 / math.sqrt(2 * self.cfg.n_layers) if residual_out else 0.02
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
        if self.ln_final is not None:  # None: post-norm (see __init__)
            x = self.ln_final(x)  # (B, T, d)
        return F.linear(x, self.W_U)  # (B, T, V)
