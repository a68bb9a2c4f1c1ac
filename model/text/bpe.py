"""Byte-level BPE: learn merge ranks from a text, encode with them, and replay the merges of one word.

The ranks are tiktoken's "mergeable ranks": a dict from token bytes to id, where ids 0..255 are the single
bytes and every merge learned in training gets the next id. A lower rank means the merge was learned earlier,
so encoding a word is "start from its bytes, keep merging the adjacent pair whose concatenation has the lowest
rank". tiktoken (Rust) does exactly that and is what the app uses; `bpe_encode` here is the slow plain-Python
reference that the tests hold tiktoken to, and `replay_merges` shows the same process one step at a time
(`merge_positions` says where in the word each step merged).

Before any merging, text is cut into pieces with GPT-4's (cl100k) regex, `PAT_STR`: words with their leading
space, runs of 1-3 digits, punctuation, whitespace. Merges never cross a piece boundary, so " thee" can become
one token but "thee." cannot.

What is out: special tokens (`model/text/tokenizer.py` adds `<|endoftext|>` on top of these ranks), normalisation,
and any speed-up beyond incremental pair counts (training on the ~4.7 M-character corpus takes seconds
because Shakespeare has only ~36 k distinct pieces).
"""

from __future__ import annotations

import base64
import heapq
from collections import Counter, defaultdict
from pathlib import Path

import regex  # the `regex` package (a tiktoken dependency): \p{L} classes and possessive quantifiers

# GPT-4's pre-tokenizer pattern, character for character as in tiktoken's cl100k_base.
PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of `pair`, left to right: [1, 2, 3, 1, 2], (1, 2), 4 -> [4, 3, 4]."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(text: str, vocab_size: int, pat_str: str = PAT_STR, verbose: bool = False) -> dict[bytes, int]:
    """Learn `vocab_size - 256` merges from `text`; return tiktoken-style ranks {token bytes: id}.

    Hand-worked case (Wikipedia's BPE example; the whole string is one regex piece):
        train_bpe("aaabdaaabac", 259)  ->  the 256 bytes, then  b"aa": 256,  b"ab": 257,  b"aaab": 258
    "aa" occurs 4 times; then "aa"+"a" and "a"+"b" both occur twice and the tie goes to the smaller pair
    (97, 98) = "ab"; then "aa"+"ab" occurs twice.

    How it stays fast: the text is reduced once to its distinct pieces with counts (" the": 22,877), each piece
    a list of ids. Pair counts are weighted by piece counts and, after each merge, updated only for the pieces
    that contained the merged pair (`where` indexes pair -> pieces). The best pair comes off a heap whose
    stale entries are skipped. Ties go to the highest count, then the smallest (left id, right id), so a run
    is deterministic; a run to size n is also exactly the first n ranks of any longer run.

    If a merge produces bytes that are already a token ("a"+"bc" after "ab"+"c" made "abc"), the pieces are
    merged into that token and no new id is spent: tiktoken's ranks are keyed by bytes, so the same bytes
    cannot have two ids. (It has not happened on our corpus.) Stops early if no pair is left: a text too
    small for the vocabulary asked.
    """
    if vocab_size < 256:
        raise ValueError(f"vocab_size must be >= 256 (the single bytes), got {vocab_size}")
    pieces = Counter(regex.findall(pat_str, text))
    words = [list(piece.encode("utf-8")) for piece in pieces]  # piece index -> current ids
    counts = list(pieces.values())  # piece index -> occurrences in the text
    tokens = [bytes([b]) for b in range(256)]  # id -> bytes
    ranks = {t: i for i, t in enumerate(tokens)}

    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, (w, c) in enumerate(zip(words, counts)):
        for pair in zip(w, w[1:]):
            pair_counts[pair] += c
            where[pair].add(i)
    heap = [(-c, pair) for pair, c in pair_counts.items()]  # max count first, then the smallest pair
    heapq.heapify(heap)

    while len(ranks) < vocab_size:
        while heap:
            neg_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair) == -neg_count:  # else stale: the count changed after this was pushed
                break
        else:
            break  # every piece is a single token
        merged = tokens[pair[0]] + tokens[pair[1]]
        new_id = ranks.get(merged)
        if new_id is None:
            new_id = ranks[merged] = len(tokens)
            tokens.append(merged)

        changed = set()
        for i in list(where[pair]):
            old, c = words[i], counts[i]
            new = words[i] = merge(old, pair, new_id)
            old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
            for p in old_pairs:
                pair_counts[p] -= c
            for p in new_pairs:
                pair_counts[p] += c
            for p in set(old_pairs) - set(new_pairs):
                where[p].discard(i)
            for p in new_pairs:
                where[p].add(i)
            changed.update(old_pairs, new_pairs)
        for p in changed:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
            else:
                del pair_counts[p], where[p]
        if verbose and (len(ranks) - 256) % 200 == 0:
            print(f"merge {len(ranks) - 256:5d}: {merged!r} (count {-neg_count:,})")
    return ranks


