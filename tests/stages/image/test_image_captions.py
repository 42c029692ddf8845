"""Captions come out in one `caption` column whatever the input layout."""

from __future__ import annotations

import pyarrow as pa

from stages.image.captions import ImageCaptions


def test_a_txt_member_wins_then_a_column_then_a_json_field():
    table = pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "txt": [" a cat ", None, "", None],
            "json": ['{"caption": "no"}', '{"caption": "from json"}', None, "not json"],
        }
    )
    out = ImageCaptions().process(table)
    assert out.column("caption").to_pylist() == ["a cat", "from json", None, None]
    assert "txt" not in out.column_names  # written back once, as the sample's .txt


def test_the_caption_field_names_a_column_or_a_json_field():
    column = pa.table({"id": ["a"], "TEXT": ["laion caption"]})
    assert ImageCaptions("TEXT").process(column).column("caption").to_pylist() == ["laion caption"]
    field = pa.table({"id": ["a"], "json": ['{"TEXT": "in json"}']})
    assert ImageCaptions("TEXT").process(field).column("caption").to_pylist() == ["in json"]
    none = pa.table({"id": ["a"]})
    assert ImageCaptions().process(none).column("caption").to_pylist() == [None]
