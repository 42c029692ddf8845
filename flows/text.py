"""`curate_text`: the text curation flow.

    read JSONL/Parquet, or WARC / Wikipedia dumps / arXiv tarballs (`--source`)
    -> [HTML to text] -> clean -> heuristic filters -> language -> [PII] -> [decontaminate]
    -> [classifiers] -> [dedup] -> Parquet

The step sequence (plan, process on Ray, dedup, write, commit, publish) is the flow kit's
(`flows/runtime/builder.py`); this file declares the parameters and the stages.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from flows.runtime.builder import FlowSpec, build_flow, run_flow
from flows.runtime.params import FlowParams
from flows.runtime.storage import storage_options
from flows.steps.dedup import Dedup
from stages.base import Filter, FilterChain, Stage
from stages.io.read import ShardReader
from stages.io.shards import Shard


class TextParams(FlowParams):
    """Parameters of the text curation flow (the Prefect UI renders them as a form)."""

    input: str = Field(
        description="Input files: a path, folder or glob, local or s3:// (JSONL, .jsonl.gz, "
        ".jsonl.zst, Parquet), or the output folder of another curate flow.",
        examples=["s3://raw/cc/*.jsonl.gz", "data/docs.jsonl"],
    )
    source: Literal["auto", "cc", "warc", "wikipedia", "arxiv"] = Field(
        "auto",
        description="What the input is: auto (by extension: JSONL, Parquet, .warc.gz), "
        "cc or warc (Common Crawl WARC files: HTML responses, extracted to text), "
        "wikipedia (MediaWiki XML dumps, .xml.bz2) or arxiv (arXiv source tarballs).",
    )
    extractor: Literal["trafilatura", "justext", "resiliparse"] = Field(
        "trafilatura", description="WARC sources: the HTML-to-text extractor."
    )
    filters: str = Field(
        "default",
        description="Heuristic filter recipe: default or english (NeMo Curator's English "
        "recipe), non-english, code (NeMo's), fineweb (datatrove's FineWeb filters), none, "
        "or a YAML recipe file of your own (copy one from stages/text/recipes/).",
    )
    score_only: bool = Field(
        False,
        description="The filters keep every row and only score it (a score_<filter> "
        "column each), for `curate apply-thresholds` to filter later with any thresholds.",
    )
    language_backend: Literal["py3langid", "lingua", "fasttext"] = Field(
        "py3langid",
        description="Language identifier: py3langid (its model ships in the wheel; about "
        "27x lingua's documents per second, as accurate), lingua, or a fastText model file "
        "(--language-model lid.176.bin).",
    )
    language_model: str | None = Field(
        None, description="fasttext: the local lid.176.bin / .ftz model file."
    )
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="Keep only documents in these languages (ISO 639-1, comma-separated); "
        "empty keeps all.",
    )
    clean: bool = Field(True, description="Repair Unicode, normalise whitespace, drop URL lines.")
    dedup: Literal["exact", "fuzzy", "semantic", "none"] = Field(
        "exact",
        description="Remove duplicates, keeping the first: exact (identical text), fuzzy "
        "(near-duplicates: MinHash + LSH on normalised word 5-grams, each removal a "
        "near-duplicate of a kept document) or semantic (MiniLM embeddings, cosine "
        "similarity >= 0.99 within k-means clusters).",
        json_schema_extra={"cli_flags": {"--no-dedup": "none"}},
    )
    keep_scores: bool = Field(False, description="Keep each filter's score as a column.")
    pii: Literal["off", "replace", "redact", "drop"] = Field(
        "off",
        description="Personal data (e-mail, phone, IP, card, IBAN, SSN, credentials, "
        "secrets): replace each with a type tag, redact it, or drop the document.",
    )
    decontaminate: list[str] = Field(
        default_factory=list,
        description="Test sets (JSONL/Parquet files, comma-separated): remove documents "
        "sharing a 13-word n-gram with any of them.",
    )
    quality_model: str | None = Field(
        None,
        description="A fastText quality model file (labels __label__hq/__label__lq): keep "
        "documents by NeMo Curator's Pareto rule on its score.",
    )
    classifiers: list[str] = Field(
        default_factory=list,
        description="Hugging Face classifiers from local folders, KIND=FOLDER, "
        "comma-separated; KIND is quality, domain, multilingual-domain or fineweb-edu. Each "
        "adds its columns.",
    )
    text_field: str = Field("text", description="Input field holding the document text.")
    partitions: int = Field(16, ge=1, description="Hash partitions of the dedup step.")

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, languages: list[str], info: ValidationInfo) -> list[str]:
        """Only codes the chosen detector can produce: any other would keep nothing."""
        from stages.text.language import check_languages

        backend = info.data.get("language_backend", "py3langid")
        model = info.data.get("language_model")
        if backend == "fasttext" and not model:
            raise ValueError("language_backend 'fasttext' needs language_model (a local file)")
        return list(check_languages(languages, backend=backend, model=model))

    @field_validator("filters")
    @classmethod
    def _known_recipe(cls, name: str) -> str:
        from stages.text.recipes import recipe_spec

        recipe_spec(name)
        return name

    @field_validator("classifiers")
    @classmethod
    def _known_classifiers(cls, entries: list[str]) -> list[str]:
        from stages.text.classifiers_hf import classifier_from_spec

        for entry in entries:
            classifier_from_spec(entry, build=False)
        return entries


def build_stages(params: TextParams) -> list[Stage]:
    """The stages of one text run, cheapest first: decisions do not depend on the order
    (each filter looks at one document), only the "removed by" counts do."""
    from stages.text.recipes import build_recipe, recipe_spec

    stages: list[Stage] = []
    if params.source in ("cc", "warc"):
        from stages.text.extract import HtmlExtractor

        stages.append(HtmlExtractor(extractor=params.extractor))
    if params.clean:
        from stages.text.clean import TextCleaner

        stages.append(TextCleaner())
    filters = build_recipe(recipe_spec(params.filters))
    scorers: list[Filter] = list(filters)  # what --keep-scores and --score-only apply to
    if filters:
        stages.append(FilterChain(filters))
    if params.languages:
        from stages.text.language import LanguageFilter

        backend = {"backend": params.language_backend, "model": params.language_model}
        scorers.append(LanguageFilter(languages=list(params.languages), **backend))
    if params.quality_model:
        from stages.text.classifiers import FastTextQualityFilter

        scorers.append(FastTextQualityFilter(params.quality_model))
    stages += scorers[len(filters) :]
    for f in scorers:
        f.keep_score = params.keep_scores
        f.score_only = params.score_only
    return stages + _late_stages(params)


def _late_stages(params: TextParams) -> list[Stage]:
    """What runs on the filtered text: PII, decontamination, model classifiers."""
    stages: list[Stage] = []
    if params.pii != "off":
        from stages.text.pii import PiiModifier

        stages.append(PiiModifier(anonymize_action=params.pii))
    if params.decontaminate:
        from stages.text.decontaminate import TaskDecontamination

        stages.append(TaskDecontamination(list(params.decontaminate)))
    if params.classifiers:
        from stages.text.classifiers_hf import classifier_from_spec

        stages += [classifier_from_spec(entry) for entry in params.classifiers]
    return stages


def dedup_step(params: TextParams) -> Dedup | None:
    """Exact: identical cleaned text. Fuzzy: the measured best setting (normalised word
    5-grams, 20x7 bands, each candidate pair checked by the true Jaccard of the cleaned
    texts, centers). Semantic: MiniLM, eps 0.01."""
    if params.dedup == "none":
        return None
    if params.dedup == "fuzzy":
        from flows.dedup import PRESETS

        minhash, verify, clustering = PRESETS["high_recall"]
        return Dedup(
            "fuzzy",
            partitions=params.partitions,
            minhash=minhash,
            verify=verify,
            clustering=clustering,
        )
    return Dedup(params.dedup, partitions=params.partitions, eps=0.01)


SOURCE_FORMATS = {"cc": "warc", "warc": "warc", "wikipedia": "wikipedia", "arxiv": "arxiv"}


def check_source(params: TextParams, shards: list[Shard]) -> None:
    """Before any work: WARC files hold HTML, which only `--source warc` extracts."""
    warc = next((s.uri for s in shards if s.format == "warc"), None)
    if warc and SOURCE_FORMATS.get(params.source) != "warc":
        raise ValueError(f"{warc} is a WARC file: add --source warc to extract its pages")


def reader(params: TextParams) -> ShardReader:
    warc = SOURCE_FORMATS.get(params.source) == "warc"
    return ShardReader(
        text_field=None if warc else params.text_field,
        id_field=params.id_field,
        storage_options=storage_options(),
        strict=params.strict,
    )


TEXT = FlowSpec(
    "text",
    TextParams,
    "Curate a text corpus: clean, filter, dedup.",
    reader=reader,
    input_format=lambda params: SOURCE_FORMATS.get(params.source),
    check=check_source,
    stages=build_stages,
    dedup=dedup_step,
    histograms=lambda params: params.keep_scores or params.score_only,
    asset="Curated text (Parquet) written by curate-text",
    cron="0 2 * * *",
    deployment={"filters": "default", "languages": ["en"], "dedup": "exact"},
)

curate_text = build_flow(TEXT, __name__)


def run_text(params: TextParams) -> dict:
    """The text flow's steps without Prefect; returns the run summary."""
    return run_flow(TEXT, params)
