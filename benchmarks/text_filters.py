"""Benchmark: our default English heuristic chain against NeMo Curator's, side by side.

Builds (or reuses from `.bench-cache/`) a corpus of at least 100k documents from
`benchmarks.corpus` (real documentation sections plus junk), then on one core each:

- ours: `stages.text.recipes.default_english_heuristics()`, streamed over the JSONL in
  Arrow batches through one `FilterChain` (the same decisions as each filter applied in
  turn; shared per-batch word splitting), in a subprocess with every thread pool
  set to one thread, so its peak RSS is its own);
- NeMo Curator's: `benchmarks/nemo_side.py` in NeMo Curator's venv (`.bench-venvs/nemo`),
  the same recipe with their `DocumentFilter` classes, document by document;

and compares the decisions per document. Prints one JSON object and exits 0.

    .venv/bin/python benchmarks/text_filters.py [--documents 100000] [--nemo-docs N]
        [--scale 10] [--batch-rows 10000]

See benchmarks/README.md for what each field means.
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
    "NUMEXPR_NUM_THREADS": "1",
    "ARROW_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
HASH_SEED = "0"
# Both sides run with these, set before any import that starts a thread pool.
os.environ.update(SINGLE_THREAD)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = ROOT / ".bench-cache" / "text_filters"
NEMO_PYTHON = ROOT / ".bench-venvs" / "nemo" / "bin" / "python"
NEMO_SIDE = Path(__file__).resolve().parent / "nemo_side.py"
CORPUS_FORMAT = 1  # bump when the corpus recipe below changes
JUNK_FRACTION = 0.1
NEMO_VENV_HELP = (
    "NeMo Curator's venv is missing; create it with:\n"
    "  python3 -m venv .bench-venvs/nemo && "
    ".bench-venvs/nemo/bin/pip install -c .ci/constraints.txt nemo-curator"
)


# --- corpus -------------------------------------------------------------------------------


def _corpus_fingerprint(documents: int, seed: int) -> str:
    source = (Path(__file__).resolve().parent / "corpus.py").read_bytes()
    digest = hashlib.sha256(source + f"{CORPUS_FORMAT}:{documents}:{seed}".encode()).hexdigest()
    return digest[:16]


def build_corpus(documents: int, seed: int = 0) -> tuple[Path, dict]:
    """The JSONL corpus of `documents` rows and its metadata, cached under .bench-cache/.

    Real documentation sections come first; junk fills `JUNK_FRACTION` of the corpus. When
    the machine has fewer real sections than needed, the rest are made by concatenating
    two distinct real sections chosen with `random.Random(seed)`. Rows are then shuffled
    with the same seed (so any prefix is a fair sample) and numbered `id = 00000000...`.
    """
    from benchmarks.corpus import documentation_sections, junk_documents

    fingerprint = _corpus_fingerprint(documents, seed)
    path = CACHE / f"corpus-{documents}-{fingerprint}.jsonl"
    meta_path = path.with_suffix(".meta.json")
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text())

    n_junk = int(documents * JUNK_FRACTION)
    n_real = documents - n_junk
    real = [(d["text"], d.get("source", "")) for d in documentation_sections(n_real)]
    if not real:
        raise SystemExit("benchmarks.corpus.documentation_sections() yielded no documents")
    real = real[:n_real]
    n_sections = len(real)
    rng = random.Random(seed)
    recombined = 0
    while len(real) < n_real:
        a, b = rng.sample(range(n_sections), 2) if n_sections > 1 else (0, 0)
        real.append((real[a][0] + "\n\n" + real[b][0], f"{real[a][1]}+{real[b][1]}"))
        recombined += 1
    junk = [(d["text"], d.get("source", "junk")) for d in junk_documents(n_junk, seed)]
    rows = real + junk
    rng.shuffle(rows)

    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(f"corpus-{documents}-*"):  # built from an older corpus.py
        stale.unlink()
    tmp = path.with_suffix(".tmp")
    total_bytes = 0
    with open(tmp, "w", encoding="utf-8") as out:
        for k, (text, source) in enumerate(rows):
            total_bytes += len(text.encode("utf-8"))
            out.write(json.dumps({"id": f"{k:08d}", "text": text, "source": source}) + "\n")
    tmp.replace(path)
    meta = {
        "documents": len(rows),
        "text_bytes": total_bytes,
        "file_bytes": path.stat().st_size,
        "real_sections": n_sections,
        "recombined": recombined,
        "recombination": (
            f"{recombined} documents are two distinct real sections concatenated "
            f"(pairs drawn with random.Random({seed}))"
            if recombined
            else None
        ),
        "junk": len(junk),
        "seed": seed,
        "fingerprint": fingerprint,
    }
    meta_path.write_text(json.dumps(meta, indent=2))  # written last: marks the cache valid
    return path, meta


# --- our side (runs in its own process) ---------------------------------------------------


def run_ours(corpus: Path, decisions: Path | None, batch_rows: int, repeat: int) -> dict:
    """Stream `corpus` (`repeat` times, ids suffixed) through our default chain."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    from stages.base import FilterChain
    from stages.text.recipes import ENGLISH_HEURISTICS, default_english_heuristics, step_label

    labels = [step_label(cls, kw) for cls, kw in ENGLISH_HEURISTICS]
    chain = FilterChain(default_english_heuristics(), sample_size=0, track_removed=True)
    chain.setup()
    rss_after_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    size = corpus.stat().st_size
    with open(corpus, "rb") as f:
        lines = sum(1 for _ in f)
    block_size = max(1 << 20, int(size / max(lines, 1) * batch_rows))
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())])
    read_options = pj.ReadOptions(block_size=block_size, use_threads=False)
    parse_options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")

    seconds = [0.0]
    cpu = [0.0] * len(labels)
    rejected = [0] * len(labels)
    documents = kept = text_bytes = batches = 0
    out = open(decisions, "w") if decisions else None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        for r in range(repeat):
            reader = pj.open_json(corpus, read_options=read_options, parse_options=parse_options)
            for record_batch in reader:
                batch = pa.Table.from_batches([record_batch])
                if repeat > 1:
                    suffixed = pc.binary_join_element_wise(batch["id"], pa.scalar(f"r{r}"), "-")
                    batch = batch.set_column(0, "id", suffixed)
                documents += batch.num_rows
                text_bytes += pc.sum(pc.binary_length(batch["text"])).as_py() or 0
                batches += 1
                t0 = time.perf_counter()
                result, records = chain.run(batch)
                seconds[0] += time.perf_counter() - t0
                for i, record in enumerate(records):
                    cpu[i] += record["cpu_seconds"]
                    rejected[i] += len(record["removed_rows"])
                    if out is not None and len(record["removed_rows"]):
                        gone = batch["id"].take(pa.array(record["removed_rows"]))
                        for doc_id in gone.to_pylist():
                            out.write(json.dumps({"id": doc_id, "rejected_by": labels[i]}))
                            out.write("\n")
                batch = result
                kept += batch.num_rows
    finally:
        if out is not None:
            out.close()
    wall, total_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    filter_cpu = sum(cpu)
    return {
        "documents": documents,
        "kept": kept,
        "batches": batches,
        "text_bytes": text_bytes,
        "cpu_s": filter_cpu,
        "wall_s": sum(seconds),
        "docs_per_s": documents / filter_cpu if filter_cpu else None,
        "mb_per_s": text_bytes / 1e6 / filter_cpu if filter_cpu else None,
        "end_to_end_cpu_s": total_cpu,
        "end_to_end_wall_s": wall,
        "end_to_end_docs_per_s": documents / total_cpu if total_cpu else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_setup_mb": rss_after_setup,
        "per_filter": {
            label: {"seconds": round(c, 4), "rejected": n}
            for label, c, n in zip(labels, cpu, rejected, strict=True)
        },
    }


