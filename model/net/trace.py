"""A trace: one call of the model, recorded at its hook points, as plain data.

    tr = run_with_trace(model, ids)            # prefill, every hook point
    tr["blocks.0.attn.hook_pattern"]           # np.ndarray [head, query_pos, key_pos]
    tr.logits                                  # np.ndarray [pos, vocab]

The recorder is local to the call (see `model.net.transformer.recording`): two threads tracing the one shared model at
once each get only their own arrays, and the model holds nothing afterwards. Arrays have the batch
dimension dropped; their layout is the hook's shape comment in `model/net/transformer.py`
(`hook_q` [pos, head, d_head], `hook_pattern` [head, query_pos, key_pos], `hook_resid_post` [pos, d_model]…).

Analysis (role scores, logit lens, …) lives in functions elsewhere, not in the trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Union

import numpy as np
import torch

from model.net.kv_cache import KVCache
from model.net.transformer import Transformer
from model.net.hooks import HookPoint, recording

NameFilter = Union[None, str, Iterable[str], Callable[[str], bool]]


@dataclass
class Trace:
    ids: np.ndarray  # (T,) the token ids of this call
    positions: np.ndarray  # (T,) their absolute positions (a decode step's is the cache length)
    acts: dict[str, np.ndarray]  # hook name -> array, batch dim dropped
    logits: np.ndarray  # (T, V)
    tokens: list[str] = field(default_factory=list)  # display labels, when the caller gave them

    def __getitem__(self, name: str) -> np.ndarray:
        return self.acts[name]

    def __contains__(self, name: str) -> bool:
        return name in self.acts

    def names(self) -> list[str]:
        return list(self.acts)


def _filter(names: NameFilter, known: Iterable[str]) -> Callable[[str], bool]:
    """`names` as a predicate on hook names: None = every hook point, a callable is used as is, one string is
    that one hook name, any other iterable is a set of hook names.

    A string is not read as an iterable (that would select hook names one character long: an empty trace, no
    error), and a listed name the model does not have is an error, not a silently empty array — a typo, or a
    hook renamed since (`hook_scores` is now `hook_attn_scores`).
    """
    if names is None:
        return lambda n: True
    if callable(names):
        return names
    if isinstance(names, str):
        names = [names]
    elif isinstance(names, (bytes, bytearray)) or not isinstance(names, Iterable):
        raise TypeError(f"names must be None, a hook name, an iterable of hook names or a predicate; "
                        f"got {type(names).__name__}")
    wanted = set(names)
    not_str = [n for n in wanted if not isinstance(n, str)]
    if not_str:
        raise TypeError(f"hook names are strings; got {not_str[0]!r}")
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValueError(f"no hook point named {', '.join(map(repr, unknown))} in this model "
                         "(Transformer.hook_names() lists them)")
    return lambda n: n in wanted


@torch.no_grad()
def run_with_trace(
    model: Transformer,
    ids: Union[list[int], np.ndarray, torch.Tensor],
    cache: Optional[KVCache] = None,
    names: NameFilter = None,
    tokens: Optional[list[str]] = None,
) -> Trace:
    """Run `ids` (one sequence) through the model, recording the hook points `names` selects (all by default):
    a hook name, several, or a predicate on the name (see `_filter`).

    With a cache, `ids` continue it (a decode step when len(ids) == 1) and the cache is updated.
    """
    ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64)).view(1, -1)  # (1, T)
    keep = _filter(names, [m.name for m in model.modules() if isinstance(m, HookPoint)])  # the names it records
    acts: dict[str, np.ndarray] = {}

    def record(name: str, t: torch.Tensor) -> None:
        if keep(name):
            acts[name] = t[0].detach().cpu().numpy().copy()  # a copy: nothing the caller holds aliases torch

    start = cache.length if cache is not None else 0
    with recording(record):
        logits = model(ids_t, cache=cache)  # (1, T, V)
    T = ids_t.shape[1]
    return Trace(
        ids=ids_t[0].numpy().copy(),
        positions=np.arange(start, start + T),
        acts=acts,
        logits=logits[0].numpy().copy(),
        tokens=list(tokens) if tokens is not None else [],
    )


@torch.no_grad()
def forward_logits(model: Transformer, ids) -> np.ndarray:
    """The untraced forward of one sequence: logits (T, V)."""
    ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64)).view(1, -1)  # (1, T)
    return model(ids_t)[0].numpy()
