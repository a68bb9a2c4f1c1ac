"""The "Inside fast inference" page in a real browser: each of its three tabs draws its charts with no error,
the URL carries the open tab and the tile, and a reload reopens the same view.

Saves inference.png, inference_kv.png and inference_roofline.png to `shots_dir` (a temporary folder, or
$SCREENSHOT_DIR). Uses the `app_url`, `browser_page` and `shots_dir` fixtures of tests/conftest.py; every wait is
on a condition (tests/browser_support.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser_support import ERRORS, WAIT_MS, screenshot, wait_idle as _wait_idle

OPEN_PANEL = '[data-testid="stTabPanel"][role="tabpanel"]'  # the hidden tabs' panels lose their role

pytestmark = pytest.mark.browser


def wait_idle(page) -> None:
    _wait_idle(page, scope=OPEN_PANEL)


def shoot(page, path: Path) -> None:
    screenshot(page, path, scope=OPEN_PANEL)
    page.set_viewport_size({"width": page.viewport_size["width"], "height": 900})


def visible_charts(page) -> int:
    return page.locator(f'{OPEN_PANEL} [data-testid="stPlotlyChart"]').count()


def test_inference_page_three_tabs(app_url, browser_page, shots_dir):
    page = browser_page
    page.goto(f"{app_url}/inference?inf_bq=4&inf_bk=4&inf_tile=9")
    wait_idle(page)
    assert page.locator(ERRORS).count() == 0
    tabs = page.get_by_role("tab")
    assert [tabs.nth(i).inner_text().strip() for i in range(3)] == ["Tiled attention", "KV-cache memory",
                                                                    "Prefill vs decode"]
    assert page.get_by_text(re.compile(r"Tile 10 of \d+")).count() == 1  # the link's tile (0-based 9)
    assert visible_charts(page) >= 3
    shoot(page, shots_dir / "inference.png")

    tabs.nth(1).click()
    page.wait_for_url("**inf_tab=KV*", timeout=WAIT_MS)
    wait_idle(page)
    assert page.locator(ERRORS).count() == 0
    assert visible_charts(page) >= 3
    assert page.get_by_text(re.compile(r"Step \d+: \d+ requests live")).count() == 1
    shoot(page, shots_dir / "inference_kv.png")

    tabs.nth(2).click()
    page.wait_for_url("**inf_tab=Prefill*", timeout=WAIT_MS)
    wait_idle(page)
    assert page.locator(ERRORS).count() == 0
    assert visible_charts(page) >= 3
    assert page.get_by_text(re.compile(r"tokens/s at B = 1")).count() == 1
    shoot(page, shots_dir / "inference_roofline.png")

    page.reload()  # the URL reopens the same tab
    wait_idle(page)
    assert page.get_by_role("tab").nth(2).get_attribute("aria-selected") == "true"
    assert "inf_tile=9" in page.url  # the first tab's selection is still in the link
