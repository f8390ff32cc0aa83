"""A vectorised sum tree: batched point updates and prefix-sum searches in O(log N) each.

The proportional variant of prioritised replay (Schaul et al. 2016, Appendix B.2.1) samples
item i with probability p_i / sum_k p_k. A sum tree stores the p_i in its leaves and, in every
inner node, the sum of its two children, so the root holds sum_k p_k; drawing u uniformly in
[0, total) and walking down from the root (left when u is below the left child's sum, else
right with u reduced by it) finds the leaf i with prefix_{i-1} <= u < prefix_i, where
prefix_i = p_0 + ... + p_i. Both the walk and an update touch one node per level.

Here the whole batch moves one level per step, in numpy: ``find`` of B values and ``set`` of B
leaves cost O(B log N) array work and O(log N) Python steps, whatever N is.

Layout: ``capacity`` leaves rounded up to a power of two ``n``; node 1 is the root, node k has
children 2k and 2k + 1, leaf i is node n + i. Inner nodes are always recomputed as the sum of
their children (never adjusted by differences), so the tree is a function of its leaves alone:
two trees with the same leaves hold bit-identical sums and answer ``find`` identically, and
zero leaves appended at the end change no answer.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SumTree"]


class SumTree:
    """Sum tree over ``capacity`` non-negative float64 leaves, all zero at first.

    Args:
        capacity: number of leaves (>= 1); leaf indices are ``0 .. capacity - 1``.
    """

    def __init__(self, capacity: int):
        capacity = int(capacity)
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._n = 1 << (capacity - 1).bit_length()  # leaves, a power of two >= capacity
        self._depth = self._n.bit_length() - 1  # levels below the root
        self._tree = np.zeros(2 * self._n, np.float64)

    def __len__(self) -> int:
        return self.capacity

    def __repr__(self) -> str:
        return f"SumTree(capacity={self.capacity}, total={self.total:.6g})"

    @property
    def total(self) -> float:
        """Sum of all leaves (the root)."""
        return float(self._tree[1])

    @property
    def leaves(self) -> np.ndarray:
        """Read-only view of the leaf values ([capacity] float64)."""
        view = self._tree[self._n : self._n + self.capacity]
        view.flags.writeable = False
        return view

    def get(self, idx: np.ndarray) -> np.ndarray:
        """Leaf values at ``idx`` ([B] int -> [B] float64)."""
        idx = self._check_idx(idx)
        return self._tree[self._n + idx]

    def set(self, idx: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``idx`` ([B] int) to ``values`` ([B] or scalar, finite, >= 0) and update
        their ancestors; where an index repeats, its last value wins. O(B log N)."""
        idx = self._check_idx(idx)
        values = np.broadcast_to(np.asarray(values, np.float64), idx.shape)
        if idx.size == 0:
            return
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("SumTree values must be finite and >= 0")
        # The last occurrence of each index: unique over the reversed array.
        uniq, first_rev = np.unique(idx[::-1], return_index=True)
        self._tree[self._n + uniq] = values[::-1][first_rev]
        self._propagate(uniq + self._n)

    def set_all(self, values: np.ndarray) -> None:
        """Replace every leaf by ``values`` ([capacity], finite, >= 0); rebuilds all sums, O(N)."""
        values = np.asarray(values, np.float64)
        if values.shape != (self.capacity,):
            raise ValueError(f"SumTree.set_all needs shape ({self.capacity},), got {values.shape}")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("SumTree values must be finite and >= 0")
        tree = self._tree
        tree[self._n : self._n + self.capacity] = values
        tree[self._n + self.capacity :] = 0.0
        lo = self._n
        while lo > 1:  # level [lo, 2 lo) -> its parents [lo / 2, lo)
            np.add(tree[lo : 2 * lo : 2], tree[lo + 1 : 2 * lo : 2], out=tree[lo // 2 : lo])
            lo //= 2

    def find(self, u: np.ndarray) -> np.ndarray:
        """Leaf indices i with prefix_{i-1} <= u < prefix_i for each value of ``u`` ([B] float
        in [0, total]) -> [B] int64; every returned leaf has a positive value. O(B log N).

        The same leaves as ``np.searchsorted(np.cumsum(leaves), u, side="right")`` up to the
        rounding of the partial sums; ``u == total`` (float rounding of ``r * total`` with r < 1)
        gives the last positive leaf.
        """
        u = np.array(u, np.float64, copy=True, ndmin=1)
        if u.ndim != 1:
            raise ValueError(f"SumTree.find needs a 1-D array of values, got shape {u.shape}")
        total = self._tree[1]
        if not total > 0:
            raise ValueError("SumTree.find on a tree whose leaves are all zero")
        if not np.all(np.isfinite(u)) or np.any(u < 0) or np.any(u > total):
            raise ValueError(f"SumTree.find values must lie in [0, total = {total}]")
        node = self._descend(u.copy(), guard=False)
        # Rounding of u minus the partial sums can step past the last positive leaf of a
        # subtree onto a zero one; those few values walk again, never into an empty subtree.
        bad = self._tree[node] == 0
        if bad.any():
            node[bad] = self._descend(u[bad], guard=True)
        return node - self._n

    # ------------------------------------------------------------------ internals

    def _check_idx(self, idx: np.ndarray) -> np.ndarray:
        arr = np.asarray(idx)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"SumTree indices must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= self.capacity):
            raise ValueError(
                f"SumTree indices must lie in [0, {self.capacity}), got [{arr.min()}, {arr.max()}]"
            )
        return arr

    def _descend(self, u: np.ndarray, guard: bool) -> np.ndarray:
        """Nodes of the leaves that the values ``u`` ([B], overwritten) reach from the root."""
        tree = self._tree
        node = np.ones(u.shape, np.int64)
        for _ in range(self._depth):
            node <<= 1
            left_sum = tree[node]
            right = u >= left_sum
            if guard:  # an empty right subtree is never entered
                right &= tree[node + 1] > 0
            u -= left_sum * right
            node += right
        return node

    def _propagate(self, nodes: np.ndarray) -> None:
        """Recompute the ancestors of the leaf nodes ``nodes`` ([K] int64). A repeated parent
        is written more than once with the same sum, so no deduplication is needed."""
        tree = self._tree
        for _ in range(self._depth):
            nodes = nodes >> 1
            left = nodes << 1
            tree[nodes] = tree[left] + tree[left + 1]