def _merge_lowest(ranks: dict[bytes, int], parts: list[bytes]) -> list[bytes] | None:
    """One BPE step: merge the adjacent pair whose bytes have the lowest rank (leftmost on a tie); None if none.

    ranks with b"aa": 256, b"ab": 257:  [b"a", b"a", b"b"] -> [b"aa", b"b"]   ("aa" outranks "ab")
    """
    best, best_rank = None, None
    for i in range(len(parts) - 1):
        rank = ranks.get(parts[i] + parts[i + 1])
        if rank is not None and (best_rank is None or rank < best_rank):
            best, best_rank = i, rank
    if best is None:
        return None
    return parts[:best] + [parts[best] + parts[best + 1]] + parts[best + 2 :]


def replay_merges(ranks: dict[bytes, int], piece: bytes) -> list[list[bytes]]:
    """Every state of one piece's encoding: its bytes first, then one list of parts after each merge.

    With the ranks of the hand-worked example in `train_bpe` (b"aa": 256, b"ab": 257, b"aaab": 258):
        replay_merges(ranks, b"aaab") -> [[b"a", b"a", b"a", b"b"],
                                          [b"aa", b"a", b"b"],      # "aa" (256) beats "ab" (257)
                                          [b"aa", b"ab"],           # "aaa" is no token; "ab" is
                                          [b"aaab"]]                # "aa"+"ab" = "aaab" (258)
    The last list is what tiktoken produces for that piece. Pass one regex piece (`regex.findall(PAT_STR,
    text)`), encoded as UTF-8: a longer text would merge across piece boundaries, which real encoding never does.
    """
    steps = [[bytes([b]) for b in piece]]
    while len(steps[-1]) > 1 and (parts := _merge_lowest(ranks, steps[-1])) is not None:
        steps.append(parts)
    return steps


def merge_positions(steps: list[list[bytes]]) -> list[int | None]:
    """Where each state of `replay_merges` came from: the index i of the pair (i, i + 1) of the previous state
    that was merged into one part — None for the first state (the bytes, nothing merged yet).

    The example above: [[a, a, a, b], [aa, a, b], [aa, ab], [aaab]] -> [None, 0, 1, 0].
    """
    return [None] + [next(i for i, (a, b) in enumerate(zip(prev, cur)) if a != b) for prev, cur in zip(steps, steps[1:])]


def bpe_encode(ranks: dict[bytes, int], text: str, pat_str: str = PAT_STR) -> list[int]:
    """Reference encoder: split with `pat_str`, merge each piece by lowest rank, return the ids.

    Ranks of the hand-worked example, "aaab aab" -> pieces "aaab", " aab" -> [258, 32, 256, 98].
    Raises UnicodeEncodeError on lone surrogates (`model.text.tokenizer.encode` sanitises them first).
    """
    ids = []
    for piece in regex.findall(pat_str, text):
        parts = [bytes([b]) for b in piece.encode("utf-8")]
        while len(parts) > 1 and (merged := _merge_lowest(ranks, parts)) is not None:
            parts = merged
        ids.extend(ranks[p] for p in parts)
    return ids


# --- tiktoken's rank file: "<base64 of the token bytes> <rank>" per line, in rank order. Never pickle. ------


def save_ranks(ranks: dict[bytes, int], path: str | Path) -> None:
    by_rank = sorted(ranks.items(), key=lambda item: item[1])
    Path(path).write_text("".join(f"{base64.b64encode(t).decode('ascii')} {r}\n" for t, r in by_rank), encoding="ascii")


def load_ranks(path: str | Path) -> dict[bytes, int]:
    """Read a rank file; fails on a malformed line, a repeated token or ranks that are not 0..n-1."""
    ranks = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="ascii").splitlines(), 1):
        if not line:
            continue
        b64, rank = line.split(" ")
        tok = base64.b64decode(b64, validate=True)
        if tok in ranks:
            raise ValueError(f"{path}:{lineno}: token {tok!r} appears twice")
        ranks[tok] = int(rank)
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(f"{path}: ranks are not 0..{len(ranks) - 1}")
    return ranks
