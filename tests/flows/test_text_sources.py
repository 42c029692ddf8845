"""`curate text --source warc|wikipedia|arxiv`: raw sources served over HTTP on 127.0.0.1
become extracted, filtered, deduplicated Parquet."""

from __future__ import annotations

import bz2
import gzip
import json

import pyarrow.parquet as pq

from flows.text import TextParams, run_text
from stages.io.commit import dataset_files, read_manifest
from tests.flows.test_cli import _curate
from tests.http_server import serve
from tests.stages.io import test_format_arxiv as arxiv
from tests.stages.io import test_format_warc as warc
from tests.stages.io import test_format_wikipedia as wiki


def _rows(output: str) -> list[dict]:
    rows = []
    for path in dataset_files(output):
        rows += pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda r: r["id"])


def _crawl() -> bytes:
    """The WARC test crawl (English, German, a PDF, a gzip-encoded copy of the English
    page), each record its own gzip member, with one more exact copy of the English page."""
    records = warc._records()
    copy = records[2].replace(b"00000003-", b"00000009-")
    return b"".join(gzip.compress(r) for r in [*records, copy])


def test_warc_over_http_through_the_cli(tmp_path):
    with serve({"/crawl-data/CC-MAIN-1.warc.gz": _crawl()}) as server:
        url = server.url("/crawl-data/CC-MAIN-1.warc.gz")
        result = _curate(
            "text", "--source", "cc", "--input", url, "--output", "out", "--filters", "none",
            "--json", cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)["report"]
    rows = _rows(str(tmp_path / "out"))
    # English pages kept, the German one removed by language, the copies by exact dedup
    assert [r["id"] for r in rows] == [warc._id(3)]
    assert warc.ENGLISH in rows[0]["text"] and "Imprint" not in rows[0]["text"]
    assert rows[0]["url"] == "http://a.example/" and rows[0]["warc_date"]
    assert rows[0]["language"] == "en" and "html" not in rows[0]
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["LanguageFilter"]["removed"] == 1
    assert stages["ExactDedup"]["removed"] == 2
    assert report["rows_quarantined"] == 1  # the PDF, with its reason
    manifest = read_manifest(str(tmp_path / "out"))
    assert manifest["quarantined_rows"] == 1


def test_a_wikipedia_dump_over_http(tmp_path):
    dump = bz2.compress(wiki._dump(wiki.PAGES, lang="en"))
    with serve({"/enwiki-pages-articles.xml.bz2": dump}) as server:
        params = TextParams(
            input=server.url("/enwiki-pages-articles.xml.bz2"),
            output=str(tmp_path / "out"),
            source="wikipedia",
            filters="none",
            languages=[],
        )
        summary = run_text(params)
    rows = _rows(str(tmp_path / "out"))
    assert [r["title"] for r in rows] == ["Ada Lovelace", "Charles Babbage", "Analytical Engine"]
    babbage = rows[1]["text"]
    assert "difference engine" in babbage and "Citation needed" not in babbage
    assert "[[" not in babbage and "{{" not in babbage
    assert summary["report"]["rows_written"] == 3


def test_an_arxiv_tarball_over_http(tmp_path):
    tarball = arxiv._tar(arxiv.PAPERS)
    with serve({"/arXiv_src_2301_001.tar": tarball}) as server:
        params = TextParams(
            input=server.url("/arXiv_src_2301_001.tar"),
            output=str(tmp_path / "out"),
            source="arxiv",
            filters="none",
            languages=[],
        )
        summary = run_text(params)
    rows = _rows(str(tmp_path / "out"))
    assert [r["id"] for r in rows] == ["2301.00001", "2301.00002"]
    texts = [r["text"] for r in rows]
    assert not any("\\newcommand" in t or "% really" in t for t in texts)  # macros, comments
    assert "Prices rose by 50\\%" in texts[0]
    assert summary["report"]["rows_quarantined"] == 1  # the malformed paper archive


def test_a_warc_file_without_source_warc_is_refused_before_any_work(tmp_path):
    import pytest

    (tmp_path / "crawl.warc.gz").write_bytes(_crawl())
    params = TextParams(input=str(tmp_path / "crawl.warc.gz"), output=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="is a WARC file: add --source warc"):
        run_text(params)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))


def test_classifier_options_name_the_kinds():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="KIND one of"):
        TextParams(input="x", output="y", classifiers=["toxicity=models/t"])
    params = TextParams(input="x", output="y", classifiers=["fineweb-edu=models/edu"])
    assert params.classifiers == ["fineweb-edu=models/edu"]
