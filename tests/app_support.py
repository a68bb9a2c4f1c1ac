"""What the AppTest page tests share: open a page in a prepared state, read its Plotly charts back as data.

One implementation, imported by every page test (`from app_support import arr, chart, charts, open_page`),
the way tests/browser_support.py serves the browser tests. A chart comes back as the JSON the browser would
receive (`json.loads(element.proto.spec)`), so a test asserts on the numbers drawn, not on our own objects.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Optional

import numpy as np
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_page(page: str, prompt: Optional[str] = None, variant: Optional[str] = "gqa-rope",
              query: Optional[dict] = None, state: Optional[dict] = None, timeout: float = 120,
              home_first: bool = False, check: bool = True) -> AppTest:
    """Run `page` (a path like "pages/rope.py") with the prompt, variant, URL query and session state given.

    home_first runs the home page before switching, as a visitor who clicks through would (AppTest otherwise
    starts on the page itself, as a deep link does). check=False returns a page that raised, for the tests
    that look at what the user sees then."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if prompt is not None:
        at.session_state["prompt"] = prompt
    if variant is not None:
        at.session_state["variant"] = variant
    for k, v in (state or {}).items():
        at.session_state[k] = v
    for k, v in (query or {}).items():
        at.query_params[k] = v
    if home_first:
        at.run()
    at.switch_page(page).run()
    if check:
        assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> dict[str, dict]:
    """Every Plotly chart of the page by its widget key (the part of the element id after the last '-')."""
    return {e.proto.id.rsplit("-", 1)[-1]: json.loads(e.proto.spec) for e in at.get("plotly_chart")}


def chart(at: AppTest, key: str) -> dict:
    """The chart drawn with widget key `key`; KeyError if the page drew none."""
    for c in at.get("plotly_chart"):
        if c.proto.id.endswith("-" + key):
            return json.loads(c.proto.spec)
    raise KeyError(key)


def arr(v) -> np.ndarray:
    """A figure array back as NumPy: plotly.py's typed arrays {"dtype", "bdata", "shape"}, or plain JSON lists
    (numbers with None for gaps come back as floats with NaN; text stays text)."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(n) for n in str(v["shape"]).split(",")]) if "shape" in v else a
    a = np.asarray(v)
    if a.dtype == object:
        try:
            return np.array([[np.nan if x is None else x for x in r] if isinstance(r, list) else
                             (np.nan if r is None else r) for r in v], dtype=float)
        except (TypeError, ValueError):
            return a
    return a
