"""Removed-row samples in the markdown and HTML run reports, for every modality: a text
excerpt, an image thumbnail (HTML) or its size (markdown), a clip's duration and path, the
row a dedup step kept instead."""

from __future__ import annotations

import io
from html.parser import HTMLParser

import pyarrow as pa
from PIL import Image

from flows.reports.html import html_report, score_histograms
from flows.reports.tables import markdown_report
from flows.runtime.engine import RunReport, StageMetrics
from stages.io.commit import VersionWriter
from stages.samples import describe_rows


class _Tags(HTMLParser):
    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _jpeg(size=(300, 150)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "blue").save(buffer, format="JPEG")
    return buffer.getvalue()


def _report(name: str, sample: list[dict]) -> RunReport:
    report = RunReport(shards_total=1, rows_read=10, rows_written=8)
    m = StageMetrics(name, rows_in=10, rows_out=8, seconds=0.1, shards=1)
    m.removed_sample = sample
    report.stages[name] = m
    return report


def test_html_report_shows_an_image_sample_as_an_inline_thumbnail_and_no_raw_bytes(monkeypatch):
    monkeypatch.delenv("RAY_DASHBOARD_URL", raising=False)
    data = _jpeg()
    sample = describe_rows(pa.table({"id": ["img-1"], "jpg": [data], "caption": ["a <b>"]}))

    page = html_report("curate-image", _report("AestheticFilter", sample), {}, "/out/v1")
    parsed = _Tags(page)

    images = [a for t, a in parsed.tags if t == "img"]
    assert len(images) == 1
    assert images[0]["src"] == sample[0]["thumbnail"]
    assert images[0]["src"].startswith("data:image/jpeg;base64,")
    assert images[0]["alt"] == "image 300x150"
    text = "".join(parsed.text)
    assert "What each stage removed (samples)" in text
    assert "img-1" in text and "image 300x150" in text and "a <b>" in text
    assert "<b>" not in page  # the caption is escaped
    assert data.decode("latin-1") not in page and repr(data)[2:40] not in page


def test_html_report_shows_only_data_uri_thumbnails():
    sample = [{"id": "x", "thumbnail": "https://tracker.example/pixel.gif", "width": 1}]
    page = html_report("t", _report("ImageFilter", sample), {}, "/out/v1")
    assert "<img" not in page and "tracker.example" not in page


def test_html_report_says_why_an_image_could_not_be_shown():
    sample = describe_rows(pa.table({"id": ["broken"], "png": [b"\x89PNG garbage"]}))
    page = html_report("t", _report("ImageFilter", sample), {}, "/out/v1")
    assert "<img" not in page
    assert "undecodable image (" in "".join(_Tags(page).text)


def test_markdown_report_shows_the_duration_and_path_of_audio_samples():
    rows = pa.table(
        {
            "id": ["utt-1"],
            "audio_filepath": ["s3://speech/utt_1.flac"],
            "duration": [3.2],
            "text": ["hello *there*"],
        }
    )
    report = _report("DurationFilter", describe_rows(rows))

    markdown = markdown_report("curate-audio", report, {}, "/out/v1")

    assert "## What each stage removed (samples)" in markdown
    [line] = [ln for ln in markdown.splitlines() if "utt-1" in ln]
    assert "duration 3.2 s, path `s3://speech/utt_1.flac`" in line
    assert "hello \\*there\\*" in line  # markdown in a transcript is shown, not rendered


def test_markdown_report_shows_an_image_sample_by_its_size_and_a_clip_by_its_times():
    image = describe_rows(pa.table({"id": ["i"], "jpg": [_jpeg((64, 48))]}))
    clip = describe_rows(
        pa.table({"id": ["c"], "video_uri": ["v.mp4"], "start": [1.0], "end": [4.25]})
    )
    report = _report("ImageFilter", image)
    report.stages["MotionFilter"] = StageMetrics("MotionFilter", rows_in=8, rows_out=7)
    report.stages["MotionFilter"].removed_sample = clip

    markdown = markdown_report("t", report, {}, "/out/v1")

    assert "- `i` image 64x48" in markdown
    assert "data:image" not in markdown
    assert "- `c` duration 3.25 s, clip 1-4.25 s, path `v.mp4`" in markdown


def test_both_reports_name_the_row_a_duplicate_was_removed_for():
    sample = [{"id": "d9", "duplicate_of": "d1", "similarity": 0.9712, "text": "same"}]
    report = _report("SemanticDedup", sample)

    markdown = markdown_report("t", report, {}, "/out/v1")
    page = html_report("t", report, {}, "/out/v1")

    assert "- `d9` (duplicate of `d1`, similarity 0.971) same" in markdown
    assert "(duplicate of <code>d1</code>, similarity 0.971)" in page


def test_what_a_stage_adds_to_its_samples_is_shown_as_key_and_value():
    sample = [{"id": "a", "length": 2, "language": "fr", "score": 0.123456, "blob": [1, 2]}]
    report = _report("LongOnly", sample)

    markdown = markdown_report("t", report, {}, "/out/v1")
    page = html_report("t", report, {}, "/out/v1")

    assert "- `a` length: 2, language: fr, score: 0.1235" in markdown
    assert "length: 2, language: fr, score: 0.1235" in page
    assert "blob" not in markdown and "blob" not in page


def test_score_histograms_read_only_the_scores_of_an_image_version(tmp_path):
    writer = VersionWriter(str(tmp_path / "out"), "v1")
    table = pa.table(
        {"id": ["a", "b"], "jpg": [b"\xff\xd8 not decoded", b"\xff\xd8"], "score_clip": [0.2, 0.8]}
    )
    files = [writer.write_part("s0", table)]
    tar = tmp_path / "out" / "v1" / "part-s0-1.tar"
    tar.write_bytes(b"a WebDataset shard, not Parquet")
    files.append({"path": "part-s0-1.tar", "rows": 2})
    writer.commit_shard("s0", files, {})

    hist = score_histograms(writer.uri, bins=2)

    assert list(hist) == ["score_clip"]
    assert hist["score_clip"]["counts"] == [1, 1]
