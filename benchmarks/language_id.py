"""Language identification candidates side by side: documents per CPU second on one core,
memory, and accuracy on labelled sets, all on the same texts in the same run.

    .venv/bin/python benchmarks/language_id.py
    .venv/bin/python benchmarks/language_id.py --fasttext-model lid.176.ftz --only fasttext

Throughput texts: `--input` (JSONL, optionally gzipped, a `text` field; default the
committed `flows/data/sample.jsonl.gz`, build_sample.py's 3,000 documentation sections and
junk), the first `--documents` rows, in batches of 1,000 rows as the engine gives a worker.

Labelled sets, the candidates choosing among `DEFAULT_LANGUAGES` (22):

- `handwritten`: `SAMPLES` of `tests/stages/text/test_language_accuracy.py` (phrases,
  sentences, paragraphs and mixed-language documents in the 22 languages);
- `gettext`: real translated messages from the machine's gettext catalogues
  (`/usr/share/locale/<lang>/LC_MESSAGES/*.mo`, labelled by their locale; English from
  the same catalogues' source strings), at most `--per-bucket` per language for `short`
  (under 100 characters) and `long`, drawn with `random.Random(0)`; messages identical to
  their English source are left out.

`corpus_agreement_with_lingua_high` is how often a candidate gives the throughput texts the
language lingua's high-accuracy mode gives them, apart for the documentation sections and
the junk (menus, URL lists, lorem ipsum: no answer is right there);
`corpus_share_en_of_documentation` the share of the (English) documentation sections it
calls English.

Each candidate runs in its own process (every thread pool at one thread, PYTHONHASHSEED=0):
`docs_per_s` is documents per CPU second (`time.process_time`) of the identification calls
only, over as many passes of the texts as make `--min-cpu-s` (default 3); `setup_cpu_s` is
building the detector and a first call (numba's compilation for py3langid); `peak_rss_mb`
the process's peak (`ru_maxrss`), `rss_before_setup_mb` the same before the detector
existed (texts loaded), `rss_after_mb` the resident memory at the end.
A candidate whose package is missing reports `skipped` and why.

Candidates: `lingua_low` (today's default: lingua low-accuracy mode, 2,000 characters),
`lingua_low_batch_api` (`compute_language_confidence_values_in_parallel` on one thread),
`lingua_low_detect_only` (`detect_language_of`, no confidence values), `lingua_low_500`
(first 500 characters), `lingua_high`, `py3langid` (the new default), `py3langid_500`,
`py3langid_full_text` (no cut), `py3langid_python` (py3langid's own pure-Python
`classify`, same model), `fasttext` (`--fasttext-model`, needs the fasttext module),
`cld2` (pycld2) and `cld3` (gcld3) when installed: peers restricted to the candidates
through their top three languages.
"""

from __future__ import annotations

import os
import sys

SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "ARROW_NUM_THREADS": "1",
}
os.environ.update(SINGLE_THREAD)

import argparse  # noqa: E402
import glob  # noqa: E402
import gzip  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stages.text.language import DEFAULT_LANGUAGES, UNKNOWN, LanguageIdentifier  # noqa: E402

DEFAULT_INPUT = ROOT / "flows" / "data" / "sample.jsonl.gz"
SAMPLES_FILE = ROOT / "tests" / "stages" / "text" / "test_language_accuracy.py"
TODAY = "lingua_low"
DEFAULT = "py3langid"
BATCH_ROWS = 1000
MAX_CHARS = 2000
CANDIDATES = (
    "lingua_low", "lingua_low_batch_api", "lingua_low_detect_only", "lingua_low_500",
    "lingua_high", "py3langid", "py3langid_500", "py3langid_full_text", "py3langid_python",
    "fasttext", "cld2", "cld3",
)  # fmt: skip
# gettext locales read for a language (others: the code itself).
LOCALES = {"zh": ["zh_CN", "zh_TW"], "pt": ["pt", "pt_BR"]}


# --- texts -----------------------------------------------------------------------------


def corpus(path: Path, limit: int) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if len(rows) >= limit:
                break
            row = json.loads(line)
            rows.append({"text": row.get("text") or "", "source": row.get("source", "")})
    return rows


