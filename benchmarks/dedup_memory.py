"""Benchmark: memory of fuzzy dedup at scale (1M short documents by default).

Builds (or reuses from `.bench-cache/dedup-memory/`) a set of short documents made from
real documentation sentences, with planted near-duplicates, then runs the fuzzy dedup flow's
passes (`flows.dedup.run_dedup`, no Prefect server needed) on a local Ray cluster, sampling
the memory of every process of the Ray session (workers, raylet, object store, GCS) and
of the driver twice a second, as PSS (shared pages counted once, not once per process).
Prints one JSON object:

    {"documents", "bytes", "seconds", "docs_per_s", "removed",
     "peak_rss_ray_mb" (all Ray processes together), "peak_rss_driver_mb",
     "peak_rss_total_mb", "limit_mb": 4096, "within_limit"}

    .venv/bin/python benchmarks/dedup_memory.py [--documents 1000000] [--cpus 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench-cache" / "dedup-memory"
sys.path.insert(0, str(ROOT))


def build(documents: int, files: int = 8, seed: int = 0) -> Path:
    """`documents` short texts (10-40 words) in `files` JSONL files; every 20th is a near
    copy (one word changed) of an earlier one."""
    folder = CACHE / f"docs-{documents}-{files}-{seed}"
    if (folder / "_done").exists():
        return folder
    from benchmarks.corpus import documentation_sections

    sentences = []
    for doc in documentation_sections(limit=20000):
        sentences.extend(s.strip() for s in doc["text"].replace("\n", " ").split(". ") if s)
    sentences = [s for s in sentences if 4 <= len(s.split()) <= 30]
    rng = random.Random(seed)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    outs = [open(folder / f"part-{i:03d}.jsonl", "w") for i in range(files)]
    texts: list[str] = []
    for i in range(documents):
        if i % 20 == 19 and texts:
            words = texts[rng.randrange(len(texts))].split()
            words[rng.randrange(len(words))] = "changed"
            text = " ".join(words)
        else:
            text = ". ".join(rng.sample(sentences, 2)) + "."
        if len(texts) < 100_000:
            texts.append(text)
        outs[i * files // documents].write(json.dumps({"id": f"m{i}", "text": text}) + "\n")
    for f in outs:
        f.close()
    (folder / "_done").touch()
    return folder


def _rss_mb(pid: int) -> float:
    """Resident memory of `pid` as PSS (proportional set size): shared pages (Ray's object
    store is shared memory mapped by every worker) count once across processes instead of
    once per process, so the sum over processes is the memory they hold together."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:60]
    except OSError:
        return "?"


def _ray_pids(session_dir: str) -> list[int]:
    """Processes of this Ray session: those whose command line names its session folder
    (GCS, raylet, agents) and all their descendants (the workers), none of another
    session's that may run on the same machine."""
    parent, command = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
    roots = {pid for pid, cmd in command.items() if session_dir in cmd}
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parent.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    found.discard(os.getpid())
    return sorted(found)


class Sampler(threading.Thread):
    def __init__(self, session_dir: str):
        super().__init__(daemon=True)
        self.session_dir = session_dir
        self.peak_ray = self.peak_driver = self.peak_total = 0.0
        self.stop = threading.Event()
        self.at_peak: list = []

    def run(self) -> None:
        while not self.stop.wait(0.5):
            sizes = {p: _rss_mb(p) for p in _ray_pids(self.session_dir)}
            ray_mb = sum(sizes.values())
            driver = _rss_mb(os.getpid())
            if ray_mb > self.peak_ray:
                self.at_peak = sorted(
                    ((round(mb), _command(p)) for p, mb in sizes.items()), reverse=True
                )[:12]
            self.peak_ray = max(self.peak_ray, ray_mb)
            self.peak_driver = max(self.peak_driver, driver)
            self.peak_total = max(self.peak_total, ray_mb + driver)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=16)
    args = parser.parse_args(argv)

    folder = build(args.documents)
    size = sum(p.stat().st_size for p in folder.glob("*.jsonl"))
    work = tempfile.mkdtemp(prefix="dm-")
    os.environ.update(
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="disabled",
        CURATE_RAY_NUM_CPUS=str(args.cpus),
        CURATE_RAY_TMPDIR=os.path.join(work, "ray"),
    )
    import ray

    from flows.dedup import DedupParams, run_dedup
    from flows.runtime.engine import init_ray

    init_ray()
    session_dir = os.path.join(work, "ray")
    sampler = Sampler(session_dir)
    sampler.start()
    start = time.perf_counter()
    summary = run_dedup(
        DedupParams(
            input=str(folder / "*.jsonl"),
            output=os.path.join(work, "out"),
            method="fuzzy",
            verify="none",
            partitions=args.partitions,
            shard_size_mb=16,
        )
    )
    seconds = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    report = summary["report"]
    removed = report["rows_read"] - report["rows_written"]
    result = {
        "documents": args.documents,
        "bytes": size,
        "cpus": args.cpus,
        "seconds": round(seconds, 1),
        "docs_per_s": round(args.documents / seconds, 1),
        "removed": removed,
        "peak_rss_ray_mb": round(sampler.peak_ray, 1),
        "ray_processes_at_peak_mb": sampler.at_peak,
        "peak_rss_driver_mb": round(sampler.peak_driver, 1),
        "peak_rss_total_mb": round(sampler.peak_total, 1),
        "limit_mb": 4096,
        "within_limit": sampler.peak_ray <= 4096,
    }
    print(json.dumps(result, indent=2))
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
