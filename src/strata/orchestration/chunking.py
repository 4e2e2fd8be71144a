"""Files into text, text into overlapping chunks.

Sizes are in words (runs of non-space characters): a model-independent stand-in for tokens that
keeps chunks well inside an embedding model's window. A chunk ends at a sentence or line end when
one falls in its last fifth, so chunks seldom cut a sentence.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import PurePosixPath

SUPPORTED = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
             ".jsonl": "jsonl", ".ndjson": "jsonl", ".html": "html", ".htm": "html"}  # fmt: skip
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?:;]$|\n")


class UnsupportedFile(ValueError):
    """The file's type is not one ingestion reads, or its content is not that type."""


class _TextOfHTML(HTMLParser):
    SKIP = frozenset({"script", "style", "head", "noscript", "template"})
    BLOCK = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def file_kind(filename: str) -> str:
    kind = SUPPORTED.get(PurePosixPath(filename).suffix.lower())
    if kind is None:
        known = ", ".join(sorted(SUPPORTED))
        raise UnsupportedFile(f"'{filename}' is not a file type vector stores read (by extension: {known})")
    return kind


def file_text(filename: str, data: bytes) -> str:
    """The readable text of a file: HTML without its markup, JSON Lines by each line's text."""
    kind = file_kind(filename)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnsupportedFile(f"'{filename}' is not UTF-8 text: {error}") from None
    if kind == "html":
        parser = _TextOfHTML()
        parser.feed(text)
        parser.close()
        return "".join(parser.parts)
    if kind == "jsonl":
        return "\n".join(_jsonl_texts(filename, text))
    return text


def _jsonl_texts(filename: str, text: str) -> list[str]:
    """Each line's ``text`` (or ``content``) field, or the whole object when it has neither."""
    texts = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise UnsupportedFile(f"'{filename}' line {number} is not JSON: {error.msg}") from None
        inner = value.get("text", value.get("content")) if isinstance(value, dict) else None
        if isinstance(inner, str):
            texts.append(inner)
        else:
            texts.append(json.dumps(value, ensure_ascii=False))
    return texts


def chunk_text(text: str, size_words: int, overlap_words: int) -> list[str]:
    """Consecutive chunks of at most ``size_words`` words; each starts ``overlap_words`` before the
    previous one ended. The text between words (spaces, newlines) is kept as written."""
    words = list(_WORD.finditer(text))
    chunks: list[str] = []
    start = 0
    while start < len(words):
        end = min(start + size_words, len(words))
        if end < len(words):
            end = _sentence_end(text, words, start, end, size_words)
        chunks.append(text[words[start].start() : words[end - 1].end()])
        if end == len(words):
            break
        start = max(end - overlap_words, start + 1)
    return chunks


def _sentence_end(text: str, words: list[re.Match[str]], start: int, end: int, size_words: int) -> int:
    """``end``, pulled back to just after a sentence or line end in the chunk's last fifth if there is one."""
    floor = max(start + 1, end - size_words // 5)
    for candidate in range(end, floor - 1, -1):
        word = words[candidate - 1]
        after = text[word.end() : words[candidate].start()] if candidate < len(words) else ""
        if _SENTENCE_END.search(word.group()) or "\n" in after:
            return candidate
    return end
