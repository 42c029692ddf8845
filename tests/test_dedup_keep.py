"""Which duplicate is kept: first in input order, the longest, or the highest score."""

import numpy as np

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
