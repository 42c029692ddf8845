"""A threaded HTTP server on 127.0.0.1 for tests: byte ranges, ETag/If-Range, and faults
(failed statuses, connections dropped mid-body) on demand."""

from __future__ import annotations

import contextlib
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    """Serves `server.files`; honours single byte ranges when `server.ranges`; answers
    GETs with the statuses queued in `server.fail` first (None: serve normally); cuts the
    next `server.drops` bodies after `server.drop_after` bytes (the connection closes, the
    declared length unmet), then serves `server.replace_after_drop` instead when set. Sends
    an ETag and honours If-Range."""

    def log_message(self, *args) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().handle()

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        server = self.server
        asked = self.headers.get("Range")
        server.log.append((self.command, self.path, asked))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        status = server.fail.pop(0) if body and server.fail else None
        if status is not None:
            self.send_error(status)
            return
        start, end, status = 0, len(data), 200
        etag = f'"{zlib.crc32(data):08x}"'
        match = _RANGE.match(asked or "")
        if self.headers.get("If-Range") not in (None, etag):
            match = None  # the file changed since: the whole new file
        if match and server.ranges:
            start = int(match.group(1))
            end = min(len(data), int(match.group(2)) + 1) if match.group(2) else len(data)
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.send_header("ETag", etag)
        if server.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        payload = data[start:end]
        if server.drops and len(payload) > server.drop_after:
            server.drops -= 1
            payload = payload[: server.drop_after]
            if server.replace_after_drop is not None:
                server.files[self.path] = server.replace_after_drop
        self.wfile.write(payload)


@contextlib.contextmanager
def serve(files: dict[str, bytes], ranges: bool = True):
    """A threaded HTTP server on 127.0.0.1 serving `files` (path -> bytes); yields it with
    `url(path)`, `log` (method, path, Range header) and the fault knobs of `_Handler`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.files, server.ranges, server.log = dict(files), ranges, []
    server.fail, server.drops, server.drop_after = [], 0, 0
    server.replace_after_drop = None
    server.url = lambda path: f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
