"""Resumable downloads: a broken transfer resumes with a Range request, a server that
ignores ranges restarts it, only complete files are renamed into place, and persistent
failures raise with the partial file kept. Served by a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import os

import pytest

from stages.io.download import DownloadError, download, download_all
from tests.http_server import serve

DATA = bytes(range(256)) * 1200  # 307,200 bytes


def _gets(server) -> list:
    return [(path, asked) for method, path, asked in server.log if method == "GET"]


def test_download_writes_the_whole_file_and_reports_progress(tmp_path):
    seen = []
    with serve({"/a.warc.gz": DATA}) as server:
        dest = str(tmp_path / "out" / "a.warc.gz")
        got = download(
            server.url("/a.warc.gz"), dest, chunk_bytes=64 << 10, progress=lambda *a: seen.append(a)
        )
    assert got == dest
    assert open(dest, "rb").read() == DATA
    assert not os.path.exists(dest + ".part")
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and done[-1] == len(DATA) and len(done) >= 5
    assert {t for _, _, t in seen} == {len(DATA)}


def test_a_dropped_connection_resumes_with_a_range_request(tmp_path):
    with serve({"/a.warc.gz": DATA}) as server:
        server.drops, server.drop_after = 1, 100_000
        dest = str(tmp_path / "a.warc.gz")
        download(server.url("/a.warc.gz"), dest, backoff=0)
    assert open(dest, "rb").read() == DATA
    assert _gets(server) == [("/a.warc.gz", None), ("/a.warc.gz", "bytes=100000-")]


def test_a_partial_file_from_an_earlier_run_is_resumed(tmp_path):
    dest = str(tmp_path / "a.warc.gz")
    with open(dest + ".part", "wb") as f:
        f.write(DATA[:50_000])
    with serve({"/a.warc.gz": DATA}) as server:
        download(server.url("/a.warc.gz"), dest)
    assert open(dest, "rb").read() == DATA
    assert _gets(server) == [("/a.warc.gz", "bytes=50000-")]


def test_a_file_that_changed_on_the_server_is_fetched_whole_again(tmp_path):
    new = DATA[::-1]
    with serve({"/a.warc.gz": DATA}) as server:
        server.drops, server.drop_after, server.replace_after_drop = 1, 100_000, new
        dest = str(tmp_path / "a.warc.gz")
        download(server.url("/a.warc.gz"), dest, backoff=0)
    assert open(dest, "rb").read() == new  # not the old file's start and the new one's end
    assert [asked for _, asked in _gets(server)] == [None, "bytes=100000-"]


def test_a_server_that_ignores_ranges_restarts_the_file(tmp_path):
    dest = str(tmp_path / "a.warc.gz")
    with open(dest + ".part", "wb") as f:
        f.write(b"x" * 70_000)  # not even the right bytes: they must all be replaced
    with serve({"/a.warc.gz": DATA}, ranges=False) as server:
        download(server.url("/a.warc.gz"), dest)
    assert open(dest, "rb").read() == DATA


def test_a_part_file_already_complete_is_finished_on_416(tmp_path):
    dest = str(tmp_path / "a.warc.gz")
    with open(dest + ".part", "wb") as f:
        f.write(DATA)
    with serve({"/a.warc.gz": DATA}) as server:
        download(server.url("/a.warc.gz"), dest)
    assert open(dest, "rb").read() == DATA
    assert not os.path.exists(dest + ".part")


def test_an_existing_destination_is_not_fetched_again(tmp_path):
    dest = tmp_path / "a.warc.gz"
    dest.write_bytes(b"done before")
    with serve({"/a.warc.gz": DATA}) as server:
        download(server.url("/a.warc.gz"), str(dest))
    assert dest.read_bytes() == b"done before" and server.log == []


def test_errors_that_persist_raise_and_keep_the_partial_file(tmp_path):
    dest = str(tmp_path / "a.warc.gz")
    with serve({"/a.warc.gz": DATA}) as server:
        server.drops, server.drop_after = 1, 10_000
        server.fail = [None] + [503] * 10  # a cut transfer, then the server fails
        with pytest.raises(DownloadError, match=r"HTTP 503.*10000 bytes kept in .*\.part"):
            download(server.url("/a.warc.gz"), dest, retries=2, backoff=0)
        assert len(_gets(server)) == 4  # the cut one made progress: 3 more without
        server.fail = []
        with pytest.raises(FileNotFoundError, match="404"):
            download(server.url("/missing.warc.gz"), str(tmp_path / "m.warc.gz"), backoff=0)
        assert not os.path.exists(dest)
        download(server.url("/a.warc.gz"), dest, backoff=0)  # a later call resumes
    assert open(dest, "rb").read() == DATA


def test_a_short_body_is_retried_until_the_announced_size_arrives(tmp_path):
    dest = str(tmp_path / "a.warc.gz")
    with serve({"/a.warc.gz": DATA}) as server:
        server.drops, server.drop_after = 3, 40_000
        download(server.url("/a.warc.gz"), dest, retries=0, backoff=0)
    assert open(dest, "rb").read() == DATA
    ranges = [asked for _, asked in _gets(server)]
    assert ranges == [None, "bytes=40000-", "bytes=80000-", "bytes=120000-"]


def test_download_all_names_files_after_their_urls_and_skips_finished_ones(tmp_path):
    files = {f"/crawl-data/s{i}/warc/f{i}.warc.gz": DATA[i:] for i in range(3)}
    (tmp_path / "f1.warc.gz").write_bytes(b"already here")
    seen = set()
    with serve(files) as server:
        base = server.url("/")
        paths = [p.lstrip("/") for p in files]
        got = download_all(
            paths, str(tmp_path), base_url=base, workers=2, progress=lambda u, d, t: seen.add(u)
        )
    assert got == [str(tmp_path / f"f{i}.warc.gz") for i in range(3)]
    assert open(got[0], "rb").read() == DATA and open(got[2], "rb").read() == DATA[2:]
    assert open(got[1], "rb").read() == b"already here"
    assert seen == {
        server.url(p) for p in ["/crawl-data/s0/warc/f0.warc.gz", "/crawl-data/s2/warc/f2.warc.gz"]
    }


def test_download_all_refuses_two_urls_with_one_file_name(tmp_path):
    with pytest.raises(ValueError, match="both would be saved as 'x.warc.gz'"):
        download_all(["http://h/a/x.warc.gz", "http://h/b/x.warc.gz"], str(tmp_path))
    with pytest.raises(ValueError, match="needs base_url"):
        download_all(["crawl-data/x.warc.gz"], str(tmp_path))
    with pytest.raises(ValueError, match="not an http"):
        download("ftp://h/x.warc.gz", str(tmp_path / "x.warc.gz"))


def test_download_to_object_storage_uploads_the_complete_file(s3_bucket):
    import s3fs

    with serve({"/a.warc.gz": DATA}) as server:
        server.drops, server.drop_after = 1, 100_000
        dest = f"s3://{s3_bucket}/cc/a.warc.gz"
        assert download(server.url("/a.warc.gz"), dest, backoff=0) == dest
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    assert fs.cat_file(f"{s3_bucket}/cc/a.warc.gz") == DATA
    assert fs.ls(f"{s3_bucket}/cc") == [f"{s3_bucket}/cc/a.warc.gz"]
