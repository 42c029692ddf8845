"""Benchmark: `TextCleaner` (ftfy on the lines it can change, regexes on the rows they can
match) against its first implementation (`TextCleaner._process_reference`: ftfy on every
row that is not plain ASCII, every regex over every row), on one core.

The documents are the first `--documents` rows (default 31,250) of the text-filter
benchmark's corpus (`benchmarks.text_filters.build_corpus`: real documentation sections and
10% junk, some of it German, French and Spanish; cached in `.bench-cache/text_filters/`),
with planted repairs in `--planted` of them (default 3%): a line of mojibake (a
multilingual sentence as UTF-8 read as Latin-1, Windows-1252, MacRoman or Windows-1251), or
curly quotes, HTML entities, CRLF line ends, NBSPs or a control character; the same seed
gives the same corpus.

Both implementations run on the same Arrow batches of `--batch-rows` rows, alternately,
`--repeats` times each after a warm-up batch; every thread pool has one thread; the figure
kept is the least CPU time (`time.process_time`) of the repeats. Equality is checked on
every batch: the two outputs must be the same table. Prints one JSON object and exits 0.

    .venv/bin/python benchmarks/text_clean.py [--documents 31250] [--batch-rows 10000]
        [--repeats 3] [--planted 0.03] [--seed 0]

Fields: `default` (the stage with its default options) and `fix_unicode_only` (ftfy alone,
the other rules off), each with `old` and `new` CPU seconds, documents and MB of text per
CPU second, and `speedup` (new over old documents per CPU second); `equal` whether every
batch gave the same output on both sides, for both configurations; `rows_through_ftfy`:
rows in which each side calls ftfy (the new side: on at least one line);
`rows_worked_on_by_new`: rows with a line ftfy could change (or not NFC), which the new
side repairs itself or hands to ftfy; `rows_changed_by_ftfy`: rows that ftfy does change.
`--corpus FILE` reads the first documents of another JSONL file (`text` field) instead.
"""

from __future__ import annotations

import os
import sys

