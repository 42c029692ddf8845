"""AudioEncoder: decoded audio back to one 16-bit FLAC member per sample."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from audio import encode, tone, white_noise

from stages.audio.decode import AudioDecoder, decode_audio, pcm_samples
from stages.audio.encode import AudioEncoder


def _decoded(**columns) -> pa.Table:
    n = len(next(iter(columns.values())))
    good, quarantine = AudioDecoder().check(
        pa.table({"id": [f"r{i}" for i in range(n)], **columns})
    )
    assert quarantine.num_rows == 0
    return good


def test_the_round_trip_gives_16k_mono_flac_with_the_same_samples():
    stereo = np.stack([tone(1.5, 1000, 44100, 0.5), tone(1.5, 1000, 44100, 0.3)], axis=1)
    decoded = _decoded(wav=[encode("wav", stereo, 44100)])
    out = AudioEncoder().process(decoded)
    data = out.column("flac")[0].as_py()
    info = sf.info(io.BytesIO(data))
    assert (info.format, info.subtype, info.samplerate, info.channels) == (
        "FLAC",
        "PCM_16",
        16000,
        1,
    )
    samples, _ = sf.read(io.BytesIO(data), dtype="float32")
    original = pcm_samples(decoded.column("pcm")[0].as_py())
    assert len(samples) == len(original) == 24000
    assert np.abs(samples - original).max() <= 1 / 32768 + 1e-6  # 16-bit rounding
    again = decode_audio(data)
    assert again.duration == pytest.approx(1.5, abs=0.001)
    assert again.audio_format == "flac"


def test_each_sample_holds_one_audio_member_and_no_pcm():
    decoded = _decoded(
        mp3=[encode("mp3", tone(1.0)), None],
        wav=[None, encode("wav", white_noise(1.0))],
        json=['{"k": 1}', '{"k": 2}'],
    )
    out = AudioEncoder().process(decoded)
    for gone in ("pcm", "pcm_rate", "pcm_channels", "mp3", "wav"):
        assert gone not in out.column_names
    assert out.column("extension").to_pylist() == ["flac", "flac"]
    assert out.column("json").to_pylist() == ['{"k": 1}', '{"k": 2}']
    assert out.column("duration").to_pylist() == decoded.column("duration").to_pylist()
    assert out.schema.field("flac").type == pa.binary()


def test_the_rate_follows_sample_rate_or_the_pcm():
    decoded = AudioDecoder(target_sample_rate=None).check(
        pa.table({"audio": [encode("wav", tone(1.0, rate=22050), 22050)]})
    )[0]
    assert (
        sf.info(io.BytesIO(AudioEncoder().process(decoded)["flac"][0].as_py())).samplerate == 16000
    )
    kept = AudioEncoder(sample_rate=None).process(decoded)["flac"][0].as_py()
    assert sf.info(io.BytesIO(kept)).samplerate == 22050


def test_wav_output_and_a_row_without_samples():
    batch = pa.table({"pcm": [np.zeros(160, "<f4").tobytes(), b""], "pcm_rate": [16000, 16000]})
    out = AudioEncoder(format="wav").process(batch)
    assert out.column("extension").to_pylist() == ["wav", None]
    assert sf.info(io.BytesIO(out["wav"][0].as_py())).frames == 160
    assert out["wav"][1].as_py() is None


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="format"):
        AudioEncoder(format="mp3")
    with pytest.raises(ValueError, match="sample_rate"):
        AudioEncoder(sample_rate=0)
