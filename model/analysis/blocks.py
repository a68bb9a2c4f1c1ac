"""The building blocks of one block, taken apart on a real trace, for whichever block the loaded model has:
its norm step by step on one token's vector (RMSNorm, or LayerNorm with its mean and bias; the other formula on
the same vector for comparison), read before each sublayer (pre-norm) or after each residual add (post-norm);
the residual stream's norm through the layers; the MLP — SwiGLU (or GeGLU), GPT-2's plain GELU MLP, or a mixture
of experts (the router's choices, the load on each expert over held-out text, the tokens each expert gets most);
and the per-block gradient norms and residual RMS a training run logged (`train_log.json`'s `diagnostics`).
Plain NumPy in and out.

Non-goals: running the model (pages trace it, cached), and any claim a number does not carry: what a random
or trained model "should" do is for the page's sentences to state from these numbers, not for this module.
"""

from __future__ import annotations

import math

import numpy as np

# --------------------------------------------------------------------------------------------------------
# RMSNorm, one vector at a time
# --------------------------------------------------------------------------------------------------------

# Which norm a page can pick: (input hook, output hook, weight's parameter name) for layer l. The final norm
# reads the stream after the last block and ignores l.
NORMS = {
    "attn": "before attention (ln1)",
    "mlp": "before the MLP (ln2)",
    "final": "final, before the unembedding (ln_final)",
}
# A post-norm block (ModelConfig.norm_position = "post") has its two norms after the residual adds, and the model
# has no final norm.
POST_NORMS = {
    "attn": "after attention's residual add (ln1)",
    "mlp": "after the MLP's residual add (ln2)",
}


def norm_choices(position: str = "pre") -> dict[str, str]:
    """The norms a model with this `ModelConfig.norm_position` has, as a page offers them."""
    return POST_NORMS if position == "post" else NORMS


def norm_hooks(which: str, layer: int, n_layers: int, position: str = "pre") -> tuple[str, str, str]:
    """(input, output hook, weight parameter) of a norm. The input is a hook name, or for post-norm the two
    hooks whose sum the norm reads (the residual add itself has no hook): `norm_input` adds them.

    norm_hooks("mlp", 2, 4) -> ("blocks.2.hook_resid_mid", "blocks.2.ln2.hook_normalized", "blocks.2.ln2.weight")
    norm_hooks("mlp", 2, 4, "post") -> ("blocks.2.hook_resid_mid + blocks.2.hook_mlp_out", "blocks.2.ln2.hook_normalized", …)
    """
    if which not in norm_choices(position):
        raise ValueError(f"unknown norm {which!r}: one of {', '.join(norm_choices(position))}")
    if position == "post":
        if which == "attn":
            return (f"blocks.{layer}.hook_resid_pre + blocks.{layer}.hook_attn_out",
                    f"blocks.{layer}.ln1.hook_normalized", f"blocks.{layer}.ln1.weight")
        return (f"blocks.{layer}.hook_resid_mid + blocks.{layer}.hook_mlp_out", f"blocks.{layer}.ln2.hook_normalized",
                f"blocks.{layer}.ln2.weight")
    if which == "attn":
        return f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.ln1.hook_normalized", f"blocks.{layer}.ln1.weight"
    if which == "mlp":
        return f"blocks.{layer}.hook_resid_mid", f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.ln2.weight"
    return f"blocks.{n_layers - 1}.hook_resid_post", "ln_final.hook_normalized", "ln_final.weight"


def norm_input(acts, src: str) -> np.ndarray:
    """The vector(s) a norm reads, from a trace's hooks: `src` as `norm_hooks` names it, one hook or "a + b" (the
    post-norm residual add, summed in float32 as the model adds them)."""
    parts = [np.asarray(acts[name.strip()]) for name in src.split(" + ")]
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def rmsnorm_steps(x: np.ndarray, g: np.ndarray, eps: float) -> dict:
    """Every intermediate of RMSNorm on one vector x (d,) with learned weight g (d,), in float64:

        rms = sqrt(mean(x²) + eps),   x̂ = x / rms,   out = x̂ · g

    The model computes the same in float32 (`RMSNorm.forward`); the two agree to ~1e-6. Also the norms a
    caption quotes: ‖x̂‖ is √d·sqrt(ms / (ms + eps)) — √d for any vector not tiny next to eps.
    x = [3, 4], g = [1, 1], eps = 0 -> rms = √12.5 ≈ 3.536, x̂ ≈ [0.849, 1.131], ‖x̂‖ = √2.
    """
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    ms = float(np.mean(x * x))
    rms = math.sqrt(ms + eps)
    x_hat = x / rms
    out = x_hat * g
    return dict(x=x, g=g, x_hat=x_hat, out=out, ms=ms, rms=rms, eps=float(eps),
                x_norm=float(np.linalg.norm(x)), x_hat_norm=float(np.linalg.norm(x_hat)),
                out_norm=float(np.linalg.norm(out)))


