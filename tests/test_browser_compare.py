"""The compare page in a real browser: both tabs draw, no error shows, and the URL keeps the open tab.

Saves compare.png (attention tab) and compare_positions.png (positions tab) to `shots_dir` (a temporary folder,
or $SCREENSHOT_DIR). Uses the `app_url`, `browser_page` and `shots_dir` fixtures of tests/conftest.py; every
wait is on a condition (tests/browser_support.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from browser_support import ERRORS, screenshot, wait_idle as _wait_idle

OPEN_PANEL = '[data-testid="stTabPanel"][role="tabpanel"]'  # the hidden tab's panel loses its role

pytestmark = pytest.mark.browser


def wait_idle(page) -> None:
    """The open tab's charts drawn, the script run over, the layout settled."""
    _wait_idle(page, scope=OPEN_PANEL)


def shoot(page, path: Path) -> None:
    """The whole page (the viewport grown to the content), then back to 900 px high."""
    screenshot(page, path, scope=OPEN_PANEL)
    page.set_viewport_size({"width": page.viewport_size["width"], "height": 900})


def visible_charts(page) -> int:
    return page.locator(f'{OPEN_PANEL} [data-testid="stPlotlyChart"]').count()


def test_compare_page_both_tabs(app_url, browser_page, shots_dir):
    page = browser_page
    page.goto(f"{app_url}/compare")
    wait_idle(page)
    assert page.locator(ERRORS).count() == 0
    tabs = page.get_by_role("tab")
    assert tabs.nth(0).inner_text().strip() == "Attention variants"
    assert visible_charts(page) >= 2
    shoot(page, shots_dir / "compare.png")

    tabs.nth(1).click()
    page.wait_for_url("**cmp_tab=Positional*", timeout=30_000)
    wait_idle(page)
    assert page.locator(ERRORS).count() == 0
    assert tabs.nth(1).get_attribute("aria-selected") == "true"
    assert visible_charts(page) >= 3
    shoot(page, shots_dir / "compare_positions.png")

    page.reload()  # the URL reopens the same tab
    wait_idle(page)
    assert page.get_by_role("tab").nth(1).get_attribute("aria-selected") == "true"
