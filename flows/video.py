"""`curate_video`: the video curation flow.

    read videos (by URI) -> probe -> split into clips (TransNetV2 or fixed stride) ->
    transcode -> duration, size, blank and motion filters [-> CLIP embedding, aesthetic]
    [-> captions] -> previews -> semantic dedup -> WebDataset, Parquet or NeMo's layout

Without any model the flow still splits, cuts, checks and filters; a CLIP folder adds
embeddings (written apart), the aesthetic filter and semantic dedup; an OpenAI-compatible
endpoint adds captions. This file declares the parameters and stages; the steps are the
flow kit's (`flows/runtime/builder.py`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flows.runtime.builder import FlowSpec, build_flow, run_flow
from flows.runtime.inputs import media_input, media_reader
from flows.runtime.params import MediaParams
from flows.runtime.storage import storage_options
from flows.steps.dedup import Dedup
from stages.base import DropColumns, FilterChain, Stage
from stages.io.formats.media import VIDEO
from stages.io.read import ShardReader

NEMO_PRESET = {"min_clip": 2.0, "crop_s": 0.5, "aesthetic_threshold": 0.5}


class VideoParams(MediaParams):
    """Parameters of the video curation flow (the Prefect UI renders them as a form)."""

    input: str = Field(
        description="Video files (mp4, mov, mkv, webm, avi; a file, folder or glob), "
        "WebDataset tars of videos, or Parquet with a video_uri column; local or s3://.",
        examples=["s3://raw/videos/", "videos/"],
    )
    shard_size_mb: float = Field(
        0.001, gt=0, description="Videos per shard by size; the default: one video a shard."
    )
    split: Literal["scene", "fixed"] = Field(
        "scene", description="scene: cuts found by TransNetV2; fixed: clips of --clip-len."
    )
    threshold: float = Field(0.4, gt=0, lt=1, description="scene: transition probability.")
    min_clip: float = Field(1.0, ge=0, description="Shortest clip kept, in seconds.")
    max_clip: float = Field(10.0, gt=0, description="scene: longer scenes are cut.")
    max_length_mode: Literal["stride", "truncate"] = Field(
        "stride", description="scene: cut a long scene into pieces, or keep its start."
    )
    crop_s: float | None = Field(
        None, ge=0, description="scene: trim this much at both ends (NeMo: 0.5)."
    )
    clip_len: float = Field(10.0, gt=0, description="fixed: clip length in seconds.")
    clip_stride: float | None = Field(None, gt=0, description="fixed: default --clip-len.")
    limit_clips: int = Field(0, ge=0, description="Most clips per video (0: no limit).")
    encoder: str = Field("libx264", description="libx264, libvpx-vp9, libsvtav1, h264_nvenc.")
    target_height: int | None = Field(None, ge=16, description="Scale clips to this height.")
    target_fps: float | None = Field(None, gt=0, description="Resample clips to this rate.")
    keep_audio: bool = Field(False, description="Keep the clips' audio (AAC / Opus).")
    max_aspect_ratio: float = Field(3.0, ge=1.0, description="Long side / short side.")
    min_height: int = Field(0, ge=0, description="Remove clips less tall than this.")
    max_blank_fraction: float = Field(0.5, ge=0, le=1, description="Blank frames' share.")
    motion: bool = Field(True, description="Remove static clips (NeMo's motion filter).")
    global_mean_threshold: float = Field(0.00098, ge=0, description="motion: mean flow.")
    per_patch_min_256_threshold: float = Field(1e-6, ge=0, description="motion: patch min.")
    clip_model: str | None = Field(
        None,
        description="A local Hugging Face CLIP folder: clip embeddings (mean of frames), "
        "the aesthetic filter and semantic dedup.",
    )
    embedding_model: str | None = Field(
        None, description="A TorchScript video model (.pt) to embed clips instead of CLIP."
    )
    aesthetic_model: str | None = Field(None, description="The LAION aesthetic head file.")
    aesthetic_threshold: float = Field(3.5, description="Keep aesthetic_score >= this.")
    aesthetic_reduction: Literal["min", "mean"] = Field("min", description="Over frames.")
    captions: str | None = Field(
        None, description="OpenAI-compatible endpoint (vLLM), e.g. http://127.0.0.1:8000/v1."
    )
    caption_model: str = Field("Qwen/Qwen2.5-VL-7B-Instruct", description="Served model.")
    caption_prompt: Literal["default", "av", "av-surveillance"] = Field("default")
    caption_timeout: float = Field(120.0, gt=0, description="Seconds per caption request.")
    previews: bool = Field(True, description="An animated WebP preview per clip.")
    preset: Literal["default", "nemo"] = Field(
        "default",
        description=f"nemo: NeMo Curator's defaults where they differ ({NEMO_PRESET}).",
    )
    dedup: Literal["auto", "semantic", "none"] = Field(
        "auto",
        description="semantic: SemDeDup on the clip embeddings (auto: when there are any).",
        json_schema_extra={"cli_flags": {"--no-dedup": "none"}},
    )
    eps: float = Field(0.01, gt=0.0, lt=1.0, description="semantic: cosine >= 1 - eps.")
    layout: Literal["curate", "nemo"] = Field(
        "curate",
        description="nemo: NeMo Curator's layout (clips/<id>.mp4, metas/v0/<id>.json, "
        "embeddings Parquet) instead of WebDataset or Parquet shards.",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data):
        if isinstance(data, dict) and data.get("preset") == "nemo":
            data = {**NEMO_PRESET, **data}
        return data

    @model_validator(mode="after")
    def _models(self) -> VideoParams:
        if self.aesthetic_model and not self.clip_model:
            raise ValueError("aesthetic_model needs clip_model (a local CLIP folder)")
        if self.dedup == "semantic" and not (self.clip_model or self.embedding_model):
            raise ValueError("dedup='semantic' needs clip_model or embedding_model")
        if self.min_clip > (self.clip_len if self.split == "fixed" else self.max_clip):
            raise ValueError(f"min_clip={self.min_clip} is above the longest clip")
        return self


def build_stages(params: VideoParams) -> list[Stage]:
    """Cheapest first: probing, splitting and cutting, then the filters that need no
    model, before any model sees a frame."""
    from stages.video import filters as clip
    from stages.video.motion import MotionFilterStage
    from stages.video.preview import PreviewStage
    from stages.video.probe import VideoProbe
    from stages.video.transcode import ClipTranscodingStage

    p, options = params, storage_options()
    filters = [
        clip.ClipResolutionFilter(min_height=p.min_height),
        clip.ClipAspectRatioFilter(max_ratio=p.max_aspect_ratio),
        clip.BlankClipFilter(max_blank_fraction=p.max_blank_fraction),
    ]
    motion = {"global_mean_threshold": p.global_mean_threshold}
    motion["per_patch_min_256_threshold"] = p.per_patch_min_256_threshold
    filters += [MotionFilterStage(**motion)] if p.motion else []
    cut = {"target_height": p.target_height, "target_fps": p.target_fps}
    cut |= {"keep_audio": p.keep_audio, "storage_options": options}
    stages: list[Stage] = [
        VideoProbe(storage_options=options),
        _splitter(p, options),
        ClipTranscodingStage(encoder=p.encoder, **cut),
        clip.ClipValidator(),
        FilterChain(p.scored(filters)),
        *_model_stages(p),
    ]
    return stages + ([PreviewStage()] if p.previews else [])


def _splitter(p: VideoParams, options: dict | None) -> Stage:
    from stages.video.split import FixedStrideExtractorStage, TransNetV2ClipExtractionStage

    limit = p.limit_clips or -1
    if p.split == "fixed":
        return FixedStrideExtractorStage(p.clip_len, p.clip_stride, p.min_clip, limit)
    return TransNetV2ClipExtractionStage(
        threshold=p.threshold,
        min_length_s=p.min_clip or None,
        max_length_s=p.max_clip,
        max_length_mode=p.max_length_mode,
        crop_s=p.crop_s,
        limit_clips=limit,
        gpus=p.gpus,
        storage_options=options,
    )


def _model_stages(p: VideoParams) -> list[Stage]:
    from stages.video.clip import FRAME_EMBEDDINGS, ClipAestheticFilterStage, VideoEmbeddingStage

    stages: list[Stage] = []
    batch = {"model_inference_batch_size": p.model_inference_batch_size}
    if model := p.embedding_model or p.clip_model:
        stages.append(VideoEmbeddingStage(model, gpus=p.gpus, **batch))
    if p.aesthetic_model:
        aesthetic = {"score_threshold": p.aesthetic_threshold, "clip_model": p.clip_model}
        aesthetic |= {"reduction": p.aesthetic_reduction, "num_gpus_per_worker": p.gpus}
        stages.append(ClipAestheticFilterStage(p.aesthetic_model, **aesthetic, **batch))
    if model and not p.embedding_model:
        stages.append(DropColumns([FRAME_EMBEDDINGS]))  # the aesthetic filter's input
    if p.captions:
        from stages.video.captions import CaptionGenerationStage

        ask = {"model": p.caption_model, "prompt_variant": p.caption_prompt}
        stages.append(CaptionGenerationStage(p.captions, timeout_s=p.caption_timeout, **ask))
    return p.scored(stages)


def dedup_step(params: VideoParams) -> Dedup | None:
    embedded = params.clip_model or params.embedding_model
    if params.dedup == "none" or (params.dedup == "auto" and not embedded):
        return None
    return Dedup(
        "semantic", embedding_column="embedding", eps=params.eps, partitions=params.partitions
    )


def input_format(params: VideoParams) -> str | None:
    return media_input(params.input, params.input_format, VIDEO)[0]


def reader(params: VideoParams) -> ShardReader:
    return media_reader(params, "video_uri", VIDEO, max_inline_mb=0)


def writer(params: VideoParams):
    from stages.io.writers import EmbeddingsApart, NemoClipsWriter, dataset_writer

    if params.layout == "nemo":
        return NemoClipsWriter()
    files = dataset_writer(params.output_format)
    return EmbeddingsApart(files) if (params.clip_model or params.embedding_model) else files


VIDEO_FLOW = FlowSpec(
    "video",
    VideoParams,
    "Curate videos: probe, split into clips, cut, filter, embed, caption, dedup.",
    reader=reader,
    stages=build_stages,
    dedup=dedup_step,
    writer=writer,
    input_format=input_format,
    histograms=lambda params: params.keep_scores,
    asset="Curated video clips (WebDataset) written by curate-video",
    cron="0 5 * * *",
)

curate_video = build_flow(VIDEO_FLOW, __name__)


def run_video(params: VideoParams) -> dict:
    """The video flow's steps without Prefect; returns the run summary."""
    return run_flow(VIDEO_FLOW, params)
