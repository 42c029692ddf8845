"""Scores made of several named numbers, for filters that apply several rules at once.

A filter's score must not depend on its thresholds (re-thresholding with
`stages.text.thresholds.ApplyThresholds` runs `keep` again on a stored score column). A
filter with several rules (datatrove's Gopher quality rules, NeMo Curator's per-extension
code rules) therefore scores one struct per row, one field per measured quantity, and its
`keep` applies every threshold to the fields. `Filter.mask` hands `keep` the struct column
as NumPy objects (one dict per row), and a stored `score_<name>` column reads back the
same way, so `score_fields` accepts every form.

Such a filter also says which rule removed a row: `failures(scores)` lists (reason, rows
failing) per rule in the order the rules apply, `first_reasons` turns that into one reason
per row, and `describe_with_reasons` adds it to the run report's samples of removed rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from stages.base import Filter


def struct_scores(fields: Mapping[str, np.ndarray | list]) -> pa.StructArray:
    """One struct per row with the given fields (all of one length)."""
    names = list(fields)
    arrays = [pa.array(values) for values in fields.values()]
    return pa.StructArray.from_arrays(arrays, names=names)


def score_fields(scores, names: list[str], filter_name: str) -> dict[str, np.ndarray]:
    """The fields `names` of struct scores (a StructArray, a ChunkedArray of structs, or a
    NumPy array of dicts), each as a NumPy array; a missing field is an error that names
    the filter and the fields the scores have."""
    if isinstance(scores, pa.ChunkedArray):
        scores = scores.combine_chunks()
    if not isinstance(scores, pa.StructArray):
        values = list(scores) if isinstance(scores, np.ndarray) else scores
        if len(values) == 0:
            return {name: np.zeros(0) for name in names}
        scores = pa.array(values)
    if not pa.types.is_struct(scores.type):
        raise TypeError(f"{filter_name}: expected struct scores, got {scores.type}")
    have = [scores.type.field(i).name for i in range(scores.type.num_fields)]
    missing = [name for name in names if name not in have]
    if missing:
        raise KeyError(f"{filter_name}: the scores have no field {missing} (fields: {have})")
    return {name: scores.field(name).to_numpy(zero_copy_only=False) for name in names}


def passes_all(failures: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Rows that fail none of the rules (`failures` holds at least one entry)."""
    keep = np.ones(len(failures[0][1]), dtype=bool)
    for _, failing in failures:
        keep &= ~failing
    return keep


def first_reasons(failures: list[tuple[str, np.ndarray]]) -> list[str | None]:
    """Per row, the reason of the first rule it fails (None when it fails none)."""
    out: list[str | None] = [None] * len(failures[0][1])
    for reason, failing in failures:
        for i in np.flatnonzero(failing):
            if out[i] is None:
                out[i] = reason
    return out


def describe_with_reasons(f: Filter, rows: pa.Table, limit: int) -> list[dict]:
    """The run report's samples of rows `f` removed, each with the rule that removed it."""
    samples = Filter.describe_removed(f, rows, limit)
    if samples:
        reasons = f.reason(f.score(rows.slice(0, len(samples))))
        for sample, reason in zip(samples, reasons, strict=False):
            sample["reason"] = reason
    return samples


class RuleFilter(Filter):
    """A filter of several rules: a subclass gives `failures(scores)`, the (reason, rows
    failing) of each rule in the order the rules apply; a row is kept when it fails none,
    and the report's samples of removed rows carry the first rule each failed."""

    def failures(self, scores) -> list[tuple[str, np.ndarray]]:
        raise NotImplementedError

    def keep(self, scores) -> np.ndarray:
        return passes_all(self.failures(scores))

    def reason(self, scores) -> list[str | None]:
        """Per row, the reason of the first rule it fails (None when kept)."""
        return first_reasons(self.failures(scores))

    def describe_removed(self, rows: pa.Table, limit: int) -> list[dict]:
        return describe_with_reasons(self, rows, limit)
