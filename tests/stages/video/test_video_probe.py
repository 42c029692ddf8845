"""VideoProbe on small videos made here with PyAV in every container the flow reads (mp4,
webm, mkv, mov, avi), given by URI or as bytes: the true duration, frames, rate, size and
codecs; and every video that cannot be used quarantined with a reason naming it."""

from __future__ import annotations

import re
from pathlib import Path

import av
import pyarrow as pa
import pytest
from videos import Span, truncated, write_video

from stages.video.probe import PROBED, VideoProbe

FPS = 24
# container: (file, spans, size, encoder, with audio); CODECS: what the probe should name
GOOD = {
    "mp4": ("h264.mp4", [Span(2.0, 0)], (320, 240), "libx264", True),
    "webm": ("vp9.webm", [Span(2.0, 1)], (320, 240), "libvpx-vp9", False),
    "mkv": ("av1.mkv", [Span(1.0, 2)], (160, 120), "libsvtav1", False),
    "mov": ("h264.mov", [Span(1.5, 3)], (320, 240), "libx264", False),
    "avi": ("mpeg4.avi", [Span(1.0, 4)], (320, 240), "mpeg4", False),
}
CODECS = {"mp4": "h264", "webm": "vp9", "mkv": "av1", "mov": "h264", "avi": "mpeg4"}


def _faststart(source: Path, target: Path) -> Path:
    """`source` remuxed with its index (moov) first, as web videos are."""
    with (
        av.open(str(source)) as src,
        av.open(str(target), "w", options={"movflags": "+faststart"}) as out,
    ):
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("probe")
    for name, spans, size, codec, audio in GOOD.values():
        write_video(folder / name, spans, FPS, size, codec, audio)
    whole = write_video(folder / "whole.mp4", [Span(2.0, 0)], FPS)
    truncated(whole, folder / "cut.mp4")  # the index (moov) comes last: lost
    truncated(_faststart(whole, folder / "fast.mp4"), folder / "cut-fast.mp4")
    (folder / "page.mp4").write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    return folder


def _rows(folder: Path, files: dict[str, str | None]) -> pa.Table:
    """Rows (id: file name) as the files reader makes them: `source` is the file's URI,
    `_order` the file's number and the row's; a row without a file names no video."""
    uris = [None if name is None else str(folder / name) for name in files.values()]
    return pa.table(
        {
            "id": list(files),
            "source": [uri or "videos.parquet" for uri in uris],
            "video_uri": pa.array(uris, pa.string()),
            "_order": [(1 << 32) | i for i in range(len(files))],
        }
    )


@pytest.fixture(scope="module")
def probed(folder) -> dict[str, dict]:
    good, bad = VideoProbe().check(_rows(folder, {kind: v[0] for kind, v in GOOD.items()}))
    assert bad.num_rows == 0
    return {row["id"]: row for row in good.to_pylist()}


@pytest.mark.parametrize("kind", GOOD)
def test_the_probe_finds_the_true_length_frames_rate_and_size(probed, kind):
    _, spans, (width, height), _, _ = GOOD[kind]
    seconds = sum(s.seconds for s in spans)
    facts = probed[kind]
    assert facts["video_frames"] == round(seconds * FPS)
    # webm and mkv count time in milliseconds
    assert facts["video_duration"] == pytest.approx(seconds, abs=0.002)
    assert facts["video_declared_duration"] == pytest.approx(seconds, abs=1 / FPS)
    assert facts["video_fps"] == FPS
    assert (facts["video_width"], facts["video_height"]) == (width, height)
    assert facts["video_bit_rate"] > 0


@pytest.mark.parametrize("kind", GOOD)
def test_the_probe_names_the_codec_and_the_audio(probed, kind):
    facts = probed[kind]
    assert facts["video_codec"] == CODECS[kind]
    assert facts["video_has_audio"] is GOOD[kind][4]
    assert facts["video_audio_codec"] == ("aac" if GOOD[kind][4] else None)


