"""Listing an input folder: curate's own output inside it is never read as raw input,
symbolic links are followed (loops and dangling links reported, never fatal), and every
file or folder left out is listed with its reason (`plan_inputs`)."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from stages.io.commit import VersionWriter
from stages.io.read import ShardReader
from stages.io.shards import plan_inputs, plan_shards
from stages.io.write import write_parquet

ROW = b'{"text": "a row"}\n'


def _output_version(output, version: str, commit: bool = True) -> None:
    """A version as a flow writes it: a part, quarantine, duplicates, a marker, a manifest."""
    writer = VersionWriter(str(output), version)
    part = writer.write_part("00000-0000", pa.table({"id": ["x"], "text": ["earlier output"]}))
    bad = writer.write_quarantine(
        "00000-0000", pa.table({"source": ["f"], "line": [1], "reason": ["r"], "raw": [b"x"]})
    )
    writer.commit_shard("00000-0000", [part, bad], {})
    duplicates = pa.table({"id": ["y"], "duplicate_of": ["x"]})
    write_parquet(duplicates, f"{writer.uri}/duplicates.parquet")
    if commit:
        extra = [{"path": "duplicates.parquet"}]
        writer.commit(
            inputs=[], parameters={}, code_version="x", flow_run_id=None, extra_files=extra
        )


def test_curate_output_inside_an_input_folder_is_skipped_and_listed(tmp_path):
    raw = tmp_path / "raw"
    (raw / "sub").mkdir(parents=True)
    (raw / "a.jsonl").write_bytes(ROW)
    (raw / "sub" / "b.jsonl").write_bytes(ROW)
    _output_version(raw / "curated", "v1")
    _output_version(raw / "curated", "v2")
    _output_version(raw / "sub" / "crashed", "v9", commit=False)  # markers, no manifest
    _output_version(raw / "copied", "v3")
    os.remove(raw / "copied" / "_latest")  # a version folder copied without its dataset

    shards, skipped = plan_inputs(str(raw))

    assert [s.uri for s in shards] == [str(raw / "a.jsonl"), str(raw / "sub" / "b.jsonl")]
    assert [s["path"] for s in skipped] == [
        str(raw / "copied" / "v3"),
        str(raw / "curated"),
        str(raw / "sub" / "crashed" / "v9"),
    ]
    reasons = [s["reason"] for s in skipped]
    assert "curate output" in reasons[1] and "_latest" in reasons[1]
    assert "_manifest.json" in reasons[0] and "_shards" in reasons[2]
    assert plan_shards(str(raw)) == shards


def test_rerunning_over_a_folder_holding_earlier_output_reads_the_same_rows(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(ROW * 100)
    before = plan_shards(str(raw))
    for version in ("v1", "v2"):
        _output_version(raw / "out", version)
        assert plan_shards(str(raw)) == before


def test_a_curate_dataset_given_as_the_input_is_read_from_its_manifest(tmp_path):
    _output_version(tmp_path / "out", "v1")
    shards, skipped = plan_inputs(str(tmp_path / "out"))
    assert [s.uri for s in shards] == [str(tmp_path / "out" / "v1" / "part-00000-0000-0.parquet")]
    assert skipped == []


def test_unsupported_files_in_a_folder_are_listed_as_skipped(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.jsonl").write_bytes(ROW)
    (tmp_path / "notes.txt").write_text("not an input")
    (tmp_path / "data.csv").write_text("a,b\n")
    (tmp_path / "sub" / "README").write_text("no extension")
    (tmp_path / "_SUCCESS").write_text("")  # markers and hidden files are not inputs
    (tmp_path / ".DS_Store").write_text("")
    shards, skipped = plan_inputs(str(tmp_path))
    assert [s.uri for s in shards] == [str(tmp_path / "a.jsonl")]
    assert skipped == [
        {"path": str(tmp_path / "data.csv"), "reason": "unsupported file type '.csv'"},
        {"path": str(tmp_path / "notes.txt"), "reason": "unsupported file type '.txt'"},
        {"path": str(tmp_path / "sub" / "README"), "reason": "unsupported file type (none)"},
    ]


def test_with_a_format_given_the_files_it_does_not_read_are_listed(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "b.jsonl").write_bytes(ROW)
    shards, skipped = plan_inputs(str(tmp_path), format="files")
    assert shards[0].members == ("a.png",)
    assert skipped == [
        {"path": str(tmp_path / "b.jsonl"), "reason": "not a files input (type '.jsonl')"}
    ]


def test_unsupported_files_on_s3_are_listed_too(s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.pipe(f"{s3_bucket}/in/a.jsonl", ROW)
    fs.pipe(f"{s3_bucket}/in/notes.txt", b"x")
    fs.pipe(f"{s3_bucket}/in/out/_latest", b'{"version": "v1"}')
    fs.pipe(f"{s3_bucket}/in/out/v1/_manifest.json", b"{}")
    fs.pipe(f"{s3_bucket}/in/out/v1/part-00000-0000-0.parquet", b"PAR1")
    shards, skipped = plan_inputs(f"s3://{s3_bucket}/in/")
    assert [s.uri for s in shards] == [f"s3://{s3_bucket}/in/a.jsonl"]
    assert [s["path"] for s in skipped] == [
        f"s3://{s3_bucket}/in/notes.txt",
        f"s3://{s3_bucket}/in/out",
    ]


def test_a_pattern_leaves_out_curate_output_and_lists_what_it_does_not_read(tmp_path):
    raw = tmp_path / "raw"
    (raw / "2024").mkdir(parents=True)
    (raw / "a.jsonl").write_bytes(ROW)
    (raw / "2024" / "b.jsonl").write_bytes(ROW)
    (raw / "2024" / "notes.txt").write_text("not an input")
    _output_version(raw / "out", "v1")  # its parts and quarantine match the pattern too

    shards, skipped = plan_inputs(str(raw / "**"))

    assert [s.uri for s in shards] == [str(raw / "2024" / "b.jsonl"), str(raw / "a.jsonl")]
    assert skipped == [
        {"path": str(raw / "2024" / "notes.txt"), "reason": "unsupported file type '.txt'"},
        {"path": str(raw / "out"), "reason": skipped[1]["reason"]},
    ]
    assert "curate output" in skipped[1]["reason"] and "_latest" in skipped[1]["reason"]


def test_a_pattern_inside_a_folder_the_user_named_reads_it(tmp_path):
    _output_version(tmp_path / "out", "v1")
    shards, skipped = plan_inputs(str(tmp_path / "out" / "v1" / "part-*.parquet"))
    assert [s.uri for s in shards] == [str(tmp_path / "out" / "v1" / "part-00000-0000-0.parquet")]
    assert skipped == []


def test_a_pattern_on_s3_leaves_out_curate_output(s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.pipe(f"{s3_bucket}/raw/a.jsonl", ROW)
    fs.pipe(f"{s3_bucket}/raw/out/_latest", b'{"version": "v1"}')
    fs.pipe(f"{s3_bucket}/raw/out/v1/_manifest.json", b"{}")
    fs.pipe(f"{s3_bucket}/raw/out/v1/quarantine-00000.jsonl", ROW)
    shards, skipped = plan_inputs(f"s3://{s3_bucket}/raw/**/*.jsonl")
    assert [s.uri for s in shards] == [f"s3://{s3_bucket}/raw/a.jsonl"]
    assert [s["path"] for s in skipped] == [f"s3://{s3_bucket}/raw/out"]


# --------------------------------------------------------------------------- links


def test_a_dangling_link_is_planned_and_quarantined_naming_its_target(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(ROW)
    target = tmp_path / "moved-away.jsonl"
    os.symlink(target, raw / "b.jsonl")
    shards, skipped = plan_inputs(str(raw))
    assert [s.uri for s in shards] == [str(raw / "a.jsonl"), str(raw / "b.jsonl")]
    assert skipped == []
    result = ShardReader().read(shards[1])
    assert result.table.num_rows == 0
    [q] = result.quarantine.to_pylist()
    assert q["source"] == str(raw / "b.jsonl") and q["line"] == 0
    assert q["reason"] == f"{raw / 'b.jsonl'}: line 0: dangling symbolic link to {target}"


@pytest.mark.parametrize("name", ["b.parquet", "b.tar", "b.jsonl.gz"])
def test_a_dangling_link_of_any_format_is_quarantined(tmp_path, name):
    os.symlink(tmp_path / "nowhere", tmp_path / name)
    [shard] = plan_shards(str(tmp_path))
    [q] = ShardReader().read(shard).quarantine.to_pylist()
    assert "dangling symbolic link to" in q["reason"]


def test_a_dangling_link_in_a_media_folder_is_quarantined(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8)
    os.symlink(tmp_path / "gone.png", tmp_path / "b.png")
    [shard] = plan_shards(str(tmp_path), format="files")
    result = ShardReader().read(shard)
    assert result.table.column("id").to_pylist() == ["a"]
    [q] = result.quarantine.to_pylist()
    assert q["reason"].endswith(f"dangling symbolic link to {tmp_path / 'gone.png'}")


def test_a_linked_folder_is_followed(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.jsonl").write_bytes(ROW)
    (tmp_path / "raw" / "a.jsonl").write_bytes(ROW)
    os.symlink(tmp_path / "elsewhere", tmp_path / "raw" / "linked")
    shards, skipped = plan_inputs(str(tmp_path / "raw"))
    assert [s.uri for s in shards] == [
        str(tmp_path / "raw" / "a.jsonl"),
        str(tmp_path / "raw" / "linked" / "x.jsonl"),
    ]
    assert skipped == []


def test_a_link_loop_is_listed_as_skipped_not_followed(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_bytes(ROW)
    os.symlink(tmp_path, tmp_path / "sub" / "up")
    os.symlink("self", tmp_path / "self")  # a link to itself
    shards, skipped = plan_inputs(str(tmp_path))
    assert [s.uri for s in shards] == [str(tmp_path / "sub" / "a.jsonl")]
    assert skipped == [
        {"path": str(tmp_path / "self"), "reason": "symbolic link loop (self)"},
        {
            "path": str(tmp_path / "sub" / "up"),
            "reason": f"symbolic link loop: {tmp_path} is a folder above it",
        },
    ]


def test_two_links_to_one_folder_read_it_once(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.jsonl").write_bytes(ROW)
    os.symlink(tmp_path / "data", tmp_path / "raw" / "a")
    os.symlink(tmp_path / "data", tmp_path / "raw" / "b")
    shards, skipped = plan_inputs(str(tmp_path / "raw"))
    assert [s.uri for s in shards] == [str(tmp_path / "raw" / "a" / "x.jsonl")]
    assert skipped == [
        {
            "path": str(tmp_path / "raw" / "b"),
            "reason": f"the folder {tmp_path / 'data'} again, already read as "
            f"{tmp_path / 'raw' / 'a'}",
        }
    ]
