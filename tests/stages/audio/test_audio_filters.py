"""Audio filters, scored from decoded generated signals: each keeps and removes what it
says (silence, noise, clipping, narrow band, speech when espeak-ng is installed)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from audio import (
    SPEECH_AVAILABLE,
    SPEECH_MISSING,
    clipped,
    encode,
    silence,
    speech_or_tone,
    tone,
    white_noise,
    with_pauses,
)

from stages.audio.decode import AudioDecoder
from stages.audio.filters import (
    AudioDurationFilter,
    BandwidthFilter,
    ClippingFilter,
    SampleRateFilter,
    SilenceFilter,
    SnrFilter,
)
from stages.base import Filter

SENTENCE = "The quick brown fox jumps over the lazy dog."


def _decoded(signals: dict[str, np.ndarray], rate: int = 16000, **decoder) -> pa.Table:
    rows = pa.table(
        {"id": list(signals), "audio": [encode("wav", s, rate) for s in signals.values()]}
    )
    good, quarantine = AudioDecoder(**decoder).check(rows)
    assert quarantine.num_rows == 0
    return good


@pytest.fixture(scope="module")
def signals() -> pa.Table:
    """Three seconds or so of each kind of signal, decoded at 16 kHz. `speech` and
    `paused` are espeak-ng's voice, or pulsed tones without it (SPEECH_MISSING)."""
    paused, _ = with_pauses(["hello there", 0.6, "how are you today"])
    quiet_floor = white_noise(len(paused) / 16000, seed=1, amplitude=0.003)[: len(paused)]
    spoken = speech_or_tone(SENTENCE)
    loud_noise = white_noise(len(spoken) / 16000 + 1, seed=2, amplitude=0.3)[: len(spoken)]
    return _decoded(
        {
            "silence": silence(3.0),
            "noise": white_noise(3.0),
            "clipped": clipped(3.0),
            "tone": tone(3.0),
            "speech": spoken,
            "paused": paused + quiet_floor,
            "mostly_silent": with_pauses(["hello", 8.0])[0],
            "noisy_speech": spoken + loud_noise,
        }
    )


def _verdicts(stage: Filter, batch: pa.Table) -> dict[str, bool]:
    scores, mask = stage.mask(batch)
    assert len(scores) == batch.num_rows
    return dict(zip(batch.column("id").to_pylist(), mask.tolist(), strict=True))


def _scores(stage: Filter, batch: pa.Table) -> dict[str, float]:
    scores, _ = stage.mask(batch)
    return dict(zip(batch.column("id").to_pylist(), scores.tolist(), strict=True))


# ---- duration


def test_duration_keeps_recordings_between_the_bounds_inclusive():
    batch = pa.table({"duration": [0.5, 1.0, 5.0, 20.0, 20.5, None, float("nan")]})
    kept = AudioDurationFilter(min_duration=1.0, max_duration=20.0).process(batch)
    assert kept.column("duration").to_pylist() == [1.0, 5.0, 20.0]


def test_duration_bounds_may_be_left_open_and_are_checked():
    batch = pa.table({"duration": [0.5, 30.0]})
    assert AudioDurationFilter(min_duration=1.0).process(batch).num_rows == 1
    assert AudioDurationFilter(max_duration=1.0).process(batch).num_rows == 1
    assert AudioDurationFilter().process(batch).num_rows == 2
    with pytest.raises(ValueError, match="above"):
        AudioDurationFilter(min_duration=2, max_duration=1)
    with pytest.raises(KeyError, match="AudioDecoder"):
        AudioDurationFilter().process(pa.table({"x": [1]}))


def test_duration_filters_on_the_measured_duration_not_the_manifest_claim():
    claimed = pa.table({"audio": [encode("wav", tone(1.0))], "duration": [9.0]})
    good, _ = AudioDecoder().check(claimed)
    assert AudioDurationFilter(max_duration=2.0).process(good).num_rows == 1
    assert AudioDurationFilter(min_duration=2.0).process(good).num_rows == 0


# ---- silence


def test_silence_removes_silent_and_mostly_silent_recordings(signals):
    verdicts = _verdicts(SilenceFilter(), signals)
    assert verdicts == {
        "silence": False,
        "noise": True,
        "clipped": True,
        "tone": True,
        "speech": True,
        "paused": True,
        "mostly_silent": False,
        "noisy_speech": True,
    }
    scores = _scores(SilenceFilter(), signals)
    assert scores["silence"] == 1.0 and scores["tone"] == 0.0
    assert 0.85 < scores["mostly_silent"] < 1.0  # 8 s of silence after a word
    assert 0.0 < scores["paused"] < 0.8


def test_silence_is_judged_against_the_energy_floor():
    # RMS 0.001 (-60 dBFS) is under the -50 dBFS floor; RMS 0.01 (-40 dBFS) is over it.
    quiet = _decoded(
        {
            "-60": tone(1.0, amplitude=0.001 * math.sqrt(2)),
            "-40": tone(1.0, amplitude=0.01 * math.sqrt(2)),
        }
    )
    assert _verdicts(SilenceFilter(), quiet) == {"-60": False, "-40": True}
    assert _verdicts(SilenceFilter(threshold_db=-70), quiet) == {"-60": True, "-40": True}


# ---- clipping


