"""Test audio, generated: small (seconds, not minutes), deterministic (fixed frequencies,
seeded NumPy generators, fixed encoder settings).

Signals are float32 NumPy arrays in [-1, 1] at `rate` (16 kHz unless told):

- `speech(text, path=None, rate)`: English speech synthesised by espeak-ng (160 words a
  minute); `SPEECH_AVAILABLE` says whether the binary is installed. Without it `speech`
  raises `SpeechUnavailable`; `speech_or_tone` then gives `syllables`, a tone pulsed at a
  speaking rhythm, so fixtures that only need "something voiced" still run;
- `tone(seconds, freq, rate, amplitude)`, `silence(seconds)`, `white_noise(seconds,
  seed)`, `clipped(seconds)` (a tone driven four times past full scale: about 84% of its
  samples sit at +-1.0);
- `with_pauses(segments)`: speech (a `str`), silence (a number of seconds) or any signal
  (an array) one after the other; returns the samples and the `(start, end)` seconds of
  each voiced segment.

Writers (each returns its path; a 2-D signal is `(frames, channels)`): `write_wav`,
`write_flac`, `write_ogg` (Vorbis, through soundfile's libvorbis: FFmpeg's own Vorbis
encoder is experimental and stereo only), and through PyAV's encoders `write_mp3`
(LAME, with the Xing/LAME header that tells decoders the priming and padding),
`write_opus` (Ogg Opus), `write_m4a` (AAC in MP4). `encode(kind, signal, rate)` gives
the bytes instead of a file. `corrupt(path)` keeps a file's signature and turns the
rest into garbage; `write_manifest(path, entries)` writes a NeMo JSONL manifest.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

RATE = 16000
SPEECH_AVAILABLE = shutil.which("espeak-ng") is not None
SPEECH_MISSING = "espeak-ng is not installed: speech fixtures fall back to tones"


class SpeechUnavailable(RuntimeError):
    """espeak-ng is not installed."""


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono `samples` from `rate` to `target` with libswresample (PyAV)."""
    if rate == target:
        return samples.astype(np.float32)
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt", layout="mono"
    )
    frame.sample_rate = rate
    out = [f.to_ndarray()[0] for f in resampler.resample(frame)]
    out += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def speech(text: str, path: str | Path | None = None, rate: int = RATE) -> np.ndarray:
    """`text` spoken by espeak-ng (`-s 160`), mono at `rate`; also written to `path` as a
    16-bit WAV when given. Raises `SpeechUnavailable` without espeak-ng."""
    if not SPEECH_AVAILABLE:
        raise SpeechUnavailable(SPEECH_MISSING)
    import soundfile as sf

    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-w", str(raw), "-s", "160", text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        samples, native = sf.read(str(raw), dtype="float32", always_2d=True)
    samples = _resample(samples.mean(axis=1), native, rate)
    if path is not None:
        write_wav(path, samples, rate)
    return samples


def syllables(seconds: float, rate: int = RATE) -> np.ndarray:
    """A stand-in for speech: a 150 Hz tone with harmonics, pulsed at 4 syllables a
    second (each pulse a raised-cosine burst, quiet between)."""
    t = np.arange(int(round(seconds * rate))) / rate
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in (1, 2, 3, 4))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    return (0.3 * voice * envelope).astype(np.float32)


def speech_or_tone(text: str, rate: int = RATE) -> np.ndarray:
    """`speech(text)` with espeak-ng, else `syllables` lasting as long as the text would
    (about 13 characters a second)."""
    if SPEECH_AVAILABLE:
        return speech(text, rate=rate)
    return syllables(max(0.5, len(text) / 13), rate)


def tone(
    seconds: float, freq: float = 440.0, rate: int = RATE, amplitude: float = 0.5
) -> np.ndarray:
    """A sine of `freq` Hz and peak `amplitude` (full scale is 1.0)."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(round(seconds * rate)), np.float32)


def white_noise(
    seconds: float, seed: int = 0, rate: int = RATE, amplitude: float = 0.5
) -> np.ndarray:
    """Uniform white noise in [-amplitude, amplitude] from a seeded generator."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    return rng.uniform(-amplitude, amplitude, n).astype(np.float32)


def clipped(
    seconds: float, freq: float = 440.0, rate: int = RATE, drive: float = 4.0
) -> np.ndarray:
    """A tone driven `drive` times past full scale and clipped to [-1, 1]: a share
    1 - (2/pi) asin(1/drive) of its samples (84% for 4) sit at full scale."""
    return np.clip(tone(seconds, freq, rate, amplitude=drive), -1.0, 1.0)


