"""WebDataset round trip through a declared pass-through flow, on local disk and on S3.

Tars made here (jpg/png/webp images with txt and json; a truncated tar, a member named
`../evil.jpg`, a sample without its image, a zero-byte member) are read and written back
by the flow `wds-copy` declared here; the output reads with the `webdataset` library and
Ray Data with nothing missing, in img2dataset's layout, and every bad input is in the
quarantine.
"""

from __future__ import annotations

import io
import sys
import tarfile

import orjson
import pyarrow.parquet as pq
import pytest
from PIL import Image

from flows.runtime.builder import FlowSpec, build_flow, run_flow
from flows.runtime.params import FlowParams
from flows.runtime.storage import storage_options
from stages.io.commit import read_manifest
from stages.io.fs import join, read_bytes
from stages.io.read import ShardReader


class CopyParams(FlowParams):
    pass


WDS_COPY = FlowSpec(
    key="wds-copy",
    params=CopyParams,
    description="Copy WebDataset tars; quarantine bad samples.",
    reader=lambda p: ShardReader(
        required_field="jpg;png;webp", id_field=p.id_field, storage_options=storage_options()
    ),
    stages=lambda p: [],
    writer=lambda p: "webdataset",
)

curate_wds_copy = build_flow(WDS_COPY, __name__, register_flow=False)

if __name__ != "__main__":
    from ray import cloudpickle

    # Ray workers cannot import this test module: ship the declaration by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}

# --------------------------------------------------------------------------- the input


def _image(i: int, ext: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (i * 40 % 256, 90, 200)).save(buffer, format=IMAGE_FORMATS[ext])
    return buffer.getvalue()


class Good:
    """A good sample `i`: an image (jpg, png or webp in turn), a caption and JSON fields."""

    def __init__(self, i: int):
        self.key = f"sample-{i:04d}"
        self.ext = list(IMAGE_FORMATS)[i % 3]
        self.image = _image(i, self.ext)
        self.txt = f"a picture number {i}"
        self.fields = {"id": f"img-{i}", "width": 16, "tags": ["red", i]}

    @property
    def members(self) -> list[tuple[str, bytes]]:
        return [
            (f"{self.key}.{self.ext}", self.image),
            (f"{self.key}.json", orjson.dumps(self.fields)),
            (f"{self.key}.txt", self.txt.encode()),
        ]


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _cut_inside(data: bytes, member: str) -> bytes:
    """The tar `data` cut halfway through `member`'s bytes."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        info = tar.getmember(member)
    return data[: info.offset_data + info.size // 2]


GOOD = [Good(i) for i in range(6)]
TRUNCATED = [Good(i) for i in range(10, 14)]  # cut inside 12's image: 13 is never seen
KEPT = GOOD + TRUNCATED[:2]
NO_IMAGE = {"id": "no-image", "width": 16}

INPUTS = {
    "a-good.tar": _tar(
        GOOD[0].members
        + GOOD[1].members
        + [("../evil.jpg", _image(99, "jpg"))]
        + GOOD[2].members
        + [("no-image.json", orjson.dumps(NO_IMAGE)), ("no-image.txt", b"no picture here")]
        + GOOD[3].members
        + [("empty.jpg", b""), ("empty.txt", b"an empty image")]
        + GOOD[4].members
        + GOOD[5].members
    ),
    "b-truncated.tar": _cut_inside(
        _tar([m for s in TRUNCATED for m in s.members]), f"{TRUNCATED[2].key}.jpg"
    ),
}
# (tar, what its reason says after "<tar uri>: ")
QUARANTINED = [
    ("a-good.tar", "member ../evil.jpg: unsafe path"),
    ("a-good.tar", "sample no-image: no 'jpg' or 'png' or 'webp' member (has: json, txt)"),
    ("a-good.tar", "member empty.jpg: empty member (0 bytes)"),
    ("b-truncated.tar", f"member {TRUNCATED[2].key}.jpg: truncated tar"),
]
# the good tar's samples, good and bad; the cut tar's 10, 11 and 12 (which it broke in)
SAMPLES_SEEN = len(GOOD) + 3 + 3

# --------------------------------------------------------------------------- the checks


def _tars(manifest: dict) -> list[str]:
    return [
        join(manifest["uri"], f["path"]) for f in manifest["files"] if f["path"].endswith(".tar")
    ]


def _member_names(tar_uri: str) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(read_bytes(tar_uri))) as tar:
        return tar.getnames()


def assert_every_tar_has_its_sibling_parquet_with_its_keys(manifest: dict) -> None:
    files = {f["path"]: f for f in manifest["files"]}
    tars = sorted(p for p in files if p.endswith(".tar"))
    assert len(tars) == len(INPUTS)
    assert sorted(files) == sorted(tars + [t[: -len(".tar")] + ".parquet" for t in tars])
    all_keys = []
    for path in tars:
        sibling = files[path[: -len(".tar")] + ".parquet"]
        assert sibling["metadata_of"] == path and sibling["rows"] == 0
        names = _member_names(join(manifest["uri"], path))
        assert names == sorted(names), "members are not in key order"
        keys = [name.split(".", 1)[0] for name in names]
        runs = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
        assert len(runs) == len(set(runs)), "a sample's members are not adjacent"
        assert all(len(k) == 9 and k.isdigit() for k in runs)
        assert len(runs) == files[path]["rows"]
        table = pq.read_table(io.BytesIO(read_bytes(join(manifest["uri"], sibling["path"]))))
        assert table.column("key").to_pylist() == runs
        all_keys += runs
    assert len(all_keys) == len(set(all_keys)) == manifest["rows"] == len(KEPT)


def _is_bytes(value) -> bool:
    return isinstance(value, bytes | bytearray | memoryview)


def assert_samples_are_the_inputs(samples: list[dict]) -> None:
    """Every kept input sample once, by its id: the image's bytes unchanged under its
    extension, the caption as `KEY.txt`, the input JSON's fields in `KEY.json`."""
    by_id = {s.fields["id"]: s for s in KEPT}
    ids = [orjson.loads(bytes(s["json"]))["id"] for s in samples]
    assert sorted(ids) == sorted(by_id)
    for sample in samples:
        fields = orjson.loads(bytes(sample["json"]))
        good = by_id[fields["id"]]
        # Ray Data fills a sample's absent members (a png sample's `jpg`) with NaN
        images = {e: bytes(v) for e, v in sample.items() if e in IMAGE_FORMATS and _is_bytes(v)}
        assert images == {good.ext: good.image}
        assert bytes(sample["txt"]).decode() == good.txt
        assert {k: fields.get(k) for k in good.fields} == good.fields
        assert "json" not in fields  # the input's KEY.json comes back flat, not nested


