"""Captions of video clips from a vision-language model served behind an OpenAI-compatible
chat completions endpoint (what `vllm serve <model>` exposes at http://HOST:8000/v1).

`CaptionGenerationStage` does what NeMo Curator's `CaptionPreparationStage` and
`CaptionGenerationStage` do together, with the same windowing and keyword arguments where
they mean the same thing; the model runs in a server instead of in-process vLLM, so the
stage itself needs no GPU and many workers can share one model server.

Windowing (NeMo Curator's `compute_windows`): a clip of `total` frames is cut into windows
of `window_size` frames; a last part of at least `remainder_threshold` frames becomes a
window of its own, a shorter one is added to the last full window; a clip of at most
`window_size` frames is one window, one of fewer than 4 frames has none. Each window is
shown to the model as evenly spaced frames, about `sampling_fps` a second (at least 4, an
even number, never more frames than the window has: NeMo Curator's Qwen-VL frame count).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from stages.base import Resources, Stage
from stages.video.frames import CLIP_COLUMN, VideoError, open_video, video_stream

log = logging.getLogger(__name__)

CAPTION = "caption"
CAPTIONS = "captions"
CAPTION_WINDOWS = "caption_windows"
CAPTION_ERROR = "caption_error"

WINDOW_TYPE = pa.struct([("start_frame", pa.int32()), ("end_frame", pa.int32())])

# NeMo Curator's prompt variants, reworded.
PROMPTS: dict[str, str] = {
    "default": "Describe the visual content and the narrative of this video in detail.",
    "av": (
        "This video was filmed by a camera mounted on a car while it drives. Describe how "
        "the vehicles move, including the car from whose point of view the video is filmed. "
        "Note everything that matters for driving safety: where pedestrians are relative to "
        "the vehicles, lane markings, road signs, traffic lights, and any aggressive driving "
        "by other vehicles. Describe notable landmarks in detail."
    ),
    "av-surveillance": (
        "This video was filmed by a surveillance camera. Describe how the vehicles move and "
        "everything that matters for driving safety: where pedestrians are relative to the "
        "vehicles, lane markings, road signs, traffic lights, and any aggressive driving. "
        "Describe notable landmarks in detail."
    ),
}

WINDOW_MIN_FRAMES = 4  # fewer frames than this: no window (NeMo Curator's rule)
_FRAMES_MIN, _FRAMES_MAX, _FRAMES_FACTOR = 4, 768, 2  # Qwen-VL's frame count rule

API_KEY_ENV = ("CURATE_CAPTION_API_KEY", "OPENAI_API_KEY")


def caption_windows(
    total_frames: int, window_size: int = 256, remainder_threshold: int = 128
) -> list[tuple[int, int]]:
    """The windows of a clip of `total_frames` frames: (first, last) frame, both included
    (see the module doc for the rule)."""
    if total_frames < WINDOW_MIN_FRAMES:
        return []
    if total_frames <= window_size:
        return [(0, total_frames - 1)]
    full, remainder = divmod(total_frames, window_size)
    windows = [(i * window_size, (i + 1) * window_size - 1) for i in range(full)]
    if remainder >= remainder_threshold:
        windows.append((total_frames - remainder, total_frames - 1))
    elif remainder:
        windows[-1] = (windows[-1][0], total_frames - 1)
    return windows


def window_frame_indices(
    start: int, end: int, video_fps: float, sampling_fps: float = 2.0
) -> list[int]:
    """The frames of window [start, end] shown to the model: about `sampling_fps` a second,
    evenly spaced from the first frame to the last, at least 4 and an even number (as
    NeMo Curator prepares frames for Qwen-VL), never more than the window has."""
    count = end - start + 1
    wanted = count / video_fps * sampling_fps if video_fps > 0 else _FRAMES_MIN
    ceiling = min(_FRAMES_MAX, count) // _FRAMES_FACTOR * _FRAMES_FACTOR
    wanted = min(max(wanted, _FRAMES_MIN), ceiling)
    n = max(1, round(wanted / _FRAMES_FACTOR) * _FRAMES_FACTOR)
    n = min(n, count)
    return sorted({int(round(i)) for i in np.linspace(start, end, n)})


class CaptionGenerationStage(Stage):
    """Adds `caption`, `captions`, `caption_windows` and `caption_error` to clip rows (a
    `clip` column of encoded clip bytes), captioning each window of each clip with a
    vision-language model behind an OpenAI-compatible chat completions endpoint.

    Output columns:

    - `captions` (list<string>): one caption per window, in order; null where that window
      failed;
    - `caption_windows` (list<struct<start_frame, end_frame>>): each window's first and last
      frame in the clip (both included; NeMo Curator's `start_frame`/`end_frame`);
    - `caption` (string): the clip's caption, its windows' captions joined by a blank line
      (a clip of at most `window_size` frames, the usual case, has one window: its caption
      as is); null unless every window got one. NeMo Curator keeps captions per window only;
    - `caption_error` (string): why `caption` is null (undecodable clip, too few frames, the
      server's failure for a window after all retries), null when it is not.

    A clip is never removed and the batch never fails because of one clip or one answer.

    Each window goes to the server as one user message: its frames as base64 JPEG
    `image_url` data URLs (resized so that the longer side is at most `max_frame_side`),
    then the prompt. The server must accept that many images per prompt (vLLM:
    `--limit-mm-per-prompt '{"image": 32}'` or more; about `window_size / video fps *
    sampling_fps` images per window).

    Arguments:

    - `endpoint`: base URL of the API (`.../v1`); requests go to `{endpoint}/chat/completions`.
    - `model`: the model name sent in each request (what the server serves).
    - `api_key`: sent as a bearer token; by default read from `CURATE_CAPTION_API_KEY` or
      `OPENAI_API_KEY`. Prefer the environment: stage arguments may be logged.
    - `prompt_variant`: "default", "av" (dashboard camera) or "av-surveillance" (as NeMo
      Curator's); `prompt_text` replaces the variant's prompt.
    - `sampling_fps`, `window_size`, `remainder_threshold`: the windowing (module doc).
    - `max_output_tokens`, `temperature`, `top_p`: sampling (NeMo Curator's defaults);
      `extra_body`: more request fields (vLLM: `{"repetition_penalty": 1.05}`).
    - `timeout_s`: how long to wait on the server for each attempt (connecting, then each
      read of its answer); `retries`: further attempts after a failure, waiting
      `retry_backoff_s`, then twice that, and so on; a 4xx answer other than 408 and 429 is
      not retried (the same request would fail again).
    - `concurrency`: requests in flight at once per worker.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)
    batch_size: ClassVar[int | None] = 16

    def __init__(
        self,
        endpoint: str = "http://127.0.0.1:8000/v1",
        model: str = "Qwen/Qwen2.5-VL-7B-Instruct",
        api_key: str | None = None,
        prompt_variant: Literal["default", "av", "av-surveillance"] = "default",
        prompt_text: str | None = None,
        sampling_fps: float = 2.0,
        window_size: int = 256,
        remainder_threshold: int = 128,
        max_output_tokens: int = 512,
        temperature: float = 0.1,
        top_p: float = 0.001,
        extra_body: dict[str, Any] | None = None,
        max_frame_side: int = 448,
        jpeg_quality: int = 85,
        timeout_s: float = 120.0,
        retries: int = 2,
        retry_backoff_s: float = 1.0,
        concurrency: int = 8,
        clip_column: str = CLIP_COLUMN,
        verbose: bool = False,
    ):
        if prompt_text is None and prompt_variant not in PROMPTS:
            raise ValueError(
                f"prompt_variant must be one of {sorted(PROMPTS)}, got {prompt_variant!r}"
            )
        for name, value, low in (
            ("sampling_fps", sampling_fps, 0),
            ("timeout_s", timeout_s, 0),
        ):
            if not value > low:
                raise ValueError(f"{name} must be greater than {low}, got {value}")
        for name, value, low in (
            ("window_size", window_size, 1),
            ("remainder_threshold", remainder_threshold, 0),
            ("max_output_tokens", max_output_tokens, 1),
            ("max_frame_side", max_frame_side, 1),
            ("retries", retries, 0),
            ("concurrency", concurrency, 1),
        ):
            if value < low:
                raise ValueError(f"{name} must be at least {low}, got {value}")
        self.endpoint = endpoint.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.prompt_variant = prompt_variant
        self.prompt_text = prompt_text
        self.sampling_fps = sampling_fps
        self.window_size = window_size
        self.remainder_threshold = remainder_threshold
        self.max_output_tokens = max_output_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.extra_body = dict(extra_body or {})
        self.max_frame_side = max_frame_side
        self.jpeg_quality = jpeg_quality
        self.timeout_s = timeout_s
        self.retries = retries
        self.retry_backoff_s = retry_backoff_s
        self.concurrency = concurrency
        self.clip_column = clip_column
        self.verbose = verbose

    @property
    def prompt(self) -> str:
        return self.prompt_text if self.prompt_text is not None else PROMPTS[self.prompt_variant]

    def process(self, batch: pa.Table) -> pa.Table:
        if self.clip_column not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no column {self.clip_column!r} "
                f"(columns: {batch.column_names})"
            )
        clips = batch.column(self.clip_column).to_pylist()
        windows: list[list[tuple[int, int]] | None] = [None] * len(clips)
        captions: list[list[str | None] | None] = [None] * len(clips)
        errors: list[list[str]] = [[] for _ in clips]
        pending: list[tuple[int, int, Future]] = []
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="caption") as pool:
            # Clips are decoded here while earlier clips' requests are in flight.
            for row, data in enumerate(clips):
                try:
                    spans, images, seconds = self._prepare(data)
                except VideoError as err:
                    errors[row].append(f"undecodable clip: {err}")
                    continue
                windows[row] = spans
                captions[row] = [None] * len(spans)
                if not spans:
                    errors[row].append(
                        f"clip has fewer than {WINDOW_MIN_FRAMES} frames, too few to caption"
                    )
                for k, (urls, length) in enumerate(zip(images, seconds, strict=True)):
                    if not urls:
                        errors[row].append(f"{_window_name(k, spans[k])}: no decodable frame")
                        continue
                    pending.append((row, k, pool.submit(self._caption, urls, length)))
            for row, k, future in pending:
                text, reason = future.result()
                if reason is None:
                    captions[row][k] = text
                else:
                    errors[row].append(f"{_window_name(k, windows[row][k])}: {reason}")
        caption = [
            "\n\n".join(texts) if texts and not errors[row] else None
            for row, texts in enumerate(captions)
        ]
        error = ["; ".join(reasons) or None for reasons in errors]
        if self.verbose:
            for row, reason in enumerate(error):
                if reason:
                    log.info("%s: row %d: %s", self.stage_name, row, reason)
        columns = {
            CAPTION: pa.array(caption, pa.string()),
            CAPTIONS: pa.array(captions, pa.list_(pa.string())),
            CAPTION_WINDOWS: pa.array([_window_rows(w) for w in windows], pa.list_(WINDOW_TYPE)),
            CAPTION_ERROR: pa.array(error, pa.string()),
        }
        batch = batch.drop_columns([c for c in columns if c in batch.column_names])
        for name, values in columns.items():
            batch = batch.append_column(name, values)
        return batch

    # Frames

    def _prepare(
        self, data: bytes | None
    ) -> tuple[list[tuple[int, int]], list[list[str]], list[float]]:
        """The clip's windows, each window's frames as JPEG data URLs, each window's length
        in seconds. Raises VideoError for a clip that cannot be read."""
        import av

        if not data:
            raise VideoError("no clip bytes")
        with open_video(data) as container:
            stream = video_stream(container)
            total = stream.frames or 0
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            if not total:
                # No frame count in the container: count the packets, then read again.
                try:
                    total = sum(1 for packet in container.demux(stream) if packet.size)
                except av.FFmpegError as err:
                    raise VideoError(str(err).strip() or type(err).__name__) from err
        if not total:
            raise VideoError("no video frames")
        if not rate:
            rate = 24.0
        spans = caption_windows(total, self.window_size, self.remainder_threshold)
        picks: dict[int, int] = {}
        for k, (start, end) in enumerate(spans):
            for index in window_frame_indices(start, end, rate, self.sampling_fps):
                picks[index] = k
        images: list[list[str]] = [[] for _ in spans]
        if picks:
            last = max(picks)
            try:
                with open_video(data) as container:
                    stream = video_stream(container)
                    for index, frame in enumerate(container.decode(stream)):
                        k = picks.get(index)
                        if k is not None:
                            images[k].append(self._data_url(frame))
                        if index >= last:
                            break
            except av.FFmpegError as err:
                if not any(images):
                    raise VideoError(str(err).strip() or type(err).__name__) from err
                # A clip cut short: caption what decoded (a window left empty says so).
        seconds = [(end - start + 1) / rate for start, end in spans]
        return spans, images, seconds

    def _data_url(self, frame) -> str:
        width, height = frame.width, frame.height
        scale = min(1.0, self.max_frame_side / max(width, height))
        size = max(1, round(width * scale)), max(1, round(height * scale))
        image = frame.to_image(width=size[0], height=size[1], interpolation="AREA")
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=self.jpeg_quality)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    # Requests

    def _request_body(self, urls: list[str], seconds: float) -> dict[str, Any]:
        intro = (
            f"The {len(urls)} images are frames of one video clip of {seconds:.1f} seconds, "
            "evenly spaced and in order."
        )
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": url}} for url in urls
        ]
        content.append({"type": "text", "text": f"{intro}\n{self.prompt}"})
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_output_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            **self.extra_body,
        }

    def _caption(self, urls: list[str], seconds: float) -> tuple[str | None, str | None]:
        """(caption, None) or (None, why not), after retries; never raises."""
        body = json.dumps(self._request_body(urls, seconds)).encode()
        attempts = 1 + self.retries
        reason = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
            try:
                return self._post(body), None
            except _Failure as failure:
                reason = str(failure)
                if not failure.retry:
                    return None, reason
            except Exception as err:  # noqa: BLE001 (one window's failure, not the batch's)
                reason = f"{type(err).__name__}: {err}"
        return None, f"{reason} (after {attempts} attempt{'s' if attempts > 1 else ''})"

    def _post(self, body: bytes) -> str:
        url = f"{self.endpoint}/chat/completions"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self.api_key or next((os.environ[k] for k in API_KEY_ENV if os.environ.get(k)), None)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = _excerpt(err.read())
            retry = err.code >= 500 or err.code in (408, 429)
            raise _Failure(f"HTTP {err.code} from {url}: {detail}", retry) from err
        except TimeoutError as err:
            raise _Failure(f"timed out after {self.timeout_s:g} s waiting for {url}") from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                raise _Failure(f"timed out after {self.timeout_s:g} s connecting to {url}") from err
            raise _Failure(f"cannot reach {url}: {err.reason}") from err
        return _caption_text(raw)


class _Failure(Exception):
    def __init__(self, reason: str, retry: bool = True):
        super().__init__(reason)
        self.retry = retry


def _caption_text(raw: bytes) -> str:
    """The first choice's message text of a chat completions answer."""
    try:
        answer = json.loads(raw)
    except ValueError as err:
        raise _Failure(f"answer is not JSON: {_excerpt(raw)}") from err
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not choices or not isinstance(choices, list):
        raise _Failure(f"answer has no choices: {_excerpt(raw)}")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str) or not content.strip():
        raise _Failure(f"answer has no caption text: {_excerpt(raw)}")
    return content.strip()


def _excerpt(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "") if text else "(empty)"


def _window_rows(spans: list[tuple[int, int]] | None) -> list[dict[str, int]] | None:
    if spans is None:
        return None
    return [{"start_frame": start, "end_frame": end} for start, end in spans]


def _window_name(k: int, span: tuple[int, int]) -> str:
    return f"window {k} (frames {span[0]}-{span[1]})"


__all__ = [
    "CAPTION",
    "CAPTIONS",
    "CAPTION_ERROR",
    "CAPTION_WINDOWS",
    "PROMPTS",
    "CaptionGenerationStage",
    "caption_windows",
    "window_frame_indices",
]
