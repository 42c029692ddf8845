"""Ground truth for fuzzy deduplication: real prose with planted copies, and every pair of
documents whose word 5-gram Jaccard similarity is at least 0.8.

The set (cached under `.bench-cache/dedup/`):

- `originals` documents drawn with `random.Random(seed)` from all of
  `benchmarks.corpus.documentation_sections()` (Python docstrings, Vim help, licences,
  Debian READMEs, changelogs and copyright files), so the natural near duplicates of real
  documentation (licence texts, changelog entries repeated across packages) are in it;
- `per_kind` planted copies of each kind: `exact` (the same text) and word edits at rates
  2, 5, 10 and 20 %: `max(1, round(rate * words))` distinct word positions, each given one
  of substitution (by a word drawn from the corpus), insertion (a corpus word before it)
  or deletion, with equal odds. Each planted copy comes from a distinct original with at
  least `MIN_PLANT_WORDS` words, so a rate means what it says; whitespace around
  untouched words is kept.

All rows are shuffled with the seed and renumbered `id = 00000000, 00000001, ...`, so an
id says nothing about what was planted.

Similarity is defined on shingle sets:

- word 5-grams (`word_shingles`): the text lower-cased and cut into words, a word being a
  maximal run of letters, digits and underscores (punctuation and whitespace separate
  words, as in text-dedup's MinHash); a text of fewer than 5 words is one shingle;
- 24-character shingles (`char_shingles`): every window of 24 code points of the raw
  text (NeMo Curator's default), a shorter text being one shingle.

Shingles are compared through 64-bit hashes (a polynomial hash over seeded random values
per word or code point); two distinct shingles share a hash with probability about
2^-64 per pair, so the Jaccard values are exact for all practical purposes.

Ground truth (`pairs.parquet`): every planted pair (original, copy) whatever its
similarity, plus every pair of documents with word 5-gram Jaccard >= `threshold` (0.8).
The second set is found exhaustively with prefix filtering (All-Pairs, Bayardo et al.
2007; Chaudhuri et al. 2006), not with LSH, so nothing is missed by chance: order every
shingle by document frequency (rarest first, ties by hash); if J(x, y) >= t then
|x & y| >= t * max(|x|, |y|) >= ceil(t * |x|), and two sets that share at least `a`
elements, sorted by one global order, share an element within the first `|x| - a + 1`
of x and the first `|y| - a + 1` of y (else x's first `|x| - a + 1` elements and y's
would each hold no common element, leaving fewer than `a` common elements in the rest).
So every pair at or above t shares a token among the first `|x| - ceil(t |x|) + 1` tokens
of each; those candidates (after the length filter `t |y| <= |x| <= |y|`) get their exact
Jaccard, and only pairs at or above t are kept.

    .venv/bin/python benchmarks/dedup_data.py [--originals 30000] [--per-kind 250] [--seed 0]

prints the paths and a summary as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = ROOT / ".bench-cache" / "dedup"
DATA_FORMAT = 1  # bump when the recipe below changes
EDIT_RATES = (0.02, 0.05, 0.10, 0.20)
KINDS = ("exact",) + tuple(f"edit-{int(r * 100):02d}" for r in EDIT_RATES)
NATURAL = "natural"
MIN_PLANT_WORDS = 50
THRESHOLD = 0.8
WORD_NGRAM = 5
CHAR_NGRAM = 24

_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\s*\S+")
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the polynomial hash


# --- shingles --------------------------------------------------------------------------


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A fixed 64-bit mixing of each value (SplitMix64's finaliser): seeded random values."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _window_hashes(values: np.ndarray, n: int) -> np.ndarray:
    """Polynomial hash of every window of `n` consecutive 64-bit values (one if shorter)."""
    if len(values) == 0:
        return np.empty(0, dtype=np.uint64)
    if len(values) < n:
        n = len(values)
    count = len(values) - n + 1
    h = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _MULT + values[j : j + count]
    return h


def _word_value(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def word_shingles(text: str, n: int = WORD_NGRAM, _cache: dict | None = None) -> np.ndarray:
    """Sorted unique 64-bit hashes of the word `n`-grams of `text` (see module doc)."""
    words = _WORD.findall(text.lower())
    if _cache is None:
        values = [_word_value(w) for w in words]
    else:
        values = []
        for w in words:
            v = _cache.get(w)
            if v is None:
                v = _cache[w] = _word_value(w)
            values.append(v)
    return np.unique(_window_hashes(np.array(values, dtype=np.uint64), n))


def char_shingles(text: str, n: int = CHAR_NGRAM) -> np.ndarray:
    """Sorted unique 64-bit hashes of every `n`-code-point window of the raw `text`."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return np.unique(_window_hashes(_splitmix64(points), n))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays (1.0 for two empty sets)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