def with_pauses(
    segments: list[str | float | np.ndarray], rate: int = RATE
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """`segments` one after the other: a `str` is spoken (`speech_or_tone`), a number is
    that many seconds of silence, an array is used as it is. Returns the samples and the
    `(start, end)` seconds of every segment that is not silence."""
    parts: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    at = 0
    for segment in segments:
        if isinstance(segment, str):
            part = speech_or_tone(segment, rate)
        elif isinstance(segment, int | float):
            part = silence(float(segment), rate)
        else:
            part = np.asarray(segment, np.float32)
        if not isinstance(segment, int | float):
            spans.append((at / rate, (at + len(part)) / rate))
        parts.append(part)
        at += len(part)
    samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return samples, spans


# ---- writers


def _soundfile(path, samples, rate, format, subtype) -> Path:
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples, np.float32), rate, format=format, subtype=subtype)
    return path


def write_wav(path, samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    return _soundfile(path, samples, rate, "WAV", subtype)


def write_flac(path, samples: np.ndarray, rate: int = RATE) -> Path:
    return _soundfile(path, samples, rate, "FLAC", "PCM_16")


def write_ogg(path, samples: np.ndarray, rate: int = RATE) -> Path:
    """Ogg Vorbis, by libsndfile's libvorbis (FFmpeg's native Vorbis encoder is
    experimental and stereo only)."""
    return _soundfile(path, samples, rate, "OGG", "VORBIS")


_PYAV = {
    # kind: codec, container format, the encoder's rates (None: any)
    "mp3": ("libmp3lame", "mp3", None),
    "opus": ("libopus", "ogg", (48000, 24000, 16000, 12000, 8000)),
    "m4a": ("aac", "ipod", None),
}


def _pyav(target, samples: np.ndarray, rate: int, kind: str, bit_rate: int | None) -> None:
    import av

    codec, container_format, rates = _PYAV[kind]
    samples = np.asarray(samples, np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    layout = {1: "mono", 2: "stereo"}[samples.shape[1]]
    stream_rate = rate if rates is None or rate in rates else 48000
    with av.open(target, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=stream_rate)
        stream.layout = layout
        if bit_rate:
            stream.bit_rate = bit_rate
        step = 4096
        for start in range(0, len(samples), step):
            chunk = np.ascontiguousarray(samples[start : start + step].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _write_pyav(path, samples, rate, kind, bit_rate) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _pyav(str(path), samples, rate, kind, bit_rate)
    return path


def write_mp3(path, samples: np.ndarray, rate: int = RATE, bit_rate: int | None = None) -> Path:
    return _write_pyav(path, samples, rate, "mp3", bit_rate)


def write_opus(path, samples: np.ndarray, rate: int = RATE, bit_rate: int | None = None) -> Path:
    """Ogg Opus; a rate Opus cannot take is resampled to 48 kHz by the encoder."""
    return _write_pyav(path, samples, rate, "opus", bit_rate)


def write_m4a(path, samples: np.ndarray, rate: int = RATE, bit_rate: int | None = None) -> Path:
    return _write_pyav(path, samples, rate, "m4a", bit_rate)


WRITERS = {
    "wav": write_wav,
    "flac": write_flac,
    "ogg": write_ogg,
    "mp3": write_mp3,
    "opus": write_opus,
    "m4a": write_m4a,
}


def encode(kind: str, samples: np.ndarray, rate: int = RATE) -> bytes:
    """The bytes `WRITERS[kind]` would write."""
    with tempfile.TemporaryDirectory() as folder:
        return WRITERS[kind](Path(folder) / f"x.{kind}", samples, rate).read_bytes()


_SIGNATURES = {b"RIFF": 12, b"fLaC": 4, b"OggS": 4, b"ID3": 3}


def corrupt(path, seed: int = 0) -> Path:
    """`path` rewritten as its format's signature (`RIFF....WAVE`, `fLaC`, `OggS`, `ID3`,
    an MP4 `ftyp` box) followed by seeded random bytes, the same length as before: a file
    that looks like its format to a magic-number check and then does not decode."""
    path = Path(path)
    data = path.read_bytes()
    keep = next((n for magic, n in _SIGNATURES.items() if data.startswith(magic)), None)
    if keep is None:
        keep = int.from_bytes(data[:4], "big") if data[4:8] == b"ftyp" else 4
    garbage = np.random.default_rng(seed).integers(0, 256, max(len(data) - keep, 64), np.uint8)
    path.write_bytes(data[:keep] + garbage.tobytes())
    return path


def write_manifest(path, entries: list[dict]) -> Path:
    """A NeMo manifest: one JSON object a line (`audio_filepath`, `duration`, `text`...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    for entry in entries:
        buffer.write(json.dumps(entry) + "\n")
    path.write_text(buffer.getvalue())
    return path
