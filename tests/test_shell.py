"""The app's shell and its one Markdown escaper (app_shared): every page opened as a fresh deep link runs inside
the shell exactly once, with the link's prompt; `plain_md` turns any text into Markdown that renders as that
text (checked against a CommonMark renderer)."""

from __future__ import annotations

import html
import string
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import app_shared
from app_shared import PAGES, listed_pages, plain_md

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
LINK_PROMPT = "To be, or not to be"


# --------------------------------------------------------------------------------------------------------
# The shell
# --------------------------------------------------------------------------------------------------------


def test_app_py_is_the_shell_and_the_menu_is_importable():
    assert [p[0] for p in listed_pages()] == [p[0] for p in PAGES if (REPO / p[0]).is_file()]
    assert listed_pages() and all(len(p) == 4 for p in PAGES)
    source = (REPO / "app.py").read_text()
    assert "run_shell()" in source and "exec(" not in source
    shared = (REPO / "app_shared.py").read_text()
    assert "exec(" not in shared and "compile(" not in shared and "PagesManager" not in shared


@pytest.mark.parametrize("page", [p[0] for p in listed_pages()], ids=lambda p: Path(p).stem)
def test_a_deep_link_runs_the_page_inside_the_shell(page):
    """The page's file is the first thing this session runs (AppTest, like a fresh server's first deep link, is in
    Streamlit's legacy pages/ mode): it must get the sidebar once, with the link's prompt, and its own content."""
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params["prompt"] = LINK_PROMPT
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.sidebar.text_area) == 1  # the shell ran once: not missing, not twice
    assert at.session_state["prompt"] == LINK_PROMPT
    assert at.sidebar.text_area[0].value == LINK_PROMPT
    assert len(at.sidebar.selectbox) == 1 and at.session_state["variant"] in app_shared.VARIANTS
    assert at.title, "the page itself drew nothing"
    assert not app_shared._IN_SHELL.get()  # the mark belongs to the script run, never leaks out of it


def test_the_home_page_through_app_py():
    at = AppTest.from_file(APP, default_timeout=240).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.sidebar.text_area) == 1 and at.title[0].value == "What a language model does with your text"


# --------------------------------------------------------------------------------------------------------
# plain_md: the one Markdown escaper
# --------------------------------------------------------------------------------------------------------

HOSTILE = [
    "# Title", "**bold** _it_ ~~gone~~", "[link](javascript:alert(1))", "![img](x)", "<img src=x onerror=alert(1)>",
    "<!-- c -->", "&amp; &lt;", "$$x^2$$ and $y$", ":red[red] :material/home: :smile:", "`code`", "> quote",
    "- item", "+ item", "1. item", "a | b |\n|---|---|", "line\n\n    indented code", "back\\slash", "x=1; y='2'",
    "Ça va? 日本語 😀", "att_layer=99999",
]


def test_plain_md_escapes_every_ascii_punctuation_character():
    assert plain_md(string.punctuation) == "".join("\\" + c for c in string.punctuation)
    assert plain_md("ab c 7 é 😀") == "ab c 7 é 😀"  # letters, digits, spaces, non-ASCII: unchanged
    assert plain_md("a\nb\r\nc\rd") == "a b c d"  # a line break could start a new block
    assert plain_md("abcdef", 3) == "abc…" and plain_md("abc", 3) == "abc" and plain_md(12) == "12"
    assert plain_md("att_layer") == "att\\_layer"


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_md_renders_as_the_text_itself(text):
    """CommonMark (markdown-it, the reference Streamlit's renderer follows) shows exactly the characters."""
    import markdown_it  # installed with streamlit (markdown-it-py): missing is a failure

    md = markdown_it.MarkdownIt("commonmark").enable("strikethrough").enable("table")
    shown = " ".join(text.replace("\r\n", " ").replace("\r", " ").split("\n"))
    as_text = html.escape(shown, quote=False).replace('"', "&quot;")  # markdown-it's own escaping of text
    assert md.render(plain_md(text)) == f"<p>{as_text}</p>\n"
