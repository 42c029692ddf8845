"""`curate_audio`: the speech curation flow.

    read NeMo manifests / audio folders / WebDataset tars -> decode, measure, resample ->
    [VAD segments] -> duration, silence, clipping [SNR, sample rate, bandwidth] checks ->
    [Whisper ASR -> WER/CER -> max WER, hallucination, language] -> FLAC 16 kHz mono ->
    WebDataset + Parquet + NeMo manifests

Without a model the flow still measures every file (the true duration replaces a wrong
manifest value, which is kept as `duration_manifest`), quarantines what cannot be read and
removes silent, clipped and out-of-bounds audio. This file declares the parameters and
stages; the steps are the flow kit's (`flows/runtime/builder.py`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flows.runtime.builder import FlowSpec, build_flow, run_flow
from flows.runtime.inputs import media_input
from flows.runtime.params import MediaParams
from flows.runtime.storage import storage_options
from stages.base import FilterChain, Stage
from stages.io.formats.media import AUDIO
from stages.io.read import ShardReader

MANIFEST_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst")


class AudioParams(MediaParams):
    """Parameters of the speech curation flow (the Prefect UI renders them as a form)."""

    input: str = Field(
        description="A NeMo manifest (JSONL with audio_filepath, text, duration; relative "
        "paths from its folder), a folder of audio files (wav, flac, mp3, ogg, opus, m4a; "
        "a .txt beside one is its transcript) or WebDataset tars; local or s3://.",
        examples=["s3://raw/speech/manifest.jsonl", "recordings/"],
    )
    text_field: str = Field("text", description="Manifest field holding the transcript.")
    sample_rate: int = Field(16000, ge=8000, description="Resample to this rate (Hz).")
    min_duration: float | None = Field(0.5, ge=0, description="Remove shorter (seconds).")
    max_duration: float | None = Field(40.0, gt=0, description="Remove longer (seconds).")
    max_silence: float = Field(0.8, ge=0, le=1, description="Most silent frames' share.")
    max_clipped: float = Field(0.01, ge=0, le=1, description="Most clipped samples' share.")
    min_snr_db: float | None = Field(None, description="Remove a lower estimated SNR.")
    min_sample_rate: int | None = Field(None, ge=1, description="Remove lower source rates.")
    min_bandwidth_hz: float | None = Field(None, ge=0, description="Remove narrower audio.")
    vad: bool = Field(False, description="Cut recordings into speech segments (Silero VAD).")
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="VAD speech probability.")
    vad_min_duration: float = Field(2.0, ge=0, description="VAD: shortest segment (s).")
    vad_max_duration: float = Field(30.0, gt=0, description="VAD: longer ones are split.")
    speech_pad_ms: int = Field(300, ge=0, description="VAD: padding around speech.")
    asr_model: str | None = Field(
        None,
        description="Whisper: an openai-whisper .pt checkpoint or a transformers Whisper "
        "folder; adds pred_text, and wer_pct / cer_pct where there is a reference.",
    )
    language: str | None = Field(None, description="ASR language (default: detected).")
    max_wer: float | None = Field(None, ge=0, description="Keep wer_pct <= this (percent).")
    max_cer: float | None = Field(None, ge=0, description="Keep cer_pct <= this (percent).")
    hallucination: bool = Field(True, description="Remove Whisper hallucinations (NeMo's).")
    languages: list[str] | None = Field(
        None, description="Keep transcripts in these languages (ISO 639-1)."
    )
    output_format: Literal["webdataset", "parquet", "manifest"] = Field(
        "webdataset",
        description="webdataset: tars (KEY.flac, KEY.json, KEY.txt) with a Parquet and a "
        "NeMo tarred-audio manifest beside each; parquet; manifest: one .flac per row and "
        "a NeMo manifest pointing at them.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> AudioParams:
        if (self.max_wer is not None or self.max_cer is not None) and not self.asr_model:
            raise ValueError("max_wer / max_cer need asr_model (a Whisper checkpoint)")
        low, high = self.min_duration, self.max_duration
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_duration={low} is above max_duration={high}")
        return self


def build_stages(params: AudioParams) -> list[Stage]:
    """Decode once; cheap checks on the samples before any model hears them."""
    from stages.audio import filters as checks
    from stages.audio.decode import AudioDecoder
    from stages.audio.encode import AudioEncoder
    from stages.audio.transcripts import TranscriptsBeside

    p, options = params, storage_options()
    stages: list[Stage] = [AudioDecoder(target_sample_rate=p.sample_rate, storage_options=options)]
    reading = _reading(p)  # listed once: (format, Parquet rows)
    if reading[0] == "files":  # a folder of audio files: `.txt` transcripts beside
        stages.append(TranscriptsBeside(storage_options=options))
    if p.vad:
        from stages.audio.vad import VADSegmentationStage

        segments = {"min_duration_sec": p.vad_min_duration, "speech_pad_ms": p.speech_pad_ms}
        segments |= {"max_duration_sec": p.vad_max_duration, "threshold": p.vad_threshold}
        stages.append(VADSegmentationStage(**segments))
    filters = [
        checks.AudioDurationFilter(min_duration=p.min_duration, max_duration=p.max_duration),
        checks.SilenceFilter(max_silence_fraction=p.max_silence),
        checks.ClippingFilter(max_clipped_fraction=p.max_clipped),
    ]
    if p.min_snr_db is not None:
        filters.append(checks.SnrFilter(min_snr_db=p.min_snr_db))
    if p.min_sample_rate is not None:
        filters.append(checks.SampleRateFilter(min_sample_rate=p.min_sample_rate))
    if p.min_bandwidth_hz is not None:
        filters.append(checks.BandwidthFilter(min_bandwidth_hz=p.min_bandwidth_hz))
    stages.append(FilterChain(p.scored(filters)))
    if p.asr_model:
        stages += _asr_stages(p, reading)
    return stages + [AudioEncoder(format="flac", sample_rate=p.sample_rate)]


def _asr_stages(p: AudioParams, reading: tuple[str | None, bool]) -> list[Stage]:
    from stages.audio.asr import InferenceAsrWhisperStage
    from stages.audio.hallucination import WhisperHallucinationStage
    from stages.audio.language import TranscriptLanguageStage
    from stages.audio.preserve import PreserveByValueStage
    from stages.audio.wer import GetPairwiseWerStage

    language = p.language
    fmt, parquet = reading
    reference = "txt" if fmt is None and not parquet else "text"  # a tar's `.txt` member
    stages: list[Stage] = [
        InferenceAsrWhisperStage(p.asr_model, language=language, gpus=p.gpus),
        GetPairwiseWerStage(text_key=reference, language=language or "en"),
    ]
    filters: list = []
    if p.max_wer is not None:
        filters.append(PreserveByValueStage("wer_pct", p.max_wer, "le"))
    if p.max_cer is not None:
        filters.append(PreserveByValueStage("cer_pct", p.max_cer, "le"))
    if p.hallucination:
        filters.append(WhisperHallucinationStage(language_key="asr_language"))
    if p.languages:
        filters.append(TranscriptLanguageStage(languages=p.languages))
    return stages + ([FilterChain(p.scored(filters))] if filters else [])


def _reading(params: AudioParams) -> tuple[str | None, bool]:
    """(reader format, whether rows come from Parquet): "manifest" for a NeMo manifest,
    else as the media flows read their input."""
    name = params.input.split("?", 1)[0].lower()
    if params.input_format == "auto" and name.endswith(MANIFEST_SUFFIXES):
        return "manifest", False
    return media_input(params.input, params.input_format, AUDIO)


def input_format(params: AudioParams) -> str | None:
    return _reading(params)[0]


def reader(params: AudioParams) -> ShardReader:
    """Manifest rows by their audio's URI; files and tars with their bytes."""
    manifest = input_format(params) == "manifest"
    return ShardReader(
        text_field=params.text_field if manifest else None,
        id_field=params.id_field,
        storage_options=storage_options(),
        strict=params.strict,
        required_field=None if manifest else ";".join(("audio", *AUDIO)),
    )


def writer(params: AudioParams):
    from stages.io.writers import dataset_writer
    from stages.io.writers.speech import AudioFilesWriter, TarredManifest

    if params.output_format == "manifest":
        return AudioFilesWriter()
    if params.output_format == "parquet":
        return "parquet"
    return TarredManifest(dataset_writer("webdataset"))


AUDIO_FLOW = FlowSpec(
    "audio",
    AudioParams,
    "Curate speech: measure, check, segment, transcribe, score; WebDataset and manifests.",
    reader=reader,
    stages=build_stages,
    writer=writer,
    input_format=input_format,
    histograms=lambda params: params.keep_scores,
    asset="Curated speech (WebDataset + NeMo manifests) written by curate-audio",
    cron="0 6 * * *",
)

curate_audio = build_flow(AUDIO_FLOW, __name__)


def run_audio(params: AudioParams) -> dict:
    """The audio flow's steps without Prefect; returns the run summary."""
    return run_flow(AUDIO_FLOW, params)
