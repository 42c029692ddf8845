"""`curate_dedup`: remove exact or near-duplicates from any dataset.

    read -> identify (hash, MinHash or embedding) -> find duplicates, one Ray task per
    partition -> read again, drop the duplicates -> write

The dedup step itself is `flows/steps/dedup.py` (the text flow plugs in the same step);
`duplicates.parquet` in the output version lists every removed id with its cluster and
the id it duplicates. This file declares the parameters and the step.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import pyarrow as pa
from pydantic import Field, model_validator

from flows.runtime.builder import FlowSpec, build_flow, run_flow
from flows.runtime.inputs import first_keys, parquet_schema, require_columns
from flows.runtime.params import FlowParams
from flows.runtime.storage import storage_options
from flows.steps.dedup import Dedup
from stages.dedup.minhash import MinHashConfig
from stages.io.read import ShardReader
from stages.io.shards import Shard

# The measured best fuzzy setting (benchmarks/dedup_quality.py: precision 1.0, recall 0.994
# at word 5-gram Jaccard >= 0.8) and NeMo Curator's (recall about 0.54 on that benchmark).
PRESETS = {
    "high_recall": (MinHashConfig.high_recall(), "exact", "centers"),
    "nemo": (MinHashConfig(), "none", "components"),
}


CUSTOM_FIELDS = {"char_ngrams", "word_ngrams", "normalize", "num_bands", "hashes_per_band"}


class DedupParams(FlowParams):
    """Parameters of the deduplication flow (rendered as a form in the Prefect UI)."""

    input: str = Field(
        description="Any dataset curate reads: JSONL (.gz/.zst), Parquet, local or s3://, "
        "or the output folder of another curate flow.",
        examples=["s3://curated/cc", "data/docs.jsonl"],
    )
    method: Literal["exact", "fuzzy", "semantic"] = Field(
        "fuzzy",
        description="exact: identical content; fuzzy: MinHash + LSH near-duplicates; "
        "semantic: embeddings, k-means and cosine similarity within clusters (SemDeDup).",
    )
    column: str = Field("text", description="The column compared.")
    threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="fuzzy: Jaccard similarity of a duplicate pair."
    )
    preset: Literal["high_recall", "nemo", "custom"] = Field(
        "high_recall",
        description="fuzzy: high_recall (normalised word 5-grams, 20x7 bands, exact check, "
        "centers: the measured best), nemo (NeMo Curator's 24-char shingles, 20x13, no "
        "check, components) or custom (the shingle and band options below).",
    )
    char_ngrams: int | None = Field(24, description="fuzzy, custom: character shingle size.")
    word_ngrams: int | None = Field(None, description="fuzzy, custom: word shingle size instead.")
    normalize: bool = Field(
        False,
        description="fuzzy, custom: shingle lower-cased runs of letters, digits and _.",
    )
    num_bands: int = Field(
        20,
        ge=1,
        description="fuzzy, custom: LSH bands.",
        json_schema_extra={"cli_aliases": ["--bands"]},
    )
    hashes_per_band: int = Field(
        13,
        ge=1,
        description="fuzzy, custom: MinHash values per band.",
        json_schema_extra={"cli_aliases": ["--rows"]},
    )
    seed: int = Field(42, description="MinHash seed (fuzzy), k-means seed (semantic).")
    verify: Literal["exact", "estimate", "none"] | None = Field(
        None,
        description="fuzzy: check candidate pairs by the true Jaccard of their shingles "
        "(exact), the MinHash estimate, or not at all; default: the preset's.",
    )
    clustering: Literal["components", "centers"] | None = Field(
        None,
        description="fuzzy: connected components, or centers (a document is removed only "
        "for a kept document it is itself a near-duplicate of); default: the preset's.",
    )
    keep: Literal["first", "longest", "score"] = Field(
        "first",
        description="Which row of a duplicate group is kept: the first in input order, the "
        "longest, or the highest score_column (ties: the first).",
    )
    score_column: str | None = Field(None, description="keep=score: the column to maximise.")
    eps: float = Field(
        0.01, gt=0.0, lt=1.0, description="semantic: duplicates have cosine similarity >= 1 - eps."
    )
    n_clusters: int | None = Field(
        None, ge=1, description="semantic: k-means clusters (default: one per 1,000 rows)."
    )
    semantic_keep: Literal["hard", "easy", "random"] = Field(
        "hard",
        description="semantic: keep the items farthest from their centroid (hard), the "
        "nearest (easy) or a seeded draw (random), as NeMo Curator.",
    )
    model: str | None = Field(
        None,
        description="semantic: a local sentence-transformers model folder (default: the "
        "bundled all-MiniLM-L6-v2).",
    )
    embedding_column: str | None = Field(
        None, description="semantic: compare this column of embeddings instead of embedding."
    )
    kmeans_sample: int = Field(100_000, ge=1, description="semantic: rows k-means is fit on.")
    partitions: int = Field(16, ge=1, description="Hash partitions of the global step.")

    @model_validator(mode="after")
    def _consistent(self) -> DedupParams:
        if self.keep == "score" and not self.score_column:
            raise ValueError("keep='score' needs score_column: the column whose highest value wins")
        custom = sorted(CUSTOM_FIELDS & self.model_fields_set)
        if custom and "preset" not in self.model_fields_set:
            self.preset = "custom"  # shingle or band options given: they are the setting
        elif custom and self.preset != "custom":
            raise ValueError(f"{', '.join(custom)}: only with preset='custom', not {self.preset!r}")
        return self

    def minhash_config(self) -> MinHashConfig:
        if self.preset != "custom":
            return PRESETS[self.preset][0]
        return MinHashConfig(
            char_ngrams=None if self.word_ngrams else self.char_ngrams,
            word_ngrams=self.word_ngrams,
            num_bands=self.num_bands,
            hashes_per_band=self.hashes_per_band,
            seed=self.seed,
            lowercase=self.normalize,
            normalize=self.normalize,
        )

    @property
    def raw(self) -> bool:
        """Exact dedup of a column other than `text` reads rows as they are (bytes too)."""
        return self.method == "exact" and self.column != "text"


def dedup_step(params: DedupParams) -> Dedup:
    _, verify, clustering = PRESETS.get(params.preset, (None, "exact", "components"))
    return Dedup(
        params.method,
        # Fuzzy and semantic dedup read the compared column as `text`.
        column=params.column if params.raw else "text",
        partitions=params.partitions,
        keep=params.keep,
        score_column=params.score_column,
        minhash=params.minhash_config(),
        threshold=params.threshold,
        verify=params.verify or verify,
        clustering=params.clustering or clustering,
        eps=params.eps,
        n_clusters=params.n_clusters,
        semantic_keep=params.semantic_keep,
        model=params.model,
        kmeans_sample=params.kmeans_sample,
        seed=params.seed,
        embedding_column=params.embedding_column,
    )


def reader(params: DedupParams) -> ShardReader:
    """Fuzzy and semantic dedup read the compared column as `text`; exact dedup of another
    column (image or audio bytes, any field) reads rows as they are, never decoded; rows
    where the compared column is null or missing are quarantined."""
    return ShardReader(
        text_field=None if params.raw else params.column,
        required_field=params.column if params.raw else None,
        id_field=params.id_field,
        storage_options=storage_options(),
        strict=params.strict,
    )


def check_columns(params: DedupParams, shards: list[Shard]) -> None:
    """Before any work: the input has the columns the parameters name (`column`,
    `score_column`, `embedding_column`), read from every Parquet schema and from the first
    lines of the first JSONL file; fuzzy and semantic dedup need text, not bytes."""
    wanted = {"column": params.column, "embedding_column": params.embedding_column}
    if params.keep == "score":
        wanted["score_column"] = params.score_column
    wanted = {field: name for field, name in wanted.items() if name}
    parquet = list(dict.fromkeys(s.uri for s in shards if s.format == "parquet"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        schemas = list(pool.map(parquet_schema, parquet))
    for uri, schema in zip(parquet, schemas, strict=True):
        if schema is None:
            continue  # the reader quarantines an unreadable file with its reason
        require_columns(wanted, schema.names, uri)
        kind = schema.field(params.column).type
        binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
        if binary and params.method != "exact":
            raise ValueError(
                f"{params.method} dedup needs a text column; {params.column!r} is binary "
                f"in {uri} (method='exact' removes byte-identical copies)"
            )
    jsonl = next((s.uri for s in shards if s.format == "jsonl"), None)
    if jsonl is not None:
        keys = first_keys(jsonl)
        if keys:
            require_columns(wanted, keys, jsonl)


DEDUP = FlowSpec(
    "dedup",
    DedupParams,
    "Remove exact or near-duplicates from any dataset.",
    reader=reader,
    dedup=dedup_step,
    check=check_columns,
    asset="Deduplicated by curate-dedup",
    cron="0 4 * * *",
    deployment={"method": "fuzzy", "threshold": 0.8},
)

curate_dedup = build_flow(DEDUP, __name__)


def run_dedup(params: DedupParams) -> dict:
    """The dedup flow's steps without Prefect; returns the run summary."""
    return run_flow(DEDUP, params)
