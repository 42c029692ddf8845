"""WARC reader: one row per HTML response with its WARC metadata; non-HTML responses and
damaged records quarantined with their offset, other record types counted as skipped;
reading resumes after damage; local files and http(s) URLs read alike."""

from __future__ import annotations

import gzip
import zlib

import aiohttp
import pytest

from stages.io.errors import InputError
from stages.io.read import ShardReader
from stages.io.shards import plan_inputs, plan_shards
from tests.http_server import serve

ENGLISH = (
    "The history of the old town begins in the twelfth century, when farmers settled on the "
    "banks of the river and built the first houses there. Over the following years it grew "
    "quickly, because it was on the main road between the two largest markets of the region."
)
GERMAN = (
    "Die Geschichte der Altstadt beginnt im zwölften Jahrhundert, als sich Bauern am Ufer des "
    "Flusses niederließen und dort die ersten Häuser bauten. In den folgenden Jahren wuchs der "
    "Ort schnell, weil er an der wichtigen Straße zwischen den größten Märkten der Region lag."
)


def _page(title: str, text: str, lang: str = "en", charset: str = "utf-8") -> str:
    links = "".join(f'<li><a href="/p{i}">Link {i}</a></li>' for i in range(6))
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="{charset}">'
        f"<title>{title}</title></head><body><nav><ul>{links}</ul></nav><article>"
        f"<h1>{title}</h1><p>{text}</p><p>{text}</p></article>"
        '<footer><a href="/imprint">Imprint</a></footer></body></html>'
    )


def _http(body: bytes, content_type: str | None, extra: str = "") -> bytes:
    head = "HTTP/1.1 200 OK\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return (head + extra + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _record(kind: str, n: int, block: bytes, url: str = "", content_type: str = "") -> bytes:
    """One WARC/1.0 record, written by hand: headers, a blank line, the block, two CRLFs."""
    content_type = content_type or {
        "response": "application/http; msgtype=response",
        "request": "application/http; msgtype=request",
    }.get(kind, "application/warc-fields")
    head = (
        f"WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {url}\r\n"
        f"WARC-Date: 2024-03-0{n % 10}T12:00:00Z\r\n"
        f"WARC-Record-ID: <urn:uuid:{n:08d}-1111-2222-3333-444444444444>\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(block)}\r\n\r\n"
    )
    return head.encode() + block + b"\r\n\r\n"


def _id(n: int) -> str:
    return f"{n:08d}-1111-2222-3333-444444444444"


