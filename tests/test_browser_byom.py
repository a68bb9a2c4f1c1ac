"""Bring your own model in a real browser: every page opened on a folder's model by a link (`?model=PATH`) draws
its charts with no error and no traceback; the sidebar shows the folder as the model source; a refused folder
is an error box, not a traceback. The folder is a small random Llama written by our exporter with a byte-level
BPE tokenizer.json (tests/test_byom_app.py builds it; the AppTest suite there covers the other families).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from browser_support import CHART, ERRORS, WAIT_MS, wait_idle
from test_byom_app import exported, write_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def url_path(page_file: str) -> str:
    stem = Path(page_file).stem
    return "" if stem == "home" else stem


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    # 10 layers: the attention grid and the generation page's rows page their layers (8 at a time)
    return exported(tmp_path_factory.mktemp("byom"), n_layers=10)


def test_every_page_on_a_folder_model(app_url, browser_page, folder):
    from app_shared import listed_pages

    page = browser_page
    for entry in listed_pages():
        page.goto(f"{app_url}/{url_path(entry[0])}?model={quote(str(folder))}")
        text_only = Path(entry[0]).stem == "lesson"  # the lesson draws no chart (and says it runs on ours)
        wait_idle(page, timeout=WAIT_MS, chart=not text_only)
        assert page.locator(CHART).count() >= (0 if text_only else 1), entry[0]
        errors = page.locator(ERRORS)
        assert errors.count() == 0, (entry[0], errors.first.inner_text())
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_role("radio", name="A folder").is_checked(), entry[0]
        assert sidebar.get_by_test_id("stTextInputField").input_value() == str(folder)


def test_a_refused_folder_is_an_error_box_in_the_browser(app_url, browser_page, tmp_path):
    page = browser_page
    write_config(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    page.goto(f"{app_url}/attention?model={quote(str(tmp_path))}")
    error = page.locator('[data-testid="stAlertContentError"]')
    error.wait_for(timeout=WAIT_MS)
    assert "we never unpickle" in error.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0 and page.locator(CHART).count() == 0