def handwritten() -> list[tuple[str, str, str]]:
    spec = importlib.util.spec_from_file_location("language_samples", SAMPLES_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.SAMPLES)


def _mo_pairs(path: str) -> list[tuple[str, str]]:
    """(source, translation) pairs of a gettext .mo file (GNU gettext manual's layout)."""
    try:
        data = Path(path).read_bytes()
        order = "<" if struct.unpack("<I", data[:4])[0] == 0x950412DE else ">"
        count, originals, translations = struct.unpack(order + "3I", data[8:20])
        pairs = []
        for i in range(count):
            n1, o1 = struct.unpack(order + "2I", data[originals + 8 * i : originals + 8 * i + 8])
            n2, o2 = struct.unpack(
                order + "2I", data[translations + 8 * i : translations + 8 * i + 8]
            )
            pairs.append((data[o1 : o1 + n1].decode(), data[o2 : o2 + n2].decode()))
        return pairs
    except (OSError, struct.error, UnicodeDecodeError):
        return []


def _is_prose(text: str) -> bool:
    letters = sum(c.isalpha() for c in text)
    return letters >= 20 and letters / len(text) >= 0.75 and "%" not in text and "<" not in text


def gettext_set(per_bucket: int, share: str = "/usr/share") -> list[tuple[str, str, str]]:
    """(language, "short" | "long", text) from the gettext catalogues (see module doc)."""
    rng = random.Random(0)
    rows = []
    english: set[str] = set()
    for lang in DEFAULT_LANGUAGES:
        if lang == "en":
            continue
        seen: set[str] = set()
        for locale in LOCALES.get(lang, [lang]):
            for path in sorted(glob.glob(f"{share}/locale/{locale}/LC_MESSAGES/*.mo")):
                for source, translation in _mo_pairs(path):
                    source = " ".join(source.split("\x00")[0].split())
                    text = " ".join(translation.split("\x00")[0].split())
                    if source and text != source and _is_prose(text):
                        seen.add(text)
                    if source and _is_prose(source):
                        english.add(source)
        rows += _buckets(lang, seen, per_bucket, rng)
    return _buckets("en", english, per_bucket, rng) + rows


def _buckets(lang: str, texts: set[str], per_bucket: int, rng: random.Random) -> list:
    short = sorted(t for t in texts if len(t) < 100)
    long = sorted(t for t in texts if len(t) >= 100)
    return [
        (lang, kind, text)
        for kind, pool in (("short", short), ("long", long))
        for text in rng.sample(pool, min(per_bucket, len(pool)))
    ]


# --- candidates ------------------------------------------------------------------------


def _cut(texts: list[str], max_chars: int | None) -> list[str]:
    return [t[:max_chars] if max_chars else t for t in texts]


def _letters_only(identify_one: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    """A per-text function as the stage runs it: cut, letterless text is unknown."""
    from stages.text.language import _LETTER

    def identify(texts: list[str]) -> list[str]:
        return [identify_one(t) if _LETTER.search(t) else UNKNOWN for t in _cut(texts, MAX_CHARS)]

    return identify


def _stage(**kwargs) -> Callable[[list[str]], list[str]]:
    stage = LanguageIdentifier(languages=DEFAULT_LANGUAGES, **kwargs)
    stage.setup()
    return lambda texts: stage.identify(texts)[0]


def _lingua_detector(low_accuracy: bool = True):
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, c.upper()) for c in DEFAULT_LANGUAGES]
    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    return builder.with_preloaded_language_models().build()


def _lingua_batch_api() -> Callable[[list[str]], list[str]]:
    from stages.text.language import _LETTER

    detector = _lingua_detector()

    def identify(texts: list[str]) -> list[str]:
        values = detector.compute_language_confidence_values_in_parallel(_cut(texts, MAX_CHARS))
        return [
            v[0].language.iso_code_639_1.name.lower() if v and v[0].value > 0 and _LETTER.search(t)
            else UNKNOWN
            for t, v in zip(texts, values, strict=True)
        ]  # fmt: skip

    return identify


def _lingua_detect_only() -> Callable[[list[str]], list[str]]:
    detector = _lingua_detector()

    def one(text: str) -> str:
        language = detector.detect_language_of(text)
        return UNKNOWN if language is None else language.iso_code_639_1.name.lower()

    return _letters_only(one)


