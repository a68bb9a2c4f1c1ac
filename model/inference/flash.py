"""FlashAttention's idea on our own q, k, v: attention computed tile by tile with an online softmax, so the
T×T score matrix never exists in slow memory. Written to be read, not to be fast (NumPy float64, Python loops).

One head, queries q (T, hd) at positions q_pos, keys and values k, v (Tk, hd) at k_pos. The queries are cut
into blocks of `block_q` rows, the keys and values into blocks of `block_k`. For each Q block i (the outer
loop, as in FlashAttention-2) it walks the K/V blocks j and keeps, per query row, three running values:

    m  the largest score seen so far                       (block_q,)
    l  Σ exp(score − m) over the keys seen so far           (block_q,)
    O  the softmax-weighted mean of their values            (block_q, hd)

A new tile of scores S (block_q, block_k) updates them (Milakov & Gimelshein 2018; Dao et al. 2022, Alg. 1):

    m' = max(m, rowmax S)
    P  = exp(S − m')                          # this tile's unnormalised weights
    l' = exp(m − m')·l + rowsum P             # old sum rescaled to the new max, plus the new keys
    O' = (exp(m − m')·l·O + P·V_j) / l'       # old mean rescaled and re-weighted, plus the new keys

After the last tile O is exactly softmax(S_full)·V — no approximation, only a different order of summation.
(FlashAttention-2 keeps O unnormalised and divides by l once at the end, saving a division per tile; here O
stays normalised so that "O after this tile" is a readable attention output over the keys seen so far.)

Tiles the mask rules out entirely are skipped, not computed: a K block that starts after the Q block's last
query (causal), or that ends before its first query's window starts (sliding window). Partly masked tiles
are computed with the mask applied. ALiBi adds −slope·(q_pos − k_pos) to each score before all this.

Worked example: one query, scores [1, 3] over values [[0], [2]], blocks of one key. Tile 0: m = 1, l = 1,
O = 0. Tile 1: m' = 3, l' = e^(1−3)·1 + 1 = 1.1353, O' = (0.1353·0 + 1·2) / 1.1353 = 1.7616 — and
softmax([1, 3])·[0, 2] = 0.8808·2 = 1.7616.

Memory traffic (`naive_traffic`, `tiled_traffic`) counts elements read from and written to slow memory
(HBM on a GPU) by each algorithm, per head, for a prefill of N tokens. What is out: the backward pass, the
log-sum-exp FlashAttention also stores for it, dropout, and any real speed (see model/net/transformer.py's
`fused=True` for PyTorch's kernel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

COMPUTED, SKIP_CAUSAL, SKIP_WINDOW = "computed", "skipped: causal", "skipped: outside the window"


# --------------------------------------------------------------------------------------------------------
# The reference: the explicit attention our model computes
# --------------------------------------------------------------------------------------------------------


def allowed_mask(q_pos: np.ndarray, k_pos: np.ndarray, window: Optional[int]) -> np.ndarray:
    """True where a query may read a key: causal, and within the window if any (model.net.transformer's
    `attention_mask`, in NumPy). (T, Tk)"""
    rel = np.asarray(q_pos)[:, None] - np.asarray(k_pos)[None, :]  # (T, Tk) how far back each key is
    ok = rel >= 0
    return ok & (rel < window) if window is not None else ok


def scores_of(q: np.ndarray, k: np.ndarray, q_pos: np.ndarray, k_pos: np.ndarray, window: Optional[int],
              alibi_slope: Optional[float]) -> np.ndarray:
    """q·kᵀ/√hd, plus ALiBi's −slope·distance, −inf where masked: what `hook_attn_scores` holds. (T, Tk)"""
    s = (q @ k.T) / math.sqrt(q.shape[-1])  # (T, Tk)
    if alibi_slope is not None:
        s = s - alibi_slope * (np.asarray(q_pos)[:, None] - np.asarray(k_pos)[None, :])
    return np.where(allowed_mask(q_pos, k_pos, window), s, -np.inf)


