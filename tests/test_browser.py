"""The app in a real browser: every page loads, draws its charts and shows no error; HTML in a prompt stays text.

Each page's full-height screenshot is saved to `shots_dir` (a temporary folder, or $SCREENSHOT_DIR) as
<page>.png; the README's own screenshots are made on purpose by scripts/screenshots.py. Uses the `app_url`,
`browser_page` and `shots_dir` fixtures of tests/conftest.py; marked `browser` (`-m "not browser"` deselects
them). Every wait is on a condition (tests/browser_support.py), never a fixed sleep.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import expect

from browser_support import CHART, ERRORS, WAIT_MS as PAGE_TIMEOUT_MS, screenshot, serve_app, wait_idle

REPO = Path(__file__).resolve().parent.parent
HOSTILE = "<img src=x onerror=alert(1)>"

pytestmark = pytest.mark.browser


def _pages_literal() -> list[tuple]:
    """The app's menu (app_shared.PAGES), the entries whose file exists."""
    from app_shared import listed_pages

    return listed_pages()


def app_pages() -> list[str]:
    """The page files the app lists and that exist."""
    return [e[0] for e in _pages_literal()]


def url_path(page_file: str) -> str:
    """st.navigation's URL path: the file's stem; the default page (home) is the root."""
    stem = Path(page_file).stem
    return "" if stem == "home" else stem


TEXT_ONLY = {"lesson"}  # pages that draw no chart: waited on for their text (browser_support.wait_idle)


def wait_until_idle(page) -> None:
    """A drawn chart (any: the first may sit in a closed expander or tab), the script run over, the layout
    settled (browser_support.wait_idle)."""
    wait_idle(page, timeout=PAGE_TIMEOUT_MS)


@pytest.mark.parametrize("page_file", app_pages(), ids=lambda f: Path(f).stem)
def test_page_renders_without_errors(app_url, browser_page, shots_dir, page_file):
    page = browser_page
    page.goto(f"{app_url}/{url_path(page_file)}")
    chart = Path(page_file).stem not in TEXT_ONLY
    wait_idle(page, timeout=PAGE_TIMEOUT_MS, chart=chart)
    assert page.locator(CHART).count() >= (1 if chart else 0)
    errors = page.locator(ERRORS)
    assert errors.count() == 0, errors.first.inner_text()
    shot = screenshot(page, shots_dir / f"{Path(page_file).stem}.png", chart=chart)
    assert shot.stat().st_size > 10_000  # a real picture of the page, not an empty frame


@pytest.mark.parametrize("variant", ["gqa-postnorm", "gqa-moe"])
def test_building_blocks_on_the_architecture_variants(app_url, browser_page, shots_dir, variant):
    """The trained post-norm and mixture-of-experts variants (shipped: the link names them) on Building blocks:
    every section draws without an error, the MoE's router and expert load among them."""
    from model.net.checkpoints import available_variants

    assert variant in available_variants(), f"{variant}'s weights are committed"
    page = browser_page
    page.goto(f"{app_url}/blocks?variant={variant}")
    wait_idle(page, timeout=PAGE_TIMEOUT_MS)
    assert page.locator(ERRORS).count() == 0, page.locator(ERRORS).first.inner_text()
    expect(page.get_by_role("heading", name="3. Pre- vs post-norm: what training logged")).to_be_visible()
    if variant == "gqa-moe":
        expect(page.get_by_role("heading", name="4. The mixture of experts: 4 experts, 2 per token")).to_be_visible()
    assert page.locator(CHART).count() >= 5
    screenshot(page, shots_dir / f"blocks-{variant}.png")


def test_attention_page_in_dark_mode(app_url, _browser, shots_dir):
    context = _browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="dark")
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page.goto(f"{app_url}/attention")
        wait_until_idle(page)
        assert page.locator(ERRORS).count() == 0
        # the dark theme is on: the app's background is dark
        bg = page.evaluate("() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")
        assert sum(int(c) for c in bg[bg.index("(") + 1 : bg.index(")")].split(",")[:3]) < 3 * 80, bg
        screenshot(page, shots_dir / "attention-dark.png")
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
            more = page.locator('[data-testid="stSidebarNavViewButton"]')  # past 10 pages: "View N more"
            if more.count():
                more.click()
                page.wait_for_function("n => document.querySelectorAll('[data-testid=\"stSidebarNav\"] a').length"
                                       " === n", arg=len(_pages_literal()), polling=100)
            nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
            titles = [t.strip().splitlines()[-1].strip() for t in nav]  # each link is "icon name\n\ntitle"
            assert titles == [e[1] for e in _pages_literal()], nav  # app.py's menu, not the legacy one
            assert page.locator(ERRORS).count() == 0
            assert page.get_by_text("layer 1, head 2").count() >= 1  # the link's selections were applied
        finally:
            context.close()
