"""A vectorised sum-tree and min-tree over non-negative priorities, for prioritized experience replay.

Prioritized replay (Schaul et al. 2016, "Prioritized Experience Replay", Sec. 3.3 and Appendix B.2.1) samples
transition ``i`` with probability ``P(i) = p_i / sum_k p_k`` by a prefix-sum search in a sum-tree, stratified over
``B`` equal segments of the total mass, and normalises the importance weights by their maximum, i.e. by the minimum
priority, kept in a min-tree.

Layout. The trees here are ``F``-ary (``fanout``, 16 by default) rather than binary: level 0 holds the leaves, level
``k + 1`` holds the sums (and the minima) of ``F`` consecutive nodes of level ``k``, and the last level (at most
``top_size`` nodes) is scanned as a whole. A batch descends one level per iteration (``log_F(capacity / top_size)``
iterations, two at 1e6 leaves) with NumPy operations on the whole batch: the ``F`` children of each sampled node are
gathered as one ``[B, F]`` block, their prefix sums come from one matrix product, and the child holding ``u`` is the
first prefix sum above it (``argmax`` of a boolean block). The top level is searched with ``np.cumsum`` and
``np.searchsorted``. NumPy costs about a microsecond per call at these sizes, so ten binary levels cost more than one
16-ary level, and a binary tree of 2^20 leaves (20 levels down, 20 up, twice for the min-tree) cannot meet the replay
buffer's speed target; the wide tree does. Batch updates write the leaves, then recompute each touched parent from
all its children, level by level: no drift accumulates, and duplicate indices do no harm.

Memory: the sum levels hold ``capacity * (1 + 1/F + 1/F^2 + ...)`` float64 values and the min levels
``capacity * (1/F + 1/F^2 + ...)``, i.e. about ``8 * (1 + 2 / (F - 1))`` bytes per leaf (9.1 bytes at ``F = 16``), one
float64 array of the capacity plus 13%. The minima ignore zero leaves (never written, or priority 0): they are the
minimum over the leaves that can be sampled.

Floating point. A prefix-sum search must never return a leaf of priority 0 (a slot not yet written): ``u`` is kept
strictly below the mass of the node it descends into, and a child is chosen as the first whose inclusive prefix sum
exceeds ``u``, which skips zero children as long as the prefix sums are non-decreasing. The matrix product that gives
them is not guaranteed to be monotone to the last bit, so every sampled leaf is checked, and the (rare) draws that
landed on a zero leaf are searched again with ``np.cumsum``, whose sequential sums are monotone.
"""

from __future__ import annotations

import numpy as np


