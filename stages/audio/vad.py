"""Speech in recordings, found by Silero VAD (Silero Team, 2024), the model that NeMo
Curator's `VADSegmentationStage` runs, from the weights the `silero-vad` wheel ships (its
batched "sequence" ONNX export: the streaming model's exact probabilities, one ONNX call
per 16 s block instead of one per 32 ms frame; no download, CPU only).

- `VADSegmentationStage`: a `Splitter`, each recording becomes its speech segments.
- `NoSpeechFilter`: keeps recordings with enough speech, without splitting them.

Both read the decoded audio of `AudioDecoder`: `pcm` (float32 little-endian samples,
interleaved when `pcm_channels` > 1; channels are averaged for the model) at `pcm_rate`
Hz (16000 when the column is absent). The model runs at 16 kHz; other rates are resampled
for it (`stages.audio.decode.resample`), and times and cuts are mapped back to the
recording's own samples. `mono_pcm` serves the ASR stage too.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pyarrow as pa

from stages.audio.decode import BYTES_COLUMNS, resample
from stages.base import Filter, Resources, Splitter

SAMPLE_RATE = 16000  # Silero's (and Whisper's)
PCM, PCM_RATE, PCM_CHANNELS = "pcm", "pcm_rate", "pcm_channels"
# Columns a segment cannot inherit from its recording: replaced by nulls (see the stage).
RECORDING_ONLY = (*BYTES_COLUMNS, "text")


def read_pcm(value: bytes | None, channels: int = 1) -> np.ndarray | None:
    """The mono float32 samples of one `pcm` cell (channels averaged); None when it is
    null, empty or not a whole number of frames. Non-finite samples become 0."""
    if not value or channels < 1 or len(value) % (4 * channels):
        return None
    samples = np.frombuffer(value, dtype="<f4")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    return samples.astype(np.float32, copy=False)


def _ints(batch: pa.Table, name: str, default: int) -> list[int | None]:
    if name not in batch.column_names:
        return [default] * batch.num_rows
    return batch.column(name).to_pylist()


def mono_pcm(batch: pa.Table, stage: str) -> list[tuple[np.ndarray | None, int]]:
    """(mono samples or None, rate) for each row of `batch`; KeyError naming the stage
    when there is no `pcm` column. A row whose rate is missing or not positive, or whose
    `pcm` does not decode (`read_pcm`), has no audio (None)."""
    if PCM not in batch.column_names:
        raise KeyError(
            f"{stage}: input has no {PCM!r} column (decoded audio; columns: "
            f"{batch.column_names}): AudioDecoder must run first"
        )
    rates = _ints(batch, PCM_RATE, SAMPLE_RATE)
    channels = _ints(batch, PCM_CHANNELS, 1)
    out = []
    for value, rate, count in zip(batch.column(PCM).to_pylist(), rates, channels, strict=True):
        samples = read_pcm(value, count or 1) if rate and rate > 0 else None
        out.append((samples, int(rate) if samples is not None else SAMPLE_RATE))
    return out


class SileroVAD:
    """Silero VAD as the wheel ships it: per-frame (32 ms) speech probabilities at 16 kHz
    and the package's own rules turning them into speech spans."""

    FRAME = 512  # samples per probability at 16 kHz

    def __init__(self):
        import torch

        threads = torch.get_num_threads()
        import silero_vad  # its import sets torch to one thread for the whole process

        torch.set_num_threads(threads)
        self._spans = silero_vad.get_speech_timestamps_from_probs
        self.model = silero_vad.load_silero_vad(sequence=True)

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """One speech probability per 512 samples of 16 kHz `samples`."""
        if samples.size == 0:
            return np.zeros(0, np.float32)
        return self.model.audio_forward(np.ascontiguousarray(samples, np.float32))

    def spans(
        self,
        probabilities: np.ndarray,
        length: int,
        threshold: float,
        min_speech_ms: float,
        max_speech_s: float,
        min_silence_ms: float,
        pad_ms: float,
    ) -> np.ndarray:
        """[start, end) sample spans (16 kHz) of the speech in a recording of `length`
        samples, by silero-vad's rules (`get_speech_timestamps`' arguments)."""
        if probabilities.size == 0:
            return np.zeros((0, 2), np.int64)
        found = self._spans(
            probabilities.tolist(),
            sampling_rate=SAMPLE_RATE,
            threshold=threshold,
            min_speech_duration_ms=min_speech_ms,
            max_speech_duration_s=max_speech_s,
            min_silence_duration_ms=min_silence_ms,
            speech_pad_ms=pad_ms,
            audio_length_samples=length,
        )
        return np.array([(s["start"], s["end"]) for s in found], np.int64).reshape(-1, 2)


