"""The KV cache: what decoding one token at a time keeps instead of recomputing the past.

Per layer it holds the (rotated) keys and the values of every position seen so far:
K and V of shape (B, n_kv_heads, T_cached, head_dim). So GQA/MQA shrink it by n_heads / n_kv_heads, and a
sliding window caps T_cached at the window: positions older than that can never be attended again, so they
are evicted (a rolling buffer, as in Mistral). When the window applies to some layers only (`sliding_layers`,
as a Qwen2 config may ask), the others keep every position.

The model writes into it through `update` (one call per layer per forward) and `advance` (once per forward).
Decoding strategies move it around: `truncate` rolls it back (stepping back, speculative decoding's rejected
guesses), `reorder` copies batch rows (beam search: row i follows the beam it now extends), `clone` copies it.
What it does not do: batching of sequences of different lengths, paging, quantisation.
"""

from __future__ import annotations

from typing import Optional

import torch


class KVCache:
    def __init__(self, n_layers: int, sliding_window: Optional[int] = None, sliding_layers=None) -> None:
        self.n_layers = n_layers
        self.window = sliding_window
        self.sliding_layers = sliding_layers  # None = the window (if any) applies to every layer
        self.windows = [None if sliding_layers is not None and i not in sliding_layers else sliding_window
                        for i in range(n_layers)]  # each layer's window (ModelConfig.layer_window)
        self.k: list[Optional[torch.Tensor]] = [None] * n_layers  # each (B, nkv, T_cached, hd)
        self.v: list[Optional[torch.Tensor]] = [None] * n_layers  # each (B, nkv, T_cached, hd)
        self.length = 0  # positions seen so far = the position the next token gets
        self.start = 0  # absolute position of the oldest entry a windowed layer still holds (> 0 once it evicts)

    @classmethod
    def for_model(cls, cfg) -> "KVCache":
        return cls(cfg.n_layers, cfg.sliding_window, cfg.sliding_layers)

    def layer_start(self, layer: int) -> int:
        """Absolute position of layer `layer`'s oldest row: `start` if its window evicts, else 0."""
        return self.start if self.windows[layer] is not None else 0

    def update(self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor, positions: torch.Tensor):
        """Append this forward's K/V for `layer`; return the keys, values and key positions to attend over.

        k_new, v_new: (B, nkv, T, hd) for positions `positions` (T,), which continue the cache.
        """
        if self.k[layer] is None:
            k, v = k_new, v_new  # (B, nkv, T, hd)
        else:
            k = torch.cat((self.k[layer], k_new), dim=2)  # (B, nkv, T_cached + T, hd)
            v = torch.cat((self.v[layer], v_new), dim=2)  # (B, nkv, T_cached + T, hd)
        k_pos = torch.arange(self.layer_start(layer), int(positions[-1]) + 1, device=k.device)  # (Tk,)
        window = self.windows[layer]
        if window is not None:
            # The first new query needs the window - 1 keys before it; nothing older is read again.
            need = k_new.shape[2] + window - 1
            if k.shape[2] > need:
                k, v, k_pos = k[:, :, -need:], v[:, :, -need:], k_pos[-need:]
            self.k[layer], self.v[layer] = k[:, :, -window:], v[:, :, -window:]
        else:
            self.k[layer], self.v[layer] = k, v
        return k, v, k_pos

    def advance(self, n: int) -> None:
        """Called once per forward, after every layer has written its n new positions."""
        self.length += n
        if self.window is not None:
            self.start = max(0, self.length - self.window)

    # --- what the app shows -------------------------------------------------------------------------------

    def shapes(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """Per layer: (K shape, V shape)."""
        return [
            (tuple(k.shape) if k is not None else (), tuple(v.shape) if v is not None else ())
            for k, v in zip(self.k, self.v)
        ]

    def nbytes(self) -> int:
        """Bytes held by every K and V tensor, every layer."""
        return sum(t.numel() * t.element_size() for t in self.k + self.v if t is not None)

    @property
    def n_cached(self) -> int:
        """Positions currently held (= length unless a sliding window has evicted some)."""
        return self.length - self.start

    # --- stepping back ------------------------------------------------------------------------------------

    def truncate(self, length: int) -> None:
        """Forget every position >= length. Exact, since the cache only appends — unless the window evicted."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of length {self.length} to {length}")
        if self.start > 0 and length < self.length:
            raise ValueError("positions evicted by the sliding window cannot be restored; prefill again")
        for i in range(self.n_layers):
            if self.k[i] is not None:
                self.k[i] = self.k[i][:, :, :length]
                self.v[i] = self.v[i][:, :, :length]
        self.length = length

    def reorder(self, rows) -> None:
        """Beam search: batch row i becomes a copy of old row rows[i], in every layer (Hugging Face's
        `reorder_cache`). rows=[0, 0, 2] from 3 rows: the beam in row 0 was kept twice, row 1's was pruned, row
        2's moves up. Forgetting this leaves each row holding the past of whichever beam sat there before."""
        idx = torch.as_tensor(rows, dtype=torch.long)
        for i in range(self.n_layers):
            if self.k[i] is not None:
                self.k[i] = self.k[i].index_select(0, idx)  # (len(rows), nkv, T_cached, hd)
                self.v[i] = self.v[i].index_select(0, idx)  # (len(rows), nkv, T_cached, hd)

    def clone(self) -> "KVCache":
        c = KVCache(self.n_layers, self.window, self.sliding_layers)
        c.k = [t.clone() if t is not None else None for t in self.k]
        c.v = [t.clone() if t is not None else None for t in self.v]
        c.length, c.start = self.length, self.start
        return c
