"""`curate image` end to end against the S3 test endpoint: WebDataset tars made here from
generated images (good ones of every format and mode, broken ones, too small and too long
ones, byte copies and near-copies) go in; the output keeps what it should with its bytes
unchanged, quarantines or removes the rest with the right reason, lists the duplicates
with the image they duplicate, reads back with the `webdataset` library and Ray Data, and
every count adds up."""

from __future__ import annotations

import io
import tarfile

import orjson
import pyarrow.parquet as pq
import pytest
from images import (
    EMPTY,
    bomb_png,
    cmyk_jpeg,
    html_as_jpg,
    jpeg,
    near_copies,
    palette_gif,
    photo,
    png,
    rgba_png,
    rotated_jpeg,
    strip_jpeg,
    tiny_jpeg,
    truncated_jpeg,
    webp,
    write_tar,
)
from PIL import Image

from flows.image import ImageParams, curate_image, run_image
from stages.io.commit import read_manifest
from stages.io.fs import join, read_bytes

PHOTOS = 8  # distinct pictures, 256x192
ORIGINAL = "photo-0"  # the picture the near-copies are made from
# Near-copies of ORIGINAL found at the default threshold (8 bits of 64): the 3% crop moves
# this picture's hash farther (the benchmark finds about 3 in 4 crops at 8 bits).
FOUND_COPIES = ("identical", "resized_50", "resized_75", "jpeg_q50", "brightened_15")


def _samples() -> dict[str, dict[str, dict]]:
    """Two tars' samples, key -> members. Every sample has a caption and a json."""
    pictures = {f"photo-{i}": jpeg(photo(i, 256, 192)) for i in range(PHOTOS)}
    first: dict[str, dict] = {}
    for key, data in pictures.items():
        first[key] = {"jpg": data, "txt": f"a picture called {key}", "json": {"url": key}}
    kinds = {
        "alpha": ("png", rgba_png(photo(20, 200, 160))),
        "cmyk": ("jpg", cmyk_jpeg(photo(21, 200, 160))),
        "palette": ("gif", palette_gif(photo(22, 200, 160))),
        "modern": ("webp", webp(photo(23, 200, 160))),
        "rotated": ("jpg", rotated_jpeg(256, 192, seed=24)),
        "truncated": ("jpg", truncated_jpeg(seed=25)),
        "empty": ("jpg", EMPTY),
        "bomb": ("png", bomb_png()),
        "html": ("jpg", html_as_jpg()),
        "tiny": ("jpg", tiny_jpeg()),
        "strip": ("jpg", strip_jpeg()),
        "wide": ("jpg", jpeg(photo(26, 640, 160))),  # 4:1, every side long enough
    }
    for key, (ext, data) in kinds.items():
        first[key] = {ext: data, "txt": f"the {key} one", "json": {"url": key}}
    second: dict[str, dict] = {}
    for kind, data in near_copies(pictures[ORIGINAL]).items():
        second[f"copy-{kind}"] = {"jpg": data, "json": {"caption": f"{kind} copy"}}
    second["late"] = {"jpg": jpeg(photo(30, 256, 192)), "txt": "one more"}
    return {"00000.tar": first, "00001.tar": second}


SAMPLES = _samples()
QUARANTINED = {  # key -> what its reason says
    "truncated": "truncated",
    "empty": "empty",
    "bomb": "max_pixels",
    "html": "not a jpg file",  # the reader: bytes that do not start like a JPEG
}
REMOVED = {"tiny": "ImageMinSideFilter", "strip": "ImageMinSideFilter"}
REMOVED["wide"] = "ImageAspectRatioFilter"
DUPLICATES = {f"copy-{kind}" for kind in FOUND_COPIES}


@pytest.fixture(scope="module")
def s3_run(s3_endpoint, ray_cluster, prefect_harness, tmp_path_factory):
    """One run of the Prefect flow on tars in the S3 test endpoint, given as a brace
    range: (summary, output URI, the fs)."""
    import s3fs

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    bucket = "image-flow"
    fs.mkdir(bucket)
    folder = tmp_path_factory.mktemp("tars")
    for name, samples in SAMPLES.items():
        fs.pipe_file(f"{bucket}/raw/{name}", read_bytes(write_tar(folder / name, samples)))
    output = f"s3://{bucket}/curated"
    params = ImageParams(input=f"s3://{bucket}/raw/{{00000..00001}}.tar", output=output)
    summary = curate_image(params)
    return summary, output, fs


