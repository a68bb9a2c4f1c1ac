"""A Hugging Face `tokenizer.json`, read by the `tokenizers` library, behind the interface our own tokenizer
offers the pages (`model/text/tokenizer.py`): encode, decode, token_bytes, token_label.

    tok = HFTokenizer.from_file("~/models/SmolLM-135M/tokenizer.json")
    tok.encode("Hello <|im_start|>")   # plain text: the typed special token is ordinary pieces, never its id

User text is always plain text, as with ours: the tokenizer is set to `encode_special_tokens`, so a typed
"<|endoftext|>" or "<|im_start|>" is split like any other text (what transformers calls split_special_tokens),
and `encode` adds no BOS/EOS (add_special_tokens=False); `bos_id` is there for a caller that wants one. Added
tokens that are not special (extra vocabulary) are matched, as transformers matches them.

Token bytes, for the labels: byte-level BPE vocabularies (GPT-2, Llama-3, Qwen2, SmolLM) draw each byte as one
printable character ("Ġ" is the space), which `_BYTE_OF_CHAR` maps back; SentencePiece-style ones (Llama-2,
Mistral, Gemma) write the space as "▁" and a byte they could not merge as "<0xE2>". Anything else is taken as
UTF-8 text. Out: tokenizers with a normaliser that changes the text (lowercasing, NFKC) show the normalised
pieces — that is what the model sees.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from model.text.tokenizer import bytes_label, sanitise


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's `bytes_to_unicode`, inverted: the printable bytes stand for themselves; the other 68 (controls,
    space, 0x7F–0xA0, 0xAD) are drawn as U+0100 onwards, in byte order. "Ġ" (U+0120) -> 0x20, "Ċ" -> 0x0A."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            chars[chr(0x100 + extra)] = b
            extra += 1
    return chars


_BYTE_OF_CHAR = _byte_level_alphabet()
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _mentions(node, kind: str) -> bool:
    """True when the tokenizer.json subtree `node` has a component of type `kind` anywhere inside it."""
    if isinstance(node, dict):
        return node.get("type") == kind or any(_mentions(v, kind) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, kind) for v in node)
    return False


class HFTokenizer:
    def __init__(self, tokenizer, config: Optional[dict] = None) -> None:
        """`tokenizer`: a `tokenizers.Tokenizer` this object now owns (its settings are changed here, once)."""
        self._tok = tokenizer
        self._tok.encode_special_tokens = True  # typed special tokens stay text (see the module docstring)
        spec = json.loads(tokenizer.to_str())
        self.byte_level = _mentions(spec.get("decoder"), "ByteLevel") or _mentions(spec.get("pre_tokenizer"), "ByteLevel")
        added = tokenizer.get_added_tokens_decoder()  # {id: AddedToken}: stored as typed, not byte-encoded
        self.added = {i: t.content for i, t in added.items()}
        self.specials = {i: t.content for i, t in added.items() if t.special}
        self.n_vocab = tokenizer.get_vocab_size(with_added_tokens=True)
        self.name = "the folder's tokenizer.json"
        c = config or {}
        self.bos_id = c.get("bos_token_id") if isinstance(c.get("bos_token_id"), int) else None
        eos = c.get("eos_token_id")
        self.eos_id = eos[0] if isinstance(eos, list) and eos else eos if isinstance(eos, int) else None

    @classmethod
    def from_file(cls, path, config: Optional[dict] = None) -> "HFTokenizer":
        from tokenizers import Tokenizer

        try:
            return cls(Tokenizer.from_file(str(Path(path).expanduser())), config)
        except Exception as e:  # tokenizers raises its own Exception type for a malformed file
            raise ValueError(f"{path} is not a tokenizer.json the tokenizers library can read: {str(e)[:160]}") from None

    def encode(self, text: str) -> list[int]:
        """User text -> ids, as plain text: no BOS, and a typed special token is ordinary pieces."""
        return self._tok.encode(sanitise(text), add_special_tokens=False).ids

    def pieces(self, text: str) -> list[str]:
        """The vocabulary strings of `encode(text)`, as the file spells them ("Ġthe", "▁the")."""
        return self._tok.encode(sanitise(text), add_special_tokens=False).tokens

    def contains_special_lookalike(self, text: str) -> bool:
        """True when `text` contains a special token's spelling, which `encode` treats as plain text."""
        return any(s in text for s in self.specials.values())

    def decode(self, ids: list[int]) -> str:
        """ids -> text, special tokens written out; a cut-off UTF-8 character comes out as U+FFFD."""
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def piece(self, token_id: int) -> str:
        """The vocabulary's own spelling of one id ("Ġthe", "▁the", "<0xE2>"); "" for an id it does not have."""
        return self._tok.id_to_token(int(token_id)) or ""

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token: "Ġthe" -> b" the" (byte-level), "▁the" -> b" the", "<0xE2>" -> b"\\xe2"."""
        piece = self._tok.id_to_token(int(token_id))
        if piece is None:
            raise ValueError(f"token id {token_id} is not in this tokenizer's vocabulary of {self.n_vocab}")
        if token_id in self.added:
            return self.added[token_id].encode("utf-8")
        if self.byte_level and all(ch in _BYTE_OF_CHAR for ch in piece):
            return bytes(_BYTE_OF_CHAR[ch] for ch in piece)
        m = _BYTE_FALLBACK.fullmatch(piece)
        if m:
            return bytes([int(m.group(1), 16)])
        return piece.replace("▁", " ").encode("utf-8")

    def token_label(self, token_id: int) -> str:
        """Printable label of one id, as ours: a special token's own spelling, else `bytes_label` of its bytes
        ("␣the", "↵", "<0xE2>"). An id past the vocabulary (a model's padded embedding rows) is "<id 49160>"."""
        if token_id in self.specials:
            return self.specials[token_id]
        if self._tok.id_to_token(int(token_id)) is None:
            return f"<id {token_id}>"
        return bytes_label(self.token_bytes(token_id))
