"""The NeMo Curator side of `benchmarks/text_filters.py`: runs in NeMo Curator's own venv.

It reads a JSONL file of documents (`id`, `text`), builds NeMo Curator's `DocumentFilter`
objects from a recipe given as JSON (a list of `[class name, kwargs]`, the yaml's order),
and applies them document by document as NeMo's `ScoreFilter` chain decides:
`score_document` then `keep_document`, the first filter that rejects drops the document.
It times the filter calls only (reading and writing are outside the clock), on one
thread, with a fixed `PYTHONHASHSEED`.

Writes a JSONL of decisions, one line per document:
`{"id": ..., "kept": true|false, "rejected_by": label|null}`, and a timing JSON.

    python benchmarks/nemo_side.py --input docs.jsonl --recipe recipe.json \
        --decisions out.jsonl --timing timing.json [--limit N] [--hash-seed 0]
"""

from __future__ import annotations

import os
import sys

# One core, one hash seed (0 unless --hash-seed says otherwise): fixed before anything else
# is imported. The hash seed only takes effect at interpreter start, so re-run ourselves
# with it set when it is not.
_SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
HASH_SEED = "0"
if "--hash-seed" in sys.argv[:-1]:
    HASH_SEED = sys.argv[sys.argv.index("--hash-seed") + 1]
if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != HASH_SEED:
    os.environ.update(_SINGLE_THREAD, PYTHONHASHSEED=HASH_SEED)
    os.execv(sys.executable, [sys.executable, *sys.argv])
os.environ.update(_SINGLE_THREAD)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

NEMO_FILTER_MODULES = (
    "nemo_curator.stages.text.filters.heuristic.string",
    "nemo_curator.stages.text.filters.heuristic.repetition",
)


def step_label(class_name: str, kwargs: dict[str, Any]) -> str:
    # Same labels as stages.text.recipes.step_label (this file runs without our package).
    return f"{class_name}(n={kwargs['n']})" if "n" in kwargs else class_name


def build_nemo_filters(recipe: list[list[Any]]) -> list[tuple[str, Any]]:
    """(label, NeMo DocumentFilter) for each `[class name, kwargs]` step of `recipe`."""
    import importlib

    modules = [importlib.import_module(name) for name in NEMO_FILTER_MODULES]
    built = []
    for class_name, kwargs in recipe:
        cls = next((getattr(m, class_name) for m in modules if hasattr(m, class_name)), None)
        if cls is None:
            raise ImportError(f"NeMo Curator has no filter {class_name!r} in {NEMO_FILTER_MODULES}")
        built.append((step_label(class_name, kwargs), cls(**kwargs)))
    return built


def run(input_path: str, recipe: list[list[Any]], decisions_path: str, limit: int | None) -> dict:
    import nemo_curator

    filters = build_nemo_filters(recipe)
    seconds = [0.0] * len(filters)
    rejected = [0] * len(filters)
    documents = kept = text_bytes = 0
    clock = time.perf_counter
    filter_cpu = 0.0
    filter_wall = 0.0
    with open(input_path, encoding="utf-8") as src, open(decisions_path, "w") as out:
        for line_number, line in enumerate(src, 1):
            if limit is not None and documents >= limit:
                break
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{input_path}: line {line_number}: {exc}") from exc
            text = doc["text"]
            text_bytes += len(text.encode("utf-8"))
            rejected_by = None
            cpu0, wall0 = time.process_time(), clock()
            for i, (label, doc_filter) in enumerate(filters):
                t0 = clock()
                keep = doc_filter.keep_document(doc_filter.score_document(text))
                seconds[i] += clock() - t0
                if not keep:
                    rejected_by = label
                    rejected[i] += 1
                    break
            filter_cpu += time.process_time() - cpu0
            filter_wall += clock() - wall0
            documents += 1
            kept += rejected_by is None
            out.write(
                json.dumps(
                    {"id": doc["id"], "kept": rejected_by is None, "rejected_by": rejected_by}
                )
                + "\n"
            )
    return {
        "engine": f"nemo_curator {nemo_curator.__version__}",
        "documents": documents,
        "kept": kept,
        "text_bytes": text_bytes,
        "cpu_s": filter_cpu,
        "wall_s": filter_wall,
        "docs_per_s": documents / filter_cpu if filter_cpu else None,
        "mb_per_s": text_bytes / 1e6 / filter_cpu if filter_cpu else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "per_filter": {
            label: {"seconds": round(s, 4), "rejected": r}
            for (label, _), s, r in zip(filters, seconds, rejected, strict=True)
        },
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="JSONL of documents with id and text")
    parser.add_argument("--recipe", required=True, help="JSON list of [class name, kwargs]")
    parser.add_argument("--decisions", required=True, help="where to write per-document JSONL")
    parser.add_argument("--timing", required=True, help="where to write the timing JSON")
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents")
    parser.add_argument(
        "--hash-seed",
        default=HASH_SEED,
        help="PYTHONHASHSEED to run under (default 0); NeMo's top n-gram filter breaks ties "
        "between equally frequent n-grams in set order, which hangs on it",
    )
    args = parser.parse_args(argv)
    with open(args.recipe) as f:
        recipe = json.load(f)
    timing = run(args.input, recipe, args.decisions, args.limit)
    with open(args.timing, "w") as f:
        json.dump(timing, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
