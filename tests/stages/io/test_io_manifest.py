"""NeMo-style manifests (`format="manifest"`): audio paths resolved against the manifest's
folder, local or on S3; a line whose audio file is missing is quarantined."""

from __future__ import annotations

import io
import math
import struct
import wave

import orjson

from stages.io.read import ShardReader
from stages.io.shards import plan_shards


def _wav(seconds: float = 0.05, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = int(seconds * rate)
        w.writeframes(
            b"".join(struct.pack("<h", int(8000 * math.sin(i / 5))) for i in range(frames))
        )
    return buffer.getvalue()


def _manifest(lines: list[dict]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def _read(uri: str, **kwargs):
    shards = plan_shards(uri, format="manifest")
    assert len(shards) == 1 and shards[0].format == "manifest"
    return ShardReader(**kwargs).read(shards[0])


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path):
    (tmp_path / "set" / "wavs").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "set" / "wavs" / "a.wav").write_bytes(_wav())
    (tmp_path / "other" / "b.wav").write_bytes(_wav())
    (tmp_path / "c.wav").write_bytes(_wav())
    lines = [
        {"audio_filepath": "wavs/a.wav", "duration": 0.05, "text": "alpha", "speaker": 1},
        {"audio_filepath": "../other/b.wav", "duration": 0.05, "text": "beta", "speaker": 2},
        {"audio_filepath": str(tmp_path / "c.wav"), "duration": 0.05, "speaker": 3},
    ]
    manifest = tmp_path / "set" / "train_manifest.json"
    manifest.write_bytes(_manifest(lines))
    result = _read(str(manifest))
    table = result.table
    assert result.quarantine.num_rows == 0
    resolved = [
        str(tmp_path / "set" / "wavs" / "a.wav"),
        str(tmp_path / "other" / "b.wav"),
        str(tmp_path / "c.wav"),
    ]
    assert table.column_names == [
        "id", "text", "source", "_order", "audio_uri", "audio_filepath",
        "audio_filepath_raw", "duration", "speaker",
    ]  # fmt: skip
    assert table.column("audio_filepath").to_pylist() == resolved
    assert table.column("audio_uri").to_pylist() == resolved
    assert table.column("audio_filepath_raw").to_pylist() == [x["audio_filepath"] for x in lines]
    assert table.column("text").to_pylist() == ["alpha", "beta", None]
    assert table.column("duration").to_pylist() == [0.05] * 3
    assert table.column("speaker").to_pylist() == [1, 2, 3]
    assert table.column("source").to_pylist() == [str(manifest)] * 3
    assert table.column("_order").to_pylist() == [1, 2, 3]


def test_a_missing_audio_file_is_quarantined_with_its_manifest_line(tmp_path):
    (tmp_path / "a.wav").write_bytes(_wav())
    lines = [
        {"audio_filepath": "a.wav", "duration": 1.0, "text": "here"},
        {"audio_filepath": "gone.wav", "duration": 2.0, "text": "missing"},
        {"duration": 3.0, "text": "no path"},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(_manifest(lines))
    result = _read(str(manifest))
    assert result.table.column("text").to_pylist() == ["here"]
    q = result.quarantine.to_pylist()
    assert [x["line"] for x in q] == [2, 3]
    missing = str(tmp_path / "gone.wav")
    assert q[0]["reason"] == f"{manifest}: line 2: audio file {missing} not found"
    assert q[0]["raw"] == orjson.dumps(lines[1])
    assert q[1]["reason"] == f"{manifest}: line 3: missing field 'audio_filepath'"


def test_audio_bytes_are_read_only_when_asked(tmp_path):
    (tmp_path / "a.wav").write_bytes(_wav())
    (tmp_path / "m.json").write_bytes(_manifest([{"audio_filepath": "a.wav", "duration": 1}]))
    assert "audio" not in _read(str(tmp_path / "m.json")).table.column_names
    table = _read(str(tmp_path / "m.json"), inline_media=True).table
    assert table.column("audio").to_pylist() == [_wav()]
    tiny = _read(str(tmp_path / "m.json"), inline_media=True, max_inline_mb=10 / 2**20).table
    assert tiny.column("audio").to_pylist() == [None]


def test_manifest_on_s3_resolves_relative_paths_in_its_bucket(s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.pipe_file(f"{s3_bucket}/asr/wavs/a.wav", _wav())
    fs.pipe_file(f"{s3_bucket}/shared/b.wav", _wav())
    lines = [
        {"audio_filepath": "wavs/a.wav", "duration": 0.05, "text": "alpha"},
        {"audio_filepath": f"s3://{s3_bucket}/shared/b.wav", "duration": 0.05, "text": "beta"},
        {"audio_filepath": "wavs/lost.wav", "duration": 0.05, "text": "gamma"},
    ]
    uri = f"s3://{s3_bucket}/asr/manifest.json"
    fs.pipe_file(uri, _manifest(lines))
    result = _read(uri)
    assert result.table.column("audio_filepath").to_pylist() == [
        f"s3://{s3_bucket}/asr/wavs/a.wav",
        f"s3://{s3_bucket}/shared/b.wav",
    ]
    [q] = result.quarantine.to_pylist()
    lost = f"s3://{s3_bucket}/asr/wavs/lost.wav"
    assert q["reason"] == f"{uri}: line 3: audio file {lost} not found"
    assert q["raw"] == orjson.dumps(lines[2])


def test_a_manifest_is_read_as_plain_jsonl_unless_asked(tmp_path):
    (tmp_path / "m.json").write_bytes(_manifest([{"audio_filepath": "a.wav", "text": "x"}]))
    [shard] = plan_shards(str(tmp_path / "m.json"))
    assert shard.format == "jsonl"
