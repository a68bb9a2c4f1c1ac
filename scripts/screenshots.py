"""Regenerate the README's screenshots on purpose: `.venv/bin/python scripts/screenshots.py`

Serves the app (`streamlit run app.py` on a free loopback port), opens each page of the menu in Debian's
headless Chromium at 1280×800 and writes docs/screenshots/<page>.png, plus attention-dark.png (the dark theme),
compare_positions.png (the compare page's second tab) and generation.png after three decode steps. Every wait is
on a condition in the page (tests/browser_support.py), never a fixed sleep.

    --out DIR      another folder (default docs/screenshots)
    --full-page    the whole height of each page instead of the first 1280×800
    --only NAME…   just these shots (home, attention, attention-dark, compare_positions, generation, …)

The test suite never writes here: its screenshots go to a temporary folder (or $SCREENSHOT_DIR).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from browser_support import (  # noqa: E402  (the paths above first)
    CHROMIUM, CHROMIUM_ARGS, ERRORS, WAIT_MS, open_app_once, screenshot, serve_app, wait_idle)

WIDTH, HEIGHT = 1280, 800
OPEN_PANEL = '[data-testid="stTabPanel"][role="tabpanel"]'
TEXT_ONLY = {"lesson"}  # pages that draw no chart: wait for their text instead


def url_path(page_file: str) -> str:
    """st.navigation's URL path: the file's stem; the default page (home) is the root."""
    stem = Path(page_file).stem
    return "" if stem == "home" else stem


def check(page, name: str) -> None:
    errors = page.locator(ERRORS)
    if errors.count():
        raise RuntimeError(f"{name}: the page shows an error: {errors.first.inner_text()[:500]}")


def shots(pages: list[str]) -> dict:
    """name -> (URL path, color scheme, what to do once the page has settled, scope of the charts to wait for)."""

    def nothing(page):
        pass

    def positions_tab(page):
        page.get_by_role("tab").nth(1).click()
        page.wait_for_url("**cmp_tab=Positional*", timeout=WAIT_MS)
        wait_idle(page, scope=OPEN_PANEL)

    def three_steps(page):
        cached = re.compile(r"cache: (\d+) positions")
        n0 = int(cached.search(page.get_by_text(cached).first.inner_text()).group(1))
        for i in range(1, 4):
            page.get_by_role("button", name="Next token").click()
            page.get_by_text(f"cache: {n0 + i} positions").first.wait_for(timeout=WAIT_MS)
            wait_idle(page)

    out = {}
    for f in pages:
        stem = Path(f).stem
        out[stem] = (url_path(f), "light", three_steps if stem == "generation" else nothing,
                     OPEN_PANEL if stem == "compare" else "")
    if "attention" in out:
        out["attention-dark"] = (url_path("pages/attention.py"), "dark", nothing, "")
    if "compare" in out:
        out["compare_positions"] = (url_path("pages/compare.py"), "light", positions_tab, OPEN_PANEL)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Regenerate the README's screenshots (docs/screenshots/).")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    p.add_argument("--full-page", action="store_true", help="the whole page, not the first 1280×800")
    p.add_argument("--only", nargs="+", default=None, help="just these shots, by name")
    a = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from app_shared import listed_pages

    plan = shots([f for f, *_ in listed_pages()])
    unknown = sorted(set(a.only or []) - set(plan))
    if unknown:
        print(f"error: no shot named {', '.join(unknown)}; one of {', '.join(plan)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, serve_app(Path(tmp) / "server.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            open_app_once(browser, url)
            for name, (path, scheme, then, scope) in plan.items():
                if a.only and name not in a.only:
                    continue
                context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, color_scheme=scheme)
                try:
                    page = context.new_page()
                    page.set_default_timeout(WAIT_MS)
                    page.goto(f"{url}/{path}")
                    chart = name not in TEXT_ONLY
                    wait_idle(page, scope=scope, chart=chart)
                    then(page)
                    check(page, name)
                    shot = screenshot(page, a.out / f"{name}.png", full_page=a.full_page, scope=scope, chart=chart)
                    print(f"wrote {shot.relative_to(REPO) if shot.is_relative_to(REPO) else shot}")
                finally:
                    context.close()
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
