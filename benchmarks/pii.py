"""Benchmark: `PiiModifier` (stages/text/pii.py) beside Presidio's recognisers, on one core.

Documents per CPU second, and recall and precision per type on the PII tests' corpus.

The corpus is generated (seeded): prose-like documents of 1 to 4 KB with the numbers
ordinary text is full of (years, dates, times, prices, versions, URLs, hashes), and in
`--pii-share` of them (default 5%) one to three planted identifiers (e-mail addresses,
phone numbers, IPs, card numbers, IBANs, SSNs, URL credentials, API keys). `--corpus FILE`
reads the `text` field of a JSONL file instead.

Sides (`--sides`, comma-separated; default `stage,ungated`), on the same Arrow batches of
`--batch-rows` rows, `--repeats` times each after a warm-up batch, the least CPU time
(`time.process_time`) kept:

- `stage`: `PiiModifier().apply` (replace), which asks the column-wide RE2 gates which
  documents may hold which types and runs the Python detectors only there;
- `ungated`: `PiiDetector.find` on every document for every type (what the stage would
  cost without the gates), with the same spans found (checked: `equal`);
- `presidio`: Presidio's predefined pattern recognisers for the six types it shares with
  us (`EmailRecognizer`, `PhoneRecognizer`, `IpRecognizer`, `CreditCardRecognizer`,
  `IbanRecognizer`, `UsSsnRecognizer`) in an `AnalyzerEngine` with no NLP model,
  `benchmarks/peers/presidio_pii_side.py` run by Presidio's own venv
  (`.bench-venvs/presidio`; without it the side is skipped with how to create it). It
  runs on the first `--presidio-docs` documents (it is about a hundred times slower),
  and so do, for the comparison, our stage with every type and our stage with the six.

Accuracy (with `stage` or `presidio`): the planted corpus of the PII tests
(`planted_corpus` of tests/stages/text/test_pii.py, `--planted-docs` documents, seed
`--planted-seed`; by default the test's own 300 and 13). Per type, recall and precision
against the planted spans, exact (same start, end and type: the test's rule) and by
overlap (a planted span is found when a found span of its type overlaps it, and the
reverse for precision: a boundary that differs by a bracket still counts), for our
detector with every type, with Presidio's six only, and for Presidio; the types Presidio
has no recogniser for; how many planted URL credentials Presidio's `UrlRecognizer` (type
URL) would cover; docs per CPU second of each on that corpus.

Prints one JSON object: documents, MB, per side CPU seconds, documents and MB per CPU
second; `speedup` (stage over ungated); `gated_share` (share of documents each type's gate
lets through); `counts` (entities found per type over the corpus); `presidio` (the
throughput comparison, or `skipped`); `accuracy`.

    .venv/bin/python benchmarks/pii.py [--documents 20000] [--batch-rows 5000]
        [--repeats 3] [--pii-share 0.05] [--seed 0] [--corpus FILE]
        [--sides stage,ungated,presidio] [--presidio-docs 1000]
        [--planted-docs 300] [--planted-seed 13] [--quick]

`--quick` runs 2,000 documents once (Presidio on 200), to check the script works.
See benchmarks/README.md for the figures measured.
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
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402

from stages.text.pii import PiiModifier  # noqa: E402
from stages.text.pii_patterns import ENTITY_TYPES, PiiDetector  # noqa: E402

SIDES = ("stage", "ungated", "presidio")
PLANTED_TESTS = ROOT / "tests" / "stages" / "text" / "test_pii.py"
PRESIDIO_PYTHON = ROOT / ".bench-venvs" / "presidio" / "bin" / "python"
PRESIDIO_SIDE = Path(__file__).resolve().parent / "peers" / "presidio_pii_side.py"
PRESIDIO_VENV_HELP = (
    "Presidio's venv is missing; create it with:\n"
    "  python3.11 -m venv .bench-venvs/presidio && .bench-venvs/presidio/bin/pip install "
    "-c .ci/constraints.txt presidio-analyzer==2.2.366"
)
# The types Presidio has a predefined pattern recogniser for, under the same names.
PRESIDIO_TYPES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IP_ADDRESS",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
)
PRESIDIO_LACKS = tuple(e for e in ENTITY_TYPES if e not in PRESIDIO_TYPES)

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


def _batches(docs: list[str], rows: int) -> list[pa.Table]:
    return [pa.table({"text": docs[i : i + rows]}) for i in range(0, len(docs), rows)]


def _rate(documents: int, mb: float, seconds: float) -> dict:
    return {
        "cpu_seconds": round(seconds, 4),
        "docs_per_cpu_second": round(documents / seconds, 1) if seconds else None,
        "mb_per_cpu_second": round(mb / seconds, 2) if seconds else None,
    }


def _stage_seconds(docs: list[str], batch_rows: int, repeats: int, entities=None) -> tuple:
    """Least CPU seconds of `PiiModifier(supported_entities=entities).apply` over `docs`,
    and the entities it found per type in one more pass."""
    stage = PiiModifier(supported_entities=list(entities) if entities else None)
    stage.setup()
    batches = _batches(docs, batch_rows)
    seconds = _best(stage.apply, batches, repeats)
    stage.take_counts()
    for batch in batches:
        stage.apply(batch)
    return seconds, stage.take_counts()


# --- Presidio's side ----------------------------------------------------------------------


def run_presidio(texts: list[str], repeats: int, extra: tuple[str, ...] = ()) -> dict:
    """`peers/presidio_pii_side.py` in Presidio's venv on `texts`: its JSON, or `error`."""
    with tempfile.TemporaryDirectory(prefix="pii-bench-") as tmp:
        path = Path(tmp) / "documents.jsonl"
        with open(path, "w", encoding="utf-8") as out:
            for text in texts:
                out.write(json.dumps({"text": text}) + "\n")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        command = [str(PRESIDIO_PYTHON), str(PRESIDIO_SIDE), "--input", str(path)]
        command += ["--repeats", str(repeats), *extra]
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp)
    if done.returncode != 0:
        return {"error": "\n".join(done.stderr.strip().splitlines()[-5:])}
    return json.loads(done.stdout)