def layernorm_steps(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> dict:
    """Every intermediate of LayerNorm on one vector x (d,) with learned weight w and bias b (d,), in float64:

        mean = mean(x),   c = x − mean,   std = sqrt(mean(c²) + eps),   x̂ = c / std,   out = x̂ · w + b

    The model computes the same in float32 (`LayerNorm.forward`: the biased variance, as F.layer_norm). std is
    the rms of the centred vector, so LayerNorm is RMSNorm applied to x − mean, plus a bias.
    x = [1, 3], w = [1, 1], b = [0, 0.5], eps = 0 -> mean 2, c = [−1, 1], std 1, out [−1, 1.5].
    """
    x = np.asarray(x, dtype=np.float64)
    w, b = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mean = float(np.mean(x))
    c = x - mean
    var = float(np.mean(c * c))
    std = math.sqrt(var + eps)
    x_hat = c / std
    out = x_hat * w + b
    return dict(x=x, mean=mean, centred=c, var=var, std=std, eps=float(eps), x_hat=x_hat, w=w, b=b, out=out,
                x_norm=float(np.linalg.norm(x)), centred_norm=float(np.linalg.norm(c)),
                x_hat_norm=float(np.linalg.norm(x_hat)), out_norm=float(np.linalg.norm(out)))


def layernorm_formula(x: np.ndarray, eps: float) -> dict:
    """The LayerNorm formula (no learned gain or bias) on one vector: (x − mean) / sqrt(var + eps), in float64.

    Not a trained LayerNorm (that is `layernorm_steps`, with the model's weight and bias): it shows what the
    subtraction of the mean changes next to RMSNorm's x / rms — for a vector whose mean is small next to its
    rms, almost nothing.
    x = [1, 3], eps = 0 -> mean 2, std 1, out [-1, 1].
    """
    x = np.asarray(x, dtype=np.float64)
    mean = float(np.mean(x))
    var = float(np.mean((x - mean) ** 2))
    std = math.sqrt(var + eps)
    return dict(mean=mean, std=std, out=(x - mean) / std)


# --------------------------------------------------------------------------------------------------------
# The residual stream's norm, stage by stage
# --------------------------------------------------------------------------------------------------------


def residual_stages(n_layers: int) -> list[tuple[str, str]]:
    """(hook name, display name) of every point where the stream can be read: before block 0 (the embedding),
    then after each block's attention and after its MLP.

    residual_stages(1) -> [("blocks.0.hook_resid_pre", "embedding"), ("blocks.0.hook_resid_mid", "0: +attention"),
                           ("blocks.0.hook_resid_post", "0: +MLP")]
    """
    out = [("blocks.0.hook_resid_pre", "embedding")]
    for l in range(n_layers):
        out += [(f"blocks.{l}.hook_resid_mid", f"{l}: +attention"), (f"blocks.{l}.hook_resid_post", f"{l}: +MLP")]
    return out


def residual_norms(resids: np.ndarray) -> dict:
    """resids (S, T, d): the stream at each stage -> its L2 norm per (stage, position), the median per stage,
    and how many times the median grows from the first stage to the last (`growth`)."""
    norms = np.linalg.norm(np.asarray(resids, dtype=np.float64), axis=-1)  # (S, T)
    median = np.median(norms, axis=1)  # (S,)
    growth = float(median[-1] / median[0]) if median[0] > 0 else float("inf")
    return dict(norms=norms, median=median, growth=growth)


# --------------------------------------------------------------------------------------------------------
# The gated MLP: SwiGLU (ours, Llama) or GeGLU (Gemma)
# --------------------------------------------------------------------------------------------------------

ACT_NAMES = {"silu": "SiLU", "gelu_tanh": "GELU"}  # cfg.mlp_act -> how a page names the gate's nonlinearity
GLU_NAMES = {"silu": "SwiGLU", "gelu_tanh": "GeGLU"}


def activation(gate: np.ndarray, act: str) -> np.ndarray:
    """The gate's nonlinearity as `model.MLP` applies it, in NumPy: SiLU(z) = z·σ(z), or GELU's tanh form
    0.5·z·(1 + tanh(√(2/π)·(z + 0.044715·z³))). silu(0) = 0, silu(large z) ≈ z, silu(−large z) ≈ 0."""
    z = np.asarray(gate, dtype=np.float64)
    if act == "silu":
        return z / (1.0 + np.exp(-np.clip(z, -700, 700)))  # clip: exp overflow for very negative z
    if act == "gelu_tanh":
        return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)))
    raise ValueError(f"unknown MLP activation {act!r}")


