"""The shipped corpus: both splits load, no licence text, plays intact, held-out plays really held out."""

import hashlib
import re

import pytest

from model.text.corpus import boilerplate_hits, clean_text, load_corpus, load_manifest, strip_gutenberg


@pytest.fixture(scope="module")
def texts():
    return {s: load_corpus(s) for s in ("train", "val")}


def test_splits_load_and_are_sized_as_documented(texts):
    train, val = len(texts["train"]), len(texts["val"])
    assert train > 4_000_000 and val > 200_000
    assert 0.05 <= val / (train + val) <= 0.08
    with pytest.raises(ValueError):
        load_corpus("test")


def test_no_licence_text_remains(texts):
    for text in texts.values():
        assert boilerplate_hits(text) == []
        low = text.lower()
        assert "project gutenberg" not in low and "gutenberg" not in low and "small print" not in low
        # Word-bounded, not substring: Coriolanus says "pretext" ...
        assert not re.search(r"\be-?texts?\b", text, re.IGNORECASE)
        # ... and Hamlet "by his license": only the legal text's all-caps heading is banned.
        assert "LICENSE" not in text and "LICENCE" not in text
        assert "\r" not in text and not re.search(r" +\n", text)


def test_the_plays_keep_their_shape(texts):
    train = texts["train"]
    assert len(re.findall(r"^OTHELLO\.$", train, re.MULTILINE)) > 200  # speaker names on their own line
    assert re.search(r"^Romeo\.$", train, re.MULTILINE)  # some editions spell speakers in mixed case
    assert "[Exeunt.]" in train
    assert "To be, or not to be" in train


def test_held_out_plays_are_not_in_train(texts):
    manifest = load_manifest()
    val_files = {w["file"] for w in manifest["works"] if w["split"] == "val"}
    assert val_files == set(manifest["val_works"]) and len(val_files) == 3
    train, val = texts["train"], texts["val"]
    for speaker in ("MACBETH.", "MALVOLIO."):  # Macbeth and Twelfth Night's leads speak only in val
        assert re.search(rf"^{re.escape(speaker)}$", val, re.MULTILINE)
        assert not re.search(rf"^{re.escape(speaker)}$", train, re.MULTILINE)
    # Almost no long line of val appears in train. The few that do are Shakespeare reusing himself: the Fool's
    # "For the rain it raineth every day" closes Twelfth Night and is sung in Lear.
    train_lines = set(train.split("\n"))
    long_val = [line for line in val.split("\n") if len(line) >= 30]
    shared = [line for line in long_val if line in train_lines]
    assert len(shared) / len(long_val) < 0.002, shared


def test_manifest_matches_the_texts(texts):
    manifest = load_manifest()
    for split, info in manifest["splits"].items():
        text = texts[split]
        assert info["chars"] == len(text)
        assert info["sha256"] == hashlib.sha256(text.encode("utf-8")).hexdigest()
        works = [w for w in manifest["works"] if w["split"] == split]
        assert info["works"] == len(works)
        assert works[0]["start"] == 0 and works[-1]["end"] == len(text)
        for w, nxt in zip(works, works[1:]):
            assert nxt["start"] == w["end"] + 1  # one "\n" between works: a blank line
        for w in works:
            body = text[w["start"] : w["end"]]
            assert len(body) == w["chars"] and body.endswith("\n")
            assert "by William Shakespeare" in body[:300]


def test_cleaning_cuts_a_gutenberg_header_and_footer():
    raw = (
        "The Project Gutenberg Etext of Hamlet\r\n**Welcome To The World of Free Plain Vanilla Electronic Texts**\r\n"
        "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\r\n\r\n"
        "HAMLET   \r\n\r\n\r\n\r\n\r\n\r\nHam.\r\nTo be, or not to be\r\n@@@@\r\n"
        "End of Project Gutenberg Etext of Hamlet\r\nThis Etext file is presented by Project Gutenberg\r\n"
    )
    assert clean_text(raw) == "HAMLET\n\n\nHam.\nTo be, or not to be\n"
    assert strip_gutenberg("no markers\n") == "no markers\n"
    assert boilerplate_hits(raw) and not boilerplate_hits("Tell him that, by his license, Fortinbras")
