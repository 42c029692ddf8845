"""Wikipedia XML dumps: one row per article with its wikitext stripped to plain text;
redirects and other namespaces skipped and counted; broken pages and damaged dumps
quarantined with the reason."""

from __future__ import annotations

import bz2

import pytest

from stages.io.errors import InputError
from stages.io.formats import format_of
from stages.io.formats.wikipedia import WikipediaFormat
from stages.io.read import ShardReader
from stages.io.shards import plan_inputs
from tests.http_server import serve

ADA = """{{Infobox person|name=Ada Lovelace|birth_date=1815}}
'''Ada Lovelace''' was an English [[mathematician]] and [[Writer|writer]].<ref>{{cite web\
|url=https://example.org|title=Ada}}</ref> She worked on the [[Analytical Engine]].\
<ref name="b" />
__NOTOC__
[[File:Ada portrait.jpg|thumb|A portrait of [[Ada Lovelace|Ada]]]]
[[Datei:Ada2.png|mini|Zweites Bild]]
== Early life ==
She was born in London.<!-- an editor's note -->

{| class="wikitable"
|-
! Year !! Event
|-
| 1815 || Born
|}
=== Education ===
She studied ''mathematics'' with [[Mary Somerville]].
* item one
[[Category:English mathematicians]]
[[Kategorie:Mathematiker]]
"""

BABBAGE = """'''Charles Babbage''' designed the [[Difference engine|difference engine]].
== Later life ==
He died in 1871.{{Citation needed|date=May 2020}}
"""

ENGINE = "The '''Analytical Engine''' was a proposed [[computer]]."


