"""PySceneDetect's way of cutting videos into scenes, run by its peer venv
(`.bench-venvs/scenedetect`): `scenedetect.detect(path, ContentDetector())` finds the cuts,
then `split_video_ffmpeg` cuts each scene out with ffmpeg, re-encoding with libx264 (its
default arguments: `-ss START -i FILE -t LENGTH ... -c:v libx264 -preset veryfast -crf 22`),
which is what `scenedetect split-video` does.

    scenedetect_side.py FOLDER

ffmpeg is imageio-ffmpeg's binary, put first on PATH as `ffmpeg` (so a system ffmpeg never
changes what is measured). The clips go to a temporary folder. Prints one JSON line: per
video, the frame where each scene after the first starts (its cuts), CPU seconds (this
process and its ffmpeg children, `getrusage`) and wall seconds of the detection and of the
split; and the versions."""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children."""
    both = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, both))


def ffmpeg_on_path(folder: Path) -> str:
    """Link imageio-ffmpeg's binary as `folder/ffmpeg` and put `folder` first on PATH."""
    import imageio_ffmpeg

    link = folder / "ffmpeg"
    link.symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
    return imageio_ffmpeg.get_ffmpeg_version()


def main(folder: str) -> None:
    from importlib.metadata import version

    with tempfile.TemporaryDirectory() as work:
        bin_dir, out_dir = Path(work) / "bin", Path(work) / "clips"
        bin_dir.mkdir()
        ffmpeg_version = ffmpeg_on_path(bin_dir)
        import cv2
        import scenedetect  # resolves ffmpeg on import: after the PATH is set
        from scenedetect import ContentDetector, detect, split_video_ffmpeg
        from scenedetect.output.video import is_ffmpeg_available

        if not is_ffmpeg_available():
            raise SystemExit("scenedetect finds no ffmpeg")
        videos = []
        for path in sorted(Path(folder).glob("*.mp4")):
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            scenes = detect(str(path), ContentDetector())
            cpu1, wall1 = cpu_seconds(), time.perf_counter()
            code = split_video_ffmpeg(str(path), scenes, output_dir=out_dir / path.stem)
            cpu2, wall2 = cpu_seconds(), time.perf_counter()
            clips = sorted((out_dir / path.stem).glob("*.mp4"))
            videos.append(
                {
                    "video": path.name,
                    "cuts": [start.frame_num for start, _ in scenes[1:]],
                    "scenes": len(scenes),
                    "scene_seconds": sum((end - start).seconds for start, end in scenes),
                    "detect_cpu_s": cpu1 - cpu0,
                    "detect_wall_s": wall1 - wall0,
                    "split_cpu_s": cpu2 - cpu1,
                    "split_wall_s": wall2 - wall1,
                    "ffmpeg_returncode": code,
                    "clips": len(clips),
                    "clip_bytes": sum(c.stat().st_size for c in clips),
                }
            )
            print(f"scenedetect: {path.name} done", file=sys.stderr)
    print(
        json.dumps(
            {
                "videos": videos,
                "versions": {
                    "scenedetect": scenedetect.__version__,
                    "opencv-python-headless": cv2.__version__,
                    "imageio-ffmpeg": version("imageio-ffmpeg"),
                    "ffmpeg": ffmpeg_version,
                    "python": sys.version.split()[0],
                },
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
