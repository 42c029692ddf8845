"""Silero VAD segmentation and the no-speech filter, on speech synthesised by espeak-ng
and assembled with known silences: the truth is where the synthesised samples are."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pytest
import soundfile

from stages.audio.decode import resample
from stages.audio.vad import NoSpeechFilter, VADSegmentationStage

RATE = 16000
SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "She sells sea shells by the sea shore every summer morning.",
    "Peter Piper picked a peck of pickled peppers from the garden.",
]
needs_speech = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng): no synthetic speech",
)


@pytest.fixture(scope="module")
def utterances(tmp_path_factory) -> list[np.ndarray]:
    """The sentences spoken by espeak-ng, at 16 kHz, trimmed to their audible samples."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    folder = tmp_path_factory.mktemp("speech")
    out = []
    for k, sentence in enumerate(SENTENCES):
        path = folder / f"{k}.wav"
        subprocess.run(["espeak-ng", "-w", str(path), sentence], check=True)
        samples, rate = soundfile.read(path, dtype="float32")
        samples = resample(samples, rate, RATE)
        loud = np.flatnonzero(np.abs(samples) > 0.01)
        out.append(samples[loud[0] : loud[-1] + 1])
    return out


def _assemble(parts: list[np.ndarray], gap_s: float, edge_s: float = 1.0, rate: int = RATE):
    """The parts (16 kHz) with `gap_s` of silence between them and `edge_s` around them,
    at `rate` Hz; returns the samples and the true (start, end) seconds of each part."""
    silence = lambda s: np.zeros(int(round(s * RATE)), np.float32)  # noqa: E731
    pieces, truth, t = [silence(edge_s)], [], edge_s
    for k, part in enumerate(parts):
        pieces.append(part)
        truth.append((t, t + part.size / RATE))
        t += part.size / RATE
        pieces.append(silence(gap_s if k < len(parts) - 1 else edge_s))
        t += gap_s
    return resample(np.concatenate(pieces), RATE, rate), np.array(truth)


def _rows(recordings: list, rate: int = RATE, **columns) -> pa.Table:
    pcm = [r.astype("<f4").tobytes() if isinstance(r, np.ndarray) else r for r in recordings]
    n = len(recordings)
    return pa.table(
        {
            "id": [f"rec{i}" for i in range(n)],
            "source": ["s3://bucket/in.tar"] * n,
            "pcm": pa.array(pcm, pa.large_binary()),
            "pcm_rate": pa.array([rate] * n, pa.int32()),
            "duration": [r.size / rate if isinstance(r, np.ndarray) else 0.0 for r in recordings],
            **columns,
        }
    )


def _spans(out: pa.Table) -> np.ndarray:
    return np.stack(
        [out.column("segment_start").to_numpy(), out.column("segment_end").to_numpy()], axis=1
    )


@needs_speech
def test_segments_are_the_utterances_within_0_2_s(utterances):
    audio, truth = _assemble(utterances, gap_s=1.5)
    out, counts = VADSegmentationStage(speech_pad_ms=0).split(_rows([audio]))
    assert counts.tolist() == [3]
    assert np.abs(_spans(out) - truth).max() < 0.2


@needs_speech
def test_default_padding_widens_each_segment_by_300_ms(utterances):
    audio, truth = _assemble(utterances, gap_s=1.5)
    out, _ = VADSegmentationStage().split(_rows([audio]))
    padded = truth + np.array([-0.3, 0.3])
    assert np.abs(_spans(out) - padded).max() < 0.2


@needs_speech
def test_segment_rows_carry_their_audio_and_place(utterances):
    audio, _ = _assemble(utterances, gap_s=1.5)
    rows = _rows([audio], text=["one transcript for the whole recording"])
    out, _ = VADSegmentationStage().split(rows)
    assert out.column("id").to_pylist() == ["rec0-0000", "rec0-0001", "rec0-0002"]
    assert out.column("parent_id").to_pylist() == ["rec0"] * 3
    assert out.column("segment_num").to_pylist() == [0, 1, 2]
    assert out.column("source").to_pylist() == ["s3://bucket/in.tar"] * 3
    assert out.column("text").null_count == 3  # a recording's transcript cannot be cut
    for row in out.to_pylist():
        pcm = np.frombuffer(row["pcm"], "<f4")
        assert pcm.size == round(row["duration"] * RATE)
        assert row["duration"] == pytest.approx(row["segment_end"] - row["segment_start"])
        start = round(row["segment_start"] * RATE)
        assert np.array_equal(pcm, audio[start : start + pcm.size])


@needs_speech
def test_ids_and_spans_are_the_same_in_any_batch(utterances):
    audio, _ = _assemble(utterances, gap_s=1.5)
    two = _assemble(utterances[:2], gap_s=1.0)[0]
    rows = _rows([audio, two])
    together, counts = VADSegmentationStage().split(rows)
    stage = VADSegmentationStage()
    alone = pa.concat_tables([stage.split(rows.slice(i, 1))[0] for i in range(2)])
    assert counts.tolist() == [3, 2]
    assert together.equals(alone)
    assert together.column("id").to_pylist()[3:] == ["rec1-0000", "rec1-0001"]


