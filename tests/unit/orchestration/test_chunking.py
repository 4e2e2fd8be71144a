import itertools

import pytest

from strata.orchestration.chunking import UnsupportedFile, chunk_text, file_text


def test_chunks_cover_the_text_with_overlap() -> None:
    words = [f"w{i}" for i in range(1000)]
    chunks = chunk_text(" ".join(words), 100, 20)
    seen = [word for chunk in chunks for word in chunk.split()]
    assert set(seen) == set(words)
    assert all(len(chunk.split()) <= 100 for chunk in chunks)
    for before, after in itertools.pairwise(chunks):
        assert before.split()[-20:] == after.split()[:20]  # no sentence ends: the overlap is exact


def test_chunks_end_at_a_sentence_when_one_is_near() -> None:
    text = " ".join(f"word{i}." if i % 9 == 8 else f"word{i}" for i in range(300))
    chunks = chunk_text(text, 50, 10)
    assert all(chunk.endswith(".") for chunk in chunks[:-1])
    assert chunk_text("", 50, 10) == []
    assert chunk_text("one two", 50, 10) == ["one two"]


def test_html_loses_its_markup_and_scripts() -> None:
    html = b"<html><head><title>t</title><style>p{}</style></head><body><h1>Title</h1><p>a &amp; b</p>" \
        b"<script>alert(1)</script></body></html>"  # fmt: skip
    text = file_text("page.HTML", html)
    assert "Title" in text
    assert "a & b" in text
    assert "alert" not in text
    assert "<" not in text


def test_jsonl_reads_each_lines_text() -> None:
    data = b'{"text": "first"}\n\n{"content": "second"}\n{"other": 1}\n'
    assert file_text("rows.jsonl", data).splitlines() == ["first", "second", '{"other": 1}']
    with pytest.raises(UnsupportedFile, match="line 2"):
        file_text("rows.jsonl", b'{"text": "ok"}\nnot json\n')


@pytest.mark.parametrize(("name", "data"), [("image.png", b"x"), ("notes.txt", b"\xff\xfe bad")])
def test_unsupported_files_are_refused(name: str, data: bytes) -> None:
    with pytest.raises(UnsupportedFile):
        file_text(name, data)
