"""The plain loop a user would write for image checks, run by the imagehash peer venv
(`.bench-venvs/imagehash`): Pillow decodes each file, `imagehash.phash` hashes it, the size
and aspect checks are Python comparisons.

    imagehash_side.py FOLDER [PASSES]

Reads every file of FOLDER into memory, runs the loop PASSES times (default 3) and prints
one JSON line: images/s of the median pass (CPU time), and the hash of each kept image."""

from __future__ import annotations

import io
import json
import statistics
import sys
import time
from pathlib import Path

import imagehash
from PIL import Image


def checks(datas: dict[str, bytes], min_side: int = 64, max_ratio: float = 3.0) -> dict:
    hashes = {}
    for name, data in datas.items():
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except Exception:  # noqa: BLE001 - an unreadable file is skipped
            continue
        w, h = image.size
        if min(w, h) < min_side or max(w / h, h / w) > max_ratio:
            continue
        hashes[name] = str(imagehash.phash(image.convert("RGB")))
    return hashes


def main(folder: str, passes: int = 3) -> None:
    datas = {f.stem: f.read_bytes() for f in sorted(Path(folder).iterdir())}
    cpu, wall = [], []
    for _ in range(passes):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        hashes = checks(datas)
        cpu.append(time.process_time() - cpu0)
        wall.append(time.perf_counter() - wall0)
    n = len(datas)
    print(
        json.dumps(
            {
                "images": n,
                "images_per_s": round(n / statistics.median(cpu), 1),
                "first_pass_images_per_s": round(n / cpu[0], 1),
                "wall_images_per_s": round(n / statistics.median(wall), 1),
                "cpu_s_per_pass": [round(s, 3) for s in cpu],
                "kept": len(hashes),
                "hashes": hashes,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3)
