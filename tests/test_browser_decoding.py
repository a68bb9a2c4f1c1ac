"""The Decoding page in a real browser: beam search walked three steps (the tree gains a column each click),
then speculative decoding walked two rounds, the rounds chart growing; no errors. Screenshots go to `shots_dir`
(a temporary folder, or $SCREENSHOT_DIR).

Uses the `app_url`, `browser_page`, `shots_dir` and `shipped_variants` fixtures of tests/conftest.py; marked
`browser`. Every wait is on a condition (tests/browser_support.py).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from browser_support import CHART, ERRORS, screenshot, wait_idle
from model.net.checkpoints import available_variants

WAIT_MS = 180_000  # the first visit runs beam search, the comparison and (second tab) the acceptance sweep
DRAFT = "draft" if "draft" in available_variants() else "mqa-rope"

pytestmark = pytest.mark.browser


def settle(page) -> None:
    """Charts drawn, the script run over, the layout settled."""
    wait_idle(page, timeout=WAIT_MS)


def test_beam_steps_then_speculative_rounds(app_url, browser_page, shots_dir, shipped_variants):
    page = browser_page
    page.goto(f"{app_url}/decoding?dec_beams=3&dec_beam_n=8")
    settle(page)
    page.get_by_text("step 1 of 8").first.wait_for(timeout=WAIT_MS)
    for i in (2, 3, 4):
        page.get_by_role("button", name="Next step").click()
        page.get_by_text(f"step {i} of 8").first.wait_for(timeout=WAIT_MS)
        settle(page)
    tree = page.locator('[data-testid="stPlotlyChart"]').first
    assert tree.locator("g.xtick").count() == 5  # the prompt + four generated positions
    assert page.get_by_text("cache.reorder(").count() >= 1
    assert page.locator(ERRORS).count() == 0
    screenshot(page, shots_dir / "decoding.png")

    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{app_url}/decoding?dec_tab={quote('Speculative decoding')}&dec_draft={DRAFT}&dec_k=4&dec_n=24")
    settle(page)
    page.get_by_text("round 1 of").first.wait_for(timeout=WAIT_MS)
    for i in (2, 3):
        page.get_by_role("button", name="Next round").click()
        page.get_by_text(f"round {i} of").first.wait_for(timeout=WAIT_MS)
        settle(page)
    page.get_by_text("Round 3", exact=True).first.wait_for(timeout=WAIT_MS)
    assert page.get_by_text("identical to the target's own greedy output").count() == 1
    assert page.locator(CHART).count() >= 3
    assert page.locator(ERRORS).count() == 0
    screenshot(page, shots_dir / "decoding_speculative.png")