def _ours_subprocess(corpus: Path, decisions: Path | None, batch_rows: int, repeat: int) -> dict:
    timing = CACHE / f"ours-timing-{os.getpid()}-{repeat}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--run-ours",
        str(corpus),
        "--timing-out",
        str(timing),
        "--batch-rows",
        str(batch_rows),
        "--repeat",
        str(repeat),
    ]
    if decisions is not None:
        cmd += ["--decisions-out", str(decisions)]
    env = {**os.environ, **SINGLE_THREAD, "PYTHONHASHSEED": HASH_SEED}
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    result = json.loads(timing.read_text())
    timing.unlink()
    return result


def _nemo_subprocess(
    corpus: Path, decisions: Path, limit: int | None, hash_seed: str = HASH_SEED
) -> dict | None:
    if not NEMO_PYTHON.exists():
        print(NEMO_VENV_HELP, file=sys.stderr)
        return None
    from stages.text.recipes import ENGLISH_HEURISTICS

    recipe = CACHE / "recipe-english.json"
    recipe.write_text(json.dumps([[cls, kw] for cls, kw in ENGLISH_HEURISTICS]))
    timing = CACHE / f"nemo-timing-{os.getpid()}.json"
    cmd = [
        str(NEMO_PYTHON),
        str(NEMO_SIDE),
        "--input",
        str(corpus),
        "--recipe",
        str(recipe),
        "--decisions",
        str(decisions),
        "--timing",
        str(timing),
        "--hash-seed",
        hash_seed,
    ]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    env = {**os.environ, **SINGLE_THREAD, "PYTHONHASHSEED": hash_seed}
    subprocess.run(cmd, check=True, env=env, cwd=CACHE)
    result = json.loads(timing.read_text())
    timing.unlink()
    return result


