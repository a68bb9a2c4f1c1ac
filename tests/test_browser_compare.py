"""The compare page in a real browser: both tabs draw, no error shows, and the URL keeps the open tab.

Saves docs/screenshots/compare.png (attention tab) and docs/screenshots/compare_positions.png (positions tab).
Uses the `app_url` and `browser_page` fixtures of tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "docs" / "screenshots"
CHART = '[data-testid="stPlotlyChart"] .main-svg'
OPEN_PANEL = '[data-testid="stTabPanel"][role="tabpanel"]'  # the hidden tab's panel loses its role
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'

pytestmark = pytest.mark.browser


def wait_idle(page) -> None:
    page.wait_for_selector(f"{OPEN_PANEL} {CHART}", timeout=90_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)
    page.wait_for_timeout(800)  # Plotly lays out


def shoot(page, path: Path) -> None:
    """Grow the viewport to the content (Streamlit scrolls inside its main block), then take the whole page."""
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return Math.max(m ? m.scrollHeight : 0, document.body.scrollHeight); }")
    page.set_viewport_size({"width": page.viewport_size["width"], "height": min(int(height) + 40, 9000)})
    page.wait_for_timeout(1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": page.viewport_size["width"], "height": 900})


def visible_charts(page) -> int:
    return page.locator(f'{OPEN_PANEL} [data-testid="stPlotlyChart"]').count()


def test_compare_page_both_tabs(app_url, browser_page):
    page = browser_page
    page.goto(f"{app_url}/compare")
    wait_idle(page)
    assert page.locator(ERRORS).count() == 0
    tabs = page.get_by_role("tab")
    assert tabs.nth(0).inner_text().strip() == "Attention variants"
    assert visible_charts(page) >= 2
    shoot(page, SHOTS / "compare.png")

    tabs.nth(1).click()
    page.wait_for_url("**cmp_tab=Positional*", timeout=30_000)
    wait_idle(page)
    assert page.locator(ERRORS).count() == 0
    assert tabs.nth(1).get_attribute("aria-selected") == "true"
    assert visible_charts(page) >= 3
    shoot(page, SHOTS / "compare_positions.png")

    page.reload()  # the URL reopens the same tab
    wait_idle(page)
    assert page.get_by_role("tab").nth(1).get_attribute("aria-selected") == "true"
