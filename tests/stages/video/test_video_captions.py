"""Clip captions come from an OpenAI-compatible chat completions endpoint, one caption per
window of frames; a server failure or a broken clip leaves a null caption with its reason,
never a missing row.

The endpoint is a stub on 127.0.0.1 that checks each request's shape and answers with the
size and count of the frames it was sent ("128x96 x6"), so a caption shows which clip and
window it came from. Clips are told apart by frame size.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest
from PIL import Image
from videos import Span, write_video

from stages.video.captions import (
    PROMPTS,
    CaptionGenerationStage,
    caption_windows,
    window_frame_indices,
)

MODEL = "stub-vlm"


@dataclass
class Seen:
    """One request as the stub saw it."""

    size: tuple[int, int]  # frame width, height
    images: int
    text: str
    authorization: str | None


@dataclass
class Reply:
    status: int = 200
    body: bytes | None = None  # None: a caption naming the frames' size and count
    delay: float = 0.0


@dataclass
class Stub:
    url: str = ""
    answer: Callable[[Seen, int], Reply] = lambda seen, attempt: Reply()
    seen: list[Seen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)  # per frame size
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _check(body: dict) -> Seen:
    """The request's frames and prompt; AssertionError when its shape is wrong."""
    assert body.get("model") == MODEL, f"model {body.get('model')!r}"
    assert isinstance(body.get("max_tokens"), int)
    messages = body.get("messages")
    assert isinstance(messages, list) and len(messages) == 1, "one message"
    assert messages[0]["role"] == "user"
    parts = messages[0]["content"]
    texts = [p["text"] for p in parts if p.get("type") == "text"]
    urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
    assert len(texts) == 1 and len(texts) + len(urls) == len(parts), "images and one text"
    sizes = set()
    for url in urls:
        prefix = "data:image/jpeg;base64,"
        assert url.startswith(prefix), url[:40]
        image = Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :], validate=True)))
        assert image.format == "JPEG"
        sizes.add(image.size)
    assert len(sizes) == 1, f"frames of one size, got {sizes}"
    return Seen(sizes.pop(), len(urls), texts[0], None)


