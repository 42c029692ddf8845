"""Speech datasets NeMo's training reads directly: manifests that point at the written
audio.

- `TarredManifest(inner)`: the WebDataset tars `inner` writes, and beside each tar
  `part-<shard>-<n>.manifest.jsonl`, NeMo's tarred-audio manifest: one line per sample,
  `audio_filepath` the sample's member name (`KEY.flac`, how NeMo's tarred datasets find
  it in a tar), `duration`, `text`, then the other non-binary fields. Give NeMo the tars
  as `tarred_audio_filepaths` and the manifests as `manifest_filepath`.
- `AudioFilesWriter`: each row's audio as its own file, `audio/<id>.<ext>`, and the
  shard's manifest `part-<shard>-0.jsonl` with `audio_filepath` the file's full URI: a
  plain (non-tarred) NeMo manifest.

Manifest lines put `audio_filepath`, `duration` and `text` first. Side files (the tarred
manifests, the audio files) have `"rows": 0`: the tars or the plain manifest count the
rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from stages.io.commit import VersionWriter
from stages.io.fs import join
from stages.io.write import jsonl_bytes, public_columns
from stages.io.writers.base import DatasetWriter, is_binary, write_file
from stages.io.writers.webdataset import WebDatasetWriter, sample_keys

AUDIO = ("flac", "wav", "audio", "mp3", "ogg", "opus")
FIRST = ("audio_filepath", "duration", "text")


def _audio_column(table: pa.Table) -> str:
    found = next((c for c in AUDIO if c in table.column_names), None)
    if found is None:
        raise ValueError(f"no audio column (one of {', '.join(AUDIO)}) to write")
    return found


def _manifest(table: pa.Table, paths: list[str]) -> bytes:
    """JSONL of `table`'s non-binary columns with `audio_filepath` = `paths`."""
    meta = [n for n in table.column_names if not is_binary(table.schema.field(n).type)]
    meta = [n for n in meta if n not in ("audio_filepath", "audio_uri")]
    rows = table.select(meta)
    rows = rows.append_column("audio_filepath", pa.array(paths, pa.string()))
    first = [n for n in FIRST if n in rows.column_names]
    return jsonl_bytes(rows.select(first + [n for n in rows.column_names if n not in first]))


@dataclass(frozen=True)
class TarredManifest(DatasetWriter):
    inner: WebDatasetWriter
    name = "tarred-manifest"

    def write_shard(self, version: VersionWriter, shard, table: pa.Table) -> list[dict]:
        files = self.inner.write_shard(version, shard, table)
        if table.num_rows == 0:
            return files
        table = public_columns(table)
        extension = _audio_column(table)
        if extension == "audio":
            extension = "flac"
        keys = sample_keys(getattr(shard, "number", 0), table.num_rows)
        size = self.inner.samples_per_tar
        for n, start in enumerate(range(0, table.num_rows, size)):
            rows = table.slice(start, size)
            names = [f"{key}.{extension}" for key in keys[start : start + rows.num_rows]]
            path = version.part_path(shard.key, n, "manifest.jsonl")
            written = write_file(version, path, _manifest(rows, names))
            files.append({"path": path, "rows": 0, "bytes": written, "side": "manifest"})
        return files


@dataclass(frozen=True)
class AudioFilesWriter(DatasetWriter):
    name = "manifest-files"

    def write_shard(self, version: VersionWriter, shard, table: pa.Table) -> list[dict]:
        if table.num_rows == 0:
            return []
        table = public_columns(table)
        column = _audio_column(table)
        extension = "flac" if column == "audio" else column
        files, paths = [], []
        for row_id, data in zip(
            table.column("id").to_pylist(), table.column(column).to_pylist(), strict=True
        ):
            path = f"audio/{row_id}.{extension}"
            paths.append(join(version.uri, path))
            size = write_file(version, path, data)
            files.append({"path": path, "rows": 0, "bytes": size, "side": "audio"})
        path = version.part_path(shard.key, 0, "jsonl")
        size = write_file(version, path, _manifest(table, paths))
        return [*files, {"path": path, "rows": table.num_rows, "bytes": size}]
