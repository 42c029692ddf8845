"""Resumable HTTP downloads: `download` one URL, `download_all` many (Common Crawl's WARC
files, before a run reads them).

Two ways to read Common Crawl, both with format `warc`:

- read the `https://data.commoncrawl.org/crawl-data/...warc.gz` URLs directly as inputs:
  the reader streams each file over fsspec's HTTP filesystem and nothing is stored, but a
  shard that fails part-way is read again from its start when the flow retries it;
- or fetch them first with `download_all(urls, folder)` (a local folder or `s3://...`) and
  read the folder: a transfer that breaks resumes where it stopped (an HTTP Range request),
  a file already downloaded is skipped, and the run reads from storage you control.

A download is written to `<dest>.part` (locally; for an object store, to a local staging
file) and becomes `<dest>` only when complete: its size matches the server's
Content-Length (or Content-Range total), so an existing `<dest>` is always whole.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin, urlsplit

from stages.io.fs import filesystem, is_local, join

CHUNK_BYTES = 1 << 20
COMMON_CRAWL = "https://data.commoncrawl.org/"
USER_AGENT = "curate-downloader"
Progress = Callable[[str, int, "int | None"], None]

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_RETRY_STATUS = frozenset([408, 425, 429, 500, 502, 503, 504])


class DownloadError(OSError):
    """A download that did not complete after its retries (the partial file is kept)."""


class _SizeMismatch(OSError):
    """The bytes received do not add up to the size the server announced."""


def download(
    url: str,
    dest: str,
    storage_options: dict | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    retries: int = 3,
    timeout: float = 60.0,
    progress: Progress | None = None,
    backoff: float = 1.0,
) -> str:
    """Download `url` (http or https) to `dest` (a local path or an fsspec URL such as
    `s3://bucket/key`) and return `dest`.

    - An existing `dest` is complete (only whole files are renamed into place) and is not
      fetched again.
    - The bytes go to `dest + ".part"`; a later call (or a retry) resumes a partial file
      with a `Range: bytes=N-` request, appending when the server answers 206 from byte N,
      and starting over when it answers 200 (it ignores ranges). Within a call, a resumed
      request carries `If-Range` with the first response's ETag, so a file replaced on the
      server meanwhile comes whole; a `.part` left by an earlier call is assumed to be of
      the same file (Common Crawl's never change). A remote `dest` is staged in a local
      `.part` file under the temporary folder, then uploaded in one put.
    - `retries`: attempts after the first that add no byte (a broken connection that
      delivered some bytes does not use one up), waiting `backoff`, then twice as long...
      A 404 raises FileNotFoundError and other 4xx errors raise at once; 5xx, 408, 429,
      timeouts and broken connections are retried.
    - The size is checked against Content-Length (or the Content-Range total) when the
      server sends one.
    - `progress(url, bytes_done, bytes_total_or_None)` is called after every chunk.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"{url}: not an http(s) URL")
    fs, path = filesystem(dest, storage_options)
    if fs.exists(path):
        return dest
    if is_local(fs):
        part = path + ".part"
        os.makedirs(os.path.dirname(os.path.abspath(part)), exist_ok=True)
        _fetch(url, part, chunk_bytes, retries, timeout, progress, backoff)
        os.replace(part, path)
        return dest
    part = _staging_path(dest)
    _fetch(url, part, chunk_bytes, retries, timeout, progress, backoff)
    fs.put_file(part, path)
    os.remove(part)
    return dest


def download_all(
    urls: Sequence[str],
    dest_dir: str,
    storage_options: dict | None = None,
    workers: int = 4,
    progress: Progress | None = None,
    base_url: str | None = None,
    **kwargs,
) -> list[str]:
    """Download every URL into `dest_dir` under its file name, `workers` at a time; returns
    the destinations in the order of `urls`. Files already there are skipped, so a second
    call finishes what a first one left. `base_url` resolves relative paths (the lines of
    Common Crawl's `warc.paths.gz` with `base_url=COMMON_CRAWL`). `progress` is called from
    the worker threads. Other keyword arguments go to `download`. The first failure is
    raised once the other downloads have finished."""
    resolved = []
    for url in urls:
        if "://" not in url:
            if base_url is None:
                raise ValueError(f"{url}: a relative path needs base_url (e.g. COMMON_CRAWL)")
            url = urljoin(base_url.rstrip("/") + "/", url.lstrip("/"))
        resolved.append(url)
    dests, seen = [], {}
    for url in resolved:
        name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        if not name:
            raise ValueError(f"{url}: no file name in the URL")
        if name in seen:
            raise ValueError(f"{seen[name]} and {url}: both would be saved as {name!r}")
        seen[name] = url
        dests.append(join(dest_dir, name))
    errors: list[BaseException] = []

    def one(pair: tuple[str, str]) -> str:
        try:
            return download(pair[0], pair[1], storage_options, progress=progress, **kwargs)
        except Exception as err:
            errors.append(err)
            return ""

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        done = list(pool.map(one, zip(resolved, dests, strict=True)))
    if errors:
        raise errors[0]
    return done


