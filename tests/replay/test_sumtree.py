"""worldmodels.replay.sumtree.SumTree against an independent computation: np.cumsum +
np.searchsorted on the same values, and sampling frequencies p_i / sum p."""

import numpy as np
import pytest

from worldmodels.replay.sumtree import SumTree


def reference(leaves: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The leaf i with prefix_{i-1} <= u < prefix_i, from a cumulative sum."""
    return np.searchsorted(np.cumsum(leaves), u, side="right")


@pytest.mark.parametrize("capacity", [1, 2, 3, 5, 8, 100, 1000, 4097])
def test_find_matches_cumsum_searchsorted(capacity):
    rng = np.random.default_rng(capacity)
    # Integer leaves (a third of them zero): every partial sum is exact in float64, so the two
    # computations must agree leaf for leaf, also for u on a boundary.
    leaves = rng.integers(0, 4, capacity).astype(np.float64)
    leaves[rng.random(capacity) < 0.3] = 0.0
    leaves[rng.integers(capacity)] += 1.0  # at least one positive leaf
    tree = SumTree(capacity)
    tree.set(np.arange(capacity), leaves)
    assert tree.total == leaves.sum()
    u = rng.random(5000) * leaves.sum()
    boundaries = np.cumsum(leaves)[:-1]
    u = np.concatenate([u, [0.0], boundaries[boundaries < leaves.sum()]])
    found = tree.find(u)
    np.testing.assert_array_equal(found, reference(leaves, u))
    assert (leaves[found] > 0).all()
    np.testing.assert_array_equal(tree.get(found), leaves[found])


def test_float_leaves_agree_up_to_rounding():
    rng = np.random.default_rng(1)
    leaves = rng.random(100_000) ** 3
    leaves[rng.random(leaves.size) < 0.2] = 0.0
    tree = SumTree(leaves.size)
    tree.set_all(leaves)
    u = rng.random(20_000) * tree.total
    found = tree.find(u)
    assert (leaves[found] > 0).all()
    ref = reference(leaves, u)
    # Sums in tree order and in cumsum order round differently: a u within a few ulps of a
    # boundary may land on the neighbouring positive leaf, nothing else.
    cdf = np.cumsum(leaves)
    differ = found != ref
    assert differ.mean() < 1e-3
    for i, v in zip(found[differ], u[differ]):
        lo = cdf[i] - leaves[i]
        assert lo - 1e-9 <= v <= cdf[i] + 1e-9


def test_sampling_frequencies_match_p_over_sum_p():
    rng = np.random.default_rng(2)
    p = np.array([0.5, 0.0, 3.0, 1.0, 0.0, 0.25, 2.0, 1.25, 0.0, 4.0])
    tree = SumTree(len(p))
    tree.set(np.arange(len(p)), p)
    n = 200_000
    counts = np.bincount(tree.find(rng.random(n) * tree.total), minlength=len(p))
    expected = p / p.sum()
    # 5 standard deviations of a binomial count
    tol = 5 * np.sqrt(n * expected * (1 - expected)) + 1
    assert np.all(np.abs(counts - n * expected) <= tol), (counts, n * expected)
    assert counts[p == 0].sum() == 0


def test_set_updates_sums_and_last_repeat_wins():
    tree = SumTree(6)
    tree.set(np.array([0, 3, 5]), np.array([1.0, 2.0, 4.0]))
    assert tree.total == 7.0
    tree.set(np.array([3, 1, 3]), np.array([10.0, 0.5, 0.25]))  # index 3 twice: 0.25 wins
    np.testing.assert_array_equal(tree.leaves, [1.0, 0.5, 0.0, 0.25, 0.0, 4.0])
    assert tree.total == 5.75
    tree.set(np.array([5]), 0.0)  # a scalar broadcasts
    assert tree.total == 1.75
    tree.set(np.array([], np.int64), np.array([]))  # nothing to do
    assert tree.total == 1.75


def test_tree_is_a_function_of_its_leaves():
    rng = np.random.default_rng(3)
    leaves = rng.random(1000)
    a, b, c = SumTree(1000), SumTree(1000), SumTree(5000)
    a.set_all(leaves)
    for idx in np.array_split(rng.permutation(1000), 37):  # any order of updates
        b.set(idx, rng.random(len(idx)))
        b.set(idx, leaves[idx])
    np.testing.assert_array_equal(a._tree, b._tree)
    # Zero leaves after the last one change no sum and no answer.
    c.set(np.arange(1000), leaves)
    assert c.total == a.total
    u = rng.random(10_000) * a.total
    np.testing.assert_array_equal(a.find(u), c.find(u))


def test_u_equal_to_total_gives_the_last_positive_leaf():
    tree = SumTree(8)
    tree.set(np.array([1, 4]), np.array([0.1, 0.2]))
    assert tree.find(np.array([tree.total]))[0] == 4
    assert tree.find(np.array([0.0]))[0] == 1
    assert tree.find(0.05)[0] == 1  # a scalar is a batch of one


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="capacity"):
        SumTree(0)
    tree = SumTree(4)
    with pytest.raises(ValueError, match="all zero"):
        tree.find(np.array([0.0]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        tree.set(np.array([4]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        tree.set(np.array([-1]), np.array([1.0]))
    with pytest.raises(ValueError, match="integers"):
        tree.set(np.array([0.5]), np.array([1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        tree.set(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError, match="finite"):
        tree.set(np.array([0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="shape"):
        tree.set_all(np.ones(3))
    tree.set(np.array([2]), np.array([1.0]))
    for bad in (-0.1, 1.5, np.inf, np.nan):
        with pytest.raises(ValueError, match="lie in"):
            tree.find(np.array([bad]))
    with pytest.raises(ValueError, match="1-D"):
        tree.find(np.zeros((2, 2)))