def top_neurons(post: np.ndarray, n: int) -> np.ndarray:
    """post (T, d_mlp): act(gate)·up at every position -> the n neurons with the largest max |post| over the
    prompt, largest first (ties: lower index first)."""
    peak = np.abs(np.asarray(post)).max(axis=0)  # (d_mlp,)
    n = max(0, min(n, peak.shape[0]))
    return np.argsort(-peak, kind="stable")[:n]


def firing_positions(post: np.ndarray, neurons: np.ndarray, k: int) -> np.ndarray:
    """For each neuron, the k positions where |post| is largest, largest first: (len(neurons), min(k, T))."""
    a = np.abs(np.asarray(post))[:, np.asarray(neurons, dtype=np.int64)].T  # (N, T)
    k = max(0, min(k, a.shape[1]))
    return np.argsort(-a, axis=1, kind="stable")[:, :k]


def describe(cfg) -> dict:
    """What a page calls the loaded model's parts, from its config: the norm ("RMSNorm" / "LayerNorm"), where it
    sits ("pre" / "post"), and the MLP ("SwiGLU", "GeGLU", "GELU MLP", "mixture of experts") with its
    nonlinearity. describe(variant_config("gqa-gelu"))["mlp"] -> "GELU MLP"."""
    act = ACT_NAMES.get(cfg.mlp_act, cfg.mlp_act)
    if cfg.n_experts:
        mlp = "mixture of experts"
    elif cfg.mlp == "plain":
        mlp = f"{act} MLP"
    else:
        mlp = GLU_NAMES.get(cfg.mlp_act, "gated MLP")
    return dict(norm="LayerNorm" if cfg.norm == "layernorm" else "RMSNorm", position=cfg.norm_position, mlp=mlp,
                act=act, expert=GLU_NAMES.get(cfg.mlp_act, "gated MLP"))


# --------------------------------------------------------------------------------------------------------
# A mixture of experts: the router's choices, the load on each expert, what each one gets
# --------------------------------------------------------------------------------------------------------


def expert_counts(indices: np.ndarray, n_experts: int) -> np.ndarray:
    """indices (..., N, k): the experts chosen for N tokens (a layer's `hook_expert_indices`, any leading axes such
    as layers) -> (..., E) how many tokens chose each expert (a token counts once per expert it uses, so the
    counts add up to N·k). expert_counts([[0, 2], [2, 1]], 4) -> [1, 1, 2, 0]."""
    idx = np.asarray(indices, dtype=np.int64)
    lead = idx.shape[:-2]
    flat = idx.reshape(-1, idx.shape[-2] * idx.shape[-1])  # (…, N·k)
    out = np.stack([np.bincount(r, minlength=n_experts)[:n_experts] for r in flat])
    return out.reshape(*lead, n_experts)


def balance_loss(router_logits: np.ndarray, k: int) -> float:
    """Switch Transformer's load-balancing loss on router logits (N, E), in NumPy: E · Σ_i f_i · P_i with f_i the
    share of tokens that chose expert i among their top k, P_i its mean softmax probability — the training loss's
    auxiliary term (`model.net.transformer.load_balancing_loss`), for one layer. Evenly routed it is k; every token
    on the same k experts with all the probability, E."""
    z = np.asarray(router_logits, dtype=np.float64)
    N, E = z.shape
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    chosen = np.argsort(-z, axis=-1, kind="stable")[:, :k]  # (N, k)
    f = expert_counts(chosen, E) / N  # (E,) Σ = k
    return float(E * np.sum(f * p.mean(0)))


