"""Benchmark: our English heuristic filters against NeMo Curator's and datatrove's, side by side.

Builds (or reuses from `.bench-cache/`) a corpus of at least 100k documents from
`benchmarks.corpus` (real documentation sections plus junk), then on one core each:

- ours: `stages.text.recipes.default_english_heuristics()`, streamed over the JSONL in
  Arrow batches through one `FilterChain` (the same decisions as each filter applied in
  turn; shared per-batch word splitting), in a subprocess with every thread pool
  set to one thread, so its peak RSS is its own);
- NeMo Curator's: `benchmarks/nemo_side.py` in NeMo Curator's venv (`.bench-venvs/nemo`),
  the same recipe with their `DocumentFilter` classes, document by document;

and compares the decisions per document. In the same run (unless `--no-datatrove`), our
`GopherRepetitionFilter`, `GopherQualityFilter` and `C4QualityFilter` (datatrove's names and
defaults) against datatrove's own in its venv (`.bench-venvs/datatrove`,
`benchmarks/peers/datatrove_filters_side.py`), each alone and the three together, on the
same documents: docs/s, CPU seconds, and the keep/drop decision of every document. Prints
one JSON object and exits 0.

    .venv/bin/python benchmarks/text_filters.py [--documents 100000] [--nemo-docs N]
        [--no-nemo] [--datatrove-docs N] [--no-datatrove] [--scale 10] [--batch-rows 10000]

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
DATATROVE_PYTHON = ROOT / ".bench-venvs" / "datatrove" / "bin" / "python"
DATATROVE_SIDE = Path(__file__).resolve().parent / "peers" / "datatrove_filters_side.py"
# datatrove's names; the order is its FineWeb pipeline's (examples/fineweb.py), so C4's
# rewrite of the text it keeps comes last and changes no other filter's decision.
DATATROVE_FILTERS = ("GopherRepetitionFilter", "GopherQualityFilter", "C4QualityFilter")
TOGETHER = "together"
DATATROVE_VENV_HELP = (
    "datatrove's venv is missing; create it with:\n"
    "  python3 -m venv .bench-venvs/datatrove && .bench-venvs/datatrove/bin/pip install "
    "-c .ci/constraints.txt 'datatrove[processing,io]' spacy"
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


# --- datatrove's Gopher and C4 filters, side by side ---------------------------------------


def _read_batches(corpus: Path, limit: int | None, batch_rows: int) -> list:
    """The first `limit` rows of `corpus` (all without a limit) as contiguous Arrow tables
    of at most `batch_rows` rows, as our streaming reader hands them to the filters."""
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())])
    read_options = pj.ReadOptions(block_size=1 << 24, use_threads=False)
    parse_options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    record_batches, rows = [], 0
    for record_batch in pj.open_json(
        corpus, read_options=read_options, parse_options=parse_options
    ):
        if limit is not None and rows + record_batch.num_rows >= limit:
            record_batches.append(record_batch.slice(0, limit - rows))
            break
        record_batches.append(record_batch)
        rows += record_batch.num_rows
    table = pa.Table.from_batches(record_batches, schema=schema)
    return [
        table.slice(start, batch_rows).combine_chunks()
        for start in range(0, table.num_rows, batch_rows)
    ]


def run_ours_peer(
    corpus: Path, names: list[str], limit: int | None, decisions: Path, batch_rows: int
) -> dict:
    """Our filters of datatrove's names (`stages.text.filters`, default arguments), in
    `names`' order, over the first `limit` documents: one `FilterChain` per Arrow batch, a
    document leaving at the first filter that drops it. Only `FilterChain.run` is timed;
    datatrove's reason for each dropped document is worked out after the clock stops."""
    import pyarrow as pa

    import stages.text.filters as filters
    from stages.base import FilterChain

    unknown = [n for n in names if n not in DATATROVE_FILTERS]
    if unknown:
        raise SystemExit(f"unknown filters {unknown}; choose from {list(DATATROVE_FILTERS)}")
    steps = [getattr(filters, name)() for name in names]
    chain = FilterChain(steps, sample_size=0, track_removed=True)
    chain.setup()
    batches = _read_batches(corpus, limit, batch_rows)

    cpu = [0.0] * len(steps)
    removed: list[list] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for batch in batches:
        _, records = chain.run(batch)
        for i, record in enumerate(records):
            cpu[i] += record["cpu_seconds"]
        removed.append([record["removed_rows"] for record in records])
    total_cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0

    # After the clock: who dropped each document and datatrove's reason for it.
    documents = text_bytes = 0
    rejected = [0] * len(steps)
    with open(decisions, "w", encoding="utf-8") as out:
        for batch, per_step in zip(batches, removed, strict=True):
            verdict: dict[int, tuple[str, str | None]] = {}
            for i, (step, rows) in enumerate(zip(steps, per_step, strict=True)):
                rejected[i] += len(rows)
                if len(rows):
                    scores, _ = step.mask(batch.take(pa.array(rows)))
                    for row, reason in zip(rows, step.reason(scores), strict=True):
                        verdict[int(row)] = (names[i], reason)
            for k, doc_id in enumerate(batch["id"].to_pylist()):
                by, reason = verdict.get(k, (None, None))
                row = {"id": doc_id, "kept": by is None, "rejected_by": by, "reason": reason}
                out.write(json.dumps(row) + "\n")
            documents += batch.num_rows
            text_bytes += sum(len(t.encode("utf-8")) for t in batch["text"].to_pylist() if t)
    return {
        "documents": documents,
        "kept": documents - sum(rejected),
        "text_bytes": text_bytes,
        "cpu_s": total_cpu,
        "wall_s": wall,
        "docs_per_s": documents / total_cpu if total_cpu else None,
        "wall_docs_per_s": documents / wall if wall else None,
        "mb_per_s": text_bytes / 1e6 / total_cpu if total_cpu else None,
        "batches": len(batches),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "per_filter": {
            name: {"seconds": round(c, 4), "rejected": n}
            for name, c, n in zip(names, cpu, rejected, strict=True)
        },
    }


