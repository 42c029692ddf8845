"""CLIP image embeddings and the caption-similarity filter, on a tiny random CLIP model
saved as a published CLIP folder and loaded by path through the stages."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from images import gradient, jpeg, photo, png
from tiny_models import DIM, tiny_clip

from stages.base import Resources
from stages.image.clip import (
    NEMO_CLIP_SUBDIR,
    ImageEmbeddingStage,
    ImageTextSimilarityFilter,
    embeddings_of,
)
from stages.image.decode import load_rgb

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


def _images() -> pa.Table:
    return pa.table(
        {
            "id": ["a", "b", "c", "d", "e"],
            "image": [jpeg(photo(1)), png(photo(2)), b"not an image", None, jpeg(photo(3))],
            "caption": ["a red river", "a garden", "junk", "nothing", None],
        }
    )


def _reference(folder: str, images: list[bytes]) -> np.ndarray:
    """Unit CLIP image embeddings computed with transformers directly."""
    from transformers import CLIPImageProcessorPil, CLIPModel

    model = CLIPModel.from_pretrained(folder).eval()
    processor = CLIPImageProcessorPil.from_pretrained(folder)
    pixels = processor(images=[load_rgb(b) for b in images], return_tensors="pt")
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pixels["pixel_values"])
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    return torch.nn.functional.normalize(out, dim=-1).numpy()


def test_embeddings_are_unit_clip_vectors_in_a_fixed_size_float32_list(clip_dir):
    table = ImageEmbeddingStage(clip_dir).process(_images())

    assert table.schema.field("embedding").type == pa.list_(pa.float32(), DIM)
    vectors, valid = embeddings_of(table)
    assert valid.tolist() == [True, True, False, False, True]
    assert np.allclose(np.linalg.norm(vectors[valid], axis=1), 1.0, atol=1e-5)
    expected = _reference(clip_dir, [_images().column("image")[i].as_py() for i in (0, 1, 4)])
    assert np.allclose(vectors[[0, 1, 4]], expected, atol=1e-5)
    assert table.column("id").to_pylist() == ["a", "b", "c", "d", "e"]


def test_an_undecodable_or_null_image_gets_a_null_embedding(clip_dir):
    table = ImageEmbeddingStage(clip_dir).process(_images())
    assert table.column("embedding").to_pylist()[2:4] == [None, None]
    only_bad = pa.table({"image": pa.array([b"junk", None], pa.binary())})
    out = ImageEmbeddingStage(clip_dir).process(only_bad)
    assert out.column("embedding").null_count == 2
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), DIM)


def test_embeddings_do_not_depend_on_the_batch_size(clip_dir):
    one = ImageEmbeddingStage(clip_dir, model_inference_batch_size=1).process(_images())
    four = ImageEmbeddingStage(clip_dir, model_inference_batch_size=4).process(_images())
    a, valid_a = embeddings_of(one)
    b, valid_b = embeddings_of(four)
    assert valid_a.tolist() == valid_b.tolist()
    assert np.allclose(a, b, atol=1e-5)
    assert not np.allclose(a[0], a[1])  # different images, different vectors


def test_remove_image_data_drops_the_image_bytes(clip_dir):
    out = ImageEmbeddingStage(clip_dir, remove_image_data=True).process(_images())
    assert "image" not in out.column_names and "embedding" in out.column_names


def test_other_column_names_are_used(clip_dir):
    table = pa.table({"jpg": [jpeg(gradient(seed=4))]})
    stage = ImageEmbeddingStage(clip_dir, image_column="jpg", embedding_column="clip")
    assert stage.process(table).column_names == ["jpg", "clip"]
    with pytest.raises(KeyError, match="'image'"):
        ImageEmbeddingStage(clip_dir).process(table)


def test_nemo_curators_model_folder_layout_is_read(tmp_path, clip_dir):
    tiny_clip(tmp_path / NEMO_CLIP_SUBDIR)  # same seed, same weights
    images = _images().slice(0, 2)
    nemo = embeddings_of(ImageEmbeddingStage(str(tmp_path)).process(images))[0]
    ours = embeddings_of(ImageEmbeddingStage(clip_dir).process(images))[0]
    assert np.allclose(nemo, ours, atol=1e-6)


def test_a_missing_or_wrong_model_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageEmbeddingStage(str(tmp_path / "nowhere")).setup()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty.*no config.json"):
        ImageEmbeddingStage(str(empty)).setup()
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(FileNotFoundError, match="'bert' model, not a CLIP model"):
        ImageEmbeddingStage(str(bert)).setup()


def test_resources_default_to_one_cpu_and_gpus_sets_a_gpu_share(clip_dir):
    assert ImageEmbeddingStage(clip_dir).resources == Resources(cpus=1.0, gpus=0.0)
    shared = ImageEmbeddingStage(clip_dir, gpus=0.25)
    assert shared.resources == Resources(cpus=1.0, gpus=0.25)
    assert ImageEmbeddingStage.resources == Resources(cpus=1.0)  # the class is untouched
    assert shared.is_stateful
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert ImageEmbeddingStage(clip_dir).device == expected


def test_the_caption_similarity_is_the_cosine_of_clip_image_and_text_embeddings(clip_dir):
    from transformers import AutoTokenizer, CLIPModel

    table = ImageEmbeddingStage(clip_dir).process(_images())
    scores = ImageTextSimilarityFilter(clip_dir, min_score=0.0).score(table)

    model = CLIPModel.from_pretrained(clip_dir).eval()
    tokens = AutoTokenizer.from_pretrained(clip_dir)(
        ["a red river", "a garden"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        text = model.get_text_features(**tokens)
    text = text if isinstance(text, torch.Tensor) else text.pooler_output
    text = torch.nn.functional.normalize(text, dim=-1).numpy()
    images = embeddings_of(table)[0][:2]
    assert np.allclose(scores[:2], np.sum(text * images, axis=1), atol=1e-5)
    assert np.isnan(scores[2:]).all()  # no image (c, d), no caption (e)


def test_the_caption_filter_keeps_rows_without_a_caption_or_image(clip_dir):
    table = ImageEmbeddingStage(clip_dir).process(_images())
    f = ImageTextSimilarityFilter(clip_dir, min_score=1.01)  # no cosine reaches it
    f.keep_score = True
    kept, removed, scores = f.apply(table)
    assert kept.column("id").to_pylist() == ["c", "d", "e"]
    assert removed.column("id").to_pylist() == ["a", "b"]
    assert pa.types.is_floating(kept.schema.field("clip_score").type)
    low = ImageTextSimilarityFilter(clip_dir, min_score=float(np.nanmin(scores)))
    assert low.process(table).num_rows == 5  # at the threshold: kept


def test_the_caption_filter_embeds_images_itself_and_reads_txt(clip_dir):
    with_embeddings = ImageEmbeddingStage(clip_dir).process(_images())
    expected = ImageTextSimilarityFilter(clip_dir).score(with_embeddings)
    webdataset = _images().rename_columns(["id", "image", "txt"])  # no embedding column
    scores = ImageTextSimilarityFilter(clip_dir).score(webdataset)
    assert np.allclose(scores, expected, atol=1e-5, equal_nan=True)
    no_captions = ImageTextSimilarityFilter(clip_dir).score(_images().select(["id", "image"]))
    assert np.isnan(no_captions).all()


def test_embeddings_of_another_size_are_a_clear_error(clip_dir):
    other = pa.table(
        {
            "caption": ["a garden"],
            "embedding": pa.array([[0.5] * (DIM * 2)], pa.list_(pa.float32(), DIM * 2)),
        }
    )
    with pytest.raises(ValueError, match=f"{DIM * 2}-d embeddings.*makes {DIM}-d"):
        ImageTextSimilarityFilter(clip_dir).score(other)
