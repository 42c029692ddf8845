"""`curate video` end to end against the S3 test endpoint: videos made here with PyAV
(moving scenes with two hard cuts, a perfectly still span and a dissolve; a 160x120 video;
a VP9 webm; a file with audio; a truncated file) go in through the Prefect flow, with a
tiny CLIP and a stub OpenAI-compatible caption server on 127.0.0.1. The output keeps the
moving clips, cut where the scenes change, each decoding to its recorded duration; the
still span goes to the motion filter, the truncated file to the quarantine; captions that
fail or time out leave their clip's caption missing and the clip written; and every count
adds up."""

from __future__ import annotations

import base64
import io
import json
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import orjson
import pyarrow.parquet as pq
import pytest
from PIL import Image
from videos import CUTS, Span, standard_spans, truncated, write_video

from flows.video import VideoParams, curate_video, run_video
from stages.io.commit import read_manifest
from stages.io.fs import join

FPS = 24
CAPTION = "A moving pattern of coloured blobs."
SLOW_SIZE = (256, 192)  # the stub answers frames of this size too late
FAILING_SIZE = (160, 120)  # and frames of this size with HTTP 500


class _Stub(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat completions endpoint whose answer depends on the frame
    size it is sent: normal, slow (past the flow's timeout) or failing."""

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        parts = body["messages"][0]["content"]
        images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        data = base64.b64decode(images[0].split(",", 1)[1])
        size = Image.open(io.BytesIO(data)).size
        self.server.sizes.append(size)
        if size == FAILING_SIZE:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"model crashed")
            return
        if size == SLOW_SIZE:
            time.sleep(2.5)
        answer = {"choices": [{"message": {"role": "assistant", "content": CAPTION}}]}
        payload = json.dumps(answer).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def caption_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.sizes = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", server
    server.shutdown()
    server.server_close()


def _videos(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "cuts": write_video(folder / "cuts.mp4", standard_spans(), FPS, audio=True),
        "small": write_video(folder / "small.mp4", [Span(3, 4), Span(3, 5)], FPS, FAILING_SIZE),
        "vp9": write_video(
            folder / "vp9.webm", [Span(3, 6), Span(3, 7)], FPS, SLOW_SIZE, codec="libvpx-vp9"
        ),
    }
    whole = write_video(folder / "whole.mp4", [Span(4, 8)], FPS)
    made["broken"] = truncated(whole, folder / "broken.mp4")
    whole.unlink()
    return made


@pytest.fixture(scope="module")
def s3_run(s3_endpoint, ray_cluster, prefect_harness, caption_server, tmp_path_factory):
    """One Prefect run on videos in the S3 test endpoint: (summary, manifest, fs)."""
    import s3fs

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages" / "image"))
    from tiny_models import tiny_clip

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    bucket = "video-flow"
    fs.mkdir(bucket)
    local = tmp_path_factory.mktemp("videos")
    for path in _videos(local / "raw").values():
        fs.put_file(str(path), f"{bucket}/raw/{path.name}")
    params = VideoParams(
        input=f"s3://{bucket}/raw/",
        output=f"s3://{bucket}/clips",
        clip_model=tiny_clip(local / "clip"),
        captions=caption_server[0],
        caption_timeout=1.0,
        dedup="none",
    )
    summary = curate_video(params)
    return summary, read_manifest(f"s3://{bucket}/clips"), fs


def _samples(fs, manifest: dict) -> dict[str, dict]:
    """Clip id -> {extension: bytes, "meta": its JSON} of every committed tar."""
    samples: dict[str, dict] = {}
    for entry in manifest["files"]:
        if not entry["path"].endswith(".tar"):
            continue
        data = fs.cat_file(join(manifest["uri"], entry["path"]).removeprefix("s3://"))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                key, ext = member.name.split(".", 1)
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return {
        orjson.loads(s["json"])["id"]: {**s, "meta": orjson.loads(s["json"])}
        for s in samples.values()
    }


def _by_video(samples: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for sample in samples.values():
        name = sample["meta"]["video_uri"].rsplit("/", 1)[-1].split(".")[0]
        out.setdefault(name, []).append(sample)
    return {k: sorted(v, key=lambda s: s["meta"]["start"]) for k, v in out.items()}


def test_every_video_and_clip_is_accounted_for(s3_run):
    summary, _, _ = s3_run
    report = summary["report"]
    assert report["rows_read"] == 4  # videos
    assert report["rows_quarantined"] == 1  # the truncated one
    assert report["unaccounted"] == 0
    assert report["rows_read"] + report["rows_added"] == (
        report["rows_written"] + report["rows_removed"] + report["rows_quarantined"]
    )
    motion = next(s for s in report["stages"] if s["stage"] == "MotionFilterStage")
    assert motion["removed"] == 1  # the still span


def test_clips_are_cut_at_the_scene_changes_and_the_still_span_is_removed(s3_run):
    _, manifest, fs = s3_run
    clips = _by_video(_samples(fs, manifest))
    assert set(clips) == {"cuts", "small", "vp9"}
    cuts = [(c["meta"]["start"], c["meta"]["end"]) for c in clips["cuts"]]
    # Scenes 0 and 1 end at the cuts (within 0.5 s); scene 2, still, is gone; scene 3
    # starts after the dissolve.
    assert len(cuts) == 3
    for (_, end), cut in zip(cuts[:2], CUTS, strict=True):
        assert abs(end - cut / FPS) <= 0.5
    assert abs(cuts[1][0] - CUTS[0] / FPS) <= 0.5
    assert 9.0 <= cuts[2][0] <= 10.0
    assert len(clips["small"]) == len(clips["vp9"]) == 2


def test_every_kept_clip_decodes_with_its_recorded_duration(s3_run):
    _, manifest, fs = s3_run
    for clip_id, sample in _samples(fs, manifest).items():
        meta = sample["meta"]
        with av.open(io.BytesIO(sample["mp4"])) as container:
            frames = sum(1 for _ in container.decode(video=0))
            stream = container.streams.video[0]
            size = (stream.codec_context.width, stream.codec_context.height)
        assert frames == meta["end_frame"] - meta["start_frame"], clip_id
        assert abs(frames / FPS - (meta["end"] - meta["start"])) <= 1 / FPS
        assert size == (meta["width"], meta["height"])
        assert meta["codec"] == "h264"
        preview = Image.open(io.BytesIO(sample["webp"]))
        assert preview.format == "WEBP" and preview.n_frames >= 2
        assert meta["score_MotionFilterStage"] > 0.00098  # moving: above the motion threshold


def test_a_failing_or_slow_caption_leaves_the_caption_missing_and_the_clip_written(
    s3_run, caption_server
):
    _, manifest, fs = s3_run
    clips = _by_video(_samples(fs, manifest))
    for sample in clips["cuts"]:
        assert sample["txt"].decode() == CAPTION
        assert sample["meta"]["caption_error"] is None
    for sample in clips["small"]:
        assert "txt" not in sample
        assert "500" in sample["meta"]["caption_error"]
    for sample in clips["vp9"]:
        assert "txt" not in sample
        assert "timed out" in sample["meta"]["caption_error"]
    assert SLOW_SIZE in caption_server[1].sizes and FAILING_SIZE in caption_server[1].sizes


def test_the_truncated_video_is_quarantined_with_the_reason(s3_run):
    _, manifest, fs = s3_run
    (entry,) = manifest["quarantine"]
    table = pq.read_table(fs.open(join(manifest["uri"], entry["path"]).removeprefix("s3://")))
    (record,) = table.to_pylist()
    assert record["source"].endswith("broken.mp4")
    assert "FFmpeg" in record["reason"] or "truncated" in record["reason"]


def test_embeddings_are_written_apart_one_unit_vector_per_clip(s3_run):
    _, manifest, fs = s3_run
    parts = [e["path"] for e in manifest["files"] if e.get("side") == "embeddings"]
    assert parts
    ids = set()
    for path in parts:
        table = pq.read_table(fs.open(join(manifest["uri"], path).removeprefix("s3://")))
        for row in table.to_pylist():
            assert abs(sum(x * x for x in row["embedding"]) - 1.0) < 1e-4
            ids.add(row["id"])
    assert ids == set(_samples(fs, manifest))
    for sample in _samples(fs, manifest).values():
        assert "embedding" not in sample["meta"] and "frame_embeddings" not in sample["meta"]


def test_fixed_split_nemo_layout_dedup_of_a_copy_and_resume(tmp_path, ray_cluster):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages" / "image"))
    from tiny_models import tiny_clip

    raw = tmp_path / "raw"
    original = write_video(raw / "a.mp4", [Span(5, 9)], FPS, (160, 120))
    (raw / "b.mp4").write_bytes(original.read_bytes())  # a byte copy: the same clips
    params = VideoParams(
        input=str(raw),
        output=str(tmp_path / "out"),
        split="fixed",
        clip_len=2.0,
        min_clip=1.0,
        clip_model=tiny_clip(tmp_path / "clip"),
        eps=1e-4,
        layout="nemo",
        previews=True,
    )
    summary = run_video(params)

    report = summary["report"]
    assert report["rows_read"] == 2 and report["rows_added"] == 4  # 3 clips per video
    assert report["duplicates_removed"] == 3 and report["rows_written"] == 3
    manifest = read_manifest(str(tmp_path / "out"))
    root = Path(manifest["uri"])
    ids = [p.stem for p in (root / "clips").glob("*.mp4")]
    assert len(ids) == 3
    for clip_id in ids:
        meta = json.loads((root / "metas" / "v0" / f"{clip_id}.json").read_text())
        assert meta["clip_uuid"] == clip_id and len(meta["span"]) == 2
        assert (root / "previews" / f"{clip_id}.webp").exists()
    assert list(root.glob("clip_embd_parquet/*.parquet"))
    again = run_video(params)
    assert again.get("already_committed")


def test_videos_in_webdataset_tars_and_parquet_rows_by_uri(tmp_path, ray_cluster):
    import pyarrow as pa

    raw = tmp_path / "raw"
    first = write_video(raw / "a.mp4", [Span(2, 10), Span(2, 11)], FPS, (160, 120))
    second = write_video(raw / "b.mp4", [Span(3, 12)], FPS, (160, 120))
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for key, path in (("s1", first), ("s2", second)):
            for name, data in ((f"{key}.mp4", path.read_bytes()), (f"{key}.txt", b"x")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    common = {"split": "fixed", "clip_len": 2.0, "min_clip": 1.0, "previews": False}
    from_tar = run_video(
        VideoParams(input=str(tmp_path / "00000.tar"), output=str(tmp_path / "o1"), **common)
    )
    assert from_tar["report"]["rows_read"] == 2 and from_tar["report"]["rows_written"] == 4
    table = pq.read_table(next((tmp_path / "o1").glob("v-*/part-*.parquet")))
    assert len(set(table.column("id").to_pylist())) == 4  # ids differ between samples

    listed = tmp_path / "videos.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "video_uri": [str(first), str(second)]}), listed)
    from_rows = run_video(VideoParams(input=str(listed), output=str(tmp_path / "o2"), **common))
    assert from_rows["report"]["rows_read"] == 2 and from_rows["report"]["rows_written"] == 4
