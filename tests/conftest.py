"""Browser-test fixtures: the app served on loopback (`app_url`) and a headless Chromium page (`browser_page`).

`app_url` (session scope) starts `streamlit run app.py` on a free port bound to 127.0.0.1, waits for
`/_stcore/health`, yields the base URL ("http://127.0.0.1:PORT") and stops the server afterwards.
`browser_page` is a fresh Playwright page in Debian's Chromium (`/usr/bin/chromium`, driven with
`executable_path`; nothing is downloaded). Without that binary the browser tests are skipped — or fail when
the environment variable CI is set, so a CI run cannot pass by skipping them.

Both fixtures are only created by tests that ask for them, so the rest of the suite never starts a server.
`serve_app` is the server as a context manager, for a test that needs a fresh one of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SERVER_START_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        msg = f"{CHROMIUM} is missing: install Debian's chromium (scripts/run_tests.sh does)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@contextmanager
def serve_app(log: Path):
    """Run `streamlit run app.py` on a free loopback port until the block exits; yield its base URL."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer /_stcore/health in {SERVER_START_TIMEOUT_S} s:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
        # Streamlit starts in its legacy "pages/ folder" mode and leaves it only once app.py has called
        # st.navigation in some session; until then a deep link runs the page file alone, without app.py.
        # Open "/" once so every test sees the real app whatever order it runs in; the deep-link problem
        # itself is test_browser.py::test_deep_link_on_a_fresh_server.
        context = _browser.new_context()
        try:
            page = context.new_page()
            page.goto(url + "/")
            page.wait_for_selector('[data-testid="stSidebar"] textarea', timeout=90_000)
        finally:
            context.close()
        yield url


@pytest.fixture
def browser_page(_browser):
    """A fresh page (its own context: no cookies or storage shared between tests), 1400×900, light theme."""
    context = _browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        yield page
    finally:
        context.close()
