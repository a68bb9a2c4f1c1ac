"""The architecture variants (post-norm, LayerNorm, GELU MLP, mixture of experts) on every page.

Their trained weights are not in every checkout, so these tests make their own: each variant from a fresh init
(`Transformer(variant_config(v), init_seed=0)`) with its norms' weights and biases drawn at random around 1 and 0
(a fresh init has γ = 1, β = 0, which would let a page that ignored them pass), saved as a checkpoint with a
synthetic `train_log.json` shaped as model/training/train.py writes it (`diagnostics` every 250 steps, `aux_loss`
for the MoE; `test_the_synthetic_log_has_the_trainers_shape` holds the shape to a real tiny training run). The
shipped variants are linked in beside them, and `model.net.checkpoints.CHECKPOINT_DIR` points the app at the folder
(AppTest runs the app in this process, so the module global is what every page reads).

Random weights say nothing about what a trained model does: what is checked is that every page runs without an
exception for every variant, and that the numbers drawn equal an independent recomputation — the LayerNorm steps
against the model's hook and torch's layer_norm, the post-norm lens against the unembedding of resid_post, the
router heatmap against the hooks, the expert load against a recount from the router logits, the logged
diagnostics against the log, and the quantized matrices against every 2-D weight of the model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import app_shared
from app_shared import DEFAULT_PROMPT
from app_support import arr, chart, charts, open_page
from model.accounting import counts as acc
from model.accounting.arch import arch_from_model_config
from model.net import checkpoints
from model.net.checkpoints import VARIANTS, load_checkpoint, save_checkpoint, variant_config
from model.net.trace import run_with_trace
from model.net.transformer import Transformer
from model.text.tokenizer import encode

NEW = ("gqa-postnorm", "gqa-layernorm", "gqa-gelu", "gqa-moe")
REAL_DIR = checkpoints.CHECKPOINT_DIR
EVERY = 250  # the trainer's eval_every: diagnostics steps
STEPS = 1000  # the synthetic run's length (4 logged steps)


def synthetic_log(cfg, rng: np.random.Generator) -> dict:
    """A train_log.json as `model.training.train.train` writes it (the keys it writes, in its shapes), with
    made-up numbers: per-step losses, held-out losses and `diagnostics` every EVERY steps (gradient norms before
    clipping per block — attn, mlp, norms —, the embedding's, the final norm's for pre-norm, the total; the residual
    stream's RMS after each block), and `aux_loss` per step for a mixture of experts."""
    L = cfg.n_layers
    diag = []
    for step in range(EVERY, STEPS + 1, EVERY):
        blocks = [{p: float(f"{x:.6g}") for p, x in zip(("attn", "mlp", "norms"), rng.uniform(0.05, 2.0, 3))}
                  for _ in range(L)]
        grad = {"total": float(f"{rng.uniform(0.3, 3.0):.6g}"), "embed": float(f"{rng.uniform(0.1, 1):.6g}"),
                "blocks": blocks}
        if cfg.norm_position == "pre":
            grad["final_norm"] = float(f"{rng.uniform(0.01, 0.1):.6g}")
        diag.append({"step": step, "grad_norm": grad, "resid_rms": [float(f"{x:.6g}") for x in rng.uniform(0.5, 40, L)]})
    log = {"variant": "", "config": cfg.to_dict(), "train": {"steps": STEPS, "clip": 1.0, "eval_every": EVERY},
           "command": "synthetic (tests/test_architecture_pages.py)", "device": "cpu", "torch": str(torch.__version__),
           "train_loss": [round(float(x), 4) for x in np.linspace(7.6, 4.0, STEPS)],
           "val": [{"step": s, "loss": round(4.5 - s / 4000, 4)} for s in range(EVERY, STEPS + 1, EVERY)],
           "elapsed_s": 1.0, "diagnostics": diag}
    if cfg.n_experts:
        log["aux_loss"] = [round(float(x), 4) for x in rng.uniform(2.0, 2.2, STEPS)]
    return log


def clear_app_caches() -> None:
    """Everything the app caches by variant name: a model, trace or result of the real checkpoints must not
    answer for the ones made here, nor these for the real ones in a later test."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    for c in (app_shared.TRACES, app_shared.RESULTS, app_shared.FIGURES):
        c.clear()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A checkpoints/ folder: the shipped variants linked in, the four new ones made here (see the module
    docstring). Yields {variant: (model, log)} of the new ones, with CHECKPOINT_DIR pointing at the folder."""
    torch.set_num_threads(1)  # as the app runs (app_shared._torch): two threads on a busy 2-core machine spin-wait
    root = tmp_path_factory.mktemp("arch") / "checkpoints"
    root.mkdir()
    for n in VARIANTS:
        if n not in NEW and (REAL_DIR / n / "model.safetensors").is_file():
            (root / n).symlink_to(REAL_DIR / n)
    rng = np.random.default_rng(0)
    out = {}
    for v in NEW:
        model = Transformer(variant_config(v), init_seed=0)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".ln" in name or name.startswith("ln_final"):  # γ ≈ 1 ± 0.2, β ≈ 0 ± 0.1: visibly applied
                    base = 1.0 if name.endswith("weight") else 0.0
                    p.copy_(base + torch.from_numpy(rng.normal(0, 0.2 if base else 0.1, p.shape)).float())
        log = synthetic_log(model.cfg, rng)
        log["variant"] = v
        save_checkpoint(model, root / v, log)
        out[v] = (load_checkpoint(root / v), log)  # as the app loads it (fp16 weights back in fp32)
    saved = checkpoints.CHECKPOINT_DIR, checkpoints.DIAGNOSTIC_RUNS_DIR
    checkpoints.CHECKPOINT_DIR = root
    checkpoints.DIAGNOSTIC_RUNS_DIR = root.parent / "diagnostic_runs"  # none unless a test writes one
    clear_app_caches()
    try:
        yield out
    finally:
        checkpoints.CHECKPOINT_DIR, checkpoints.DIAGNOSTIC_RUNS_DIR = saved
        clear_app_caches()


IDS = encode(DEFAULT_PROMPT)


def texts(at) -> str:
    return "\n".join(str(e.value) for k in ("title", "header", "subheader", "markdown", "caption", "info", "warning",
                                            "error") for e in at.get(k))


def named(spec: dict, name: str) -> dict:
    return next(t for t in spec["data"] if t.get("name") == name)


# --------------------------------------------------------------------------------------------------------
# Fast: the analysis behind the pages, against the model and torch
# --------------------------------------------------------------------------------------------------------


def test_the_synthetic_log_has_the_trainers_shape(tmp_path):
    """The keys and nesting of the log made here are those a real (tiny) training run writes, for a pre-norm MoE
    and a post-norm model: the app reads what training will produce, not what this test imagined. (Per-layer
    lists are compared by their first element: the tiny model has its own layer count.)"""
    from test_train import CFG, data

    from model.training.train import TrainConfig, train

    def shape(x):
        if isinstance(x, dict):
            return {k: shape(v) for k, v in x.items()}
        if isinstance(x, list):
            return [shape(x[0])] if x else []
        return type(x).__name__

    tc = TrainConfig(steps=2, batch_size=2, seq_len=32, warmup=1, eval_every=2, eval_batches=1)
    for cfg in (dataclasses.replace(CFG, n_experts=4, d_mlp=32), dataclasses.replace(CFG, norm_position="post")):
        out = tmp_path / cfg.norm_position
        train(cfg, tc, out, data=data(), progress=False)
        real = json.loads((out / "train_log.json").read_text())
        mine = synthetic_log(cfg, np.random.default_rng(1))
        assert real["train"]["clip"] == mine["train"]["clip"] and "eval_every" in real["train"]
        for k in ("heldout", "chars_per_token_val"):  # the final held-out evaluation's: no page reads them
            real.pop(k)
        for log in (real, mine):  # the run's settings and config: the pages read the clip alone (checked above)
            log.pop("train"), log.pop("config")
        assert shape(mine) == shape(real)


def test_the_lens_uses_each_models_own_ending(made):
    """model.analysis.lens with `final_norm(model)`: LayerNorm (weight and bias) equals the model's own ln_final
    module; post-norm has no final norm, so the lens is the unembedding of resid_post; the last stage is the
    model's logits in every variant."""
    from model.analysis.lens import final_norm, lens_stages, logit_lens

    for v, (model, _) in made.items():
        tr = run_with_trace(model, IDS)
        resids = np.stack([tr[h] for h, _ in lens_stages(model.cfg.n_layers)])  # (S, T, d)
        W_U = model.W_U.detach().numpy()
        got = logit_lens(resids, W_U=W_U, **final_norm(model))
        with torch.no_grad():
            x = torch.from_numpy(resids)
            want = (x if model.ln_final is None else model.ln_final(x)) @ model.W_U.T  # the model's own module
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got[-1], tr.logits, rtol=1e-4, atol=1e-4)
        assert final_norm(model)["norm"] == {"gqa-postnorm": "none", "gqa-layernorm": "layernorm"}.get(v, "rmsnorm")


