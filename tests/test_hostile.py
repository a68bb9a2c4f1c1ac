"""Hostile and odd input, everywhere a user can put it: the sidebar prompt (on every page), the URL's query
parameters, the CLIs, a pasted config.json and the checkpoint files. Each must give a clear message (an
st.error / st.warning / st.info, or exit status 2 with the reason) and never a traceback; what the user typed
is shown as text, never rendered.

The inputs are tables: add a row to TEXTS, BAD_QUERY_VALUES, BAD_CONFIGS or CORRUPTIONS and every test that
reads the table picks it up. The full prompt table goes through the shared path (app.py's sidebar, the home
page and the CLI); every page gets a representative subset (empty, one prompt holding every kind of hostile
text at once, and 20,000 characters), which covers the same code in each page at a third of the cost.

Checkpoints load only through safetensors: the last tests plant pickles that would leave a marker file if
anything unpickled them, and scan the code for loaders that can.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from streamlit.testing.v1 import AppTest

import app_shared
from app_shared import DEFAULT_PROMPT, MAX_PROMPT_CHARS
from model.accounting import cli as accounting
from model.decoding import generate
from model.net import checkpoints
from model.net.checkpoints import DEFAULT_VARIANT, variant_config
from model.net.config import ModelConfig
from model.text.tokenizer import EOT_ID
from app_support import open_page as open_app_page

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")


# --------------------------------------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    name: str
    text: str
    expect: Optional[tuple[str, str]]  # (element kind, words it must contain) on a page that reads the prompt
    cli_ok: bool = True  # `python -m model.decoding.generate --prompt TEXT` succeeds (else: exit 2 with a message)


HTML = "<img src=x onerror=alert(1)><script>alert(1)</script><b>bold</b>"
MARKDOWN = "# Title\n**bold** [link](javascript:alert(1)) $$x^2$$ :red[red] <!-- comment -->"
TEXTS = [
    Text("empty", "", ("info", "Type a prompt"), cli_ok=False),
    Text("whitespace", "  \t\n   \n", ("info", "only whitespace")),
    Text("20000 chars", ("To be, or not to be, that is the question. " * 500)[:MAX_PROMPT_CHARS],
         ("warning", "Only the first")),
    Text("single emoji", "😀", None),
    Text("mixed scripts", "Ça va? 日本語 مرحبا Привет 👋🏽 e\u0301 zero\u200bwidth", None),
    Text("lone surrogates", "a\ud800b\udfffc", ("warning", "not valid Unicode")),
    Text("endoftext", "Hello<|endoftext|>world", ("caption", "special token")),
    Text("chat templates", "<|im_start|>user\n<s>[INST] hi [/INST]</s><|im_end|>", None),
    Text("html and script", HTML, None),
    Text("markdown", MARKDOWN, None),
]
BY_NAME = {t.name: t for t in TEXTS}
# One prompt holding every kind of hostile text at once: what each page gets besides empty and 20,000 chars.
EVERYTHING = Text("everything at once", "\n".join([BY_NAME[n].text for n in (
    "html and script", "markdown", "endoftext", "chat templates", "mixed scripts", "single emoji",
    "lone surrogates")]), ("warning", "not valid Unicode"))
PAGE_SUBSET = [BY_NAME["empty"], EVERYTHING, BY_NAME["20000 chars"]]

# Values put in the URL for every parameter a page reads with url_int / url_choice (cycled over the keys).
BAD_QUERY_VALUES = ["99999", "-5", "1.5", "abc", "1e3", "9" * 5000, "<script>alert(1)</script>", ""]


@dataclass(frozen=True)
class BadConfig:
    name: str
    config: dict
    field: str  # the field the message must name


OURS = ModelConfig().to_dict()
HF = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "num_hidden_layers": 32,
      "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 11008,
      "max_position_embeddings": 4096}
BAD_CONFIGS = [
    BadConfig("ours: zero", {**OURS, "d_model": 0}, "d_model"),
    BadConfig("ours: negative", {**OURS, "n_layers": -4}, "n_layers"),
    BadConfig("ours: huge", {**OURS, "vocab_size": 10**40}, "vocab_size"),
    BadConfig("ours: non-integer", {**OURS, "n_heads": 2.5}, "n_heads"),
    BadConfig("ours: string", {**OURS, "d_mlp": "512"}, "d_mlp"),
    BadConfig("hf: zero", {**HF, "hidden_size": 0}, "hidden_size"),
    BadConfig("hf: negative", {**HF, "num_hidden_layers": -1}, "num_hidden_layers"),
    BadConfig("hf: huge", {**HF, "intermediate_size": 10**30}, "intermediate_size"),
    BadConfig("hf: non-integer", {**HF, "num_attention_heads": 31.5}, "num_attention_heads"),
    BadConfig("hf: not dividing", {**HF, "num_key_value_heads": 3}, "num_key_value_heads"),
]


def _truncate(d: Path) -> None:
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _overwrite(d: Path, offset: int, data: bytes) -> None:
    f = d / "model.safetensors"
    b = bytearray(f.read_bytes())
    offset = offset % len(b)  # a negative offset counts from the end
    b[offset: offset + len(data)] = data
    f.write_bytes(bytes(b))


def _edit_config(d: Path, **changes) -> None:
    f = d / "config.json"
    f.write_text(json.dumps({**json.loads(f.read_text()), **changes}))


# name -> (how to break a copy of a good checkpoint dir, words the ValueError must contain)
CORRUPTIONS = {
    "truncated to half": (_truncate, "truncated or corrupted"),
    "empty file": (lambda d: (d / "model.safetensors").write_bytes(b""), "truncated or corrupted"),
    "header length garbage": (lambda d: _overwrite(d, 0, b"\xff" * 8), "truncated or corrupted"),
    "header JSON garbage": (lambda d: _overwrite(d, 8, b"#" * 40), "truncated or corrupted"),
    "weights overwritten": (lambda d: _overwrite(d, -400, b"\xff" * 400), "corrupted"),
    "a pickle instead": (lambda d: (d / "model.safetensors").write_bytes(pickle.dumps({"w": [1.0]})),
                         "truncated or corrupted"),
    "missing weights": (lambda d: (d / "model.safetensors").unlink(), "no model.safetensors"),
    "config not JSON": (lambda d: (d / "config.json").write_text("{nope"), "not a valid model config"),
    "config field zero": (lambda d: _edit_config(d, n_layers=0), "n_layers"),
    "config unknown field": (lambda d: _edit_config(d, evil=1), "evil"),
    "config shape mismatch": (lambda d: _edit_config(d, d_model=96, n_heads=3, n_kv_heads=1), "does not match"),
}


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


def app_pages() -> list[str]:
    """The page files the app lists (app_shared.PAGES) and that exist."""
    return [e[0] for e in app_shared.listed_pages()]


PAGES = app_pages()


def reads_prompt(page: str) -> bool:
    return "prompt_notices(" in (REPO / page).read_text()


def url_keys(page: str) -> list[str]:
    """The query parameters a page reads through url_int / url_choice / url_text with a literal key."""
    return re.findall(r"url_(?:int|choice|text)\(\s*[\"'](\w+)[\"']", (REPO / page).read_text())


def messages(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in at.get(kind)]


def all_text(at: AppTest) -> str:
    """Every piece of Markdown the app rendered (titles, markdown, captions, alerts), joined."""
    kinds = ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success")
    return "\n".join(str(e.value) for k in kinds for e in at.get(k))


def assert_healthy(at: AppTest, what: str) -> None:
    assert not at.exception, f"{what}: {[e.message for e in at.exception]}"


def assert_expected(at: AppTest, expect: Optional[tuple[str, str]], what: str) -> None:
    if expect is None:
        return
    kind, words = expect
    shown = messages(at, kind)
    assert any(words in m for m in shown), f"{what}: no {kind} saying {words!r} (got {shown})"


def assert_not_rendered(at: AppTest, text: str, what: str) -> None:
    """The raw text never reaches a Markdown element (where `# x`, `**x**`, `[x](y)` or `<b>` would render)."""
    rendered = all_text(at)
    for piece in ("<img", "<script", "<b>", "**bold**", "](javascript:", "# Title", "$$x^2$$", ":red[red]"):
        if piece in text:
            assert piece not in rendered, f"{what}: {piece!r} reached Markdown unescaped"


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def open_page(page: str, prompt: Optional[str] = None, query: Optional[dict] = None,
              variant: str = DEFAULT_VARIANT) -> AppTest:
    return open_app_page(page, prompt, variant, query, timeout=240, check=False)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory, shipped_variants) -> Path:
    """A checkpoint directory to break: a copy of the shipped default (the fixture asserts it is committed)."""
    d = tmp_path_factory.mktemp("ckpt") / DEFAULT_VARIANT
    shutil.copytree(checkpoints.variant_dir(DEFAULT_VARIANT), d, ignore=shutil.ignore_patterns("train_state*"))
    return d


@pytest.fixture
def cli_model(shipped_variants):
    """The generate CLI's model: the shipped default, asserted present (never stood in for by random weights)."""
    assert DEFAULT_VARIANT in shipped_variants


