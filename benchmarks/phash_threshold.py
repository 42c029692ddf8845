"""Benchmark: which Hamming distance between 64-bit perceptual hashes (`stages.image.phash`)
should count as "the same picture".

Builds `--images` distinct base images from `tests/images.py` (composites of textures,
gradients, shapes and text; textures; shapes; captions over textures; 96 to 256 px a
side), saves each as a JPEG (quality 90), and makes its near-copies (`images.near_copies`:
identical bytes, resized to 50% and 75%, recompressed at quality 50, brightened by 15%,
cropped by 3% on each side). Every image is hashed as the pipeline does
(`phash64(load_rgb(bytes))`).

- positives: each copy against its original (per kind and all together);
- negatives: every pair of distinct base images (all pairs);
- for each threshold t in 0..16, "distance <= t means duplicate": precision
  (TP / (TP + FP) over those pairs), recall (per kind and overall), F1, and the false
  positive rate among distinct pairs (a collection of N images can expect about
  `rate * N * (N - 1) / 2` false pairs at t);
- `band_recall_4x16`: the share of the copies within t that share at least one of four
  16-bit bands with their original, i.e. that `stages.dedup.phash` (4 bands) finds as
  candidates at all.

The recommended default is the largest t whose precision is 1.0 (no distinct pair within
t), since a false duplicate deletes a good image while a missed one only keeps a copy;
when no t > 0 reaches 1.0, the t of the best F1. Distances are even in practice (each hash
has 32 bits above the median, so a change moves bits in pairs), so t and t + 1 tie; the
recommendation is then lowered to the largest copy distance seen within it. The closest
distinct pair comes nearer as the collection grows, so this figure falls with `--images`
(1000 by default: about 500,000 distinct pairs).

`copy_distance_max_by_base_kind` shows where copies drift most (the fine grain of
textures). `low_structure` is measured apart and kept out of the threshold: images with
few strong low frequencies (`text_card`: dark text on a plain background; radial and linear
gradients; flat colour), whose other coefficients sit near the median, so small edits flip
them and distinct images of the kind collide. A linear gradient's DCT is zero outside the
first row and column, so most of its bits hang on noise; a flat image hashes to
0x8000000000000000 whatever its colour, so all blank images are one another's duplicates.
No threshold serves these; deduplicate them by other means (exact bytes, embeddings).

Generated images are not photographs: their distinct pairs are more alike in places
(smooth gradients) and less in others (random textures) than a real collection's, so the
figure is a guide to check on real data, not a measurement of it.

    .venv/bin/python benchmarks/phash_threshold.py [--images 1000] [--seed 0]
        [--low-structure 60]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import images  # noqa: E402  (tests/images.py)

from stages.image.decode import load_rgb  # noqa: E402
from stages.image.phash import hamming, phash64  # noqa: E402

THRESHOLDS = range(17)
KINDS = ("photo", "photo", "texture", "shapes", "text")
LOW_STRUCTURE = ("text_card", "radial_gradient", "linear_gradient", "flat")
BANDS = 4


def base_image(index: int, seed: int, kind: str | None = None):
    """The `index`-th distinct base image: its kind cycles through `KINDS` (composites
    twice as often) unless given, its size and content come from the seed."""
    rng = np.random.default_rng([seed, index])
    width, height = (int(v) for v in rng.integers(96, 257, 2))
    kind = kind or KINDS[index % len(KINDS)]
    content = seed * 1_000_003 + index
    if kind == "photo":
        return kind, images.photo(content, width, height)
    if kind == "texture":
        return kind, images.texture(width, height, content, cell=int(rng.integers(6, 40)))
    if kind == "shapes":
        return kind, images.shapes(width, height, content, count=int(rng.integers(3, 10)))
    if kind == "text":  # a caption panel over a texture, as on a poster or a meme
        image = images.texture(width, height, content, cell=int(rng.integers(6, 40)))
        panel = images.text_card(None, width, height // 2, content)
        image.paste(panel, (0, int(rng.integers(0, height - panel.height + 1))))
        return kind, image
    if kind == "text_card":
        return kind, images.text_card(None, width, height, content)
    if kind == "radial_gradient":
        return kind, images.radial_gradient(width, height, content)
    if kind == "linear_gradient":
        return kind, images.gradient(width, height, content)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    return kind, Image.new("RGB", (width, height), colour)


def copy_distances(originals: list[bytes]) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """The hashes of `originals`, and per near-copy kind: each copy's distance to its
    original and whether the two share a band."""
    hashes = np.array([phash64(load_rgb(data)) for data in originals], dtype=np.uint64)
    found: dict[str, list[int]] = {k: [] for k in images.NEAR_COPY_KINDS}
    for data in originals:
        for kind, copy in images.near_copies(data).items():
            found[kind].append(phash64(load_rgb(copy)))
    distances, banded = {}, {}
    for kind, values in found.items():
        copied = np.array(values, np.uint64)
        distances[kind] = hamming(hashes, copied)
        banded[kind] = shares_a_band(hashes, copied)
    return hashes, distances, banded


def shares_a_band(a: np.ndarray, b: np.ndarray, bands: int = BANDS) -> np.ndarray:
    """Whether hashes `a[i]` and `b[i]` agree on at least one of `bands` equal runs of
    bits (64 / bands bits each)."""
    width = 64 // bands
    mask = np.uint64((1 << width) - 1)
    same = np.zeros(len(a), dtype=bool)
    for band in range(bands):
        shift = np.uint64(64 - width * (band + 1))
        same |= ((a >> shift) & mask) == ((b >> shift) & mask)
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--low-structure", type=int, default=60)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    kinds, originals = [], []
    for index in range(args.images):
        kind, image = base_image(index, args.seed)
        kinds.append(kind)
        originals.append(images.jpeg(image))
    built = time.perf_counter()
    hashes, copies, banded = copy_distances(originals)
    hashed = time.perf_counter()
    all_copies = np.concatenate(list(copies.values()))
    all_banded = np.concatenate(list(banded.values()))
    left, right = np.triu_indices(len(hashes), 1)
    distinct = hamming(hashes[left], hashes[right])

    rows = []
    for t in THRESHOLDS:
        tp = int((all_copies <= t).sum())
        fp = int((distinct <= t).sum())
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / len(all_copies)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        within = all_copies <= t
        rows.append(
            {
                "threshold": t,
                "precision": round(precision, 6),
                "recall": round(recall, 6),
                "f1": round(f1, 6),
                "false_positive_pairs": fp,
                "false_positive_rate": fp / len(distinct),
                "recall_by_kind": {
                    kind: round(float((d <= t).mean()), 6) for kind, d in copies.items()
                },
                "band_recall_4x16": round(float(all_banded[within].mean()), 6)
                if within.any()
                else None,
            }
        )
    exact = [r for r in rows if r["precision"] == 1.0 and r["threshold"] > 0]
    if exact:
        chosen, rule = exact[-1], "largest threshold with precision 1.0"
        # No looser than the data shows: down to the largest copy distance within it.
        seen = all_copies[all_copies <= chosen["threshold"]]
        chosen = rows[int(seen.max())] if seen.size and seen.max() > 0 else chosen
    else:
        chosen, rule = max(rows, key=lambda r: (r["f1"], -r["threshold"])), "best F1"

    # The closest distinct pairs, by kind: what a threshold would merge first.
    order = np.argsort(distinct, kind="stable")[:10]
    closest = [
        {
            "distance": int(distinct[i]),
            "kinds": [kinds[left[i]], kinds[right[i]]],
            "images": [int(left[i]), int(right[i])],
        }
        for i in order
    ]
    kind_of = np.array(kinds)
    by_base_kind = {
        kind: {
            copy: int(d[kind_of == kind].max()) for copy, d in copies.items() if copy != "identical"
        }
        for kind in dict.fromkeys(KINDS)
    }
    low_structure = {}
    for kind in LOW_STRUCTURE:
        count = args.low_structure
        made = [images.jpeg(base_image(i, args.seed, kind)[1]) for i in range(count)]
        group_hashes, distances, _ = copy_distances(made)
        pairs = np.triu_indices(len(made), 1)
        apart = hamming(group_hashes[pairs[0]], group_hashes[pairs[1]])
        low_structure[kind] = {
            "copy_distance_max": {c: int(d.max()) for c, d in distances.items()},
            "copy_distance_mean": {c: round(float(d.mean()), 3) for c, d in distances.items()},
            "distinct_distance_min": int(apart.min()),
            "distinct_distance_median": float(np.median(apart)),
        }

    report = {
        "benchmark": "phash_threshold",
        "images": args.images,
        "seed": args.seed,
        "base_kinds": {k: kinds.count(k) for k in dict.fromkeys(KINDS)},
        "copies_per_image": len(images.NEAR_COPY_KINDS),
        "distinct_pairs": int(len(distinct)),
        "copy_distance": {
            kind: {
                "max": int(d.max()),
                "mean": round(float(d.mean()), 3),
                "p95": float(np.percentile(d, 95)),
                "histogram": np.bincount(d, minlength=17)[:17].tolist(),
            }
            for kind, d in copies.items()
        },
        "distinct_distance": {
            "min": int(distinct.min()),
            "p1": float(np.percentile(distinct, 1)),
            "p5": float(np.percentile(distinct, 5)),
            "median": float(np.median(distinct)),
            "histogram_0_24": np.bincount(distinct, minlength=25)[:25].tolist(),
        },
        "closest_distinct_pairs": closest,
        "copy_distance_max_by_base_kind": by_base_kind,
        "low_structure": low_structure,
        "thresholds": rows,
        "recommended": {"threshold": chosen["threshold"], "rule": rule}
        | {k: chosen[k] for k in ("precision", "recall", "f1", "recall_by_kind")},
        "seconds": {
            "build": round(built - start, 3),
            "hash": round(hashed - built, 3),
            "hashes_per_s": round(len(originals) * (1 + len(copies)) / (hashed - built), 1),
        },
        "note": "generated images, not photographs: a guide to check on real data",
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
