"""Beam search and speculative decoding against their references.

Beam search: a hand-worked two-step case (the cache rows really are reordered), and transformers' own
`generate(num_beams=B, do_sample=False)` on our Hugging Face export — the same hypotheses, the same scores.
Speculative decoding: at temperature 0 it is the target's greedy output token for token; both caches end as a
fresh prefill of the kept tokens would leave them; sampled, the first and second tokens are distributed as
the target's own (chi-square against the exact distributions, and a control showing the test can fail).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from model.decoding.beam import BeamConfig, beam_search, best_first, log_softmax
from model.decoding.generate import generate, main
from model.decoding.repetition import longest_repeat, repeated_ngram_share, token_logprobs
from model.decoding.sampling import SamplerConfig, sample
from model.decoding.speculative import distribution, speculative_generate
from model.net.checkpoints import CHECKPOINT_DIR, available_variants, load_variant, variant_config
from model.net.config import ModelConfig
from model.net.kv_cache import KVCache
from model.net.transformer import Transformer

torch.set_num_threads(1)
needs_trained = pytest.mark.usefixtures("shipped_variants")  # committed: missing is a failure, not a skip


def small(seed: int, vocab: int = 64, layers: int = 2, d: int = 32, sharpen: float = 1.0, kv: int = 2) -> Transformer:
    """A random model; `sharpen` scales the unembedding so the next-token distributions are peaked rather than
    near-uniform — so beams and the accept/reject rule have real choices to make, and no near-ties. Untied: a
    random model with tied embeddings predicts the token it just read, again and again, and any two such
    models would agree on every guess."""
    m = Transformer(ModelConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=4, n_kv_heads=kv, d_mlp=64,
                                max_seq_len=64, tie_embeddings=False), init_seed=seed).eval().requires_grad_(False)
    with torch.no_grad():
        m.unembed.weight.mul_(sharpen)
    return m


def pair(vocab: int = 64, noise: float = 0.5):
    """(target, draft): a random target, and as its draft the target with noise added to every weight (each
    tensor's std × `noise`) — close enough that guesses are often right, far enough that many are wrong."""
    target = small(0, vocab=vocab, sharpen=10.0)
    draft = copy.deepcopy(target)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in draft.parameters():
            p.add_(torch.randn(p.shape, generator=g) * noise * p.std())
    return target, draft


# --------------------------------------------------------------------------------------------------------
# Beam search
# --------------------------------------------------------------------------------------------------------


class TableModel:
    """A stand-in model whose next-token logits are looked up by the whole sequence so far — which it reads
    back from the KV cache (each fed token is stored as its key). So a beam whose cache row was not reordered
    gets another beam's history, and the lookup shows it. `seen` records every history it was asked about."""

    def __init__(self, table: dict, vocab: int = 3):
        self.cfg = ModelConfig(vocab_size=vocab, d_model=4, n_layers=1, n_heads=1, n_kv_heads=1, d_mlp=4,
                               max_seq_len=16)
        self.table, self.seen = table, []

    def __call__(self, ids, cache):
        B, T = ids.shape
        k = ids.to(torch.float32).view(B, 1, T, 1)  # (B, 1, T, 1) the token ids themselves
        pos = torch.arange(cache.length, cache.length + T)
        keys, _, _ = cache.update(0, k, k, pos)
        cache.advance(T)
        rows = [tuple(int(x) for x in keys[b, 0, :, 0]) for b in range(B)]
        self.seen.append(rows)
        logits = torch.zeros(B, T, self.cfg.vocab_size)
        for b, h in enumerate(rows):
            logits[b, -1] = torch.tensor(self.table.get(h, [0.0] * self.cfg.vocab_size))
        return logits


def test_kv_cache_reorder_copies_and_drops_rows():
    c = KVCache(n_layers=2)
    for layer in range(2):
        k = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 1, 2, 4)  # row r holds r
        c.update(layer, k, k + 10, torch.arange(2))
    c.advance(2)
    c.reorder([2, 2, 0])
    for layer in range(2):
        assert c.k[layer][:, 0, 0, 0].tolist() == [2, 2, 0]
        assert c.v[layer][:, 0, 0, 0].tolist() == [12, 12, 10]
    assert c.length == 2


