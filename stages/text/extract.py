"""HTML to text: `HtmlExtractor`, the first stage of a pipeline that reads web archives
(`stages.io.formats.warc`), with the three extraction algorithms NeMo Curator offers for
Common Crawl: `TrafilaturaExtractor`, `JusTextExtractor`, `ResiliparseExtractor`.

What it does to each row, as NeMo Curator's `CommonCrawlHTMLExtractor` does (their
`nemo_curator/stages/text/download/common_crawl/extract.py` and `html_extractors/`):

1. decode the `html` bytes (`decode_html`): the HTTP charset when it decodes them, else
   UTF-8, else the encoding Resiliparse detects (the page's `<meta charset>` first, then
   uchardet), with undecodable bytes replaced;
2. split the page into candidate paragraphs with the chosen algorithm;
3. identify the language, with the project's identifier (`stages.text.language`,
   py3langid by default, every language it knows as a candidate) on the candidates' text;
   NeMo runs CLD2 on the raw page instead;
4. keep the paragraphs the algorithm judges main content, using the stop-word list of
   that language (jusText's lists, which ship in its wheel; Latin left out, as NeMo does).
   Languages written without spaces between words (`NON_SPACED`: Chinese, Japanese, Thai,
   Korean as NeMo, plus Cantonese, Wu, Lao, Khmer, Burmese) skip the stop-word test, which
   cannot count their words; other languages without a stop-word list lose the row, as in
   NeMo. Stop words are counted case-insensitively, as jusText counts them (NeMo's own
   density test is case-sensitive);
5. join the kept paragraphs with blank lines into `text`.

Output: the input columns without `html` (`keep_html=True` keeps it), plus `text`,
`language` (a lower-case code, or "unknown") and `language_score` (as
`LanguageIdentifier` writes them, so a later `LanguageFilter` reuses them). A row whose
text comes out empty is removed, and the engine counts it as removed by this stage; the run
report's sample of removed rows shows the URL and the `reason` (no HTML, the page could
not be parsed, language unknown, no stop-word list, no paragraph kept).
"""

from __future__ import annotations

import codecs
import copy
import functools
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter, Resources
from stages.text.language import UNKNOWN, Backend, LanguageIdentifier

Extractor = Literal["trafilatura", "justext", "resiliparse"]
EXTRACTORS: tuple[str, ...] = ("trafilatura", "justext", "resiliparse")

# Written without spaces between words: a stop-word density over `split()` means nothing.
NON_SPACED = frozenset(["zh", "ja", "th", "ko", "yue", "wuu", "lo", "km", "my"])

# Language code -> jusText stop-word list (the lists in jusText's wheel, by file name).
STOP_LISTS: dict[str, str] = {
    "af": "Afrikaans", "an": "Aragonese", "ar": "Arabic", "ast": "Asturian",
    "az": "Azerbaijani", "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali",
    "bpy": "Bishnupriya_Manipuri", "br": "Breton", "bs": "Bosnian", "ca": "Catalan",
    "ceb": "Cebuano", "cs": "Czech", "cv": "Chuvash", "cy": "Welsh", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish",
    "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "fy": "West_Frisian", "ga": "Irish", "gl": "Galician", "gu": "Gujarati", "he": "Hebrew",
    "hi": "Hindi", "hr": "Croatian", "ht": "Haitian", "hu": "Hungarian", "hy": "Armenian",
    "id": "Indonesian", "ig": "Igbo", "io": "Ido", "is": "Icelandic", "it": "Italian",
    "jv": "Javanese", "ka": "Georgian", "kk": "Kazakh", "kn": "Kannada", "ko": "Korean",
    "ku": "Kurdish", "ky": "Kyrgyz", "lb": "Luxembourgish", "lmo": "Lombard",
    "lt": "Lithuanian", "lv": "Latvian", "mk": "Macedonian", "ml": "Malayalam",
    "mr": "Marathi", "ms": "Malay", "mt": "Maltese", "nap": "Neapolitan", "nds": "Low_Saxon",
    "ne": "Nepali", "new": "Newar", "nl": "Dutch", "nn": "Norwegian_Nynorsk",
    "no": "Norwegian_Bokmal", "nb": "Norwegian_Bokmal", "oc": "Occitan", "pl": "Polish",
    "pms": "Piedmontese", "pnb": "Western_Panjabi", "pt": "Portuguese", "qu": "Quechua",
    "ro": "Romanian", "ru": "Russian", "rup": "Aromanian", "scn": "Sicilian",
    "sgs": "Samogitian", "sh": "Serbo_Croatian", "sk": "Slovak", "sl": "Slovenian",
    "sq": "Albanian", "sr": "Serbian", "su": "Sundanese", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "tk": "Turkmen", "tl": "Tagalog", "tr": "Turkish",
    "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "vo": "Volapuk",
    "wa": "Walloon", "war": "Waray_Waray", "yo": "Yoruba",
}  # fmt: skip


