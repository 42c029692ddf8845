"""The plain loop a user would write for image checks, run by the imagehash peer venv:
Pillow decodes each file, `imagehash.phash` hashes it, the size and aspect checks are
Python comparisons. Reads the image folder given, prints JSON: images/s and the hashes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import imagehash
from PIL import Image


def main(folder: str, min_side: int = 64, max_ratio: float = 3.0) -> None:
    files = sorted(Path(folder).iterdir())
    datas = [f.read_bytes() for f in files]
    import io

    start = time.perf_counter()
    hashes, kept = {}, 0
    for path, data in zip(files, datas, strict=True):
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except Exception:  # noqa: BLE001
            continue
        w, h = image.size
        if min(w, h) < min_side or max(w / h, h / w) > max_ratio:
            continue
        kept += 1
        hashes[path.stem] = str(imagehash.phash(image.convert("RGB")))
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "images": len(files),
                "kept": kept,
                "seconds": seconds,
                "images_per_s": len(files) / seconds,
                "hashes": hashes,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