def _peer_sides(corpus: Path, names: list[str], limit: int | None, batch_rows: int, key: str):
    """One measurement, ours then datatrove's, each in a fresh process (cold caches on both
    sides): (ours, datatrove, our decisions, datatrove's decisions)."""
    env = {**os.environ, **SINGLE_THREAD, "PYTHONHASHSEED": HASH_SEED}
    ours_decisions = CACHE / f"decisions-datatrove-{key}-ours.jsonl"
    peer_decisions = CACHE / f"decisions-datatrove-{key}-datatrove.jsonl"
    ours_timing = CACHE / f"ours-peer-timing-{os.getpid()}.json"
    peer_timing = CACHE / f"datatrove-timing-{os.getpid()}.json"
    limit_args = ["--limit", str(limit)] if limit is not None else []
    ours_cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--run-ours-peer",
        ",".join(names),
        "--peer-input",
        str(corpus),
        "--decisions-out",
        str(ours_decisions),
        "--timing-out",
        str(ours_timing),
        "--batch-rows",
        str(batch_rows),
        *(["--peer-limit", str(limit)] if limit is not None else []),
    ]
    peer_cmd = [
        str(DATATROVE_PYTHON),
        str(DATATROVE_SIDE),
        "--input",
        str(corpus),
        "--filters",
        ",".join(names),
        "--decisions",
        str(peer_decisions),
        "--result",
        str(peer_timing),
        *limit_args,
    ]
    subprocess.run(ours_cmd, check=True, env=env, cwd=ROOT)
    subprocess.run(peer_cmd, check=True, env=env, cwd=CACHE)
    ours, peer = json.loads(ours_timing.read_text()), json.loads(peer_timing.read_text())
    ours_timing.unlink()
    peer_timing.unlink()
    return ours, peer, ours_decisions, peer_decisions


def compare_peer(ours_path: Path, peer_path: Path, examples: int = 3) -> dict:
    """Per document, our keep/drop against datatrove's (both files list the same ids in
    the same order); among documents both drop, how often the filter or reason differs."""
    kinds: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    samples: list[dict] = []
    total = same = both_drop = reason_mismatches = 0
    with open(ours_path) as ours_file, open(peer_path) as peer_file:
        for ours_line, peer_line in zip(ours_file, peer_file, strict=True):
            ours, peer = json.loads(ours_line), json.loads(peer_line)
            if ours["id"] != peer["id"]:
                raise ValueError(
                    f"decisions out of step: ours {ours['id']}, datatrove {peer['id']}"
                )
            total += 1
            if ours["kept"] == peer["kept"]:
                same += 1
                if not ours["kept"]:
                    both_drop += 1
                    mine = (ours["rejected_by"], ours["reason"])
                    reason_mismatches += mine != (peer["rejected_by"], peer["reason"])
                continue
            kind = "datatrove_only_rejects" if ours["kept"] else "ours_only_rejects"
            dropped = peer if ours["kept"] else ours
            kinds[kind] += 1
            by_reason[f"{dropped['rejected_by']}: {dropped['reason']} ({kind})"] += 1
            if len(samples) < examples:
                samples.append(
                    {
                        "id": ours["id"],
                        "ours": ours["reason"] or ours["rejected_by"] or "kept",
                        "datatrove": peer["reason"] or peer["rejected_by"] or "kept",
                    }
                )
    return {
        "compared": total,
        "agreement": same / total if total else None,
        "disagreements": total - same,
        "disagreements_by_kind": dict(kinds),
        "disagreements_by_reason": dict(by_reason.most_common()),
        "both_reject": both_drop,
        "reason_mismatches": reason_mismatches,
        "disagreement_examples": samples,
    }