def test_layernorm_steps_equal_torch(made):
    from model.analysis.blocks import layernorm_steps

    model = made["gqa-layernorm"][0]
    ln = model.blocks[1].ln2
    x = np.random.default_rng(3).normal(0.4, 2.0, model.cfg.d_model)
    s = layernorm_steps(x, ln.weight.detach().numpy(), ln.bias.detach().numpy(), model.cfg.norm_eps)
    want = F.layer_norm(torch.tensor(x), (len(x),), ln.weight.double(), ln.bias.double(), model.cfg.norm_eps)
    np.testing.assert_allclose(s["out"], want.numpy(), atol=1e-10)
    assert s["mean"] == pytest.approx(x.mean()) and s["std"] == pytest.approx(math.sqrt(x.var() + 1e-5))
    w = layernorm_steps(np.array([1.0, 3.0]), np.ones(2), np.array([0.0, 0.5]), 0.0)
    assert w["mean"] == 2 and w["std"] == 1 and list(w["out"]) == [-1.0, 1.5]


def test_quantization_covers_every_2d_weight(made):
    """Every 2-D weight of each variant is either quantized (a block matrix, read off the modules) or kept at fp16
    on purpose (the embedding; a router), as the accounting calculator counts them; the config-only shapes and
    bytes agree with the quantized copy."""
    from model.quantize.apply import matrix_names, matrix_shapes, memory_bytes, quantized_copy
    from model.quantize.formats import FORMATS

    models = {v: m for v, (m, _) in made.items()}
    models["gqa-rope"] = Transformer(variant_config("gqa-rope"))
    for v, model in models.items():
        names = matrix_names(model)
        two_d = {n.removesuffix(".weight") for n, p in model.named_parameters() if p.dim() == 2}
        kept = {n for n in two_d if n == "tok_embed" or n.endswith(".mlp.router")}
        assert set(names) == two_d - kept and len(names) == len(set(names)), v
        assert len(kept) == 1 + (model.cfg.n_layers if model.cfg.n_experts else 0), v
        arch = arch_from_model_config(model.cfg)
        quantized = sum(model.get_submodule(n).weight.numel() for n in names)
        assert quantized == sum(o * i * c for _, o, i, c in acc.weight_matrices(arch)), v
        assert [tuple(model.get_submodule(n).weight.shape) for n in names] == matrix_shapes(model.cfg), v
        fmt = FORMATS["Q4_0 (G=32)"]
        _, rep = quantized_copy(model, fmt)
        assert rep.bytes == memory_bytes(model.cfg, fmt), v
        calc = acc.weight_memory(arch, fmt.name)
        assert (rep.bytes["codes"], rep.bytes["scales"], rep.bytes["kept_fp16"]) == \
            (calc["codes"], calc["scales"], calc["kept"]), v
    assert "blocks.0.mlp.experts.3.W_down" in matrix_names(models["gqa-moe"])
    assert [n for n in matrix_names(models["gqa-gelu"]) if n.startswith("blocks.0.mlp")] == \
        ["blocks.0.mlp.W_in", "blocks.0.mlp.W_out"]


