"""Exact dedup of a binary column (encoded images, audio): the reader without a text field,
the hash of bytes, and the dedup flow end to end on a Parquet image dataset."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.dedup import DedupParams, dedup_step, run_dedup
from stages.dedup.exact import ExactDedupHash
from stages.io.commit import dataset_files, quarantine_files, read_manifest
from stages.io.errors import InputError
from stages.io.read import ShardReader
from stages.io.shards import plan_shards


def _png(seed: int, size: int = 8) -> bytes:
    """A valid RGB PNG of random pixels (PNG spec: signature, IHDR, zlib IDAT, IEND)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _read_all(reader: ShardReader, uri: str):
    results = [reader.read(s) for s in plan_shards(uri)]
    table = pa.concat_tables([r.table for r in results])
    quarantine = pa.concat_tables([r.quarantine for r in results])
    return table, quarantine


# ------------------------------------------------------------------------ reader


def test_reader_without_text_keeps_binary_columns_as_bytes(tmp_path):
    path = str(tmp_path / "images.parquet")
    images = [_png(1), _png(2)]
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b"],
                "image": pa.array(images, pa.binary()),
                "audio": pa.array([b"\x00\x01", b"\xff"], pa.large_binary()),
            }
        ),
        path,
    )
    table, quarantine = _read_all(ShardReader(text_field=None, required_field="image"), path)
    assert quarantine.num_rows == 0
    assert table.column_names == ["id", "source", "_order", "image", "audio"]
    assert table.schema.field("image").type == pa.binary()
    assert table.schema.field("audio").type == pa.large_binary()
    assert table.column("image").to_pylist() == images
    assert table.column("id").to_pylist() == ["a", "b"]
    assert table.column("source").to_pylist() == [path, path]


def test_reader_without_text_quarantines_rows_whose_required_field_is_null(tmp_path):
    path = str(tmp_path / "images.parquet")
    pq.write_table(
        pa.table({"id": ["a", "b", "c"], "image": pa.array([b"1", None, b"3"], pa.binary())}),
        path,
    )
    table, quarantine = _read_all(ShardReader(text_field=None, required_field="image"), path)
    assert table.column("id").to_pylist() == ["a", "c"]
    assert table.column("_order").to_pylist() == [1, 3]
    assert quarantine.column("reason").to_pylist() == [f"{path}: line 2: field 'image' is null"]
    with pytest.raises(InputError, match="line 2: field 'image' is null"):
        _read_all(ShardReader(text_field=None, required_field="image", strict=True), path)


def test_reader_without_text_quarantines_a_file_missing_the_required_column(tmp_path):
    path = str(tmp_path / "captions.parquet")
    pq.write_table(pa.table({"id": ["a"], "caption": ["a cat"]}), path)
    table, quarantine = _read_all(ShardReader(text_field=None, required_field="image"), path)
    assert table.num_rows == 0 and "text" not in table.column_names
    assert quarantine.column("reason").to_pylist() == [f"{path}: line 0: missing column 'image'"]


def test_reader_projection_always_includes_the_required_field(tmp_path):
    path = str(tmp_path / "images.parquet")
    pq.write_table(
        pa.table({"id": ["a"], "image": [b"\x89"], "caption": ["x"], "width": [8]}), path
    )
    reader = ShardReader(text_field=None, required_field="image", columns=["width"])
    table, _ = _read_all(reader, path)
    assert table.column_names == ["id", "source", "_order", "width", "image"]


