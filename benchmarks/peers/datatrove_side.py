"""datatrove's MinHash deduplication on one JSONL file, for `benchmarks/dedup_speed.py`.

Runs inside datatrove's own venv (`.bench-venvs/datatrove`). The four steps of datatrove's
MinHash pipeline, each with its `LocalPipelineExecutor` on one worker, as its README
example runs them: signatures (`JsonlReader` -> `MinhashDedupSignature`, 1 task), buckets
(`MinhashDedupBuckets`, one task per bucket as it requires), clusters
(`MinhashDedupCluster`, 1 task, with cluster ids) and the filter (`JsonlReader` ->
`MinhashDedupFilter` -> `JsonlWriter`, 1 task). Word 5-grams, 14 buckets of 8 hashes,
64-bit hashes (`MinhashConfig`'s defaults). With one worker every step runs in this
process, so `ru_maxrss` is the pipeline's peak memory.

Writes `--result` (JSON): timings, peak RSS, the kept count and the clusters (lists of
document ids, size >= 2) read back from the `.clusters` file after the clock stops.

    python datatrove_side.py --input DIR/documents.jsonl --work WORKDIR --result OUT.json
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import struct
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--buckets", type=int, default=14)
    parser.add_argument("--hashes-per-bucket", type=int, default=8)
    parser.add_argument("--ngrams", type=int, default=5)
    args = parser.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.typeshelper import Languages

    if args.work.exists():  # completed tasks are skipped otherwise
        shutil.rmtree(args.work)
    work = args.work
    config = MinhashConfig(
        n_grams=args.ngrams,
        num_buckets=args.buckets,
        hashes_per_bucket=args.hashes_per_bucket,
        hash_config=HashConfig(precision=64),
    )

    def reader():
        return JsonlReader(
            str(args.input.parent), glob_pattern=args.input.name, text_key="text", id_key="id"
        )

    steps = {
        "signatures": LocalPipelineExecutor(
            pipeline=[
                reader(),
                MinhashDedupSignature(
                    str(work / "signatures"), config=config, language=Languages.english
                ),
            ],
            tasks=1,
            workers=1,
            logging_dir=str(work / "logs" / "signatures"),
        ),
        "buckets": LocalPipelineExecutor(
            pipeline=[
                MinhashDedupBuckets(str(work / "signatures"), str(work / "buckets"), config=config)
            ],
            tasks=config.num_buckets,
            workers=1,
            logging_dir=str(work / "logs" / "buckets"),
        ),
        "cluster": LocalPipelineExecutor(
            pipeline=[
                MinhashDedupCluster(
                    str(work / "buckets"), str(work / "remove"), config=config, save_cluster_id=True
                )
            ],
            tasks=1,
            workers=1,
            logging_dir=str(work / "logs" / "cluster"),
        ),
        "filter": LocalPipelineExecutor(
            pipeline=[
                reader(),
                MinhashDedupFilter(str(work / "remove")),
                JsonlWriter(str(work / "output")),
            ],
            tasks=1,
            workers=1,
            logging_dir=str(work / "logs" / "filter"),
        ),
    }
    seconds, cpu = {}, {}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for name, executor in steps.items():
        t0, c0 = time.perf_counter(), time.process_time()
        executor.run()
        seconds[name], cpu[name] = time.perf_counter() - t0, time.process_time() - c0
    wall, total_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )

    # Outside the clock: document index -> id (the reader's order), then the clusters.
    ids = [json.loads(line)["id"] for line in open(args.input, encoding="utf-8")]
    members: dict[int, list[str]] = {}
    clusters_file = work / "remove" / "000000.clusters"
    if clusters_file.exists():
        data = clusters_file.read_bytes()
        for doc, cluster in struct.iter_unpack("<II", data):
            members.setdefault(cluster, []).append(ids[doc])
    removed_file = work / "remove" / "000000.remove"
    removed = len(removed_file.read_bytes()) // 4 if removed_file.exists() else 0
    result = {
        "tool": "datatrove",
        "config": {
            "n_grams": config.n_grams,
            "num_buckets": config.num_buckets,
            "hashes_per_bucket": config.hashes_per_bucket,
            "hash": str(config.hash_config),
        },
        "documents": len(ids),
        "removed": removed,
        "wall_s": wall,
        "cpu_s": total_cpu,
        "step_wall_s": seconds,
        "step_cpu_s": cpu,
        "peak_rss_mb": peak / 1024,
        "clusters": [sorted(m) for m in members.values() if len(m) > 1],
    }
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
