"""Benchmark: the speech flow's CPU stages per core, against the loop a user would write
with librosa, soundfile and silero-vad on the same files in the same run, and Whisper's
real-time factor.

The files (`tests/audio.py`, made once and cached in `.bench-cache/audio/`): `--files`
recordings of 5 to 30 s, espeak-ng speech with pauses over a faint noise floor, as WAV
44.1 kHz stereo, FLAC 16 kHz mono, MP3 44.1 kHz stereo and Ogg Vorbis 48 kHz mono in
turn; one in eleven mostly silence, one in eleven clipped. Each side runs in its own
process with every thread pool at one thread (image.py's `SINGLE_THREAD`, torch at one
thread, no GPU), in CPU seconds (`getrusage`) and wall seconds:

- `ours`: a row per file as the files reader makes it (`id`, `source`, `_order`,
  `audio_uri`), in batches of the decoder's 32 rows: `AudioDecoder(target_sample_rate=
  16000)` (decode, mono, libswresample to 16 kHz), a `FilterChain` of
  `AudioDurationFilter`, `SilenceFilter` and `ClippingFilter`, then
  `VADSegmentationStage` (Silero VAD, NeMo Curator's defaults) on 8 rows at a time;
- `librosa`: `benchmarks/peers/librosa_side.py` in `.bench-venvs/librosa`:
  `soundfile.read`, `librosa.to_mono` + `librosa.resample` (soxr_hq), the same checks
  in NumPy, silero-vad's `get_speech_timestamps` with the same arguments, file by file;
- `whisper_cpu`: `InferenceAsrWhisperStage` with randomly initialised Whisper models of
  the real `tiny` and `base` sizes, on 30 s windows of the corpus, 1 and 8 windows a batch.

Both sides' durations (within 10 ms), keep/drop decisions and speech segments are
compared.

    .venv/bin/python benchmarks/audio.py [--files 48] [--quick] [--no-peer] [--no-whisper]
        [--gpu]

`--gpu` runs the Whisper measurement on CUDA too, or records that there is no GPU. Prints
one JSON object and exits 0; see benchmarks/README.md for the fields.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import inspect
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# image.py sets every thread pool to one thread on import and puts tests/ on the path; its
# `_subprocess` runs a side with those settings and no GPU. video.py has the clocks.
from benchmarks import image, video  # noqa: E402

CACHE = ROOT / ".bench-cache" / "audio"
PEER = ROOT / ".bench-venvs" / "librosa" / "bin" / "python"
PEER_SCRIPT = Path(__file__).resolve().parent / "peers" / "librosa_side.py"
PEER_HELP = (
    "python3 -m venv .bench-venvs/librosa && .bench-venvs/librosa/bin/pip install "
    "-c .ci/constraints.txt librosa==0.11.0 soundfile==0.14.0 silero-vad==6.2.3 "
    "torch==2.13.0 av==18.1.0 numpy==2.4.6"
)
RATE = 16000
FILES, QUICK_FILES = 48, 12
FORMATS = (  # extension, sample rate, channels: one after the other
    ("wav", 44100, 2),
    ("flac", 16000, 1),
    ("mp3", 44100, 2),
    ("ogg", 48000, 1),
)
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Yes, of course.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We measured the river every morning before the rain came.",
    "Thank you.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese.",
    "The meeting starts at nine, so do not be late again.",
    "Turn left at the second light.",
    "A large amount of the data was lost when the old server failed last winter.",
    "Maybe tomorrow.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "Open the window, please.",
)
PAUSES_S = (0.3, 0.8, 1.4, 0.45, 2.0, 0.6)  # some under the VAD's 500 ms: they join speech
NOISE = 0.003  # uniform noise floor, about -55 dBFS RMS: under the -50 dBFS silence level
CLIP_DRIVE = 8.0
# The checks, the same on both sides.
CHECKS = {
    "min_duration": 2.0,
    "max_duration": 28.0,
    "silence_db": -50.0,
    "max_silence": 0.8,
    "clip_level": 0.999,
    "max_clipped": 0.01,
}
# VADSegmentationStage's defaults (NeMo Curator's) in silero-vad's keywords.
VAD = {
    "threshold": 0.5,
    "min_speech_duration_ms": 2000,
    "max_speech_duration_s": 60.0,
    "min_silence_duration_ms": 500,
    "speech_pad_ms": 300,
}
DURATION_TOLERANCE_S = 0.010
SEGMENT_TOLERANCE_S = 0.25
# openai-whisper's published sizes (the `dims` of tiny.pt and base.pt), multilingual.
WHISPER = {
    "tiny": {"n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4},
    "base": {"n_audio_state": 512, "n_audio_head": 8, "n_audio_layer": 6},
}
WHISPER_BATCHES = (1, 8)
WHISPER_WINDOWS = 8  # on CPU; --quick measures tiny only
GPU_WINDOWS = 64
# A random model never writes the end token, so every window decodes exactly this many
# tokens: about 30 s of speech at 160 words a minute in Whisper's tokens.
WHISPER_TOKENS = 100
ALL = video.ALL  # --gpus: CUDA_VISIBLE_DEVICES was not set


# --- the files ----------------------------------------------------------------------------


def file_plan(index: int) -> dict:
    """File `index`: its format, length (5 to 30 s) and kind (`speech`, `mostly_silence`
    or `clipped`)."""
    extension, rate, channels = FORMATS[index % len(FORMATS)]
    seconds = 5.0 + (index * 7919) % 251 / 10
    kind = {5: "mostly_silence", 8: "clipped"}.get(index % 11, "speech")  # every format
    if kind == "mostly_silence":
        seconds = max(seconds, 15.0)
    plan = {"format": extension, "rate": rate, "channels": channels, "seconds": seconds}
    return plan | {"kind": kind}


def _signal(index: int, plan: dict, spoken: dict) -> tuple:
    """The samples of file `index` and the (start, end) seconds of its sentences:
    sentences and pauses in turn while they fit, silence to the end, a noise floor."""
    import numpy as np
    from audio import speech, white_noise, with_pauses

    rate, total = plan["rate"], plan["seconds"]
    parts: list = [0.3 + index % 5 / 10]
    used, k = parts[0], 0
    while k < len(SENTENCES):
        text = SENTENCES[(3 * index + k) % len(SENTENCES)]
        if (text, rate) not in spoken:
            spoken[text, rate] = speech(text, rate=rate)
        said = spoken[text, rate]
        pause = PAUSES_S[(index + k) % len(PAUSES_S)]
        k += 1
        if used + len(said) / rate + 0.3 > total:
            continue  # a shorter sentence may still fit
        parts += [said, pause]
        used += len(said) / rate + pause
        if plan["kind"] == "mostly_silence":
            break
    samples, spans = with_pauses(parts, rate)
    length = int(round(total * rate))
    samples = np.concatenate([samples, np.zeros(max(0, length - len(samples)), np.float32)])
    samples = samples[:length] + white_noise(total, seed=index, rate=rate, amplitude=NOISE)
    if plan["channels"] == 2:  # the right channel a little quieter
        samples = np.stack([samples, 0.7 * samples], axis=1)
    if plan["kind"] == "clipped":  # both channels flattened at full scale
        samples = np.clip(samples * CLIP_DRIVE, -1.0, 1.0)
    return samples.astype(np.float32), spans


def build_corpus(count: int) -> Path:
    """`count` files and their `truth.json` in a cached folder keyed by the plans, the
    sentences and the source of `tests/audio.py` and of `_signal`."""
    from audio import WRITERS

    plans = [file_plan(i) for i in range(count)]
    source = (ROOT / "tests" / "audio.py").read_bytes() + inspect.getsource(_signal).encode()
    source += repr((plans, SENTENCES, PAUSES_S, NOISE, CLIP_DRIVE)).encode()
    folder = CACHE / f"speech-{count}-{hashlib.sha256(source).hexdigest()[:10]}"
    if (folder / "truth.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    truth, spoken = {}, {}
    for i, plan in enumerate(plans):
        name = f"speech-{i:03d}.{plan['format']}"
        samples, spans = _signal(i, plan, spoken)
        WRITERS[plan["format"]](folder / name, samples, plan["rate"])
        truth[name] = {**plan, "seconds": len(samples) / plan["rate"], "speech": spans}
    print(f"generated {count} files in {folder.relative_to(ROOT)}", file=sys.stderr)
    (folder / "truth.json").write_text(json.dumps(truth, indent=1))
    return folder


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name != "truth.json")


# --- our side (its own process) -----------------------------------------------------------


def side_ours(folder: Path, args: argparse.Namespace) -> dict:
    import numpy as np
    import pyarrow as pa
    import torch

    import stages.audio.decode as decode
    from stages.audio.filters import AudioDurationFilter, ClippingFilter, SilenceFilter
    from stages.audio.vad import VADSegmentationStage
    from stages.base import FilterChain

    torch.set_num_threads(1)
    clock = video.Clock()
    by_format = video.Clock()  # the decoding of each file, by its extension
    library_resample, library_decode = decode.resample, decode.decode_audio
    decode.resample = lambda *args: clock.run("resample", library_resample, *args)
    decode.decode_audio = lambda uri, *args: by_format.run(
        Path(uri).suffix[1:], library_decode, uri, *args
    )
    decoder = decode.AudioDecoder(target_sample_rate=RATE)
    chain = FilterChain(
        [
            AudioDurationFilter(CHECKS["min_duration"], CHECKS["max_duration"]),
            SilenceFilter(CHECKS["max_silence"], threshold_db=CHECKS["silence_db"]),
            ClippingFilter(CHECKS["max_clipped"], level=CHECKS["clip_level"]),
        ],
        sample_size=0,
        track_removed=True,
    )
    vad = VADSegmentationStage()  # NeMo Curator's defaults, as `VAD`
    files = _files(folder)
    table = pa.table(
        {
            "id": [f.stem for f in files],
            "source": [f.as_uri() for f in files],
            "_order": pa.array([i << 32 for i in range(len(files))], pa.int64()),
            "audio_uri": [str(f) for f in files],
        }
    )
    setup0 = time.perf_counter()  # imports, model and first calls: outside the clock
    chain.setup()
    vad.setup()
    vad.segments(np.random.default_rng(0).uniform(-0.1, 0.1, 2 * RATE).astype(np.float32), RATE)
    decoder.check(table.take(_first_of_each_format(files)))
    for timer in (clock, by_format):
        timer.cpu.clear()
        timer.wall.clear()
    setup_s = time.perf_counter() - setup0

    found: dict[str, dict] = {}
    filter_cpu: dict[str, float] = {}
    quarantined = 0
    silence, clipping = chain.filters[1], chain.filters[2]
    for offset in range(0, table.num_rows, decoder.batch_size):
        good, bad = clock.run("decode", decoder.check, table.slice(offset, decoder.batch_size))
        quarantined += bad.num_rows
        kept, records = clock.run("checks", chain.run, good)
        segments = [
            clock.run("vad", vad.split, kept.slice(start, vad.batch_size))[0]
            for start in range(0, kept.num_rows, vad.batch_size)
        ]
        # Outside the clock: what each side is compared on.
        ids = good.column("id").to_pylist()
        scores = {"silence_share": silence.score(good), "clipped_share": clipping.score(good)}
        for i, name in enumerate(ids):
            found[name] = {
                "duration": good.column("duration")[i].as_py(),
                "audio_format": good.column("audio_format")[i].as_py(),
                "kept": True,
                "dropped_by": [],
                "segments": [],
                **{k: float(v[i]) for k, v in scores.items()},
            }
        for record in records:
            filter_cpu[record["stage"]] = filter_cpu.get(record["stage"], 0.0)
            filter_cpu[record["stage"]] += record["cpu_seconds"]
            for row in record["removed_rows"]:
                found[ids[row]]["kept"] = False
                found[ids[row]]["dropped_by"].append(_check_name(record["stage"]))
        for piece in segments:
            for parent, start, end in zip(
                piece.column("parent_id").to_pylist(),
                piece.column("segment_start").to_pylist(),
                piece.column("segment_end").to_pylist(),
                strict=True,
            ):
                found[parent]["segments"].append([start, end])
        print(f"ours: {min(offset + decoder.batch_size, len(files))} files", file=sys.stderr)
    for times in (clock.cpu, clock.wall):  # the decoder's own time without the resampling
        times["decode"] -= times.get("resample", 0.0)
        ordered = {k: times[k] for k in ("decode", "resample", "checks", "vad") if k in times}
        times.clear()
        times.update(ordered)
    return {
        "files": {f.name: found.get(f.stem) for f in files},
        "cpu_s": clock.cpu,
        "wall_s": clock.wall,
        "check_cpu_s": {_check_name(k): v for k, v in filter_cpu.items()},
        "read_cpu_s_by_format": by_format.cpu,
        "quarantined": quarantined,
        "setup_s": round(setup_s, 2),
        "torch_threads": torch.get_num_threads(),
        "versions": _our_versions(),
    }


def _first_of_each_format(files: list[Path]) -> list[int]:
    """Positions of the first file of each extension (warm-ups decode one of each)."""
    return sorted({f.suffix: i for i, f in reversed(list(enumerate(files)))}.values())


def _check_name(stage: str) -> str:
    return {
        "AudioDurationFilter": "duration",
        "SilenceFilter": "silence",
        "ClippingFilter": "clipping",
    }.get(stage, stage)


def _our_versions() -> dict:
    from importlib.metadata import version

    import av
    import soundfile

    return {
        "av": av.__version__,
        "ffmpeg (PyAV's libavcodec)": ".".join(map(str, av.library_versions["libavcodec"])),
        "soundfile": version("soundfile"),
        "libsndfile": soundfile.__libsndfile_version__,
        "silero-vad": version("silero-vad"),
        "onnxruntime": version("onnxruntime"),
        "torch": version("torch"),
        "openai-whisper": version("openai-whisper"),
        "python": platform.python_version(),
    }


# --- Whisper (its own process; on CUDA with --gpu) ----------------------------------------


def random_whisper(name: str) -> Path:
    """An openai-whisper checkpoint of the real `name` size with random weights, saved
    once as `whisper.load_model` reads a published one."""
    path = CACHE / f"whisper-{name}-random.pt"
    if path.exists():
        return path
    from dataclasses import asdict

    import torch
    from whisper.model import ModelDimensions, Whisper

    size = WHISPER[name]
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_vocab=51865,
        n_text_ctx=448,
        n_text_state=size["n_audio_state"],
        n_text_head=size["n_audio_head"],
        n_text_layer=size["n_audio_layer"],
        **size,
    )
    torch.manual_seed(0)
    model = Whisper(dims)
    with torch.no_grad():  # left uninitialised by openai-whisper (a checkpoint fills it)
        model.decoder.positional_embedding.normal_(0.0, 0.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


def _windows(folder: Path, count: int):
    """`count` 30 s windows of the corpus' speech at 16 kHz (files decoded one after the
    other, repeated if the corpus is shorter), as rows the ASR stage reads."""
    import numpy as np
    import pyarrow as pa

    from stages.audio.decode import decode_audio, downmix, resample

    window = 30 * RATE
    audio, total = [], 0
    files = _files(folder)
    while total < count * window:
        decoded = decode_audio(str(files[len(audio) % len(files)]))
        audio.append(resample(downmix(decoded.samples), decoded.sample_rate, RATE))
        total += len(audio[-1])
    samples = np.concatenate(audio)
    return pa.table(
        {
            "id": [f"window-{k}" for k in range(count)],
            "pcm": pa.array(
                [samples[k * window : (k + 1) * window].tobytes() for k in range(count)],
                pa.large_binary(),
            ),
            "pcm_rate": pa.array([RATE] * count, pa.int32()),
            "pcm_channels": pa.array([1] * count, pa.int32()),
        }
    )


def side_whisper(folder: Path, args: argparse.Namespace) -> dict:
    import torch

    from stages.audio.asr import InferenceAsrWhisperStage

    gpu = args.gpus is not None  # the GPU side; the CPU side sees none
    if gpu and not torch.cuda.is_available():
        return {"device": "no GPU", "torch": torch.__version__, "torch_cuda": torch.version.cuda}
    windows = _windows(folder, args.windows)
    seconds = 30.0 * windows.num_rows

    def synced(call, *args):
        result = call(*args)
        if gpu:
            torch.cuda.synchronize()
        return result

    out: dict = {
        "device": torch.cuda.get_device_name(0) if gpu else "cpu",
        "windows": windows.num_rows,
        "window_s": 30,
        "tokens_per_window": WHISPER_TOKENS,
        "language": "en (given: no detection pass)",
    }
    for name in args.models.split(","):
        path = random_whisper(name)
        out[name] = {"dims": WHISPER[name], "parameters_m": None}
        for batch in WHISPER_BATCHES:
            stage = InferenceAsrWhisperStage(
                str(path), language="en", batch_size=batch, max_new_tokens=WHISPER_TOKENS
            )
            stage.setup()
            model = stage._model
            out[name]["parameters_m"] = round(  # parameters (not the encoder's positions)
                sum(p.numel() for p in model.model.parameters()) / 1e6, 1
            )
            synced(stage.process, windows.slice(0, 1))  # warm-up, outside the clock
            clock = video.Clock()
            model.encode = functools.partial(clock.run, "encode", synced, type(model).encode, model)
            done = clock.run("total", synced, stage.process, windows)
            del model.encode
            texts = done.column("pred_text").to_pylist()
            cpu, wall = clock.cpu["total"], clock.wall["total"]
            out[name][f"batch_{batch}"] = {
                "audio_s_per_cpu_s": round(seconds / cpu, 2),
                "audio_s_per_wall_s": round(seconds / wall, 2),
                "cpu_s": round(cpu, 2),
                "wall_s": round(wall, 2),
                "encode_share_of_wall": round(clock.wall["encode"] / wall, 3),
                "windows_transcribed": sum(t is not None for t in texts),
            }
            print(
                f"whisper {name} batch {batch}: {seconds / wall:.1f} x real time", file=sys.stderr
            )
    out["torch_threads"] = torch.get_num_threads()
    return out


SIDES = {"ours": side_ours, "whisper": side_whisper}


# --- driver -------------------------------------------------------------------------------


def _run(side: str, folder: Path, *more: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--folder", str(folder)]
    return image._subprocess(cmd + list(more))


def _rates(seconds: float, cpu: dict, wall: dict) -> dict:
    """video.py's rates, in seconds of audio."""
    rates = video._rates(seconds, cpu, wall)
    return {
        k.replace("video_s", "audio_s"): round(v, 1) if k.startswith("video_s") else v
        for k, v in rates.items()
    }