# --------------------------------------------------------------------------------------------------------
# The prompt: the full table on the shared path, a subset on every page
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", TEXTS, ids=lambda t: t.name)
def test_prompt_on_the_shared_path(case):
    """app.py (sidebar) + the home page: the message, nothing rendered, and the next prompt works again."""
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["prompt"] = case.text
    at.run()
    assert_healthy(at, case.name)
    assert_expected(at, case.expect, case.name)
    assert_not_rendered(at, case.text, case.name)
    if case.expect is None or case.expect[0] != "info" or "Type" not in case.expect[1]:
        assert charts(at), f"{case.name}: the home page drew nothing"
    at.session_state["prompt"] = DEFAULT_PROMPT
    at.run()
    assert_healthy(at, f"{case.name}, then the default prompt")
    assert not messages(at, "error") and charts(at)


@pytest.mark.slow  # every page × three prompts (the shared path stays in the inner loop)
@pytest.mark.parametrize("case", PAGE_SUBSET, ids=lambda t: t.name)
@pytest.mark.parametrize("page", PAGES, ids=lambda p: Path(p).stem)
def test_prompt_on_every_page(page, case):
    at = open_page(page, prompt=case.text)
    assert_healthy(at, f"{page} / {case.name}")
    assert_not_rendered(at, case.text, f"{page} / {case.name}")
    if reads_prompt(page):
        assert_expected(at, case.expect, f"{page} / {case.name}")
    for spec in charts(at):  # labels reach Plotly escaped (it renders <b>, <a href>, <img>…)
        assert "<img" not in json.dumps(spec) and "<script" not in json.dumps(spec), page