@pytest.fixture
def stub():
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                return self._send(404, b'{"error": "not found"}')
            try:
                seen = _check(body)
            except AssertionError as err:
                with state.lock:
                    state.problems.append(str(err))
                return self._send(400, json.dumps({"error": str(err)}).encode())
            seen.authorization = self.headers.get("Authorization")
            with state.lock:
                state.seen.append(seen)
                state.attempts[seen.size] += 1
                attempt = state.attempts[seen.size]
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            reply = state.answer(seen, attempt)
            time.sleep(reply.delay)
            with state.lock:
                state.in_flight -= 1
            text = f"{seen.size[0]}x{seen.size[1]} x{seen.images}"
            answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
            self._send(reply.status, reply.body or json.dumps(answer).encode())

        def _send(self, status: int, payload: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up waiting (the timeout tests)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()
    assert state.problems == [], "requests of the wrong shape"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    """3 s clips of 24 fps (72 frames) in three frame sizes, a 4 s one (96 frames) and
    one of 3 frames."""
    folder = tmp_path_factory.mktemp("clips")
    made = {
        "160x120": write_video(folder / "a.mp4", [Span(3.0, 0)], 24, (160, 120)),
        "96x64": write_video(folder / "b.mp4", [Span(3.0, 1)], 24, (96, 64)),
        "112x80": write_video(folder / "c.mp4", [Span(3.0, 2)], 24, (112, 80)),
        "long": write_video(folder / "d.mp4", [Span(2.0, 3), Span(2.0, 4)], 24, (64, 48)),
        "3 frames": write_video(folder / "e.mp4", [Span(0.125, 5)], 24, (64, 48)),
    }
    return {name: path.read_bytes() for name, path in made.items()}


def _stage(stub: Stub, **kwargs) -> CaptionGenerationStage:
    options = dict(endpoint=stub.url, model=MODEL, retry_backoff_s=0.01)
    return CaptionGenerationStage(**{**options, **kwargs})


def _table(*clips: bytes | None) -> pa.Table:
    ids = [f"clip-{i}" for i in range(len(clips))]
    return pa.table({"id": ids, "clip": pa.array(clips, pa.binary()), "fps": [24.0] * len(ids)})


def _rows(out: pa.Table) -> list[dict]:
    return out.drop_columns(["clip"]).to_pylist()


def test_each_clip_gets_a_caption_of_its_frames_resized_to_the_max_side(stub, clips):
    table = _table(clips["160x120"], clips["96x64"])
    out = _stage(stub, max_frame_side=128).process(table)
    assert out.column("id").to_pylist() == ["clip-0", "clip-1"]
    assert out.column("fps").to_pylist() == [24.0, 24.0]
    # 3 s at sampling_fps 2: 6 frames; 160x120 is scaled to 128x96, 96x64 kept.
    assert _rows(out) == [
        {
            "id": "clip-0",
            "fps": 24.0,
            "caption": "128x96 x6",
            "captions": ["128x96 x6"],
            "caption_windows": [{"start_frame": 0, "end_frame": 71}],
            "caption_error": None,
        },
        {
            "id": "clip-1",
            "fps": 24.0,
            "caption": "96x64 x6",
            "captions": ["96x64 x6"],
            "caption_windows": [{"start_frame": 0, "end_frame": 71}],
            "caption_error": None,
        },
    ]
    assert len(stub.seen) == 2
    assert all(PROMPTS["default"] in seen.text for seen in stub.seen)


def test_the_prompt_variant_or_text_is_sent_and_an_unknown_variant_is_refused(stub, clips):
    _stage(stub, prompt_variant="av").process(_table(clips["96x64"]))
    _stage(stub, prompt_text="Say what moves.").process(_table(clips["96x64"]))
    assert PROMPTS["av"] in stub.seen[0].text
    assert "Say what moves." in stub.seen[1].text
    with pytest.raises(ValueError, match="prompt_variant"):
        CaptionGenerationStage(prompt_variant="cats")


def test_the_api_key_comes_from_the_environment_or_the_argument(stub, clips, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("CURATE_CAPTION_API_KEY", raising=False)
    _stage(stub).process(_table(clips["96x64"]))
    monkeypatch.setenv("CURATE_CAPTION_API_KEY", "from-env")
    _stage(stub).process(_table(clips["96x64"]))
    _stage(stub, api_key="given").process(_table(clips["96x64"]))
    assert [s.authorization for s in stub.seen] == [None, "Bearer from-env", "Bearer given"]


def test_windows_follow_nemo_curators_rule():
    assert caption_windows(3, 256, 128) == []  # fewer than 4 frames
    assert caption_windows(72, 256, 128) == [(0, 71)]
    assert caption_windows(700, 256, 128) == [(0, 255), (256, 511), (512, 699)]
    # A remainder under the threshold joins the last full window.
    assert caption_windows(600, 256, 128) == [(0, 255), (256, 599)]
    # About sampling_fps frames a second, evenly spaced, at least 4, an even count.
    assert window_frame_indices(0, 71, video_fps=24, sampling_fps=2) == [0, 14, 28, 43, 57, 71]
    assert window_frame_indices(0, 23, video_fps=24, sampling_fps=2) == [0, 8, 15, 23]
    assert len(window_frame_indices(0, 239, video_fps=24, sampling_fps=2)) == 20


def test_a_long_clip_gets_one_caption_per_window(stub, clips):
    # 96 frames in windows of 40: two full windows and a remainder of 16.
    kept = _stage(stub, window_size=40, remainder_threshold=10).process(_table(clips["long"]))
    row = _rows(kept)[0]
    assert row["caption_windows"] == [
        {"start_frame": 0, "end_frame": 39},
        {"start_frame": 40, "end_frame": 79},
        {"start_frame": 80, "end_frame": 95},
    ]
    assert row["captions"] == ["64x48 x4"] * 3
    assert row["caption"] == "64x48 x4\n\n64x48 x4\n\n64x48 x4"
    assert row["caption_error"] is None

    # Below the threshold, the remainder's frames join the last window.
    merged = _stage(stub, window_size=40, remainder_threshold=20).process(_table(clips["long"]))
    row = _rows(merged)[0]
    assert row["caption_windows"] == [
        {"start_frame": 0, "end_frame": 39},
        {"start_frame": 40, "end_frame": 95},
    ]
    assert row["captions"] == ["64x48 x4"] * 2
    assert [seen.images for seen in stub.seen] == [4] * 5


def test_a_container_without_a_frame_count_is_windowed_by_its_packets(stub, tmp_path):
    # Matroska stores no frame count; the stage counts the packets instead.
    clip = write_video(tmp_path / "clip.mkv", [Span(4.0, 3)], 24, (64, 48)).read_bytes()
    out = _stage(stub, window_size=40, remainder_threshold=20).process(_table(clip))
    row = _rows(out)[0]
    assert row["caption_windows"] == [
        {"start_frame": 0, "end_frame": 39},
        {"start_frame": 40, "end_frame": 95},
    ]
    assert row["captions"] == ["64x48 x4"] * 2


def test_windows_are_captioned_concurrently_up_to_the_limit(stub, clips):
    stub.answer = lambda seen, attempt: Reply(delay=0.2)
    table = _table(clips["long"])  # 4 windows of 24 frames
    out = _stage(stub, window_size=24, remainder_threshold=12, concurrency=1).process(table)
    assert stub.max_in_flight == 1
    assert _rows(out)[0]["captions"] == ["64x48 x4"] * 4
    _stage(stub, window_size=24, remainder_threshold=12, concurrency=4).process(table)
    assert stub.max_in_flight >= 2


def test_a_slow_answer_is_retried_then_left_null_with_a_timeout(stub, clips):
    slow = (96, 64)
    stub.answer = lambda seen, attempt: Reply(delay=1.5 if seen.size == slow else 0.0)
    table = _table(clips["160x120"], clips["96x64"], clips["112x80"])
    out = _stage(stub, timeout_s=0.3, retries=1).process(table)
    rows = _rows(out)
    assert [r["id"] for r in rows] == ["clip-0", "clip-1", "clip-2"]
    assert [r["caption"] for r in rows] == ["160x120 x6", None, "112x80 x6"]
    assert rows[1]["captions"] == [None]
    assert rows[1]["caption_windows"] == [{"start_frame": 0, "end_frame": 71}]
    assert "timed out after 0.3 s" in rows[1]["caption_error"]
    assert "after 2 attempts" in rows[1]["caption_error"]
    assert rows[0]["caption_error"] is None and rows[2]["caption_error"] is None
    assert stub.attempts[slow] == 2


def test_a_server_error_is_retried_and_a_retry_can_succeed(stub, clips):
    stub.answer = lambda seen, attempt: Reply(status=500 if attempt == 1 else 200)
    out = _stage(stub, retries=2).process(_table(clips["96x64"]))
    assert _rows(out)[0]["caption"] == "96x64 x6"
    assert _rows(out)[0]["caption_error"] is None
    assert stub.attempts[(96, 64)] == 2


def test_a_server_error_on_every_attempt_leaves_the_caption_null(stub, clips):
    failing = (96, 64)
    stub.answer = lambda seen, attempt: Reply(
        status=500 if seen.size == failing else 200, body=b"model crashed"
    )
    out = _stage(stub, retries=2).process(_table(clips["96x64"], clips["112x80"]))
    rows = _rows(out)
    assert rows[0]["caption"] is None
    assert "HTTP 500" in rows[0]["caption_error"] and "model crashed" in rows[0]["caption_error"]
    assert "after 3 attempts" in rows[0]["caption_error"]
    assert stub.attempts[failing] == 3
    assert rows[1]["caption"] is None  # the body is not a chat completion
    assert "not JSON" in rows[1]["caption_error"]


def test_a_client_error_is_not_retried(stub, clips):
    stub.answer = lambda seen, attempt: Reply(status=400, body=b'{"error": "too many images"}')
    out = _stage(stub, retries=2).process(_table(clips["96x64"]))
    assert "HTTP 400" in _rows(out)[0]["caption_error"]
    assert "too many images" in _rows(out)[0]["caption_error"]
    assert stub.attempts[(96, 64)] == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>bad gateway</html>", "not JSON"),
        (b'{"choices": []}', "no choices"),
        (b'{"choices": [{"message": {"content": "  "}}]}', "no caption text"),
    ],
)
def test_an_unusable_answer_leaves_the_caption_null_with_the_reason(stub, clips, body, reason):
    stub.answer = lambda seen, attempt: Reply(body=body)
    out = _stage(stub, retries=0).process(_table(clips["96x64"]))
    row = _rows(out)[0]
    assert row["caption"] is None and row["captions"] == [None]
    assert reason in row["caption_error"]