def _side_report(side: dict, seconds: float) -> dict:
    if "cpu_s" not in side:
        return side
    files = [f for f in side["files"].values() if f]
    vad_seconds = sum(f["duration"] for f in files if f["kept"])
    report = _rates(seconds, side["cpu_s"], side["wall_s"])
    report["vad_audio_s_per_cpu_s"] = (
        round(vad_seconds / side["cpu_s"]["vad"], 1) if side["cpu_s"].get("vad") else None
    )
    report["files_kept"] = sum(f["kept"] for f in files)
    report["dropped_by"] = {}
    for f in files:
        for check in f["dropped_by"][:1]:  # the first check that drops it
            report["dropped_by"][check] = report["dropped_by"].get(check, 0) + 1
    report["segments"] = sum(len(f["segments"] or []) for f in files)
    for key in ("check_cpu_s", "quarantined", "setup_s", "torch_threads"):
        if key in side:
            report[key] = side[key]
    if "check_cpu_s" in report:
        report["check_cpu_s"] = {k: round(v, 3) for k, v in report["check_cpu_s"].items()}
    return report


def compare(ours: dict, peer: dict, truth: dict) -> dict:
    """Durations, decisions and speech segments of both sides, file by file."""
    names = [n for n in truth if ours.get(n) and peer.get(n)]
    gaps = [abs(ours[n]["duration"] - peer[n]["duration"]) for n in names]
    out: dict = {
        "files": len(names),
        "duration_within_10ms": sum(g <= DURATION_TOLERANCE_S for g in gaps),
        "duration_gap_max_ms": round(1000 * max(gaps, default=0.0), 2),
        "duration_vs_truth_max_ms": {
            side: _truth_gaps(found, truth) for side, found in (("ours", ours), ("librosa", peer))
        },
        "same_decision": sum(ours[n]["kept"] == peer[n]["kept"] for n in names),
        "different_decisions": {
            n: {"ours": ours[n]["dropped_by"], "librosa": peer[n]["dropped_by"]}
            for n in names
            if ours[n]["kept"] != peer[n]["kept"]
        },
        "silence_share_gap_max": _largest_gap(ours, peer, names, "silence_share"),
        "clipped_share_gap_max": _largest_gap(ours, peer, names, "clipped_share"),
    }
    kinds: dict[str, dict] = {}
    for n in names:
        kind = kinds.setdefault(truth[n]["kind"], {"files": 0, "kept_ours": 0, "kept_librosa": 0})
        kind["files"] += 1
        kind["kept_ours"] += ours[n]["kept"]
        kind["kept_librosa"] += peer[n]["kept"]
    out["kept_by_kind"] = kinds
    both = [n for n in names if ours[n]["kept"] and peer[n]["kept"]]
    out["segments"] = segment_agreement(
        {n: ours[n]["segments"] for n in both}, {n: peer[n]["segments"] for n in both}
    )
    return out