# Set before anything imports polars or pyarrow, whose thread pools read them.
os.environ.update(
    {
        "OMP_NUM_THREADS": "1",
        "POLARS_MAX_THREADS": "1",
        "RAYON_NUM_THREADS": "1",
        "ARROW_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ftfy  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from stages.text import clean  # noqa: E402
from stages.text.clean import TextCleaner  # noqa: E402

_SENTENCES = [
    "Le fichier n'a pas pu être ouvert ; réessayez plus tard, s'il vous plaît.",
    "Die Datei konnte nicht geöffnet werden, weil sie gesperrt ist. Grüße!",
    "No se pudo abrir el archivo porque otro programa lo está usando.",
    "O arquivo não pôde ser aberto porque está em uso por outro programa.",
    "Файл не может быть открыт, потому что он используется.",
    "ファイルを開けませんでした。後でもう一度お試しください。",
    "The résumé’s “naïve” café section — see § 4.2 — costs 5 € ± 10 %.",
]
_ENCODINGS = ["latin-1", "windows-1252", "mac_roman", "windows-1251"]


def _plant(text: str, rng: random.Random) -> str:
    """`text` with one planted repair at a random line (see the module docstring)."""
    lines = text.split("\n")
    at = rng.randrange(len(lines) + 1)
    kind = rng.randrange(6)
    if kind < 2:
        sentence = rng.choice(_SENTENCES)
        lines.insert(at, sentence.encode("utf-8").decode(rng.choice(_ENCODINGS), "replace"))
    elif kind == 2:
        lines.insert(at, "It’s the “recommended” setting, isn’t it?")
    elif kind == 3:
        lines.insert(at, "Fish &amp; chips &mdash; &#233;t&eacute; &lt;b&gt;")
    elif kind == 4:
        return "\r\n".join(lines)
    else:
        lines.insert(at, "Name:\xa0value\x07 \u2028next")
    return "\n".join(lines)


def load_documents(
    documents: int, planted: float, seed: int, corpus: Path | None = None
) -> tuple[list[dict], dict]:
    meta: dict = {}
    if corpus is None:
        from benchmarks.text_filters import build_corpus

        corpus, meta = build_corpus(max(documents, 100_000), seed)
    rows = []
    with open(corpus, encoding="utf-8") as source:
        for n, line in enumerate(source):
            row = json.loads(line)
            rows.append({"id": str(row.get("id", n)), "text": row["text"]})
            if len(rows) >= documents:
                break
    rng = random.Random(seed)
    chosen = rng.sample(range(len(rows)), round(len(rows) * planted))
    for i in chosen:
        rows[i]["text"] = _plant(rows[i]["text"], rng)
    info = {
        "documents": len(rows),
        "text_bytes": sum(len(r["text"].encode("utf-8")) for r in rows),
        "source": f"first {len(rows)} rows of {corpus.name}"
        + (" (benchmarks.text_filters corpus)" if meta else ""),
        "real_sections_in_source": meta.get("real_sections"),
        "planted": len(chosen),
    }
    return rows, info


def _batches(rows: list[dict], batch_rows: int) -> list[pa.Table]:
    return [
        pa.table({"id": [r["id"] for r in part], "text": [r["text"] for r in part]})
        for part in (rows[i : i + batch_rows] for i in range(0, len(rows), batch_rows))
    ]


def _cpu(run: Callable[[pa.Table], pa.Table], batches: list[pa.Table]) -> tuple[float, list]:
    start = time.process_time()
    outputs = [run(batch) for batch in batches]
    return time.process_time() - start, outputs


def compare(cleaner: TextCleaner, batches: list[pa.Table], repeats: int) -> dict:
    documents = sum(b.num_rows for b in batches)
    megabytes = sum(pc.sum(pc.binary_length(b.column("text"))).as_py() for b in batches) / 1e6
    warm = batches[0].slice(0, 200)
    cleaner._process_reference(warm)
    cleaner.process(warm)
    old_times, new_times = [], []
    equal = True
    for _ in range(repeats):
        old_s, old_out = _cpu(cleaner._process_reference, batches)
        new_s, new_out = _cpu(cleaner.process, batches)
        old_times.append(old_s)
        new_times.append(new_s)
        equal = equal and all(a.equals(b) for a, b in zip(old_out, new_out, strict=True))

    def side(seconds: float) -> dict:
        return {
            "cpu_s": round(seconds, 3),
            "docs_per_s": round(documents / seconds),
            "mb_per_s": round(megabytes / seconds, 2),
        }

    old, new = min(old_times), min(new_times)
    return {"old": side(old), "new": side(new), "speedup": round(old / new, 2), "equal": equal}


def ftfy_rows(batches: list[pa.Table]) -> dict:
    """Rows each side works on and hands to ftfy, rows ftfy changes (outside the clock)."""
    calls = 0
    real_segment, real_text = ftfy.fix_text_segment, ftfy.fix_text

    def counting(function: Callable) -> Callable:
        def call(*args, **kwargs):
            nonlocal calls
            calls += 1
            return function(*args, **kwargs)

        return call

    old = worked_on = through_ftfy = changed = 0
    ftfy.fix_text_segment, ftfy.fix_text = counting(real_segment), counting(real_text)
    try:
        for batch in batches:
            texts = batch.column("text").to_pylist()
            column = batch.column("text").combine_chunks()
            ascii_only = pc.string_is_ascii(column).to_numpy(zero_copy_only=False)
            ascii_triggers = pc.match_substring_regex(column, clean._FTFY_ASCII_TRIGGERS)
            old += int(np.sum(~ascii_only | ascii_triggers.to_numpy(zero_copy_only=False)))
            for text in texts:
                if clean._may_change(text):
                    worked_on += 1
                    before = calls
                    clean._repair(text)
                    through_ftfy += calls > before
                changed += real_text(text) != text
    finally:
        ftfy.fix_text_segment, ftfy.fix_text = real_segment, real_text
    return {
        "rows_through_ftfy": {"old": old, "new": through_ftfy},
        "rows_worked_on_by_new": worked_on,
        "rows_changed_by_ftfy": changed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=31_250)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--planted", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--corpus", type=Path, default=None, help="a JSONL file with a `text` field instead"
    )
    args = parser.parse_args(argv)

    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows, corpus = load_documents(args.documents, args.planted, args.seed, args.corpus)
    batches = _batches(rows, args.batch_rows)
    non_ascii = sum(not r["text"].isascii() for r in rows)
    corpus["non_ascii_documents"] = non_ascii

    default = compare(TextCleaner(), batches, args.repeats)
    fix_only = TextCleaner(
        normalize_whitespace=False, remove_url_lines=False, remove_boilerplate_lines=False
    )
    fix_unicode_only = compare(fix_only, batches, args.repeats)
    result = {
        "date": started,
        "corpus": corpus,
        "batch_rows": args.batch_rows,
        "repeats": args.repeats,
        "threads": 1,
        "default": default,
        "fix_unicode_only": fix_unicode_only,
        "speedup": default["speedup"],
        "equal": default["equal"] and fix_unicode_only["equal"],
        **ftfy_rows(batches),
        "versions": {
            "python": sys.version.split()[0],
            "ftfy": ftfy.__version__,
            "pyarrow": pa.__version__,
            "polars": pl.__version__,
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