# --------------------------------------------------------------------------------------------------------
# The URL
# --------------------------------------------------------------------------------------------------------


@pytest.mark.slow  # every page that reads the URL
@pytest.mark.parametrize("page", [p for p in PAGES if url_keys(p)], ids=lambda p: Path(p).stem)
def test_malformed_query_parameters(page):
    """Every parameter the page reads from the URL set to something out of range or malformed."""
    keys = url_keys(page)
    query = {k: BAD_QUERY_VALUES[i % len(BAD_QUERY_VALUES)] for i, k in enumerate(keys)}
    at = open_page(page, query=query)
    assert_healthy(at, f"{page} {query}")
    warnings = [w.replace("\\", "") for w in messages(at, "warning")]  # keys are Markdown-escaped (att\_layer)
    for k in keys:
        if k in at.session_state:  # the page read it (some are read only in some states, e.g. a long prompt)
            v = query[k]
            valid = v == "" or (v.lstrip("-").isdigit() and len(v) < 10 and at.session_state[k] == int(v))
            assert valid or any(f"{k}=" in w or f"{k} is" in w for w in warnings), f"{page}: no notice for {k}={v[:20]}"
            assert "<script" not in all_text(at).replace("\\<", "")  # quoted, escaped


@pytest.mark.parametrize("query, expect", [
    ({"variant": "nope"}, "variant=nope"),
    ({"variant": "-1"}, "variant=-1"),
    ({"prompt": "x" * (MAX_PROMPT_CHARS + 10_000)}, f"only the first {MAX_PROMPT_CHARS:,}"),
    ({"prompt": HTML}, None),
    ({"prompt": MARKDOWN}, None),
], ids=["unknown variant", "numeric variant", "huge prompt", "html prompt", "markdown prompt"])
def test_sidebar_query_parameters(query, expect):
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update(query)
    at.run()
    assert_healthy(at, str(query)[:60])
    if expect:
        assert any(expect in w.replace("\\", "") for w in messages(at, "warning")), messages(at, "warning")
    assert at.session_state["variant"] in app_shared.VARIANTS
    assert len(at.session_state["prompt"]) <= MAX_PROMPT_CHARS
    assert_not_rendered(at, query.get("prompt", ""), str(query)[:60])