def read_rates(cpu_by_format: dict, truth: dict) -> dict:
    """Audio seconds per CPU second of the decoding alone, by format."""
    seconds: dict[str, float] = {}
    for t in truth.values():
        seconds[t["format"]] = seconds.get(t["format"], 0.0) + t["seconds"]
    return {f: round(seconds[f] / cpu, 1) for f, cpu in cpu_by_format.items() if cpu}


def _largest_gap(ours: dict, peer: dict, names: list[str], key: str) -> float:
    return round(max((abs(ours[n][key] - peer[n][key]) for n in names), default=0.0), 4)


def _truth_gaps(found: dict, truth: dict) -> dict:
    """Largest |measured - true| duration per format, in ms."""
    gaps: dict[str, float] = {}
    for name, true in truth.items():
        if found.get(name):
            gap = 1000 * abs(found[name]["duration"] - true["seconds"])
            gaps[true["format"]] = round(max(gaps.get(true["format"], 0.0), gap), 2)
    return gaps


def segment_agreement(ours: dict, peer: dict) -> dict:
    """Segments matched one to one when both ends are within `SEGMENT_TOLERANCE_S`;
    the speech time both mark over the speech time either marks (`time_iou`)."""
    matched = total_ours = total_peer = 0
    offsets: list[float] = []
    both = either = 0.0
    for name in ours:
        a, b = ours[name] or [], peer[name] or []
        total_ours, total_peer = total_ours + len(a), total_peer + len(b)
        used: set[int] = set()
        for start, end in a:
            for j, (s, e) in enumerate(b):
                close = max(abs(start - s), abs(end - e))
                if j not in used and close <= SEGMENT_TOLERANCE_S:
                    used.add(j)
                    offsets += [abs(start - s), abs(end - e)]
                    break
        matched += len(used)
        overlap = sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)
        both += overlap
        either += sum(e - s for s, e in a) + sum(e - s for s, e in b) - overlap
    return {
        "files": len(ours),
        "ours": total_ours,
        "librosa": total_peer,
        "matched": matched,
        "mean_edge_offset_ms": round(1000 * sum(offsets) / len(offsets), 1) if offsets else None,
        "time_iou": round(both / either, 4) if either else None,
    }


