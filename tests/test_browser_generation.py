"""The Generation and RoPE pages in a real browser: three clicks on Next token grow the cache by three
positions; the RoPE page draws its charts; neither shows an error. Screenshots go to `shots_dir` (a temporary
folder, or $SCREENSHOT_DIR).

Uses the `app_url`, `browser_page` and `shots_dir` fixtures of tests/conftest.py; marked `browser`. Every wait
is on a condition (tests/browser_support.py).
"""

from __future__ import annotations

import re

import pytest

from browser_support import CHART, ERRORS, WAIT_MS, screenshot, wait_idle

pytestmark = pytest.mark.browser


def settle(page) -> None:
    """Charts drawn, the script run over (a first load on a busy 2-core machine can pass a minute), the layout
    settled."""
    wait_idle(page, timeout=WAIT_MS)


def cached_positions(page) -> int:
    text = page.get_by_text(re.compile(r"cache: \d+ positions")).first.inner_text()
    return int(re.search(r"cache: (\d+) positions", text).group(1))


def test_next_token_three_times_grows_the_cache(app_url, browser_page, shots_dir):
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
    screenshot(page, shots_dir / "generation.png")


def test_rope_page_draws(app_url, browser_page, shots_dir):
    page = browser_page
    page.goto(f"{app_url}/rope")
    settle(page)
    page.wait_for_function(f"() => document.querySelectorAll('{CHART}').length >= 5", timeout=WAIT_MS)
    assert page.locator(ERRORS).count() == 0
    screenshot(page, shots_dir / "rope.png")