def test_diagnostics_series_and_the_pair(made):
    from model.analysis.blocks import config_differences, diagnostics_series, pre_norm_partner

    log = made["gqa-postnorm"][1]
    s = diagnostics_series(log)
    assert list(s["steps"]) == [d["step"] for d in log["diagnostics"]]
    d0 = log["diagnostics"][0]["grad_norm"]["blocks"][2]
    assert s["grad"]["block"][0, 2] == pytest.approx(math.sqrt(d0["attn"] ** 2 + d0["mlp"] ** 2 + d0["norms"] ** 2))
    assert diagnostics_series({"train_loss": []}) is None  # a log from before the diagnostics
    cfgs = {v: dataclasses.asdict(variant_config(v)) for v in NEW}
    assert pre_norm_partner("gqa-postnorm", cfgs) == "gqa-layernorm"  # 2 fields apart; the others 4 or more
    assert config_differences(cfgs["gqa-postnorm"], cfgs["gqa-layernorm"]) == ["norm", "norm_position"]
    cfgs["gqa-rope"] = dataclasses.asdict(variant_config("gqa-rope"))  # were the default retrained with them
    assert pre_norm_partner("gqa-postnorm", cfgs) == "gqa-rope"


# --------------------------------------------------------------------------------------------------------
# Every page, every new variant
# --------------------------------------------------------------------------------------------------------

