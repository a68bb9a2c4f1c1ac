"""The Generation and RoPE pages in a real browser: three clicks on Next token grow the cache by three
positions; the RoPE page draws its charts; neither shows an error. Screenshots go to docs/screenshots/.

Uses the `app_url` and `browser_page` fixtures of tests/conftest.py; marked `browser`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "docs" / "screenshots"
CHART = '[data-testid="stPlotlyChart"] .main-svg'
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
WAIT_MS = 120_000  # generous: a first load on a busy 2-core machine (model load + prefill) can pass a minute

pytestmark = pytest.mark.browser


def settle(page) -> None:
    page.wait_for_selector(CHART, timeout=WAIT_MS)
    page.wait_for_function(IDLE, timeout=WAIT_MS)
    page.wait_for_timeout(500)  # Plotly lays out after the run ends


def screenshot(page, path: Path) -> None:
    """Streamlit scrolls inside its main container: grow the viewport to the content, then shoot."""
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return Math.max(m ? m.scrollHeight : 0, document.body.scrollHeight); }")
    page.set_viewport_size({"width": page.viewport_size["width"], "height": min(int(height) + 40, 8000)})
    page.wait_for_timeout(800)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


def cached_positions(page) -> int:
    text = page.get_by_text(re.compile(r"cache: \d+ positions")).first.inner_text()
    return int(re.search(r"cache: (\d+) positions", text).group(1))


def test_next_token_three_times_grows_the_cache(app_url, browser_page):
    page = browser_page
    page.goto(f"{app_url}/generation?seed=0&temperature=0.8")
    settle(page)
    n0 = cached_positions(page)
    for i in range(1, 4):
        page.get_by_role("button", name="Next token").click()
        page.get_by_text(f"cache: {n0 + i} positions").first.wait_for(timeout=WAIT_MS)
        settle(page)
    assert cached_positions(page) == n0 + 3
    assert page.get_by_text("Step 3: decode step 3").count() == 1
    # Clicking the first token of the history strip jumps to the step that chose it: the prefill.
    box = page.locator('[data-testid="stPlotlyChart"]').first.locator("g.point path").first
    box.scroll_into_view_if_needed()
    b = box.bounding_box()  # Plotly's drag layer sits on top of the bars: click the spot, not the element
    page.mouse.click(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
    page.get_by_text("Step 0: the prefill").first.wait_for(timeout=WAIT_MS)
    settle(page)
    assert cached_positions(page) == n0 + 3  # looking back changes nothing
    assert page.locator(CHART).count() >= 5
    assert page.locator(ERRORS).count() == 0
    screenshot(page, SHOTS / "generation.png")


def test_rope_page_draws(app_url, browser_page):
    page = browser_page
    page.goto(f"{app_url}/rope")
    settle(page)
    page.wait_for_function(f"() => document.querySelectorAll('{CHART}').length >= 5", timeout=WAIT_MS)
    assert page.locator(ERRORS).count() == 0
    screenshot(page, SHOTS / "rope.png")
