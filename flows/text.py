"""`curate_text`: the text curation flow.

    read JSONL/Parquet -> clean -> heuristic filters -> language -> [dedup] -> Parquet

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
from stages.base import FilterChain, Stage
from stages.dedup.minhash import MinHashConfig
from stages.io.read import ShardReader


class TextParams(FlowParams):
    """Parameters of the text curation flow (the Prefect UI renders them as a form)."""

    input: str = Field(
        description="Input files: a path, folder or glob, local or s3:// (JSONL, .jsonl.gz, "
        ".jsonl.zst, Parquet), or the output folder of another curate flow.",
        examples=["s3://raw/cc/*.jsonl.gz", "data/docs.jsonl"],
    )
    filters: Literal["default", "english", "none"] = Field(
        "default",
        description="Heuristic filter recipe: 'default' is NeMo Curator's English recipe.",
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


def build_stages(params: TextParams) -> list[Stage]:
    """The stages of one text run, cheapest first: decisions do not depend on the order
    (each filter looks at one document), only the "removed by" counts do."""
    from stages.text.recipes import build_recipe, recipe_spec

    stages: list[Stage] = []
    if params.clean:
        from stages.text.clean import TextCleaner

        stages.append(TextCleaner())
    filters = build_recipe(recipe_spec(params.filters))
    for f in filters:
        f.keep_score = params.keep_scores
    if filters:
        stages.append(FilterChain(filters))
    if params.languages:
        from stages.text.language import LanguageFilter

        backend = {"backend": params.language_backend, "model": params.language_model}
        stages.append(LanguageFilter(languages=list(params.languages), **backend))
    return stages


def dedup_step(params: TextParams) -> Dedup | None:
    """Exact: identical cleaned text. Fuzzy: the measured best setting (normalised word
    5-grams, 20x7 bands, each candidate pair checked by the true Jaccard of the cleaned
    texts, centers). Semantic: MiniLM, eps 0.01."""
    if params.dedup == "none":
        return None
    if params.dedup == "fuzzy":
        return Dedup(
            "fuzzy",
            partitions=params.partitions,
            minhash=MinHashConfig.high_recall(),
            verify="exact",
            clustering="centers",
        )
    return Dedup(params.dedup, partitions=params.partitions, eps=0.01)


def reader(params: TextParams) -> ShardReader:
    return ShardReader(
        text_field=params.text_field,
        id_field=params.id_field,
        storage_options=storage_options(),
        strict=params.strict,
    )


TEXT = FlowSpec(
    "text",
    TextParams,
    "Curate a text corpus: clean, filter, dedup.",
    reader=reader,
    stages=build_stages,
    dedup=dedup_step,
    histograms=lambda params: params.keep_scores,
    asset="Curated text (Parquet) written by curate-text",
    cron="0 2 * * *",
    deployment={"filters": "default", "languages": ["en"], "dedup": "exact"},
)

curate_text = build_flow(TEXT, __name__)


def run_text(params: TextParams) -> dict:
    """The text flow's steps without Prefect; returns the run summary."""
    return run_flow(TEXT, params)
