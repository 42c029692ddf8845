"""Benchmark: the image flow's CPU stages per core, against the bare decode rate (the limit)
and the plain Pillow + imagehash loop a user would write, side by side in the same run.

On the same generated images (`tests/images.photo` pictures at web sizes, 384-640 px a
side, mostly JPEG with some PNG and WebP; made once and cached in `.bench-cache/image/`),
each side in its own process with every thread pool at one thread:

- `bare_decode`: Pillow `Image.open(...).load()` of every image, nothing else;
- `ours`: Arrow tables of the bytes (rows as the files reader makes them) through
  `ImageDecoder(phash=True)` (validation, size, format, mode, perceptual hash, one decode)
  and the size, aspect and file-size filters, in batches of 256 rows, as the flow runs
  them on a worker;
- `plain_loop`: `benchmarks/peers/imagehash_side.py` in `.bench-venvs/imagehash` (Pillow
  decode, `imagehash.phash`, the same size checks, a Python loop); its hashes are
  compared with ours (`phash_agreement`);
- `clip_cpu`: `ImageEmbeddingStage` with a randomly initialised CLIP of ViT-B/32 size
  (768 wide, 12 layers, 32 px patches, 224 px images), images/s on one core.

    .venv/bin/python benchmarks/image.py [--images 300] [--no-plain] [--no-clip]

Prints one JSON object; goals: ours >= 0.8 x bare_decode, ours > plain_loop.
"""

from __future__ import annotations

import os
import sys

SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "ARROW_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
}
os.environ.update(SINGLE_THREAD)

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

CACHE = ROOT / ".bench-cache" / "image"
PEER = ROOT / ".bench-venvs" / "imagehash" / "bin" / "python"
BATCH = 256


def build_images(count: int) -> Path:
    """`count` encoded pictures in a cached folder (stable names and bytes)."""
    import io

    from images import photo

    folder = CACHE / f"photos-{count}"
    if folder.is_dir() and len(list(folder.iterdir())) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        width = 384 + (i * 37) % 257
        height = 384 + (i * 53) % 257
        image = photo(1000 + i, width, height)
        kind = ("png", "webp")[i % 2] if i % 10 == 0 else "jpg"
        buffer = io.BytesIO()
        image.save(buffer, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[kind], quality=90)
        (folder / f"img-{i:05d}.{kind}").write_bytes(buffer.getvalue())
    return folder


def _files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def side_bare(folder: Path) -> dict:
    import io

    from PIL import Image

    datas = [f.read_bytes() for f in _files(folder)]
    start = time.perf_counter()
    for data in datas:
        Image.open(io.BytesIO(data)).load()
    seconds = time.perf_counter() - start
    return {"images": len(datas), "seconds": seconds, "images_per_s": len(datas) / seconds}


def side_ours(folder: Path) -> dict:
    import pyarrow as pa

    from stages.base import FilterChain
    from stages.image.decode import ImageDecoder
    from stages.image.filters import (
        ImageAspectRatioFilter,
        ImageFileSizeFilter,
        ImageMinSideFilter,
    )

    files = _files(folder)
    table = pa.table(
        {
            "id": [f.stem for f in files],
            "source": [str(f) for f in files],
            "_order": list(range(len(files))),
            "extension": [f.suffix[1:] for f in files],
            "image": [f.read_bytes() for f in files],
        }
    )
    decoder = ImageDecoder(phash=True)
    chain = FilterChain(
        [ImageMinSideFilter(64), ImageAspectRatioFilter(3.0), ImageFileSizeFilter()]
    )
    chain.setup()
    start = time.perf_counter()
    kept, hashes = 0, {}
    for offset in range(0, table.num_rows, BATCH):
        good, _ = decoder.check(table.slice(offset, BATCH))
        out, _ = chain.run(good)
        kept += out.num_rows
        hashes.update(zip(out["id"].to_pylist(), out["phash"].to_pylist(), strict=True))
    seconds = time.perf_counter() - start
    return {
        "images": table.num_rows,
        "kept": kept,
        "seconds": seconds,
        "images_per_s": table.num_rows / seconds,
        "hashes": {k: f"{v:016x}" for k, v in hashes.items()},
    }


def side_clip(folder: Path, count: int = 48) -> dict:
    import pyarrow as pa
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from stages.image.clip import ImageEmbeddingStage

    torch.set_num_threads(1)
    model_dir = CACHE / "clip-b32-random"
    if not (model_dir / "config.json").exists():
        torch.manual_seed(0)
        vision = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}
        vision |= {"num_attention_heads": 12, "image_size": 224, "patch_size": 32}
        text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1}
        text |= {"num_attention_heads": 2}
        config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)
        CLIPModel(config).save_pretrained(model_dir)
        CLIPImageProcessor(
            size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
        ).save_pretrained(model_dir)
    files = _files(folder)[:count]
    table = pa.table({"id": [f.stem for f in files], "image": [f.read_bytes() for f in files]})
    stage = ImageEmbeddingStage(str(model_dir), model_inference_batch_size=16)
    stage.setup()
    stage.process(table.slice(0, 2))  # warm-up
    start = time.perf_counter()
    out = stage.process(table)
    seconds = time.perf_counter() - start
    return {
        "model": "CLIP ViT-B/32 size, random weights",
        "images": out.num_rows,
        "seconds": seconds,
        "images_per_s": out.num_rows / seconds,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


SIDES = {"bare": side_bare, "ours": side_ours, "clip": side_clip}


def _run(side: str, folder: Path) -> dict:
    env = {**os.environ, **SINGLE_THREAD, "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, __file__, "--side", side, "--folder", str(folder)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_plain(folder: Path) -> dict:
    if not PEER.exists():
        return {
            "missing": "python3 -m venv .bench-venvs/imagehash && .bench-venvs/imagehash/bin/pip "
            "install imagehash==4.3.2 pillow==13.0.0"
        }
    env = {**os.environ, **SINGLE_THREAD, "PYTHONHASHSEED": "0"}
    script = Path(__file__).resolve().parent / "peers" / "imagehash_side.py"
    out = subprocess.run(
        [str(PEER), str(script), str(folder)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--no-plain", action="store_true")
    parser.add_argument("--no-clip", action="store_true")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(SIDES[args.side](Path(args.folder))))
        return
    folder = build_images(args.images)
    bare = _run("bare", folder)
    ours = _run("ours", folder)
    result = {
        "images": args.images,
        "bare_decode": bare,
        "ours": {k: v for k, v in ours.items() if k != "hashes"},
        "ours_vs_bare_decode": round(ours["images_per_s"] / bare["images_per_s"], 3),
        "goal_ours_vs_bare_decode": 0.8,
    }
    if not args.no_plain:
        plain = _run_plain(folder)
        result["plain_loop"] = {k: v for k, v in plain.items() if k != "hashes"}
        if "hashes" in plain:
            same = sum(ours["hashes"].get(k) == v for k, v in plain["hashes"].items())
            result["phash_agreement"] = round(same / max(1, len(plain["hashes"])), 4)
            bits = [
                bin(int(ours["hashes"][k], 16) ^ int(v, 16)).count("1")
                for k, v in plain["hashes"].items()
                if k in ours["hashes"]
            ]
            result["phash_bits_differing"] = {
                "max": max(bits, default=0),
                "mean": round(sum(bits) / max(1, len(bits)), 3),
            }
            result["ours_vs_plain_loop"] = round(ours["images_per_s"] / plain["images_per_s"], 3)
    if not args.no_clip:
        result["clip_cpu"] = _run("clip", folder)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