# --- all pairs above a threshold ---------------------------------------------------------


def similar_pairs(sets: list[np.ndarray], threshold: float = THRESHOLD) -> list[tuple]:
    """Every `(i, j, jaccard)` with `i < j` and `jaccard(sets[i], sets[j]) >= threshold`,
    found exactly by prefix filtering (see module doc). Empty sets are never paired."""
    sizes = np.array([len(s) for s in sets], dtype=np.int64)
    docs = np.repeat(np.arange(len(sets), dtype=np.int64), sizes)
    tokens = np.concatenate(sets) if len(sets) else np.empty(0, dtype=np.uint64)
    unique, inverse, counts = np.unique(tokens, return_inverse=True, return_counts=True)
    order = np.lexsort((unique, counts))  # rarest first, ties by hash: one global order
    rank = np.empty(len(unique), dtype=np.int64)
    rank[order] = np.arange(len(unique))
    ranks = rank[inverse]
    # Sort each document's tokens by rank; keep the first |x| - ceil(t |x|) + 1.
    by_doc = np.lexsort((ranks, docs))
    ranks, docs = ranks[by_doc], docs[by_doc]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    required = np.array([math.ceil(threshold * s - 1e-9) for s in sizes], dtype=np.int64)
    prefix = np.where(sizes > 0, sizes - required + 1, 0)
    position = np.arange(len(docs)) - starts[docs]
    in_prefix = position < prefix[docs]
    p_ranks, p_docs = ranks[in_prefix], docs[in_prefix]
    # Postings of each prefix token; every two documents in one posting list are candidates.
    by_token = np.lexsort((p_docs, p_ranks))
    p_ranks, p_docs = p_ranks[by_token], p_docs[by_token]
    boundaries = np.flatnonzero(np.diff(p_ranks)) + 1
    group_starts = np.concatenate(([0], boundaries))
    group_ends = np.concatenate((boundaries, [len(p_ranks)]))
    n = np.int64(len(sets))
    keys = []
    for start, end in zip(group_starts, group_ends, strict=True):
        if end - start < 2:
            continue
        members = p_docs[start:end]
        i, j = np.triu_indices(len(members), 1)
        keys.append(members[i] * n + members[j])
    if not keys:
        return []
    candidates = np.unique(np.concatenate(keys))
    a, b = candidates // n, candidates % n
    small, large = np.minimum(sizes[a], sizes[b]), np.maximum(sizes[a], sizes[b])
    keep = small >= threshold * large - 1e-9  # length filter
    out = []
    for i, j in zip(a[keep].tolist(), b[keep].tolist(), strict=True):
        similarity = jaccard(sets[i], sets[j])
        if similarity >= threshold:
            out.append((i, j, similarity))
    return out


# --- planting ----------------------------------------------------------------------------


def edit_words(text: str, rate: float, rng: random.Random, vocabulary: list[str]) -> str:
    """`text` with `max(1, round(rate * words))` distinct words substituted, preceded by an
    inserted word, or deleted (equal odds each); whitespace of untouched words is kept."""
    tokens = _TOKEN.findall(text)
    tail = text[sum(len(t) for t in tokens) :]
    k = min(len(tokens), max(1, round(rate * len(tokens))))
    edits = {p: rng.choice("sid") for p in rng.sample(range(len(tokens)), k)}
    out = []
    for p, token in enumerate(tokens):
        op = edits.get(p)
        if op is None:
            out.append(token)
            continue
        lead = token[: len(token) - len(token.lstrip())]
        word = token[len(lead) :]
        if op == "d":
            continue
        new = rng.choice(vocabulary)
        while new == word:
            new = rng.choice(vocabulary)
        if op == "s":
            out.append(lead + new)
        else:
            out.append(lead + new + " " + word)
    result = "".join(out) + tail
    return result if result.strip() else text + " " + rng.choice(vocabulary)


def _fingerprint(originals: int, per_kind: int, seed: int, threshold: float) -> str:
    here = Path(__file__).resolve().parent
    source = (here / "dedup_data.py").read_bytes() + (here / "corpus.py").read_bytes()
    key = f"{DATA_FORMAT}:{originals}:{per_kind}:{seed}:{threshold}".encode()
    return hashlib.sha256(source + key).hexdigest()[:12]


