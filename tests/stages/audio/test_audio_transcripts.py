"""TranscriptsBeside: each audio file's transcript from the .txt next to it."""

from __future__ import annotations

import pyarrow as pa
import pytest
from audio import tone, write_flac, write_wav

from stages.audio.transcripts import TranscriptsBeside, transcript_uri
from stages.io.read import ShardReader
from stages.io.shards import plan_shards


def test_a_folder_of_audio_gets_the_text_files_beside_it(tmp_path):
    write_flac(tmp_path / "a.flac", tone(0.2))
    write_wav(tmp_path / "b.wav", tone(0.2))
    write_wav(tmp_path / "nested" / "c.wav", tone(0.2))
    (tmp_path / "a.txt").write_text("  hello world\n")
    (tmp_path / "nested" / "c.txt").write_bytes("\ufeffcafé au lait\r\n".encode())
    table = ShardReader().read(plan_shards(str(tmp_path), format="files")[0]).table
    out = TranscriptsBeside().process(table)
    texts = dict(zip(out["id"].to_pylist(), out["text"].to_pylist(), strict=True))
    assert texts == {"a": "hello world", "b": None, "nested/c": "café au lait"}
    assert out.schema.field("text").type == pa.string()


def test_existing_text_is_left_alone(tmp_path):
    (tmp_path / "a.txt").write_text("from the file")
    (tmp_path / "b.txt").write_text("from the file")
    batch = pa.table(
        {
            "audio_uri": [str(tmp_path / "a.flac"), str(tmp_path / "b.flac"), None],
            "text": ["from the manifest", None, "kept"],
        }
    )
    out = TranscriptsBeside().process(batch)
    assert out.column("text").to_pylist() == ["from the manifest", "from the file", "kept"]
    assert out.column_names == ["audio_uri", "text"]


def test_transcripts_are_read_from_s3(s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.pipe_file(f"{s3_bucket}/x/a.txt", b"on s3\n")
    uris = [f"s3://{s3_bucket}/x/a.opus", f"s3://{s3_bucket}/x/b.opus"]
    out = TranscriptsBeside().process(pa.table({"audio_uri": uris}))
    assert out.column("text").to_pylist() == ["on s3", None]


def test_the_transcript_path_replaces_only_the_file_extension():
    assert transcript_uri("s3://b/v1.2/clip.01.flac") == "s3://b/v1.2/clip.01.txt"
    assert transcript_uri("/data/v1.2/noext") == "/data/v1.2/noext.txt"
    assert transcript_uri("/data/.hidden") == "/data/.hidden.txt"


def test_a_batch_without_audio_uri_is_refused():
    with pytest.raises(KeyError, match="audio_uri"):
        TranscriptsBeside().process(pa.table({"audio": [b""]}))
