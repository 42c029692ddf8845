"""Which duplicate is kept: first in input order, the longest, or the highest score."""

import numpy as np
import pytest

from stages.dedup.components import center_clusters
from stages.dedup.keep import choose_survivors


def _removed(table):
    return dict(zip(table["_order"].to_pylist(), table["cluster"].to_pylist(), strict=True))


def test_first_in_input_order_is_kept_by_default():
    removed = choose_survivors(np.array([7, 3, 9, 4]), np.array([1, 1, 1, 2]))
    assert _removed(removed) == {7: 3, 9: 3}


def test_highest_priority_is_kept_and_ties_go_to_the_first():
    nodes = np.array([10, 11, 12, 13, 14])
    groups = np.array([0, 0, 0, 1, 1])
    priority = np.array([5.0, 9.0, 9.0, 1.0, 1.0])
    assert _removed(choose_survivors(nodes, groups, priority)) == {10: 11, 12: 11, 14: 13}


def test_result_does_not_depend_on_row_order():
    rng = np.random.default_rng(0)
    nodes = rng.permutation(1000)
    groups = nodes % 37
    priority = (nodes * 13) % 7
    reference = _removed(choose_survivors(nodes, groups, priority))
    shuffle = rng.permutation(1000)
    assert (
        _removed(choose_survivors(nodes[shuffle], groups[shuffle], priority[shuffle])) == reference
    )
    assert len(reference) == 1000 - 37


def test_singletons_and_empty_input_remove_nothing():
    assert choose_survivors(np.array([1, 2, 3]), np.array([1, 2, 3])).num_rows == 0
    assert choose_survivors(np.array([]), np.array([])).num_rows == 0


# --- centers clustering ----------------------------------------------------------------


def _centers_reference(edges, nodes, priority):
    """The greedy rule read literally: visit by priority then _order, join the first kept
    neighbour visited before, else stay."""
    neighbours = {n: set() for n in nodes}
    for a, b in edges:
        if a != b:
            neighbours[a].add(b)
            neighbours[b].add(a)
    visit = sorted(nodes, key=lambda n: (-priority[n], n))
    kept, removed = [], {}
    for n in visit:
        center = next((k for k in kept if k in neighbours[n]), None)
        if center is None:
            kept.append(n)
        else:
            removed[n] = center
    return removed


def _centers(edges, nodes=None, priority=None):
    src = np.array([a for a, _ in edges], dtype=np.int64)
    dst = np.array([b for _, b in edges], dtype=np.int64)
    return _removed(center_clusters(src, dst, nodes, priority))


def test_centers_chain_keeps_both_ends_and_removes_only_the_middle():
    assert _centers([(0, 1), (1, 2)]) == {1: 0}


def test_centers_star_removes_every_leaf_into_the_hub_when_the_hub_comes_first():
    assert _centers([(0, 1), (0, 2), (0, 3)]) == {1: 0, 2: 0, 3: 0}


def test_centers_star_visited_from_a_leaf_keeps_the_other_leaves():
    # Leaf 0 first: the hub 5 is its duplicate; leaves 6 and 7 are not linked to 0.
    assert _centers([(5, 0), (5, 6), (5, 7)]) == {5: 0}


def test_centers_respect_priority_and_ties_go_to_the_first_in_input_order():
    edges = [(0, 1), (1, 2)]
    nodes = np.array([0, 1, 2])
    assert _centers(edges, nodes, np.array([1.0, 5.0, 1.0])) == {0: 1, 2: 1}
    assert _centers(edges, nodes, np.array([3.0, 3.0, 3.0])) == {1: 0}
    # A removed node joins the first kept neighbour in visiting order, not the smallest.
    assert _centers([(0, 2), (1, 2)], nodes, np.array([1.0, 2.0, 0.0])) == {2: 1}


def test_centers_do_not_depend_on_edge_order_direction_or_repeats():
    edges = [(0, 1), (1, 2), (2, 3), (3, 4), (1, 4), (7, 8)]
    expected = _centers(edges)
    rng = np.random.default_rng(0)
    for _ in range(5):
        shuffled = [edges[i] for i in rng.permutation(len(edges))]
        shuffled = [(b, a) if rng.random() < 0.5 else (a, b) for a, b in shuffled]
        assert _centers(shuffled + shuffled[:2] + [(3, 3)]) == expected


def test_centers_match_the_literal_greedy_rule_on_random_graphs_and_long_chains():
    rng = np.random.default_rng(1)
    for trial in range(40):
        n = int(rng.integers(2, 60))
        m = int(rng.integers(1, 3 * n))
        edges = [tuple(int(x) for x in rng.integers(0, n, 2)) for _ in range(m)]
        if trial % 4 == 0:  # a chain much longer than the vectorised rounds
            edges += [(i, i + 1) for i in range(n - 1)]
        nodes = sorted({x for e in edges for x in e})
        priority = {x: float(rng.integers(0, 3)) for x in nodes}
        got = _centers(edges, np.array(nodes), np.array([priority[x] for x in nodes]))
        assert got == _centers_reference(edges, nodes, priority)
        assert _centers(edges) == _centers_reference(edges, nodes, dict.fromkeys(nodes, 0.0))


def test_centers_every_removed_node_is_linked_to_its_kept_node():
    rng = np.random.default_rng(2)
    edges = {tuple(sorted(int(x) for x in rng.integers(0, 200, 2))) for _ in range(600)}
    removed = _centers(sorted(edges))
    assert removed
    for node, kept in removed.items():
        assert (min(node, kept), max(node, kept)) in edges
        assert kept not in removed


def test_centers_of_no_edges_remove_nothing_and_an_unknown_endpoint_is_an_error():
    assert center_clusters(np.array([]), np.array([])).num_rows == 0
    with pytest.raises(ValueError, match="missing from nodes"):
        center_clusters(np.array([0]), np.array([9]), np.array([0, 1]), np.array([1.0, 1.0]))
