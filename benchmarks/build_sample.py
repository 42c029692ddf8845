"""Build `flows/data/sample.jsonl.gz`, the small corpus the demo and tests run on.

    python -m benchmarks.build_sample [--out PATH] [--docs 3000] [--seed 0]

Composition (fractions of `--docs`):

- 85% real documentation sections (`benchmarks.corpus.documentation_sections`) from the
  sources with one well-known licence each: the CPython standard library (PSF), Vim's
  help (Vim licence) and Debian's licence texts and package documentation,
- 10% junk (`benchmarks.corpus.junk_documents`),
- 5% exact duplicates of documents placed earlier in the file: two thirds byte-identical
  copies, one third the same text with extra whitespace around it (a duplicate for the
  normalised hash and after `TextCleaner`, not for the raw md5).

Order is shuffled with `--seed`, every duplicate after its original; the gzip header
carries no timestamp, so the same machine and seed give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
from pathlib import Path

from benchmarks.corpus import documentation_sections, junk_documents

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "flows" / "data" / "sample.jsonl.gz"
# python-site (third-party packages, mixed licences) is left out of the committed file.
SOURCE_SHARES = {"python-stdlib": 0.45, "vim-help": 0.3, "debian-doc": 0.2, "debian-license": 0.05}
_PADDING = ["\n", "  ", "\n\n", " \n", "\t", "\r\n"]


def build(n_docs: int = 3000, seed: int = 0) -> list[dict]:
    """The sample's rows, in file order."""
    rng = random.Random(seed)
    n_junk = round(n_docs * 0.10)
    n_dup = round(n_docs * 0.05)
    n_real = n_docs - n_junk - n_dup

    by_kind: dict[str, list[dict]] = {kind: [] for kind in SOURCE_SHARES}
    for doc in documentation_sections(site_packages=False):
        kind = doc["source"].split(":", 1)[0]
        if kind in by_kind:
            by_kind[kind].append(doc)
    real: list[dict] = []
    for kind, share in SOURCE_SHARES.items():
        want = min(round(n_real * share), len(by_kind[kind]), n_real - len(real))
        real.extend(rng.sample(by_kind[kind], want))
    taken = {d["id"] for d in real}
    rest = [d for docs in by_kind.values() for d in docs if d["id"] not in taken]
    real.extend(rng.sample(rest, n_real - len(real)))

    rows = real + junk_documents(n_junk, seed)
    rng.shuffle(rows)

    for k in range(n_dup):
        position = rng.randrange(len(rows))
        original = rows[position]
        text = original["text"]
        if k % 3 == 2:
            text = rng.choice(_PADDING) + text + rng.choice(_PADDING)
        duplicate = {"id": f"dup-{k:05d}", "text": text, "source": original["source"]}
        rows.insert(rng.randint(position + 1, len(rows)), duplicate)
    return rows


def write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as gz:
        for row in rows:
            line = {"id": row["id"], "text": row["text"], "source": row["source"]}
            gz.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
    out.write_bytes(buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = build(args.docs, args.seed)
    write(rows, args.out)
    kinds: dict[str, int] = {}
    for row in rows:
        kind = "duplicate" if row["id"].startswith("dup-") else row["source"].split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"{args.out}: {len(rows)} documents, {args.out.stat().st_size} bytes, {kinds}")


if __name__ == "__main__":
    main()