def expert_tokens(ids: np.ndarray, indices: np.ndarray, n_experts: int, min_count: int, top: int) -> list[list[tuple]]:
    """What each expert gets, over a stretch of text: ids (N,) and one layer's chosen experts (N, k). For each
    expert, the `top` token ids (seen at least `min_count` times) that are routed to it most consistently:
    (id, times routed to it, times seen), by the share routed (then by count, then id). A token a frequent one
    overall but split between experts ranks below a rarer one that always goes to the same expert."""
    ids = np.asarray(ids, dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64)
    seen = np.bincount(ids)
    out = []
    for e in range(n_experts):
        hit = np.bincount(ids[(idx == e).any(-1)], minlength=len(seen))  # tokens routed to e (once, whatever slot)
        cand = np.nonzero((seen >= min_count) & (hit > 0))[0]
        share = hit[cand] / seen[cand]
        order = np.lexsort((cand, -hit[cand], -share))[:top]  # share, then count, descending; then id
        out.append([(int(cand[i]), int(hit[cand[i]]), int(seen[cand[i]])) for i in order])
    return out


# --------------------------------------------------------------------------------------------------------
# What a training run logged: per-block gradient norms and the residual stream's RMS
# --------------------------------------------------------------------------------------------------------

GRAD_PARTS = ("block", "attn", "mlp", "norms")  # "block": the norm over the block's three parts together


def diagnostics_series(log: dict | None) -> dict | None:
    """train_log.json's `diagnostics` (model/training/train.py: every eval step, the gradient norms before
    clipping per block — attention, MLP, norms — and the residual stream's RMS after each block) as arrays:
    steps (N,), grad[part] (N, L) for each of GRAD_PARTS, total (N,) the norm clip_grad_norm_ saw, resid_rms (N, L),
    heldout (N,) the held-out loss logged at the same steps (NaN where none), clip (the run's clipping threshold, or
    None). None when the log has no diagnostics (the logs of variants
    trained before they were recorded)."""
    diag = (log or {}).get("diagnostics") or []
    if not diag:
        return None
    steps = np.array([d["step"] for d in diag], dtype=np.int64)
    grad = {p: np.array([[b[p] for b in d["grad_norm"]["blocks"]] for d in diag], dtype=np.float64)
            for p in GRAD_PARTS[1:]}
    grad["block"] = np.sqrt(grad["attn"] ** 2 + grad["mlp"] ** 2 + grad["norms"] ** 2)
    val = {v["step"]: v["loss"] for v in log.get("val") or []}
    return dict(steps=steps, grad=grad, total=np.array([d["grad_norm"]["total"] for d in diag], dtype=np.float64),
                resid_rms=np.array([d["resid_rms"] for d in diag], dtype=np.float64),
                heldout=np.array([val.get(int(t), np.nan) for t in steps], dtype=np.float64),
                clip=(log.get("train") or {}).get("clip"))


def config_differences(a: dict, b: dict) -> list[str]:
    """The fields in which two configs (`dataclasses.asdict` of ModelConfig: every field, defaults included)
    differ, in field order."""
    return [k for k in a if a.get(k) != b.get(k)] + [k for k in b if k not in a]


def pre_norm_partner(post: str, configs: dict[str, dict]) -> str | None:
    """The pre-norm variant to set beside the post-norm one `post`: among `configs` (name -> asdict config, only
    those with diagnostics), the pre-norm one whose config differs from `post`'s in the fewest fields (ties: the
    first listed). The default retrained would differ in norm_position alone; until its log has diagnostics
    the partner differs in more, and the page says in which."""
    pre = [n for n, c in configs.items() if n != post and c.get("norm_position", "pre") == "pre"]
    if post not in configs or not pre:
        return None
    return min(pre, key=lambda n: len(config_differences(configs[post], configs[n])))


def position_spread(logits: np.ndarray) -> dict:
    """How much a model's next-token distribution changes along a prompt: logits (T, V) of one trace -> the
    total-variation distance ½·Σ|p_t − p̄| of each position's softmax p_t from their mean p̄ (T,), its largest
    value, and the mean distribution's entropy (nats). A model that reads its context gives distributions far apart
    (TV near 1 between a position after "ROMEO" and one after "the"); one that predicts the same thing everywhere —
    the unigram frequencies, say — gives TV ≈ 0 at every position.

    >>> s = position_spread(np.array([[0.0, 0.0], [0.0, 0.0]]))
    >>> float(s["max"]), round(float(s["entropy"]), 4)
    (0.0, 0.6931)
    """
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)  # (T, V)
    mean = p.mean(0)  # (V,)
    tv = 0.5 * np.abs(p - mean).sum(-1)  # (T,)
    return dict(tv=tv, max=float(tv.max()), entropy=float(-(mean * np.log(np.clip(mean, 1e-300, None))).sum()))