def _ratio(ours: dict | None, peer: dict | None, parts: tuple[str, ...] | None = None):
    """Ours over the peer in audio seconds per CPU second (`parts`: those stages only)."""
    if not ours or not peer or "stage_cpu_s" not in ours or "stage_cpu_s" not in peer:
        return None

    def cpu(side: dict) -> float:
        return sum(v for k, v in side["stage_cpu_s"].items() if parts is None or k in parts)

    return round(cpu(peer) / cpu(ours), 2) if cpu(ours) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, help=f"files (default {FILES}; --quick {QUICK_FILES})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FILES} files")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--no-whisper", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="Whisper on CUDA as well")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--windows", type=int, default=WHISPER_WINDOWS, help=argparse.SUPPRESS)
    parser.add_argument("--gpus", help=argparse.SUPPRESS)
    parser.add_argument("--models", default=",".join(WHISPER), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Before any torch import: the GPU side sees the GPUs that this run was given.
    if args.gpus == ALL:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    elif args.gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpus
    if args.side:
        print(json.dumps(SIDES[args.side](args.folder, args)))
        return 0
    count = args.files or (QUICK_FILES if args.quick else FILES)
    if count < 1:
        parser.error("--files: at least 1")

    started = datetime.datetime.now(datetime.UTC)
    wall0 = time.perf_counter()
    folder = build_corpus(count)
    truth = json.loads((folder / "truth.json").read_text())
    lengths = [t["seconds"] for t in truth.values()]
    seconds = sum(lengths)
    formats: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for t in truth.values():
        key = f"{t['format']} {t['rate'] / 1000:g} kHz {'stereo' if t['channels'] == 2 else 'mono'}"
        formats[key] = formats.get(key, 0) + 1
        kinds[t["kind"]] = kinds.get(t["kind"], 0) + 1
    report: dict = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "corpus": {
            "files": len(truth),
            "audio_s": round(seconds, 1),
            "seconds_each": [min(lengths), max(lengths)],
            "formats": formats,
            "kinds": kinds,
            "cache": str(folder.relative_to(ROOT)),
        },
        "cpus": {
            "machine": os.cpu_count(),
            "usable": len(os.sched_getaffinity(0)),
            "threads_per_side": "1 (torch, ONNX Runtime, BLAS, Arrow)",
        },
        "checks": CHECKS,
        "vad": VAD,
    }
    ours_raw = _run("ours", folder)
    ours = report["ours"] = _side_report(ours_raw, seconds)
    if "read_cpu_s_by_format" in ours_raw:
        by_format = ours_raw["read_cpu_s_by_format"]
        ours["read_audio_s_per_cpu_s_by_format"] = read_rates(by_format, truth)
    print(f"ours: {ours.get('audio_s_per_cpu_s')} audio s per CPU s", file=sys.stderr)
    peer_raw: dict = {}
    peer = None
    if args.no_peer:
        report["librosa"] = "skipped (--no-peer)"
    elif not PEER.exists():
        report["librosa"] = {"missing": PEER_HELP}
    else:
        settings = json.dumps({**CHECKS, "vad": VAD})
        peer_raw = image._subprocess([str(PEER), str(PEER_SCRIPT), str(folder), settings])
        if "files" in peer_raw:
            peer_raw["files"] = {f["file"]: f for f in peer_raw["files"]}
            readers: dict[str, str] = {}
            for name, f in peer_raw["files"].items():
                readers[truth[name]["format"]] = f["reader"]
        peer = report["librosa"] = _side_report(peer_raw, seconds)
        if "files" in peer_raw:
            peer["readers"] = readers
            by_format: dict[str, float] = {}
            for name, f in peer_raw["files"].items():
                extension = truth[name]["format"]
                by_format[extension] = by_format.get(extension, 0.0) + f["read_cpu_s"]
            peer["read_audio_s_per_cpu_s_by_format"] = read_rates(by_format, truth)
        print(f"librosa: {peer.get('audio_s_per_cpu_s')} audio s per CPU s", file=sys.stderr)
    report["ratios"] = {
        "ours_vs_librosa": _ratio(ours, peer),
        "decode_resample": _ratio(ours, peer, ("decode", "resample", "read")),
        "checks": _ratio(ours, peer, ("checks",)),
        "vad": _ratio(ours, peer, ("vad",)),
    }
    if "files" in ours_raw and "files" in peer_raw:
        report["agreement"] = compare(ours_raw["files"], peer_raw["files"], truth)
    report["versions"] = {"ours": ours_raw.get("versions"), "librosa": peer_raw.get("versions")}
    if args.no_whisper:
        report["whisper_cpu"] = "skipped (--no-whisper)"
    else:
        models = ["--models", "tiny" if args.quick else ",".join(WHISPER)]
        report["whisper_cpu"] = _run("whisper", folder, *models)
    if args.gpu:
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES", ALL)
        more = ["--gpus", gpus, "--windows", str(GPU_WINDOWS), "--models", ",".join(WHISPER)]
        report["whisper_gpu"] = _run("whisper", folder, *more)
    else:
        report["whisper_gpu"] = "skipped (pass --gpu)"
    report["run_wall_s"] = round(time.perf_counter() - wall0, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
