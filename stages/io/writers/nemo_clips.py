"""NeMo Curator's clip layout, for users whose downstream tools read it (`curate video
--layout nemo`). Inside the dataset version:

    clips/<id>.mp4                  each clip's encoded bytes (its `extension`)
    previews/<id>.webp              its animated preview, when there is one
    metas/v0/<id>.json              its metadata: every non-binary column (NeMo's
                                    `span`, `source_video`, `clip_uuid` fields included)
    <algorithm>_embd_parquet/part-<shard>-0.parquet   `id`, `embedding` (NeMo names the
                                    folder for the model: `ce1_embd_parquet` for
                                    Cosmos-Embed1; ours `clip_embd_parquet` for CLIP)
    part-<shard>-0.parquet          the clips table: every non-binary column, one row per
                                    clip (what `curate` reads when the version is an input)

The per-clip files' manifest entries have `"rows": 0` and a `side` (`clips`,
`previews`, `metas`, `embeddings`): the clips table's rows count the clips once.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pyarrow as pa

from stages.io.commit import VersionWriter
from stages.io.write import parquet_bytes, public_columns
from stages.io.writers.base import DatasetWriter, is_binary, write_file

CLIP, PREVIEW, EMBEDDING = "clip", "preview", "embedding"


@dataclass(frozen=True)
class NemoClipsWriter(DatasetWriter):
    name = "nemo"
    embedding_algorithm: str = "clip"

    def write_shard(self, version: VersionWriter, shard, table: pa.Table) -> list[dict]:
        if table.num_rows == 0:
            return []
        table = public_columns(table)
        files: list[dict] = []
        meta_names = [n for n in table.column_names if not is_binary(table.schema.field(n).type)]
        metas = table.select([n for n in meta_names if n != EMBEDDING]).to_pylist()
        clips = table.column(CLIP).to_pylist() if CLIP in table.column_names else []
        previews = table.column(PREVIEW).to_pylist() if PREVIEW in table.column_names else []
        extensions = (
            table.column("extension").to_pylist()
            if "extension" in table.column_names
            else ["mp4"] * table.num_rows
        )
        for i, meta in enumerate(metas):
            clip_id = meta["id"]
            if clips and clips[i] is not None:
                files.append(
                    self._side(version, f"clips/{clip_id}.{extensions[i]}", clips[i], "clips")
                )
            if previews and previews[i] is not None:
                files.append(
                    self._side(version, f"previews/{clip_id}.webp", previews[i], "previews")
                )
            nemo = {
                "clip_uuid": clip_id,
                "source_video": meta.get("video_uri") or meta.get("source"),
                "span": [meta.get("start"), meta.get("end")],
                **meta,
            }
            data = orjson.dumps(nemo, option=orjson.OPT_SERIALIZE_NUMPY)
            files.append(self._side(version, f"metas/v0/{clip_id}.json", data, "metas"))
        if EMBEDDING in table.column_names:
            folder = f"{self.embedding_algorithm}_embd_parquet"
            path = f"{folder}/{version.part_path(shard.key, 0, 'parquet')}"
            size = write_file(version, path, parquet_bytes(table.select(["id", EMBEDDING])))
            files.append({"path": path, "rows": 0, "bytes": size, "side": "embeddings"})
        path = version.part_path(shard.key, 0, "parquet")
        data = parquet_bytes(table.select([n for n in meta_names if n != EMBEDDING]))
        files.append(
            {"path": path, "rows": table.num_rows, "bytes": write_file(version, path, data)}
        )
        return files

    @staticmethod
    def _side(version: VersionWriter, path: str, data: bytes, side: str) -> dict:
        return {"path": path, "rows": 0, "bytes": write_file(version, path, data), "side": side}
