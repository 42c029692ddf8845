"""Connected components of the candidate-duplicate graph, in NumPy.

`connected_components` labels every node with the smallest node of its component, by
hooking and pointer jumping (in the manner of Shiloach and Vishkin 1982): each round
points the root of the larger end of every edge at the smaller root (`np.minimum.at`),
flattens every pointer to its root, and keeps only the edges whose ends still have
different roots. Rounds are whole-array operations, and their number grows with the
logarithm of the component diameter, not with the number of edges.

`center_clusters` is the alternative for verified edges: a greedy clustering in which
every removed document is itself a near-duplicate of the document kept for it, so a
chain of small edits (A~B, B~C, A and C apart) does not remove C because of A.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

REMOVALS_SCHEMA = pa.schema([("_order", pa.int64()), ("cluster", pa.int64())])


def connected_components(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, component) for the undirected graph of edges `src[i]`-`dst[i]`.

    `nodes` are the distinct endpoints, sorted (int64); `component[i]` is the smallest
    node of the component of `nodes[i]`. Duplicate edges, both directions and self loops
    are allowed; the result does not depend on the order of the edges.
    """
    src = np.asarray(src, dtype=np.int64).ravel()
    dst = np.asarray(dst, dtype=np.int64).ravel()
    if src.shape != dst.shape:
        raise ValueError(f"connected_components: {src.size} sources and {dst.size} targets")
    nodes, index = np.unique(np.concatenate([src, dst]), return_inverse=True)
    u, v = index[: src.size], index[src.size :]
    # Nodes are sorted, so the smallest index of a component is its smallest node.
    parent = np.arange(nodes.size, dtype=np.int64)
    keep = u != v
    u, v = u[keep], v[keep]
    while u.size:
        lo, hi = np.minimum(u, v), np.maximum(u, v)
        # hi and lo are roots: point each root at the smallest root it is linked to.
        np.minimum.at(parent, hi, lo)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        u, v = parent[lo], parent[hi]
        keep = u != v
        u, v = u[keep], v[keep]
    return nodes, nodes[parent]


