from __future__ import annotations

import ftfy
import pyarrow as pa
import pytest

from stages.text.clean import TextCleaner


def clean(texts: list[str | None], **options) -> list[str | None]:
    batch = pa.table({"id": [str(i) for i in range(len(texts))], "text": texts})
    return TextCleaner(**options)(batch).column("text").to_pylist()


def test_mojibake_is_repaired():
    assert clean(["The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows."]) == [
        "The Mona Lisa doesn't have eyebrows."
    ]


def test_html_entities_and_control_characters_in_ascii_text_are_fixed():
    assert clean(["Fish &amp; chips\x07 today"], normalize_whitespace=False) == [
        "Fish & chips today"
    ]


def test_output_equals_ftfy_on_every_row():
    texts = ["plain ascii text", "café crème", "naÃ¯ve", "“quoted”", "ﬁne", "a\u2028b", ""]
    assert clean(
        texts, normalize_whitespace=False, remove_url_lines=False, remove_boilerplate_lines=False
    ) == [ftfy.fix_text(t) for t in texts]


def test_fix_unicode_off_leaves_mojibake():
    assert clean(["doesnÃ¢â‚¬â„¢t"], fix_unicode=False) == ["doesnÃ¢â‚¬â„¢t"]


def test_whitespace_runs_collapse_and_blank_lines_shrink_to_one():
    text = "  First   line\t\there.  \r\n\r\n\r\n\r\nSecond\n\n\nthird  \n"
    assert clean([text]) == ["First line here.\n\nSecond\n\nthird"]


def test_lines_that_are_only_a_url_are_removed_but_inline_urls_stay():
    text = "Intro\nhttps://example.com/a?b=1\n  www.example.org  \nSee https://example.com now."
    assert clean([text]) == ["Intro\nSee https://example.com now."]


def test_short_boilerplate_lines_are_removed_case_insensitively():
    text = "Real text.\nCopyright 2020 Foo Inc. ALL RIGHTS RESERVED.\nShare on Facebook\nMore."
    assert clean([text]) == ["Real text.\nMore."]


def test_long_line_mentioning_a_boilerplate_phrase_stays():
    line = (
        "This long paragraph explains in some detail how the cookie policy of the site was "
        "drafted and why the committee rejected the first two versions of it."
    )
    assert clean([line]) == [line]


def test_custom_boilerplate_phrases_replace_the_defaults():
    text = "Keep me\nBuy now\nAll rights reserved"
    assert clean([text], boilerplate_phrases=["buy now"]) == ["Keep me\nAll rights reserved"]


def test_row_that_becomes_empty_stays_and_null_stays_null():
    out = clean(["https://only.example/url", None, "Click here"])
    assert out == ["", None, ""]


def test_other_columns_and_row_count_are_preserved():
    batch = pa.table({"id": ["a", "b"], "text": ["x  y", "z"], "source": ["s1", "s2"]})
    out = TextCleaner()(batch)
    assert out.column_names == ["id", "text", "source"]
    assert out.column("id").to_pylist() == ["a", "b"]
    assert out.column("source").to_pylist() == ["s1", "s2"]
    assert out.schema.field("text").type == pa.string()


def test_large_string_column_keeps_its_type():
    batch = pa.table({"id": ["a"], "text": pa.array(["a  b"], type=pa.large_string())})
    out = TextCleaner()(batch)
    assert out.schema.field("text").type == pa.large_string()
    assert out.column("text").to_pylist() == ["a b"]


def test_empty_batch_passes_through():
    batch = pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())})
    assert TextCleaner()(batch).num_rows == 0


def test_missing_text_column_is_reported():
    with pytest.raises(KeyError, match="content"):
        TextCleaner(text_field="content")(pa.table({"id": ["a"], "text": ["x"]}))
