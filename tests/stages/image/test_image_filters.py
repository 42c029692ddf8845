"""Image size filters: each keep rule at its boundary, in both orientations, on the columns
the decoder adds; a clear error without them; thumbnails of what they remove."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from images import jpeg, photo, strip_jpeg, tiny_jpeg

from stages.base import FilterChain
from stages.image.decode import ImageDecoder
from stages.image.filters import ImageAspectRatioFilter, ImageFileSizeFilter, ImageMinSideFilter


def _sized(*sizes: tuple[int, int], image_bytes: list[int] | None = None) -> pa.Table:
    n = len(sizes)
    return pa.table(
        {
            "id": [f"{w}x{h}" for w, h in sizes],
            "width": pa.array([w for w, _ in sizes], pa.int32()),
            "height": pa.array([h for _, h in sizes], pa.int32()),
            "image_bytes": pa.array(image_bytes or [1000] * n, pa.int64()),
        }
    )


def _kept(stage, table: pa.Table) -> list[str]:
    return stage.process(table)["id"].to_pylist()


def test_min_side_keeps_a_shorter_side_of_exactly_min_side_in_either_orientation():
    table = _sized((64, 64), (63, 500), (500, 63), (64, 1000), (1000, 64), (0, 100))
    assert _kept(ImageMinSideFilter(min_side=64), table) == ["64x64", "64x1000", "1000x64"]
    assert ImageMinSideFilter().score(table).tolist() == [64, 63, 63, 64, 64, 0]
    assert _kept(ImageMinSideFilter(min_side=0), table) == table["id"].to_pylist()


def test_aspect_ratio_keeps_exactly_max_ratio_and_drops_beyond_in_either_orientation():
    table = _sized((300, 100), (100, 300), (301, 100), (100, 301), (100, 100), (0, 50))
    assert _kept(ImageAspectRatioFilter(max_ratio=3.0), table) == ["300x100", "100x300", "100x100"]
    scores = ImageAspectRatioFilter().score(table)
    assert scores[:2].tolist() == [3.0, 3.0] and scores[4] == 1.0 and math.isinf(scores[5])
    assert scores[2] == scores[3] == pytest.approx(3.01)


def test_file_size_bounds_are_inclusive_and_the_upper_one_is_optional():
    table = _sized(*[(100, 100)] * 5, image_bytes=[0, 4999, 5000, 20000, 20001])

    def kept(stage) -> list[int]:
        return stage.process(table)["image_bytes"].to_pylist()

    assert kept(ImageFileSizeFilter(min_bytes=5000, max_bytes=20000)) == [5000, 20000]
    assert kept(ImageFileSizeFilter(min_bytes=5000)) == [5000, 20000, 20001]
    assert kept(ImageFileSizeFilter(max_bytes=0)) == [0]
    assert kept(ImageFileSizeFilter()) == [0, 4999, 5000, 20000, 20001]


def test_invalid_thresholds_are_refused():
    with pytest.raises(ValueError, match="min_side"):
        ImageMinSideFilter(min_side=-1)
    with pytest.raises(ValueError, match="max_ratio"):
        ImageAspectRatioFilter(max_ratio=0.5)
    with pytest.raises(ValueError, match="min_bytes"):
        ImageFileSizeFilter(min_bytes=-1)
    with pytest.raises(ValueError, match="max_bytes"):
        ImageFileSizeFilter(min_bytes=10, max_bytes=5)


@pytest.mark.parametrize(
    "stage, column",
    [
        (ImageMinSideFilter(), "width"),
        (ImageAspectRatioFilter(), "width"),
        (ImageFileSizeFilter(), "image_bytes"),
    ],
)
def test_without_the_decoder_columns_the_error_names_the_stage_and_the_column(stage, column):
    table = pa.table({"id": ["a"], "image": [jpeg(photo(0))]})
    with pytest.raises(KeyError, match=f"{type(stage).__name__}: input has no column '{column}'"):
        stage.process(table)


def test_scores_are_kept_as_columns_for_re_thresholding():
    table = _sized((64, 32), (200, 100), image_bytes=[10, 20])
    out = ImageMinSideFilter(min_side=0, keep_score=True).process(table)
    assert out["score_ImageMinSideFilter"].to_pylist() == [32, 100]
    out = ImageAspectRatioFilter(keep_score=True).process(table)
    assert out["score_ImageAspectRatioFilter"].to_pylist() == [2.0, 2.0]
    out = ImageFileSizeFilter(keep_score=True).process(table)
    assert out["score_ImageFileSizeFilter"].to_pylist() == [10, 20]


def test_decoded_rows_are_filtered_by_displayed_size_and_removed_ones_get_thumbnails():
    images = {"photo": jpeg(photo(1)), "tiny": tiny_jpeg(), "strip": strip_jpeg()}
    table = pa.table(
        {
            "id": list(images),
            "jpg": list(images.values()),
            "txt": [f"a {name}" for name in images],
        }
    )
    decoded, _ = ImageDecoder().check(table)
    chain = FilterChain([ImageMinSideFilter(min_side=32), ImageAspectRatioFilter()])
    out, records = chain.run(decoded)
    assert out["id"].to_pylist() == ["photo"]
    removed = {r["stage"]: r["removed_sample"] for r in records}
    [tiny] = removed["ImageMinSideFilter"]
    [strip] = removed["ImageAspectRatioFilter"]
    assert tiny["id"] == "tiny" and (tiny["width"], tiny["height"]) == (20, 15)
    assert strip["thumbnail"].startswith("data:image/jpeg;base64,") and strip["text"] == "a strip"
    kept, removed_rows, scores = ImageAspectRatioFilter().apply(decoded)
    assert removed_rows["id"].to_pylist() == ["strip"] and np.isclose(scores[2], 12.5)