# --- comparison ---------------------------------------------------------------------------


def compare(ours_path: Path, nemo_path: Path, examples: int = 3) -> dict:
    """Agreement over the documents NeMo ran; disagreements counted by the deciding filter."""
    ours_rejected = {}
    with open(ours_path) as f:
        for line in f:
            row = json.loads(line)
            ours_rejected[row["id"]] = row["rejected_by"]
    same = total = 0
    by_filter: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    samples: dict[str, list[str]] = {}
    with open(nemo_path) as f:
        for line in f:
            row = json.loads(line)
            total += 1
            ours_by = ours_rejected.get(row["id"])
            nemo_by = row["rejected_by"]
            if (ours_by is None) == (nemo_by is None):
                same += 1
                continue
            # The filter that made the difference: the one that rejected on its side.
            label = ours_by or nemo_by
            kind = "ours_only_rejects" if ours_by else "nemo_only_rejects"
            by_filter[f"{label} ({kind})"] += 1
            kinds[kind] += 1
            samples.setdefault(label, [])
            if len(samples[label]) < examples:
                samples[label].append(row["id"])
    return {
        "compared": total,
        "agreement": same / total if total else None,
        "disagreements": total - same,
        "disagreements_by_kind": dict(kinds),
        "disagreements_by_filter": dict(by_filter.most_common()),
        "disagreement_examples": samples,
    }


def _first_rejecting_agreement(ours_path: Path, nemo_path: Path) -> dict:
    """Among documents both reject, how often the same filter is the first to reject."""
    ours_rejected = {}
    with open(ours_path) as f:
        for line in f:
            row = json.loads(line)
            ours_rejected[row["id"]] = row["rejected_by"]
    both = same = 0
    with open(nemo_path) as f:
        for line in f:
            row = json.loads(line)
            ours_by = ours_rejected.get(row["id"])
            if ours_by and row["rejected_by"]:
                both += 1
                same += ours_by == row["rejected_by"]
    return {"both_reject": both, "same_first_filter": same / both if both else None}


def hash_seed_check(ours_path: Path, seed0_path: Path, seed1_path: Path) -> dict:
    """NeMo against itself under two hash seeds, and ours against NeMo on the documents
    whose NeMo decision does not depend on the hash seed."""
    ours_rejected = {}
    with open(ours_path) as f:
        for line in f:
            row = json.loads(line)
            ours_rejected[row["id"]] = row["rejected_by"]
    total = stable = ours_same_on_stable = 0
    unstable_by: Counter[str] = Counter()
    with open(seed0_path) as f0, open(seed1_path) as f1:
        for line0, line1 in zip(f0, f1, strict=True):
            a, b = json.loads(line0), json.loads(line1)
            total += 1
            if a["kept"] != b["kept"]:
                unstable_by[a["rejected_by"] or b["rejected_by"]] += 1
                continue
            stable += 1
            ours_same_on_stable += (ours_rejected.get(a["id"]) is None) == a["kept"]
    return {
        "compared": total,
        "nemo_self_agreement": stable / total if total else None,
        "nemo_seed_dependent_by_filter": dict(unstable_by.most_common()),
        "agreement_on_seed_stable": ours_same_on_stable / stable if stable else None,
    }