@functools.cache
def stop_words(language: str) -> frozenset[str] | None:
    """jusText's stop-word list for a language code, or None when it has none."""
    name = STOP_LISTS.get(language)
    if name is None:
        return None
    import justext

    return frozenset(justext.get_stoplist(name))


def stopword_density(paragraph: str, stop_list: frozenset[str]) -> float:
    """The share of the paragraph's words (`split()`) that are stop words (lower-cased)."""
    words = paragraph.split()
    if not words:
        return 0.0
    return sum(w.lower() in stop_list for w in words) / len(words)


# --- decoding --------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_html(data: bytes, charset: str | None = None) -> str:
    """The page as text: a byte-order mark's encoding, else the HTTP `charset` (as the
    WHATWG encoding standard maps its label: `iso-8859-1` reads as windows-1252) when it
    decodes every byte, else UTF-8 when valid, else the encoding Resiliparse detects (the
    page's `<meta charset>`, then uchardet), undecodable bytes replaced. Never raises."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace").lstrip("\ufeff")
    label = _codec(charset)
    if label is not None:
        try:
            return data.decode(label)
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    return bytes_to_str(data, detect_encoding(data, from_html_meta=True), errors="replace")


def _codec(charset: str | None) -> str | None:
    """A Python codec for an HTTP charset label (WHATWG-mapped), or None if unknown."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    try:
        codecs.lookup(label)
    except LookupError:
        return None
    from resiliparse.parse.encoding import map_encoding_to_html5

    mapped = map_encoding_to_html5(label)
    try:
        return codecs.lookup(mapped).name
    except LookupError:
        return None


# --- algorithms ------------------------------------------------------------------------


class _Algorithm:
    """An extraction algorithm in two steps: `segments` splits a page into candidate
    paragraphs (before the language is known), `select` keeps the main-content ones."""

    name: ClassVar[str]
    empty_reason: ClassVar[str]

    def segments(self, html: str) -> list:
        raise NotImplementedError

    def text_of(self, segments: list) -> str:
        """The candidates' text, for language identification."""
        return "\n".join(segments)

    def select(self, segments: list, stop_list: frozenset[str], spaced: bool) -> list[str]:
        raise NotImplementedError


class _DensityFiltered(_Algorithm):
    """Paragraphs of a text extractor, kept when at least `required_stopword_density` of
    their words are stop words (NeMo Curator's addition to Trafilatura and Resiliparse);
    every paragraph is kept in a language written without spaces."""

    required_stopword_density: float

    @property
    def empty_reason(self) -> str:  # type: ignore[override]
        return f"no paragraph has a stop-word density >= {self.required_stopword_density}"

    def select(self, segments: list, stop_list: frozenset[str], spaced: bool) -> list[str]:
        if not spaced:
            return list(segments)
        threshold = self.required_stopword_density
        return [p for p in segments if stopword_density(p, stop_list) >= threshold]


