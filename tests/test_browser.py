"""The app in a real browser: every page loads, draws its charts and shows no error; HTML in a prompt stays text.

Each page's full-height screenshot is saved to docs/screenshots/<page>.png (the README shows some of them).
Uses the `app_url` and `browser_page` fixtures of tests/conftest.py; marked `browser` (`-m "not browser"`
skips them).
"""

from __future__ import annotations

import ast
import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import expect

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "docs" / "screenshots"
HOSTILE = "<img src=x onerror=alert(1)>"
CHART = '[data-testid="stPlotlyChart"] .main-svg'
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'

# Generous: on a loaded 2-core machine the compare page (seven models, live) can take a minute to draw.
PAGE_TIMEOUT_MS = 120_000

pytestmark = pytest.mark.browser


def _pages_literal() -> list[tuple]:
    """app.py's PAGES entries whose file exists, read from the literal (importing app.py would run it)."""
    tree = ast.parse((REPO / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in node.targets):
            return [e for e in ast.literal_eval(node.value) if (REPO / e[0]).exists()]
    raise AssertionError("app.py has no PAGES list")


def app_pages() -> list[str]:
    """The page files app.py lists and that exist."""
    return [e[0] for e in _pages_literal()]


def url_path(page_file: str) -> str:
    """st.navigation's URL path: the file's stem; the default page (home) is the root."""
    stem = Path(page_file).stem
    return "" if stem == "home" else stem


def wait_until_idle(page) -> None:
    """Wait for a drawn chart (any: the first may sit in a closed expander or tab), then for the script run
    to finish (the status widget disappears)."""
    page.wait_for_function(
        "sel => Array.from(document.querySelectorAll(sel)).some(e => e.getBoundingClientRect().width > 0)",
        arg=CHART, timeout=PAGE_TIMEOUT_MS,
    )
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=PAGE_TIMEOUT_MS
    )
    page.wait_for_timeout(500)  # let Plotly finish laying out


def full_screenshot(page, path: Path) -> None:
    """Streamlit scrolls inside its main container, so grow the viewport to the content, then shoot."""
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return Math.max(m ? m.scrollHeight : 0, document.body.scrollHeight); }"
    )
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 8000)})
    page.wait_for_timeout(800)  # charts resize to the new viewport
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


@pytest.mark.parametrize("page_file", app_pages(), ids=lambda f: Path(f).stem)
def test_page_renders_without_errors(app_url, browser_page, page_file):
    page = browser_page
    page.goto(f"{app_url}/{url_path(page_file)}")
    wait_until_idle(page)
    assert page.locator(CHART).count() >= 1
    errors = page.locator(ERRORS)
    assert errors.count() == 0, errors.first.inner_text()
    full_screenshot(page, SHOTS / f"{Path(page_file).stem}.png")


def test_attention_page_in_dark_mode(app_url, _browser):
    context = _browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="dark")
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page.goto(f"{app_url}/attention")
        wait_until_idle(page)
        assert page.locator(ERRORS).count() == 0
        full_screenshot(page, SHOTS / "attention-dark.png")
    finally:
        context.close()


def test_html_typed_into_the_prompt_shows_as_text(app_url, browser_page):
    page = browser_page
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{app_url}/tokenization")
    wait_until_idle(page)
    box = page.locator('[data-testid="stSidebar"] textarea').first
    box.fill(HOSTILE)
    box.press("Control+Enter")
    # The token boxes are redrawn for the new prompt: wait until the SVG text holds the pieces of the tag.
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg text'))"
        ".map(t => t.textContent).join('').includes('onerror')",
        timeout=PAGE_TIMEOUT_MS,
    )
    wait_until_idle(page)
    expect(box).to_have_value(HOSTILE)
    chart_text = "".join(page.locator('[data-testid="stPlotlyChart"] .main-svg text').all_text_contents())
    assert "<img" in chart_text  # drawn as characters …
    assert page.locator('img[src="x"]').count() == 0  # … and never as an element
    assert page.locator(ERRORS).count() == 0
    assert dialogs == []


def test_html_in_the_url_prompt_shows_as_text(app_url, browser_page):
    page = browser_page
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{app_url}/attention?prompt={urllib.parse.quote(HOSTILE)}")
    wait_until_idle(page)
    # expect() retries: the text area may be drawn a moment before the session's value reaches it.
    expect(page.locator('[data-testid="stSidebar"] textarea').first).to_have_value(HOSTILE, timeout=30_000)
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator(ERRORS).count() == 0
    assert dialogs == []


def test_deep_link_on_a_fresh_server(_browser, tmp_path):
    """A shared link to a page, opened first on a just-started server, shows the app (sidebar, prompt)."""
    from conftest import serve_app

    with serve_app(tmp_path / "server.log") as url:
        context = _browser.new_context(viewport={"width": 1400, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{url}/attention?prompt=To%20be%2C%20or%20not%20to%20be&att_layer=1&att_head=2")
            wait_until_idle(page)
            box = page.locator('[data-testid="stSidebar"] textarea')
            assert box.count() == 1, "the page ran without app.py (Streamlit's legacy pages/ mode)"
            assert box.input_value() == "To be, or not to be"  # the link's prompt, not the default
            nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
            titles = [t.strip().splitlines()[-1].strip() for t in nav]  # each link is "icon name\n\ntitle"
            assert titles == [e[1] for e in _pages_literal()], nav  # app.py's menu, not the legacy one
            assert page.locator(ERRORS).count() == 0
            assert page.get_by_text("layer 1, head 2").count() >= 1  # the link's selections were applied
        finally:
            context.close()
