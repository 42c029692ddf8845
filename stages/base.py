"""The stage contract: every step of every pipeline is a `Stage` that turns one Arrow table
into another. Nothing here (or anywhere under `stages/`) knows about Prefect or Ray: the
engine in `flows/runtime/engine.py` reads the class attributes and decides how to run a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs. `gpus` may be a fraction to share one GPU."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float | None = None


class Stage:
    """One step of a pipeline: `process` maps a pyarrow Table to a pyarrow Table.

    Subclasses declare what they need as class attributes; the engine reads them:

    - `name`: shown in reports and metrics (defaults to the class name),
    - `resources`: CPUs / GPU fraction / memory per worker,
    - `batch_size`: rows per `process` call (None lets the engine choose).

    A stage that overrides `setup` (to load a model, build a detector...) runs as a pool of
    long-lived workers so that `setup` runs once per worker, not once per batch.
    """

    name: ClassVar[str] = ""
    resources: ClassVar[Resources] = Resources()
    batch_size: ClassVar[int | None] = None

    def setup(self) -> None:
        """Prepare per-worker state (models, compiled patterns). Called once per worker."""

    def process(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    @property
    def stage_name(self) -> str:
        return self.name or type(self).__name__

    @property
    def is_stateful(self) -> bool:
        """True when the stage has per-worker state worth keeping between batches."""
        return type(self).setup is not Stage.setup

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.process(batch)

    def take_counts(self) -> dict[str, int]:
        """Counts this stage kept since the last call (PII found per type, removals per test
        set, ...), then forgets them. The engine calls it after each shard and sums the
        counts over the run into the stage's `details["counts"]` in the report."""
        return {}

    def describe_removed(self, rows: pa.Table, limit: int) -> list[dict]:
        """How the run report shows rows this stage removed: one small JSON-able dict for
        each of the first `limit` rows (`stages.samples.describe_rows`: a text excerpt, an
        image thumbnail, a duration and path for audio and video). Override to show more."""
        from stages.samples import describe_rows

        return describe_rows(rows, limit, getattr(self, "text_field", "text"))


class StageSequence(Stage):
    """Several stages run one after the other as one stage (one worker, one metrics line:
    the first stage's name unless `name` is given)."""

    def __init__(self, stages: list[Stage], name: str | None = None):
        self.stages = list(stages)
        self.sequence_name = name or "+".join(s.stage_name for s in self.stages)

    @property
    def stage_name(self) -> str:
        return self.sequence_name

    @property
    def resources(self) -> Resources:  # type: ignore[override]
        return self.stages[0].resources if self.stages else Resources()

    @property
    def is_stateful(self) -> bool:
        return any(s.is_stateful for s in self.stages)

    def setup(self) -> None:
        for s in self.stages:
            s.setup()

    def process(self, batch: pa.Table) -> pa.Table:
        for s in self.stages:
            batch = s.process(batch)
        return batch

    def take_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.stages:
            for key, value in s.take_counts().items():
                counts[key] = counts.get(key, 0) + value
        return counts


class DropColumns(Stage):
    """Removes working columns a later stage no longer needs (absent ones are ignored)."""

    def __init__(self, columns: list[str]):
        self.columns = list(columns)

    def process(self, batch: pa.Table) -> pa.Table:
        return batch.drop_columns([c for c in self.columns if c in batch.column_names])


