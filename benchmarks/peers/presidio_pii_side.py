"""Presidio's pattern recognisers on one JSONL file, for `benchmarks/pii.py --sides presidio`.

Runs inside Presidio's own venv (`.bench-venvs/presidio`, `presidio-analyzer` from PyPI).
Builds an `AnalyzerEngine` the way Presidio documents for recognisers that need no NLP
model: `NoOpNlpEngine` (no spaCy model, nothing downloaded), a `RecognizerRegistry`
holding only the predefined recognisers of the types our `PiiModifier` also finds, with
their default arguments:

- `EmailRecognizer` (EMAIL_ADDRESS), `PhoneRecognizer` (PHONE_NUMBER, libphonenumber's
  matcher over its default regions), `IpRecognizer` (IP_ADDRESS), `CreditCardRecognizer`
  (CREDIT_CARD, Luhn-checked), `IbanRecognizer` (IBAN_CODE, checksum-checked) and
  `UsSsnRecognizer` (US_SSN).

Presidio has no recogniser for credentials in URLs or for API keys and private keys
(URL_CREDENTIALS, SECRET). Its `UrlRecognizer` (type URL, whole URLs) is run as a second,
separately timed pass (`--url`), so the caller can see whether redacting URLs would
cover the credentials in them.

Each document goes through `engine.analyze(text, entities, language="en")` with the
default score threshold (0: every result), so the engine's own de-duplication of
contained results runs; every result is printed with its score, for the caller to apply
other thresholds. Timed: the `analyze` calls only, CPU seconds (`time.process_time`),
the least of `--repeats` passes after a warm-up on the first document. Outside the clock:
imports, building the engine, reading the JSONL.

Prints one JSON object: `engine` (name and version), `entities`, `documents`,
`text_bytes`, `cpu_s`, `wall_s`, `docs_per_cpu_s`, `mb_per_cpu_s`, `setup_s`,
`peak_rss_mb`, `spans` (per document a list of `[start, end, type, score]`); with
`--per-recognizer`, `per_recognizer_cpu_s` (each recogniser's own `analyze` over every
document, one pass); with `--url`, a `url` object with the timing fields and spans of
the URL pass.

    python presidio_pii_side.py --input docs.jsonl [--repeats 3] [--limit N] [--url]
        [--per-recognizer]
"""

from __future__ import annotations

import os
import sys

# One core: set before anything that may start a thread pool is imported.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
# EmailRecognizer checks the domain with tldextract, which fetches the Public Suffix List
# on first use unless told not to: use the snapshot in its wheel, no network, no cache.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("TLDEXTRACT_CACHE", "")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

T0 = time.perf_counter()
# Our type names are Presidio's for the six types both have.
ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IP_ADDRESS",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
)


def build_engine(url: bool = False):
    """An `AnalyzerEngine` with no NLP model and only the six recognisers (or, with
    `url`, only `UrlRecognizer`)."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UrlRecognizer,
        UsSsnRecognizer,
    )

    if url:
        recognizers = [UrlRecognizer()]
    else:
        recognizers = [
            EmailRecognizer(),
            PhoneRecognizer(),
            IpRecognizer(),
            CreditCardRecognizer(),
            IbanRecognizer(),
            UsSsnRecognizer(),
        ]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    nlp_engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


def read_texts(path: Path, limit: int | None) -> list[str]:
    texts = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if limit is not None and len(texts) >= limit:
                break
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}: line {line_number}: {exc}") from exc
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise SystemExit(f"{path}: line {line_number}: expected a string `text`")
            texts.append(row["text"])
    return texts


def run(engine, texts: list[str], entities: list[str], repeats: int) -> tuple[list, dict]:
    """Every text through `engine.analyze`, `repeats` times after a warm-up; the spans of
    the last pass and the least CPU seconds of a pass (with that pass's wall seconds)."""
    if texts:
        engine.analyze(texts[0], entities=entities, language="en")
    best_cpu, best_wall, spans = float("inf"), 0.0, []
    for _ in range(max(repeats, 1)):
        found = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for text in texts:
            found.append(engine.analyze(text, entities=entities, language="en"))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if cpu < best_cpu:
            best_cpu, best_wall = cpu, wall
        spans = found
    out = [
        sorted([r.start, r.end, r.entity_type, round(r.score, 4)] for r in results)
        for results in spans
    ]
    return out, {"cpu_s": best_cpu, "wall_s": best_wall}


def per_recognizer(engine, texts: list[str]) -> dict[str, float]:
    """CPU seconds of each recogniser's own `analyze` over every text, one pass after a
    warm-up (what the engine's total is made of)."""
    artifacts = engine.nlp_engine.process_text("", "en")
    seconds = {}
    for recognizer in engine.registry.recognizers:
        entities = recognizer.supported_entities
        if texts:
            recognizer.analyze(texts[0], entities, artifacts)
        cpu0 = time.process_time()
        for text in texts:
            recognizer.analyze(text, entities, artifacts)
        seconds[type(recognizer).__name__] = round(time.process_time() - cpu0, 4)
    return seconds


def _timing(n: int, text_bytes: int, timing: dict) -> dict:
    cpu = timing["cpu_s"]
    return {
        "cpu_s": round(cpu, 4),
        "wall_s": round(timing["wall_s"], 4),
        "docs_per_cpu_s": round(n / cpu, 1) if cpu else None,
        "mb_per_cpu_s": round(text_bytes / 1e6 / cpu, 3) if cpu else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="JSONL with a `text` field")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes; the least counts")
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents")
    parser.add_argument("--url", action="store_true", help="also a pass of UrlRecognizer")
    parser.add_argument(
        "--per-recognizer", action="store_true", help="also CPU seconds of each recogniser"
    )
    args = parser.parse_args(argv)

    from importlib.metadata import version

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    engine = build_engine()
    url_engine = build_engine(url=True) if args.url else None
    setup_s = time.perf_counter() - T0
    texts = read_texts(args.input, args.limit)
    text_bytes = sum(len(t.encode("utf-8")) for t in texts)

    spans, timing = run(engine, texts, list(ENTITIES), args.repeats)
    result = {
        "engine": f"presidio-analyzer {version('presidio-analyzer')}",
        "phonenumbers": version("phonenumbers"),
        "entities": list(ENTITIES),
        "documents": len(texts),
        "text_bytes": text_bytes,
        **_timing(len(texts), text_bytes, timing),
        "setup_s": round(setup_s, 3),
        "spans": spans,
    }
    if args.per_recognizer:
        result["per_recognizer_cpu_s"] = per_recognizer(engine, texts)
    if url_engine is not None:
        url_spans, url_timing = run(url_engine, texts, ["URL"], args.repeats)
        result["url"] = {**_timing(len(texts), text_bytes, url_timing), "spans": url_spans}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
