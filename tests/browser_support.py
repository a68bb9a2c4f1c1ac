"""Driving the app in a browser, shared by the browser tests (via tests/conftest.py) and scripts/screenshots.py.

    with serve_app(log_path) as url:            # `streamlit run app.py` on a free loopback port
        page.goto(url + "/attention")
        wait_idle(page)                          # charts drawn, the script run over, the layout settled
        grow_to_content(page)                    # for a full-height screenshot

Every wait is on a condition in the page, never a fixed sleep: on a loaded 2-core machine a fixed sleep is
either too short (a flaky test) or longer than needed everywhere else. What "settled" means is `wait_idle`'s
docstring. Nothing here imports pytest: failures are exceptions with the server's log attached.
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

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"  # Debian's, driven with executable_path: nothing is downloaded
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SERVER_START_TIMEOUT_S = 90

CHART = '[data-testid="stPlotlyChart"] .main-svg'
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
PROMPT_BOX = '[data-testid="stSidebar"] textarea'
# Generous: on a loaded 2-core machine the compare page (seven models, live) can take a minute to draw.
WAIT_MS = 120_000

# True once, for the same charts in the same places with the same number of SVG nodes, the check has come out
# the same `polls` times in a row (one poll per 100 ms) — and no script run is in progress meanwhile.
_SETTLED_JS = """([sel, polls, needChart]) => {
  const busy = document.querySelector('[data-testid="stStatusWidget"]');
  const charts = Array.from(document.querySelectorAll(sel)).filter(e => e.getBoundingClientRect().width > 0);
  const st = window.__settle || (window.__settle = {sig: null, n: 0});
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  const drawn = needChart ? charts.length > 0 : !!main && main.querySelectorAll('[data-testid="stMarkdown"]').length > 0;
  if (busy || !drawn) { st.sig = null; st.n = 0; return false; }
  const sig = charts.map(e => {
    const r = e.getBoundingClientRect();
    return [r.x, r.y, r.width, r.height].map(Math.round).join(',') + ':' + e.querySelectorAll('*').length;
  }).join(';') + '|' + main.querySelectorAll('*').length;
  if (sig === st.sig) { st.n += 1; } else { st.sig = sig; st.n = 0; }
  return st.n >= polls;
}"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(log: Path):
    """Run `streamlit run app.py` on a free loopback port until the block exits; yield its base URL.
    RuntimeError (with the end of the server's log) if it exits or does not answer in time."""
    port = free_port()
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
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer /_stcore/health in {SERVER_START_TIMEOUT_S} s:\n"
                                   f"{log.read_text(errors='replace')[-3000:]}")
            try:  # wait for the next poll on the process itself, so a crash is seen at once
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def open_app_once(browser, url: str) -> None:
    """Open "/" in a throwaway context and wait for the sidebar's prompt box.

    Streamlit starts in its legacy "pages/ folder" mode and leaves it only once app.py has called
    st.navigation in some session; until then a deep link runs the page file alone (the page's
    require_shell() then runs the shell itself). Opening "/" first gives every later visit the real app."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url + "/")
        page.wait_for_selector(PROMPT_BOX, timeout=WAIT_MS)
    finally:
        context.close()


def wait_idle(page, scope: str = "", timeout: int = WAIT_MS, polls: int = 3, chart: bool = True) -> None:
    """Wait until the page has settled: at least one chart drawn and visible (under the CSS selector `scope`,
    e.g. the open tab's panel; the first chart may sit in a closed expander), no script run in progress (the
    status widget gone), and every visible chart's box and SVG node count unchanged over `polls` polls
    100 ms apart — Plotly has finished laying out. `chart=False` is for a page that draws no chart (the guided
    lesson's text steps): it waits for written text instead, and the same stillness."""
    page.evaluate("() => { window.__settle = null; }")
    page.wait_for_function(_SETTLED_JS, arg=[f"{scope} {CHART}".strip(), polls, chart], polling=100, timeout=timeout)


def grow_to_content(page, max_height: int = 9000, scope: str = "", chart: bool = True) -> None:
    """Streamlit scrolls inside its main container, so a full-page screenshot would show one screen: grow the
    viewport to the content's height, then wait until the content fits and has settled again."""
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return Math.max(m ? m.scrollHeight : 0, document.body.scrollHeight); }")
    target = min(int(height) + 40, max_height)
    page.set_viewport_size({"width": page.viewport_size["width"], "height": target})
    page.wait_for_function(
        "h => window.innerHeight === h", arg=target, polling=100, timeout=WAIT_MS)
    wait_idle(page, scope=scope, chart=chart)


def screenshot(page, path: Path, full_page: bool = True, scope: str = "", chart: bool = True) -> Path:
    """Save `page` as a PNG at `path` (its folder is made): the whole content when `full_page`. `chart`: as in
    `wait_idle`."""
    if full_page:
        grow_to_content(page, scope=scope, chart=chart)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path