# --- driver -------------------------------------------------------------------------------


def _summary(side: dict) -> dict:
    keys = ("documents", "kept", "docs_per_s", "mb_per_s", "peak_rss_mb", "cpu_s", "wall_s")
    out = {k: side[k] for k in keys if k in side}
    for k in ("end_to_end_docs_per_s", "rss_after_setup_mb", "engine", "per_filter"):
        if k in side:
            out[k] = side[k]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nemo-docs", type=int, default=None, help="NeMo on the first N only")
    parser.add_argument("--no-nemo", action="store_true", help="report our side only")
    parser.add_argument(
        "--nemo-seed-check",
        action="store_true",
        help="run NeMo again under PYTHONHASHSEED=1 and report how far its own decisions move",
    )
    parser.add_argument("--scale", type=int, default=None, help="also stream SCALE x documents")
    parser.add_argument("--batch-rows", type=int, default=10_000)
    # Internal: the our-side worker process.
    parser.add_argument("--run-ours", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--timing-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--decisions-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_ours:
        result = run_ours(args.run_ours, args.decisions_out, args.batch_rows, args.repeat)
        args.timing_out.write_text(json.dumps(result))
        return 0

    corpus, meta = build_corpus(args.documents, args.seed)
    print(f"corpus: {corpus} ({meta['documents']} documents)", file=sys.stderr)
    ours_decisions = CACHE / "decisions-ours.jsonl"
    nemo_decisions = CACHE / "decisions-nemo.jsonl"
    ours = _ours_subprocess(corpus, ours_decisions, args.batch_rows, 1)
    print(f"ours: {ours['docs_per_s']:.0f} docs/s", file=sys.stderr)
    nemo = None if args.no_nemo else _nemo_subprocess(corpus, nemo_decisions, args.nemo_docs)

    report: dict = {
        "documents": meta["documents"],
        "bytes": meta["text_bytes"],
        "corpus": {k: meta[k] for k in ("real_sections", "recombined", "recombination", "junk")},
        "ours": _summary(ours),
        "nemo": _summary(nemo) if nemo else None,
        "speedup": None,
        "agreement": None,
        "disagreements_by_filter": None,
        "scale_10": None,
    }
    if nemo:
        report["speedup"] = ours["docs_per_s"] / nemo["docs_per_s"]
        comparison = compare(ours_decisions, nemo_decisions)
        report["agreement"] = comparison.pop("agreement")
        report["disagreements_by_filter"] = comparison.pop("disagreements_by_filter")
        report["comparison"] = comparison | _first_rejecting_agreement(
            ours_decisions, nemo_decisions
        )
    if nemo and args.nemo_seed_check:
        seed1_decisions = CACHE / "decisions-nemo-seed1.jsonl"
        _nemo_subprocess(corpus, seed1_decisions, args.nemo_docs, hash_seed="1")
        report["nemo_hash_seed_check"] = hash_seed_check(
            ours_decisions, nemo_decisions, seed1_decisions
        )
    if args.scale and args.scale > 1:
        scaled = _ours_subprocess(corpus, None, args.batch_rows, args.scale)
        ratio = scaled["peak_rss_mb"] / ours["peak_rss_mb"]
        report[f"scale_{args.scale}"] = {
            "documents": scaled["documents"],
            "bytes": scaled["text_bytes"],
            "method": (
                f"the corpus streamed {args.scale} times, ids suffixed -r0..-r{args.scale - 1}"
            ),
            "docs_per_s": scaled["docs_per_s"],
            "mb_per_s": scaled["mb_per_s"],
            "peak_rss_mb": scaled["peak_rss_mb"],
            "peak_rss_ratio_vs_1x": ratio,
            "within_1_3x": ratio <= 1.3,
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
