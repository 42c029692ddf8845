"""The parameters every flow shares. A flow's own model subclasses `FlowParams`; the
Prefect UI form, the `curate <flow>` options and the deployment defaults all come from it.
"""

from __future__ import annotations

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


# Fields that change how a run behaves, not what it writes: not part of the version id.
UNVERSIONED = frozenset({"version", "create_bucket", "allow_empty"})
