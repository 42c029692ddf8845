"""AudioDecoder: every format decoded with its true duration, mono and resampled, and
every unusable file quarantined with the reason while the rest of the batch goes on."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from audio import (
    WRITERS,
    corrupt,
    encode,
    tone,
    white_noise,
    write_flac,
    write_manifest,
    write_mp3,
    write_wav,
)

from stages.audio.decode import AudioDecoder, decode_audio, pcm_samples
from stages.io.read import ShardReader
from stages.io.shards import plan_shards

SECONDS = 1.37  # not a whole number of any codec's frames


def _rows(**columns) -> pa.Table:
    n = len(next(iter(columns.values())))
    base = {
        "id": [f"r{i}" for i in range(n)],
        "source": [f"input-{i}" for i in range(n)],
        "_order": [(7 << 32) | i for i in range(n)],
    }
    return pa.table({**base, **columns})


def _files(folder) -> pa.Table:
    result = ShardReader().read(plan_shards(str(folder), format="files")[0])
    assert result.quarantine.num_rows == 0
    return result.table


def _manifest(path) -> pa.Table:
    result = ShardReader().read(plan_shards(str(path), format="manifest")[0])
    assert result.quarantine.num_rows == 0
    return result.table


@pytest.mark.parametrize("kind", ["wav", "flac", "mp3", "ogg", "opus", "m4a"])
@pytest.mark.parametrize("rate", [16000, 44100])
def test_the_measured_duration_is_within_10_ms_of_the_signal_in_every_format(tmp_path, kind, rate):
    WRITERS[kind](tmp_path / f"a.{kind}", tone(SECONDS, rate=rate), rate)
    good, quarantine = AudioDecoder().check(_files(tmp_path))
    assert quarantine.num_rows == 0
    assert good.column("duration")[0].as_py() == pytest.approx(SECONDS, abs=0.010)
    # The samples say so too, at the rate they were resampled to.
    samples = pcm_samples(good.column("pcm")[0].as_py())
    assert len(samples) / 16000 == pytest.approx(SECONDS, abs=0.010)


@pytest.mark.parametrize("kind", ["mp3", "opus", "m4a"])
def test_encoder_priming_and_padding_are_not_counted(kind):
    # Lossy encoders add silence before and after (LAME: 1105 samples, AAC: 1024, Opus:
    # 312 of pre-skip); the decoder trims what the file says it added.
    for seconds in (0.5, 2.0):
        decoded = decode_audio(encode(kind, tone(seconds, rate=22050), 22050))
        assert decoded.duration == pytest.approx(seconds, abs=0.010)


def test_bytes_columns_of_a_webdataset_sample_are_decoded(tmp_path):
    flac, mp3 = encode("flac", tone(1.0)), encode("mp3", tone(2.0))
    batch = _rows(flac=[flac, None], mp3=[None, mp3], json=['{"a": 1}', '{"a": 2}'])
    good, quarantine = AudioDecoder().check(batch)
    assert quarantine.num_rows == 0
    assert good.column("duration").to_pylist() == pytest.approx([1.0, 2.0], abs=0.010)
    assert good.column("audio_format").to_pylist() == ["flac", "mp3"]
    assert good.column("json").to_pylist() == ['{"a": 1}', '{"a": 2}']


def test_each_format_is_named(tmp_path):
    for kind in WRITERS:
        WRITERS[kind](tmp_path / f"{kind}.{kind}", tone(0.5))
    good, _ = AudioDecoder().check(_files(tmp_path))
    named = dict(zip(good["extension"].to_pylist(), good["audio_format"].to_pylist(), strict=True))
    assert named == {
        "wav": "wav",
        "flac": "flac",
        "mp3": "mp3",
        "ogg": "ogg/vorbis",
        "opus": "ogg/opus",
        "m4a": "m4a/aac",
    }


def test_a_wrong_manifest_duration_is_replaced_by_the_measured_one_and_reported(tmp_path):
    write_wav(tmp_path / "a.wav", tone(1.5))
    write_flac(tmp_path / "b.flac", tone(2.0))
    write_mp3(tmp_path / "c.mp3", tone(1.0))
    write_manifest(
        tmp_path / "m.json",
        [
            {"audio_filepath": "a.wav", "duration": 4.0, "text": "wrong"},
            {"audio_filepath": "b.flac", "duration": 2.0, "text": "right"},
            {"audio_filepath": "c.mp3", "text": "no claim"},
        ],
    )
    good, quarantine = AudioDecoder().check(_manifest(tmp_path / "m.json"))
    assert quarantine.num_rows == 0
    assert good.column("duration").to_pylist() == pytest.approx([1.5, 2.0, 1.0], abs=0.010)
    assert good.column("duration_manifest").to_pylist() == [4.0, 2.0, None]
    errors = good.column("duration_error").to_pylist()
    assert errors[0] == pytest.approx(-2.5, abs=0.010)
    assert errors[1] == pytest.approx(0.0, abs=0.010)
    assert errors[2] is None
    assert good.column("text").to_pylist() == ["wrong", "right", "no claim"]


def test_decoding_twice_keeps_the_manifest_claim():
    once, _ = AudioDecoder().check(_rows(audio=[encode("wav", tone(1.0))], duration=[3.0]))
    twice, _ = AudioDecoder().check(once)
    assert twice.column("duration_manifest").to_pylist() == [3.0]
    assert twice.column("duration_error")[0].as_py() == pytest.approx(-2.0, abs=0.010)
    assert twice.column_names == once.column_names


@pytest.mark.parametrize("kind", ["wav", "m4a"])  # soundfile's and FFmpeg's decoding
def test_a_stereo_44k_tone_comes_out_16k_mono_at_the_same_frequency(kind):
    rate = 44100
    left, right = tone(2.0, 1000, rate, 0.5), tone(2.0, 1000, rate, 0.3)
    stereo = np.stack([left, right], axis=1)
    good, _ = AudioDecoder().check(_rows(audio=[encode(kind, stereo, rate)]))
    row = good.to_pylist()[0]
    assert (row["pcm_rate"], row["pcm_channels"]) == (16000, 1)
    assert (row["sample_rate"], row["channels"]) == (44100, 2)
    samples = pcm_samples(row["pcm"])
    assert len(samples) == round(2.0 * 16000)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    assert np.fft.rfftfreq(len(samples), 1 / 16000)[np.argmax(spectrum)] == pytest.approx(
        1000, abs=2
    )
    # Channels are averaged (0.5 and 0.3 -> 0.4), and a good resampler keeps the level.
    assert np.sqrt(np.mean(samples[1600:-1600] ** 2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.02)


def test_resampling_is_band_limited_not_aliased():
    # 10 kHz is above the 8 kHz a 16 kHz rate can hold: a good resampler removes it,
    # where dropping samples would fold it down to 6 kHz. 7 kHz stays.
    rate = 44100
    mix = tone(1.0, 7000, rate, 0.4) + tone(1.0, 10000, rate, 0.4)
    good, _ = AudioDecoder().check(_rows(audio=[encode("wav", mix, rate)]))
    samples = pcm_samples(good.column("pcm")[0].as_py())
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / 16000)
    at = {f: spectrum[np.argmin(np.abs(freqs - f))] for f in (7000, 6000)}
    assert at[6000] < at[7000] / 1000


def test_rate_and_channels_can_be_kept():
    stereo = np.stack([tone(1.0, 440, 22050, 0.5), tone(1.0, 880, 22050, 0.25)], axis=1)
    good, _ = AudioDecoder(target_sample_rate=None, mono=False).check(
        _rows(audio=[encode("flac", stereo, 22050)])
    )
    row = good.to_pylist()[0]
    assert (row["pcm_rate"], row["pcm_channels"], row["channels"]) == (22050, 2, 2)
    samples = pcm_samples(row["pcm"], 2)
    assert samples.shape == (22050, 2)
    assert np.abs(samples - stereo).max() < 1e-3  # 16-bit FLAC round trip


def test_output_column_types():
    good, _ = AudioDecoder().check(_rows(audio=[encode("wav", tone(0.2))]))
    types = {f.name: f.type for f in good.schema}
    assert types["pcm"] == pa.large_binary()
    assert types["pcm_rate"] == types["sample_rate"] == types["channels"] == pa.int32()
    assert (
        types["duration"] == types["duration_manifest"] == types["duration_error"] == pa.float64()
    )
    assert types["audio_format"] == pa.string()


def test_unusable_audio_is_quarantined_with_the_reason_and_the_batch_goes_on(tmp_path):
    write_wav(tmp_path / "ok.wav", tone(1.0))
    write_wav(tmp_path / "gone.wav", tone(1.0))
    (tmp_path / "empty.wav").write_bytes(b"")
    corrupt(write_flac(tmp_path / "bad.flac", white_noise(1.0)))
    cut = write_mp3(tmp_path / "cut.mp3", tone(3.0)).read_bytes()
    (tmp_path / "cut.mp3").write_bytes(cut[: len(cut) // 2])
    cut = write_wav(tmp_path / "cut.wav", tone(3.0)).read_bytes()
    (tmp_path / "cut.wav").write_bytes(cut[: len(cut) // 2])
    names = ("gone.wav", "empty.wav", "bad.flac", "ok.wav", "cut.mp3", "cut.wav")
    write_manifest(tmp_path / "m.json", [{"audio_filepath": n, "duration": 1.0} for n in names])
    table = _manifest(tmp_path / "m.json")
    (tmp_path / "gone.wav").unlink()  # deleted between reading the manifest and decoding

    good, quarantine = AudioDecoder().check(table)

    assert good.column("audio_filepath_raw").to_pylist() == ["ok.wav"]
    manifest = str(tmp_path / "m.json")
    assert quarantine.column("source").to_pylist() == [manifest] * 5
    lines = table.column("_order").to_numpy() & 0xFFFFFFFF
    assert quarantine.column("line").to_pylist() == [lines[i] for i in (0, 1, 2, 4, 5)]
    assert quarantine.column("raw").to_pylist() == [None] * 5  # the files stay where they are
    reasons = quarantine.column("reason").to_pylist()
    ids = table.column("id").to_pylist()
    for reason, i in zip(reasons, (0, 1, 2, 4, 5), strict=True):
        assert reason.startswith(f"{manifest}: line {lines[i]}: id {ids[i]!r}: ")
    assert reasons[0].endswith(f"audio file {tmp_path / 'gone.wav'} not found")
    assert reasons[1].endswith(f"empty audio file {tmp_path / 'empty.wav'} (0 bytes)")
    assert "undecodable flac data" in reasons[2]
    assert "truncated mp3 audio: the data ends at 1.4" in reasons[3]
    assert reasons[3].endswith("of the 3.00 s its header declares")
    assert "truncated wav audio: the data ends at 1.50 s of the 3.00 s" in reasons[4]


@pytest.mark.parametrize("kind", ["wav", "flac", "mp3", "ogg", "opus", "m4a"])
def test_corrupt_data_of_every_format_is_quarantined(tmp_path, kind):
    path = corrupt(WRITERS[kind](tmp_path / f"a.{kind}", white_noise(1.0)))
    data = path.read_bytes()
    good, quarantine = AudioDecoder().check(_rows(**{kind: [data]}))
    assert good.num_rows == 0
    [record] = quarantine.to_pylist()
    assert "undecodable" in record["reason"] and f"(column {kind!r})" in record["reason"]
    assert record["raw"] == data


def test_bytes_that_are_not_audio_or_no_audio_at_all_are_quarantined():
    batch = _rows(audio=[b"<html>not found</html>", b"", None])
    good, quarantine = AudioDecoder().check(batch)
    assert good.num_rows == 0
    reasons = quarantine.column("reason").to_pylist()
    assert "undecodable audio data" in reasons[0]
    assert reasons[1].endswith("empty audio (0 bytes)")
    assert reasons[2].endswith("no audio: audio all null")
    _, quarantine = AudioDecoder().check(_rows(text=["no audio column"]))
    assert "no audio: no audio column" in quarantine.column("reason")[0].as_py()


def test_audio_longer_than_max_seconds_is_quarantined_without_decoding_it_all():
    batch = _rows(audio=[encode("flac", tone(3.0)), encode("mp3", tone(3.0))])
    good, quarantine = AudioDecoder(max_seconds=2.0).check(batch)
    assert good.num_rows == 0
    for reason in quarantine.column("reason").to_pylist():
        assert "longer than max_seconds=2" in reason


def test_an_empty_batch_gives_the_columns():
    good, quarantine = AudioDecoder().check(_rows(audio=pa.array([], pa.binary())))
    assert good.num_rows == quarantine.num_rows == 0
    assert {"pcm", "duration", "duration_manifest", "audio_format"} <= set(good.column_names)


def test_audio_is_read_from_s3(s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.pipe_file(f"{s3_bucket}/a.mp3", encode("mp3", tone(1.25)))
    batch = _rows(audio_uri=[f"s3://{s3_bucket}/a.mp3", f"s3://{s3_bucket}/missing.wav"])
    good, quarantine = AudioDecoder().check(batch)
    assert good.column("duration")[0].as_py() == pytest.approx(1.25, abs=0.010)
    assert (
        quarantine.column("reason")[0]
        .as_py()
        .endswith(f"audio file s3://{s3_bucket}/missing.wav not found")
    )


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="target_sample_rate"):
        AudioDecoder(target_sample_rate=0)
    with pytest.raises(ValueError, match="max_seconds"):
        AudioDecoder(max_seconds=-1)