PAGES = [("home", None), ("lesson", None), ("tokenization", None), ("embeddings", None), ("attention", None),
         ("logit_lens", None), ("blocks", None), ("generation", None), ("decoding", None),
         ("decoding", {"dec_tab": "Speculative decoding", "dec_n": "4"}), ("rope", None), ("accounting", None),
         ("accounting", {"acc_tab": "Check against the live model"}), ("quantization", None),
         ("inference", None), ("inference", {"inf_tab": "KV-cache memory"}),
         ("inference", {"inf_tab": "Prefill vs decode"})]


@pytest.mark.slow
@pytest.mark.parametrize("variant", NEW)
def test_every_page_runs(made, variant):
    """Each page (and each tab that computes on its own) opens for the variant without an exception or an error
    box; the accounting page's live check finds its formulas equal to the module's own numbers."""
    model = made[variant][0]
    for page, query in PAGES:
        state = {k: v for k, v in (query or {}).items() if k.endswith("_tab")}
        at = open_page(f"pages/{page}.py", variant=variant, query={k: v for k, v in (query or {}).items()
                                                                   if not k.endswith("_tab")}, state=state)
        assert not at.error, (page, query, [e.value for e in at.error])
        if query and query.get("acc_tab") == "Check against the live model":
            shown = {m.proto.label: m for m in at.metric}
            assert shown["parameters: ours"].value == f"{sum(p.numel() for p in model.parameters()):,}"
            refs = ("sum(p.numel() for p in model.parameters())", "FlopCounterMode on model(ids)",
                    "FlopCounterMode on a cached step", "KVCache.nbytes()")
            assert [shown[r].proto.delta for r in refs] == ["equal"] * 4


# --------------------------------------------------------------------------------------------------------
# What the pages draw
# --------------------------------------------------------------------------------------------------------


def test_layernorm_page_steps_equal_the_models_hook(made):
    model = made["gqa-layernorm"][0]
    at = open_page("pages/blocks.py", variant="gqa-layernorm",
                   query={"blk_norm": "mlp", "blk_layer": "2", "blk_pos": "10"})
    tr = run_with_trace(model, IDS)
    spec = chart(at, "blk_lnsteps")
    x = arr(named(spec, "x")["y"])
    np.testing.assert_allclose(x, tr["blocks.2.hook_resid_mid"][10], atol=1e-6)
    np.testing.assert_allclose(arr(named(spec, "x − mean")["y"]), x - x.mean(), atol=1e-6)
    ln = model.blocks[2].ln2
    np.testing.assert_allclose(arr(named(spec, "γ")["y"]), ln.weight.detach().numpy(), atol=1e-7)
    np.testing.assert_allclose(arr(named(spec, "β")["y"]), ln.bias.detach().numpy(), atol=1e-7)
    out = arr(named(spec, "(x − mean) / std · γ + β")["y"])
    np.testing.assert_allclose(out, tr["blocks.2.ln2.hook_normalized"][10], atol=1e-5)
    want = F.layer_norm(torch.tensor(x), (len(x),), ln.weight.detach().double(), ln.bias.detach().double(), 1e-5)
    np.testing.assert_allclose(out, want.numpy(), atol=1e-5)
    assert f"**{np.sqrt(x.var() + 1e-5):.4g}**" in texts(at)  # the std the caption states
    assert "blk_rms" not in charts(at) and "LayerNorm, step by step" in texts(at)


