"""The parameters every flow shares. A flow's own model subclasses `FlowParams`; the
Prefect UI form, the `curate <flow>` options and the deployment defaults all come from it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class FlowParams(BaseModel):
    """Input, output and the run options common to every flow."""

    input: str = Field(
        description="Input: a path, folder or glob, local or s3://, or the output folder "
        "of another curate flow.",
        examples=["s3://raw/cc/*.jsonl.gz", "data/docs.jsonl"],
    )
    output: str = Field(
        description="Output dataset folder, local or s3://; each run writes a version "
        "folder inside it.",
        examples=["s3://curated/cc", "curated/"],
    )
    id_field: str = Field("id", description="Input field holding a row id, if any.")
    shard_size_mb: float = Field(
        32.0, gt=0, allow_inf_nan=False, description="Target input bytes per shard."
    )
    strict: bool = Field(False, description="Fail on the first bad input row.")
    version: str | None = Field(
        None, description="Output version name; default: derived from inputs and parameters."
    )
    create_bucket: bool = Field(
        False, description="Create the output's S3 bucket when it does not exist."
    )
    allow_empty: bool = Field(
        False,
        description="Succeed when every input row was quarantined and nothing was written.",
    )
    keep_removed: bool = Field(
        False,
        description="Write the rows the stages and the dedup step removed, each with "
        "removed_by and reason columns, to removed/ in the output version.",
    )


class MediaParams(FlowParams):
    """What the media flows (image, video, audio) share: how the input is read, how model
    stages run, the dedup partitions, scores as columns and the output format."""

    input_format: Literal["auto", "webdataset", "files", "parquet"] = Field(
        "auto",
        description="How to read the input: auto reads .tar as WebDataset and .parquet as "
        "Parquet, and a folder holding neither as media files.",
    )
    model_inference_batch_size: int = Field(32, ge=1, description="Items per model batch.")
    gpus: float = Field(
        0.0,
        ge=0.0,
        description="GPUs per model worker (a fraction shares one GPU); 0 runs on CPU, or on "
        "the GPU a worker finds.",
    )
    partitions: int = Field(16, ge=1, description="Hash partitions of the dedup step.")
    keep_scores: bool = Field(True, description="Keep every filter's score as a column.")
    output_format: Literal["webdataset", "parquet"] = Field(
        "webdataset",
        description="webdataset: tars in img2dataset's layout with a Parquet beside each; "
        "parquet: one Parquet per shard, media bytes included.",
    )

    def scored(self, stages: list) -> list:
        """`stages`, each filter set to keep its score as a column when `keep_scores`."""
        for stage in stages:
            if hasattr(stage, "keep_score"):
                stage.keep_score = self.keep_scores
        return stages


# Fields that change how a run behaves, not what it writes: not part of the version id.
UNVERSIONED = frozenset({"version", "create_bucket", "allow_empty"})
