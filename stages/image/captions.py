"""Captions of images, in one column whatever the input layout.

A WebDataset sample carries its caption as `KEY.txt` (read as column `txt`), img2dataset
and LAION metadata as a field of `KEY.json` (`caption`, `TEXT`...), a Parquet table as a
column. `ImageCaptions` puts the first one found in `caption` (and drops `txt`, so the
WebDataset writer writes `caption` back as `KEY.txt` and not twice).
"""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Stage

CAPTION = "caption"


class ImageCaptions(Stage):
    """`caption` (string, null when none) from, in order: the `txt` column, a column named
    `caption_field`, or the field `caption_field` of the `json` column's objects."""

    def __init__(self, caption_field: str = CAPTION):
        self.caption_field = caption_field

    def process(self, batch: pa.Table) -> pa.Table:
        found = [self._from_column(batch, "txt"), self._from_column(batch, self.caption_field)]
        found.append(self._from_json(batch))
        captions = None
        for values in found:
            if values is None:
                continue
            captions = values if captions is None else pc.coalesce(captions, values)
        if captions is None:
            captions = pa.nulls(batch.num_rows, pa.string())
        drop = [c for c in ("txt", CAPTION) if c in batch.column_names]
        return batch.drop_columns(drop).append_column(CAPTION, captions)

    def _from_column(self, batch: pa.Table, name: str) -> pa.Array | None:
        if name not in batch.column_names:
            return None
        column = batch.column(name).combine_chunks()
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            return None
        trimmed = pc.utf8_trim_whitespace(column.cast(pa.string()))
        return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)

    def _from_json(self, batch: pa.Table) -> pa.Array | None:
        if "json" not in batch.column_names:
            return None
        values = []
        for text in batch.column("json").to_pylist():
            value = None
            if text:
                try:
                    obj = orjson.loads(text)
                except orjson.JSONDecodeError:
                    obj = None  # the reader quarantines unparsable JSON members
                if isinstance(obj, dict) and isinstance(obj.get(self.caption_field), str):
                    value = obj[self.caption_field].strip() or None
            values.append(value)
        return pa.array(values, pa.string())