def test_worked_example_keeps_the_worse_first_token_and_swaps_the_rows():
    # The module docstring's example: prompt (0,), tokens 0/1/2.
    m = TableModel({(0,): [-0.5, -1.1, -3.0], (0, 0): [-1.2, -1.2, -1.0], (0, 1): [-0.05, -3.7, -3.7]})
    r = beam_search(m, [0], 3, BeamConfig(num_beams=2, eos_id=None))
    s0, s1 = r.steps[0], r.steps[1]
    assert [(c.token, c.slot) for c in s0.kept] == [(0, 0), (1, 1)] and s0.parents == [0, 0]
    assert [(c.parent, c.token) for c in s1.kept] == [(1, 0), (0, 2)] and s1.parents == [1, 0]  # rows swap
    # After the swap, row 0 must hold beam (1, 0)'s past and row 1 beam (0, 2)'s: the model read them back.
    assert m.seen[-1] == [(0, 1, 0), (0, 0, 2)]
    assert r.best.ids[:2] == (1, 0)
    greedy = generate(m, [0], 2, SamplerConfig(temperature=0)).generated_ids
    assert greedy == [0, 2]
    lp = lambda h: log_softmax(np.array(m.table[h]))  # noqa: E731
    assert lp((0,))[1] + lp((0, 1))[0] > lp((0,))[0] + lp((0, 0))[2]  # the beam's two tokens beat greedy's
    assert r.forwards == len(r.steps) == 3


def test_best_first_breaks_ties_by_index():
    assert best_first(np.array([1, 3, 3, 0]), 2).tolist() == [1, 2]


def test_beam_bookkeeping_on_a_random_model():
    m = small(0, sharpen=20.0)
    r = beam_search(m, [1, 2, 3], 8, BeamConfig(num_beams=3, eos_id=5))
    assert r.forwards == len(r.steps)
    for step in r.steps:
        pool = [c for c in step.candidates if c.rank < 6]
        assert [c.rank for c in pool] == list(range(6))  # the pool is the best 2B, in order
        assert all(a.score >= b.score for a, b in zip(pool, pool[1:]))
        if step.parents:
            assert [c.parent for c in step.kept] == step.parents and len(step.kept) == 3
            assert all(not c.ends for c in step.kept)
        for c in step.candidates:
            assert c.score == pytest.approx(step.beam_scores[c.parent] + c.logprob)
    assert [h.score for h in r.hypotheses] == sorted((h.score for h in r.hypotheses), reverse=True)
    for h in r.hypotheses:  # a hypothesis's logprob is the model's own, recomputed in one forward
        assert h.logprob == pytest.approx(token_logprobs(m, [1, 2, 3], list(h.ids)).sum(), abs=1e-4)
        assert h.score == pytest.approx(h.logprob / len(h.ids))


def _hf_beams(tmp_path, model, prompt, n, B, lp, early, eos):
    import transformers  # a test dependency: missing is a failure

    from model.training.export import export_hf

    if not (tmp_path / "model.safetensors").exists():
        export_hf(model, tmp_path)
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        g = hf.generate(torch.tensor([prompt]), num_beams=B, do_sample=False, length_penalty=lp,
                        early_stopping=early, max_new_tokens=n, num_return_sequences=B, eos_token_id=eos,
                        pad_token_id=eos, output_scores=True, return_dict_in_generate=True)
    return [s[len(prompt):].tolist() for s in g.sequences], g.sequences_scores.tolist()


def _assert_same_beams(ours, hf_seqs, hf_scores, eos):
    assert len(ours.hypotheses) == len(hf_seqs)
    for h, s, score in zip(ours.hypotheses, hf_seqs, hf_scores):
        assert s[: len(h.ids)] == list(h.ids)
        assert all(t == eos for t in s[len(h.ids):])  # HF pads a hypothesis that ended early
        assert score == pytest.approx(h.score, abs=2e-4)


@pytest.mark.parametrize("B, lp, early", [(2, 1.0, False), (4, 0.0, True), (3, 2.0, "never")])
def test_beams_match_transformers_on_a_random_model(tmp_path, B, lp, early):
    m = small(3, vocab=128, sharpen=30.0)
    prompt, eos = [5, 17, 40, 2], 7
    ours = beam_search(m, prompt, 12, BeamConfig(num_beams=B, length_penalty=lp, early_stopping=early, eos_id=eos))
    _assert_same_beams(ours, *_hf_beams(tmp_path, m, prompt, 12, B, lp, early, eos), eos)


@needs_trained
@pytest.mark.parametrize("B, lp, early, stop", [(4, 1.0, False, "eot"), (3, 1.0, False, ".\n"), (4, 0.0, False, ".\n"),
                                               (2, 2.0, False, ".\n"), (4, 1.0, True, ".\n"),
                                               (3, 0.5, "never", ".\n"), (5, -1.0, False, ".\n")])