def _add_excerpts(corpus: Path, samples: list[dict], chars: int = 160) -> None:
    """Give each example the start of its text (the corpus is read once, after the runs)."""
    wanted = {s["id"]: s for s in samples}
    if not wanted:
        return
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["id"] in wanted:
                wanted.pop(row["id"])["text_start"] = row["text"][:chars]
                if not wanted:
                    return


def _peer_summary(side: dict) -> dict:
    keys = (
        "documents",
        "kept",
        "docs_per_s",
        "wall_docs_per_s",
        "mb_per_s",
        "cpu_s",
        "wall_s",
        "peak_rss_mb",
        "setup_s",
        "per_filter",
    )
    return {k: side[k] for k in keys if k in side}


def datatrove_comparison(corpus: Path, limit: int | None, batch_rows: int) -> dict | None:
    """datatrove's `GopherRepetitionFilter`, `GopherQualityFilter` and `C4QualityFilter`
    against ours of the same names, each alone and the three together, on the same
    documents; None (with how to create it) when datatrove's venv is missing."""
    if not DATATROVE_PYTHON.exists():
        print(DATATROVE_VENV_HELP, file=sys.stderr)
        return None
    runs = [([name], name) for name in DATATROVE_FILTERS]
    runs.append((list(DATATROVE_FILTERS), TOGETHER))
    report: dict = {"engine": None, "documents": None, "order": list(DATATROVE_FILTERS)}
    results: dict = {}
    for names, key in runs:
        ours, peer, ours_path, peer_path = _peer_sides(corpus, names, limit, batch_rows, key)
        comparison = compare_peer(ours_path, peer_path)
        _add_excerpts(corpus, comparison["disagreement_examples"])
        report["engine"] = peer["engine"]
        report["documents"] = peer["documents"]
        results[key] = {
            "ours": _peer_summary(ours),
            "datatrove": _peer_summary(peer),
            "speedup": (
                ours["docs_per_s"] / peer["docs_per_s"]
                if ours["docs_per_s"] and peer["docs_per_s"]
                else None
            ),
        } | comparison
        print(
            f"datatrove {key}: ours {ours['docs_per_s'] or 0:.0f} docs/s, "
            f"datatrove {peer['docs_per_s'] or 0:.0f} docs/s, "
            f"{comparison['disagreements']} disagreements",
            file=sys.stderr,
        )
    report["summary"] = {
        key: {
            "ours_docs_per_s": r["ours"]["docs_per_s"],
            "datatrove_docs_per_s": r["datatrove"]["docs_per_s"],
            "speedup": r["speedup"],
            "disagreements": r["disagreements"],
        }
        for key, r in results.items()
    }
    report["filters"] = results
    return report


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
    parser.add_argument("--no-nemo", action="store_true", help="skip NeMo Curator's side")
    parser.add_argument(
        "--nemo-seed-check",
        action="store_true",
        help="run NeMo again under PYTHONHASHSEED=1 and report how far its own decisions move",
    )
    parser.add_argument(
        "--no-datatrove",
        action="store_true",
        help="skip the comparison with datatrove's Gopher and C4 filters",
    )
    parser.add_argument(
        "--datatrove-docs", type=int, default=None, help="datatrove comparison on the first N only"
    )
    parser.add_argument("--scale", type=int, default=None, help="also stream SCALE x documents")
    parser.add_argument("--batch-rows", type=int, default=10_000)
    # Internal: the our-side worker process.
    parser.add_argument("--run-ours", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--timing-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--decisions-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    # Internal: our side of the datatrove comparison.
    parser.add_argument("--run-ours-peer", help=argparse.SUPPRESS)
    parser.add_argument("--peer-input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--peer-limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_ours:
        result = run_ours(args.run_ours, args.decisions_out, args.batch_rows, args.repeat)
        args.timing_out.write_text(json.dumps(result))
        return 0
    if args.run_ours_peer:
        names = [n for n in args.run_ours_peer.split(",") if n]
        result = run_ours_peer(
            args.peer_input, names, args.peer_limit, args.decisions_out, args.batch_rows
        )
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
        "datatrove": None,
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
    if not args.no_datatrove:
        report["datatrove"] = datatrove_comparison(corpus, args.datatrove_docs, args.batch_rows)
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