def _presidio_counts(spans: list[list]) -> dict[str, int]:
    counts = {e: 0 for e in PRESIDIO_TYPES}
    for doc in spans:
        for _, _, entity, _ in doc:
            counts[entity] += 1
    return counts


def presidio_throughput(docs: list[str], args) -> dict:
    """Presidio, our stage with every type and our stage with Presidio's six types, on the
    same first `--presidio-docs` documents: docs and MB per CPU second, entities found."""
    docs = docs[: args.presidio_docs]
    mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    peer = run_presidio(docs, args.repeats)
    if "error" in peer:
        return {"documents": len(docs), "error": peer["error"]}
    ours, ours_counts = _stage_seconds(docs, args.batch_rows, args.repeats)
    shared, shared_counts = _stage_seconds(docs, args.batch_rows, args.repeats, PRESIDIO_TYPES)
    return {
        "engine": peer["engine"],
        "documents": len(docs),
        "mb": round(mb, 3),
        "presidio": _rate(len(docs), mb, peer["cpu_s"]) | {"setup_s": peer["setup_s"]},
        "stage": _rate(len(docs), mb, ours),
        "stage_presidio_types": _rate(len(docs), mb, shared),
        "stage_speedup": round(peer["cpu_s"] / ours, 1) if ours else None,
        "stage_presidio_types_speedup": round(peer["cpu_s"] / shared, 1) if shared else None,
        "counts": {
            "presidio": _presidio_counts(peer["spans"]),
            "stage": {e: ours_counts.get(e, 0) for e in ENTITY_TYPES},
            "stage_presidio_types": {e: shared_counts.get(e, 0) for e in PRESIDIO_TYPES},
        },
    }


# --- accuracy on the planted corpus --------------------------------------------------------