def test_post_norm_blocks_page_reads_after_the_add(made):
    model = made["gqa-postnorm"][0]
    at = open_page("pages/blocks.py", variant="gqa-postnorm",
                   query={"blk_norm": "attn", "blk_layer": "1", "blk_pos": "7"})
    tr = run_with_trace(model, IDS)
    spec = chart(at, "blk_rms")
    x = arr(named(spec, "x")["y"])
    with torch.no_grad():  # the sum the norm reads, by hand: the block's input plus what attention added
        x_in = torch.from_numpy(tr["blocks.1.hook_resid_pre"][None])
        want_x = x_in + model.blocks[1].attn(x_in, torch.arange(len(IDS)))
    np.testing.assert_allclose(x, want_x[0, 7].numpy(), atol=1e-5)
    np.testing.assert_allclose(arr(named(spec, "x / rms · g")["y"]), tr["blocks.1.ln1.hook_normalized"][7], atol=1e-5)
    np.testing.assert_allclose(tr["blocks.1.ln1.hook_normalized"], tr["blocks.1.hook_resid_mid"])  # it is the stream
    assert at.selectbox(key="blk_norm").options == ["after attention's residual add (ln1)",
                                                    "after the MLP's residual add (ln2)"]
    assert "post-norm" in texts(at) and "grows through the layers" not in texts(at)


def test_post_norm_lens_is_the_unembedding_of_resid_post(made):
    model = made["gqa-postnorm"][0]
    at = open_page("pages/logit_lens.py", variant="gqa-postnorm")
    tr = run_with_trace(model, IDS)
    with torch.no_grad():
        hooks = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers)]
        probs = torch.softmax(torch.stack([torch.from_numpy(tr[h]) for h in hooks]) @ model.W_U.T, -1)  # (S, T, V)
    top = chart(at, "lens_top")["data"][0]
    np.testing.assert_allclose(arr(top["z"]), probs.max(-1).values[:, :24].numpy(), atol=1e-5)
    nxt = chart(at, "lens_next")["data"][0]
    want = probs[:, torch.arange(23), torch.tensor(IDS[1:24])].numpy()
    np.testing.assert_allclose(arr(nxt["z"])[:, :23], want, atol=1e-5)
    assert "no final norm" in texts(at) and "hook_resid_post" in texts(at)
    np.testing.assert_allclose(probs[-1].numpy(), torch.softmax(torch.from_numpy(tr.logits), -1).numpy(), atol=1e-6)


def test_layernorm_lens_and_lesson_use_the_models_layernorm(made):
    """The lesson's lens step on the LayerNorm variant: its answer is the first stage at which the model's own
    ln_final + unembedding (run as torch modules) puts the real next token on top."""
    from streamlit.testing.v1 import AppTest

    for v in ("gqa-layernorm", "gqa-postnorm"):
        model = made[v][0]
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
        at.session_state["variant"] = v
        at.query_params["step"] = "4"
        at.switch_page("pages/lesson.py").run()
        at.button(key="lesson_reveal_4").click().run()
        assert not at.exception, [e.value for e in at.exception]
        link = next(e for e in at.get("page_link") if e.proto.label.startswith("Open "))
        pos = int(re.search(r"lens_pos=(\d+)", link.proto.query_string).group(1))
        tr = run_with_trace(model, IDS)
        with torch.no_grad():
            tops = []
            for h in ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers)]:
                x = torch.from_numpy(tr[h][pos])
                x = x if model.ln_final is None else model.ln_final(x)
                tops.append(int((x @ model.W_U.T).argmax()))
        question = " ".join(str(m.value) for m in at.markdown)
        assert ("this post-norm model has no final norm" in question) == (v == "gqa-postnorm")
        nxt = IDS[pos + 1]
        ans = next(str(m.value) for m in at.markdown if str(m.value).startswith("**The model's answer**"))
        if tops[-1] == nxt:
            stages = ["embedding"] + [f"after block {l}" for l in range(model.cfg.n_layers)]
            assert f"**{stages[tops.index(nxt)]}**" in ans
        else:
            assert "At no position" in ans


