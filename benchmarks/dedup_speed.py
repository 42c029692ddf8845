"""Benchmark: our fuzzy deduplication against datatrove's and datasketch's, side by side.

On the same documents (the set of `benchmarks/dedup_data.py`: ~31k real documentation
sections with planted copies), each side in its own process with every thread pool at
one thread and `PYTHONHASHSEED=0`, in the same run:

- ours: `benchmarks.dedup_quality.ours_fuzzy_dedup` (our stages in one process) with the
  configurations named by `--ours` (default: the one that meets the quality goal in
  `dedup_quality.py`, and datatrove's banding for comparison): read the JSONL with Arrow,
  find the clusters, write the kept documents as Parquet;
- datatrove: `benchmarks/peers/datatrove_side.py` in `.bench-venvs/datatrove`: its four
  MinHash steps (signatures, buckets, cluster, filter; word 5-grams, 14 x 8) with
  `LocalPipelineExecutor`, one worker;
- datasketch: `benchmarks/peers/datasketch_side.py` in `.bench-venvs/datasketch`:
  `MinHashLSH(threshold=0.8, num_perm=128)`, candidates verified by exact Jaccard.

Each side's clusters are scored against the ground truth (`dedup_quality.score_clusters`:
pairwise precision and recall on pairs at word 5-gram Jaccard >= 0.8). Prints one JSON
object and exits 0; a side whose venv is missing is reported as such.

    .venv/bin/python benchmarks/dedup_speed.py [--originals 30000] [--per-kind 250]
        [--ours w5-20x7-verified-words-centers,...] [--no-datatrove] [--no-datasketch]

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
os.environ.update(SINGLE_THREAD)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import dedup_data, dedup_quality  # noqa: E402

CACHE = dedup_data.CACHE
PEERS = Path(__file__).resolve().parent / "peers"
VENVS = ROOT / ".bench-venvs"
VENV_HELP = {
    "datatrove": (
        "python3 -m venv .bench-venvs/datatrove && .bench-venvs/datatrove/bin/pip install "
        "-c .ci/constraints.txt 'datatrove[processing,io]' spacy"
    ),
    "datasketch": (
        "python3 -m venv .bench-venvs/datasketch && .bench-venvs/datasketch/bin/pip install "
        "-c .ci/constraints.txt datasketch"
    ),
}
DEFAULT_OURS = "w5-20x7-verified-words-centers,w5-20x7-verified-words,datatrove-w5-14x8"
SPEEDUP_GOAL_VS_DATATROVE = 10.0


# --- our side (runs in its own process) -------------------------------------------------


def run_ours(documents: Path, name: str, output: Path) -> dict:
    """Read `documents`, find the clusters with configuration `name`, write the kept rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = dedup_quality._configs()[name]
    config = dedup_quality.make_config(spec["config"])
    import stages.dedup.fuzzy  # noqa: F401  (imports outside the clock, as the peers' are)

    rss_after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall0, cpu0 = time.perf_counter(), time.process_time()
    table = dedup_quality.read_documents(documents)
    clusters = dedup_quality.ours_fuzzy_dedup(
        table, config, spec["verify"], spec.get("clustering", "components")
    )
    drop = {doc for members in clusters for doc in sorted(members)[1:]}
    ids = table.column("id").to_pylist()
    keep = np.fromiter((doc not in drop for doc in ids), dtype=bool, count=len(ids))
    pq.write_table(table.filter(pa.array(keep)), output)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "tool": "ours",
        "config_name": name,
        "documents": table.num_rows,
        "removed": int((~keep).sum()),
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_imports_mb": rss_after_imports,
        "clusters": clusters,
    }


def _env() -> dict:
    return {**os.environ, **SINGLE_THREAD, "PYTHONHASHSEED": HASH_SEED}


def _ours_subprocess(documents: Path, name: str) -> dict:
    result = CACHE / f"ours-{name}-{os.getpid()}.json"
    output = CACHE / f"ours-{name}-kept.parquet"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--run-ours",
        name,
        "--documents",
        str(documents),
        "--result",
        str(result),
        "--output",
        str(output),
    ]
    subprocess.run(cmd, check=True, env=_env(), cwd=ROOT)
    data = json.loads(result.read_text())
    result.unlink()
    return data


