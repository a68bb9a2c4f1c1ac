"""The quantization page in a real browser: the memory chart draws with its bars, the "One matrix" tab draws
the histogram with its grid, the tab is kept in the URL, and no error shows. Screenshots go to `shots_dir`.

Uses the `app_url`, `browser_page` and `shots_dir` fixtures of tests/conftest.py; marked `browser`. Every wait
is on a condition (tests/browser_support.py).
"""

from __future__ import annotations

import pytest

from browser_support import ERRORS, screenshot, wait_idle

pytestmark = pytest.mark.browser

OPEN_PANEL = '[data-testid="stTabPanel"][role="tabpanel"]'  # a hidden tab's panel loses its role


def test_quantization_page_draws_memory_and_the_grid(app_url, browser_page, shots_dir):
    page = browser_page
    page.goto(f"{app_url}/quantization")
    wait_idle(page, scope=OPEN_PANEL)
    assert page.locator(ERRORS).count() == 0
    tabs = page.get_by_role("tab")
    assert tabs.nth(0).inner_text().strip() == "Memory"
    chart = page.locator(f'{OPEN_PANEL} [data-testid="stPlotlyChart"]').first
    assert chart.locator("g.barlayer path").count() >= 3 * 7  # codes, scales, kept × seven formats
    assert "Q4_0 (G=32)" in chart.inner_text()
    screenshot(page, shots_dir / "quantization.png", scope=OPEN_PANEL)
    page.set_viewport_size({"width": 1400, "height": 900})

    tabs.nth(1).click()
    page.wait_for_url("**q_tab=One*", timeout=30_000)
    wait_idle(page, scope=OPEN_PANEL)
    assert page.locator(ERRORS).count() == 0
    hist = page.locator(f'{OPEN_PANEL} [data-testid="stPlotlyChart"]').first
    assert hist.locator("g.barlayer path").count() > 10  # the histogram's bins
    assert hist.locator("g.scatterlayer path.js-line").count() >= 1  # the grid lines
    screenshot(page, shots_dir / "quantization_matrix.png", scope=OPEN_PANEL)

    page.reload()  # the URL reopens the same tab
    wait_idle(page, scope=OPEN_PANEL)
    assert page.get_by_role("tab").nth(1).get_attribute("aria-selected") == "true"
