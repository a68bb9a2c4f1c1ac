"""Fixtures shared by the suite.

`shipped_variants` (session scope) asserts that every committed checkpoint (`SHIPPED_VARIANTS`) is present and
returns their names: a test that reads them fails when one is missing, instead of passing over an empty list.

Browser tests: `app_url` (session scope) starts `streamlit run app.py` on a free port bound to 127.0.0.1,
waits for `/_stcore/health`, yields the base URL ("http://127.0.0.1:PORT") and stops the server afterwards.
`browser_page` is a fresh Playwright page in Debian's Chromium (`/usr/bin/chromium`, driven with
`executable_path`; nothing is downloaded). Without that binary the browser tests fail, never skip: deselect
them with `-m "not browser"`. `shots_dir` is where they save screenshots: $SCREENSHOT_DIR if set, else a
temporary folder (a test run never writes into the checkout; scripts/screenshots.py makes the README's).

The browser fixtures are only created by tests that ask for them, so the rest of the suite never starts a
server. The helpers (`serve_app`, `wait_idle`, `screenshot`, …) live in tests/browser_support.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser_support import CHROMIUM, CHROMIUM_ARGS, REPO, WAIT_MS, open_app_once, serve_app

# The variants trained and committed under checkpoints/ (`git ls-files checkpoints`): the seven compared on the
# Compare page, the sliding-window model and the speculative-decoding draft. model/net/checkpoints.py may list
# more, still untrained; a name here whose files are missing fails the `shipped_variants` fixture.
SHIPPED_VARIANTS = ("gqa-rope", "mha-rope", "mqa-rope", "gqa-sinusoidal", "gqa-learned", "gqa-alibi", "gqa-none",
                    "gqa-window", "draft")
CHECKPOINT_FILES = ("model.safetensors", "config.json", "train_log.json")


@pytest.fixture(scope="session")
def shipped_variants() -> list[str]:
    missing = [f"checkpoints/{n}/{f}" for n in SHIPPED_VARIANTS for f in CHECKPOINT_FILES
               if not (REPO / "checkpoints" / n / f).is_file()]
    assert not missing, f"committed checkpoint files are missing: {', '.join(missing)}"
    return list(SHIPPED_VARIANTS)


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/run_tests.sh does), "
                    "or deselect the browser tests with -m 'not browser'")


@pytest.fixture(scope="session")
def _browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, _browser):
    with serve_app(tmp_path_factory.mktemp("streamlit") / "server.log") as url:
        # Every test sees the real app whatever order it runs in; the deep-link problem itself is
        # test_browser.py::test_deep_link_on_a_fresh_server.
        open_app_once(_browser, url)
        yield url


@pytest.fixture(scope="session")
def shots_dir(tmp_path_factory) -> Path:
    """Where browser tests save screenshots: $SCREENSHOT_DIR, or a fresh temporary folder."""
    env = os.environ.get("SCREENSHOT_DIR")
    if env:
        Path(env).mkdir(parents=True, exist_ok=True)
        return Path(env)
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def browser_page(_browser):
    """A fresh page (its own context: no cookies or storage shared between tests), 1400×900, light theme."""
    context = _browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def one_thread():
    """Tiny forwards, hundreds of them: on a shared 2-core machine a second thread only adds contention. Use with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
