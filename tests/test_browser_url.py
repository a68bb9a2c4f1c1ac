"""Every view is a link, in a real browser: on each page, change a widget, take the address bar's URL, open it
in a fresh browser context (no cookies, no session) and find the same view.

One server for every page (the `app_url` fixture); each case is one interaction on the page, a wait for the URL
to carry it, and one fresh load. Every wait is on a condition (tests/browser_support.py), never a fixed sleep.
tests/test_url_state.py checks the same through AppTest, key by key.
"""

from __future__ import annotations

import re

import pytest

from browser_support import ERRORS, PROMPT_BOX, WAIT_MS, wait_idle

pytestmark = pytest.mark.browser


def param(page, key: str) -> str | None:
    return page.evaluate("k => new URLSearchParams(location.search).get(k)", key)


def url_has(page, key: str, value: str | None = None, other_than: str | None = None) -> None:
    """Wait until the address bar's query carries `key` — with `value`, when given, or any value but
    `other_than` (what it held before the change)."""
    page.wait_for_function(
        "([k, v, o]) => { const x = new URLSearchParams(location.search).get(k);"
        " return x !== null && (v === null || x === v) && x !== o; }",
        arg=[key, value, other_than], polling=100, timeout=WAIT_MS)


def selectbox(page, label: str):
    return page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first


def squash(text: str) -> str:
    return " ".join(text.split())  # the list's text collapses runs of spaces; the field's value keeps them


def chosen(page, label: str) -> str:
    return squash(selectbox(page, label).get_by_role("combobox").input_value())


def pick(page, label: str, nth: int) -> str:
    """Open the selectbox labelled `label`, choose its nth option; returns the option's text."""
    box = selectbox(page, label)
    field = box.get_by_role("combobox")
    shown = squash(field.input_value())
    # Streamlit 1.67's selectbox is a react-aria combobox: a click focuses it, the arrow key opens its list.
    field.click()
    field.press("ArrowDown")
    options = page.locator('[data-testid="stSelectboxVirtualDropdown"] [role="option"]')
    option = options.nth(nth)
    if squash(option.inner_text()) == shown:  # already chosen: the next one is a change
        option = options.nth(nth + 1)
    text = squash(option.inner_text())
    option.click()
    return text


def number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def tab_selected(page, name: str) -> bool:
    return page.get_by_role("tab", name=name, exact=True).get_attribute("aria-selected") == "true"


@pytest.fixture
def fresh(_browser):
    """Opens a URL in a new browser context of its own — what a student pasting the link gets."""
    contexts = []

    def open_(url: str):
        context = _browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        wait_idle(page)
        return page

    yield open_
    for c in contexts:
        c.close()


def _prompt(page):
    box = page.locator(PROMPT_BOX)
    box.fill("To be, or not to be")
    box.press("Control+Enter")
    return "To be, or not to be"


CASES = {
    # page path: (change in the page -> value, the URL key it writes, check in the fresh page)
    "home": ("", _prompt, "prompt", lambda p, v: p.locator(PROMPT_BOX).input_value() == v),
    "tokenization": ("tokenization", lambda p: pick(p, "Word", 3), "tok_word",
                     lambda p, v: v == chosen(p, "Word")),
    "embeddings": ("embeddings", lambda p: pick(p, "Token to look at", 4), "emb_pos",
                   lambda p, v: v == chosen(p, "Token to look at")),
    "attention": ("attention", lambda p: p.get_by_text("Sort each layer's heads by this score").click() or "True",
                  "att_sort", lambda p, v: p.get_by_label("Sort each layer's heads by this score").is_checked()),
    "logit_lens": ("logit_lens", lambda p: pick(p, "Position", 2), "lens_pos",
                   lambda p, v: v == chosen(p, "Position")),
    "generation": ("generation", lambda p: [p.get_by_role("button", name="Next token").click(),
                                            url_has(p, "gen_steps", "1"), wait_idle(p),
                                            p.get_by_role("button", name="Next token").click()] and "2",
                   "gen_steps", lambda p, v: p.get_by_text(re.compile(r"\+ 2 decode steps")).count() == 1
                   and p.get_by_text(re.compile("Step 2: decode step 2")).count() == 1),
    "decoding": ("decoding?dec_beams=2&dec_beam_n=4", lambda p: p.get_by_role("button", name="Next step").click()
                 or "1", "beam_view", lambda p, v: p.get_by_text("step 2 of 4").count() == 1),
    "rope": ("rope", lambda p: number(p, "Move both by Δ", 40) or "40", "rope_delta",
             lambda p, v: p.get_by_label("Move both by Δ", exact=True).input_value() == v),
    "compare": ("compare", lambda p: tab(p, "Positional encodings") or "Positional encodings", "cmp_tab",
                lambda p, v: tab_selected(p, v)),
    "accounting": ("accounting", lambda p: [number(p, "Batch b", 8), url_has(p, "acc_batch", "8"), wait_idle(p),
                                            tab(p, "Memory")] and "Memory", "acc_tab",
                   lambda p, v: tab_selected(p, v) and p.get_by_label("Batch b", exact=True).input_value() == "8"),
    "quantization": ("quantization", lambda p: tab(p, "Error by layer") or "Error by layer", "q_tab",
                     lambda p, v: tab_selected(p, v)),
    "inference": ("inference", lambda p: pick(p, "Q block (rows)", 1), "inf_bq",
                  lambda p, v: v == chosen(p, "Q block (rows)")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_changed_view_is_a_link(app_url, browser_page, fresh, name):
    path, change, key, check = CASES[name]
    page = browser_page
    page.goto(f"{app_url}/{path}")
    wait_idle(page)
    before = param(page, key)
    value = change(page)
    # A selectbox's URL value is the option itself (an index, a word), not the label shown: any new value.
    url_has(page, key, None if key in ("tok_word", "emb_pos", "lens_pos", "inf_bq") else value, before)
    wait_idle(page)
    link = page.url
    other = fresh(link)
    assert other.locator(ERRORS).count() == 0
    assert other.get_by_text(re.compile("cannot be used here")).count() == 0
    assert check(other, value), (name, link)
