"""Benchmark: the image flow's CPU stages per core, against the bare decode rate (the limit)
and the plain Pillow + imagehash loop a user would write, side by side in the same run.

On the same generated images (`tests/images.photo` pictures at web sizes, 384-640 px a
side, 90% JPEG, the rest PNG and WebP; made once and cached in `.bench-cache/image/`),
each side in its own process with every thread pool at one thread, `--passes` times over
the images (the median pass counts; CPU time of the process):

- `bare_decode`: Pillow `Image.open(...).load()` of every image, nothing else;
- `ours`: Arrow tables of the bytes (rows as the files reader makes them) in batches of
  256 rows, as a worker runs them: `ImageDecoder(phash=True)` (validation, size, format,
  mode, EXIF orientation and the exact perceptual hash, one decode), then a `FilterChain`
  of the size, aspect-ratio and file-size filters;
- `ours_fast`: the same with `ImageDecoder(phash="fast")` (JPEGs hashed from a
  reduced-scale decode);
- `plain_loop`: `benchmarks/peers/imagehash_side.py` in `.bench-venvs/imagehash` (Pillow
  decode, `imagehash.phash`, the same size checks, a Python loop); its hashes are compared
  with ours (`phash`);
- `clip_cpu`: `ImageEmbeddingStage` with a randomly initialised CLIP of ViT-B/32 size
  (768 wide, 12 layers, 32 px patches, 224 px images), images/s on one core.

    .venv/bin/python benchmarks/image.py [--images 300] [--passes 3] [--no-plain] [--no-clip]

Prints one JSON object and exits 0; goals: ours >= 0.8 x bare_decode, ours > plain_loop.
See benchmarks/README.md for the fields.
"""

from __future__ import annotations

import os
import sys

SINGLE_THREAD = {  # as dedup_speed.py, and no model download
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "ARROW_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
}
HASH_SEED = "0"
os.environ.update(SINGLE_THREAD)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

CACHE = ROOT / ".bench-cache" / "image"
PEER = ROOT / ".bench-venvs" / "imagehash" / "bin" / "python"
PEER_SCRIPT = Path(__file__).resolve().parent / "peers" / "imagehash_side.py"
PEER_HELP = (
    "python3 -m venv .bench-venvs/imagehash && .bench-venvs/imagehash/bin/pip install "
    "imagehash==4.3.2 pillow==13.0.0"
)
BATCH = 256  # rows per Arrow batch, as the engine gives a worker
CLIP_IMAGES = 64
GOAL_VS_BARE_DECODE = 0.8