def _peer_subprocess(tool: str, documents: Path) -> dict | None:
    python = VENVS / tool / "bin" / "python"
    if not python.exists():
        print(f"{tool}'s venv is missing; create it with:\n  {VENV_HELP[tool]}", file=sys.stderr)
        return None
    result = CACHE / f"{tool}-{os.getpid()}.json"
    cmd = [str(python), str(PEERS / f"{tool}_side.py"), "--input", str(documents)]
    cmd += ["--result", str(result)]
    if tool == "datatrove":
        cmd += ["--work", str(CACHE / "datatrove-work")]
    else:
        cmd += ["--output", str(CACHE / f"{tool}-kept.jsonl")]
    log = CACHE / f"{tool}.log"
    with open(log, "w") as out:
        subprocess.run(cmd, check=True, env=_env(), cwd=CACHE, stdout=out, stderr=subprocess.STDOUT)
    data = json.loads(result.read_text())
    result.unlink()
    return data


# --- driver ------------------------------------------------------------------------------


def _side_report(side: dict, truth: list[dict], word_sets) -> dict:
    clusters = side.pop("clusters")
    scores = dedup_quality.score_clusters(clusters, truth, word_sets=word_sets)
    documents = side["documents"]
    return {
        **{k: v for k, v in side.items() if k != "tool"},
        "docs_per_s": documents / side["cpu_s"] if side["cpu_s"] else None,
        "wall_docs_per_s": documents / side["wall_s"] if side["wall_s"] else None,
        "precision": scores["precision"],
        "recall": scores["recall"],
        "removal_precision": scores["removal_precision"],
        "removal_recall": scores["removal_recall"],
        "quality": scores,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--originals", type=int, default=30_000)
    parser.add_argument("--per-kind", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ours", default=DEFAULT_OURS, help="our configurations, comma-separated")
    parser.add_argument("--no-datatrove", action="store_true")
    parser.add_argument("--no-datasketch", action="store_true")
    # Internal: the our-side worker process.
    parser.add_argument("--run-ours", help=argparse.SUPPRESS)
    parser.add_argument("--documents", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_ours:
        args.result.write_text(json.dumps(run_ours(args.documents, args.run_ours, args.output)))
        return 0

    data = dedup_data.build(args.originals, args.per_kind, args.seed)
    documents = Path(data["documents"])
    truth = dedup_quality.load_truth(data["pairs"])
    word_sets = dedup_quality.word_sets_of(dedup_quality.read_documents(documents))

    sides: dict[str, dict | None] = {}
    for name in args.ours.split(","):
        sides[f"ours:{name}"] = _ours_subprocess(documents, name)
        print(f"ours:{name}: {sides[f'ours:{name}']['cpu_s']:.1f} CPU s", file=sys.stderr)
    for tool, skip in (("datatrove", args.no_datatrove), ("datasketch", args.no_datasketch)):
        if not skip:
            sides[tool] = _peer_subprocess(tool, documents)
            if sides[tool]:
                print(f"{tool}: {sides[tool]['cpu_s']:.1f} CPU s", file=sys.stderr)

    report: dict = {
        "documents": data["meta_data"]["documents"],
        "bytes": data["meta_data"]["text_bytes"],
        "true_pairs": sum(r["jaccard_5gram"] >= dedup_data.THRESHOLD for r in truth),
        "sides": {k: _side_report(v, truth, word_sets) if v else None for k, v in sides.items()},
    }
    summary = {}
    dt = report["sides"].get("datatrove")
    ds = report["sides"].get("datasketch")
    for key, side in report["sides"].items():
        if not side or not key.startswith("ours:"):
            continue
        entry = {
            "precision": side["precision"],
            "recall": side["recall"],
            "removal_precision": side["removal_precision"],
            "removal_recall": side["removal_recall"],
            "docs_per_s": side["docs_per_s"],
            "speedup_vs_datatrove": side["docs_per_s"] / dt["docs_per_s"] if dt else None,
            "speedup_vs_datasketch": side["docs_per_s"] / ds["docs_per_s"] if ds else None,
        }
        entry["meets_goal"] = (
            side["precision"] >= dedup_quality.PRECISION_GOAL
            and side["recall"] >= dedup_quality.RECALL_GOAL
            and (entry["speedup_vs_datatrove"] or 0) >= SPEEDUP_GOAL_VS_DATATROVE
            and (entry["speedup_vs_datasketch"] or 0) > 1.0
        )
        entry["meets_goal_on_removals"] = (
            side["removal_precision"] >= dedup_quality.PRECISION_GOAL
            and side["removal_recall"] >= dedup_quality.RECALL_GOAL
            and (entry["speedup_vs_datatrove"] or 0) >= SPEEDUP_GOAL_VS_DATATROVE
            and (entry["speedup_vs_datasketch"] or 0) > 1.0
        )
        summary[key] = entry
    report["summary"] = summary
    report["goal"] = {
        "precision": dedup_quality.PRECISION_GOAL,
        "recall": dedup_quality.RECALL_GOAL,
        "speedup_vs_datatrove": SPEEDUP_GOAL_VS_DATATROVE,
        "speedup_vs_datasketch": "> 1",
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
