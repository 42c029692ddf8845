"""`curate audio` end to end against the S3 test endpoint: a NeMo manifest of generated
audio (espeak-ng speech, a tone, silence, white noise, a clipped signal, a corrupt file,
an mp3 and an ogg; one entry with a wrong duration, one whose file is missing) goes in
through the Prefect flow with a tiny Whisper. Durations come out within 10 ms of the
truth, each bad entry is quarantined or removed with the right reason, the counts add up,
and the output FLAC decodes at 16 kHz mono, listed by a NeMo tarred-audio manifest."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from audio import (
    RATE,
    clipped,
    corrupt,
    silence,
    speech_or_tone,
    tone,
    white_noise,
    with_pauses,
    write_flac,
    write_manifest,
    write_mp3,
    write_ogg,
    write_wav,
)

from flows.audio import AudioParams, curate_audio, run_audio
from stages.io.commit import read_manifest
from stages.io.fs import join

SENTENCE = "The quick brown fox jumps over the lazy dog."


def _corpus(folder: Path) -> tuple[list[dict], dict[str, float]]:
    """Manifest entries (relative paths) and each kept file's true duration."""
    folder.mkdir(parents=True, exist_ok=True)
    spoken = speech_or_tone(SENTENCE)
    signals = {
        "speech.wav": (write_wav, spoken),
        "tone.flac": (write_flac, tone(2.5, 440)),
        "quiet.wav": (write_wav, silence(2.0)),
        "noise.wav": (write_wav, white_noise(2.0)),
        "loud.wav": (write_wav, clipped(2.0)),
        "talk.mp3": (write_mp3, speech_or_tone("Hello there, how are you today?")),
        "talk.ogg": (write_ogg, speech_or_tone("Good morning, this is a short test.")),
        "broken.wav": (write_wav, tone(2.0, 300)),
    }
    truth = {}
    for name, (write, samples) in signals.items():
        write(folder / name, samples)
        truth[name] = len(samples) / RATE
    corrupt(folder / "broken.wav")
    entries = [{"audio_filepath": n, "text": SENTENCE, "duration": truth[n]} for n in signals]
    entries[0]["duration"] = 1.0  # wrong: the file lasts longer
    entries.append({"audio_filepath": "missing.wav", "text": "gone", "duration": 1.0})
    return entries, truth


@pytest.fixture(scope="module")
def s3_run(s3_endpoint, ray_cluster, prefect_harness, tmp_path_factory):
    import s3fs

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages" / "audio"))
    from tiny_whisper import tiny_openai_whisper

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    bucket = "audio-flow"
    fs.mkdir(bucket)
    local = tmp_path_factory.mktemp("speech")
    entries, truth = _corpus(local / "raw")
    write_manifest(local / "raw" / "manifest.jsonl", entries)
    for path in (local / "raw").iterdir():
        fs.put_file(str(path), f"{bucket}/raw/{path.name}")
    params = AudioParams(
        input=f"s3://{bucket}/raw/manifest.jsonl",
        output=f"s3://{bucket}/speech",
        asr_model=tiny_openai_whisper(local / "tiny.pt"),
        hallucination=False,  # a random model's words are not a test of the checks
    )
    summary = curate_audio(params)
    return summary, read_manifest(f"s3://{bucket}/speech"), fs, truth


def _read(fs, manifest: dict, path: str) -> bytes:
    return fs.cat_file(join(manifest["uri"], path).removeprefix("s3://"))


def _kept(fs, manifest: dict) -> dict[str, dict]:
    """audio_filepath_raw -> the sample's members, from every tar."""
    out = {}
    for entry in manifest["files"]:
        if entry["path"].endswith(".tar"):
            samples: dict[str, dict] = {}
            with tarfile.open(fileobj=io.BytesIO(_read(fs, manifest, entry["path"]))) as tar:
                for member in tar:
                    key, ext = member.name.split(".", 1)
                    samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
            for key, sample in samples.items():
                meta = json.loads(sample["json"])
                out[meta["audio_filepath_raw"]] = {**sample, "meta": meta, "key": key}
    return out


def test_every_entry_is_written_removed_or_quarantined(s3_run):
    summary, _, _, _ = s3_run
    report = summary["report"]
    assert report["rows_read"] == 9
    assert report["rows_quarantined"] == 2  # the corrupt file and the missing one
    assert report["rows_removed"] == 2  # the silent and the clipped ones
    assert report["rows_written"] == 5
    assert report["unaccounted"] == 0
    removed = {s["stage"]: s["removed"] for s in report["stages"]}
    assert removed["SilenceFilter"] == 1 and removed["ClippingFilter"] == 1


def test_durations_are_measured_within_10_ms_and_a_wrong_one_is_reported(s3_run):
    _, manifest, fs, truth = s3_run
    kept = _kept(fs, manifest)
    assert set(kept) == {"speech.wav", "tone.flac", "noise.wav", "talk.mp3", "talk.ogg"}
    for name, sample in kept.items():
        assert abs(sample["meta"]["duration"] - truth[name]) <= 0.010, name
    speech = kept["speech.wav"]["meta"]
    assert speech["duration_manifest"] == 1.0
    assert speech["duration_error"] == pytest.approx(truth["speech.wav"] - 1.0, abs=0.010)