def test_beams_match_transformers_on_the_shipped_model(tmp_path, B, lp, early, stop):
    """Our exported default model in LlamaForCausalLM: same hypotheses, same scores, with end-of-text (never
    written by our models, so only the length ends beams) and with ".↵" as the stop token (beams end early)."""
    from model.text.tokenizer import EOT_ID, encode

    eos = EOT_ID if stop == "eot" else encode(stop)[0]
    m = load_variant("gqa-rope")
    prompt = encode("ROMEO.\nBut soft, what light through yonder window breaks?")
    ours = beam_search(m, prompt, 24, BeamConfig(num_beams=B, length_penalty=lp, early_stopping=early, eos_id=eos))
    if stop != "eot":
        assert any(h.ended_by == "eos" for h in ours.hypotheses)
    _assert_same_beams(ours, *_hf_beams(tmp_path, m, prompt, 24, B, lp, early, eos), eos)


def test_beam_search_stops_at_the_context():
    m = small(1)
    r = beam_search(m, list(range(1, 62)), 10, BeamConfig(num_beams=2, eos_id=None))  # 61 of 64 positions
    assert len(r.best.ids) == 4 and "context" in r.stopped  # 64 - 61 fed + the last, never fed
    assert beam_search(m, [1], 0).hypotheses == []
    with pytest.raises(ValueError):
        beam_search(m, [], 3)
    with pytest.raises(ValueError):
        BeamConfig(num_beams=0)


def test_repetition_measures():
    assert repeated_ngram_share([5, 6, 7, 5, 6, 7, 5]) == pytest.approx(0.4)
    assert longest_repeat([5, 6, 7, 5, 6, 7, 5]) == 4
    assert repeated_ngram_share([1, 2]) == 0.0 and longest_repeat([1, 2, 3]) == 0


# --------------------------------------------------------------------------------------------------------
# Speculative decoding
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [SamplerConfig(temperature=0), SamplerConfig(temperature=0.7),
                                 SamplerConfig(temperature=1.3, top_k=5, top_p=0.9, min_p=0.05)])
def test_distribution_is_what_sample_draws_from(cfg):
    logits = np.random.default_rng(0).normal(size=50) * 3
    np.testing.assert_allclose(distribution(logits, cfg), sample(logits, cfg, np.random.default_rng(0)).final)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_speculative_greedy_is_the_targets_greedy(k):
    target, draft = pair()
    prompt = [3, 9, 27, 17]
    plain = generate(target, prompt, 30, SamplerConfig(temperature=0)).generated_ids
    r = speculative_generate(target, draft, prompt, 30, k)
    assert r.generated_ids == plain
    assert 0 < r.accepted < r.proposed  # the draft is right sometimes, wrong sometimes: both paths ran
    assert len(r.generated_ids) == r.accepted + r.target_forwards  # each round: its accepted + 1 of its own
    assert r.tokens_per_target_forward == pytest.approx(30 / r.target_forwards)


def test_speculative_stops_at_the_context_like_generate():
    target, draft = pair()
    prompt = list(range(1, 60))  # 59 of 64 positions
    plain = generate(target, prompt, 20, SamplerConfig(temperature=0))
    r = speculative_generate(target, draft, prompt, 20, 4)
    assert r.generated_ids == plain.generated_ids and len(r.generated_ids) == 6
    assert r.stopped and plain.stopped


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_both_caches_are_rolled_back_to_the_kept_tokens(temperature):
    target, draft = pair()
    prompt = [3, 9, 27, 17]
    r = speculative_generate(target, draft, prompt, 25, 4, SamplerConfig(temperature=temperature), seed=3,
                             keep_caches=True)
    assert any(x.verdict == "rejected" for rd in r.rounds for x in rd.proposals)
    seq = prompt + r.generated_ids
    for model, cache in zip((target, draft), r.caches):
        fresh = KVCache.for_model(model.cfg)
        with torch.no_grad():
            model(torch.tensor([seq[:-1]]), cache=fresh)
        n = cache.length
        assert n <= len(seq) - 1 and (model is draft or n == len(seq) - 1)
        for layer in range(model.cfg.n_layers):
            torch.testing.assert_close(cache.k[layer], fresh.k[layer][:, :, :n], atol=1e-5, rtol=0)
            torch.testing.assert_close(cache.v[layer], fresh.v[layer][:, :, :n], atol=1e-5, rtol=0)
    for rd in r.rounds:  # the target scored K + 1 positions, then kept the accepted ones + the pending token
        assert rd.target_len[1] - rd.target_len[0] == len(rd.proposals) + 1
        assert rd.target_len[2] == rd.target_len[0] + rd.n_accepted + 1