def merge_components(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Combine (nodes, component) results computed on different pieces of one graph (for
    example one per partition): two nodes are together when any piece put them together.
    Returns (nodes, component) as `connected_components` does."""
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    nodes = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])
    component = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in parts])
    return connected_components(nodes, component)


def duplicates_to_remove(nodes: np.ndarray, component: np.ndarray) -> pa.Table:
    """Every node that is not its component's smallest node (the one kept, first in input
    order): `_order` (the node) and `cluster` (the kept node), sorted by `_order`."""
    nodes = np.asarray(nodes, dtype=np.int64)
    component = np.asarray(component, dtype=np.int64)
    removed = nodes != component
    order = np.argsort(nodes[removed], kind="stable")
    return pa.table(
        {
            "_order": pa.array(nodes[removed][order], pa.int64()),
            "cluster": pa.array(component[removed][order], pa.int64()),
        },
        schema=REMOVALS_SCHEMA,
    )


def center_clusters(
    src: np.ndarray,
    dst: np.ndarray,
    nodes: np.ndarray | None = None,
    priority: np.ndarray | None = None,
) -> pa.Table:
    """The removed rows of a greedy "centers" clustering of the duplicate edges
    `src[i]`-`dst[i]` (undirected, e.g. verified near-duplicate pairs): `_order` (a node
    not kept) and `cluster` (the kept node it duplicates), sorted by `_order`, the schema
    of `keep.choose_survivors`.

    Nodes are visited by priority (higher first; `priority[i]` belongs to `nodes[i]`), ties
    and the default (`priority=None`) by `_order` ascending. A node with an edge to a node
    already kept is removed, as a duplicate of the first such kept node in visiting
    order; any other node is kept. Unlike connected components, every removed node is
    linked by an edge of its own to the node kept for it: in a chain A-B-C with A and C
    not linked, A and C are kept and only B is removed.

    `nodes` lists every edge endpoint (it may list more); with `priority=None` it is not
    needed. Duplicate edges, both directions and self loops are allowed; the result does
    not depend on the order of the edges.

    The keep/remove decisions are made in whole-array rounds (each decides every node whose
    earlier neighbours are all decided, and removes every node with an earlier kept
    neighbour); the rare long chains left after a few rounds are finished by one pass
    over their remaining edges.
    """
    src = np.asarray(src, dtype=np.int64).ravel()
    dst = np.asarray(dst, dtype=np.int64).ravel()
    if src.shape != dst.shape:
        raise ValueError(f"center_clusters: {src.size} sources and {dst.size} targets")
    if src.size == 0:
        return REMOVALS_SCHEMA.empty_table()
    # The distinct endpoints (sorted) and, for each endpoint, its index among them.
    ends = np.concatenate([src, dst])
    by_value = np.argsort(ends, kind="stable")
    first = np.r_[True, ends[by_value][1:] != ends[by_value][:-1]]
    endpoints = ends[by_value][first]
    index = np.empty(ends.size, dtype=np.int64)
    index[by_value] = np.cumsum(first) - 1
    if priority is None:
        order = endpoints  # visiting order: by _order
        rank_of_endpoint = np.arange(endpoints.size)
    else:
        if nodes is None:
            raise ValueError("center_clusters: priority needs the nodes it belongs to")
        nodes = np.asarray(nodes, dtype=np.int64).ravel()
        priority = np.asarray(priority, dtype=np.float64).ravel()
        if nodes.shape != priority.shape:
            raise ValueError(f"center_clusters: {nodes.size} nodes and {priority.size} priorities")
        order = nodes[np.lexsort((nodes, -priority))]
        by_node = np.argsort(order, kind="stable")
        sorted_nodes = order[by_node]
        if np.any(sorted_nodes[1:] == sorted_nodes[:-1]):
            raise ValueError("center_clusters: nodes must be distinct")
        at = np.searchsorted(sorted_nodes, endpoints)
        if at[-1] >= sorted_nodes.size or not np.array_equal(sorted_nodes[at], endpoints):
            raise ValueError("center_clusters: an edge endpoint is missing from nodes")
        rank_of_endpoint = by_node[at]
    # Edges as (earlier, later) positions in visiting order, distinct, sorted by (later,
    # earlier), without self loops.
    rank_a, rank_b = np.split(rank_of_endpoint[index], 2)
    n = order.size
    key = np.maximum(rank_a, rank_b) * n + np.minimum(rank_a, rank_b)
    key = np.sort(key[rank_a != rank_b])
    key = key[np.r_[True, key[1:] != key[:-1]]] if key.size else key
    lo, hi = key % n, key // n
    status = _center_status(lo, hi, n)
    # Each removed node joins its first kept earlier neighbour: edges are sorted by
    # (later, earlier), so that is the first of its edges from a kept node.
    link = (status[lo] == _KEPT) & (status[hi] == _REMOVED)
    member, first = np.unique(hi[link], return_index=True)
    center = lo[link][first]
    removed, kept = order[member], order[center]
    result = np.argsort(removed, kind="stable")
    return pa.table(
        {
            "_order": pa.array(removed[result], pa.int64()),
            "cluster": pa.array(kept[result], pa.int64()),
        },
        schema=REMOVALS_SCHEMA,
    )


_UNDECIDED, _KEPT, _REMOVED = 0, 1, 2
_CENTER_ROUNDS = 16


def _center_status(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Kept or removed for each of `n` nodes numbered in visiting order, given distinct
    edges lo < hi: a node is kept iff none of its earlier neighbours is kept."""
    status = np.zeros(n, dtype=np.int8)
    for _ in range(_CENTER_ROUNDS):
        if lo.size == 0:
            break
        # Undecided nodes whose earlier neighbours are all removed (their edges are gone).
        waiting = np.zeros(n, dtype=bool)
        waiting[hi] = True
        status[(status == _UNDECIDED) & ~waiting] = _KEPT
        status[hi[status[lo] == _KEPT]] = _REMOVED
        live = (status[hi] == _UNDECIDED) & (status[lo] != _REMOVED)
        lo, hi = lo[live], hi[live]
    # Long chains: one pass in visiting order. Edges are sorted by their later end, so
    # when an edge is read, every edge into its earlier end has been read: that end is
    # removed now or never, and kept otherwise.
    removed = status == _REMOVED
    if lo.size:
        flags = removed.tolist()
        for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
            if not flags[a]:
                flags[b] = True
        removed = np.array(flags, dtype=bool)
    return np.where(removed, _REMOVED, _KEPT).astype(np.int8)