class Validator(Stage):
    """A stage that sends bad rows to the quarantine rather than removing them: input that
    cannot be used at all (an undecodable image, a truncated audio file), as opposed to
    usable input a `Filter` judges too poor to keep.

    `check(batch)` returns the good rows and a quarantine table of the bad ones
    (`stages.io.quarantine.quarantine_table`: source, line, reason, raw, ...), one record
    per bad row. The engine adds the records to the shard's quarantine and counts their
    rows as quarantined, not as removed by the stage.
    """

    def check(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        raise NotImplementedError

    def process(self, batch: pa.Table) -> pa.Table:
        return self.check(batch)[0]


class Splitter(Stage):
    """A stage that turns each input row into zero or more rows of a finer unit: a video
    into its clips, a recording into its segments.

    `split(batch)` returns the new rows and, per input row, how many it became. The engine
    counts the rows a split adds (`rows_added`: a row split in three adds two) so that the
    run's counts still add up (rows read + rows added = written + removed + duplicates +
    quarantined), and counts an input row that became nothing as removed by the stage.
    `children(batch, counts, columns)` builds the new rows: each input row's columns
    repeated for its children, `columns` added, and a unique `_order` per child.
    """

    def split(self, batch: pa.Table) -> tuple[pa.Table, np.ndarray]:
        raise NotImplementedError

    def process(self, batch: pa.Table) -> pa.Table:
        return self.split(batch)[0]

    @staticmethod
    def children(batch: pa.Table, counts, columns: dict[str, pa.Array]) -> pa.Table:
        """`batch`'s rows, row i repeated `counts[i]` times, with `columns` (one value per
        child) set. A child's `_order` keeps its parent's file in the high 32 bits and
        packs the parent's sample number and the child's number in the low 32 (16 bits
        each), so it stays unique and sorts children after their parent's position."""
        counts = np.asarray(counts, dtype=np.int64)
        parents = np.repeat(np.arange(batch.num_rows), counts)
        out = batch.take(pa.array(parents, pa.int64()))
        if "_order" in out.column_names:
            order = out.column("_order").to_numpy(zero_copy_only=False).astype(np.int64)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if counts.size else counts
            number = np.arange(parents.size) - np.repeat(starts, counts)
            member = order & 0xFFFFFFFF
            if parents.size and (member.max() >= 1 << 16 or number.max() >= 1 << 16):
                raise ValueError(
                    "a split input holds more than 65535 samples or a row split into more "
                    "than 65535 parts: their order numbers would collide"
                )
            packed = (order >> 32 << 32) | (member << 16) | number
            out = out.set_column(out.schema.get_field_index("_order"), "_order", pa.array(packed))
        for name, values in columns.items():
            if name in out.column_names:
                out = out.drop_columns([name])
            out = out.append_column(name, values)
        return out


class Filter(Stage):
    """A stage that keeps or drops whole rows.

    The score and the decision are separate (as in Data-Juicer): `score(batch)` returns one
    number per row, `keep(scores)` turns them into a boolean mask. With `keep_score=True`
    the score is kept as a `score_<name>` column so users can audit and re-threshold
    without re-scoring; with `score_only=True` nothing is dropped (Dolma-style tagging).
    """

    text_field: str = "text"
    keep_score: bool = False
    score_only: bool = False

    def score(self, batch: pa.Table) -> np.ndarray | pa.Array:
        raise NotImplementedError

    def keep(self, scores: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def score_column(self) -> str:
        return f"score_{self.stage_name}"

    def mask(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """Scores and the keep mask for `batch`, both NumPy arrays of one entry per row."""
        if batch.num_rows == 0:
            return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=bool)
        scores = self.score(batch)
        if isinstance(scores, pa.ChunkedArray | pa.Array):
            scores = scores.to_numpy(zero_copy_only=False)
        scores = np.asarray(scores)
        mask = np.asarray(self.keep(scores), dtype=bool)
        if mask.shape != (batch.num_rows,):
            raise ValueError(
                f"{self.stage_name}: keep() returned {mask.shape[0]} values for "
                f"{batch.num_rows} rows"
            )
        return scores, mask

    def apply(self, batch: pa.Table) -> tuple[pa.Table, pa.Table, np.ndarray]:
        """Kept rows, removed rows and the scores of all rows of `batch`.

        The engine calls this to count and sample what each filter removed; users call
        `process`, which returns the kept rows only.
        """
        scores, mask = self.mask(batch)
        if self.keep_score or self.score_only:
            column = self.score_column
            if column in batch.column_names:
                batch = batch.drop_columns([column])
            batch = batch.append_column(column, pa.array(scores))
        if self.score_only:
            return batch, batch.slice(0, 0), scores
        keep = pa.array(mask, type=pa.bool_())
        return batch.filter(keep), batch.filter(pa.compute.invert(keep)), scores

    def process(self, batch: pa.Table) -> pa.Table:
        return self.apply(batch)[0]

    def kept_removed(self, rows: pa.Table) -> pa.Table:
        """The rows this filter removed as `--keep-removed` stores them: as they were,
        unless what the filter removed must not be kept (`PiiModifier` replaces the
        personal data of a dropped document by type tags). Override to change them."""
        return rows

    def removal_reasons(self, rows: pa.Table, scores=None) -> list[str]:
        """Why each of `rows` (rows this filter removed; `scores`: theirs, or None when
        unknown) went, one line each, as the engine writes it beside a removed row:
        "WordCountFilter: score 12 < min_words 50". A `reason` column the filter put on
        its removed rows, or its `reason(scores)` (a filter of several rules), words it
        best; otherwise the score and the first `min_*` or `max_*` threshold of the filter
        that it breaks. Override to say more."""
        name = self.stage_name
        kind = rows.schema.field("reason").type if "reason" in rows.column_names else None
        if kind is not None and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            return [f"{name}: {why}" if why else name for why in rows.column("reason").to_pylist()]
        if scores is None or len(scores) != rows.num_rows:
            return [name] * rows.num_rows
        if isinstance(scores, pa.ChunkedArray | pa.Array):
            scores = scores.to_numpy(zero_copy_only=False)
        explain = getattr(self, "reason", None)
        worded = explain(scores) if callable(explain) else None
        bounds = _thresholds(self)
        reasons = []
        for i, score in enumerate(scores):
            if worded is not None and worded[i]:
                reasons.append(f"{name}: {worded[i]}")
                continue
            line = f"{name}: score {_shown(score)}"
            if _is_number(score):
                for attr, bound in bounds:
                    if attr.startswith("min_") and score < bound:
                        line += f" < {attr} {_shown(bound)}"
                        break
                    if attr.startswith("max_") and score > bound:
                        line += f" > {attr} {_shown(bound)}"
                        break
            reasons.append(line)
        return reasons


def _thresholds(f: Filter) -> list[tuple[str, float]]:
    """The filter's numeric `min_*` and `max_*` settings, in name order."""
    found = []
    for attr in sorted(dir(f)):
        if not attr.startswith(("min_", "max_")):
            continue
        try:
            value = getattr(f, attr)
        except Exception:  # noqa: BLE001 - a property that needs set-up: not a threshold
            continue
        if _is_number(value):
            found.append((attr, float(value)))
    return found


def _is_number(value) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool | np.bool_)
        and not np.isnan(value)
    )