def _py3langid_python() -> Callable[[list[str]], list[str]]:
    from py3langid.langid import MODEL_FILE
    from py3langid.langid import LanguageIdentifier as Py3

    identifier = Py3.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(DEFAULT_LANGUAGES))
    return _letters_only(lambda t: identifier.classify(t)[0])


def _first_candidate(codes: list[str]) -> str:
    wanted = set(DEFAULT_LANGUAGES)
    for code in codes:
        code = code.split("-")[0].lower()
        if code in wanted:
            return code
    return UNKNOWN


def _cld2() -> Callable[[list[str]], list[str]]:
    import pycld2

    def one(text: str) -> str:
        try:
            _, _, details = pycld2.detect(text, isPlainText=True, bestEffort=True)
        except pycld2.error:  # invalid UTF-8 (lone surrogates, some control characters)
            return UNKNOWN
        return _first_candidate([code for _, code, _, _ in details])

    return _letters_only(one)


def _cld3() -> Callable[[list[str]], list[str]]:
    import gcld3

    detector = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=MAX_CHARS * 4)
    return _letters_only(
        lambda t: _first_candidate([r.language for r in detector.FindTopNMostFreqLangs(t, 3)])
    )


def build(name: str, fasttext_model: str | None) -> Callable[[list[str]], list[str]]:
    if name == "fasttext":
        if fasttext_model is None:
            raise LookupError("no --fasttext-model given (a local lid.176.bin or .ftz)")
        if importlib.util.find_spec("fasttext") is None:
            raise LookupError("the fasttext module is not installed (pip install fasttext-predict)")
        return _stage(backend="fasttext", model=fasttext_model)
    for module, candidate in (("pycld2", "cld2"), ("gcld3", "cld3")):
        if name == candidate and importlib.util.find_spec(module) is None:
            raise LookupError(f"{module} is not installed")
    return {
        "lingua_low": lambda: _stage(backend="lingua", low_accuracy=True),
        "lingua_low_batch_api": _lingua_batch_api,
        "lingua_low_detect_only": _lingua_detect_only,
        "lingua_low_500": lambda: _stage(backend="lingua", low_accuracy=True, max_chars=500),
        "lingua_high": lambda: _stage(backend="lingua", low_accuracy=False),
        "py3langid": lambda: _stage(),
        "py3langid_500": lambda: _stage(max_chars=500),
        "py3langid_full_text": lambda: _stage(max_chars=None),
        "py3langid_python": _py3langid_python,
        "cld2": _cld2,
        "cld3": _cld3,
    }[name]()


# --- one candidate, in its own process -------------------------------------------------


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _accuracy(identify, rows: list[tuple[str, str, str]]) -> dict:
    codes = []
    for start in range(0, len(rows), BATCH_ROWS):
        codes += identify([text for _, _, text in rows[start : start + BATCH_ROWS]])
    right: dict[str, list[int]] = {}
    for code, (lang, kind, _) in zip(codes, rows, strict=True):
        for key in ("all", kind):
            right.setdefault(key, [0, 0])
            right[key][0] += code == lang
            right[key][1] += 1
    return {key: round(ok / n, 4) for key, (ok, n) in right.items()}


def run_one(name: str, args: argparse.Namespace) -> dict:
    texts = [row["text"] for row in corpus(args.input, args.documents)]
    labelled = {"handwritten": handwritten(), "gettext": gettext_set(args.per_bucket)}
    rss_before = _rss_mb()
    try:
        cpu0 = time.process_time()
        identify = build(name, args.fasttext_model)
        identify(texts[:10])
        setup = time.process_time() - cpu0
    except (LookupError, ImportError) as error:
        return {"skipped": str(error)}
    codes, cpu, passes = [], 0.0, 0
    while passes == 0 or cpu < args.min_cpu_s:  # fast candidates: more passes, steadier figure
        for start in range(0, len(texts), BATCH_ROWS):
            batch = texts[start : start + BATCH_ROWS]
            cpu0 = time.process_time()
            found = identify(batch)
            cpu += time.process_time() - cpu0
            if passes == 0:
                codes += found
        passes += 1
    n_bytes = sum(len(t.encode()) for t in texts) * passes
    return {
        "docs_per_s": round(len(texts) * passes / cpu, 1),
        "mb_per_s": round(n_bytes / cpu / 1e6, 3),
        "cpu_s": round(cpu, 3),
        "passes": passes,
        "setup_cpu_s": round(setup, 3),
        "rss_before_setup_mb": rss_before,
        "rss_after_mb": _current_rss_mb(),
        "peak_rss_mb": _rss_mb(),
        "accuracy": {key: _accuracy(identify, rows) for key, rows in labelled.items()},
        "corpus_codes": codes,
    }