def _tar_samples(fs, manifest: dict) -> dict[str, dict[str, bytes]]:
    """Key -> {extension: bytes} of every committed tar."""
    samples: dict[str, dict[str, bytes]] = {}
    for entry in manifest["files"]:
        if not entry["path"].endswith(".tar"):
            continue
        data = fs.cat_file(join(manifest["uri"], entry["path"]).removeprefix("s3://"))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                key, ext = member.name.split(".", 1)
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def _by_id(samples: dict[str, dict[str, bytes]]) -> dict[str, dict]:
    out = {}
    for members in samples.values():
        meta = orjson.loads(members["json"])
        out[meta["id"]] = {**members, "meta": meta}
    return out


def test_every_row_is_written_removed_deduplicated_or_quarantined(s3_run):
    summary, _, _ = s3_run
    report = summary["report"]
    inputs = sum(len(samples) for samples in SAMPLES.values())
    assert report["rows_read"] == inputs
    assert report["unaccounted"] == 0
    assert report["rows_quarantined"] == len(QUARANTINED)
    assert report["rows_removed"] == len(REMOVED)
    assert report["duplicates_removed"] == len(DUPLICATES)
    kept = inputs - len(QUARANTINED) - len(REMOVED) - len(DUPLICATES)
    assert report["rows_written"] == kept


def test_kept_images_are_the_input_bytes_with_their_caption_and_scores(s3_run):
    _, output, fs = s3_run
    manifest = read_manifest(output)
    kept = _by_id(_tar_samples(fs, manifest))
    expected = {
        key
        for samples in SAMPLES.values()
        for key in samples
        if key not in QUARANTINED and key not in REMOVED and key not in DUPLICATES
    }
    assert set(kept) == expected  # ids are the input keys
    inputs = {key: members for samples in SAMPLES.values() for key, members in samples.items()}
    for key, sample in kept.items():
        (ext,) = [e for e in inputs[key] if e not in ("txt", "json")]
        stored = {"jpeg": "jpg"}.get(ext, ext)
        assert sample[stored] == inputs[key][ext], key  # never re-encoded
        meta = sample["meta"]
        assert meta["width"] > 0 and meta["height"] > 0 and isinstance(meta["phash"], int)
        assert "score_ImageMinSideFilter" in meta and "score_ImageAspectRatioFilter" in meta
    assert kept["photo-1"]["txt"] == b"a picture called photo-1"
    assert kept["copy-cropped_3"]["txt"] == b"cropped_3 copy"  # a caption from the json
    assert (kept["rotated"]["meta"]["width"], kept["rotated"]["meta"]["height"]) == (192, 256)
    assert kept["cmyk"]["meta"]["image_mode"] == "CMYK"
    assert kept["alpha"]["meta"]["image_mode"] == "RGBA"


def test_bad_images_are_quarantined_with_their_reason_and_bytes(s3_run):
    _, output, fs = s3_run
    manifest = read_manifest(output)
    rows = []
    for entry in manifest["quarantine"]:
        with fs.open(join(manifest["uri"], entry["path"]).removeprefix("s3://"), "rb") as f:
            rows += pq.read_table(f).to_pylist()
    assert len(rows) == len(QUARANTINED)
    for key, says in QUARANTINED.items():
        (row,) = [r for r in rows if f"'{key}'" in r["reason"] or f"member {key}." in r["reason"]]
        assert says in row["reason"] and row["source"].endswith("00000.tar"), row["reason"]
        member = next(data for ext, data in SAMPLES["00000.tar"][key].items() if ext != "txt")
        assert row["raw"] == member or (row["raw"] or b"") == member[: len(row["raw"] or b"")]


