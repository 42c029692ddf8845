from __future__ import annotations

import pyarrow as pa
import pytest

from stages.audio.preserve import PreserveByValueStage

WER = [0.0, 30.0, 50.0, None]


def kept(key: str, target, operator: str, values: list) -> list:
    out = PreserveByValueStage(key, target, operator)(pa.table({key: values}))
    return out.column(key).to_pylist()


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("lt", [0.0]),
        ("le", [0.0, 30.0]),
        ("eq", [30.0]),
        ("ne", [0.0, 50.0]),
        ("ge", [30.0, 50.0]),
        ("gt", [50.0]),
    ],
)
def test_each_nemo_operator_keeps_rows_where_the_comparison_holds(operator, expected):
    assert kept("wer_pct", 30, operator, WER) == expected


def test_default_operator_is_equality_on_strings():
    assert kept("lang", "en", "eq", ["en", "fr", None, "en"]) == ["en", "en"]
    out = PreserveByValueStage("lang", "en")(pa.table({"lang": ["en", "fr"]}))
    assert out.column("lang").to_pylist() == ["en"]


def test_null_never_passes_not_even_not_equal():
    assert kept("lang", "en", "ne", ["en", "fr", None]) == ["fr"]
    assert kept("n", 2, "ne", pa.array([1, None, 2], pa.int64())) == [1]


def test_score_is_the_value_and_score_only_keeps_every_row():
    stage = PreserveByValueStage("wer_pct", 30, "le", score_only=True)
    out = stage(pa.table({"wer_pct": WER}))
    assert out.num_rows == 4
    assert out.column("score_PreserveByValueStage").to_pylist()[:3] == [0.0, 30.0, 50.0]


def test_unknown_operator_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="'lte'.*lt, le, eq, ne, ge, gt"):
        PreserveByValueStage("wer_pct", 30, "lte")


def test_missing_column_is_named():
    with pytest.raises(KeyError, match="'wer'"):
        PreserveByValueStage("wer", 30, "le")(pa.table({"wer_pct": [1.0]}))


def test_target_of_another_type_is_refused():
    with pytest.raises(TypeError, match="'lang' \\(string\\).*5"):
        PreserveByValueStage("lang", 5, "lt")(pa.table({"lang": ["en"]}))