# --------------------------------------------------------------------------------------------------------
# Configs: the accounting page and CLI
# --------------------------------------------------------------------------------------------------------


def test_bad_configs_pasted_into_the_accounting_page():
    page = next(p for p in PAGES if Path(p).stem == "accounting")
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["acc_source"] = "Paste a config.json"
    at.switch_page(page).run()
    assert_healthy(at, "accounting, paste")
    for case in BAD_CONFIGS + [BadConfig("not JSON", "{nope", "JSON"), BadConfig("a list", [1, 2], "object")]:
        text = case.config if isinstance(case.config, str) else json.dumps(case.config)
        at.text_area(key="acc_paste").input(text).run()
        assert_healthy(at, case.name)
        errors = messages(at, "error")
        assert any(case.field in e.replace("\\", "") for e in errors), f"{case.name}: {errors}"
    at.text_area(key="acc_paste").input(json.dumps(HF)).run()  # and a good one works again
    assert_healthy(at, "accounting, good config after bad ones")
    assert not messages(at, "error")


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=lambda c: c.name)
def test_accounting_cli_rejects_bad_configs(case, tmp_path, capsys):
    f = tmp_path / "config.json"
    f.write_text(json.dumps(case.config))
    assert accounting.main([str(f), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and case.field in err and "Traceback" not in err


def test_accounting_cli_exit_status_in_a_real_process(tmp_path):
    f = tmp_path / "config.json"
    f.write_text(json.dumps(BAD_CONFIGS[0].config))
    r = subprocess.run([sys.executable, "-m", "model.accounting", str(f), "--json"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "d_model" in r.stderr and "Traceback" not in r.stderr and r.stdout == ""
    f.write_bytes(b"\xff\xfe not utf-8")
    r = subprocess.run([sys.executable, "-m", "model.accounting", str(f)], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr


# --------------------------------------------------------------------------------------------------------
# The generate CLI
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", TEXTS, ids=lambda t: t.name)
def test_generate_cli(case, cli_model, capsys):
    rc = generate.main(["--prompt", case.text, "--max-new-tokens", "2", "--temperature", "0", "--json"])
    out, err = capsys.readouterr()
    if not case.cli_ok:
        assert rc == 2 and err.startswith("error: ") and "empty" in err
        return
    assert rc == 0, err
    r = json.loads(out)
    assert EOT_ID not in r["prompt_ids"]  # a typed <|endoftext|> is plain text
    # A prompt that fills the context leaves room for one token, and says so.
    assert len(r["generated_ids"]) == 2 or (len(r["generated_ids"]) == 1 and "context" in r["stopped"])
    assert 0 < len(r["prompt_ids"]) <= variant_config(DEFAULT_VARIANT).max_seq_len


def test_generate_cli_rejects_bad_numbers(cli_model, capsys):
    assert generate.main(["--prompt", "hi", "--max-new-tokens", "-1"]) == 2
    assert generate.main(["--prompt", "hi", "--temperature", "-1"]) == 2
    assert generate.main(["--prompt", "hi", "--top-p", "7"]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow  # a process that imports torch and loads the model
def test_generate_cli_with_invalid_utf8_in_argv(cli_model):
    """A real process: bytes that are not UTF-8 on the command line (Python turns them into lone surrogates)."""
    r = subprocess.run([sys.executable, "-m", "model.decoding.generate", "--prompt", b"ROMEO \xff\xfe\xed\xa0\x80.",
                        "--max-new-tokens", "2", "--json"], cwd=REPO, capture_output=True, timeout=300)
    err = r.stderr.decode(errors="replace")
    assert "Traceback" not in err
    assert r.returncode == 0 and len(json.loads(r.stdout)["generated_ids"]) == 2


# --------------------------------------------------------------------------------------------------------
# Checkpoints: corrupted files give a clear ValueError, the app keeps working, nothing is unpickled
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupted_checkpoint(name, good_checkpoint, tmp_path):
    breaks, words = CORRUPTIONS[name]
    d = tmp_path / DEFAULT_VARIANT
    shutil.copytree(good_checkpoint, d)
    breaks(d)
    with pytest.raises(ValueError, match=re.escape(words)) as e:
        checkpoints.load_checkpoint(d)
    assert str(d) in str(e.value)  # the message says which checkpoint


def test_app_and_cli_with_a_corrupted_checkpoint(good_checkpoint, tmp_path, monkeypatch, capsys):
    root = tmp_path / "checkpoints"
    shutil.copytree(good_checkpoint, root / DEFAULT_VARIANT)
    _truncate(root / DEFAULT_VARIANT)
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIR", root)
    app_shared._trained_model.clear()  # nothing cached from the real checkpoints/ may answer for this one
    try:
        at = AppTest.from_file(APP, default_timeout=240)
        at.run()
        assert_healthy(at, "corrupted checkpoint")
        assert any("cannot be loaded" in e and "truncated or corrupted" in e for e in messages(at, "error"))
        assert charts(at)  # the diagram still draws: it needs only the config …
        assert not at.get("dataframe")  # … but no next-token guess: nothing stands in for the broken weights
        assert generate.main(["--prompt", "ROMEO.", "--max-new-tokens", "2"]) == 2
        assert "truncated or corrupted" in capsys.readouterr().err
    finally:
        app_shared._trained_model.clear()


class _Bomb:
    """Unpickling this creates the file `path`: proof that something ran pickle on our data."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_pickles_next_to_or_instead_of_a_checkpoint_are_never_unpickled(good_checkpoint, tmp_path):
    marker = tmp_path / "UNPICKLED"
    d = tmp_path / "with_pickles"
    shutil.copytree(good_checkpoint, d)
    for name in ("pytorch_model.bin", "model.bin", "model.pt", "model.pkl", "training_args.bin"):
        (d / name).write_bytes(pickle.dumps(_Bomb(marker)))
    m = checkpoints.load_checkpoint(d)  # loads the safetensors file and nothing else
    assert m.cfg == variant_config(DEFAULT_VARIANT) and not marker.exists()
    (d / "model.safetensors").write_bytes(pickle.dumps(_Bomb(marker)))
    with pytest.raises(ValueError, match="truncated or corrupted"):
        checkpoints.load_checkpoint(d)
    assert not marker.exists()


UNPICKLERS = re.compile(r"\btorch\.load\s*\(|\btorch\.jit\.load\s*\(|\bpickle\.loads?\s*\(|\bUnpickler\b|"
                        r"\bdill\b|\bjoblib\.load\s*\(|\bshelve\.open\s*\(|\bmarshal\.loads?\s*\(|"
                        r"allow_pickle\s*=\s*True|weights_only\s*=\s*False|\bcloudpickle\b")


def test_no_code_can_unpickle():
    """No code of ours calls a loader that can run pickled code (this test file excepted: it builds the bombs)."""
    here = Path(__file__).resolve()
    files = [f for top in REPO.iterdir() if not top.name.startswith(".")  # not .venv, .git
             for f in ([top] if top.suffix == ".py" else sorted(top.rglob("*.py")) if top.is_dir() else [])]
    hits = []
    for f in files:
        rel = f.relative_to(REPO)
        if f.resolve() == here:
            continue
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            code = line.split("#", 1)[0]
            if UNPICKLERS.search(code):
                hits.append(f"{rel}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)
