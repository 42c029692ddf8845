"""Which document of a duplicate group is kept.

Every dedup method ends with groups of documents (same hash, one connected component of
near-duplicate edges, one semantic cluster). `choose_survivors` keeps one per group by a
priority (the longest text, the highest score) and removes the rest; ties, and the
default policy, go to the document first in input order (smallest `_order`), so the
choice never depends on batch, partition or process.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa

KeepPolicy = Literal["first", "longest", "score"]

REMOVED_SCHEMA = pa.schema([("_order", pa.int64()), ("cluster", pa.int64())])


def choose_survivors(
    nodes: np.ndarray, groups: np.ndarray, priority: np.ndarray | None = None
) -> pa.Table:
    """The removed rows: `_order` (a node not kept) and `cluster` (the node kept for its
    group), sorted by `_order`.

    `nodes`: the `_order` of each document; `groups`: any integer label per document;
    `priority`: higher is kept first (None: every document ties, so the first is kept).
    """
    nodes = np.asarray(nodes, dtype=np.int64)
    groups = np.asarray(groups)
    if nodes.size == 0:
        return REMOVED_SCHEMA.empty_table()
    rank = np.zeros(nodes.size) if priority is None else -np.asarray(priority, dtype=np.float64)
    order = np.lexsort((nodes, rank, groups))  # by group, best priority, then input order
    sorted_groups, sorted_nodes = groups[order], nodes[order]
    starts = np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]
    kept = sorted_nodes[starts][np.cumsum(starts) - 1]
    removed = ~starts
    result = np.argsort(sorted_nodes[removed], kind="stable")
    return pa.table(
        {
            "_order": pa.array(sorted_nodes[removed][result], pa.int64()),
            "cluster": pa.array(kept[removed][result], pa.int64()),
        },
        schema=REMOVED_SCHEMA,
    )