def build_images(count: int) -> Path:
    """`count` encoded pictures in a cached folder (stable names and bytes): sides from 384
    to 640 px, every tenth a PNG or a WebP, the others JPEG at quality 90."""
    import io

    from images import photo

    folder = CACHE / f"photos-v2-{count}"  # v2: PNG and WebP alternate
    if folder.is_dir() and len(list(folder.iterdir())) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        width = 384 + (i * 37) % 257
        height = 384 + (i * 53) % 257
        image = photo(1000 + i, width, height)
        kind = ("png", "webp")[i % 20 // 10] if i % 10 == 0 else "jpg"
        buffer = io.BytesIO()
        image.save(buffer, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[kind], quality=90)
        (folder / f"img-{i:05d}.{kind}").write_bytes(buffer.getvalue())
    return folder


def _files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def _timed(passes: int, run) -> dict:
    """Run `run()` `passes` times; CPU and wall seconds of each pass, and its last result."""
    cpu, wall, result = [], [], None
    for _ in range(passes):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = run()
        cpu.append(time.process_time() - cpu0)
        wall.append(time.perf_counter() - wall0)
    return {"cpu_s": cpu, "wall_s": wall, "result": result}


def _rates(images: int, timed: dict) -> dict:
    cpu = statistics.median(timed["cpu_s"])
    return {
        "images": images,
        "images_per_s": round(images / cpu, 1),
        "first_pass_images_per_s": round(images / timed["cpu_s"][0], 1),
        "wall_images_per_s": round(images / statistics.median(timed["wall_s"]), 1),
        "cpu_s_per_pass": [round(s, 3) for s in timed["cpu_s"]],
    }


# --- the sides (each runs in its own process) -------------------------------------------


def side_bare(folder: Path, passes: int) -> dict:
    import io

    from PIL import Image

    datas = [f.read_bytes() for f in _files(folder)]

    def run():
        for data in datas:
            Image.open(io.BytesIO(data)).load()

    return _rates(len(datas), _timed(passes, run))


def _side_ours(folder: Path, passes: int, phash) -> dict:
    import pyarrow as pa

    from stages.base import FilterChain
    from stages.image.decode import ImageDecoder
    from stages.image.filters import (
        ImageAspectRatioFilter,
        ImageFileSizeFilter,
        ImageMinSideFilter,
    )

    files = _files(folder)
    table = pa.table(  # as stages.io's files reader makes the rows
        {
            "id": [f.stem for f in files],
            "source": [f.as_uri() for f in files],
            "image": pa.array([f.read_bytes() for f in files], pa.binary()),
            "extension": [f.suffix[1:] for f in files],
            "_order": pa.array(range(len(files)), pa.int64()),
        }
    )
    decoder = ImageDecoder(phash=phash)
    decoder.setup()
    chain = FilterChain(
        [ImageMinSideFilter(64), ImageAspectRatioFilter(3.0), ImageFileSizeFilter()]
    )
    chain.setup()

    def run():
        kept, hashes = 0, {}
        for offset in range(0, table.num_rows, BATCH):
            good, _ = decoder.check(table.slice(offset, BATCH))
            out, _ = chain.run(good)
            kept += out.num_rows
            hashes.update(zip(out["id"].to_pylist(), out["phash"].to_pylist(), strict=True))
        return kept, hashes

    timed = _timed(passes, run)
    kept, hashes = timed.pop("result")
    return {
        **_rates(table.num_rows, timed),
        "kept": kept,
        "hashes": {k: f"{v:016x}" for k, v in hashes.items()},
    }


def side_ours(folder: Path, passes: int) -> dict:
    return _side_ours(folder, passes, phash=True)


def side_ours_fast(folder: Path, passes: int) -> dict:
    return _side_ours(folder, passes, phash="fast")


def side_clip(folder: Path, passes: int) -> dict:
    try:
        from stages.image.clip import ImageEmbeddingStage
    except ImportError as error:
        return {"unavailable": f"stages.image.clip: {error}"}
    import pyarrow as pa
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.set_num_threads(1)
    model_dir = CACHE / "clip-b32-random"
    if not (model_dir / "config.json").exists():
        torch.manual_seed(0)
        vision = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}
        vision |= {"num_attention_heads": 12, "image_size": 224, "patch_size": 32}
        text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1}
        text |= {"num_attention_heads": 2}  # the stage embeds images only: a token tower
        config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)
        CLIPModel(config).save_pretrained(model_dir)
        CLIPImageProcessor(
            size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
        ).save_pretrained(model_dir)
    files = _files(folder)[:CLIP_IMAGES]
    table = pa.table({"id": [f.stem for f in files], "image": [f.read_bytes() for f in files]})
    stage = ImageEmbeddingStage(model_dir=str(model_dir), model_inference_batch_size=16)
    stage.setup()
    stage.process(table.slice(0, 2))  # warm-up
    timed = _timed(1, lambda: stage.process(table))
    out = timed.pop("result")
    return {
        "model": "CLIP ViT-B/32 size (768 wide, 12 layers, patch 32, 224 px), random weights",
        "device": str(getattr(stage, "device", "cpu")),
        "embedding_dim": len(out["embedding"][0].as_py()),
        **_rates(out.num_rows, timed),
    }


SIDES = {
    "bare": side_bare,
    "ours": side_ours,
    "ours_fast": side_ours_fast,
    "clip": side_clip,
}


# --- driver -------------------------------------------------------------------------------


def _env() -> dict:
    return {**os.environ, **SINGLE_THREAD, "PYTHONHASHSEED": HASH_SEED, "CUDA_VISIBLE_DEVICES": ""}