class TrafilaturaExtractor(_DensityFiltered):
    """Trafilatura (Barbaresi, "Trafilatura: A Web Scraping Library and Command-Line Tool
    for Text Discovery and Extraction", ACL 2021): rule-based main-content extraction with
    readability and jusText as fallbacks. The keyword arguments and their defaults are
    NeMo Curator's `TrafilaturaExtractor`'s: the `min_*`, `max_tree_size`,
    `min_duplcheck_size` and `max_repetitions` settings of Trafilatura's configuration, and
    `extract_kwargs` for `trafilatura.extract` (`deduplicate=True` unless given).

    Trafilatura's deduplication counts the paragraphs and documents it has seen in a
    process-wide cache (a page seen more than `max_repetitions` times comes out empty), so
    what it removes would depend on which pages a worker saw before; here each page gets a
    cache of its own (repeats inside the page are removed), which keeps the output the same
    in any batch or worker layout. Duplicates across pages are the dedup step's job.
    """

    name = "trafilatura"

    def __init__(
        self,
        required_stopword_density: float = 0.32,
        min_extracted_size: int = 250,
        min_extracted_comm_size: int = 1,
        min_output_size: int = 1,
        min_output_comm_size: int = 1,
        max_tree_size: int | None = None,
        min_duplcheck_size: int = 100,
        max_repetitions: int = 2,
        **extract_kwargs,
    ):
        self.required_stopword_density = required_stopword_density
        self.settings = {
            "MIN_EXTRACTED_SIZE": min_extracted_size,
            "MIN_EXTRACTED_COMM_SIZE": min_extracted_comm_size,
            "MIN_OUTPUT_SIZE": min_output_size,
            "MIN_OUTPUT_COMM_SIZE": min_output_comm_size,
            "MIN_DUPLCHECK_SIZE": min_duplcheck_size,
            "MAX_REPETITIONS": max_repetitions,
        }
        if max_tree_size:
            self.settings["MAX_TREE_SIZE"] = max_tree_size
        self.extract_kwargs = dict(extract_kwargs)
        self.extract_kwargs.setdefault("deduplicate", True)
        self._config = None

    def segments(self, html: str) -> list[str]:
        import trafilatura
        from trafilatura.deduplication import LRU_SIZE, LRUCache

        if self._config is None:
            from trafilatura.settings import DEFAULT_CONFIG

            config = copy.deepcopy(DEFAULT_CONFIG)
            for key, value in self.settings.items():
                config["DEFAULT"][key] = str(value)
            self._config = config
        kwargs = dict(self.extract_kwargs)
        if kwargs["deduplicate"] is True:
            kwargs["deduplicate"] = LRUCache(maxsize=LRU_SIZE)
        text = trafilatura.extract(html, config=self._config, **kwargs)
        return [p for p in (text or "").split("\n") if p.strip()]


class ResiliparseExtractor(_DensityFiltered):
    """Resiliparse's HTML2Text (Webis group, the parser behind ChatNoir): the visible
    text of the page's body, `main_content=True` applying its heuristics for the main
    content, `alt_texts` keeping images' alternative texts; then NeMo Curator's stop-word
    density test per line. Arguments and defaults: NeMo Curator's `ResiliparseExtractor`."""

    name = "resiliparse"

    def __init__(
        self,
        required_stopword_density: float = 0.32,
        main_content: bool = True,
        alt_texts: bool = False,
    ):
        self.required_stopword_density = required_stopword_density
        self.main_content = main_content
        self.alt_texts = alt_texts

    def segments(self, html: str) -> list[str]:
        from resiliparse.extract.html2text import extract_plain_text

        text = extract_plain_text(html, main_content=self.main_content, alt_texts=self.alt_texts)
        return [p for p in text.split("\n") if p.strip()]


class JusTextExtractor(_Algorithm):
    """jusText (Pomikálek, "Removing Boilerplate and Duplicate Content from Web Corpora",
    2011): paragraphs classified as good, near-good, short or bad by length, stop-word
    density and link density, then revised by their neighbours and headings; the good ones
    are kept. Arguments and defaults: NeMo Curator's `JusTextExtractor`; `is_boilerplate`
    None keeps only good paragraphs in languages written with spaces and every paragraph
    in the others (whose stop words jusText cannot count), as NeMo does."""

    name = "justext"
    empty_reason = "jusText classified every paragraph as boilerplate"

    def __init__(
        self,
        length_low: int = 70,
        length_high: int = 200,
        stopwords_low: float = 0.30,
        stopwords_high: float = 0.32,
        max_link_density: float = 0.2,
        max_heading_distance: int = 200,
        no_headings: bool = False,
        is_boilerplate: bool | None = None,
    ):
        self.length_low = length_low
        self.length_high = length_high
        self.stopwords_low = stopwords_low
        self.stopwords_high = stopwords_high
        self.max_link_density = max_link_density
        self.max_heading_distance = max_heading_distance
        self.no_headings = no_headings
        self.is_boilerplate = is_boilerplate

    def segments(self, html: str) -> list:
        from justext.core import ParagraphMaker, html_to_dom, preprocessor

        return ParagraphMaker.make_paragraphs(preprocessor(html_to_dom(html)))

    def text_of(self, segments: list) -> str:
        return "\n".join(p.text for p in segments)

    def select(self, segments: list, stop_list: frozenset[str], spaced: bool) -> list[str]:
        from justext.core import classify_paragraphs, revise_paragraph_classification

        classify_paragraphs(
            segments,
            stop_list,
            self.length_low,
            self.length_high,
            self.stopwords_low,
            self.stopwords_high,
            self.max_link_density,
            self.no_headings,
        )
        for paragraph in segments:
            paragraph.class_type = paragraph.cf_class
        revise_paragraph_classification(segments, self.max_heading_distance)
        only_good = spaced if self.is_boilerplate is None else self.is_boilerplate
        return [p.text for p in segments if p.text and not (only_good and p.is_boilerplate)]