def test_moe_router_heatmap_equals_the_hooks(made):
    model = made["gqa-moe"][0]
    at = open_page("pages/blocks.py", variant="gqa-moe")
    tr = run_with_trace(model, IDS)
    spec = chart(at, "blk_router")
    E = model.cfg.n_experts
    for l in range(model.cfg.n_layers):
        z = arr(named(spec, f"block {l}")["z"])  # (T, E), NaN where the expert was not chosen
        idx, w = tr[f"blocks.{l}.mlp.hook_expert_indices"], tr[f"blocks.{l}.mlp.hook_expert_weights"]
        with torch.no_grad():  # the router by hand: its logits, their top 2, the softmax over those
            logits = torch.from_numpy(tr[f"blocks.{l}.mlp.hook_router_logits"])
            top = logits.topk(2, -1)
        assert (np.sort(idx, -1) == np.sort(top.indices.numpy(), -1)).all()
        for t in range(len(IDS)):
            chosen = sorted(np.nonzero(~np.isnan(z[t]))[0].tolist())
            assert chosen == sorted(idx[t].tolist())
            np.testing.assert_allclose(z[t, idx[t]], w[t], atol=1e-6)
            np.testing.assert_allclose(z[t, top.indices[t].numpy()], torch.softmax(top.values[t], -1).numpy(),
                                       atol=1e-6)
        assert z.shape == (len(IDS), E)
    shown = {m.proto.label: m.value for m in at.metric}
    arch = arch_from_model_config(model.cfg)
    assert shown["Parameters in the model"] == f"{sum(p.numel() for p in model.parameters()):,}"
    assert shown["Used per token"] == f"{acc.active_params(arch).total:,}" == "1,970,880"


def test_expert_load_equals_a_naive_recount(made):
    """The load chart and the expert-token table, against a recount: every held-out token of the same windows,
    its router logits (the hook), its two largest by a Python sort, tallied in a dict."""
    from model.text.batches import encoded_split
    from model.text.tokenizer import token_label

    model = made["gqa-moe"][0]
    at = open_page("pages/blocks.py", variant="gqa-moe", query={"blk_mlp_layer": "1"})
    ids, _ = encoded_split("val")
    T, n = model.cfg.max_seq_len, 4
    windows = ids[: n * T].astype(np.int64).reshape(n, T)
    L, E = model.cfg.n_layers, model.cfg.n_experts
    tally = [{e: 0 for e in range(E)} for _ in range(L)]
    routed = {}  # (layer, expert, token id) -> times
    seen = {}
    for w in windows:
        tr = run_with_trace(model, w, names=lambda h: h.endswith("hook_router_logits"))
        for l in range(L):
            for t, row in enumerate(tr[f"blocks.{l}.mlp.hook_router_logits"]):
                two = sorted(range(E), key=lambda e: -row[e])[:2]
                for e in two:
                    tally[l][e] += 1
                    routed[(l, e, int(w[t]))] = routed.get((l, e, int(w[t])), 0) + 1
        for tok in w:
            seen[int(tok)] = seen.get(int(tok), 0) + 1
    spec = chart(at, "blk_load")
    for e in range(E):
        bars = named(spec, f"expert {e}")
        assert list(arr(bars["customdata"]).astype(int)) == [tally[l][e] for l in range(L)]
        np.testing.assert_allclose(arr(bars["y"]), [tally[l][e] / (n * T) for l in range(L)])
    aux = made["gqa-moe"][1]["aux_loss"]  # the log's balancing loss, as the caption states it
    assert f"averaged {np.mean(aux[:100]):.3f} over the first 100 steps and {np.mean(aux[-100:]):.3f}" in texts(at)
    table = at.dataframe[-1].value  # "What each expert gets", block 1
    assert list(table["tokens"]) == [tally[1][e] for e in range(E)]
    for e, cell in enumerate(table.iloc[:, 2]):
        if cell == "—":
            continue
        first = cell.split(",  ")[0]
        label, counts = first.rsplit(" (", 1)
        got, total = (int(x) for x in counts.rstrip(")").split("/"))
        best = max((r / seen[tok], r) for (l, ex, tok), r in routed.items() if l == 1 and ex == e and seen[tok] >= 5)
        assert (got / total, got) == best and label.strip() in {token_label(tok) for (l, ex, tok), r in routed.items()
                                                               if l == 1 and ex == e and (r / seen[tok], r) == best}