def test_a_broken_clip_keeps_its_row_with_a_null_caption_and_the_reason(stub, clips):
    table = _table(clips["96x64"], b"not a video at all", None, clips["3 frames"])
    out = _stage(stub).process(table)
    rows = _rows(out)
    assert [r["id"] for r in rows] == ["clip-0", "clip-1", "clip-2", "clip-3"]
    assert [r["caption"] for r in rows] == ["96x64 x6", None, None, None]
    assert rows[1]["caption_error"].startswith("undecodable clip")
    assert rows[1]["captions"] is None and rows[1]["caption_windows"] is None
    assert rows[2]["caption_error"] == "undecodable clip: no clip bytes"
    assert "fewer than 4 frames" in rows[3]["caption_error"]
    assert rows[3]["captions"] == [] and rows[3]["caption_windows"] == []
    assert len(stub.seen) == 1


def test_an_unreachable_server_fails_each_clip_not_the_batch(clips):
    stage = CaptionGenerationStage(endpoint="http://127.0.0.1:9/v1", retries=0, timeout_s=2)
    out = stage.process(_table(clips["96x64"]))
    assert out.num_rows == 1
    assert "cannot reach http://127.0.0.1:9/v1/chat/completions" in (
        out.column("caption_error")[0].as_py()
    )


def test_captioning_again_replaces_the_columns(stub, clips):
    stage = _stage(stub)
    once = stage.process(_table(clips["96x64"]))
    twice = stage.process(once)
    assert twice.column_names == once.column_names
    assert twice.column("caption").to_pylist() == ["96x64 x6"]
