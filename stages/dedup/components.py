"""Connected components of the candidate-duplicate graph, in NumPy.

`connected_components` labels every node with the smallest node of its component, by
hooking and pointer jumping (in the manner of Shiloach and Vishkin 1982): each round
points the root of the larger end of every edge at the smaller root (`np.minimum.at`),
flattens every pointer to its root, and keeps only the edges whose ends still have
different roots. Rounds are whole-array operations, and their number grows with the
logarithm of the component diameter, not with the number of edges.
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