@needs_speech
def test_max_duration_splits_a_long_utterance(utterances):
    # Short pauses (250 ms, under min_interval_ms) make the three sentences one utterance.
    audio, truth = _assemble(utterances, gap_s=0.25)
    whole, _ = VADSegmentationStage(speech_pad_ms=0).split(_rows([audio]))
    assert whole.num_rows == 1
    out, _ = VADSegmentationStage(max_duration_sec=5.0, speech_pad_ms=0).split(_rows([audio]))
    spans = _spans(out)
    assert (spans[:, 1] - spans[:, 0] <= 5.0).all()
    # cut at the pauses (the longest silences inside), not inside words
    assert spans.shape == truth.shape and np.abs(spans - truth).max() < 0.2


@needs_speech
def test_min_duration_drops_short_speech(utterances):
    short = utterances[0][: int(1.2 * RATE)]  # 1.2 s of speech
    audio, _ = _assemble([short, utterances[1]], gap_s=1.5)
    kept, _ = VADSegmentationStage(speech_pad_ms=0).split(_rows([audio]))
    assert kept.num_rows == 1  # NeMo's default minimum is 2 s
    both, _ = VADSegmentationStage(min_duration_sec=0.5, speech_pad_ms=0).split(_rows([audio]))
    assert both.num_rows == 2


@needs_speech
@pytest.mark.parametrize("rate", [8000, 44100])
def test_recordings_at_other_rates_are_cut_at_their_own_rate(utterances, rate):
    audio, truth = _assemble(utterances, gap_s=1.5, rate=rate)
    out, _ = VADSegmentationStage(speech_pad_ms=0).split(_rows([audio], rate=rate))
    assert np.abs(_spans(out) - truth).max() < 0.2
    assert out.column("pcm_rate").to_pylist() == [rate] * 3
    for row in out.to_pylist():
        assert len(row["pcm"]) // 4 == round(row["duration"] * rate)


@needs_speech
def test_stereo_segments_keep_both_channels(utterances):
    audio, truth = _assemble(utterances, gap_s=1.5)
    stereo = np.stack([audio, 0.5 * audio], axis=1)  # (frames, 2), interleaved in pcm
    rows = _rows([stereo.reshape(-1)], audio=[b"RIFF...the recording's wav"])
    rows = rows.append_column("pcm_channels", pa.array([2], pa.int32()))
    out, _ = VADSegmentationStage(speech_pad_ms=0).split(rows)
    assert np.abs(_spans(out) - truth).max() < 0.2
    assert out.column("audio").null_count == 3
    for row in out.to_pylist():
        pcm = np.frombuffer(row["pcm"], "<f4").reshape(-1, 2)
        start = round(row["segment_start"] * RATE)
        assert np.array_equal(pcm, stereo[start : start + len(pcm)])


def test_silence_and_missing_audio_become_no_segments():
    quiet = np.random.default_rng(0).normal(0, 1e-4, 5 * RATE).astype(np.float32)
    rows = _rows([np.zeros(3 * RATE, np.float32), quiet, None, b"abc"])
    out, counts = VADSegmentationStage().split(rows)
    assert counts.tolist() == [0, 0, 0, 0]
    assert out.num_rows == 0
    assert {"id", "parent_id", "segment_start", "segment_end", "pcm"} <= set(out.column_names)


@needs_speech
def test_no_speech_filter_keeps_recordings_with_speech_whole(utterances):
    audio, truth = _assemble(utterances, gap_s=1.5)
    silent = np.zeros(4 * RATE, np.float32)
    rows = _rows([audio, silent, None], text=["words", "none", "lost"])
    kept, removed, scores = NoSpeechFilter().apply(rows)
    assert kept.column("id").to_pylist() == ["rec0"]
    assert kept.column("text").to_pylist() == ["words"]
    speech = (truth[:, 1] - truth[:, 0]).sum() / (audio.size / RATE)
    assert scores[0] == pytest.approx(speech, abs=0.05)
    assert scores[1] == 0 and np.isnan(scores[2])
    strict = NoSpeechFilter(min_speech_ratio=0.9, keep_score=True).apply(rows)
    assert strict[0].num_rows == 0 and "speech_ratio" in strict[1].column_names


def test_arguments_out_of_range_are_refused():
    with pytest.raises(ValueError, match="threshold"):
        VADSegmentationStage(threshold=1.5)
    with pytest.raises(ValueError, match="max_duration_sec"):
        VADSegmentationStage(min_duration_sec=5.0, max_duration_sec=4.0)
    with pytest.raises(ValueError, match="max_duration_sec"):
        VADSegmentationStage(min_duration_sec=0.1, max_duration_sec=0.5, speech_pad_ms=300)
    with pytest.raises(ValueError, match="min_speech_ratio"):
        NoSpeechFilter(min_speech_ratio=2.0)
    with pytest.raises(KeyError, match="'pcm'"):
        VADSegmentationStage().split(pa.table({"id": ["a"], "audio": [b"x"]}))