class VADSegmentationStage(Splitter):
    """Each recording becomes one row per speech segment that Silero VAD finds; a
    recording without speech (or without decodable audio) becomes no row, which the run
    report counts as removed by this stage.

    NeMo Curator's keyword arguments and defaults:

    - `threshold` (0.5): a 32 ms frame whose speech probability reaches it is speech
      (speech ends when it falls below `threshold - 0.15`, silero's hysteresis);
    - `min_interval_ms` (500): a pause shorter than this does not end a segment;
    - `min_duration_sec` (2.0): speech shorter than this (before padding) is dropped, and
      so is any final segment shorter than this;
    - `max_duration_sec` (60.0): longer speech is split at its longest pause, else cut;
      a final segment never exceeds it (a segment still longer after padding is cut in
      equal parts);
    - `speech_pad_ms` (300): each segment is widened by this much on both sides (less
      where two segments would overlap: they then meet halfway).

    A segment row keeps its recording's columns, with: `id` = `"{parent_id}-{k:04d}"`
    (deterministic: the same recording and arguments give the same ids), `parent_id` (the
    recording's `id`), `segment_num` (k, from 0), `segment_start` and `segment_end`
    (seconds in the recording), `duration` (the segment's), `pcm` cut to the segment (at
    the recording's `pcm_rate`, with its `pcm_channels`). Columns that describe the whole
    recording and cannot be cut are set to null: `text` (one transcript for the
    recording; which words fall in which segment is unknown, so a segment has no
    reference text; transcribe segments with the ASR stage) and the encoded audio
    columns (`audio`, `flac`, `wav`, `mp3`, `ogg`, `opus`, `m4a`: `AudioEncoder` makes a
    segment's from its `pcm`). `audio_uri` / `audio_filepath` still name the recording's
    file, which holds the segment between `segment_start` and `segment_end`.

    For recordings that are already utterances with their transcripts, use
    `NoSpeechFilter` instead: it drops the silent ones and keeps the rest whole.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)
    batch_size: ClassVar[int | None] = 8

    def __init__(
        self,
        min_duration_sec: float = 2.0,
        max_duration_sec: float = 60.0,
        threshold: float = 0.5,
        speech_pad_ms: int = 300,
        min_interval_ms: int = 500,
    ):
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold}: must be in (0, 1)")
        if min_duration_sec < 0 or speech_pad_ms < 0 or min_interval_ms < 0:
            raise ValueError(
                f"min_duration_sec={min_duration_sec}, speech_pad_ms={speech_pad_ms}, "
                f"min_interval_ms={min_interval_ms}: must not be negative"
            )
        # silero keeps room for the padding and one frame inside the maximum
        shortest_max = 2 * speech_pad_ms / 1000 + 2 * SileroVAD.FRAME / SAMPLE_RATE
        if max_duration_sec <= max(min_duration_sec, shortest_max):
            raise ValueError(
                f"max_duration_sec={max_duration_sec}: must be above min_duration_sec="
                f"{min_duration_sec} and above {shortest_max:.3f} s (twice speech_pad_ms "
                "plus two 32 ms frames)"
            )
        self.min_duration_sec = min_duration_sec
        self.max_duration_sec = max_duration_sec
        self.threshold = threshold
        self.speech_pad_ms = speech_pad_ms
        self.min_interval_ms = min_interval_ms
        self._vad: SileroVAD | None = None

    def setup(self) -> None:
        if self._vad is None:
            self._vad = SileroVAD()

    def segments(self, samples: np.ndarray | None, rate: int) -> np.ndarray:
        """[start, end) spans, in samples of `samples` (at `rate` Hz), of its segments."""
        self.setup()
        if samples is None or samples.size == 0:
            return np.zeros((0, 2), np.int64)
        at16k = resample(samples, rate, SAMPLE_RATE)
        spans = self._vad.spans(
            self._vad.probabilities(at16k),
            at16k.size,
            self.threshold,
            self.min_duration_sec * 1000,
            self.max_duration_sec,
            self.min_interval_ms,
            self.speech_pad_ms,
        )
        spans = np.clip(np.rint(spans * (rate / SAMPLE_RATE)), 0, samples.size).astype(np.int64)
        longest = int(self.max_duration_sec * rate)
        pieces = []
        for start, end in spans:
            parts = max(1, math.ceil((end - start) / longest))
            cuts = np.linspace(start, end, parts + 1).round().astype(np.int64)
            pieces.extend(zip(cuts[:-1], cuts[1:], strict=True))
        spans = np.array(pieces, np.int64).reshape(-1, 2)
        shortest = max(1, math.ceil(self.min_duration_sec * rate - 1e-6))
        return spans[spans[:, 1] - spans[:, 0] >= shortest]

    def split(self, batch: pa.Table) -> tuple[pa.Table, np.ndarray]:
        if "id" not in batch.column_names:
            raise KeyError(f"{self.stage_name}: input has no 'id' column")
        audio = mono_pcm(batch, self.stage_name)
        ids = batch.column("id").to_pylist()
        pcm = batch.column(PCM).to_pylist()
        channels = _ints(batch, PCM_CHANNELS, 1)
        found = [self.segments(samples, rate) for samples, rate in audio]
        counts = np.array([len(s) for s in found], np.int64)
        columns: dict[str, list] = {k: [] for k in ("id", "parent_id", "segment_num")}
        columns |= {k: [] for k in ("segment_start", "segment_end", "duration", PCM)}
        for row, ((_, rate), spans) in enumerate(zip(audio, found, strict=True)):
            if len(spans) and ids[row] is None:
                raise ValueError(f"{self.stage_name}: row {row} has speech but a null id")
            frame = 4 * (channels[row] or 1)  # bytes per frame: the cut keeps the channels
            for k, (start, end) in enumerate(spans):
                columns["id"].append(f"{ids[row]}-{k:04d}")
                columns["parent_id"].append(str(ids[row]))
                columns["segment_num"].append(k)
                columns["segment_start"].append(start / rate)
                columns["segment_end"].append(end / rate)
                columns["duration"].append((end - start) / rate)
                columns[PCM].append(pcm[row][start * frame : end * frame])
        types = {"id": pa.string(), "parent_id": pa.string(), "segment_num": pa.int32()}
        types |= {PCM: pa.large_binary()}
        arrays = {k: pa.array(v, types.get(k, pa.float64())) for k, v in columns.items()}
        total = int(counts.sum())
        for name in RECORDING_ONLY:
            if name in batch.column_names:
                arrays[name] = pa.nulls(total, batch.schema.field(name).type)
        # The recording-wide media columns are left out before the rows are repeated, so
        # a recording's bytes are not copied once per segment.
        parents = batch.drop_columns([c for c in (PCM, *RECORDING_ONLY) if c in batch.column_names])
        return self.children(parents, counts, arrays), counts


class NoSpeechFilter(Filter):
    """Score (`speech_ratio`): the share of a recording that Silero VAD marks as speech
    (silero-vad's own defaults: threshold 0.5, speech of 250 ms or more, pauses of 100 ms
    or more, no padding), 0 to 1.

    Keep rule: `speech_ratio > 0` and `speech_ratio >= min_speech_ratio`, so the default
    (0.0) drops only recordings in which VAD finds no speech at all: silence, music or
    noise that would only teach an ASR model to hallucinate. A recording without
    decodable audio scores NaN and is dropped. Unlike `VADSegmentationStage`, recordings
    are kept whole, with their transcripts.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)
    batch_size: ClassVar[int | None] = 8

    def __init__(
        self,
        min_speech_ratio: float = 0.0,
        threshold: float = 0.5,
        keep_score: bool = False,
    ):
        if not 0 <= min_speech_ratio <= 1:
            raise ValueError(f"min_speech_ratio={min_speech_ratio}: must be in [0, 1]")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold}: must be in (0, 1)")
        self.min_speech_ratio = min_speech_ratio
        self.threshold = threshold
        self.keep_score = keep_score
        self._vad: SileroVAD | None = None

    @property
    def score_column(self) -> str:
        return "speech_ratio"

    def setup(self) -> None:
        if self._vad is None:
            self._vad = SileroVAD()

    def score(self, batch: pa.Table) -> np.ndarray:
        self.setup()
        scores = np.full(batch.num_rows, np.nan)
        for row, (samples, rate) in enumerate(mono_pcm(batch, self.stage_name)):
            if samples is None:
                continue
            at16k = resample(samples, rate, SAMPLE_RATE)
            spans = self._vad.spans(
                self._vad.probabilities(at16k), at16k.size, self.threshold, 250, math.inf, 100, 0
            )
            scores[row] = float((spans[:, 1] - spans[:, 0]).sum()) / at16k.size
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (scores > 0) & (scores >= self.min_speech_ratio)