def test_output_flac_is_16_khz_mono_with_its_transcript_and_asr_fields(s3_run):
    _, manifest, fs, _ = s3_run
    for name, sample in _kept(fs, manifest).items():
        samples, rate = sf.read(io.BytesIO(sample["flac"]), dtype="float32", always_2d=True)
        assert rate == 16000 and samples.shape[1] == 1, name
        assert abs(len(samples) / rate - sample["meta"]["duration"]) <= 0.010
        assert sample["txt"].decode() == SENTENCE
        assert isinstance(sample["meta"]["pred_text"], str)
        assert sample["meta"]["wer_pct"] >= 0


def test_the_quarantine_names_the_missing_and_the_corrupt_file(s3_run):
    _, manifest, fs, _ = s3_run
    reasons = []
    for entry in manifest["quarantine"]:
        table = pq.read_table(io.BytesIO(_read(fs, manifest, entry["path"])))
        reasons += table.column("reason").to_pylist()
    assert len(reasons) == 2
    assert any("missing.wav" in r and "not found" in r for r in reasons)
    assert any("broken.wav" in r or "undecodable" in r for r in reasons)


def test_a_nemo_tarred_manifest_lists_every_sample_by_its_member_name(s3_run):
    _, manifest, fs, _ = s3_run
    kept = _kept(fs, manifest)
    lines = []
    for entry in manifest["files"]:
        if entry["path"].endswith(".manifest.jsonl"):
            lines += [json.loads(x) for x in _read(fs, manifest, entry["path"]).splitlines()]
    assert sorted(line["audio_filepath"] for line in lines) == sorted(
        f"{s['key']}.flac" for s in kept.values()
    )
    first = lines[0]
    assert list(first)[:3] == ["audio_filepath", "duration", "text"]


def _audible(samples: np.ndarray, start: float, end: float) -> tuple[float, float]:
    """The span from the first to the last audible sample between `start` and `end`
    (espeak-ng pads its speech with near-silence)."""
    part = samples[int(start * RATE) : int(end * RATE)]
    loud = np.flatnonzero(np.abs(part) > 0.01)
    return start + loud[0] / RATE, start + (loud[-1] + 1) / RATE


def test_vad_cuts_a_recording_into_its_speech_segments_and_files_get_a_manifest(
    tmp_path, ray_cluster
):
    samples, spans = with_pauses(
        ["Turn left at the next corner.", 1.5, "Then walk straight on for a while.", 1.5]
    )
    raw = tmp_path / "raw"
    raw.mkdir()
    write_wav(raw / "walk.wav", samples)
    (raw / "walk.txt").write_text("turn left then walk")
    params = AudioParams(
        input=str(raw),
        output=str(tmp_path / "out"),
        vad=True,
        vad_min_duration=0.5,
        speech_pad_ms=0,
        output_format="manifest",
    )
    summary = run_audio(params)

    report = summary["report"]
    assert report["rows_read"] == 1 and report["unaccounted"] == 0
    assert report["rows_written"] == len(spans) == 2
    version = Path(read_manifest(str(tmp_path / "out"))["uri"])
    lines = [json.loads(x) for x in next(version.glob("part-*.jsonl")).read_text().splitlines()]
    spoken = [_audible(samples, start, end) for start, end in spans]
    ordered = sorted(lines, key=lambda x: x["segment_start"])
    for line, (start, end) in zip(ordered, spoken, strict=True):
        assert abs(line["segment_start"] - start) <= 0.2
        assert abs(line["segment_end"] - end) <= 0.2
        audio, rate = sf.read(line["audio_filepath"])
        assert rate == 16000 and abs(len(audio) / rate - line["duration"]) <= 0.010
    assert np.isfinite([line["duration"] for line in lines]).all()


def test_webdataset_tars_of_audio_keep_their_transcripts(tmp_path, ray_cluster):
    from audio import encode

    samples = {"a": tone(1.5, 300, rate=44100), "b": speech_or_tone("One more sentence.")}
    rates = {"a": 44100, "b": RATE}
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for key, signal in samples.items():
            kind = "mp3" if key == "a" else "flac"
            members = {kind: encode(kind, signal, rates[key]), "txt": f"words of {key}".encode()}
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    summary = run_audio(AudioParams(input=str(tmp_path / "00000.tar"), output=str(tmp_path / "o")))

    assert summary["report"]["rows_written"] == 2
    version = Path(read_manifest(str(tmp_path / "o"))["uri"])
    with tarfile.open(next(version.glob("part-*.tar"))) as tar:
        names = sorted(tar.getnames())
        texts = {n: tar.extractfile(n).read().decode() for n in names if n.endswith(".txt")}
    assert [n.rsplit(".", 1)[1] for n in names] == ["flac", "json", "txt"] * 2
    assert sorted(texts.values()) == ["words of a", "words of b"]