def _subprocess(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-5:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run(side: str, folder: Path, passes: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--side", side]
    return _subprocess(cmd + ["--folder", str(folder), "--passes", str(passes)])


def _run_plain(folder: Path, passes: int) -> dict:
    if not PEER.exists():
        return {"missing": PEER_HELP}
    return _subprocess([str(PEER), str(PEER_SCRIPT), str(folder), str(passes)])


def _agreement(ours: dict, theirs: dict) -> dict:
    """How many images both hash the same, and by how many bits the others differ."""
    common = sorted(set(ours) & set(theirs))
    bits = [bin(int(ours[k], 16) ^ int(theirs[k], 16)).count("1") for k in common]
    return {
        "compared": len(common),
        "agreement": round(sum(b == 0 for b in bits) / max(1, len(bits)), 4),
        "bits_differing_mean": round(sum(bits) / max(1, len(bits)), 3),
        "bits_differing_max": max(bits, default=0),
    }


def _ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or "images_per_s" not in a or "images_per_s" not in b:
        return None
    return round(a["images_per_s"] / b["images_per_s"], 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--passes", type=int, default=3, help="passes over the images per side")
    parser.add_argument("--no-plain", action="store_true")
    parser.add_argument("--no-clip", action="store_true")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(SIDES[args.side](args.folder, args.passes)))
        return 0

    folder = build_images(args.images)
    files = _files(folder)
    formats = {}
    for f in files:
        formats[f.suffix[1:]] = formats.get(f.suffix[1:], 0) + 1
    sides: dict[str, dict] = {}
    for side in ("bare", "ours", "ours_fast"):
        sides[side] = _run(side, folder, args.passes)
        print(f"{side}: {sides[side].get('images_per_s')} images/s", file=sys.stderr)
    if not args.no_plain:
        sides["plain"] = _run_plain(folder, args.passes)
        print(f"plain_loop: {sides['plain'].get('images_per_s')} images/s", file=sys.stderr)
    hashes = {k: v.pop("hashes") for k, v in sides.items() if "hashes" in v}
    bare, ours, fast, plain = (sides.get(k) for k in ("bare", "ours", "ours_fast", "plain"))

    report: dict = {
        "images": len(files),
        "formats": formats,
        "sides_px": "384-640",
        "batch_rows": BATCH,
        "passes": args.passes,
        "bare_decode": bare,
        "ours": ours,
        "ours_fast": fast,
        "plain_loop": plain if not args.no_plain else "skipped (--no-plain)",
        "ratios": {
            "ours_vs_bare_decode": _ratio(ours, bare),
            "ours_vs_plain_loop": _ratio(ours, plain),
            "ours_fast_vs_bare_decode": _ratio(fast, bare),
            "ours_fast_vs_plain_loop": _ratio(fast, plain),
            "plain_loop_vs_bare_decode": _ratio(plain, bare),
        },
    }
    phash = {}
    if "ours" in hashes and "plain" in hashes:
        phash["ours_vs_imagehash"] = _agreement(hashes["ours"], hashes["plain"])
    if "ours_fast" in hashes and "plain" in hashes:
        phash["ours_fast_vs_imagehash"] = _agreement(hashes["ours_fast"], hashes["plain"])
    if "ours" in hashes and "ours_fast" in hashes:
        phash["ours_fast_vs_ours"] = _agreement(hashes["ours_fast"], hashes["ours"])
    report["phash"] = phash
    if not args.no_clip:
        report["clip_cpu"] = _run("clip", folder, 1)
    ratios = report["ratios"]
    report["goals"] = {
        "ours_vs_bare_decode": f">= {GOAL_VS_BARE_DECODE}",
        "ours_vs_plain_loop": "> 1",
        "met_by_ours": _met(ratios["ours_vs_bare_decode"], ratios["ours_vs_plain_loop"]),
        "met_by_ours_fast": _met(
            ratios["ours_fast_vs_bare_decode"], ratios["ours_fast_vs_plain_loop"]
        ),
    }
    print(json.dumps(report, indent=2))
    return 0


def _met(vs_bare: float | None, vs_plain: float | None) -> dict:
    return {
        "vs_bare_decode": vs_bare is not None and vs_bare >= GOAL_VS_BARE_DECODE,
        "vs_plain_loop": None if vs_plain is None else vs_plain > 1.0,
    }


if __name__ == "__main__":
    sys.exit(main())