def assert_bad_inputs_are_quarantined(manifest: dict, inputs: str) -> None:
    files = [join(manifest["uri"], f["path"]) for f in manifest["quarantine"]]
    rows = [r for f in files for r in pq.read_table(io.BytesIO(read_bytes(f))).to_pylist()]
    assert len(rows) == len(QUARANTINED) == manifest["quarantined_rows"]
    assert {f["shard"] for f in manifest["quarantine"]} == set(manifest["shards"])
    for tar, says in QUARANTINED:
        uri = join(inputs, tar)
        assert any(r["source"] == uri and r["reason"].startswith(f"{uri}: {says}") for r in rows), (
            f"{uri}: {says} not in {[r['reason'] for r in rows]}"
        )


def _copy(inputs: str, output: str) -> dict:
    summary = run_flow(WDS_COPY, CopyParams(input=inputs, output=output))
    manifest = read_manifest(output)
    assert summary["report"]["rows_written"] == manifest["rows"] == len(KEPT)
    assert SAMPLES_SEEN == manifest["rows"] + manifest["quarantined_rows"]
    assert_every_tar_has_its_sibling_parquet_with_its_keys(manifest)
    assert_bad_inputs_are_quarantined(manifest, inputs)
    return manifest


# --------------------------------------------------------------------------- the tests


def test_webdataset_round_trip_on_local_disk_reads_back_with_webdataset_and_ray(
    tmp_path, ray_cluster
):
    import ray
    import webdataset

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, data in INPUTS.items():
        (inputs / name).write_bytes(data)

    manifest = _copy(str(inputs), str(tmp_path / "out"))

    tars = _tars(manifest)
    assert_samples_are_the_inputs(list(webdataset.WebDataset(tars, shardshuffle=False)))
    assert_samples_are_the_inputs(ray.data.read_webdataset(tars, decoder=None).take_all())


def test_webdataset_round_trip_on_s3_reads_back_with_webdataset(
    s3_bucket, ray_cluster, monkeypatch
):
    import s3fs
    import webdataset
    from webdataset.gopen import gopen_schemes

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    for name, data in INPUTS.items():
        fs.pipe_file(f"{s3_bucket}/in/{name}", data)

    def open_s3(url, mode="rb", bufsize=8192, **kw):
        return fs.open(url, mode)

    monkeypatch.setitem(gopen_schemes, "s3", open_s3)
    manifest = _copy(f"s3://{s3_bucket}/in", f"s3://{s3_bucket}/out")

    assert manifest["uri"].startswith("s3://")
    assert_samples_are_the_inputs(list(webdataset.WebDataset(_tars(manifest), shardshuffle=False)))


def test_the_truncated_input_tar_is_cut_inside_a_member():
    with pytest.raises(tarfile.ReadError):
        with tarfile.open(fileobj=io.BytesIO(INPUTS["b-truncated.tar"])) as tar:
            for info in tar:
                tar.extractfile(info).read()