def test_gelu_page_draws_the_plain_mlp(made):
    model = made["gqa-gelu"][0]
    at = open_page("pages/blocks.py", variant="gqa-gelu", query={"blk_mlp_layer": "3", "blk_mlp_pos": "5"})
    with torch.no_grad():  # the MLP by hand from the stream it reads
        tr = run_with_trace(model, IDS)
        h = model.blocks[3].ln2(torch.from_numpy(tr["blocks.3.hook_resid_mid"]))
        pre = model.blocks[3].mlp.W_in(h)
        post = F.gelu(pre, approximate="tanh")
    spec = chart(at, "blk_plain")
    np.testing.assert_allclose(arr(named(spec, "pre = W_in x")["y"]), pre[5].numpy(), atol=1e-5)
    np.testing.assert_allclose(arr(named(spec, "GELU(pre)")["y"]), post[5].numpy(), atol=1e-5)
    want = torch.topk(post.abs().max(0).values, 16).indices.tolist()
    assert chart(at, "blk_neurons")["data"][0]["x"] == [f"n{i}" for i in want]
    assert "GELU MLP" in at.title[0].value and "SwiGLU" not in at.title[0].value


def test_logged_diagnostics_are_drawn_as_logged(made):
    at = open_page("pages/blocks.py", variant="gqa-moe", query={"blk_diag": "attn"})
    spec = chart(at, "blk_diag_fig")
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles[:3] == ["gqa-moe", "gqa-postnorm", "gqa-layernorm"]  # the loaded one, then the pre/post pair
    traces = [t for t in spec["data"] if t["name"] == "block 2"]  # per column: gradient row, then RMS row
    for col, v in enumerate(("gqa-moe", "gqa-postnorm", "gqa-layernorm")):
        log = made[v][1]["diagnostics"]
        grad, rms = traces[2 * col], traces[2 * col + 1]
        assert list(arr(grad["x"])) == [d["step"] for d in log]
        np.testing.assert_allclose(arr(grad["y"]), [d["grad_norm"]["blocks"][2]["attn"] for d in log])
        np.testing.assert_allclose(arr(rms["y"]), [d["resid_rms"][2] for d in log])
    text = texts(at)
    assert "they differ in norm, norm_position — so this pair cannot separate where the norm sits from the norm's " \
           "kind" in text
    over = sum(d["grad_norm"]["total"] > 1.0 for d in made["gqa-postnorm"][1]["diagnostics"])
    assert f"above the clip of 1 at {over} of them" in text


def test_the_pair_is_set_by_how_far_its_guesses_move_along_the_prompt(made):
    """Beside the logged diagnostics, each drawn variant's next-token distributions along the prompt: the largest
    total-variation distance of a position's from their mean, recomputed here from the model's own logits."""
    at = open_page("pages/blocks.py", variant="gqa-moe", prompt=DEFAULT_PROMPT)
    caption = next(c.value for c in at.caption if c.value.startswith("On your prompt ("))
    assert f"On your prompt ({len(IDS)} positions)" in caption
    for v in ("gqa-moe", "gqa-postnorm", "gqa-layernorm"):
        with torch.no_grad():
            p = torch.softmax(made[v][0](torch.tensor([IDS]))[0].double(), -1)  # (T, V)
        tv = 0.5 * (p - p.mean(0)).abs().sum(-1).max().item()
        assert f"{v} {tv:.2g}" in caption, (v, tv, caption)


def test_a_diagnostics_rerun_of_the_default_makes_the_clean_pair(made):
    """A re-run of the default that logged diagnostics (results/diagnostic_runs/) is set beside the post-norm
    variant as the pair that differs in norm_position alone, named as a second run, with where its training
    losses part from the shipped run's and both held-out losses — read from the two logs."""
    shipped = checkpoints.load_train_log("gqa-rope")
    log = synthetic_log(variant_config("gqa-rope"), np.random.default_rng(1))
    log["variant"] = "gqa-rope"
    log["train_loss"] = shipped["train_loss"][:30] + [x + 0.01 for x in shipped["train_loss"][30:]]
    folder = checkpoints.DIAGNOSTIC_RUNS_DIR
    folder.mkdir(exist_ok=True)
    (folder / "gqa-rope.train_log.json").write_text(json.dumps(log))
    try:
        at = open_page("pages/blocks.py", variant="gqa-rope", query={"blk_diag": "mlp"})
        spec = chart(at, "blk_diag_fig")
        titles = [a["text"] for a in spec["layout"]["annotations"]]
        assert titles[:2] == ["gqa-rope (re-run)", "gqa-postnorm"]
        mlp = [t for t in spec["data"] if t["name"] == "block 0"][0]
        np.testing.assert_allclose(arr(mlp["y"]), [d["grad_norm"]["blocks"][0]["mlp"] for d in log["diagnostics"]])
        text = texts(at)
        assert "they differ in norm_position: a clean pre- vs post-norm pair" in text
        assert ("gqa-rope (re-run) is a second training of gqa-rope, same recipe and seed, run to log these numbers "
                "(the shipped run predates them): their training losses are equal (to the logged four decimals) up "
                "to step 30 and part from step 31") in text
        assert "On your prompt (" in text and "gqa-rope " in text.split("On your prompt (")[1]  # the shipped weights
        assert f"{log['val'][-1]['loss']:.3f} nats/token (re-run), {shipped['val'][-1]['loss']:.3f} (shipped)" in text
        assert "gqa-rope's own log has no diagnostics" not in text  # the re-run stands in for it, named as such
    finally:
        (folder / "gqa-rope.train_log.json").unlink()
        clear_app_caches()


