"""Re-thresholding a scored dataset: new filter thresholds without scoring again.

A run with `--score-only` keeps every row and one `score_<filter>` column per filter of
its recipe (`--keep-scores` keeps the columns on the rows it kept). `ApplyThresholds`
rebuilds the recipe's filters with some keyword arguments changed (`--set
WordCountFilter.min_words=80`), applies each filter's keep rule to its score column and
drops the rows any filter rejects. Nothing is scored again: a filter's score does not
depend on its thresholds, only its keep rule does.

For each change it counts the rows the change moves: rows the filter's old setting kept
and the new one removes (`<change>: newly removed`), and the reverse (`<change>: newly
kept`). On a `--keep-scores` output the rows the first run removed are gone, so a looser
threshold cannot bring them back; a `--score-only` output has them all.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from stages.base import Filter
from stages.text.recipes import build_recipe, step_label


def parse_changes(settings: list[str]) -> list[tuple[str, str, Any]]:
    """`["WordCountFilter.min_words=80", ...]` -> [(step, kwarg, value)]; values are
    read as YAML scalars (80 is an int, 0.2 a float, true a bool)."""
    changes = []
    for setting in settings:
        match = re.fullmatch(r"\s*(.+?)\.(\w+)\s*=(.*)", setting)
        if match is None:
            raise ValueError(
                f"--set {setting!r}: expected FILTER.KEYWORD=VALUE, e.g. "
                "WordCountFilter.min_words=80 or RepeatingTopNGramsFilter(n=3)."
                "max_repeating_ngram_ratio=0.2"
            )
        step, kwarg, raw = match.groups()
        changes.append((step, kwarg.strip(), yaml.safe_load(raw)))
    return changes


class ApplyThresholds(Filter):
    """Keeps the rows every filter of `recipe` (its (class name, kwargs) steps, as
    `stages.text.recipes.recipe_spec` returns them) keeps under the changed settings,
    judged on the `score_<filter>` columns of the input.

    `changes`: (step, keyword, value) triples; a step is named by its class (when the
    recipe has it once), its label (`RepeatingTopNGramsFilter(n=3)`) or its stage name
    (`RepeatingTopNGramsFilter_3`). An unknown step, a keyword the filter does not take,
    or an input without a step's score column is an error that names it.
    """

    name = "ApplyThresholds"

    def __init__(self, recipe, changes: list[tuple[str, str, Any]] = ()):
        self.recipe = tuple((cls, dict(kwargs)) for cls, kwargs in recipe)
        self.changes = list(changes)
        self.old = build_recipe(self.recipe)
        new_recipe = [(cls, dict(kwargs)) for cls, kwargs in self.recipe]
        self.changed: dict[int, list[str]] = {}
        for step, kwarg, value in self.changes:
            i = self._step_index(step)
            keywords = self._keywords(i)
            if kwarg not in keywords:
                raise ValueError(
                    f"--set {step}.{kwarg}: {self.recipe[i][0]} has no keyword {kwarg!r}; "
                    f"it takes {sorted(keywords)}"
                )
            new_recipe[i][1][kwarg] = value
            self.changed.setdefault(i, []).append(f"{step}.{kwarg}={value}")
        self.new = build_recipe(tuple(new_recipe))
        self._moves: dict[str, int] = {}

    def _labels(self, i: int) -> set[str]:
        cls, kwargs = self.recipe[i]
        return {cls, step_label(cls, kwargs), self.old[i].stage_name}

    def _keywords(self, i: int) -> set[str]:
        parameters = inspect.signature(type(self.old[i]).__init__).parameters
        return set(parameters) - {"self", "text_field", "keep_score", "score_only"}

    def _step_index(self, step: str) -> int:
        hits = [i for i in range(len(self.recipe)) if step in self._labels(i)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            labels = [step_label(*self.recipe[i]) for i in hits]
            raise ValueError(
                f"--set {step}: the recipe has it {len(hits)} times; name one of {labels}"
            )
        known = [step_label(*s) for s in self.recipe]
        raise ValueError(f"--set {step}: no such filter in the recipe; its filters: {known}")

    def score(self, batch: pa.Table) -> np.ndarray:
        keep = np.ones(batch.num_rows, dtype=bool)
        for i, (old, new) in enumerate(zip(self.old, self.new, strict=True)):
            column = old.score_column
            if column not in batch.column_names:
                raise KeyError(
                    f"ApplyThresholds: the input has no column {column!r}: re-thresholding "
                    "needs the output of a run with --score-only (every row) or "
                    "--keep-scores, with the same recipe"
                )
            scores = batch.column(column).to_numpy(zero_copy_only=False)
            # A row a previous filter dropped in a --keep-scores run has no score (NaN):
            # it was removed, so only scored rows are judged.
            scored = ~np.isnan(scores) if scores.dtype.kind == "f" else np.ones_like(keep)
            verdict = np.ones(batch.num_rows, dtype=bool)
            verdict[scored] = np.asarray(new.keep(scores[scored]), dtype=bool)
            if i in self.changed:
                before = np.ones(batch.num_rows, dtype=bool)
                before[scored] = np.asarray(old.keep(scores[scored]), dtype=bool)
                change = ", ".join(self.changed[i])
                for key, rows in (
                    (f"{change}: newly removed", before & ~verdict),
                    (f"{change}: newly kept", ~before & verdict),
                ):
                    self._moves[key] = self._moves.get(key, 0) + int(rows.sum())
            keep &= verdict
        return keep

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores.astype(bool)

    def take_counts(self) -> dict[str, int]:
        moves, self._moves = self._moves, {}
        return moves
