"""HTML and script typed into the sidebar prompt, in a real browser: shown as text, no element is created from it,
nothing runs, and the page keeps working for the next prompt.

Uses the `app_url` and `browser_page` fixtures of tests/conftest.py; marked `browser` (`-m "not browser"` skips).
"""

from __future__ import annotations

import pytest

from browser_support import ERRORS, PROMPT_BOX, wait_idle as _wait_idle

pytestmark = pytest.mark.browser

CHART_TEXT = "[data-testid=\"stPlotlyChart\"] .main-svg text"
# payload -> a piece of it the token boxes must show as characters once the page has redrawn
PAYLOADS = {
    "<img src=x onerror=alert(1)>": "onerror",
    "<script>alert(1)</script>": "script",
    '<a href="javascript:alert(1)">click</a> **bold** [x](javascript:alert(1))': "javascript",
}


def chart_text(page) -> str:
    return "".join(page.locator(CHART_TEXT).all_text_contents())


def wait_idle(page) -> None:
    _wait_idle(page, timeout=60_000)


def type_prompt(page, text: str, piece: str) -> None:
    """Type into the sidebar prompt, submit (Ctrl+Enter), wait until the charts show `piece` as text."""
    box = page.locator(PROMPT_BOX).first
    box.fill(text)
    box.press("Control+Enter")
    page.wait_for_function(
        "piece => Array.from(document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg text'))"
        ".map(t => t.textContent).join('').includes(piece)", arg=piece, timeout=60_000)
    wait_idle(page)


def test_html_and_script_in_the_prompt_stay_text(app_url, browser_page):
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{app_url}/tokenization")
    wait_idle(page)
    box = page.locator(PROMPT_BOX).first

    for payload, piece in PAYLOADS.items():
        type_prompt(page, payload, piece)
        assert box.input_value() == payload  # the text box holds exactly what was typed
        shown = chart_text(page)
        assert "<" in shown and piece in shown, shown[:200]  # drawn as characters (split into tokens)
        assert page.locator('img[src="x"]').count() == 0  # … and never as an element
        assert page.locator('a[href^="javascript"]').count() == 0
        assert page.evaluate(
            "() => Array.from(document.querySelectorAll('script')).some(s => s.textContent.includes('alert(1)'))"
        ) is False
        assert page.locator(ERRORS).count() == 0, page.locator(ERRORS).first.inner_text()
        assert dialogs == [], dialogs

    # The page keeps working: an ordinary prompt is tokenized and drawn as before (waiting until every chart
    # has redrawn: the merge-replay chart can lag the token boxes by a rerun).
    normal = "Sweet Portia speaks of mercy."
    box.fill(normal)
    box.press("Control+Enter")
    page.wait_for_function(
        "() => { const t = Array.from(document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg text'))"
        ".map(t => t.textContent).join(''); return t.includes('Portia') && !t.includes('<'); }", timeout=60_000)
    wait_idle(page)
    assert box.input_value() == normal
    assert page.locator(ERRORS).count() == 0 and dialogs == []


def test_html_prompt_on_the_attention_page(app_url, browser_page):
    """The same payload where token labels become heatmap axes, hover text and a selectbox's options."""
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{app_url}/attention")
    wait_idle(page)
    # The first token starts with "<", and the first tick label is always drawn (denser ones may be skipped).
    type_prompt(page, "<img src=x onerror=alert(1)> <script>alert(1)</script>", "<")
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator(ERRORS).count() == 0
    assert dialogs == []
