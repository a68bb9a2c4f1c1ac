"""Hook points: named identity modules that hand their tensor to a recorder set for the current call.

Named by their module path, as in TransformerLens (`blocks.0.attn.hook_pattern`). They record only while a
recorder is set for the *current call* (a `contextvars.ContextVar`, so each thread — each browser session —
has its own): the model object itself never holds capture state, because one instance is shared by every
session of the app. `model/net/trace.py` turns a recording into NumPy arrays.

Non-goals: TransformerLens's hook editing (patching activations in place) and its weight folding.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Callable, Optional

import torch
import torch.nn as nn


Recorder = Callable[[str, torch.Tensor], None]
_RECORDER: contextvars.ContextVar[Optional[Recorder]] = contextvars.ContextVar("recorder", default=None)


class HookPoint(nn.Module):
    """Identity. While a recorder is set in this context, it is handed (hook name, tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""  # filled in from named_modules() by Transformer.__init__: the path *is* the name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rec = _RECORDER.get()
        if rec is not None:
            rec(self.name, x)
        return x


@contextmanager
def recording(recorder: Recorder):
    """Set `recorder` for hook points reached from this thread/context until the block exits."""
    token = _RECORDER.set(recorder)
    try:
        yield
    finally:
        _RECORDER.reset(token)
