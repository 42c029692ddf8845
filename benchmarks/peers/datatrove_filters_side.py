"""datatrove's Gopher and C4 quality filters on one JSONL file, for `benchmarks/text_filters.py`.

Runs inside datatrove's own venv (`.bench-venvs/datatrove`). Builds datatrove's
`GopherRepetitionFilter`, `GopherQualityFilter` and/or `C4QualityFilter` (default
arguments, English) named by `--filters`, in that order, turns each JSONL row into a
`datatrove.data.Document(text=..., id=...)` and calls `filter(doc)` on every document the
way a filter step's `run` does (`BaseFilter.filter_batch` with its default batch size of
one: one `filter` call per document); with several filters a document goes to the next
only when kept, as in a pipeline, and C4's filter rewrites the text of the documents it
keeps, as it does there. No executor, reader, writer or `stat_update` bookkeeping of
`BaseFilter.run` is timed: only the `filter` calls (the stats a filter updates inside its
own `filter`, as C4's per line, are part of them).

Outside the clock: imports, building the filters, loading the spaCy tokenizer (one call of
each of datatrove's word and sentence splitters on a short text, then their cache is
cleared), reading the JSONL and building the `Document` objects, writing the decisions.

Writes `--decisions` (JSONL, one line per document: `{"id", "kept", "rejected_by": class
name or null, "reason": datatrove's reason or null}`) and `--result` (JSON: CPU and wall
seconds of the filter calls, docs/s, per-filter seconds and drops, setup seconds).

    python datatrove_filters_side.py --input docs.jsonl \
        --filters GopherRepetitionFilter,GopherQualityFilter,C4QualityFilter \
        --decisions out.jsonl --result result.json [--limit N]
"""

from __future__ import annotations

import os
import sys

# One core: set before anything that may start a thread pool is imported.
_SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
os.environ.update(_SINGLE_THREAD)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

T0 = time.perf_counter()
FILTERS = ("GopherRepetitionFilter", "GopherQualityFilter", "C4QualityFilter")


def build_filters(names: list[str]) -> list:
    from datatrove.pipeline import filters

    unknown = [n for n in names if n not in FILTERS]
    if unknown:
        raise SystemExit(f"--filters: unknown {unknown}; choose from {list(FILTERS)}")
    return [getattr(filters, name)() for name in names]


def warm_tokenizer() -> None:
    """Load the spaCy tokenizer datatrove's splitters use, then forget the cached splits."""
    from datatrove.utils import text

    text.split_into_words("Warm up the tokenizer, once.")
    text.split_into_sentences("Warm up the tokenizer. Once.")
    text.split_into_parts.cache_clear()


def read_documents(path: Path, limit: int | None) -> list:
    from datatrove.data import Document

    documents = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if limit is not None and len(documents) >= limit:
                break
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}: line {line_number}: {exc}") from exc
            if not isinstance(row.get("text"), str) or "id" not in row:
                raise SystemExit(f"{path}: line {line_number}: expected string `text` and `id`")
            documents.append(Document(text=row["text"], id=str(row["id"])))
    return documents


def run(documents: list, steps: list) -> tuple[list[tuple[int, object]], dict]:
    """Each document through `steps` as a pipeline passes it; returns per document the
    index of the rejecting step (-1 when kept) and the raw result, and the timings."""
    clock = time.perf_counter
    seconds = [0.0] * len(steps)
    outcomes: list[tuple[int, object]] = []
    cpu0, wall0 = time.process_time(), clock()
    for doc in documents:
        outcome: tuple[int, object] = (-1, True)
        for i, step in enumerate(steps):
            t0 = clock()
            result = step.filter(doc)
            seconds[i] += clock() - t0
            kept = result[0] if isinstance(result, tuple) else result
            if not kept:
                outcome = (i, result)
                break
        outcomes.append(outcome)
    cpu, wall = time.process_time() - cpu0, clock() - wall0
    return outcomes, {"cpu_s": cpu, "wall_s": wall, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="JSONL with id and text")
    parser.add_argument("--filters", required=True, help="comma-separated, in pipeline order")
    parser.add_argument("--decisions", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents")
    args = parser.parse_args(argv)

    from importlib.metadata import version

    names = [n.strip() for n in args.filters.split(",") if n.strip()]
    steps = build_filters(names)
    warm_tokenizer()
    setup_s = time.perf_counter() - T0
    documents = read_documents(args.input, args.limit)
    text_bytes = sum(len(d.text.encode("utf-8")) for d in documents)
    ids = [d.id for d in documents]

    outcomes, timing = run(documents, steps)

    rejected = [0] * len(steps)
    with open(args.decisions, "w", encoding="utf-8") as out:
        for doc_id, (step, result) in zip(ids, outcomes, strict=True):
            reason = None
            if step >= 0:
                rejected[step] += 1
                reason = result[1] if isinstance(result, tuple) else None
            row = {
                "id": doc_id,
                "kept": step < 0,
                "rejected_by": names[step] if step >= 0 else None,
                "reason": reason,
            }
            out.write(json.dumps(row) + "\n")
    n = len(documents)
    cpu = timing["cpu_s"]
    result = {
        "engine": f"datatrove {version('datatrove')}",
        "filters": names,
        "documents": n,
        "kept": n - sum(rejected),
        "text_bytes": text_bytes,
        "cpu_s": cpu,
        "wall_s": timing["wall_s"],
        "docs_per_s": n / cpu if cpu else None,
        "wall_docs_per_s": n / timing["wall_s"] if timing["wall_s"] else None,
        "mb_per_s": text_bytes / 1e6 / cpu if cpu else None,
        "setup_s": setup_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "per_filter": {
            name: {"seconds": round(s, 4), "rejected": r}
            for name, s, r in zip(names, timing["seconds"], rejected, strict=True)
        },
    }
    args.result.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