def _shown(value) -> str:
    """A score or threshold as a reason shows it: 12, 0.3333, {"a": 1}."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    return str(value)


def text_column(batch: pa.Table, field: str, stage: str) -> pa.ChunkedArray:
    """The string column `field` of `batch`, with a clear error when it is missing."""
    if field not in batch.column_names:
        raise KeyError(f"{stage}: input has no column {field!r} (columns: {batch.column_names})")
    column = batch.column(field)
    if pa.types.is_large_string(column.type) or pa.types.is_string(column.type):
        return column
    if pa.types.is_null(column.type):
        return column.cast(pa.string())
    raise TypeError(f"{stage}: column {field!r} is {column.type}, expected a string column")


class FilterChain(Stage):
    """Several filters applied in order, as one stage.

    The result is the same as applying the filters one after the other (a row survives
    when every filter keeps it; "removed by" goes to the first filter that drops it). The
    chain scores each filter on the same table and drops rows physically only when more
    than `1 - compact_below` of them are dead, so per-batch work that filters share (word
    and line splitting, n-grams) is done once instead of once per filter.

    `run(batch)` also returns one record per filter: rows in and out, seconds, and a
    sample of the rows it removed.
    """

    def __init__(
        self,
        filters: list[Filter],
        compact_below: float = 0.6,
        sample_size: int = 10,
        track_removed: bool = False,
    ):
        self.filters = list(filters)
        self.compact_below = compact_below
        self.sample_size = sample_size
        # Records get "removed_rows" (input positions) and "removed_scores" (their scores).
        self.track_removed = track_removed

    def setup(self) -> None:
        for f in self.filters:
            f.setup()

    @property
    def is_stateful(self) -> bool:
        return any(f.is_stateful for f in self.filters)

    def process(self, batch: pa.Table) -> pa.Table:
        return self.run(batch)[0]

    def run(self, batch: pa.Table) -> tuple[pa.Table, list[dict]]:
        import time

        current = batch
        alive = np.ones(batch.num_rows, dtype=bool)
        position = np.arange(batch.num_rows)  # input row of each row of `current`
        kept_scores: dict[str, np.ndarray] = {}
        records = []
        for f in self.filters:
            start, cpu_start = time.perf_counter(), time.process_time()
            rows_in = int(alive.sum())
            removed_sample: list[dict] = []
            removed_rows, removed_scores = position[:0], np.zeros(0)
            if rows_in:
                scores, mask = f.mask(current)
                if f.keep_score or f.score_only:
                    kept_scores[f.score_column] = scores
                dropped = alive & ~mask if not f.score_only else np.zeros_like(alive)
                if dropped.any() and self.sample_size:
                    first = np.flatnonzero(dropped)[: self.sample_size]
                    removed_sample = f.describe_removed(current.take(first), self.sample_size)
                if self.track_removed:
                    removed_rows, removed_scores = position[dropped], np.asarray(scores)[dropped]
                alive &= ~dropped
            elif f.keep_score or f.score_only:
                kept_scores[f.score_column] = np.full(current.num_rows, np.nan)
            records.append(
                {
                    "stage": f.stage_name,
                    "rows_in": rows_in,
                    "rows_out": int(alive.sum()),
                    "seconds": time.perf_counter() - start,
                    "cpu_seconds": time.process_time() - cpu_start,
                    "removed_sample": removed_sample,
                }
            )
            if self.track_removed:
                records[-1]["removed_rows"] = removed_rows
                records[-1]["removed_scores"] = removed_scores
            if alive.size and alive.mean() < self.compact_below:
                keep = pa.array(alive)
                current = current.filter(keep)
                kept_scores = {k: v[alive] for k, v in kept_scores.items()}
                position = position[alive]
                alive = np.ones(current.num_rows, dtype=bool)
        if not alive.all():
            current = current.filter(pa.array(alive))
            kept_scores = {k: v[alive] for k, v in kept_scores.items()}
        for name, scores in kept_scores.items():
            if name in current.column_names:
                current = current.drop_columns([name])
            current = current.append_column(name, pa.array(scores))
        return current, records