class SumMinTree:
    """Sum and minimum of ``capacity`` non-negative leaves, with batch search and batch updates.

    :param capacity: number of leaves (for a replay buffer: ``buffer_size * n_envs``, one per (position, env) pair).
    :param fanout: children per node (``F``); a power of two.
    :param top_size: the last level has at most this many nodes; it is scanned with ``np.cumsum`` at each search.
    """

    def __init__(self, capacity: int, fanout: int = 16, top_size: int = 2048) -> None:
        if capacity < 1:
            raise ValueError(f"SumMinTree: capacity must be >= 1, got {capacity!r}")
        if fanout < 2 or fanout & (fanout - 1):
            raise ValueError(f"SumMinTree: fanout must be a power of two >= 2, got {fanout!r}")
        if top_size < 1:
            raise ValueError(f"SumMinTree: top_size must be >= 1, got {top_size!r}")
        self.capacity = capacity
        self.fanout = fanout
        # Level sizes: every level below the top is padded to a multiple of F (padding leaves stay 0, padding
        # minima stay inf), so level k reshapes to [n_k / F, F] rows of siblings.
        sizes = [capacity]
        while sizes[-1] > top_size:
            sizes[-1] = -(-sizes[-1] // fanout) * fanout
            sizes.append(sizes[-1] // fanout)
        self._sums = [np.zeros(n, dtype=np.float64) for n in sizes]  # [n_k] per level, level 0 = leaves
        # _mins[0] is unused (the leaves are _sums[0], zeros ignored when their parents' minima are computed).
        self._mins = [np.empty(0)] + [np.full(n, np.inf, dtype=np.float64) for n in sizes[1:]]
        # Inclusive prefix sums of a [B, F] sibling block, with a leading zero column: block @ _prefix -> [B, F + 1].
        self._prefix = np.triu(np.ones((fanout, fanout + 1)), k=1)  # [F, F + 1]
        self._ones = np.ones(fanout)  # [F]

    @property
    def n_levels(self) -> int:
        """Number of levels, leaves and top included."""
        return len(self._sums)

    @property
    def nbytes(self) -> int:
        """Bytes held by the sum and min levels (the tree's whole memory)."""
        return sum(a.nbytes for a in self._sums) + sum(a.nbytes for a in self._mins)

    def total(self) -> float:
        """Sum of all leaves."""
        return float(self._sums[-1].sum())

    def min(self) -> float:
        """Minimum over the positive leaves (``inf`` if none is positive)."""
        if self.n_levels == 1:
            leaves = self._sums[0]
            positive = leaves[leaves > 0]
            return float(positive.min()) if positive.size else float("inf")
        return float(self._mins[-1].min())

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        """Leaf values at ``indices``."""
        return self._sums[0][: self.capacity][indices]

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set ``leaf[indices] = values`` and recompute every ancestor of the written leaves.

        Duplicate indices: the value written last in the array wins (NumPy assigns a 1-D fancy index in order);
        either way the tree stays consistent, since each parent is recomputed from the leaves as written.
        ``values`` must be finite and non-negative (the replay buffer checks them before calling).

        :param indices: [B] leaf indices in ``[0, capacity)``.
        :param values: [B] new leaf values.
        """
        fanout = self.fanout
        # + 0.0 turns -0.0 into +0.0, whose bit pattern the min below relies on.
        self._sums[0][indices] = np.asarray(values, dtype=np.float64) + 0.0
        nodes = np.asarray(indices, dtype=np.int64)
        for level in range(1, self.n_levels):
            nodes = nodes // fanout  # [B] parents at this level
            siblings = self._sums[level - 1].reshape(-1, fanout).take(nodes, axis=0)  # [B, F]
            self._sums[level][nodes] = siblings @ self._ones
            if level == 1:
                # Min over positive leaves: as unsigned integers, the bit patterns of non-negative floats keep their
                # order, and subtracting 1 sends 0.0 (and only 0.0) to the largest value.
                shifted = siblings.view(np.uint64) - np.uint64(1)  # [B, F]
                block_min = (np.ascontiguousarray(shifted.T).min(axis=0) + np.uint64(1)).view(np.float64)  # [B]
                block_min[block_min == 0.0] = np.inf  # a block of zeros has no positive leaf
            else:
                child_mins = self._mins[level - 1].reshape(-1, fanout).take(nodes, axis=0)  # [B, F]
                block_min = np.ascontiguousarray(child_mins.T).min(axis=0)  # [B]
            self._mins[level][nodes] = block_min

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index ``i`` with ``cumsum[i - 1] <= mass < cumsum[i]`` for each value (the prefix-sum search).

        Values are clipped into ``[0, total)``; the leaf returned always has a positive value. Raises ``ValueError``
        if every leaf is 0.

        :param mass: [B] prefix-sum targets.
        :return: [B] int64 leaf indices.
        """
        mass = np.asarray(mass, dtype=np.float64)
        leaves = self._descend(mass, exact=False)
        bad = self._sums[0].take(leaves) <= 0.0  # [B]
        if bad.any():
            leaves[bad] = self._descend(mass[bad], exact=True)
        return leaves

    def sample(self, batch_size: int) -> np.ndarray:
        """Stratified draws (Schaul et al. 2016, Appendix B.2.1): the total mass is split into ``batch_size`` equal
        segments and one value is drawn uniformly in each, with NumPy's global RNG (as SB3's buffers draw).

        :return: [batch_size] int64 leaf indices, each drawn with probability proportional to its value.
        """
        total = self.total()
        if not total > 0.0:
            raise ValueError("SumMinTree: cannot sample, every priority is 0")
        mass = (np.arange(batch_size) + np.random.random(batch_size)) * (total / batch_size)  # [B], sorted
        return self.find(mass)

    def _descend(self, mass: np.ndarray, exact: bool) -> np.ndarray:
        """One pass down the levels. ``exact`` uses sequential ``np.cumsum`` prefix sums (monotone, slower)."""
        fanout = self.fanout
        top = self._sums[-1]
        cumsum = np.empty(top.size + 1)
        cumsum[0] = 0.0
        np.cumsum(top, out=cumsum[1:])  # [n_top + 1]
        # Keep u strictly below the total, so the node found has cumsum[j] <= u < cumsum[j + 1]: a positive node.
        u = np.minimum(mass, np.nextafter(cumsum[-1], 0.0))
        u = np.maximum(u, 0.0)
        nodes = np.searchsorted(cumsum, u, side="right") - 1  # [B]
        u = u - cumsum.take(nodes)  # [B], mass left inside the node
        batch = np.arange(u.size) * (fanout + 1)  # [B] row offsets into the flattened [B, F + 1] prefix sums
        for level in range(self.n_levels - 2, -1, -1):
            siblings = self._sums[level].reshape(-1, fanout).take(nodes, axis=0)  # [B, F] children of each node
            if exact:
                prefix = np.zeros((u.size, fanout + 1))
                np.cumsum(siblings, axis=1, out=prefix[:, 1:])  # [B, F + 1]
            else:
                prefix = siblings @ self._prefix  # [B, F + 1]: 0, c0, c0 + c1, ...
            u = np.minimum(u, np.nextafter(prefix[:, -1], 0.0))
            # First inclusive prefix sum above u (column 0 is 0 <= u, never above), 1-based: the child's index + 1.
            # A row of zeros (reached only through a non-monotone prefix above) gives 0: clip, the leaf check catches it.
            child = np.maximum((prefix > u[:, None]).argmax(axis=1), 1)  # [B] in [1, F]
            u = u - prefix.ravel().take(batch + child - 1)
            nodes = nodes * fanout + (child - 1)
        return nodes