_ALGORITHMS: dict[str, type[_Algorithm]] = {
    "trafilatura": TrafilaturaExtractor,
    "justext": JusTextExtractor,
    "resiliparse": ResiliparseExtractor,
}


# --- the stage -------------------------------------------------------------------------


class HtmlExtractor(Filter):
    """HTML pages to text (see the module docstring for each step).

    - `extractor`: "trafilatura" (the default), "justext", "resiliparse", or an instance of
      `TrafilaturaExtractor`, `JusTextExtractor`, `ResiliparseExtractor`;
      `extractor_kwargs`: the chosen algorithm's keyword arguments (NeMo Curator's
      `algorithm_kwargs`).
    - `html_field`: the page (binary, or text already decoded); `charset_field`: its HTTP
      charset when the column exists (the WARC reader's `charset`); `url_field`: shown
      with removed rows.
    - `language_backend`, `language_model`, `languages`: the `LanguageIdentifier` that
      picks the stop-word list (`languages=None`: every language the backend knows).
    - `stop_lists`: stop words per language code, replacing jusText's lists for those
      codes.
    - `keep_html`: keep the `html` column; `keep_score`: keep the extracted text's length
      in characters as `score_HtmlExtractor`.

    Keep rule: the extracted text is not empty. It transforms the rows it keeps, so it runs
    as a stage of its own, never inside a `FilterChain`.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0, memory_gb=0.5)
    batch_size: ClassVar[int | None] = 256

    def __init__(
        self,
        extractor: Extractor | _Algorithm = "trafilatura",
        extractor_kwargs: dict | None = None,
        html_field: str = "html",
        charset_field: str = "charset",
        url_field: str = "url",
        text_field: str = "text",
        language_backend: Backend = "py3langid",
        language_model: str | None = None,
        languages: list[str] | tuple[str, ...] | None = None,
        stop_lists: dict[str, frozenset[str] | set[str] | list[str]] | None = None,
        keep_html: bool = False,
        keep_score: bool = False,
    ):
        if isinstance(extractor, _Algorithm):
            if extractor_kwargs:
                raise ValueError(
                    "extractor_kwargs apply to an extractor given by name; configure the "
                    f"{type(extractor).__name__} instance instead"
                )
            self.algorithm = extractor
        elif extractor in _ALGORITHMS:
            self.algorithm = _ALGORITHMS[extractor](**(extractor_kwargs or {}))
        else:
            raise ValueError(f"unknown extractor {extractor!r}: expected one of {EXTRACTORS}")
        self.html_field = html_field
        self.charset_field = charset_field
        self.url_field = url_field
        self.text_field = text_field
        self.language_backend = language_backend
        self.language_model = language_model
        self.languages = None if languages is None else tuple(languages)
        self.stop_lists = {
            code.lower(): frozenset(w.lower() for w in words)
            for code, words in (stop_lists or {}).items()
        }
        self.keep_html = keep_html
        self.keep_score = keep_score
        self._identifier: LanguageIdentifier | None = None

    def setup(self) -> None:
        self._identifier = LanguageIdentifier(
            languages=self.languages,
            backend=self.language_backend,
            model=self.language_model,
        )
        self._identifier.setup()

    def stop_list(self, language: str) -> frozenset[str] | None:
        """The stop words used for `language` (None: none known)."""
        if language in self.stop_lists:
            return self.stop_lists[language]
        return stop_words(language)

    def extract(self, pages: list, charsets: list | None = None) -> tuple[list, list, list, list]:
        """Text, language, language score and removal reason (None when kept) per page;
        `pages` are bytes or str (None for a missing page)."""
        if self._identifier is None:
            self.setup()
        n = len(pages)
        charsets = charsets if charsets is not None else [None] * n
        segments: list = [None] * n
        reasons: list[str | None] = [None] * n
        algorithm = self.algorithm
        for i, page in enumerate(pages):
            if page is None or len(page) == 0:
                reasons[i] = "no HTML"
                continue
            html = page if isinstance(page, str) else decode_html(page, charsets[i])
            try:
                found = algorithm.segments(html)
            except Exception as err:  # a page a parser cannot handle loses the row only
                reasons[i] = f"{algorithm.name} could not parse the page: {err}"
                continue
            if not found:
                reasons[i] = "no text found in the page"
            else:
                segments[i] = found
        probe = [algorithm.text_of(s) if s else "" for s in segments]
        codes, scores = self._identifier.identify(probe)
        texts = [""] * n
        for i, found in enumerate(segments):
            if found is None:
                continue
            language = codes[i]
            spaced = language not in NON_SPACED
            stop_list = self.stop_list(language) if language != UNKNOWN else None
            if language == UNKNOWN:
                reasons[i] = "language unknown"
            elif spaced and stop_list is None:
                reasons[i] = f"no stop-word list for language {language!r}"
            else:
                try:
                    kept = algorithm.select(found, stop_list or frozenset(), spaced)
                except Exception as err:  # as in `segments`: the row only
                    reasons[i] = f"{algorithm.name} failed on the page: {err}"
                    continue
                texts[i] = "\n\n".join(kept)
                if not texts[i].strip():
                    texts[i] = ""
                    reasons[i] = algorithm.empty_reason
        return texts, list(codes), list(scores), reasons

    def apply(self, batch: pa.Table) -> tuple[pa.Table, pa.Table, np.ndarray]:
        if self.html_field not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no column {self.html_field!r} "
                f"(columns: {batch.column_names}); read WARC files with format 'warc'"
            )
        column = batch.column(self.html_field)
        if not (
            pa.types.is_binary(column.type)
            or pa.types.is_large_binary(column.type)
            or pa.types.is_string(column.type)
            or pa.types.is_large_string(column.type)
            or pa.types.is_null(column.type)
        ):
            raise TypeError(
                f"{self.stage_name}: column {self.html_field!r} is {column.type}, expected "
                "binary or string"
            )
        charsets = None
        if self.charset_field in batch.column_names:
            charsets = batch.column(self.charset_field).cast(pa.string()).to_pylist()
        texts, codes, scores, reasons = self.extract(column.to_pylist(), charsets)
        out = batch
        drop = [self.text_field, "language", "language_score"]
        if not self.keep_html:
            drop.append(self.html_field)
        out = out.drop_columns([c for c in drop if c in out.column_names])
        out = out.append_column(self.text_field, pa.array(texts, pa.string()))
        out = out.append_column("language", pa.array(codes, pa.string()))
        out = out.append_column("language_score", pa.array(scores, pa.float64()))
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        if self.keep_score or self.score_only:
            if self.score_column in out.column_names:
                out = out.drop_columns([self.score_column])
            out = out.append_column(self.score_column, pa.array(lengths))
        if self.score_only:
            return out, out.slice(0, 0), lengths
        keep = pa.array(lengths > 0)
        removed = out.filter(pc.invert(keep))
        why = [reasons[i] or "empty text" for i in np.flatnonzero(lengths == 0)]
        removed = removed.append_column("reason", pa.array(why, pa.string()))
        return out.filter(keep), removed, lengths

    def process(self, batch: pa.Table) -> pa.Table:
        return self.apply(batch)[0]

    def mask(self, batch: pa.Table):
        raise TypeError(
            f"{self.stage_name} adds text to the rows it keeps: run it as a stage of its own, "
            "not inside a FilterChain"
        )

    def describe_removed(self, rows: pa.Table, limit: int) -> list[dict]:
        """Each removed row's id, URL and reason."""
        from stages.samples import describe_rows

        described = describe_rows(rows, limit, None)
        if self.url_field in rows.column_names:
            urls = rows.column(self.url_field).slice(0, len(described)).to_pylist()
            for item, url in zip(described, urls, strict=True):
                if url is not None:
                    item["url"] = url
        return described