def test_reader_without_text_leaves_a_text_field_unrenamed_and_unrequired(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"id": "a", "text": "hello", "k": "x"}, {"id": "b", "k": "y"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    table, quarantine = _read_all(ShardReader(text_field=None, required_field="k"), str(path))
    assert quarantine.num_rows == 0
    assert table.column("text").to_pylist() == ["hello", None]
    assert table.column("k").to_pylist() == ["x", "y"]


def test_jsonl_without_text_quarantines_missing_and_null_required_fields(tmp_path):
    path = tmp_path / "media.jsonl"
    path.write_text('{"id": "a", "image": "abc"}\n{"id": "b"}\n{"id": "c", "image": null}\n')
    table, quarantine = _read_all(ShardReader(text_field=None, required_field="image"), str(path))
    assert table.to_pylist() == [{"id": "a", "source": str(path), "_order": 1, "image": "abc"}]
    assert quarantine.column("reason").to_pylist() == [
        f"{path}: line 2: missing field 'image'",
        f"{path}: line 3: field 'image' is null",
    ]


def test_jsonl_without_text_gives_the_same_table_in_clean_and_damaged_blocks(tmp_path):
    clean = tmp_path / "clean.jsonl"
    rows = [{"id": f"r{i}", "image": f"v{i}", "n": i} for i in range(5)]
    clean.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text(clean.read_text() + "not json\n")
    reader = ShardReader(text_field=None, required_field="image")
    good, _ = _read_all(reader, str(clean))
    mixed, quarantine = _read_all(reader, str(damaged))
    assert quarantine.column("line").to_pylist() == [6]
    assert "text" not in good.column_names
    assert good.drop_columns(["id", "source", "_order"]).equals(
        mixed.drop_columns(["id", "source", "_order"])
    )
    assert good.column("id").to_pylist() == mixed.column("id").to_pylist()


# ------------------------------------------------------------------------ hash


def test_hash_of_a_binary_column_is_the_md5_of_its_bytes():
    images = [_png(1), _png(2), None]
    batch = pa.table({"id": ["a", "b", "c"], "image": pa.array(images, pa.binary())})
    out = ExactDedupHash(text_field="image").process(batch)
    assert out.column("_hash").to_pylist() == [
        hashlib.md5(images[0]).hexdigest(),
        hashlib.md5(images[1]).hexdigest(),
        hashlib.md5(b"").hexdigest(),
    ]
    assert out.column("image").to_pylist() == images


def test_strings_hash_as_their_utf8_bytes_and_binary_types_agree():
    values = ["héllo", "x"]
    encoded = [v.encode("utf-8") for v in values]
    stage = ExactDedupHash(text_field="v", num_partitions=7)
    hashes = [
        stage.process(pa.table({"v": pa.array(data, kind)})).column("_hash").to_pylist()
        for data, kind in (
            (values, pa.string()),
            (encoded, pa.binary()),
            (encoded, pa.large_binary()),
        )
    ]
    assert hashes[0] == hashes[1] == hashes[2]
    assert hashes[0] == [hashlib.md5(b).hexdigest() for b in encoded]


def test_normalize_does_not_change_the_hash_of_bytes():
    batch = pa.table({"image": pa.array([b"  AB  C "], pa.binary())})
    raw = ExactDedupHash(text_field="image").process(batch).column("_hash")
    normalized = ExactDedupHash(text_field="image", normalize=True).process(batch).column("_hash")
    assert raw.to_pylist() == normalized.to_pylist() == [hashlib.md5(b"  AB  C ").hexdigest()]


def test_keep_longest_ranks_binary_rows_by_byte_length():
    params = DedupParams(input="x", output="y", method="exact", column="image", keep="longest")
    table = pa.table({"image": pa.array([b"abc", None, b"\x00" * 10], pa.binary())})
    assert dedup_step(params).priority(table).to_pylist() == [3.0, 0.0, 10.0]


# ------------------------------------------------------------------------ flow


def _image_dataset(root) -> dict[str, bytes | None]:
    """Two Parquet files of PNGs with byte-identical copies across and within files, a
    null image, and the same caption in a `text` column everywhere (which must not count)."""
    first = {f"a{i}": _png(i) for i in range(10)}
    first["a_null"] = None
    second = {f"b{i}": _png(100 + i) for i in range(5)}
    second.update({"b_copy3": _png(3), "b_copy7": _png(7), "b_again0": _png(100)})
    root.mkdir()
    for name, images in (("a.parquet", first), ("b.parquet", second)):
        table = pa.table(
            {
                "id": list(images),
                "image": pa.array(list(images.values()), pa.binary()),
                "text": ["a photo"] * len(images),
            }
        )
        pq.write_table(table, str(root / name))
    return {**first, **second}


def test_exact_dedup_of_an_image_column_end_to_end(tmp_path, ray_cluster):
    images = _image_dataset(tmp_path / "images")
    out = str(tmp_path / "out")
    params = DedupParams(
        input=str(tmp_path / "images"), output=out, method="exact", column="image", partitions=4
    )
    summary = run_dedup(params)
    manifest = read_manifest(out)
    table = pa.concat_tables([pq.read_table(f) for f in dataset_files(out)])

    copies = {"b_copy3": "a3", "b_copy7": "a7", "b_again0": "b0"}
    expected = set(images) - set(copies) - {"a_null"}
    assert set(table.column("id").to_pylist()) == expected
    assert table.num_rows == manifest["rows"] == len(expected)
    assert table.schema.field("image").type == pa.binary()
    for row in table.select(["id", "image"]).to_pylist():
        assert row["image"] == images[row["id"]]

    audit = pq.read_table(f"{manifest['uri']}/duplicates.parquet").to_pylist()
    assert {(r["id"], r["duplicate_of"]) for r in audit} == set(copies.items())

    reasons = [
        r for f in quarantine_files(out) for r in pq.read_table(f).column("reason").to_pylist()
    ]
    assert reasons == [f"{tmp_path / 'images' / 'a.parquet'}: line 11: field 'image' is null"]
    assert summary["output"] == manifest["uri"]


def test_fuzzy_dedup_of_a_binary_column_is_refused(tmp_path, ray_cluster):
    _image_dataset(tmp_path / "images")
    params = DedupParams(
        input=str(tmp_path / "images"), output=str(tmp_path / "out"), method="fuzzy", column="image"
    )
    # The engine's task wrappers carry the ValueError's message (not yet its type).
    with pytest.raises(Exception, match="fuzzy dedup needs a text column; 'image' is binary"):
        run_dedup(params)
