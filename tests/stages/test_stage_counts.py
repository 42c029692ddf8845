"""A stage's own counts (`Stage.take_counts`) reach the run report, summed over shards."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flows.runtime.engine import StageMetrics, run_stage
from stages.base import Filter, FilterChain, Stage, StageSequence


class _CountsAt(Stage):
    """Counts the rows holding an `@`, per shard."""

    def __init__(self):
        self.found = 0

    def process(self, batch: pa.Table) -> pa.Table:
        self.found += sum("@" in t for t in batch.column("text").to_pylist())
        return batch

    def take_counts(self) -> dict[str, int]:
        counts, self.found = ({"at": self.found} if self.found else {}), 0
        return counts


class _DropsAt(Filter):
    def __init__(self):
        self.dropped = 0

    def score(self, batch):
        return np.array(["@" in t for t in batch.column("text").to_pylist()])

    def keep(self, scores):
        keep = ~scores
        self.dropped += int((~keep).sum())
        return keep

    def take_counts(self):
        counts, self.dropped = {"dropped": self.dropped}, 0
        return counts


def _shard(*texts: str) -> pa.Table:
    return pa.table({"id": [str(i) for i in range(len(texts))], "text": list(texts)})


def test_counts_are_summed_over_shards_into_details():
    stage, metrics = _CountsAt(), StageMetrics("_CountsAt")
    for shard in (_shard("a@b", "c"), _shard("d@e", "f@g"), _shard("none")):
        _, records = run_stage(stage, shard)
        metrics.add(records[0])
    assert metrics.details == {"counts": {"at": 3}}
    assert metrics.to_dict()["details"]["counts"] == {"at": 3}


def test_a_stage_without_counts_adds_no_details():
    _, records = run_stage(_CountsAt(), _shard("plain"))
    assert "counts" not in records[0]


def test_counts_of_a_filter_in_a_chain_and_of_a_sequence():
    _, records = run_stage(FilterChain([_DropsAt()]), _shard("a@b", "c"))
    assert records[0]["counts"] == {"dropped": 1}
    sequence = StageSequence([_CountsAt(), _CountsAt()])
    _, records = run_stage(sequence, _shard("a@b", "c@d"))
    assert records[0]["counts"] == {"at": 4}
