"""NeMo-style JSONL manifests: one JSON object per row, the input format of NeMo's speech
tools (`audio_filepath`, `duration`, `text`, then any other field)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from stages.io.commit import VersionWriter
from stages.io.write import jsonl_bytes, public_columns
from stages.io.writers.base import DatasetWriter, is_binary, write_file

FIRST_FIELDS = ("audio_filepath", "duration", "text")
# Binary columns that hold audio: a manifest can only point at audio, never carry it.
AUDIO_COLUMNS = frozenset({"audio", "flac", "wav", "mp3", "ogg", "opus", "m4a"})


@dataclass(frozen=True)
class ManifestWriter(DatasetWriter):
    """Writes a shard as `part-<shard>-0.jsonl`, one JSON object per row.

    Binary columns are dropped (a manifest refers to media by path). Without an
    `audio_filepath` column, an `audio_uri` column is written as `audio_filepath`. A row
    that has audio bytes but no `audio_filepath` is an error: its audio would be lost.
    `audio_filepath`, `duration` and `text` come first when present, then the other
    columns in table order.
    """

    name = "manifest"

    def write_shard(self, version: VersionWriter, shard, table: pa.Table) -> list[dict]:
        if table.num_rows == 0:
            return []
        table = public_columns(table)
        names = table.column_names
        if "audio_filepath" not in names and "audio_uri" in names:
            table = table.rename_columns(
                ["audio_filepath" if n == "audio_uri" else n for n in names]
            )
            names = table.column_names
        _check_audio_has_path(table, shard.key)
        kept = [n for n, t in zip(names, table.schema.types, strict=True) if not is_binary(t)]
        order = [n for n in FIRST_FIELDS if n in kept] + [n for n in kept if n not in FIRST_FIELDS]
        path = version.part_path(shard.key, 0, "jsonl")
        size = write_file(version, path, jsonl_bytes(table.select(order)))
        return [{"path": path, "rows": table.num_rows, "bytes": size}]


def _check_audio_has_path(table: pa.Table, shard_key: str) -> None:
    for name, data_type in zip(table.column_names, table.schema.types, strict=True):
        if name not in AUDIO_COLUMNS or not is_binary(data_type):
            continue
        has_audio = pc.is_valid(table.column(name))
        if "audio_filepath" in table.column_names:
            has_audio = pc.and_(has_audio, pc.is_null(table.column("audio_filepath")))
        lost = pc.indices_nonzero(has_audio)
        if len(lost):
            row = lost[0].as_py()
            ids = table.column("id") if "id" in table.column_names else None
            which = f"row {row}" + (f" (id {ids[row].as_py()!r})" if ids is not None else "")
            raise ValueError(
                f"shard {shard_key}: {which} has audio bytes in column {name!r} but no "
                "audio_filepath; a manifest points at audio files and cannot hold the bytes "
                "(write the audio to files and set audio_filepath, or use the webdataset writer)"
            )