def _chi2_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson's chi-square goodness of fit; cells expected below 5 are pooled into one."""
    n = counts.sum()
    big = probs * n >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(probs[big] * n, probs[~big].sum() * n)
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    stat = float(((obs - exp) ** 2 / exp).sum())
    dof = len(obs) - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                         torch.tensor(stat / 2, dtype=torch.float64)))


@pytest.mark.slow  # thousands of speculative draws
@pytest.mark.parametrize("sampler, k", [(SamplerConfig(temperature=1.0), 2),
                                        (SamplerConfig(temperature=0.8, top_k=6), 3)])
def test_sampled_tokens_are_distributed_as_the_targets(sampler, k):
    """1,000 seeded runs, two tokens each. The first token's counts and the (first, second) pairs' counts are
    tested against the target's exact distributions — and, as a control, against the draft's, which must fail."""
    V = 12
    target, draft = pair(vocab=V)
    prompt = [1, 4, 7]

    def dist(model, ids):
        with torch.no_grad():
            return distribution(model(torch.tensor([ids]))[0, -1].numpy(), sampler)

    def joint(model):  # (V, V): P(first = a, second = b)
        p1 = dist(model, prompt)
        return np.stack([p1[a] * dist(model, prompt + [a]) for a in range(V)])

    N = 1000
    counts = np.zeros((V, V))
    accepted = proposed = 0
    for seed in range(N):
        r = speculative_generate(target, draft, prompt, 2, k, sampler, seed=seed)
        counts[r.generated_ids[0], r.generated_ids[1]] += 1
        accepted, proposed = accepted + r.accepted, proposed + r.proposed
    p_joint, q_joint = joint(target), joint(draft)
    assert 0.1 < accepted / proposed < 0.9  # guesses are accepted and rejected alike: every path runs
    assert _chi2_pvalue(counts.sum(1), p_joint.sum(1)) > 1e-3  # the first token
    assert _chi2_pvalue(counts.sum(0), p_joint.sum(0)) > 1e-3  # the second token
    assert _chi2_pvalue(counts.ravel(), p_joint.ravel()) > 1e-3  # the pair
    assert np.abs(p_joint - q_joint).sum() / 2 > 0.2  # the draft really is another distribution …
    assert _chi2_pvalue(counts.ravel(), q_joint.ravel()) < 1e-6  # … and the test can tell


def test_speculative_refuses_what_it_cannot_do():
    target = small(0)
    with pytest.raises(ValueError, match="vocabulary"):
        speculative_generate(target, small(1, vocab=32), [1, 2], 5, 2)
    windowed = Transformer(ModelConfig(vocab_size=64, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, d_mlp=64,
                                       max_seq_len=64, sliding_window=8)).eval()
    with pytest.raises(ValueError, match="sliding window"):
        speculative_generate(target, windowed, [1, 2], 5, 2)
    with pytest.raises(ValueError):
        speculative_generate(target, target, [], 5, 2)


# --------------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------------