# --- the whole comparison --------------------------------------------------------------


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("lingua-language-detector", "py3langid", "numba", "fasttext-predict",
                    "fasttext-numpy2-wheel", "fasttext", "pycld2", "cld3-py", "gcld3"):  # fmt: skip
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--per-bucket", type=int, default=60)
    parser.add_argument("--min-cpu-s", type=float, default=3.0)
    parser.add_argument("--fasttext-model", default=None)
    parser.add_argument("--only", default=None, help="comma-separated candidate names")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return

    names = CANDIDATES if not args.only else tuple(args.only.split(","))
    names = tuple(dict.fromkeys((TODAY, DEFAULT, "lingua_high") + names))
    results: dict[str, dict] = {}
    env = {**os.environ, **SINGLE_THREAD, "PYTHONHASHSEED": "0"}
    for name in names:
        command = [sys.executable, __file__, "--one", name, "--input", str(args.input),
                   "--documents", str(args.documents), "--per-bucket", str(args.per_bucket),
                   "--min-cpu-s", str(args.min_cpu_s)]  # fmt: skip
        if args.fasttext_model:
            command += ["--fasttext-model", args.fasttext_model]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            results[name] = {"error": done.stderr.strip().splitlines()[-5:]}
        else:
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])

    rows = corpus(args.input, args.documents)
    reference = results.get("lingua_high", {}).get("corpus_codes")
    documentation = [i for i, row in enumerate(rows) if not row["source"].startswith("junk")]
    junk = [i for i, row in enumerate(rows) if row["source"].startswith("junk")]
    base = results.get(TODAY, {}).get("docs_per_s")
    for result in results.values():
        codes = result.pop("corpus_codes", None)
        if codes is None:
            continue
        if reference:
            result["corpus_agreement_with_lingua_high"] = {
                part: round(sum(codes[i] == reference[i] for i in rows_) / max(1, len(rows_)), 4)
                for part, rows_ in (("documentation", documentation), ("junk", junk))
            }
        en = sum(codes[i] == "en" for i in documentation)
        result["corpus_share_en_of_documentation"] = round(en / max(1, len(documentation)), 4)
        if base:
            result["speedup_vs_today"] = round(result["docs_per_s"] / base, 2)

    labelled = {"handwritten": handwritten(), "gettext": gettext_set(args.per_bucket)}
    lengths = [len(row["text"]) for row in rows]
    ours, today, high = (results.get(n, {}) for n in (DEFAULT, TODAY, "lingua_high"))

    def not_below(a: dict, b: dict) -> bool | None:
        if "accuracy" not in a or "accuracy" not in b:
            return None
        return all(a["accuracy"][k]["all"] >= b["accuracy"][k]["all"] for k in a["accuracy"])

    print(json.dumps({
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": _versions(),
        "corpus": {
            "input": _shown(args.input),
            "documents": len(rows),
            "documentation_sections": len(documentation),
            "mean_chars": round(sum(lengths) / max(1, len(lengths)), 1),
            "share_over_500_chars": round(sum(n > 500 for n in lengths) / max(1, len(rows)), 3),
            "share_over_2000_chars": round(sum(n > 2000 for n in lengths) / max(1, len(rows)), 3),
            "batch_rows": BATCH_ROWS,
        },
        "labelled": {key: len(value) for key, value in labelled.items()},
        "today": TODAY,
        "default": DEFAULT,
        "candidates": results,
        "goals": {
            "speedup_vs_today_at_least_5": (ours.get("speedup_vs_today") or 0) >= 5,
            "accuracy_not_below_today": not_below(ours, today),
            "accuracy_not_below_lingua_high": not_below(ours, high),
        },
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
