"""The guided lesson and the home diagram in a real browser.

Lesson: from step 1, every step's answer is revealed, its page opened through the step's link (the page shows and
its URL state holds the step's values after the page ran, i.e. the link really set them), the lesson reopened
from the menu (it resumes at that step) and Next pressed, through the last step; a step link from the list opens
its step. Home: at 1280×800 with the sidebar open no text of the diagram leaves the chart, and a click on a box
opens its page.

Uses the `app_url`, `browser_page` and `shots_dir` fixtures of tests/conftest.py; marked `browser`. Every wait
is on a condition (a text, the URL, the status widget gone), never a sleep: the lesson page has no chart, so
`wait_idle` (which waits for one) is used only on pages that draw.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from browser_support import CHART, ERRORS, WAIT_MS, screenshot, wait_idle

pytestmark = pytest.mark.browser

N_STEPS = 10
_IDLE_JS = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


def idle(page) -> None:
    """No script run in progress (the status widget is gone)."""
    page.wait_for_function(_IDLE_JS, polling=100, timeout=WAIT_MS)


def on_step(page, k: int) -> None:
    page.get_by_text(f"Step {k} of {N_STEPS}").first.wait_for(timeout=WAIT_MS)
    idle(page)


def query(page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_lesson_end_to_end(app_url, browser_page, shots_dir):
    page = browser_page
    page.goto(f"{app_url}/lesson")
    on_step(page, 1)
    for k in range(1, N_STEPS + 1):
        assert query(page).get("step") == str(k)
        page.get_by_role("button", name="Reveal the model's answer").click()
        box = page.locator(".st-key-lesson_answer")
        box.get_by_text("computed now").wait_for(timeout=WAIT_MS)
        idle(page)
        assert len(box.inner_text()) > 60, f"step {k}: the answer is empty"
        if k in (1, 3, 6):
            screenshot(page, shots_dir / f"lesson_step{k}.png", full_page=False)
        # The step's page, prepared: its own script has run and written its state back to the URL.
        link = page.get_by_role("link", name=re.compile(r"set up for this step"))
        href = link.get_attribute("href")
        want = {k2: v[-1] for k2, v in parse_qs(urlparse(href).query).items()}
        path = urlparse(href).path.rstrip("/").rsplit("/", 1)[-1]
        link.click()
        page.wait_for_url(re.compile(rf"/{path}\?"), timeout=WAIT_MS)
        wait_idle(page)
        assert page.locator(ERRORS).count() == 0, f"step {k}: {path} shows an error"
        assert page.locator(CHART).count() >= 1
        got = query(page)
        tab = want.pop("cmp_tab", None)  # a tab bound to the URL leaves its default out of it: read the open tab
        if tab is not None:
            assert page.locator('[role="tab"][aria-selected="true"]').first.inner_text().strip() == tab
        assert all(got.get(key) == value for key, value in want.items()), (k, want, got)
        # Back through the menu: the lesson resumes at this step, then Next.
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Guided lesson").click()
        on_step(page, k)
        if k < N_STEPS:
            page.get_by_role("button", name="Next").click()
            on_step(page, k + 1)
    assert page.get_by_role("button", name="Next").is_disabled()
    page.get_by_role("button", name="Previous").click()
    on_step(page, N_STEPS - 1)
    # Each step is a link.
    page.get_by_text("All steps (each is a link)").click()
    page.get_by_role("link", name="3. Attention: one head").click()
    on_step(page, 3)
    assert query(page).get("step") == "3"
    assert page.locator(ERRORS).count() == 0


def test_home_diagram_fits_and_its_boxes_open_their_pages(app_url, browser_page, shots_dir):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{app_url}/")
    wait_idle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.scroll_into_view_if_needed()
    outer = chart.locator(".main-svg").first.bounding_box()
    texts = chart.locator("g.textpoint text")
    assert texts.count() >= 20
    for i in range(texts.count()):  # every stage name and shape inside the chart: nothing clipped
        b = texts.nth(i).bounding_box()
        assert b["x"] >= outer["x"] - 1 and b["x"] + b["width"] <= outer["x"] + outer["width"] + 1, \
            texts.nth(i).text_content()
    screenshot(page, shots_dir / "home_1280.png", full_page=False)
    # The hit markers, five per stage: the centre one of the "scores" stage, then of "Tokens".
    names = [texts.nth(i).text_content() for i in range(texts.count())]
    stage_names = names[: len(names) // 2]
    for name, target in [("scores", "attention"), ("Tokens", "tokenization")]:
        if page.url.rstrip("/") != app_url:
            page.goto(f"{app_url}/")
            wait_idle(page)
        i = next(j for j, s in enumerate(stage_names) if s.startswith(name))
        point = page.locator('[data-testid="stPlotlyChart"]').first.locator("g.scatterlayer g.trace").nth(2) \
            .locator("path.point").nth(5 * i + 2)
        point.scroll_into_view_if_needed()
        b = point.bounding_box()
        page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
        page.get_by_text("Click to open its page").first.wait_for(timeout=WAIT_MS)  # the hover definition
        page.mouse.click(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
        page.wait_for_url(re.compile(rf"/{target}(\?|$)"), timeout=WAIT_MS)
        wait_idle(page)
        assert page.locator(ERRORS).count() == 0