def _records() -> list[bytes]:
    """A small crawl: warcinfo, request, English page (UTF-8), metadata, German page
    (ISO-8859-1), a PDF, a request, a chunked and gzip-encoded English page."""
    english = _page("Old town", ENGLISH).encode()
    german = _page("Altstadt", GERMAN, "de", "iso-8859-1").encode("latin-1")
    encoded = gzip.compress(english)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(encoded), encoded)
    return [
        _record("warcinfo", 1, b"software: curate-tests\r\n"),
        _record("request", 2, b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", "http://a.example/"),
        _record("response", 3, _http(english, "text/html; charset=UTF-8"), "http://a.example/"),
        _record("metadata", 4, b"fetchTimeMs: 12\r\n", "http://a.example/"),
        _record("response", 5, _http(german, "text/html;charset=ISO-8859-1"), "http://b.example/"),
        _record(
            "response", 6, _http(b"%PDF-1.7\n...", "application/pdf"), "http://c.example/x.pdf"
        ),
        _record("request", 7, b"GET /z HTTP/1.1\r\n\r\n", "http://d.example/z"),
        _record(
            "response",
            8,
            _http(chunked, "text/html", "Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"),
            "http://d.example/z",
        ),
    ]


def _write(path, records: list[bytes], gz: bool) -> str:
    """A WARC file; `.warc.gz` compresses each record as its own gzip member."""
    data = b"".join(gzip.compress(r) for r in records) if gz else b"".join(records)
    path.write_bytes(data)
    return str(path)


def _read(uri: str, **kwargs):
    shards = plan_shards(uri, shard_size_mb=0.001)
    assert [(s.format, s.part) for s in shards] == [("warc", 0)]  # one shard, never split
    return ShardReader(**kwargs).read(shards[0])


@pytest.mark.parametrize("gz", [False, True], ids=["warc", "warc.gz"])
def test_html_responses_are_rows_with_their_warc_metadata(tmp_path, gz):
    records = _records()
    uri = _write(tmp_path / ("crawl.warc.gz" if gz else "crawl.warc"), records, gz)
    result = _read(uri)
    table = result.table
    assert table.column_names == [
        "id", "source", "_order", "url", "warc_id", "warc_date", "content_type", "charset", "html"
    ]  # fmt: skip
    assert table.column("id").to_pylist() == [_id(3), _id(5), _id(8)]
    assert table.column("warc_id").to_pylist() == [_id(3), _id(5), _id(8)]
    assert table.column("_order").to_pylist() == [3, 5, 8]  # record numbers in the file
    assert table.column("url").to_pylist() == [
        "http://a.example/", "http://b.example/", "http://d.example/z"
    ]  # fmt: skip
    assert table.column("warc_date").to_pylist()[0] == "2024-03-03T12:00:00Z"
    assert table.column("content_type").to_pylist() == ["text/html"] * 3
    assert table.column("charset").to_pylist() == ["utf-8", "iso-8859-1", None]
    html = table.column("html").to_pylist()
    assert html[0] == _page("Old town", ENGLISH).encode()
    assert html[1] == _page("Altstadt", GERMAN, "de", "iso-8859-1").encode("latin-1")
    assert html[2] == html[0]  # chunked transfer and gzip content encoding undone
    assert str(table.schema.field("html").type) == "binary"
    assert result.blank_lines == 4  # warcinfo, two requests, metadata: skipped, counted
    (bad,) = result.quarantine.to_pylist()
    assert bad["line"] == 6 and bad["rows"] == 1 and bad["raw"] is None
    assert bad["reason"].startswith(f"{uri}: line 6: offset {bad['offset']}: ")
    assert bad["reason"].endswith("http://c.example/x.pdf: not HTML: application/pdf")
    stored = open(uri, "rb").read()[bad["offset"] : bad["offset"] + bad["length"]]
    assert (gzip.decompress(stored) if gz else stored) == records[5]  # the record, whole


def test_a_corrupt_gzip_member_is_quarantined_and_reading_resumes(tmp_path):
    members = [gzip.compress(r) for r in _records()]
    start = sum(len(m) for m in members[:4])
    broken = members[4][:12] + b"\x00" * 12 + members[4][24:]
    (tmp_path / "crawl.warc.gz").write_bytes(b"".join(members[:4] + [broken] + members[5:]))
    result = _read(str(tmp_path / "crawl.warc.gz"))
    assert result.table.column("id").to_pylist() == [_id(3), _id(8)]
    damaged, pdf = result.quarantine.to_pylist()
    assert f"damaged record at offset {start} (" in damaged["reason"]
    assert (damaged["offset"], damaged["length"]) == (start, len(broken))
    assert damaged["raw"] == broken  # the bytes skipped, to inspect or rescue
    assert f"reading resumed at offset {start + len(broken)}" in damaged["reason"]
    assert pdf["reason"].endswith("not HTML: application/pdf")


def test_garbage_between_records_is_quarantined_and_reading_resumes(tmp_path):
    records = _records()
    junk = b"this is not a WARC record\r\n\r\n"
    start = sum(len(r) for r in records[:3])
    uri = _write(tmp_path / "crawl.warc", records[:3] + [junk] + records[3:], gz=False)
    result = _read(uri)
    assert result.table.column("id").to_pylist() == [_id(3), _id(5), _id(8)]
    damaged = result.quarantine.to_pylist()[0]
    assert f"line 4: damaged record at offset {start} (" in damaged["reason"]
    assert damaged["raw"] == junk and damaged["length"] == len(junk)
    assert result.table.column("_order").to_pylist() == [3, 6, 9]  # the junk counts as one


@pytest.mark.parametrize("gz", [False, True], ids=["warc", "warc.gz"])
def test_a_truncated_file_keeps_the_records_before_the_cut(tmp_path, gz):
    data = open(_write(tmp_path / "whole", _records(), gz), "rb").read()
    path = tmp_path / ("cut.warc.gz" if gz else "cut.warc")
    path.write_bytes(data[:-60])
    result = _read(str(path))
    assert result.table.column("id").to_pylist() == [_id(3), _id(5)]
    pdf, damaged = result.quarantine.to_pylist()
    assert damaged["line"] == 8 and "damaged record at offset" in damaged["reason"]
    assert damaged["offset"] + damaged["length"] == len(data) - 60
    assert damaged["reason"].endswith("bytes of the file skipped")


def test_a_record_without_content_length_is_damaged_and_the_next_one_read(tmp_path):
    records = _records()
    records[4] = records[4].replace(b"Content-Length:", b"Content-Size:", 1)
    result = _read(_write(tmp_path / "crawl.warc", records, gz=False))
    assert result.table.column("id").to_pylist() == [_id(3), _id(8)]
    assert "(no Content-Length in the WARC header)" in result.quarantine.column("reason")[0].as_py()


def test_responses_that_are_not_html_or_not_usable_are_quarantined_with_a_reason(tmp_path):
    page = _page("Old town", ENGLISH).encode()
    records = [
        _record("response", 1, _http(page, None), "http://a/sniffed"),
        _record("response", 2, _http(b'{"a": 1}', None), "http://a/untyped"),
        _record("response", 3, _http(b"{}", "application/json"), "http://a/json"),
        _record("response", 4, _http(b"", "text/html"), "http://a/empty"),
        _record("response", 5, b"no status line\r\n\r\nbody", "http://a/nohttp"),
        _record("response", 6, _http(b"not gzip", "text/html", "Content-Encoding: gzip\r\n"), "x"),
        _record("response", 7, _http(zlib.compress(page), "text/html", "Content-Encoding: br\r\n")),
        _record(
            "response", 8, _http(zlib.compress(page), "text/html", "Content-Encoding: deflate\r\n")
        ),
    ]
    result = _read(_write(tmp_path / "odd.warc", records, gz=False))
    assert result.table.column("id").to_pylist() == [_id(1), _id(8)]
    assert result.table.column("html").to_pylist() == [page, page]
    reasons = [r.split(": ", 3)[-1] for r in result.quarantine.column("reason").to_pylist()]
    assert reasons == [
        "http://a/untyped: not HTML: no Content-Type",
        "http://a/json: not HTML: application/json",
        "http://a/empty: empty HTML body",
        "http://a/nohttp: not an HTTP response (no status line)",
        "x: content encoding 'gzip' cannot be undone: Error -3 while decompressing data: "
        "incorrect header check",
        "no WARC-Target-URI: content encoding 'br' is not supported",
    ]
    assert result.quarantine.column("line").to_pylist() == [2, 3, 4, 5, 6, 7]


def test_empty_and_foreign_files_are_one_quarantine_record(tmp_path):
    (tmp_path / "empty.warc").write_bytes(b"")
    (tmp_path / "text.warc.gz").write_bytes(gzip.compress(b"just some text\n"))
    empty = _read(str(tmp_path / "empty.warc"))
    assert empty.table.num_rows == 0
    assert empty.quarantine.column("reason").to_pylist() == [
        f"{tmp_path}/empty.warc: line 0: empty file (no WARC record)"
    ]
    foreign = _read(str(tmp_path / "text.warc.gz"))
    (reason,) = foreign.quarantine.column("reason").to_pylist()
    assert "line 1: damaged record at offset 0" in reason and foreign.table.num_rows == 0


def test_strict_mode_raises_on_the_first_quarantined_record(tmp_path):
    uri = _write(tmp_path / "crawl.warc.gz", _records(), gz=True)
    with pytest.raises(InputError, match="not HTML: application/pdf"):
        _read(uri, strict=True)


def test_batches_and_columns(tmp_path):
    uri = _write(tmp_path / "crawl.warc.gz", _records(), gz=True)
    shard = plan_shards(uri)[0]
    parts = list(ShardReader(batch_bytes=1).iter_batches(shard))
    assert [p.table.num_rows for p in parts] == [1, 1, 1, 0]
    assert sum(p.blank_lines for p in parts) == 4
    assert sum(p.quarantine.num_rows for p in parts) == 1
    narrow = ShardReader(columns=["url"]).read(shard).table
    assert narrow.column_names == ["id", "source", "_order", "url", "html"]


def test_folders_pick_warc_files_by_extension(tmp_path):
    _write(tmp_path / "b.warc.gz", _records(), gz=True)
    _write(tmp_path / "a.warc", _records(), gz=False)
    (tmp_path / "notes.txt").write_text("not an input")
    planned = plan_inputs(str(tmp_path))
    assert [(s.uri.rsplit("/", 1)[-1], s.format) for s in planned.shards] == [
        ("a.warc", "warc"),
        ("b.warc.gz", "warc"),
    ]
    assert [s["path"].rsplit("/", 1)[-1] for s in planned.skipped] == ["notes.txt"]


def _damaged_crawl(tmp_path) -> str:
    """The crawl as `.warc.gz` with the German page's gzip member corrupted."""
    members = [gzip.compress(r) for r in _records()]
    members[4] = members[4][:12] + b"\x00" * 12 + members[4][24:]
    (tmp_path / "crawl.warc.gz").write_bytes(b"".join(members))
    return str(tmp_path / "crawl.warc.gz")


def test_an_http_url_reads_like_a_local_file(tmp_path):
    uri = _damaged_crawl(tmp_path)
    local = _read(uri)
    with serve({"/crawl-data/crawl.warc.gz": open(uri, "rb").read()}) as server:
        url = server.url("/crawl-data/crawl.warc.gz")
        planned = plan_inputs(url)
        assert [(s.uri, s.format) for s in planned.shards] == [(url, "warc")]
        remote = ShardReader().read(planned.shards[0])
    assert remote.table.column("id").to_pylist() == [_id(3), _id(8)]
    assert remote.table.drop_columns(["source"]).equals(local.table.drop_columns(["source"]))
    assert set(remote.table.column("source").to_pylist()) == {url}
    for name in ("line", "raw", "offset", "length"):  # resumed after the damage alike
        assert remote.quarantine.column(name).equals(local.quarantine.column(name))


def test_an_s3_url_reads_like_a_local_file(tmp_path, s3_bucket):
    import s3fs

    uri = _damaged_crawl(tmp_path)
    s3fs.S3FileSystem(use_listings_cache=False).put_file(uri, f"{s3_bucket}/cc/crawl.warc.gz")
    remote = _read(f"s3://{s3_bucket}/cc/crawl.warc.gz")
    local = _read(uri)
    assert remote.table.drop_columns(["source"]).equals(local.table.drop_columns(["source"]))
    assert remote.quarantine.column("raw").equals(local.quarantine.column("raw"))


def test_a_network_failure_is_raised_not_taken_for_damage(tmp_path):
    uri = _write(tmp_path / "crawl.warc.gz", _records(), gz=True)
    with serve({"/crawl.warc.gz": open(uri, "rb").read()}) as server:
        shard = plan_shards(server.url("/crawl.warc.gz"))[0]
        server.drops, server.drop_after = 100, 500  # every body cut after 500 bytes
        with pytest.raises(aiohttp.ClientError, match="not enough data|Not enough data"):
            ShardReader().read(shard)  # the flow retries the shard; nothing is quarantined


@pytest.mark.parametrize("extractor", ["trafilatura", "justext", "resiliparse"])
def test_a_crawl_served_over_http_becomes_text_with_each_extractor(tmp_path, extractor):
    from stages.text.extract import HtmlExtractor

    uri = _write(tmp_path / "crawl.warc.gz", _records(), gz=True)
    with serve({"/crawl.warc.gz": open(uri, "rb").read()}) as server:
        shard = plan_inputs(server.url("/crawl.warc.gz")).shards[0]
        table = ShardReader().read(shard).table
    out = HtmlExtractor(extractor=extractor).process(table)
    assert out.column("id").to_pylist() == [_id(3), _id(5), _id(8)]
    assert out.column("language").to_pylist() == ["en", "de", "en"]
    assert "html" not in out.column_names and "url" in out.column_names
    english, german, decoded = out.column("text").to_pylist()
    assert ENGLISH in english and GERMAN in german  # ISO-8859-1 decoded: "zwölften"
    assert decoded == english
    assert not any("Link 3" in t or "Imprint" in t for t in (english, german))
