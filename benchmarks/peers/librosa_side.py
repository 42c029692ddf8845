"""The loop a user would write to check speech files, run by the librosa peer venv
(`.bench-venvs/librosa`), for `benchmarks/audio.py`:

- read: `soundfile.read` (libsndfile: WAV, FLAC, Ogg Vorbis and MP3); a file it refuses
  is decoded with PyAV (FFmpeg) instead;
- resample: `librosa.to_mono` then `librosa.resample(..., target_sr=16000)` (its default
  `soxr_hq`), which is what `librosa.load(path, sr=16000, mono=True)` does after reading;
- checks: NumPy on the 16 kHz samples: the duration (frames over the file's own rate),
  the share of 30 ms frames under the silence level, the share of samples at full scale;
- vad: silero-vad's own `get_speech_timestamps(torch.from_numpy(audio), model, ...)` with
  `load_silero_vad()` (its TorchScript model, one 32 ms frame per call), on the files the
  checks keep.

    librosa_side.py FOLDER SETTINGS_JSON

SETTINGS_JSON gives the thresholds (`min_duration`, `max_duration`, `silence_db`,
`max_silence`, `clip_level`, `max_clipped`) and the VAD's arguments (`vad`). Prints one
JSON line: per file its duration, reader, scores, decision and speech segments (seconds);
CPU (`getrusage` of this process) and wall seconds of each stage; set-up seconds (the
model load, two VAD calls and one file of each format, all before the clock); versions.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

RATE = 16000
FORMATS = (".wav", ".flac", ".mp3", ".ogg")


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read(path: Path) -> tuple[np.ndarray, int, str]:
    """(frames, channels) float32 samples, their rate, and which library decoded them."""
    import soundfile as sf

    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return samples, rate, "soundfile"
    except sf.LibsndfileError:
        pass
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        packed = av.AudioResampler(format="flt")  # float32, interleaved, same rate
        blocks = [
            out.to_ndarray().reshape(-1, channels)
            for frame in container.decode(stream)
            for out in packed.resample(frame)
        ]
        rate = stream.codec_context.sample_rate
    return np.concatenate(blocks), rate, "pyav"


def main(folder: str, settings: dict) -> None:
    from importlib.metadata import version

    import librosa
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    torch.set_num_threads(1)

    def resample(samples: np.ndarray, rate: int) -> np.ndarray:
        mono = librosa.to_mono(samples.T)
        return librosa.resample(mono, orig_sr=rate, target_sr=RATE)

    setup0 = time.perf_counter()
    model = load_silero_vad()
    warm = np.random.default_rng(0).uniform(-0.1, 0.1, 2 * RATE).astype(np.float32)
    for _ in range(2):  # TorchScript optimises on its first calls: outside the clock
        get_speech_timestamps(torch.from_numpy(warm), model, sampling_rate=RATE)
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix in FORMATS)
    for suffix in FORMATS:  # the first file of each format: first calls outside the clock
        first = next((p for p in paths if p.suffix == suffix), None)
        if first is not None:
            samples, rate, _ = read(first)
            resample(samples, rate)
    setup_s = time.perf_counter() - setup0

    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}

    def timed(stage: str, call, *args, **kwargs):
        cpu0, wall0 = process_cpu(), time.perf_counter()
        result = call(*args, **kwargs)
        cpu[stage] = cpu.get(stage, 0.0) + process_cpu() - cpu0
        wall[stage] = wall.get(stage, 0.0) + time.perf_counter() - wall0
        return result

    silence_power = 10 ** (settings["silence_db"] / 10)
    frame = int(RATE * 0.030)

    def checks(audio: np.ndarray, duration: float) -> dict:
        usable = audio[: len(audio) // frame * frame].reshape(-1, frame)
        power = np.mean(np.square(usable, dtype=np.float64), axis=1)
        silence = float(np.mean(power < silence_power))
        clipped = float(np.mean(np.abs(audio) >= settings["clip_level"]))
        return {
            "duration": settings["min_duration"] <= duration <= settings["max_duration"],
            "silence": silence <= settings["max_silence"],
            "clipping": clipped <= settings["max_clipped"],
            "silence_share": silence,
            "clipped_share": clipped,
        }

    vad = settings["vad"]
    files = []
    for path in paths:
        before = cpu.get("read", 0.0)
        samples, rate, reader = timed("read", read, path)
        read_cpu = cpu["read"] - before
        audio = timed("resample", resample, samples, rate)
        duration = len(samples) / rate
        found = timed("checks", checks, audio, duration)
        kept = found["duration"] and found["silence"] and found["clipping"]
        segments = None
        if kept:
            spans = timed(
                "vad",
                get_speech_timestamps,
                torch.from_numpy(audio),
                model,
                threshold=vad["threshold"],
                sampling_rate=RATE,
                min_speech_duration_ms=vad["min_speech_duration_ms"],
                max_speech_duration_s=vad["max_speech_duration_s"],
                min_silence_duration_ms=vad["min_silence_duration_ms"],
                speech_pad_ms=vad["speech_pad_ms"],
            )
            segments = [[s["start"] / RATE, s["end"] / RATE] for s in spans]
        files.append(
            {
                "file": path.name,
                "reader": reader,
                "read_cpu_s": read_cpu,
                "duration": duration,
                "sample_rate": rate,
                "channels": samples.shape[1],
                "silence_share": found["silence_share"],
                "clipped_share": found["clipped_share"],
                "kept": kept,
                "dropped_by": [k for k in ("duration", "silence", "clipping") if not found[k]],
                "segments": segments,
            }
        )
    print(
        json.dumps(
            {
                "files": files,
                "cpu_s": cpu,
                "wall_s": wall,
                "setup_s": round(setup_s, 2),
                "torch_threads": torch.get_num_threads(),
                "versions": {
                    name: version(name)
                    for name in ("librosa", "soundfile", "soxr", "silero-vad", "torch", "av")
                }
                | {"libsndfile": __import__("soundfile").__libsndfile_version__},
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
