"""`TranscriptsBeside`: the transcript of each audio file from the text file next to it
(`clip_0001.flac` and `clip_0001.txt`), the layout of LibriSpeech-style folders and of
many scraped sets: a folder of audio files read with `format="files"` has no `text`
otherwise."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import pyarrow as pa

from stages.base import Resources, Stage
from stages.io.fs import filesystem

_THREADS = 16


def transcript_uri(audio_uri: str, suffix: str = ".txt") -> str:
    """`audio_uri` with its file extension replaced by `suffix` (added when it has none)."""
    folder, slash, name = audio_uri.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{folder}{slash}{stem}{suffix}"


class TranscriptsBeside(Stage):
    """Set `text` from `<audio_uri without its extension>.txt` (local or any fsspec URI,
    read with `storage_options`), decoded as UTF-8 (a byte-order mark dropped, bad bytes
    replaced) and stripped of surrounding whitespace.

    A row whose `text` is already set keeps it (its file is not read); a row without an
    `audio_uri`, or whose text file is missing or unreadable, keeps a null `text`. An empty
    text file gives "". Files are read 16 at a time (object stores answer slowly, not
    rarely).
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        storage_options: dict | None = None,
        uri_column: str = "audio_uri",
        text_column: str = "text",
        suffix: str = ".txt",
    ):
        self.storage_options = storage_options
        self.uri_column, self.text_column, self.suffix = uri_column, text_column, suffix

    def process(self, batch: pa.Table) -> pa.Table:
        if self.uri_column not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no column {self.uri_column!r} "
                f"(columns: {batch.column_names})"
            )
        uris = batch.column(self.uri_column).to_pylist()
        if self.text_column in batch.column_names:
            texts = batch.column(self.text_column).to_pylist()
        else:
            texts = [None] * batch.num_rows
        wanted = [
            i for i, (uri, text) in enumerate(zip(uris, texts, strict=True)) if text is None and uri
        ]
        if wanted:
            with ThreadPoolExecutor(max_workers=min(_THREADS, len(wanted))) as pool:
                found = pool.map(lambda i: self._read(transcript_uri(uris[i], self.suffix)), wanted)
                for i, text in zip(wanted, found, strict=True):
                    texts[i] = text
        column = pa.array(texts, pa.string())
        if self.text_column in batch.column_names:
            index = batch.schema.get_field_index(self.text_column)
            return batch.set_column(index, self.text_column, column)
        return batch.append_column(self.text_column, column)

    def _read(self, uri: str) -> str | None:
        try:
            fs, path = filesystem(uri, self.storage_options)
            data = fs.cat_file(path)
        except (OSError, ValueError):
            return None
        return data.decode("utf-8-sig", errors="replace").strip()