def planted_corpus(n_docs: int, seed: int) -> list[tuple[str, set]]:
    """`planted_corpus` of the PII tests (documents with their planted `(start, end,
    type)` spans), loaded from the test file so both measure the same corpus."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pii_planted_corpus", PLANTED_TESTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.planted_corpus(n_docs=n_docs, seed=seed)


def _overlaps(span: tuple, others: list[tuple]) -> bool:
    start, end, entity = span
    return any(t == entity and s < end and start < e for s, e, t in others)


def score_spans(corpus, found: list[list[tuple]], entities, examples: int = 3) -> dict:
    """Per type: planted, found, exact and overlap recall and precision, and a few
    excerpts of what was missed and what was found wrongly (exact rule)."""
    tally = {e: {"tp": 0, "fp": 0, "fn": 0, "ov_hit": 0, "ov_ok": 0} for e in entities}
    missed: dict = {e: [] for e in entities}
    wrong: dict = {e: [] for e in entities}
    for (text, planted), spans in zip(corpus, found, strict=True):
        planted = [p for p in planted if p[2] in tally]
        detected = set(spans)
        for span in detected:
            t = tally[span[2]]
            if span in planted:
                t["tp"] += 1
            else:
                t["fp"] += 1
                if len(wrong[span[2]]) < examples:
                    wrong[span[2]].append(text[span[0] : span[1]])
            t["ov_ok"] += _overlaps(span, planted)
        for span in planted:
            t = tally[span[2]]
            t["ov_hit"] += _overlaps(span, list(detected))
            if span not in detected:
                t["fn"] += 1
                if len(missed[span[2]]) < examples:
                    start, end = span[0], span[1]
                    missed[span[2]].append(text[max(0, start - 20) : end + 5])
    out = {}
    for entity, t in tally.items():
        planted_n, found_n = t["tp"] + t["fn"], t["tp"] + t["fp"]
        out[entity] = {
            "planted": planted_n,
            "found": found_n,
            "recall": round(t["tp"] / planted_n, 3) if planted_n else None,
            "precision": round(t["tp"] / found_n, 3) if found_n else None,
            "overlap_recall": round(t["ov_hit"] / planted_n, 3) if planted_n else None,
            "overlap_precision": round(t["ov_ok"] / found_n, 3) if found_n else None,
        }
        if missed[entity] or wrong[entity]:
            out[entity]["missed_examples"] = missed[entity]
            out[entity]["false_examples"] = wrong[entity]
    return out


def _url_coverage(corpus, url_spans: list[list]) -> dict:
    """How many planted URL credentials lie inside a URL that `UrlRecognizer` found."""
    planted = covered = 0
    for (_, spans), urls in zip(corpus, url_spans, strict=True):
        for start, end, entity in spans:
            if entity == "URL_CREDENTIALS":
                planted += 1
                covered += any(s <= start and end <= e for s, e, _, _ in urls)
    return {"planted": planted, "covered_by_a_url": covered}


def accuracy(sides: list[str], args) -> dict:
    corpus = planted_corpus(args.planted_docs, args.planted_seed)
    texts = [text for text, _ in corpus]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    planted: dict[str, int] = {e: 0 for e in ENTITY_TYPES}
    for _, spans in corpus:
        for *_, entity in spans:
            planted[entity] += 1
    report: dict = {
        "corpus": (
            f"planted_corpus of tests/stages/text/test_pii.py ({args.planted_docs} documents, "
            f"seed {args.planted_seed})"
        ),
        "documents": len(corpus),
        "mb": round(mb, 3),
        "planted": planted,
        "presidio_lacks": list(PRESIDIO_LACKS),
        "docs_per_cpu_second": {},
        "per_type": {},
    }
    if "stage" in sides:
        # The stage finds exactly what the detector finds (test_gates_never_hide_an_entity).
        for key, entities in (("stage", ENTITY_TYPES), ("stage_presidio_types", PRESIDIO_TYPES)):
            detector = PiiDetector(entities)
            found = [detector.find(text) for text in texts]
            report["per_type"][key] = score_spans(corpus, found, entities)
            seconds, _ = _stage_seconds(texts, args.batch_rows, args.repeats, entities)
            report["docs_per_cpu_second"][key] = round(len(texts) / seconds, 1)
    if "presidio" in sides:
        if not PRESIDIO_PYTHON.exists():
            report["per_type"]["presidio"] = {"skipped": PRESIDIO_VENV_HELP}
        else:
            peer = run_presidio(texts, args.repeats, ("--url", "--per-recognizer"))
            if "error" in peer:
                report["per_type"]["presidio"] = {"error": peer["error"]}
            else:
                found = [[(s, e, t) for s, e, t, _ in doc] for doc in peer["spans"]]
                report["per_type"]["presidio"] = score_spans(corpus, found, PRESIDIO_TYPES)
                report["docs_per_cpu_second"]["presidio"] = peer["docs_per_cpu_s"]
                report["presidio_cpu_seconds_per_recognizer"] = peer["per_recognizer_cpu_s"]
                report["presidio_scores_per_type"] = _scores_per_type(peer["spans"])
                report["presidio_url_on_url_credentials"] = _url_coverage(
                    corpus, peer["url"]["spans"]
                )
    return report


def _scores_per_type(spans: list[list]) -> dict[str, list[float]]:
    """The distinct scores Presidio gave each type (its default threshold, 0, keeps all)."""
    scores: dict[str, set] = {}
    for doc in spans:
        for _, _, entity, score in doc:
            scores.setdefault(entity, set()).add(score)
    return {entity: sorted(values) for entity, values in sorted(scores.items())}


def _table(report: dict) -> str:
    """Recall and precision (exact spans) per type and side, as text for stderr."""
    sides = [k for k, v in report["per_type"].items() if "EMAIL_ADDRESS" in v]
    lines = [f"{'':<16}" + "".join(f"{s:>22}" for s in sides)]
    lines.append(f"{'type':<16}" + f"{'recall':>11}{'precision':>11}" * len(sides))
    for entity in ENTITY_TYPES:
        row = f"{entity:<16}"
        for side in sides:
            cell = report["per_type"][side].get(entity)
            row += f"{'-':>22}" if cell is None else f"{cell['recall']:>11}{cell['precision']:>11}"
        lines.append(row)
    return "\n".join(lines)


# --- driver -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--batch-rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pii-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--sides", default="stage,ungated", help=f"comma-separated of {SIDES}")
    parser.add_argument("--presidio-docs", type=int, default=1000)
    parser.add_argument("--planted-docs", type=int, default=300)
    parser.add_argument("--planted-seed", type=int, default=13)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = [s for s in sides if s not in SIDES]
    if unknown or not sides:
        parser.error(f"--sides {args.sides!r}: expected some of {list(SIDES)}")
    if args.quick:
        args.documents, args.repeats = 2000, 1
        args.presidio_docs = min(args.presidio_docs, 200)

    if args.corpus:
        docs = read_corpus(args.corpus, args.documents)
    else:
        docs = build_corpus(args.documents, args.pii_share, args.seed)
    mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    batches = _batches(docs, args.batch_rows)
    result: dict = {
        "benchmark": "pii",
        "documents": len(docs),
        "mb": round(mb, 3),
        "corpus": args.corpus or f"generated (seed {args.seed}, pii share {args.pii_share})",
        "sides": sides,
    }

    detector = PiiDetector()
    seconds = {}
    if "stage" in sides:
        stage = PiiModifier()
        stage.setup()
        seconds["stage"] = _best(stage.apply, batches, args.repeats)
    if "ungated" in sides:

        def run_ungated(batch: pa.Table) -> None:
            for text in batch.column("text").to_pylist():
                detector.find(text)

        seconds["ungated"] = _best(run_ungated, batches, args.repeats)
    for side, s in seconds.items():
        result[side] = _rate(len(docs), mb, s)
    if "stage" in seconds and "ungated" in seconds:
        result["speedup"] = round(seconds["ungated"] / seconds["stage"], 2)
    if "stage" in sides:
        stage.take_counts()
        outputs = [stage.apply(batch)[0].column("text").to_pylist() for batch in batches]
        counts = stage.take_counts()
        expected = []
        for text in docs:
            for start, end, entity in reversed(detector.find(text)):
                text = text[:start] + f"<{entity}>" + text[end:]
            expected.append(text)
        gates = detector.gates(pa.array(docs))
        result["equal"] = [t for out in outputs for t in out] == expected
        result["gated_share"] = {
            entity: round(float(gates[:, j].mean()), 4)
            for j, entity in enumerate(detector.entities)
        }
        result["counts"] = {e: counts.get(e, 0) for e in ENTITY_TYPES}
    if "presidio" in sides:
        if PRESIDIO_PYTHON.exists():
            result["presidio"] = presidio_throughput(docs, args)
        else:
            print(PRESIDIO_VENV_HELP, file=sys.stderr)
            result["presidio"] = {"skipped": PRESIDIO_VENV_HELP}
    if "stage" in sides or ("presidio" in sides and PRESIDIO_PYTHON.exists()):
        result["accuracy"] = accuracy(sides, args)
        print(
            "recall / precision (exact spans) per type\n" + _table(result["accuracy"]),
            file=sys.stderr,
        )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
