"""The shipped checkpoints: they load through safetensors, write Shakespeare-like text, and the default's
temperature-0 continuation is pinned (a golden test, as llama2.c has)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from model.text.corpus import load_corpus
from model.net.checkpoints import VARIANTS, available_variants, load_train_log, load_variant, variant_config

REPO = Path(__file__).resolve().parent.parent
needs_default = pytest.mark.skipif("gqa-rope" not in available_variants(), reason="default checkpoint missing")

# `python -m model.decoding.generate --prompt $'ROMEO.\n' --max-new-tokens 40 --temperature 0 --json`, first recorded
# when the default checkpoint was trained. Greedy decoding of a model this small loops — that is the point of
# the app's default to sample.
GOLDEN_PROMPT_IDS = [593, 77, 69, 79, 259]
GOLDEN_IDS = [73, 466, 963, 346, 292, 308, 258, 455, 297, 315, 680, 331, 10, 100, 270, 99, 111, 374, 329, 44, 294,
              315, 791, 44, 294, 315, 791, 44, 315, 791, 44, 294, 315, 791, 10, 119, 330, 308, 315, 680]
GOLDEN_TEXT = "I am glad to be a man of my father's\ndiscover'd, and my son, and my son, my son, and my son\nwill be my father"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "model.decoding.generate", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@needs_default
def test_golden_greedy_continuation_of_the_default_model():
    out = run_cli("--prompt", "ROMEO.\n", "--max-new-tokens", "40", "--temperature", "0", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["prompt_ids"] == GOLDEN_PROMPT_IDS
    assert got["generated_ids"] == GOLDEN_IDS
    assert got["text"] == GOLDEN_TEXT


@needs_default
def test_sampled_text_looks_like_a_play():
    from model.decoding.generate import generate
    from model.decoding.sampling import SamplerConfig
    from model.text.tokenizer import decode, encode

    m = load_variant("gqa-rope")
    text = decode(generate(m, encode("ROMEO.\n"), 200, SamplerConfig(temperature=0.8), seed=0).generated_ids)
    lines = [l for l in text.splitlines() if l.strip()]
    speakers = [l for l in lines if l.strip().isupper() and l.strip().endswith(".")]
    assert speakers, text  # a speaker line like "BAWD." appears
    corpus_words = set(re.findall(r"[a-z']+", load_corpus("train").lower()))
    words = re.findall(r"[a-z']+", text.lower())
    assert len(words) > 50
    real = sum(w in corpus_words for w in words) / len(words)
    assert real >= 0.9, (real, text)


@needs_default
def test_the_default_meets_the_quality_bar_on_the_held_out_plays():
    """Issue #3's bar, recomputed from the shipped fp16 weights over every held-out window (not read from the
    log): <= 1.90 bits per character, and the same number the training log reports."""
    from model.evaluation.evaluate import heldout_loss, metrics
    from model.text.batches import encoded_split, val_windows

    val_ids, val_chars = encoded_split("val")
    m = load_variant("gqa-rope")
    got = metrics(heldout_loss(m, val_windows(val_ids, m.cfg.max_seq_len)), val_chars / len(val_ids))
    logged = load_train_log("gqa-rope")["heldout"]
    assert got["bits_per_char"] == pytest.approx(logged["bits_per_char"], abs=2e-4)
    assert got["bits_per_char"] <= 1.90, got


def test_every_present_checkpoint_loads_matches_its_variant_and_has_its_log():
    for name in available_variants():
        m = load_variant(name)
        assert m.cfg == variant_config(name)
        assert not m.training and not any(p.requires_grad for p in m.parameters())
        log = load_train_log(name)
        # The command as it was run: older logs name the CLI by its path then (`python -m model.train`).
        assert re.match(r"python -m model\.(training\.)?train --variant " + re.escape(name) + r"( |$)", log["command"])
        assert log["heldout"]["bits_per_char"] > 0 and len(log["train_loss"]) == log["train"]["steps"]
    assert set(available_variants()) <= set(VARIANTS)


def test_cli_errors_are_messages_not_tracebacks():
    out = run_cli("--prompt", "", "--max-new-tokens", "3")
    assert out.returncode == 2 and "empty" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("--prompt", "x", "--temperature", "-1")
    assert out.returncode == 2 and "temperature" in out.stderr and "Traceback" not in out.stderr
