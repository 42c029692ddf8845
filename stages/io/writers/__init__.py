"""Dataset writers: how a flow writes each shard's rows into a dataset version.

    parquet      part-<shard>-0.parquet (the default)
    webdataset   part-<shard>-<n>.tar + part-<shard>-<n>.parquet, img2dataset's layout
    (any, wrapped in `EmbeddingsApart`: + embeddings/part-<shard>-0.parquet)
    manifest     part-<shard>-0.jsonl, a NeMo-style JSONL manifest
    nemo         NeMo Curator's clip layout: clips/<id>.mp4, metas/v0/<id>.json, ...

A writer only writes a shard's files; `VersionWriter.commit_shard` then records them and
the manifest is written last (the commit protocol, `stages.io.commit`).
"""

from __future__ import annotations

from stages.io.writers.base import DatasetWriter
from stages.io.writers.embeddings import EmbeddingsApart
from stages.io.writers.manifest import ManifestWriter
from stages.io.writers.nemo_clips import NemoClipsWriter
from stages.io.writers.parquet import ParquetWriter
from stages.io.writers.webdataset import WebDatasetWriter

WRITERS: dict[str, type[DatasetWriter]] = {
    writer.name: writer
    for writer in (ParquetWriter, WebDatasetWriter, ManifestWriter, NemoClipsWriter)
}


def dataset_writer(name: str, **options) -> DatasetWriter:
    """The writer called `name` (a key of `WRITERS`), built with `options`."""
    try:
        writer = WRITERS[name]
    except KeyError:
        known = ", ".join(sorted(WRITERS))
        raise ValueError(f"{name!r}: unknown dataset writer (known writers: {known})") from None
    try:
        return writer(**options)
    except TypeError as error:
        raise ValueError(f"{name} writer: {error}") from None


__all__ = [
    "WRITERS",
    "DatasetWriter",
    "EmbeddingsApart",
    "ManifestWriter",
    "NemoClipsWriter",
    "ParquetWriter",
    "WebDatasetWriter",
    "dataset_writer",
]
