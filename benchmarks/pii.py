"""Benchmark: documents per second of `PiiModifier` (stages/text/pii.py), on one core.

The corpus is generated (seeded): prose-like documents of 1 to 4 KB with the numbers
ordinary text is full of (years, dates, times, prices, versions, URLs, hashes), and in
`--pii-share` of them (default 5%) one to three planted identifiers (e-mail addresses,
phone numbers, IPs, card numbers, IBANs, SSNs, URL credentials, API keys). `--corpus FILE`
reads the `text` field of a JSONL file instead.

Two sides run on the same Arrow batches of `--batch-rows` rows, `--repeats` times each
after a warm-up batch, and the least CPU time (`time.process_time`) is kept:

- `stage`: `PiiModifier().apply` (replace), which asks the column-wide RE2 gates which
  documents may hold which types and runs the Python detectors only there;
- `ungated`: `PiiDetector.find` on every document for every type (what the stage would
  cost without the gates), with the same spans found (checked: `equal`).

Prints one JSON object: documents, MB, per side CPU seconds, documents and MB per CPU
second; `speedup` (stage over ungated); `gated_share` (share of documents each type's gate
lets through); `counts` (entities found per type over the corpus).

    .venv/bin/python benchmarks/pii.py [--documents 20000] [--batch-rows 5000]
        [--repeats 3] [--pii-share 0.05] [--seed 0] [--corpus FILE] [--quick]

`--quick` runs 2,000 documents once (a few seconds), to check the script works.
"""

from __future__ import annotations

import os
import sys

# Set before anything imports pyarrow, whose thread pool reads it: one core.
os.environ.setdefault("ARROW_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import string  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402

from stages.text.pii import PiiModifier  # noqa: E402
from stages.text.pii_patterns import ENTITY_TYPES, PiiDetector  # noqa: E402

WORDS = (
    "the of and to in a is that for it as was with be by on not this are or from at which "
    "but have an they you were there been one all we their has would when if so no will "
    "more can about up out what some time data model report build release server user "
    "value function returns list file path option default config table page result"
).split()

PII_SAMPLES = [
    "Contact jane.doe@example.com for details.",
    "Call me at (415) 555-0132 after five.",
    "Phone: +44 20 7946 0958",
    "The server at 203.0.113.42 refused the connection.",
    "Card number: 4111 1111 1111 1111",
    "IBAN: DE89 3704 0044 0532 0130 00",
    "SSN 284-89-3485 on file.",
    "DATABASE_URL=postgres://app:Hq7-xK2p9@db.example.com/app",
    "export GITHUB_TOKEN=ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A",
    'api_key = "f3Kq9ZpX2mL7vB4nR8tY1wE6uI0oP5sD"',
]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 20))]
    extra = rng.choice(
        [
            "",
            f" in {rng.randint(1990, 2030)}",
            f" on {rng.randint(2000, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            f" at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
            f" for ${rng.randint(1, 999)}.{rng.randint(0, 99):02d}",
            f" (version {rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)})",
            f" see https://docs.example.org/{rng.choice(WORDS)}/{rng.randint(1, 99)}",
            f" commit {rng.getrandbits(160):040x}",
            f" about {rng.randint(2, 9999):,} rows",
        ]
    )
    return " ".join(words).capitalize() + extra + "."


def build_corpus(documents: int, pii_share: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(documents):
        sentences = []
        while sum(len(s) + 1 for s in sentences) < rng.randint(1000, 4000):
            sentences.append(_sentence(rng))
        if rng.random() < pii_share:
            for _ in range(rng.randint(1, 3)):
                sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(PII_SAMPLES))
        if rng.random() < 0.1:  # a code-ish line, as documentation has
            name = "".join(rng.choice(string.ascii_lowercase) for _ in range(8))
            sentences.append(
                f"\n{name} = load_{rng.choice(WORDS)}(path, size={rng.randint(1, 512)})"
            )
        docs.append(" ".join(sentences))
    return docs


def read_corpus(path: str, documents: int) -> list[str]:
    docs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if len(docs) >= documents:
                break
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise SystemExit(f"{path}: line {n}: expected an object with a string 'text'")
            docs.append(row["text"])
    return docs


def _best(run, batches: list[pa.Table], repeats: int) -> float:
    run(batches[0])  # warm-up: compiled patterns, libphonenumber metadata
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for batch in batches:
            run(batch)
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--batch-rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pii-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.documents, args.repeats = 2000, 1

    if args.corpus:
        docs = read_corpus(args.corpus, args.documents)
    else:
        docs = build_corpus(args.documents, args.pii_share, args.seed)
    mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    batches = [
        pa.table({"text": docs[i : i + args.batch_rows]})
        for i in range(0, len(docs), args.batch_rows)
    ]

    stage = PiiModifier()
    stage.setup()
    detector = PiiDetector()

    def run_stage(batch: pa.Table) -> None:
        stage.apply(batch)

    def run_ungated(batch: pa.Table) -> None:
        for text in batch.column("text").to_pylist():
            detector.find(text)

    seconds = {
        "stage": _best(run_stage, batches, args.repeats),
        "ungated": _best(run_ungated, batches, args.repeats),
    }
    stage.take_counts()
    outputs = [stage.apply(batch)[0].column("text").to_pylist() for batch in batches]
    counts = stage.take_counts()
    expected = []
    for batch in batches:
        for text in batch.column("text").to_pylist():
            spans = detector.find(text)
            for start, end, entity in reversed(spans):
                text = text[:start] + f"<{entity}>" + text[end:]
            expected.append(text)
    gates = detector.gates(pa.array(docs))
    result = {
        "benchmark": "pii",
        "documents": len(docs),
        "mb": round(mb, 3),
        "corpus": args.corpus or f"generated (seed {args.seed}, pii share {args.pii_share})",
        **{
            side: {
                "cpu_seconds": round(s, 4),
                "docs_per_cpu_second": round(len(docs) / s, 1),
                "mb_per_cpu_second": round(mb / s, 2),
            }
            for side, s in seconds.items()
        },
        "speedup": round(seconds["ungated"] / seconds["stage"], 2),
        "equal": [t for out in outputs for t in out] == expected,
        "gated_share": {
            entity: round(float(gates[:, j].mean()), 4)
            for j, entity in enumerate(detector.entities)
        },
        "counts": {e: counts.get(e, 0) for e in ENTITY_TYPES},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
