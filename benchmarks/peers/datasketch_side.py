"""datasketch's MinHashLSH deduplication on one JSONL file, for `benchmarks/dedup_speed.py`.

Runs inside datasketch's own venv (`.bench-venvs/datasketch`). The way its documentation
deduplicates a stream: for each document, word 5-gram shingles (the text lower-cased, a
word a maximal run of letters, digits and underscores, the definition of the ground truth
in `benchmarks/dedup_data.py`), a `MinHash` of 128 permutations filled with
`update_batch`, a `MinHashLSH(threshold=0.8, num_perm=128)` query for earlier documents
that collide in a band, then `insert`. Each candidate pair is verified with the exact
Jaccard of the two shingle sets (kept when >= 0.8); verified pairs are joined into
clusters (union-find), every cluster keeps its first document, and the kept documents are
written as JSONL.

Writes `--result` (JSON): timings, peak RSS, the LSH banding datasketch chose, counts and
the clusters (lists of document ids, size >= 2).

    python datasketch_side.py --input documents.jsonl --output kept.jsonl --result OUT.json
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path

_WORD = re.compile(r"\w+")


def shingles(text: str, n: int) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--ngrams", type=int, default=5)
    args = parser.parse_args()

    from datasketch import MinHash, MinHashLSH

    wall0, cpu0 = time.perf_counter(), time.process_time()
    lsh = MinHashLSH(threshold=args.threshold, num_perm=args.num_perm)
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    ids: list[str] = []
    sets: list[set[str]] = []
    texts: list[str] = []
    candidates = verified = 0
    with open(args.input, encoding="utf-8") as f:
        for k, line in enumerate(f):
            row = json.loads(line)
            ids.append(row["id"])
            texts.append(line)
            s = shingles(row["text"], args.ngrams)
            sets.append(s)
            m = MinHash(num_perm=args.num_perm)
            m.update_batch([g.encode("utf-8") for g in s])
            for other in lsh.query(m):
                candidates += 1
                t = sets[other]
                union = len(s | t)
                if union and len(s & t) / union >= args.threshold:
                    verified += 1
                    a, b = find(other), find(k)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
            lsh.insert(k, m)
    kept = 0
    with open(args.output, "w", encoding="utf-8") as out:
        for k, line in enumerate(texts):
            if find(k) == k:
                out.write(line)
                kept += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    members: dict[int, list[str]] = {}
    for k in set(parent) | {find(k) for k in parent}:
        members.setdefault(find(k), []).append(ids[k])
    result = {
        "tool": "datasketch",
        "config": {
            "num_perm": args.num_perm,
            "threshold": args.threshold,
            "n_grams": args.ngrams,
            "bands": lsh.b,
            "rows_per_band": lsh.r,
            "verification": f"exact Jaccard of the shingle sets >= {args.threshold}",
        },
        "documents": len(ids),
        "removed": len(ids) - kept,
        "candidate_pairs": candidates,
        "verified_pairs": verified,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "clusters": [sorted(m) for m in members.values() if len(m) > 1],
    }
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