def test_home_diagram_follows_the_architecture(made):
    for v in NEW:
        cfg = variant_config(v)
        at = open_page("pages/home.py", variant=v)
        fig = chart(at, "home_path")
        names = [n.replace("<b>", "").replace("</b>", "") for n in named(fig, "stage")["text"]]
        norm = "LayerNorm" if cfg.norm == "layernorm" else "RMSNorm"
        norms = [n for n in names if n.startswith(norm) or n.startswith("final ")]
        if cfg.norm_position == "post":  # after each add, and no final norm
            assert norms == [f"{norm} (after the add)"] * 2 and not any(n.startswith("final") for n in names)
            i = names.index("mix values, W_o, add to stream")
            assert names[i + 1] == norms[0] and names[i + 3] == norms[1] and names[i + 4] == "unembedding → logits"
        else:
            assert norms == [norm, norm, f"final {norm}"]
        mlp = [n for n in names if "MLP" in n or "expert" in n]
        want = {"gqa-gelu": ["GELU MLP, add to stream"],
                "gqa-moe": ["router: pick 2 of 4 experts", "2 SwiGLU experts, weighted sum, add to stream"]}
        assert mlp == want.get(v, ["SwiGLU MLP, add to stream"]), mlp
        latex = " ".join(str(e.value) for e in at.latex)
        assert ("W_\\text{in}" in latex) == (v == "gqa-gelu") and ("\\gamma + \\beta" in latex) == (v == "gqa-layernorm")


def test_the_default_is_offered_the_new_variants_once_they_have_weights(made):
    at = open_page("pages/home.py", variant="gqa-rope")
    assert {checkpoints.VARIANT_BLURBS[v] for v in NEW} <= set(at.selectbox(key="variant").options)
    assert os.path.isdir(checkpoints.CHECKPOINT_DIR / "gqa-moe")


def test_compare_live_section_offers_the_architecture_group(made):
    """The prompt through every architecture variant: the radio switches the next-token panels from the attention
    and position variants to the default and the four architectures, each panel the model's own top-k."""
    at = open_page("pages/compare.py", prompt=DEFAULT_PROMPT)
    radio = at.radio(key="cmp_live_set")
    compared = [v for v in checkpoints.COMPARED_VARIANTS if (checkpoints.CHECKPOINT_DIR / v).is_dir()]
    assert radio.options == [f"attention and positions ({len(compared)})", "architecture (5)"]
    assert radio.value == "attention and positions"
    at = open_page("pages/compare.py", prompt=DEFAULT_PROMPT, state={"cmp_live_set": "architecture"})
    arch = [v for v in checkpoints.ARCHITECTURE_VARIANTS if (checkpoints.CHECKPOINT_DIR / v).is_dir()]
    assert set(NEW) <= set(arch)
    bars = {t["name"]: t for t in chart(at, "cmp_next")["data"] if t["type"] == "bar"}
    assert list(bars) == arch
    for v in NEW:
        model = made[v][0]
        with torch.no_grad():
            p = torch.softmax(model(torch.tensor([IDS]))[0, -1].double(), -1)
        assert np.allclose(bars[v]["x"], torch.topk(p, len(bars[v]["x"])).values.numpy(), atol=1e-4), v
    heat = [t for t in chart(at, "cmp_last_attn")["data"] if t["type"] == "heatmap"]
    assert [t["name"] for t in heat] == arch
    assert at.query_params.get("cmp_live_set") == "architecture"