def test_duplicates_name_the_image_they_duplicate(s3_run):
    _, output, fs = s3_run
    manifest = read_manifest(output)
    with fs.open(join(manifest["uri"], "duplicates.parquet").removeprefix("s3://"), "rb") as f:
        duplicates = pq.read_table(f).to_pylist()
    assert {d["id"] for d in duplicates} == DUPLICATES
    assert {d["duplicate_of"] for d in duplicates} == {ORIGINAL}
    identical = next(d for d in duplicates if d["id"] == "copy-identical")
    assert identical["distance"] == 0
    assert all(0 <= d["distance"] <= 8 for d in duplicates)


def test_removed_images_are_shown_in_the_report(s3_run):
    summary, output, fs = s3_run
    stages = {s["stage"]: s for s in summary["report"]["stages"]}
    assert stages["ImageMinSideFilter"]["removed"] == 2
    assert stages["ImageAspectRatioFilter"]["removed"] == 1
    assert stages["ImageDecoder"]["quarantined"] == 2  # the reader caught the others
    html = fs.cat_file(summary["report_html"].removeprefix("s3://")).decode()
    assert "data:image/" in html  # thumbnails of removed images


def test_the_output_reads_back_with_webdataset_and_ray(s3_run, monkeypatch):
    import ray
    import webdataset
    from webdataset.gopen import gopen_schemes

    _, output, fs = s3_run
    manifest = read_manifest(output)
    tars = [
        join(manifest["uri"], f["path"]) for f in manifest["files"] if f["path"].endswith(".tar")
    ]

    def open_s3(url, mode="rb", bufsize=8192, **kw):
        return fs.open(url, mode)

    monkeypatch.setitem(gopen_schemes, "s3", open_s3)
    samples = list(webdataset.WebDataset(tars, shardshuffle=False))
    assert len(samples) == manifest["rows"]
    for sample in samples:
        image_ext = next(e for e in sample if e in ("jpg", "png", "gif", "webp"))
        Image.open(io.BytesIO(sample[image_ext])).load()
    rows = ray.data.read_webdataset(tars, decoder=None).take_all()
    assert sorted(orjson.loads(r["json"])["id"] for r in rows) == sorted(
        orjson.loads(s["json"])["id"] for s in samples
    )


def test_parquet_output_and_exact_dedup_on_a_folder_of_files(tmp_path, ray_cluster):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        (folder / f"p{i}.jpg").write_bytes(jpeg(photo(i, 200, 150)))
    (folder / "copy.jpg").write_bytes((folder / "p1.jpg").read_bytes())
    (folder / "near.jpg").write_bytes(near_copies((folder / "p2.jpg").read_bytes())["jpeg_q50"])
    (folder / "notes.txt").write_text("not an image")
    params = ImageParams(
        input=str(folder), output=str(tmp_path / "out"), dedup="exact", output_format="parquet"
    )

    summary = run_image(params)

    manifest = read_manifest(str(tmp_path / "out"))
    table = pq.read_table(join(manifest["uri"], manifest["files"][0]["path"]))
    # copy.jpg comes first in input order: p1.jpg, its byte copy, is the duplicate
    assert sorted(table.column("id").to_pylist()) == ["copy", "near", "p0", "p2", "p3"]
    assert table.column("image").to_pylist()[0][:3] == b"\xff\xd8\xff"
    assert summary["report"]["duplicates_removed"] == 1
    assert [s["path"] for s in manifest["skipped_inputs"]] == [str(folder / "notes.txt")]


def test_parquet_input_with_an_image_column_of_its_own_name(tmp_path, ray_cluster):
    import pyarrow as pa

    rows = {
        "key": ["a", "b", "c", "d"],
        "img_bytes": [
            jpeg(photo(40, 200, 150)),
            png(photo(41, 200, 150)),
            truncated_jpeg(seed=42),
            None,
        ],
        "TEXT": ["first", "second", "third", "fourth"],
    }
    pq.write_table(pa.table(rows), tmp_path / "images.parquet")
    params = ImageParams(
        input=str(tmp_path / "images.parquet"),
        output=str(tmp_path / "out"),
        image_column="img_bytes",
        id_field="key",
        caption_field="TEXT",
        output_format="parquet",
    )

    summary = run_image(params)

    manifest = read_manifest(str(tmp_path / "out"))
    table = pq.read_table(join(manifest["uri"], manifest["files"][0]["path"]))
    assert table.column("id").to_pylist() == ["a", "b"]
    assert table.column("caption").to_pylist() == ["first", "second"]
    assert table.column("image").to_pylist() == rows["img_bytes"][:2]  # the bytes, unchanged
    assert summary["report"]["rows_quarantined"] == 2  # truncated, and no image at all
    bad_params = params.model_copy(update={"image_column": "nosuch"})
    with pytest.raises(ValueError, match="no column 'nosuch'"):
        run_image(bad_params)


