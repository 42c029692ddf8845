"""Audio checks that need no model, scored from the decoded samples (`AudioDecoder`'s
`pcm` at `pcm_rate`; `pcm_channels` > 1 is averaged to one channel first).

- `AudioDurationFilter(min_duration, max_duration)`: keeps rows whose measured `duration`
  lies between the bounds (NeMo Curator: `GetAudioDurationStage` then
  `PreserveByValueStage("duration", ..., "ge"/"le")`).
- `SilenceFilter(max_silence_fraction)`: the share of 30 ms frames quieter than
  `threshold_db`; removes recordings that are mostly silence.
- `ClippingFilter(max_clipped_fraction)`: the share of samples at full scale.
- `SnrFilter(min_snr_db)`: a signal-to-noise estimate from the loud and quiet frames.
- `SampleRateFilter(min_sample_rate)`: the file's own sample rate.
- `BandwidthFilter(min_bandwidth_hz)`: the highest frequency within 50 dB of the
  spectrum's peak; finds narrow-band audio (telephone, 8 kHz) resampled to a higher rate.

Levels are in dBFS with full scale 1.0: 20 log10(RMS), so a full-scale sine is -3 dBFS.
Scores are computed one recording at a time, each with NumPy on all its frames at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from stages.base import Filter

_POWER_FLOOR = 1e-10  # -100 dBFS: keeps logarithms finite for digital silence
_FFT_FRAMES = 4096  # frames transformed at a time (bounds memory on long recordings)


def _column(batch: pa.Table, name: str, stage: str, hint: str = "run AudioDecoder first"):
    if name not in batch.column_names:
        raise KeyError(f"{stage}: input has no column {name!r} ({hint})")
    return batch.column(name)


def _numbers(batch: pa.Table, name: str, stage: str) -> np.ndarray:
    column = _column(batch, name, stage)
    return column.to_numpy(zero_copy_only=False).astype(np.float64)


def recordings(batch: pa.Table, stage: str) -> Iterator[tuple[np.ndarray, int]]:
    """Each row's mono float32 samples and their rate, from `pcm`, `pcm_rate` and (when
    present) `pcm_channels`."""
    pcm = _column(batch, "pcm", stage).to_pylist()
    rates = _column(batch, "pcm_rate", stage).to_pylist()
    channels = (
        batch.column("pcm_channels").to_pylist()
        if "pcm_channels" in batch.column_names
        else [1] * batch.num_rows
    )
    for value, rate, count in zip(pcm, rates, channels, strict=True):
        samples = np.frombuffer(value or b"", dtype="<f4")
        count = count or 1
        if count > 1:
            samples = samples[: len(samples) // count * count].reshape(-1, count).mean(axis=1)
        yield samples, int(rate or 0)


def frames(samples: np.ndarray, size: int) -> np.ndarray:
    """`samples` as consecutive frames of `size`, shape (frames, size); a trailing part
    frame is dropped, except that a recording shorter than one frame is one frame."""
    size = max(1, size)
    if len(samples) < size:
        return samples[None, :]
    count = len(samples) // size
    return samples[: count * size].reshape(count, size)


def frame_power(samples: np.ndarray, rate: int, frame_ms: float) -> np.ndarray:
    """Mean square of each `frame_ms` frame (float64)."""
    framed = frames(samples, int(round(rate * frame_ms / 1000)))
    return np.mean(np.square(framed, dtype=np.float64), axis=1)


def _scores(batch: pa.Table, stage: str, score: Callable[[np.ndarray, int], float]) -> np.ndarray:
    return np.array(
        [score(samples, rate) for samples, rate in recordings(batch, stage)], dtype=np.float64
    )


def _fraction(value: float, name: str) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"{name}={value}: must be in [0, 1]")
    return value


class AudioDurationFilter(Filter):
    """Keep recordings lasting between `min_duration` and `max_duration` seconds (either
    may be None; both bounds inclusive). The score is the measured `duration`; a row
    without one is removed.

    NeMo Curator does this with `GetAudioDurationStage` (the header's duration) and
    `PreserveByValueStage(input_value_key="duration", target_value=..., operator="le")`;
    here `duration` is the one `AudioDecoder` measured from the samples.
    """

    def __init__(
        self,
        min_duration: float | None = None,
        max_duration: float | None = None,
        keep_score: bool = False,
        score_only: bool = False,
    ):
        if min_duration is not None and max_duration is not None and min_duration > max_duration:
            raise ValueError(f"min_duration={min_duration} is above max_duration={max_duration}")
        self.min_duration, self.max_duration = min_duration, max_duration
        self.keep_score, self.score_only = keep_score, score_only

    def score(self, batch: pa.Table) -> np.ndarray:
        return _numbers(batch, "duration", self.stage_name)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        keep = np.isfinite(scores)
        if self.min_duration is not None:
            keep &= scores >= self.min_duration
        if self.max_duration is not None:
            keep &= scores <= self.max_duration
        return keep


class SilenceFilter(Filter):
    """Remove recordings that are mostly silence.

    Score: the share of `frame_ms` (30 ms) frames whose RMS level is below `threshold_db`
    (-50 dBFS: well under room noise in a quiet recording, well over digital silence).
    Keep rule: score <= `max_silence_fraction` (0.8), so an all-silent file (score 1.0)
    goes and speech with ordinary pauses stays. A voice activity detector (`stages.audio.vad`)
    judges speech itself; this is the cheap first cut.
    """

    def __init__(
        self,
        max_silence_fraction: float = 0.8,
        threshold_db: float = -50.0,
        frame_ms: float = 30.0,
        keep_score: bool = False,
        score_only: bool = False,
    ):
        self.max_silence_fraction = _fraction(max_silence_fraction, "max_silence_fraction")
        if frame_ms <= 0:
            raise ValueError(f"frame_ms={frame_ms}: must be positive")
        self.threshold_db, self.frame_ms = threshold_db, frame_ms
        self.keep_score, self.score_only = keep_score, score_only

    def score(self, batch: pa.Table) -> np.ndarray:
        floor = 10 ** (self.threshold_db / 10)  # a power: (10^(dB/20))^2

        def silent_share(samples: np.ndarray, rate: int) -> float:
            if not len(samples) or rate <= 0:
                return 1.0
            return float(np.mean(frame_power(samples, rate, self.frame_ms) < floor))

        return _scores(batch, self.stage_name, silent_share)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_silence_fraction


class ClippingFilter(Filter):
    """Remove recordings that clip: driven past full scale, their peaks flattened.

    Score: the share of samples with |x| >= `level` (0.999) of full scale (16-bit PCM's
    largest value, 32767/32768, counts). Keep rule: score <= `max_clipped_fraction`
    (0.01; a loud but clean recording touches full scale at a few isolated peaks).
    Resampling smooths flat tops a little, so the count is exact when the decoder keeps
    the file's rate (`AudioDecoder(target_sample_rate=None)`) and slightly low otherwise.
    """

    def __init__(
        self,
        max_clipped_fraction: float = 0.01,
        level: float = 0.999,
        keep_score: bool = False,
        score_only: bool = False,
    ):
        self.max_clipped_fraction = _fraction(max_clipped_fraction, "max_clipped_fraction")
        if not 0 < level <= 1:
            raise ValueError(f"level={level}: must be in (0, 1]")
        self.level = level
        self.keep_score, self.score_only = keep_score, score_only

    def score(self, batch: pa.Table) -> np.ndarray:
        def clipped_share(samples: np.ndarray, rate: int) -> float:
            return float(np.mean(np.abs(samples) >= self.level)) if len(samples) else 0.0

        return _scores(batch, self.stage_name, clipped_share)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_clipped_fraction


class SnrFilter(Filter):
    """Remove noisy recordings, by a signal-to-noise estimate that needs no model.

    Score (dB): 10 log10 of the `signal_percentile` (95th) over the `noise_percentile`
    (10th) of the `frame_ms` (30 ms) frames' energies: speech peaks against the noise
    floor heard in its pauses (energies floored at -100 dBFS, so digital silence gives a
    large finite value and an all-silent file 0 dB). Keep rule: score >= `min_snr_db`
    (10 dB). The estimate assumes pauses: steady sound with none (noise, music, a tone)
    scores near 0 dB and is removed, which is why a flow should make this filter opt-in.
    """

    def __init__(
        self,
        min_snr_db: float = 10.0,
        signal_percentile: float = 95.0,
        noise_percentile: float = 10.0,
        frame_ms: float = 30.0,
        keep_score: bool = False,
        score_only: bool = False,
    ):
        if not 0 <= noise_percentile < signal_percentile <= 100:
            raise ValueError(
                f"noise_percentile={noise_percentile} and signal_percentile="
                f"{signal_percentile}: need 0 <= noise < signal <= 100"
            )
        if frame_ms <= 0:
            raise ValueError(f"frame_ms={frame_ms}: must be positive")
        self.min_snr_db = min_snr_db
        self.signal_percentile, self.noise_percentile = signal_percentile, noise_percentile
        self.frame_ms = frame_ms
        self.keep_score, self.score_only = keep_score, score_only

    def score(self, batch: pa.Table) -> np.ndarray:
        def snr(samples: np.ndarray, rate: int) -> float:
            if not len(samples) or rate <= 0:
                return 0.0
            power = frame_power(samples, rate, self.frame_ms) + _POWER_FLOOR
            noise, signal = np.percentile(power, [self.noise_percentile, self.signal_percentile])
            return float(10 * math.log10(signal / noise))

        return _scores(batch, self.stage_name, snr)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.min_snr_db


class SampleRateFilter(Filter):
    """Keep recordings whose own sample rate (`sample_rate`, before any resampling) is
    at least `min_sample_rate` Hz; the score is that rate, a row without one is removed.
    A file recorded at a higher rate than its content (8 kHz audio saved at 44.1 kHz)
    passes: `BandwidthFilter` catches it."""

    def __init__(
        self, min_sample_rate: int = 16000, keep_score: bool = False, score_only: bool = False
    ):
        self.min_sample_rate = min_sample_rate
        self.keep_score, self.score_only = keep_score, score_only

    def score(self, batch: pa.Table) -> np.ndarray:
        return _numbers(batch, "sample_rate", self.stage_name)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return np.isfinite(scores) & (scores >= self.min_sample_rate)


class BandwidthFilter(Filter):
    """Remove narrow-band recordings: telephone or 8 kHz audio resampled to a higher rate.

    Score (Hz): the highest frequency whose power, in the recording's average power
    spectrum (Hann-windowed frames of about 32 ms), is within `frequency_threshold`
    (-50 dB) of the spectrum's peak: NeMo Curator's `BandwidthEstimationStage` rule and
    keyword. Audio sampled at 8 kHz holds nothing above 4 kHz, so it scores about 4.5 kHz
    (the resampler's transition band) however it was resampled; wideband speech at 16 kHz
    scores 7.5 to 8 kHz. Keep rule: score >= `min_bandwidth_hz` (5000). Silence scores 0.

    Not the frequency under which 99% of the energy lies: speech puts 99% of its energy
    under 3.5 to 5 kHz whether it was recorded wideband or through a telephone, so that
    measure cannot tell them apart.
    """

    def __init__(
        self,
        min_bandwidth_hz: float = 5000.0,
        frequency_threshold: float = -50.0,
        keep_score: bool = False,
        score_only: bool = False,
    ):
        if frequency_threshold >= 0:
            raise ValueError(f"frequency_threshold={frequency_threshold}: must be below 0 dB")
        self.min_bandwidth_hz = min_bandwidth_hz
        self.frequency_threshold = frequency_threshold
        self.keep_score, self.score_only = keep_score, score_only

    def score(self, batch: pa.Table) -> np.ndarray:
        return _scores(batch, self.stage_name, self.bandwidth)

    def bandwidth(self, samples: np.ndarray, rate: int) -> float:
        """The score of one mono recording at `rate`."""
        if not len(samples) or rate <= 0:
            return 0.0
        size = 1 << max(4, round(math.log2(0.032 * rate)))
        framed = frames(samples, size)
        if framed.shape[1] < size:
            framed = np.pad(framed, ((0, 0), (0, size - framed.shape[1])))
        window = np.hanning(size).astype(np.float32)
        power = np.zeros(size // 2 + 1, dtype=np.float64)
        for start in range(0, len(framed), _FFT_FRAMES):
            spectrum = np.fft.rfft(framed[start : start + _FFT_FRAMES] * window, axis=1)
            power += np.sum(np.square(np.abs(spectrum), dtype=np.float64), axis=0)
        peak = power.max()
        if peak <= 0:
            return 0.0
        within = np.flatnonzero(power > peak * 10 ** (self.frequency_threshold / 10))
        return float(np.fft.rfftfreq(size, 1 / rate)[within[-1]])

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.min_bandwidth_hz
