"""`curate_apply_thresholds`: filter a scored text dataset with new thresholds.

    read a `curate text --score-only` (or `--keep-scores`) output -> ApplyThresholds -> Parquet

Nothing is scored again: each filter's keep rule runs on its `score_<filter>` column
(`stages/text/thresholds.py`). The report's `ApplyThresholds` line says, per `--set`
change, how many rows it moved (newly removed, newly kept).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from flows.runtime.builder import FlowSpec, build_flow, run_flow
from flows.runtime.params import FlowParams
from flows.runtime.storage import storage_options
from stages.base import Stage
from stages.io.read import ShardReader


class ThresholdParams(FlowParams):
    """Parameters of re-thresholding (the Prefect UI renders them as a form)."""

    input: str = Field(
        description="A scored text dataset: the output folder of `curate text --score-only` "
        "(every row, every filter's score) or `--keep-scores`, local or s3://.",
        examples=["s3://curated/cc-scored", "scored/"],
    )
    filters: str = Field(
        "default",
        description="The recipe the input was scored with: a shipped recipe name or a "
        "YAML file (as `curate text --filters`).",
    )
    set: list[str] = Field(
        default_factory=list,
        description="New settings, FILTER.KEYWORD=VALUE, comma-separated: "
        "WordCountFilter.min_words=80,RepeatingTopNGramsFilter(n=3).max_repeating_ngram_ratio=0.2",
    )
    text_field: str = Field("text", description="Input field holding the document text.")

    @field_validator("set")
    @classmethod
    def _parsable(cls, settings: list[str], info) -> list[str]:
        from stages.text.recipes import recipe_spec
        from stages.text.thresholds import ApplyThresholds, parse_changes

        ApplyThresholds(recipe_spec(info.data.get("filters", "default")), parse_changes(settings))
        return settings


def build_stages(params: ThresholdParams) -> list[Stage]:
    from stages.text.recipes import recipe_spec
    from stages.text.thresholds import ApplyThresholds, parse_changes

    return [ApplyThresholds(recipe_spec(params.filters), parse_changes(params.set))]


def reader(params: ThresholdParams) -> ShardReader:
    return ShardReader(
        text_field=params.text_field,
        id_field=params.id_field,
        storage_options=storage_options(),
        strict=params.strict,
    )


THRESHOLDS = FlowSpec(
    "apply-thresholds",
    ThresholdParams,
    "Filter a scored text dataset with new thresholds, without scoring again.",
    reader=reader,
    stages=build_stages,
    asset="Re-thresholded text (Parquet) written by curate-apply-thresholds",
    deployment={"filters": "default"},
)

curate_apply_thresholds = build_flow(THRESHOLDS, __name__)


def run_thresholds(params: ThresholdParams) -> dict:
    """The flow's steps without Prefect; returns the run summary."""
    return run_flow(THRESHOLDS, params)