def explicit_attention(q, k, v, q_pos, k_pos, window: Optional[int] = None, alibi_slope: Optional[float] = None):
    """The whole T×Tk matrix at once: scores, softmax, weighted sum. Returns (out (T, hd), pattern (T, Tk))."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    s = scores_of(q, k, q_pos, k_pos, window, alibi_slope)  # (T, Tk)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)  # (T, Tk) rows sum to 1
    return p @ v, p  # (T, hd), (T, Tk)


# --------------------------------------------------------------------------------------------------------
# The tiled algorithm
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """One (Q block, K/V block) pair in execution order. The arrays are None for a skipped tile."""

    i: int  # Q block
    j: int  # K/V block
    q_rows: tuple[int, int]  # [start, stop) query rows
    k_cols: tuple[int, int]  # [start, stop) key rows
    status: str  # COMPUTED, SKIP_CAUSAL or SKIP_WINDOW
    scores: Optional[np.ndarray] = None  # (bq, bk) this tile's S, −inf where masked
    m_before: Optional[np.ndarray] = None  # (bq,)
    l_before: Optional[np.ndarray] = None  # (bq,)
    O_before: Optional[np.ndarray] = None  # (bq, hd)
    m_after: Optional[np.ndarray] = None  # (bq,)
    l_after: Optional[np.ndarray] = None  # (bq,)
    O_after: Optional[np.ndarray] = None  # (bq, hd)

    @property
    def computed(self) -> bool:
        return self.status == COMPUTED


@dataclass(frozen=True)
class TiledAttention:
    out: np.ndarray  # (T, hd) the attention output
    tiles: tuple[Tile, ...]  # every (i, j) in execution order, skipped ones included
    block_q: int
    block_k: int
    n_q_blocks: int
    n_k_blocks: int

    @property
    def n_computed(self) -> int:
        return sum(t.computed for t in self.tiles)


def _skip_reason(qp: np.ndarray, kp: np.ndarray, window: Optional[int]) -> Optional[str]:
    """Why a whole tile is masked (None when some pair in it is allowed). Positions ascend within a block."""
    if kp[0] > qp[-1]:
        return SKIP_CAUSAL  # every key comes after every query
    if window is not None and qp[0] - kp[-1] >= window:
        return SKIP_WINDOW  # every key is already too old for the earliest query
    return None


def tiled_attention(q, k, v, q_pos, k_pos, block_q: int = 16, block_k: int = 16, window: Optional[int] = None,
                    alibi_slope: Optional[float] = None) -> TiledAttention:
    """FlashAttention's forward for one head, every tile recorded (see the module docstring).

    q (T, hd), k and v (Tk, hd), positions ascending. Equals `explicit_attention` to float rounding.
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    q_pos, k_pos = np.asarray(q_pos), np.asarray(k_pos)
    if block_q < 1 or block_k < 1:
        raise ValueError(f"block sizes must be positive, got {block_q} and {block_k}")
    T, hd = q.shape
    Tk = k.shape[0]
    n_qb, n_kb = -(-T // block_q), -(-Tk // block_k)
    out = np.zeros((T, hd))
    tiles: list[Tile] = []
    for i in range(n_qb):
        r0, r1 = i * block_q, min(T, (i + 1) * block_q)
        m = np.full(r1 - r0, -np.inf)  # (bq,) running max
        l = np.zeros(r1 - r0)  # (bq,) running sum of exp(score − m)
        O = np.zeros((r1 - r0, hd))  # (bq, hd) running normalised output
        for j in range(n_kb):
            c0, c1 = j * block_k, min(Tk, (j + 1) * block_k)
            why = _skip_reason(q_pos[r0:r1], k_pos[c0:c1], window)
            if why:
                tiles.append(Tile(i, j, (r0, r1), (c0, c1), why))
                continue
            S = scores_of(q[r0:r1], k[c0:c1], q_pos[r0:r1], k_pos[c0:c1], window, alibi_slope)  # (bq, bk)
            m_new = np.maximum(m, S.max(axis=1))  # (bq,)
            # A row with nothing allowed so far keeps m = −inf; shift by 0 there so exp() gives 0, not nan.
            shift = np.where(np.isfinite(m_new), m_new, 0.0)
            alpha = np.where(np.isfinite(m), np.exp(m - shift), 0.0)  # (bq,) rescales the old sum and output
            P = np.exp(S - shift[:, None])  # (bq, bk) exp(−inf) = 0 where masked
            l_new = alpha * l + P.sum(axis=1)  # (bq,)
            safe = np.where(l_new > 0, l_new, 1.0)
            O_new = ((alpha * l)[:, None] * O + P @ v[c0:c1]) / safe[:, None]  # (bq, hd)
            tiles.append(Tile(i, j, (r0, r1), (c0, c1), COMPUTED, S, m, l, O, m_new, l_new, O_new))
            m, l, O = m_new, l_new, O_new
        out[r0:r1] = O  # written to slow memory once per Q block
    return TiledAttention(out, tuple(tiles), block_q, block_k, n_qb, n_kb)


# --------------------------------------------------------------------------------------------------------
# One head of a traced forward pass
# --------------------------------------------------------------------------------------------------------


def head_inputs(acts, cfg, layer: int, head: int) -> dict:
    """What query head `head` of `layer` attended with, from a trace's arrays (`Trace.acts` or any mapping of
    hook name → [pos, head, d_head] array): q and k after RoPE when the variant has it, the shared K/V head under
    GQA, positions 0 … T−1 (a prefill), the window and the ALiBi slope. Ready for `tiled_attention(**…)`."""
    from model.analysis.heads import kv_head_of
    from model.analysis.rope import alibi_head_slopes

    a = f"blocks.{layer}.attn."
    rot = "rot_" if cfg.pos_encoding == "rope" else ""
    kvh = kv_head_of(head, cfg.n_heads, cfg.n_kv_heads)  # Llama's repeat_kv order
    q = np.asarray(acts[a + f"hook_{rot}q"])[:, head]  # (T, hd)
    k = np.asarray(acts[a + f"hook_{rot}k"])[:, kvh]  # (T, hd)
    v = np.asarray(acts[a + "hook_v"])[:, kvh]  # (T, hd)
    pos = np.arange(q.shape[0])
    slope = float(alibi_head_slopes(cfg.n_heads)[head]) if cfg.pos_encoding == "alibi" else None
    # this layer's window: a Qwen2 may slide on some layers only (`ModelConfig.layer_window`)
    return dict(q=q, k=k, v=v, q_pos=pos, k_pos=pos, window=cfg.layer_window(layer), alibi_slope=slope)


# --------------------------------------------------------------------------------------------------------
# Memory traffic: what each algorithm reads from and writes to slow memory
# --------------------------------------------------------------------------------------------------------

NAIVE_FORMULA = "4·N·d + 4·N²"
TILED_FORMULA = "2·N·d + 2·d·Σ_tiles Bc"


def naive_traffic(n: int, head_dim: int) -> int:
    """Elements moved by standard attention for one head (Dao et al. 2022, Algorithm 0): read Q, K and write
    S = QKᵀ; read S and write P = softmax(S); read P, V and write O. 4·N·d + 4·N².
    N=4, d=2 -> 32 + 64 = 96."""
    return 4 * n * head_dim + 4 * n * n


def kv_rows_read(n: int, block_q: int, block_k: int, window: Optional[int] = None, causal: bool = True) -> int:
    """Σ over computed tiles of the K/V rows each loads: what the tiled prefill streams through fast memory.

    Q block i needs keys from max(0, first query − w + 1) to its last query (causal); the K blocks holding
    them are loaded whole. One loop over Q blocks, so N = 10⁶ is instant.
    n=10, blocks of 4: Q blocks end at 3, 7, 9 -> K blocks 0; 0-1; 0-2 -> 4 + 8 + 10 = 22 rows.
    """
    rows = 0
    for r0 in range(0, n, block_q):
        r1 = min(n, r0 + block_q) - 1  # last query of the block
        hi = r1 if causal else n - 1
        lo = max(0, r0 - window + 1) if window is not None else 0
        j0, j1 = lo // block_k, hi // block_k
        rows += min(n, (j1 + 1) * block_k) - j0 * block_k
    return rows


def tiled_traffic(n: int, head_dim: int, block_q: int, block_k: int, window: Optional[int] = None,
                  causal: bool = True) -> int:
    """Elements moved by the tiled algorithm for one head: Q read once and O written once (2·N·d), and each
    computed tile's K and V blocks read (2·d per key row, `kv_rows_read`). Nothing of size N² touches slow
    memory. N=10, d=2, blocks of 4, causal: 40 + 2·2·22 = 128."""
    return 2 * n * head_dim + 2 * head_dim * kv_rows_read(n, block_q, block_k, window, causal)


def attention_traffic_bytes(a, seq_lens, block: int, dtype_bytes: float, batch: int = 1) -> dict[str, list[int]]:
    """Naive and tiled attention traffic of a whole prefill of each length N: every layer, every query head,
    the batch, in bytes — for an `Arch` (model.accounting.arch), ours or a preset. A layer with a window reads
    only the K blocks the window reaches; the naive algorithm materialises the full N×N either way (as our own
    explicit path does). K/V are counted once per query head, as a kernel that does not share a GQA group's
    loads would read them."""
    L, Lw, nh, hd = a.n_layers, a.n_window_layers, a.n_heads, a.head_dim
    per = batch * nh * dtype_bytes
    naive, tiled = [], []
    for n in seq_lens:
        naive.append(int(per * L * naive_traffic(n, hd)))
        t_full = tiled_traffic(n, hd, block, block)
        t_win = tiled_traffic(n, hd, block, block, a.sliding_window) if Lw else 0
        tiled.append(int(per * ((L - Lw) * t_full + Lw * t_win)))
    return {"naive": naive, "tiled": tiled}
