"""`curate_image`: the image curation flow.

    read tars / image folders / Parquet -> captions -> decode, validate, hash -> size
    filters [-> CLIP -> aesthetic, NSFW, caption filters] -> dedup -> WebDataset or Parquet

Without any model the flow still validates, filters and removes exact and near copies;
models add embeddings (written apart), scores and semantic dedup. This file declares the
parameters and stages; the steps are the flow kit's (`flows/runtime/builder.py`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flows.runtime.builder import FlowSpec, build_flow, run_flow
from flows.runtime.inputs import media_input, media_reader, require_media_column
from flows.runtime.params import MediaParams
from flows.steps.dedup import PHASH_THRESHOLD, Dedup, DedupSteps
from stages.base import FilterChain, Stage
from stages.io.formats.media import IMAGE
from stages.io.read import ShardReader
from stages.io.shards import Shard

NEMO_AESTHETIC_THRESHOLD = 0.5  # NeMo Curator's default: on a 1-10 scale it removes nothing


class ImageParams(MediaParams):
    """Parameters of the image curation flow (the Prefect UI renders them as a form)."""

    input: str = Field(
        description="WebDataset tars (a file, glob or brace range such as "
        "'s3://raw/laion/{00000..00099}.tar'), a folder of image files, or Parquet with an "
        "image bytes column; local or s3://, or the output folder of another curate flow.",
        examples=["s3://raw/laion/{00000..00099}.tar", "photos/"],
    )
    image_column: str = Field("image", description="Parquet input: the image bytes column.")
    caption_field: str = Field("caption", description="Caption column or .json field.")
    max_pixels: int = Field(89_478_485, ge=1, description="More pixels: quarantined unread.")
    min_side: int = Field(64, ge=0, description="Remove images whose shorter side is smaller.")
    max_aspect_ratio: float = Field(3.0, ge=1.0, description="Longest side / shortest.")
    min_bytes: int = Field(0, ge=0, description="Remove image files smaller than this.")
    max_bytes: int | None = Field(None, ge=1, description="Remove image files larger than this.")
    clip_model: str | None = Field(
        None,
        description="A local Hugging Face CLIP folder (e.g. clip-vit-large-patch14): adds "
        "embeddings, and enables the aesthetic, NSFW and caption filters and semantic dedup.",
    )
    aesthetic_model: str | None = Field(
        None,
        description="The LAION improved-aesthetic-predictor head (.safetensors or .pth) "
        "for the CLIP model's embeddings.",
    )
    aesthetic_threshold: float = Field(5.0, description="Keep aesthetic_score >= this.")
    nsfw_model: str | None = Field(
        None,
        description="'nudenet' (the detector bundled with the nudenet package, no CLIP "
        "needed), or the LAION CLIP NSFW head's weights file.",
    )
    nsfw_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Keep nsfw_score < this.")
    min_clip_score: float | None = Field(
        None,
        description="Keep captioned images whose CLIP image-caption similarity is at least "
        "this (needs --clip-model).",
    )
    preset: Literal["default", "nemo"] = Field(
        "default",
        description="nemo: NeMo Curator's defaults where they differ (aesthetic threshold "
        f"{NEMO_AESTHETIC_THRESHOLD}).",
    )
    dedup: Literal["phash", "exact", "semantic", "none"] = Field(
        "phash",
        description="phash: byte copies and near-copies (resized, recompressed, brightened) "
        "by 64-bit perceptual hash; exact: byte-identical files; semantic: phash, then "
        "SemDeDup on the CLIP embeddings of the images it kept; none.",
        json_schema_extra={"cli_flags": {"--no-dedup": "none"}},
    )
    phash: Literal["fast", "exact"] = Field(
        "fast",
        description="fast: a JPEG is decoded at a reduced scale for its perceptual hash (all "
        "its data still checked; the hash within 4 bits of imagehash's, at the bare decode "
        "rate); exact: imagehash.phash's value bit for bit, about 0.56x that rate.",
    )
    hamming_threshold: int = Field(
        PHASH_THRESHOLD, ge=0, le=32, description="phash: duplicates differ in <= this many bits."
    )
    eps: float = Field(0.01, gt=0.0, lt=1.0, description="semantic: cosine >= 1 - eps.")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data):
        if isinstance(data, dict) and data.get("preset") == "nemo":
            data = {"aesthetic_threshold": NEMO_AESTHETIC_THRESHOLD, **data}
        return data

    @model_validator(mode="after")
    def _models(self) -> ImageParams:
        needs_clip = {
            "aesthetic_model": self.aesthetic_model,
            "min_clip_score": self.min_clip_score,
            "dedup": "semantic" if self.dedup == "semantic" else None,
            "nsfw_model": self.nsfw_model if self.nsfw_model not in (None, "nudenet") else None,
        }
        for field, value in needs_clip.items():
            if value is not None and self.clip_model is None:
                raise ValueError(f"{field}={value!r} needs clip_model (a local CLIP folder)")
        return self


def build_stages(params: ImageParams) -> list[Stage]:
    """Cheapest first: decoding and the size filters before any model sees an image."""
    from stages.image.captions import ImageCaptions
    from stages.image.decode import ImageDecoder
    from stages.image.filters import (
        ImageAspectRatioFilter,
        ImageFileSizeFilter,
        ImageMinSideFilter,
    )

    filters = [
        ImageMinSideFilter(min_side=params.min_side),
        ImageAspectRatioFilter(max_ratio=params.max_aspect_ratio),
        ImageFileSizeFilter(min_bytes=params.min_bytes, max_bytes=params.max_bytes),
    ]
    stages: list[Stage] = [
        ImageCaptions(caption_field=params.caption_field),
        # One decode per image: the decoder also computes the perceptual hash.
        ImageDecoder(
            image_column=None if params.image_column == "image" else params.image_column,
            max_pixels=params.max_pixels,
            phash=True if params.phash == "exact" else "fast",
        ),
        FilterChain(params.scored(filters)),
    ]
    if params.clip_model:
        stages += _clip_stages(params)
    elif params.nsfw_model == "nudenet":
        stages += params.scored([_nudenet(params)])
    return stages


def _clip_stages(params: ImageParams) -> list[Stage]:
    from stages.image.clip import ImageEmbeddingStage, ImageTextSimilarityFilter

    batch = params.model_inference_batch_size
    stages: list[Stage] = [
        ImageEmbeddingStage(params.clip_model, model_inference_batch_size=batch, gpus=params.gpus)
    ]
    if params.aesthetic_model:
        from stages.image.aesthetic import ImageAestheticFilterStage

        stages.append(
            ImageAestheticFilterStage(
                model_dir=params.aesthetic_model, score_threshold=params.aesthetic_threshold
            )
        )
    if params.nsfw_model == "nudenet":
        stages.append(_nudenet(params))
    elif params.nsfw_model:
        from stages.image.nsfw import ImageNSFWFilterStage

        stages.append(
            ImageNSFWFilterStage(model_dir=params.nsfw_model, score_threshold=params.nsfw_threshold)
        )
    if params.min_clip_score is not None:
        stages.append(
            ImageTextSimilarityFilter(model_dir=params.clip_model, min_score=params.min_clip_score)
        )
    return params.scored(stages)


def _nudenet(params: ImageParams) -> Stage:
    from stages.image.nsfw import NudeNetNSFWFilterStage as NudeNet

    return NudeNet(score_threshold=params.nsfw_threshold)


def dedup_step(params: ImageParams) -> Dedup | DedupSteps | None:
    if params.dedup == "none":
        return None
    if params.dedup == "exact":
        return Dedup("exact", column="image", partitions=params.partitions)
    perceptual = Dedup(
        "phash",
        column="phash",
        partitions=params.partitions,
        hamming_threshold=params.hamming_threshold,
        clustering="centers",
    )
    if params.dedup == "phash":
        return perceptual
    semantic = Dedup(
        "semantic", embedding_column="embedding", eps=params.eps, partitions=params.partitions
    )
    return DedupSteps((perceptual, semantic))  # SemDeDup on what the hashes kept


def input_format(params: ImageParams) -> str | None:
    """None reads each input file by its extension (tars, Parquet); "files": image files."""
    return media_input(params.input, params.input_format, IMAGE)[0]


def reader(params: ImageParams) -> ShardReader:
    return media_reader(params, params.image_column, IMAGE)


def check_input(params: ImageParams, shards: list[Shard]) -> None:
    require_media_column(shards, params.image_column, "image_column", IMAGE)


def writer(params: ImageParams):
    from stages.io.writers import EmbeddingsApart, dataset_writer

    if params.output_format == "parquet":
        return "parquet"
    tars = dataset_writer("webdataset")
    return EmbeddingsApart(tars) if params.clip_model else tars


IMAGE_FLOW = FlowSpec(
    "image",
    ImageParams,
    "Curate images: validate, filter, score, dedup; WebDataset or Parquet out.",
    reader=reader,
    stages=build_stages,
    dedup=dedup_step,
    writer=writer,
    input_format=input_format,
    check=check_input,
    histograms=lambda params: params.keep_scores,
    asset="Curated images (WebDataset) written by curate-image",
    cron="0 3 * * *",
    deployment={"dedup": "phash"},
)

curate_image = build_flow(IMAGE_FLOW, __name__)


def run_image(params: ImageParams) -> dict:
    """The image flow's steps without Prefect; returns the run summary."""
    return run_flow(IMAGE_FLOW, params)