def test_models_add_embeddings_and_scores_and_semantic_dedup_uses_them(tmp_path, ray_cluster):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages" / "image"))
    from tiny_models import DIM, save_aesthetic, save_nsfw, tiny_clip

    pictures = {f"p{i}": jpeg(photo(50 + i, 200, 150)) for i in range(5)}
    samples = {key: {"jpg": data, "txt": f"picture {key}"} for key, data in pictures.items()}
    samples["p9-copy"] = {"jpg": pictures["p1"], "txt": "the same bytes"}
    write_tar(tmp_path / "00000.tar", samples)
    params = ImageParams(
        input=str(tmp_path / "00000.tar"),
        output=str(tmp_path / "out"),
        clip_model=tiny_clip(tmp_path / "clip"),
        aesthetic_model=save_aesthetic(tmp_path / "aesthetic.safetensors"),
        aesthetic_threshold=-1e9,  # random heads: keep everything, check the scores
        nsfw_model=save_nsfw(tmp_path / "nsfw.pth"),
        nsfw_threshold=1.0,
        min_clip_score=-1.0,
        dedup="semantic",
        eps=0.001,
    )

    summary = run_image(params)

    manifest = read_manifest(str(tmp_path / "out"))
    kept = _by_id(_tar_samples(_LocalFs(), manifest))
    assert set(kept) == set(pictures)  # the byte copy goes in the perceptual-hash step
    assert summary["report"]["duplicates_removed"] == 1
    (duplicate,) = pq.read_table(join(manifest["uri"], "duplicates.parquet")).to_pylist()
    assert (duplicate["id"], duplicate["duplicate_of"], duplicate["method"]) == (
        "p9-copy",
        "p1",
        "phash",
    )
    step = next(s for s in summary["report"]["stages"] if s["stage"].endswith("SemanticDedup"))
    assert step["stage"] == "PerceptualDedup+SemanticDedup"
    assert step["details"]["removed_by_step"] == {"PerceptualDedup": 1, "SemanticDedup": 0}
    for sample in kept.values():
        meta = sample["meta"]
        assert 0.0 <= meta["nsfw_score"] <= 1.0
        assert isinstance(meta["aesthetic_score"], float) and -1.0 <= meta["clip_score"] <= 1.0
        assert "embedding" not in meta
    (side,) = [f for f in manifest["files"] if f.get("side") == "embeddings"]
    apart = pq.read_table(join(manifest["uri"], side["path"]))
    assert sorted(apart.column("id").to_pylist()) == sorted(pictures)
    assert apart.schema.field("embedding").type.list_size == DIM
    operators = {tuple(op["stages"]) for op in manifest["extra"]["operators"]}
    assert any("ImageEmbeddingStage" in stages for stages in operators)


def test_nudenet_checks_images_without_clip(tmp_path, ray_cluster):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.jpg").write_bytes(jpeg(photo(60 + i, 320, 240)))
    params = ImageParams(input=str(folder), output=str(tmp_path / "out"), nsfw_model="nudenet")
    summary = run_image(params)
    stages = {s["stage"]: s for s in summary["report"]["stages"]}
    assert stages["NudeNetNSFWFilterStage"]["rows_in"] == 3
    assert summary["report"]["rows_written"] == 3


class _LocalFs:
    """`cat_file` on local paths, as `_tar_samples` calls it on s3fs."""

    def cat_file(self, path: str) -> bytes:
        return read_bytes(path)