def build(
    originals: int = 30_000,
    per_kind: int = 250,
    seed: int = 0,
    threshold: float = THRESHOLD,
    log=None,
) -> dict:
    """Build (or reuse) the set; returns `{"documents", "pairs", "meta"}` paths and meta."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.corpus import documentation_sections

    folder = (
        CACHE
        / f"set-{originals}-{per_kind}-{seed}-{_fingerprint(originals, per_kind, seed, threshold)}"
    )
    paths = {
        "documents": folder / "documents.jsonl",
        "pairs": folder / "pairs.parquet",
        "meta": folder / "meta.json",
    }
    if paths["meta"].exists():
        return {k: str(v) for k, v in paths.items()} | {
            "meta_data": json.loads(paths["meta"].read_text())
        }
    say = log or (lambda message: print(message, file=sys.stderr))

    say("dedup_data: reading documentation sections")
    every = list(documentation_sections())
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(every)), min(originals, len(every))))
    base = [every[i] for i in chosen]
    del every
    plantable = [i for i, d in enumerate(base) if len(d["text"].split()) >= MIN_PLANT_WORDS]
    donors = rng.sample(plantable, min(len(plantable), per_kind * len(KINDS)))
    vocabulary = sorted({w for d in base[:3000] for w in d["text"].split() if w.isalpha()})

    rows = [(d["text"], d["source"], None, None) for d in base]  # text, source, origin, kind
    for k, kind in enumerate(KINDS):
        for donor in donors[k * per_kind : (k + 1) * per_kind]:
            text = base[donor]["text"]
            if kind != "exact":
                text = edit_words(text, EDIT_RATES[k - 1], rng, vocabulary)
            rows.append((text, base[donor]["source"], donor, kind))
    order = list(range(len(rows)))
    rng.shuffle(order)

    say(f"dedup_data: shingling {len(rows)} documents")
    cache: dict = {}
    word_sets = [word_shingles(rows[old][0], _cache=cache) for old in order]
    say("dedup_data: all pairs at or above the threshold (prefix filtering)")
    found = similar_pairs(word_sets, threshold)

    position = {old: pos for pos, old in enumerate(order)}
    pairs: dict[tuple[int, int], list] = {}
    for i, j, similarity in found:
        pairs[(i, j)] = [similarity, NATURAL]
    for old, (_, _, origin, kind) in enumerate(rows):
        if kind is None:
            continue
        i, j = sorted((position[origin], position[old]))
        similarity = jaccard(word_sets[i], word_sets[j])
        pairs[(i, j)] = [similarity, kind]
    char_sets: dict[int, np.ndarray] = {}

    def chars(pos: int) -> np.ndarray:
        if pos not in char_sets:
            char_sets[pos] = char_shingles(rows[order[pos]][0])
        return char_sets[pos]

    table_rows = []
    for (i, j), (similarity, kind) in sorted(pairs.items()):
        table_rows.append(
            {
                "id_a": f"{i:08d}",
                "id_b": f"{j:08d}",
                "jaccard_5gram": similarity,
                "jaccard_char24": jaccard(chars(i), chars(j)),
                "edit_rate": kind,
            }
        )

    folder.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(f"set-{originals}-{per_kind}-{seed}-*"):
        if stale != folder:
            for f in stale.iterdir():
                f.unlink()
            stale.rmdir()
    text_bytes = 0
    with open(paths["documents"], "w", encoding="utf-8") as out:
        for pos, old in enumerate(order):
            text, source = rows[old][0], rows[old][1]
            text_bytes += len(text.encode("utf-8"))
            out.write(json.dumps({"id": f"{pos:08d}", "text": text, "source": source}) + "\n")
    schema = pa.schema(
        [
            ("id_a", pa.string()),
            ("id_b", pa.string()),
            ("jaccard_5gram", pa.float64()),
            ("jaccard_char24", pa.float64()),
            ("edit_rate", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(table_rows, schema=schema), paths["pairs"])
    above = [r for r in table_rows if r["jaccard_5gram"] >= threshold]
    meta = {
        "documents": len(rows),
        "originals": len(base),
        "planted_per_kind": per_kind,
        "text_bytes": text_bytes,
        "seed": seed,
        "threshold": threshold,
        "pairs": len(table_rows),
        "pairs_at_or_above_threshold": len(above),
        "by_kind": {
            kind: {
                "pairs": sum(r["edit_rate"] == kind for r in table_rows),
                "at_or_above_threshold": sum(r["edit_rate"] == kind for r in above),
                "mean_jaccard_5gram": _mean(
                    r["jaccard_5gram"] for r in table_rows if r["edit_rate"] == kind
                ),
                "mean_jaccard_char24": _mean(
                    r["jaccard_char24"] for r in table_rows if r["edit_rate"] == kind
                ),
            }
            for kind in KINDS + (NATURAL,)
        },
    }
    paths["meta"].write_text(json.dumps(meta, indent=2))  # written last: marks the cache valid
    return {k: str(v) for k, v in paths.items()} | {"meta_data": meta}


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--originals", type=int, default=30_000)
    parser.add_argument("--per-kind", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    args = parser.parse_args(argv)
    print(json.dumps(build(args.originals, args.per_kind, args.seed, args.threshold), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