def _staging_path(dest: str) -> str:
    """A local `.part` file for a remote destination, the same for the same `dest` (so a
    later call resumes it)."""
    folder = os.path.join(tempfile.gettempdir(), "curate-downloads")
    os.makedirs(folder, exist_ok=True)
    digest = hashlib.sha256(dest.encode()).hexdigest()[:16]
    name = dest.rstrip("/").rsplit("/", 1)[-1]
    return os.path.join(folder, f"{digest}-{name}.part")


def _fetch(
    url: str,
    part: str,
    chunk_bytes: int,
    retries: int,
    timeout: float,
    progress: Progress | None,
    backoff: float,
) -> None:
    """Complete the local file `part` from `url`, resuming what it holds."""
    transfer = _Transfer(url, part, chunk_bytes, timeout, progress)
    failures = 0
    while True:
        before = os.path.getsize(part) if os.path.exists(part) else 0
        try:
            why = transfer.attempt(before)
            if why is None:
                return
        except urllib.error.HTTPError as err:
            if err.code == 404:
                raise FileNotFoundError(f"{url}: 404 Not Found") from None
            if err.code not in _RETRY_STATUS:
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
            why = f"HTTP {err.code} {err.reason}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            why = str(err) or type(err).__name__
        after = os.path.getsize(part) if os.path.exists(part) else 0
        failures = 0 if after > before else failures + 1
        if failures > retries:
            raise DownloadError(
                f"{url}: {why} ({failures} attempts in a row without progress); {after} bytes "
                f"kept in {part}, a later call resumes from there"
            )
        if failures:
            time.sleep(backoff * 2 ** (failures - 1))


class _Transfer:
    """The requests of one download. After the first response, a resumed request carries
    `If-Range` with its ETag (or Last-Modified), so a file that changed on the server in
    between comes whole (200) instead of as a range of the new file."""

    def __init__(self, url, part, chunk_bytes, timeout, progress):
        self.url, self.part = url, part
        self.chunk_bytes, self.timeout, self.progress = chunk_bytes, timeout, progress
        self.validator: str | None = None

    def attempt(self, have: int) -> str | None:
        """One request: None when `part` is complete, else why it is not (an emptied
        `part` starts over). Raises on HTTP and connection errors (what arrived is kept)."""
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            if self.validator:
                headers["If-Range"] = self.validator
        request = urllib.request.Request(self.url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:  # nothing after byte `have`: complete, or too long
                total = _range_total(err.headers.get("Content-Range"))
                if total == have:
                    return None
                os.remove(self.part)
                return f"the partial file holds {have} bytes, the server has {total}; starting over"
            raise
        with response:
            self.validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            if response.status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range") or "")
                if match is None or int(match.group(1)) != have:
                    os.remove(self.part)
                    return "the server sent another range than asked; starting over"
                total = int(match.group(3)) if match.group(3) != "*" else None
                mode = "ab"
            else:  # 200: the whole file (the server ignores ranges, or the file changed)
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                have, mode = 0, "wb"
            with open(self.part, mode) as out:
                while True:
                    chunk = response.read(self.chunk_bytes)
                    if not chunk:
                        break
                    out.write(chunk)
                    have += len(chunk)
                    if self.progress is not None:
                        self.progress(self.url, have, total)
        if total is not None and have != total:
            if have > total:
                os.remove(self.part)
                raise _SizeMismatch(f"got {have} bytes, more than the {total} announced")
            raise _SizeMismatch(f"the connection closed after {have} of {total} bytes")
        return None


def _range_total(content_range: str | None) -> int | None:
    """The total of a `bytes */N` (or `bytes a-b/N`) Content-Range header."""
    if not content_range:
        return None
    total = content_range.rsplit("/", 1)[-1].strip()
    return int(total) if total.isdigit() else None