def _page(title: str, page_id: int, text: str | None, ns: int = 0, extra: str = "") -> str:
    body = "" if text is None else f'<text xml:space="preserve">{_escape(text)}</text>'
    return (
        f"  <page>\n    <title>{_escape(title)}</title>\n    <ns>{ns}</ns>\n"
        f"    <id>{page_id}</id>\n{extra}    <revision>\n      <id>{page_id}00</id>\n"
        f"      {body}\n    </revision>\n  </page>\n"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SITEINFO = """  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>dewiki</dbname>
    <base>https://de.wikipedia.org/wiki/Wikipedia:Hauptseite</base>
    <namespaces>
      <namespace key="-2" case="first-letter">Medium</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Diskussion</namespace>
      <namespace key="6" case="first-letter">Datei</namespace>
      <namespace key="14" case="first-letter">Kategorie</namespace>
    </namespaces>
  </siteinfo>
"""


def _dump(pages: list[str], lang: str = "de", siteinfo: str = SITEINFO) -> bytes:
    head = (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" '
        f'version="0.11" xml:lang="{lang}">\n'
    )
    return (head + siteinfo + "".join(pages) + "</mediawiki>\n").encode()


PAGES = [
    _page("Ada Lovelace", 12, ADA),
    _page("AccessibleComputing", 10, "#REDIRECT [[Computer accessibility]]",
          extra='    <redirect title="Computer accessibility" />\n'),
    _page("Talk:Ada Lovelace", 13, "Discussion about [[Ada]].", ns=1),
    _page("Charles Babbage", 14, BABBAGE),
    _page("Old redirect", 15, "#redirect [[Charles Babbage]]"),
    _page("Analytical Engine", 16, ENGINE),
]  # fmt: skip


def _write(path, data: bytes, compress: bool = True) -> str:
    path.write_bytes(bz2.compress(data) if compress else data)
    return str(path)


def _read(uri: str, **kwargs):
    planned = plan_inputs(uri, format="wikipedia")
    assert [s.format for s in planned.shards] == ["wikipedia"]
    return ShardReader(**kwargs).read(planned.shards[0])


def test_each_article_is_a_row_with_id_title_url_and_language(tmp_path):
    uri = _write(tmp_path / "dewiki-pages-articles.xml.bz2", _dump(PAGES))
    result = _read(uri)
    table = result.table
    assert table.column_names == ["id", "text", "source", "_order", "title", "url", "language"]
    assert table.column("id").to_pylist() == ["12", "14", "16"]
    titles = ["Ada Lovelace", "Charles Babbage", "Analytical Engine"]
    assert table.column("title").to_pylist() == titles
    assert table.column("url").to_pylist() == [
        "https://de.wikipedia.org/wiki/Ada%20Lovelace",
        "https://de.wikipedia.org/wiki/Charles%20Babbage",
        "https://de.wikipedia.org/wiki/Analytical%20Engine",
    ]
    assert table.column("language").to_pylist() == ["de"] * 3
    assert table.column("_order").to_pylist() == [1, 4, 6]  # page numbers in the dump
    assert set(table.column("source").to_pylist()) == {uri}
    assert result.quarantine.num_rows == 0


def test_redirects_and_talk_pages_are_counted_not_quarantined(tmp_path):
    uri = _write(tmp_path / "dump.xml.bz2", _dump(PAGES))
    result = _read(uri)
    assert result.blank_lines == 3  # two redirects and a Talk: page
    assert result.quarantine.num_rows == 0
    assert "Talk:Ada Lovelace" not in result.table.column("title").to_pylist()


def test_wikitext_is_stripped_to_text_with_headings_as_lines(tmp_path):
    uri = _write(tmp_path / "dump.xml.bz2", _dump(PAGES))
    ada, babbage, engine = _read(uri).table.column("text").to_pylist()
    assert ada.startswith("Ada Lovelace was an English mathematician and writer.")
    assert "She worked on the Analytical Engine." in ada
    lines = ada.split("\n")
    assert "Early life" in lines and "Education" in lines  # headings kept, each a line
    assert "She was born in London." in lines
    assert "She studied mathematics with Mary Somerville." in lines
    assert "item one" in lines
    for gone in (
        "Infobox", "cite web", "{{", "[[", "<ref", "__NOTOC__", "portrait", "Zweites Bild",
        "wikitable", "1815", "editor's note", "English mathematicians", "Mathematiker", "'''",
    ):  # fmt: skip
        assert gone not in ada, gone
    assert babbage == (
        "Charles Babbage designed the difference engine.\n\nLater life\nHe died in 1871."
    )
    assert engine == "The Analytical Engine was a proposed computer."


def test_keep_categories_keeps_their_names_as_nemo_does(tmp_path):
    path = tmp_path / "dump.xml"
    path.write_bytes(_dump(PAGES[:1]))
    planned = plan_inputs(str(path), format="wikipedia")
    reader = ShardReader()
    result = next(WikipediaFormat(keep_categories=True).read(planned.shards[0], reader))
    text = result.table.column("text")[0].as_py()
    assert "English mathematicians" in text and "Mathematiker" in text
    assert "Category:" not in text and "Kategorie:" not in text


def test_language_and_url_without_a_site_base(tmp_path):
    path = tmp_path / "dump.xml"
    path.write_bytes(_dump([_page("Ada Lovelace", 12, ADA)], lang="fr", siteinfo=""))
    result = _read(str(path))
    assert result.table.column("language").to_pylist() == ["fr"]
    urls = result.table.column("url").to_pylist()
    assert urls == ["https://fr.wikipedia.org/wiki/Ada%20Lovelace"]
    planned = plan_inputs(str(path), format="wikipedia")
    table = next(WikipediaFormat(language="en").read(planned.shards[0], ShardReader())).table
    assert table.column("language").to_pylist() == ["en"]
    assert table.column("url").to_pylist() == ["https://en.wikipedia.org/wiki/Ada%20Lovelace"]


def test_a_broken_page_is_quarantined_and_the_others_kept(tmp_path):
    pages = [
        _page("Ada Lovelace", 12, ADA),
        _page("Deleted", 20, None),
        "  <page>\n    <title>No id</title>\n    <ns>0</ns>\n  </page>\n",
        _page("Charles Babbage", 14, BABBAGE),
    ]
    uri = _write(tmp_path / "dump.xml.bz2", _dump(pages))
    result = _read(uri)
    assert result.table.column("id").to_pylist() == ["12", "14"]
    q = result.quarantine.to_pylist()
    assert [r["line"] for r in q] == [2, 3]
    assert q[0]["reason"] == f"{uri}: page 2 ('Deleted'): no revision text (missing or deleted)"
    assert q[1]["reason"] == f"{uri}: page 3 ('No id'): no <id>"
    assert b"<title>No id</title>" in q[1]["raw"].replace(b"ns0:", b"")
    with pytest.raises(InputError, match="page 2 \\('Deleted'\\): no revision text"):
        _read(uri, strict=True)


def _multistream(pages: list[str]) -> bytes:
    """A dump as Wikimedia's multistream files are: one bz2 stream for the head, one per
    page here (100 pages each there), one for the end."""
    head, tail = _dump(["<PAGES>"]).split(b"<PAGES>")
    return b"".join(bz2.compress(part) for part in [head, *(p.encode() for p in pages), tail])


def test_a_multistream_dump_is_read_whole(tmp_path):
    uri = _write(tmp_path / "dump.xml.bz2", _multistream(PAGES), compress=False)
    result = _read(uri)
    assert result.table.column("id").to_pylist() == ["12", "14", "16"]
    assert result.quarantine.num_rows == 0


def test_a_truncated_bz2_dump_keeps_the_pages_before_the_damage(tmp_path):
    pages = [_page(f"Article {i}", 100 + i, f"Text of article {i}. " * 40) for i in range(30)]
    data = _multistream(pages)
    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(data[: len(data) * 2 // 3])
    result = _read(str(path))
    kept = result.table.column("id").to_pylist()
    assert 0 < len(kept) < 30
    assert kept == [str(100 + i) for i in range(len(kept))]
    (record,) = result.quarantine.to_pylist()
    n = len(kept)
    assert record["line"] == n + 1
    assert record["reason"] == (
        f"{path}: page {n + 1}: truncated bz2 stream after page {n} ('Article {n - 1}'); "
        "the pages after it are lost"
    )


def test_a_corrupt_bz2_stream_and_invalid_xml_are_quarantined(tmp_path):
    data = bytearray(_multistream(PAGES))
    data[len(data) // 2 : len(data) // 2 + 40] = b"\xff" * 40
    corrupt = _write(tmp_path / "corrupt.xml.bz2", bytes(data), compress=False)
    result = _read(corrupt)
    (record,) = result.quarantine.to_pylist()
    n = record["line"] - 1
    assert 0 < n < len(PAGES)
    assert result.table.num_rows + result.blank_lines == n  # every page before is accounted
    assert record["reason"].startswith(f"{corrupt}: page {n + 1}: corrupt bz2 stream (")
    assert record["reason"].endswith("the pages after it are lost")

    broken = _dump(PAGES).replace(b"<title>Charles Babbage</title>", b"<title>Charles</titel>")
    uri = _write(tmp_path / "broken.xml.bz2", broken)
    result = _read(uri)
    assert result.table.column("id").to_pylist() == ["12"]
    (record,) = result.quarantine.to_pylist()
    assert record["line"] == 4
    assert record["reason"].startswith(f"{uri}: page 4: invalid XML (mismatched tag")
    assert "after page 3 ('Talk:Ada Lovelace')" in record["reason"]


def test_a_file_that_is_no_dump_is_one_quarantine_record(tmp_path):
    html = _write(tmp_path / "page.xml", b"<html><body>hi</body></html>", compress=False)
    (record,) = _read(html).quarantine.to_pylist()
    assert record["reason"] == f"{html}: page 1: not a MediaWiki dump (root element <html>)"
    empty = _write(tmp_path / "empty.xml.bz2", b"")
    (record,) = _read(empty).quarantine.to_pylist()
    assert record["reason"] == f"{empty}: page 1: empty file"


def test_the_format_is_chosen_by_name_only(tmp_path):
    assert format_of("enwiki-latest-pages-articles.xml.bz2") is None
    _write(tmp_path / "a.xml.bz2", _dump(PAGES))
    _write(tmp_path / "b.jsonl", b'{"text": "x"}\n', compress=False)
    planned = plan_inputs(str(tmp_path), format="wikipedia")
    assert [s.uri.rsplit("/", 1)[-1] for s in planned.shards] == ["a.xml.bz2"]


def test_batches_of_about_batch_bytes(tmp_path):
    pages = [_page(f"Article {i}", 100 + i, f"Text of article {i}. " * 40) for i in range(12)]
    uri = _write(tmp_path / "dump.xml.bz2", _dump(pages))
    shard = plan_inputs(uri, format="wikipedia").shards[0]
    batches = list(ShardReader(batch_bytes=2000).iter_batches(shard))
    assert len(batches) > 3
    ids = [i for b in batches for i in b.table.column("id").to_pylist()]
    assert ids == [str(100 + i) for i in range(12)]


def test_a_dump_is_read_over_http(tmp_path):
    _write(tmp_path / "dewiki.xml.bz2", _dump(PAGES))
    with serve({"/dewiki.xml.bz2": (tmp_path / "dewiki.xml.bz2").read_bytes()}) as server:
        url = server.url("/dewiki.xml.bz2")
        result = _read(url)
    assert result.table.column("id").to_pylist() == ["12", "14", "16"]
    assert set(result.table.column("source").to_pylist()) == {url}
    engine = result.table.column("text")[2].as_py()
    assert engine == "The Analytical Engine was a proposed computer."
    assert result.blank_lines == 3


def test_a_page_larger_than_a_read_chunk_is_read_whole(tmp_path):
    long_text = "word " * 500_000  # 2.5 MB of text from a few kilobytes of bz2
    pages = [_page("Long", 1, long_text), _page("Short", 2, ENGINE)]
    uri = _write(tmp_path / "dump.xml.bz2", _dump(pages))
    assert (tmp_path / "dump.xml.bz2").stat().st_size < 20_000
    texts = _read(uri).table.column("text").to_pylist()
    assert texts == [long_text.strip(), "The Analytical Engine was a proposed computer."]
