"""`curate_image`: the image curation flow.

    read WebDataset tars / image folders / Parquet -> captions -> decode and validate
    (bad images quarantined) -> size, aspect and file-size filters -> perceptual hash
    [-> CLIP embedding -> aesthetic, NSFW and caption-similarity filters]
    -> dedup (perceptual hash by default) -> WebDataset (img2dataset's layout) or Parquet

Without any model the flow still curates: decode, validate, filter, deduplicate exact and
near-exact copies. A CLIP model adds embeddings (written apart, `embeddings/`), the
aesthetic and NSFW scores and semantic dedup; `--nsfw-model nudenet` checks for nudity with
the detector bundled in the `nudenet` package, no CLIP needed. The step sequence is the
flow kit's (`flows/runtime/builder.py`); this file declares the parameters and the stages.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flows.runtime.builder import FlowSpec, build_flow, run_flow
from flows.runtime.inputs import parquet_schema, require_columns
from flows.runtime.params import FlowParams
from flows.runtime.storage import storage_options
from flows.steps.dedup import PHASH_THRESHOLD, Dedup, DedupSteps
from stages.base import FilterChain, Resources, Stage
from stages.io.formats.media import IMAGE
from stages.io.read import ShardReader
from stages.io.shards import Shard

NEMO_AESTHETIC_THRESHOLD = 0.5  # NeMo Curator's default: on a 1-10 scale it removes nothing
TAR_EXTENSIONS = (".tar", ".tar.gz", ".tgz")


class ImageParams(FlowParams):
    """Parameters of the image curation flow (the Prefect UI renders them as a form)."""

    input: str = Field(
        description="WebDataset tars (a file, glob or brace range such as "
        "'s3://raw/laion/{00000..00099}.tar'), a folder of image files, or Parquet with an "
        "image bytes column; local or s3://, or the output folder of another curate flow.",
        examples=["s3://raw/laion/{00000..00099}.tar", "photos/"],
    )
    input_format: Literal["auto", "webdataset", "files", "parquet"] = Field(
        "auto",
        description="How to read the input: auto reads .tar as WebDataset and .parquet as "
        "Parquet, and a folder holding neither as image files.",
    )
    image_column: str = Field(
        "image",
        description="Parquet input: the column of encoded image bytes.",
    )
    caption_field: str = Field(
        "caption",
        description="Where a caption is when there is no .txt member: a column, or a field "
        "of the sample's .json.",
    )
    max_pixels: int = Field(
        89_478_485,
        ge=1,
        description="Images with more pixels are quarantined unread (decompression bombs).",
    )
    min_side: int = Field(64, ge=0, description="Remove images whose shorter side is smaller.")
    max_aspect_ratio: float = Field(
        3.0, ge=1.0, description="Remove images longer than this ratio, either orientation."
    )
    min_bytes: int = Field(0, ge=0, description="Remove image files smaller than this.")
    max_bytes: int | None = Field(None, ge=1, description="Remove image files larger than this.")
    clip_model: str | None = Field(
        None,
        description="A local Hugging Face CLIP folder (e.g. clip-vit-large-patch14): adds "
        "embeddings, and enables the aesthetic, NSFW and caption filters and semantic dedup.",
    )
    model_inference_batch_size: int = Field(32, ge=1, description="Images per model batch.")
    gpus: float = Field(
        0.0,
        ge=0.0,
        description="GPUs per CLIP worker (a fraction shares one GPU); 0 runs on CPU, or on "
        "the GPU a worker finds.",
    )
    aesthetic_model: str | None = Field(
        None,
        description="The LAION improved-aesthetic-predictor head (.safetensors or .pth) "
        "for the CLIP model's embeddings.",
    )
    aesthetic_threshold: float = Field(
        5.0, description="Keep images whose aesthetic score (about 1-10) is at least this."
    )
    nsfw_model: str | None = Field(
        None,
        description="'nudenet' (the detector bundled with the nudenet package, no CLIP "
        "needed), or the LAION CLIP NSFW head's weights file.",
    )
    nsfw_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Keep images whose NSFW score is below this."
    )
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
        PHASH_THRESHOLD,
        ge=0,
        le=32,
        description="phash: images whose hashes differ in at most this many of 64 bits are "
        "duplicates.",
    )
    eps: float = Field(
        0.01, gt=0.0, lt=1.0, description="semantic: duplicates have cosine similarity >= 1 - eps."
    )
    partitions: int = Field(16, ge=1, description="Hash partitions of the dedup step.")
    keep_scores: bool = Field(True, description="Keep every filter's score as a column.")
    output_format: Literal["webdataset", "parquet"] = Field(
        "webdataset",
        description="webdataset: tars in img2dataset's layout with a Parquet beside each; "
        "parquet: one Parquet per shard, image bytes included.",
    )

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
            image_column=_image_column(params),
            max_pixels=params.max_pixels,
            phash=True if params.phash == "exact" else "fast",
        ),
        FilterChain(_scored(filters, params)),
    ]
    if params.clip_model:
        stages += _clip_stages(params)
    elif params.nsfw_model == "nudenet":
        stages += _scored([_nudenet(params)], params)
    return stages


def _image_column(params: ImageParams) -> str | None:
    """The column of image bytes when the user named one; None finds it (`image` of a
    folder of files, the image member of a WebDataset sample)."""
    return None if params.image_column == "image" else params.image_column


def _clip_stages(params: ImageParams) -> list[Stage]:
    from stages.image.clip import ImageEmbeddingStage, ImageTextSimilarityFilter

    embed = ImageEmbeddingStage(
        model_dir=params.clip_model,
        model_inference_batch_size=params.model_inference_batch_size,
    )
    if params.gpus:
        embed.resources = Resources(cpus=1.0, gpus=params.gpus)
    stages: list[Stage] = [embed]
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
    return _scored(stages, params)


def _nudenet(params: ImageParams) -> Stage:
    from stages.image.nsfw import NudeNetNSFWFilterStage

    return NudeNetNSFWFilterStage(score_threshold=params.nsfw_threshold)


def _scored(stages: list, params: ImageParams) -> list:
    for stage in stages:
        if hasattr(stage, "keep_score"):
            stage.keep_score = params.keep_scores
    return stages


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
    """The reader format for every input file: None reads each by its extension (tars,
    Parquet), "files" reads image files."""
    if params.input_format != "auto":
        return params.input_format
    name = params.input.split("?", 1)[0].rstrip("/").lower()
    if name.endswith((*TAR_EXTENSIONS, ".parquet")):
        return None
    if name.endswith(tuple(f".{ext}" for ext in IMAGE)):
        return "files"
    return None if _holds_datasets(params.input) else "files"


def _holds_datasets(folder: str) -> bool:
    """Whether a folder holds tars or Parquet files (or is a curate dataset): read by their
    extensions, not as image files."""
    return bool(_dataset_files(folder))


def _dataset_files(folder: str) -> list[str]:
    """The tars and Parquet files a folder holds (a curate dataset's listed files)."""
    from stages.io.commit import dataset_files, is_dataset
    from stages.io.fs import filesystem

    options = storage_options()
    try:
        if is_dataset(folder, options):
            return dataset_files(folder, options)
        fs, path = filesystem(folder, options)
        if not fs.isdir(path):
            return []
        return [p for p in fs.find(path) if p.lower().endswith((*TAR_EXTENSIONS, ".parquet"))]
    except OSError:
        return []  # planning reports a missing input with its own message


def _reads_parquet(params: ImageParams) -> bool:
    """Whether the input is Parquet (rows with an image column) rather than tars or files."""
    if params.input_format != "auto":
        return params.input_format == "parquet"
    name = params.input.split("?", 1)[0].rstrip("/").lower()
    if name.endswith(".parquet"):
        return True
    if input_format(params) == "files" or name.endswith(TAR_EXTENSIONS):
        return False
    files = _dataset_files(params.input)
    return bool(files) and not any(f.lower().endswith(TAR_EXTENSIONS) for f in files)


def reader(params: ImageParams) -> ShardReader:
    """Rows without an image (a sample with no image member, a Parquet row without the
    column) are quarantined by the reader, with the sample or row named."""
    if _reads_parquet(params):
        required = params.image_column
    else:  # a WebDataset sample's image member, whatever its type; a file's `image`
        required = ";".join(dict.fromkeys((params.image_column, *IMAGE)))
    return ShardReader(
        text_field=None,
        id_field=params.id_field,
        storage_options=storage_options(),
        strict=params.strict,
        required_field=required,
    )


def check_input(params: ImageParams, shards: list[Shard]) -> None:
    """Parquet input must have the image column (read from each file's schema)."""
    for uri in dict.fromkeys(s.uri for s in shards if s.format == "parquet"):
        schema = parquet_schema(uri)
        if schema is None:
            continue  # the reader quarantines an unreadable file with its reason
        found = params.image_column in schema.names
        if params.image_column == "image":  # or a column named by an image extension
            found = found or any(name in schema.names for name in IMAGE)
        if not found:
            require_columns({"image_column": params.image_column}, schema.names, uri)


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