@needs_trained
def test_cli_beams_json(capsys):
    assert main(["--prompt", "ROMEO.\n", "--max-new-tokens", "10", "--beams", "3", "--length-penalty", "0.5",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"prompt_ids", "generated_ids", "text", "beams"} <= set(out)
    n_best = out["beams"]["n_best"]
    assert len(n_best) == 3 and out["generated_ids"] == n_best[0]["generated_ids"]
    assert [h["score"] for h in n_best] == sorted((h["score"] for h in n_best), reverse=True)
    assert out["beams"]["length_penalty"] == 0.5


@needs_trained
def test_cli_speculative_json(capsys):
    draft = "draft" if "draft" in available_variants() else "mqa-rope"
    assert main(["--prompt", "ROMEO.\n", "--max-new-tokens", "16", "--temperature", "0", "--json"]) == 0
    greedy = json.loads(capsys.readouterr().out)
    assert main(["--prompt", "ROMEO.\n", "--max-new-tokens", "16", "--temperature", "0", "--speculative", "3",
                 "--draft", draft, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["generated_ids"] == greedy["generated_ids"] and out["text"] == greedy["text"]
    s = out["speculative"]
    assert {"proposed", "accepted", "acceptance_rate", "target_forwards", "tokens_per_target_forward"} <= set(s)
    assert s["tokens_per_target_forward"] == pytest.approx(16 / s["target_forwards"])


def test_cli_refuses_beams_with_speculative(capsys):
    with pytest.raises(SystemExit):
        main(["--prompt", "x", "--beams", "2", "--speculative", "2"])


# --------------------------------------------------------------------------------------------------------
# The shipped draft
# --------------------------------------------------------------------------------------------------------


def test_the_draft_is_shipped_and_cheap():
    d = CHECKPOINT_DIR / "draft"
    for f in ("model.safetensors", "config.json", "train_log.json"):
        assert (d / f).is_file(), f"checkpoints/draft/{f} is missing"
    draft = load_variant("draft")
    assert draft.cfg == variant_config("draft")
    n_draft = sum(p.numel() for p in draft.parameters())
    n_target = sum(p.numel() for p in Transformer(variant_config("gqa-rope")).parameters())
    assert n_draft < n_target / 4
    log = json.loads((d / "train_log.json").read_text())
    assert log["variant"] == "draft"
    default = json.loads((CHECKPOINT_DIR / "gqa-rope" / "train_log.json").read_text())["train"]
    same = {"steps", "batch_size", "seq_len", "lr", "min_lr", "warmup", "weight_decay", "dropout", "seed"}
    assert {k: log["train"][k] for k in same} == {k: default[k] for k in same}  # the default's recipe


@needs_trained
def test_speculative_with_the_shipped_draft_is_exact():
    """With the shipped draft, speculative greedy still writes exactly the target's greedy text."""
    from model.text.tokenizer import encode

    if "draft" not in available_variants():
        pytest.skip("checkpoints/draft is not in this checkout (test_the_draft_is_shipped_and_cheap says so)")
    target, draft = load_variant("gqa-rope"), load_variant("draft")
    prompt = encode("ROMEO.\nBut soft, what light through yonder window breaks?")
    r = speculative_generate(target, draft, prompt, 40, 4)
    assert r.generated_ids == generate(target, prompt, 40, SamplerConfig(temperature=0)).generated_ids
    assert r.tokens_per_target_forward > 1.2


# --------------------------------------------------------------------------------------------------------
# The figures (viz/decoding.py): the data they are given is the data they draw
# --------------------------------------------------------------------------------------------------------


def test_beam_tree_figure_draws_every_candidate_and_greedy():
    from model.decoding.beam import greedy_on_tree, tree_columns
    from viz.decoding import beam_tree_figure

    m = small(0, sharpen=20.0)
    r = beam_search(m, [1, 2, 3], 5, BeamConfig(num_beams=3, eos_id=None))
    greedy = generate(m, [1, 2, 3], 5, SamplerConfig(temperature=0)).generated_ids
    on = greedy_on_tree(r, greedy)
    assert on[0] >= 0 and r.steps[0].candidates[on[0]].token == greedy[0]  # step 1: greedy's token is a child
    cols = tree_columns(r, lambda t: "<b>" if t == greedy[0] else str(t))
    cum = np.cumsum(token_logprobs(m, [1, 2, 3], greedy))
    fig = beam_tree_figure(cols, [dict(index=on[s], label=str(greedy[s]), score=float(cum[s])) for s in range(5)], 1.0)
    by_name = {t.name: t for t in fig.data if t.name}
    n_fate = {f: sum(c["fate"] == f for col in cols for c in col) for f in ("kept", "hypothesis", "pruned")}
    assert len(by_name["kept: a beam of the next step"].x) == n_fate["kept"] == 3 * 4  # 4 steps keep 3 beams
    assert len(by_name["ended: kept as a hypothesis"].x) == n_fate["hypothesis"] == 3  # the last step ends 3
    assert "&lt;b&gt;" in by_name["kept: a beam of the next step"].text or "&lt;b&gt;" in by_name["pruned"].text
    assert list(by_name["greedy's path"].x) == list(range(6))


def test_cache_reorder_and_rounds_figures():
    from viz.decoding import cache_reorder_figure, rounds_figure

    fig = cache_reorder_figure([1, 1, 0], ["a", "b", "c"], ["b x", "b y", "a z"])
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [(-t.y[0], -t.y[1]) for t in lines] == [(1, 0), (1, 1), (0, 2)]
    assert list(fig.data[-2].marker.symbol) == ["square", "square", "x"]  # old row 2 is dropped
    rounds = [dict(labels=["a", "<i>"], verdicts=["accepted", "rejected"], q=[0.5, 0.4], p=[0.6, 0.1],
                   extra_label="c", extra_kind="resampled", extra_p=0.3)]
    fig = rounds_figure(rounds, 0, 3)
    z = np.asarray(fig.data[0].z)
    assert z[0, :2].tolist() == [0, 1] and np.isnan(z[0, 2]) and z[0, 3] == 3
    assert fig.data[0].text[0][1] == "&lt;i&gt;"
