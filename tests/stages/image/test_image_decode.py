"""ImageDecoder: every good image keeps its bytes and gains its displayed size, format and
mode; every unusable one goes to the quarantine with its place, id, reason and bytes."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass

import pyarrow as pa
import pytest
from images import (
    EMPTY,
    bad_images,
    bomb_png,
    good_images,
    html_as_jpg,
    jpeg,
    photo,
    png,
    rotated_jpeg,
    truncated_jpeg,
    write_tar,
)
from PIL import Image, ImageFile

from stages.image.decode import DECODED_COLUMNS, ImageDecoder, load_rgb
from stages.io.quarantine import QUARANTINE_SCHEMA

SOURCE = "s3://raw/shard-00007.tar"
FILE_INDEX = 7


def _rows(images: dict[str, bytes | None], column: str = "jpg", **extra) -> pa.Table:
    """WebDataset-like rows: one per image, sample numbers from 1."""
    n = len(images)
    return pa.table(
        {
            "id": list(images),
            "source": [SOURCE] * n,
            "_order": pa.array([(FILE_INDEX << 32) | (i + 1) for i in range(n)], pa.int64()),
            column: pa.array(list(images.values()), pa.binary()),
            **extra,
        }
    )


def _decoded(images: dict[str, bytes | None], **kwargs) -> tuple[pa.Table, pa.Table]:
    return ImageDecoder(**kwargs).check(_rows(images))


EXPECTED = {  # name: (width, height, format, mode) as displayed
    "gradient.jpg": (128, 96, "JPEG", "RGB"),
    "texture.png": (128, 96, "PNG", "RGB"),
    "alpha.png": (128, 96, "PNG", "RGBA"),
    "text.webp": (128, 96, "WEBP", "RGB"),
    "cmyk.jpg": (160, 120, "JPEG", "CMYK"),
    "palette.gif": (160, 120, "GIF", "P"),
    "rotated.jpg": (96, 128, "JPEG", "RGB"),
    "tiny.jpg": (20, 15, "JPEG", "RGB"),
    "strip.jpg": (40, 500, "JPEG", "RGB"),
}


def test_every_good_image_gets_its_displayed_size_format_mode_and_stored_size():
    images = good_images()
    assert set(images) == set(EXPECTED)
    good, bad = _decoded(images)
    assert bad.num_rows == 0
    assert good["id"].to_pylist() == list(images)
    for row in good.to_pylist():
        w, h, fmt, mode = EXPECTED[row["id"]]
        assert (row["width"], row["height"], row["image_format"], row["image_mode"]) == (
            w,
            h,
            fmt,
            mode,
        ), row["id"]
        assert row["image"] == images[row["id"]]  # unchanged
        assert row["image_bytes"] == len(images[row["id"]])
    types = {c: good.schema.field(c).type for c in DECODED_COLUMNS}
    assert types == {
        "width": pa.int32(),
        "height": pa.int32(),
        "image_format": pa.string(),
        "image_mode": pa.string(),
        "image_bytes": pa.int64(),
    }


def test_an_exif_rotated_jpeg_is_as_wide_as_it_is_displayed_and_its_bytes_stay_rotated():
    data = rotated_jpeg(width=128, height=96)
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.size == (128, 96)
    good, _ = _decoded({"r": data})
    assert (good["width"][0].as_py(), good["height"][0].as_py()) == (96, 128)
    assert good["image"][0].as_py() == data
    assert load_rgb(data).size == (96, 128)  # what scoring stages see agrees


@pytest.mark.parametrize(
    "name, why",
    [
        ("truncated.jpg", "truncated JPEG image: OSError: image file is truncated"),
        ("empty.jpg", "empty image (0 bytes) (column 'jpg')"),
        ("bomb.png", "2,500,000,000 pixels is over max_pixels (89,478,485)"),
        ("html.jpg", "not an image Pillow can identify (starts with 3c 21 44 4f 43 54 59 50)"),
    ],
)
def test_each_unusable_image_is_quarantined_with_its_place_id_reason_and_bytes(name, why):
    images = {"first.jpg": jpeg(photo(1)), name: bad_images()[name]}
    good, bad = _decoded(images)
    assert good["id"].to_pylist() == ["first.jpg"]
    assert bad.schema == QUARANTINE_SCHEMA
    [record] = bad.to_pylist()
    assert record["source"] == SOURCE and record["line"] == 2 and record["rows"] == 1
    assert record["reason"].startswith(f"{SOURCE}: line 2: id {name!r}: ")
    assert why in record["reason"]
    assert record["raw"] == images[name]
    assert "0x" not in record["reason"]  # no object address: the same reason every run


def test_good_and_quarantined_rows_add_up_to_the_input_in_order():
    images = {**good_images(), **bad_images()}
    images = dict(sorted(images.items()))  # interleave good and bad
    good, bad = _decoded(images)
    assert good.num_rows + bad.num_rows == len(images)
    assert good["id"].to_pylist() == [n for n in images if n in good_images()]
    assert bad["line"].to_pylist() == [i + 1 for i, n in enumerate(images) if n in bad_images()]


def test_a_header_over_max_pixels_is_refused_before_any_pixel_is_decoded(monkeypatch):
    def no_decoding(self):
        raise AssertionError("an image over max_pixels was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    # 10000x10000 is under Pillow's own hard limit, so max_pixels alone must stop it.
    good, bad = _decoded({"big.png": bomb_png(10_000, 10_000)})
    assert good.num_rows == 0
    assert "10000x10000 pixels is over max_pixels (89,478,485)" in bad["reason"][0].as_py()


def test_max_pixels_is_the_limit_inclusive():
    data = png(photo(2, 40, 25))  # 1000 pixels
    assert _decoded({"a": data}, max_pixels=1000)[0].num_rows == 1
    good, bad = _decoded({"a": data}, max_pixels=999)
    assert good.num_rows == 0
    assert "40x25 pixels is over max_pixels (999)" in bad["reason"][0].as_py()
    with pytest.raises(ValueError, match="max_pixels"):
        ImageDecoder(max_pixels=0)


def test_a_truncated_png_and_corrupt_data_are_quarantined_not_raised():
    whole = png(photo(3))
    corrupt = whole[:60] + bytes(len(whole) - 60)  # header intact, pixel data zeroed
    good, bad = _decoded({"cut.png": whole[: len(whole) // 2], "corrupt.png": corrupt})
    assert good.num_rows == 0
    reasons = bad["reason"].to_pylist()
    assert "truncated PNG image" in reasons[0]
    assert "undecodable PNG image: OSError: broken data stream" in reasons[1]


def test_webdataset_bytes_move_to_image_with_their_extension_and_the_member_column_goes():
    data = jpeg(photo(4))
    good, _ = ImageDecoder().check(_rows({"a": data}, txt=["a caption"]))
    assert "jpg" not in good.column_names
    assert good["image"][0].as_py() == data
    assert good["extension"].to_pylist() == ["jpg"]
    assert good["txt"].to_pylist() == ["a caption"]


def test_each_row_takes_the_first_image_column_it_holds_and_keeps_its_other_members():
    jpg, mask, webp_only = jpeg(photo(5)), png(photo(6)), good_images()["text.webp"]
    table = pa.table(
        {
            "id": ["both", "webp"],
            "jpg": pa.array([jpg, None], pa.binary()),
            "png": pa.array([mask, None], pa.binary()),
            "webp": pa.array([None, webp_only], pa.binary()),
        }
    )
    good, bad = ImageDecoder().check(table)
    assert bad.num_rows == 0
    assert good["image"].to_pylist() == [jpg, webp_only]
    assert good["extension"].to_pylist() == ["jpg", "webp"]
    assert good["png"].to_pylist() == [mask, None]  # a second image stays a member
    assert "jpg" not in good.column_names and "webp" not in good.column_names
    assert good["image_format"].to_pylist() == ["JPEG", "WEBP"]


def test_rows_of_a_folder_keep_their_image_and_extension_columns():
    data = png(photo(7))
    table = _rows({"a": data}, column="image", extension=["png"], image_uri=["file:///a.png"])
    good, _ = ImageDecoder().check(table)
    assert good.column_names[: len(table.column_names)] == table.column_names
    assert good["image"][0].as_py() == data and good["extension"][0].as_py() == "png"


def test_an_image_column_can_be_named_and_nothing_else_is_looked_at():
    data = jpeg(photo(8))
    table = _rows({"a": data, "b": None}, column="thumbnail", jpg=[jpeg(photo(9))] * 2)
    good, bad = ImageDecoder(image_column="thumbnail").check(table)
    assert good["image"].to_pylist() == [data]
    assert good["extension"].to_pylist() == ["thumbnail"]
    assert good["jpg"].to_pylist() == [jpeg(photo(9))]  # not an image source here
    assert "no image: 'thumbnail' is null" in bad["reason"][0].as_py()
    _, bad = ImageDecoder(image_column="missing").check(table)
    assert bad.num_rows == 2 and "no image: no 'missing' column" in bad["reason"][0].as_py()


def test_rows_without_any_image_are_quarantined_saying_what_was_looked_for():
    table = pa.table({"id": ["a"], "source": ["x.tar"], "txt": ["only a caption"]})
    good, bad = ImageDecoder().check(table)
    assert good.num_rows == 0 and "image" in good.column_names
    [record] = bad.to_pylist()
    assert record["reason"].startswith("x.tar: line 0: id 'a': no image: no image column")
    assert record["raw"] is None


def test_a_file_too_large_to_be_read_inline_is_quarantined_naming_its_uri():
    table = _rows({"big": None}, column="image", image_uri=["s3://raw/big.png"])
    _, bad = ImageDecoder().check(table)
    assert "max_inline_mb" in bad["reason"][0].as_py()
    assert "s3://raw/big.png" in bad["reason"][0].as_py()


def test_with_phash_every_good_row_gets_a_hash_and_quarantined_rows_leave_without_one():
    images = dict(sorted({**good_images(), **bad_images()}.items()))
    good, bad = _decoded(images, phash=True)
    assert good["id"].to_pylist() == [n for n in images if n in good_images()]
    assert good.schema.field("phash").type == pa.uint64()
    assert good["phash"].null_count == 0
    assert bad.num_rows == len(bad_images()) and bad.schema == QUARANTINE_SCHEMA
    with pytest.raises(ValueError, match="phash='exact': expected False, True or 'fast'"):
        ImageDecoder(phash="exact")


def test_the_fast_hash_still_reads_a_whole_jpeg_so_a_truncated_one_is_quarantined():
    whole = jpeg(photo(6, 640, 480))
    good, bad = _decoded({"whole.jpg": whole, "cut.jpg": whole[: len(whole) // 2]}, phash="fast")
    assert good["id"].to_pylist() == ["whole.jpg"]
    assert (good["width"][0].as_py(), good["height"][0].as_py()) == (640, 480)  # not reduced
    assert "truncated JPEG image" in bad["reason"][0].as_py()


def test_a_non_binary_image_column_is_a_clear_error():
    with pytest.raises(TypeError, match="ImageDecoder: column 'image' is string"):
        ImageDecoder().check(pa.table({"image": ["https://example.com/a.jpg"]}))


def test_decoding_twice_replaces_the_columns_and_an_empty_batch_has_them_all():
    good, _ = _decoded({"a": jpeg(photo(10)), "b": png(photo(11))})
    again, bad = ImageDecoder().check(good)
    assert bad.num_rows == 0 and again.equals(good)
    empty, bad = ImageDecoder().check(_rows({}).slice(0, 0))
    assert empty.num_rows == 0 and bad.num_rows == 0
    assert {"image", *DECODED_COLUMNS} <= set(empty.column_names)


def test_process_returns_the_good_rows_only():
    out = ImageDecoder().process(_rows({"a": jpeg(photo(12)), "b": EMPTY, "c": html_as_jpg()}))
    assert out["id"].to_pylist() == ["a"]


def test_a_webdataset_shard_is_read_decoded_and_written_back_with_its_members(tmp_path):
    from stages.io.commit import VersionWriter
    from stages.io.fs import join, read_bytes
    from stages.io.read import ShardReader
    from stages.io.shards import plan_shards
    from stages.io.writers import dataset_writer

    good_jpg, cut = jpeg(photo(13)), truncated_jpeg(14)
    samples = {
        "000000001": {"jpg": good_jpg, "txt": "a good one", "json": {"id": "g"}},
        "000000002": {"jpg": cut, "txt": "a cut one", "json": {"id": "c"}},
        "000000003": {"png": png(photo(15)), "txt": "a png", "json": {"id": "p"}},
    }
    (tmp_path / "in").mkdir()
    [shard] = plan_shards(write_tar(tmp_path / "in" / "00000.tar", samples))
    read = ShardReader().read(shard)
    good, bad = ImageDecoder().check(read.table)
    assert good["id"].to_pylist() == ["g", "p"]
    assert bad["line"].to_pylist() == [2] and bad["raw"].to_pylist() == [cut]

    @dataclass(frozen=True)
    class Shard:
        key: str = "00000-0000"
        number: int = 0

    version = VersionWriter(str(tmp_path / "out"), "v1")
    files = dataset_writer("webdataset").write_shard(version, Shard(), good)
    version.commit_shard(Shard.key, files, {"rows": good.num_rows})
    manifest = version.commit(inputs=[], parameters={}, code_version="test", flow_run_id=None)
    [tar_path] = [f["path"] for f in manifest["files"] if f["path"].endswith(".tar")]
    with tarfile.open(fileobj=io.BytesIO(read_bytes(join(manifest["uri"], tar_path)))) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    images = {name: data for name, data in members.items() if name.split(".")[1] in ("jpg", "png")}
    assert images == {"000000000.jpg": good_jpg, "000000001.png": samples["000000003"]["png"]}
    assert members["000000000.txt"] == b"a good one"
