"""The shipped checkpoints: every one (tests/conftest.py SHIPPED_VARIANTS) is committed and loads through
safetensors, they write Shakespeare-like text, and the default's temperature-0 continuation is what
transformers' LlamaForCausalLM generates from the exported weights (a reference outside our code, where a golden list of ids recorded from our own code would only
pin our own output, right or wrong)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.text.corpus import load_corpus
from model.net.checkpoints import VARIANTS, available_variants, load_train_log, load_variant, variant_config

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "model.decoding.generate", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_every_shipped_checkpoint_is_committed(shipped_variants):
    """Weights, config and training log of every shipped variant are in the checkout (the fixture asserts it),
    and they are real files — not Git LFS pointers or empty stubs."""
    for name in shipped_variants:
        d = REPO / "checkpoints" / name
        n_params = sum(p.numel() for p in load_variant(name).parameters())  # the tied embedding counted once
        assert (d / "model.safetensors").stat().st_size >= 2 * n_params, name  # fp16: 2 bytes a weight
        assert not (d / "model.safetensors").read_bytes()[:40].startswith(b"version https://git-lfs")
    assert set(shipped_variants) <= set(available_variants())


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["ROMEO.\n", "To be, or not to be"])
def test_greedy_continuation_of_the_default_equals_transformers(shipped_variants, tmp_path, prompt):
    """Our CLI at temperature 0 (prefill + cached decode steps) against `LlamaForCausalLM.generate(do_sample=
    False)` on the default exported to Hugging Face's format: the same 40 ids, so the same text."""
    import transformers

    from model.text.tokenizer import decode
    from model.training.export import main as export

    out = run_cli("--prompt", prompt, "--max-new-tokens", "40", "--temperature", "0", "--json")
    assert out.returncode == 0, out.stderr
    ours = json.loads(out.stdout)
    assert export(["--variant", "gqa-rope", "--format", "hf", str(tmp_path)]) == 0
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([ours["prompt_ids"]])
    with torch.no_grad():
        theirs = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=40,
                             min_new_tokens=40, pad_token_id=hf.config.eos_token_id)[0, ids.shape[1]:].tolist()
    assert ours["generated_ids"] == theirs
    assert ours["text"] == decode(theirs) and len(theirs) == 40


@pytest.mark.slow
def test_sampled_text_looks_like_a_play(shipped_variants):
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


@pytest.mark.slow
def test_the_default_meets_the_quality_bar_on_the_held_out_plays(shipped_variants):
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


def test_every_shipped_checkpoint_loads_matches_its_variant_and_has_its_log(shipped_variants):
    for name in shipped_variants:
        m = load_variant(name)
        assert m.cfg == variant_config(name)
        assert not m.training and not any(p.requires_grad for p in m.parameters())
        log = load_train_log(name)
        # The command as it was run: older logs name the CLI by its path then (`python -m model.train`).
        assert re.match(r"python -m model\.(training\.)?train --variant " + re.escape(name) + r"( |$)", log["command"])
        assert log["heldout"]["bits_per_char"] > 0 and len(log["train_loss"]) == log["train"]["steps"]
    assert set(available_variants()) <= set(VARIANTS)


@pytest.mark.slow  # two processes, each importing torch
def test_cli_errors_are_messages_not_tracebacks():
    out = run_cli("--prompt", "", "--max-new-tokens", "3")
    assert out.returncode == 2 and "empty" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("--prompt", "x", "--temperature", "-1")
    assert out.returncode == 2 and "temperature" in out.stderr and "Traceback" not in out.stderr


def test_the_diagnostics_rerun_is_the_shipped_recipe():
    """results/diagnostic_runs/: a second training of a shipped variant that logged the per-block diagnostics. Its
    config and training settings are the shipped run's (same recipe, seed, data order), it logged diagnostics at
    every evaluation step for every block, and its training loss starts where the shipped run's did."""
    from model.net.checkpoints import diagnostic_runs

    runs = diagnostic_runs()
    assert "gqa-rope" in runs, "the default's diagnostics re-run is committed"
    for v, path in runs.items():
        rerun, shipped = json.loads(path.read_text()), load_train_log(v)
        assert rerun["config"] == shipped["config"] == variant_config(v).to_dict()
        keep = ("steps", "batch_size", "seq_len", "lr", "min_lr", "warmup", "weight_decay", "betas", "clip",
                "dropout", "seed", "eval_every")
        assert {k: rerun["train"][k] for k in keep} == {k: shipped["train"][k] for k in keep}
        every = rerun["train"]["eval_every"]
        assert [d["step"] for d in rerun["diagnostics"]] == list(range(every, rerun["train"]["steps"] + 1, every))
        assert all(len(d["grad_norm"]["blocks"]) == len(d["resid_rms"]) == variant_config(v).n_layers
                   for d in rerun["diagnostics"])
        # The same batches from the same init: the first losses agree to 1e-3 (they part in the 4th decimal
        # within a few steps, and drift after, as the float order of the two runs differs).
        assert max(abs(a - b) for a, b in zip(rerun["train_loss"][:20], shipped["train_loss"][:20])) < 1e-3