def test_clipping_removes_the_clipped_tone_only(signals):
    verdicts = _verdicts(ClippingFilter(), signals)
    assert [k for k, kept in verdicts.items() if not kept] == ["clipped"]
    scores = _scores(ClippingFilter(), signals)
    # A sine driven 4x past full scale sits there 1 - (2/pi) asin(1/4) of the time; the
    # 16-bit WAV stores full scale as 32767/32768, which counts.
    assert scores["clipped"] == pytest.approx(1 - 2 / math.pi * math.asin(0.25), abs=0.01)
    assert scores["tone"] == scores["silence"] == scores["noise"] == 0.0


def test_a_few_samples_at_full_scale_are_tolerated():
    signal = tone(2.0, amplitude=0.5)
    signal[::200] = 1.0  # 0.5% of the samples
    assert ClippingFilter().process(_decoded({"peaks": signal})).num_rows == 1
    assert (
        ClippingFilter(max_clipped_fraction=0.001).process(_decoded({"peaks": signal})).num_rows
        == 0
    )


# ---- SNR


def test_snr_keeps_speech_with_a_quiet_floor_and_removes_noise(signals):
    verdicts = _verdicts(SnrFilter(), signals)
    assert verdicts["paused"] is True
    assert verdicts["speech"] is True
    assert verdicts["noise"] is False
    assert verdicts["noisy_speech"] is False
    assert verdicts["silence"] is False
    scores = _scores(SnrFilter(), signals)
    assert scores["paused"] > 30  # speech peaks over a floor at about -55 dBFS
    assert abs(scores["noise"]) < 3
    assert scores["silence"] == 0.0


def test_snr_needs_pauses_so_a_steady_tone_scores_near_zero(signals):
    assert _scores(SnrFilter(), signals)["tone"] == pytest.approx(0.0, abs=1.0)
    with pytest.raises(ValueError, match="noise_percentile"):
        SnrFilter(noise_percentile=95, signal_percentile=10)


# ---- sample rate and bandwidth


def test_sample_rate_filter_reads_the_files_own_rate():
    batch = pa.concat_tables(
        [_decoded({f"{rate}": tone(0.5, rate=rate)}, rate) for rate in (8000, 16000, 44100)]
    )
    assert batch.column("pcm_rate").to_pylist() == [16000] * 3
    verdicts = _verdicts(SampleRateFilter(min_sample_rate=16000), batch)
    assert verdicts == {"8000": False, "16000": True, "44100": True}
    assert _scores(SampleRateFilter(), batch)["8000"] == 8000


def test_bandwidth_finds_8k_audio_resampled_to_16k():
    wide = _decoded({"wide": white_noise(2.0)})
    narrow = _decoded({"narrow": white_noise(2.0, rate=8000)}, rate=8000)
    batch = pa.concat_tables([wide, narrow, _decoded({"silence": silence(1.0), "tone": tone(1.0)})])
    scores = _scores(BandwidthFilter(), batch)
    assert scores["wide"] >= 7500
    assert 3900 <= scores["narrow"] <= 4700
    assert scores["silence"] == 0.0
    assert scores["tone"] < 1000  # a pure tone has no band to speak of
    assert _verdicts(BandwidthFilter(), batch) == {
        "wide": True,
        "narrow": False,
        "silence": False,
        "tone": False,
    }


@pytest.mark.skipif(not SPEECH_AVAILABLE, reason=SPEECH_MISSING + "; this test needs speech")
def test_bandwidth_keeps_wideband_speech_and_removes_telephone_band_speech():
    wide = _decoded({"wide": speech_or_tone(SENTENCE)})
    narrow = _decoded({"narrow": speech_or_tone(SENTENCE, rate=8000)}, rate=8000)
    verdicts = _verdicts(BandwidthFilter(), pa.concat_tables([wide, narrow]))
    assert verdicts == {"wide": True, "narrow": False}


# ---- all filters


@pytest.mark.parametrize(
    "stage",
    [SilenceFilter(), ClippingFilter(), SnrFilter(), BandwidthFilter(), SampleRateFilter()],
    ids=lambda s: type(s).__name__,
)
def test_score_only_keeps_every_row_with_its_score(signals, stage):
    stage.score_only = True
    out = stage.process(signals)
    assert out.num_rows == signals.num_rows
    column = f"score_{type(stage).__name__}"
    assert out.column(column).to_pylist() == pytest.approx(stage.mask(signals)[0].tolist())


def test_keep_score_is_a_constructor_argument(signals):
    out = SilenceFilter(keep_score=True).process(signals)
    assert out.num_rows == signals.num_rows - 2
    assert "score_SilenceFilter" in out.column_names
    assert SilenceFilter(score_only=True).process(signals).num_rows == signals.num_rows


def test_multichannel_pcm_is_scored_as_the_average_of_its_channels():
    stereo = np.stack([silence(1.0), tone(1.0)], axis=1)
    batch = _decoded({"one_side": stereo}, mono=False)
    assert batch.column("pcm_channels").to_pylist() == [2]
    assert _scores(SilenceFilter(), batch)["one_side"] == 0.0
    assert _scores(ClippingFilter(), batch)["one_side"] == 0.0


def test_filters_need_decoded_audio():
    with pytest.raises(KeyError, match="pcm.*AudioDecoder"):
        SilenceFilter().process(pa.table({"audio": [b"RIFF"]}))
