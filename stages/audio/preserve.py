"""`PreserveByValueStage`: NeMo Curator's filter that keeps rows whose field compares true
against a fixed value, such as `wer_pct <= 50` or `language == "en"`."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter

Operator = Literal["lt", "le", "eq", "ne", "ge", "gt"]
_COMPARE = {
    "lt": pc.less,
    "le": pc.less_equal,
    "eq": pc.equal,
    "ne": pc.not_equal,
    "ge": pc.greater_equal,
    "gt": pc.greater,
}


class PreserveByValueStage(Filter):
    """Keep rows where `input_value_key <operator> target_value` holds.

    Keyword arguments as NeMo Curator's stage of that name; `operator` is one of lt
    (`<`), le (`<=`), eq (`==`), ne (`!=`), ge (`>=`), gt (`>`). Example: keep
    transcripts at most 30% WER with `PreserveByValueStage("wer_pct", 30, "le")`.

    Score: the column's value itself. Keep rule: the comparison, where a null (or NaN)
    value never passes, whatever the operator (`ne` included): a row without the value
    cannot be shown to meet the rule. An unknown operator raises ValueError; a missing
    column KeyError; a value that cannot be compared with the column's type (a string
    target against a number column) TypeError.
    """

    name: ClassVar[str] = "PreserveByValueStage"

    def __init__(
        self,
        input_value_key: str,
        target_value: int | float | str | bool,
        operator: Operator = "eq",
        keep_score: bool = False,
        score_only: bool = False,
    ):
        if operator not in _COMPARE:
            raise ValueError(
                f"{self.stage_name}: unknown operator {operator!r}: expected one of "
                f"{', '.join(_COMPARE)}"
            )
        self.input_value_key = input_value_key
        self.target_value = target_value
        self.operator = operator
        self.keep_score = keep_score
        self.score_only = score_only

    def score(self, batch: pa.Table) -> np.ndarray:
        if self.input_value_key not in batch.column_names:
            raise KeyError(
                f"{self.stage_name}: input has no column {self.input_value_key!r} "
                f"(columns: {batch.column_names})"
            )
        return batch.column(self.input_value_key).to_numpy(zero_copy_only=False)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        values = pa.array(scores, from_pandas=True)  # NaN and None become null
        try:
            passed = _COMPARE[self.operator](values, self.target_value)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise TypeError(
                f"{self.stage_name}: cannot compare column {self.input_value_key!r} "
                f"({values.type}) with target_value {self.target_value!r} "
                f"({type(self.target_value).__name__}): {error}"
            ) from None
        return pc.fill_null(passed, False).to_numpy(zero_copy_only=False)
