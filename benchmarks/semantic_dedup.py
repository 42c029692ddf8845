"""Semantic dedup's embedding rate against sentence-transformers' own `encode` (the limit
for the model), on the same texts in the same run; and the eps table each gives.

    .venv/bin/python benchmarks/semantic_dedup.py [--documents 30000] [--quick] [--no-int8]
        [--sides st_encode,ours,...] [--end-to-end [--shard-size-mb MB]]

Texts: the first `--documents` rows (default 30,000; `--quick` 2,000) of the text_filters
corpus (`.bench-cache/text_filters/corpus-*.jsonl`, built by benchmarks/text_filters.py;
rows shuffled, so a prefix is a fair sample), embedded with the bundled all-MiniLM-L6-v2.
Sides, one after another, each in a fresh process (spawned) that loads the texts itself:

- `st_encode`: `SentenceTransformer(path).encode(texts, batch_size=64,
  normalize_embeddings=True)`, torch on 2 threads;
- `ours`: `TextEmbedder(cpus=2).embed(texts)` (torch on 2 threads);
- `ours_ray_like`: as Ray runs the stage on 2 cores: 2 processes, `TextEmbedder(cpus=1)`
  (1 thread) on half the texts each, started together once both have loaded the model;
- `int8_candidate` (unless `--no-int8`): `encode` as `st_encode` on a copy of the model
  whose linear layers torch quantised dynamically to int8 (per-channel weights, the more
  accurate of its two schemes on x86), the quantised path the stage does NOT take.

Per side: `docs_per_s` (documents / wall seconds of the embedding call; for
`ours_ray_like` from the common start to the last process's end), `cpu_s` (CPU seconds of
the call, all threads and processes), `cpu_utilisation` (`cpu_s` / wall: under 2 when
something else took the cores), `docs_per_cpu_s`, `setup_s` (model load), `peak_rss_mb`
(`ru_maxrss` of the process: texts, model and embedding; for `ours_ray_like` per process
and summed), `ratio_to_st` (docs/s over `st_encode`'s) and `cpu_ratio_to_st` (docs per CPU
second over `st_encode`'s: the fairer figure on a shared machine), `cosine_to_st` (per
row: min, 1st percentile, mean).

`eps_tables`: for `st_encode`, `ours` and `int8_candidate`, the flow's SemDeDup on the
embeddings (k-means with `min(1000, N // 1000)` clusters, seed 42; keep "hard"; ties by
input order), what each eps of `DEFAULT_EPS_VALUES` removes; `eps_agreement` says whether
each removed count is within 1 % of the float one's (`ours` against `st_encode`,
`int8_candidate` against `ours`).

`--end-to-end`: the whole CLI, `curate dedup --input X.jsonl --output Y --method semantic
--json [--shard-size-mb MB]`, on the N documents written as one .jsonl: wall seconds,
docs/s, and the process tree's peak RSS and CPU (benchmarks/text_pipeline.py's
`run_measured`, sampling /proc every 0.2 s), `ratio_to_st` as above, and from the flow's
report the rows removed, each stage's seconds and shards, and its eps table. A file under
the shard size (32 MB by default) is one shard, which the flow runs in its driver with
the stage's one CPU: pass a smaller `--shard-size-mb` to spread it over the workers.

Prints one JSON object and exits 0. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CORPUS_GLOB = "corpus-*.jsonl"
CORPUS_DIR = ROOT / ".bench-cache" / "text_filters"
CURATE = ROOT / ".venv" / "bin" / "curate"
ST_BATCH_SIZE = 64
QUICK_DOCUMENTS = 2_000


def corpus_path(documents: int) -> Path:
    """The cached text_filters corpus with at least `documents` rows."""
    from benchmarks.text_pipeline import source_corpus

    return Path(source_corpus(documents)[0])


def load_texts(corpus: Path, documents: int) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with open(corpus, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n >= documents:
                break
            row = json.loads(line)
            ids.append(str(row["id"]))
            texts.append(row["text"])
    return ids, texts


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- one side, in its own process ---------------------------------------------------------


def _quantised_int8(model):
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's move to torchao
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )


def run_side(side: str, corpus: str, documents: int, part: int, parts: int, out: str, barrier):
    """Embed this side's texts; write `<out>/<side>-<part>.npy` and `.json`."""
    import numpy as np

    _, texts = load_texts(Path(corpus), documents)
    chunk = -(-len(texts) // parts)
    texts = texts[part * chunk : (part + 1) * chunk]
    rss_texts = peak_rss_mb()
    threads = 2 // parts
    t0 = time.perf_counter()
    if side in ("st_encode", "int8_candidate"):
        import torch
        from sentence_transformers import SentenceTransformer

        from stages.dedup.embed import default_model_path

        torch.set_num_threads(threads)
        model = SentenceTransformer(default_model_path(), device="cpu", local_files_only=True)
        if side == "int8_candidate":
            model = _quantised_int8(model)

        def embed(texts):
            return model.encode(texts, batch_size=ST_BATCH_SIZE, normalize_embeddings=True)
    else:
        from stages.dedup.embed import TextEmbedder

        embedder = TextEmbedder(cpus=threads)
        embedder.setup()
        embed = embedder.embed
    setup_s = time.perf_counter() - t0
    if barrier is not None:
        barrier.wait()
    start, cpu0 = time.time(), time.process_time()
    vectors = np.asarray(embed(texts), dtype=np.float32)
    end, cpu = time.time(), time.process_time() - cpu0
    np.save(Path(out) / f"{side}-{part}.npy", vectors)
    record = {
        "documents": len(texts),
        "threads": threads,
        "start": start,
        "end": end,
        "cpu_s": round(cpu, 2),
        "setup_s": round(setup_s, 2),
        "rss_texts_mb": rss_texts,
        "peak_rss_mb": peak_rss_mb(),
    }
    (Path(out) / f"{side}-{part}.json").write_text(json.dumps(record))


def measure(side: str, corpus: Path, documents: int, out: Path, parts: int = 1):
    """Run a side in `parts` spawned processes started together; its record and vectors."""
    import numpy as np

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(parts) if parts > 1 else None
    procs = [
        context.Process(
            target=run_side, args=(side, str(corpus), documents, p, parts, str(out), barrier)
        )
        for p in range(parts)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"{side}: a process exited with {proc.exitcode}")
    records = [json.loads((out / f"{side}-{p}.json").read_text()) for p in range(parts)]
    vectors = np.concatenate([np.load(out / f"{side}-{p}.npy") for p in range(parts)])
    wall = max(r["end"] for r in records) - min(r["start"] for r in records)
    cpu = sum(r["cpu_s"] for r in records)
    record = {
        "processes": parts,
        "threads_per_process": records[0]["threads"],
        "seconds": round(wall, 2),
        "docs_per_s": round(len(vectors) / wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_utilisation": round(cpu / wall, 2),
        "docs_per_cpu_s": round(len(vectors) / cpu, 3),
        "setup_s": max(r["setup_s"] for r in records),
        "rss_texts_mb": records[0]["rss_texts_mb"],
        "peak_rss_mb": round(sum(r["peak_rss_mb"] for r in records), 1),
    }
    if parts > 1:
        record["peak_rss_mb_per_process"] = [r["peak_rss_mb"] for r in records]
        record["seconds_per_process"] = [round(r["end"] - r["start"], 2) for r in records]
    return record, vectors


# --- comparisons --------------------------------------------------------------------------


def cosine_summary(vectors, reference) -> dict:
    import numpy as np

    cos = (vectors * reference).sum(axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
    )
    return {
        "min": round(float(cos.min()), 6),
        "p1": round(float(np.percentile(cos, 1)), 6),
        "mean": round(float(cos.mean()), 6),
    }


def eps_records(embeddings, seed: int = 42) -> list[dict]:
    """The flow's SemDeDup eps table on `embeddings` (rows in input order)."""
    import numpy as np
    import pyarrow as pa

    from stages.dedup.semantic import assign_clusters, eps_table, kmeans_fit, semantic_duplicates

    n_clusters = max(1, min(1000, len(embeddings) // 1000))
    centroids = kmeans_fit(embeddings, n_clusters, seed=seed)
    cluster, distance = assign_clusters(embeddings, centroids)
    similarities = []
    for c in np.unique(cluster):
        rows = np.flatnonzero(cluster == c)
        items = semantic_duplicates(
            [f"{i:020d}" for i in rows],  # ties (identical embeddings) go to input order
            embeddings[rows],
            distance[rows],
            eps=None,
            keep="hard",
            seed=seed,
            all_items=True,
        )
        similarities.append(items.column("similarity"))
    records = eps_table(pa.chunked_array(similarities, pa.float32()))
    return [{k: r[k] for k in ("eps", "removed", "removed_fraction")} for r in records]


def eps_agreement(records: list[dict], reference: list[dict]) -> dict:
    """Whether each eps removes within 1 % of what the reference removes."""
    rows = [
        {
            "eps": r["eps"],
            "removed": r["removed"],
            "reference": ref["removed"],
            "difference": r["removed"] - ref["removed"],
        }
        for r, ref in zip(records, reference, strict=True)
    ]
    within = all(abs(r["difference"]) <= 0.01 * max(r["reference"], 1) for r in rows)
    return {"within_1_percent": within, "by_eps": rows}


# --- end to end ---------------------------------------------------------------------------


def end_to_end(corpus: Path, documents: int, work: Path, shard_size_mb: float | None) -> dict:
    from benchmarks.text_pipeline import run_measured

    source = work / f"docs-{documents}.jsonl"
    with open(corpus, encoding="utf-8") as src, open(source, "w", encoding="utf-8") as out:
        for n, line in enumerate(src):
            if n >= documents:
                break
            out.write(line)
    cmd = [str(CURATE), "dedup", "--input", str(source), "--output", str(work / "out")]
    cmd += ["--method", "semantic", "--json"]
    if shard_size_mb is not None:
        cmd += ["--shard-size-mb", str(shard_size_mb)]
    run = run_measured(cmd, dict(os.environ), work / "curate.log")
    report = json.loads(run.pop("stdout"))
    record = {
        "command": " ".join(["curate", *cmd[1:]]).replace(str(work), "<tmp>"),
        "input_mb": round(source.stat().st_size / 2**20, 1),
        **run,
        "docs_per_s": round(documents / run["wall_s"], 2),
        "report": _report_summary(report),
    }
    return record


def _report_summary(output: dict) -> dict:
    """What the flow's JSON report says about the run: rows, seconds per stage, shards,
    the workers' operators and the eps table."""
    report = output.get("report") or {}
    summary = {k: report.get(k) for k in ("rows_read", "duplicates_removed", "seconds")}
    summary["stages"] = [
        {k: s.get(k) for k in ("stage", "rows_in", "rows_out", "seconds", "shards")}
        for s in report.get("stages") or []
    ]
    summary["operators"] = report.get("operators")
    for s in report.get("stages") or []:
        if (s.get("details") or {}).get("eps_table"):
            summary["eps_table"] = [
                {k: r[k] for k in ("eps", "removed")} for r in s["details"]["eps_table"]
            ]
    return summary


# --- main ---------------------------------------------------------------------------------

SIDES = {"st_encode": 1, "ours": 1, "ours_ray_like": 2, "int8_candidate": 1}  # side: processes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=30_000)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DOCUMENTS} documents")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 candidate")
    parser.add_argument("--end-to-end", action="store_true", help="also run `curate dedup`")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help="comma-separated sides to run (st_encode always runs: the reference); "
        "`--sides st_encode --end-to-end` is the acceptance's run, the whole CLI against "
        "encode, without the stage-level sides",
    )
    parser.add_argument(
        "--shard-size-mb",
        type=float,
        help="end to end: passed to `curate dedup` (its default, 32, leaves a file under "
        "32 MB one shard, run by one worker)",
    )
    args = parser.parse_args(argv)
    documents = QUICK_DOCUMENTS if args.quick else args.documents

    from importlib.metadata import version

    corpus = corpus_path(documents)
    _, texts = load_texts(corpus, documents)
    report = {
        "benchmark": "semantic_dedup",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "documents": len(texts),
        "text_mb": round(sum(len(t.encode()) for t in texts) / 2**20, 1),
        "mean_chars": round(sum(map(len, texts)) / max(len(texts), 1), 1),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "versions": {p: version(p) for p in ("torch", "sentence-transformers", "transformers")},
        "sides": {},
    }
    del texts
    chosen = {"st_encode", *filter(None, args.sides.split(","))}
    if unknown := chosen - set(SIDES):
        parser.error(f"--sides: unknown {sorted(unknown)}; choose from {list(SIDES)}")
    if args.no_int8:
        chosen.discard("int8_candidate")
    sides = [(side, parts) for side, parts in SIDES.items() if side in chosen]
    vectors = {}
    with tempfile.TemporaryDirectory(prefix="semantic-dedup-") as tmp:
        work = Path(tmp)
        for side, parts in sides:
            print(f"{side}: {documents} documents", file=sys.stderr)
            report["sides"][side], vectors[side] = measure(side, corpus, documents, work, parts)
        st_rate = report["sides"]["st_encode"]["docs_per_s"]
        st_cpu_rate = report["sides"]["st_encode"]["docs_per_cpu_s"]
        for side, record in report["sides"].items():
            record["ratio_to_st"] = round(record["docs_per_s"] / st_rate, 3)
            record["cpu_ratio_to_st"] = round(record["docs_per_cpu_s"] / st_cpu_rate, 3)
            record["cosine_to_st"] = cosine_summary(vectors[side], vectors["st_encode"])
        print("eps tables", file=sys.stderr)
        tables = {s: eps_records(vectors[s]) for s in vectors if s != "ours_ray_like"}
        report["eps_tables"] = tables
        report["eps_agreement"] = {}
        if "ours" in tables:
            report["eps_agreement"]["ours_vs_st_encode"] = eps_agreement(
                tables["ours"], tables["st_encode"]
            )
        if "int8_candidate" in tables and "ours" in tables:
            report["eps_agreement"]["int8_candidate_vs_ours"] = eps_agreement(
                tables["int8_candidate"], tables["ours"]
            )
        del vectors
        if args.end_to_end:
            print(f"end to end: curate dedup on {documents} documents", file=sys.stderr)
            record = end_to_end(corpus, documents, work, args.shard_size_mb)
            record["ratio_to_st"] = round(record["docs_per_s"] / st_rate, 3)
            report["end_to_end"] = record
            if record["report"].get("eps_table"):
                report["eps_agreement"]["end_to_end_vs_st_encode"] = eps_agreement(
                    record["report"]["eps_table"], tables["st_encode"]
                )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