def test_the_probe_adds_its_columns_and_keeps_the_rows(folder):
    rows = _rows(folder, {"clip": "h264.mp4"})
    good, _ = VideoProbe().check(rows)
    assert good.column_names == rows.column_names + list(PROBED)
    assert good.schema.field("video_frames").type == pa.int64()
    assert good.select(rows.column_names).equals(rows)


# id: (file, what the reason says)
BAD = {
    "cut": ("cut.mp4", "not a video FFmpeg can read"),
    "cut-fast": ("cut-fast.mp4", "truncated: packets cover"),
    "missing": ("missing.mp4", "no such file"),
    "html": ("page.mp4", "not a video FFmpeg can read"),
    "none": (None, "no video: no 'video_uri' and no video bytes"),
}


@pytest.fixture(scope="module")
def quarantined(folder) -> tuple[pa.Table, pa.Table]:
    """The bad videos, with a good one among them."""
    files = {key: name for key, (name, _) in BAD.items()}
    return VideoProbe().check(_rows(folder, {"good": "h264.mp4", **files}))


def test_a_bad_video_does_not_spoil_the_good_one_in_its_batch(quarantined):
    good, bad = quarantined
    assert good["id"].to_pylist() == ["good"] and good["video_frames"].to_pylist() == [48]
    assert bad.num_rows == len(BAD)


@pytest.mark.parametrize("key", BAD)
def test_each_unusable_video_is_quarantined_with_the_reason(quarantined, key):
    reasons = [r for r in quarantined[1]["reason"].to_pylist() if f": id {key!r}: " in r]
    assert len(reasons) == 1 and BAD[key][1] in reasons[0]


def test_a_video_cut_short_after_its_index_says_how_much_is_left(quarantined):
    reason = quarantined[1]["reason"].to_pylist()[1]
    found = re.search(
        r"truncated: packets cover (\d\.\d\d) s of the 2.00 s the header declares$", reason
    )
    assert found and 0.5 < float(found[1]) < 0.9 * 2.0  # half the bytes: about half the time


def test_every_reason_starts_with_the_source_the_line_and_the_id(quarantined):
    bad = quarantined[1].to_pylist()
    assert [r["line"] for r in bad] == [1, 2, 3, 4, 5]
    for record, key in zip(bad, BAD, strict=True):
        source = record["source"]
        assert record["reason"].startswith(f"{source}: line {record['line']}: id {key!r}: ")
        assert source.endswith(BAD[key][0] or "videos.parquet")


def test_each_bad_video_counts_as_one_quarantined_row(quarantined):
    assert quarantined[1]["rows"].to_pylist() == [1] * len(BAD)


def test_video_bytes_from_a_webdataset_probe_like_the_file(folder, probed):
    data = (folder / "h264.mp4").read_bytes()
    rows = pa.table({"id": ["000000001"], "source": ["00000.tar"], "mp4": [data]})
    good, bad = VideoProbe().check(rows)
    assert bad.num_rows == 0
    assert {name: good[name][0].as_py() for name in PROBED} == {
        name: probed["mp4"][name] for name in PROBED
    }


def test_bad_video_bytes_are_quarantined_with_the_bytes_as_raw(folder):
    data = (folder / "cut.mp4").read_bytes()
    rows = pa.table({"id": ["000000007"], "source": ["00000.tar"], "mp4": [data]})
    good, bad = VideoProbe().check(rows)
    assert good.num_rows == 0
    assert bad["raw"].to_pylist() == [data]
    assert bad["reason"][0].as_py().startswith("00000.tar: line 0: id '000000007': not a video")


def test_a_uri_is_quarantined_without_its_bytes(quarantined):
    assert quarantined[1]["raw"].null_count == len(BAD)


def test_truncated_tolerance_must_be_a_share():
    with pytest.raises(ValueError, match="truncated_tolerance=1.5"):
        VideoProbe(truncated_tolerance=1.5)
