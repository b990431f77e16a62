"""A vectorised sum-tree and min-tree over non-negative priorities, for prioritized experience replay.

Prioritized replay (Schaul et al. 2016, "Prioritized Experience Replay", Sec. 3.3 and Appendix B.2.1) samples
transition ``i`` with probability ``P(i) = p_i / sum_k p_k`` by a prefix-sum search in a sum-tree, stratified over
``B`` equal segments of the total mass, and normalises the importance weights by their maximum, i.e. by the minimum
priority, kept in a min-tree.

Layout. The trees here are ``F``-ary (``fanout``, 16 by default) rather than binary: level 0 holds the leaves, level
``k + 1`` holds the sums (and the minima) of ``F`` consecutive nodes of level ``k``, and the last level (at most
``top_size`` nodes) is scanned as a whole. A batch descends one level per iteration (``log_F(capacity / top_size)``
iterations, two at 1e6 leaves) with NumPy operations on the whole batch: the ``F`` children of each sampled node are
gathered as one ``[B, F]`` block, their prefix sums come from one matrix product (as ``[F + 1, B]``, so that the
comparisons below run along contiguous rows), and the child holding ``u`` is the number of inclusive prefix sums
``<= u``. The top level is searched with a cumulative sum and ``np.searchsorted``. NumPy costs about a microsecond per
call at these sizes, so four binary levels cost more than one 16-ary level, and a binary tree of 2^20 leaves (20
levels down, 20 up, twice for the min-tree) cannot meet the replay buffer's speed target; the wide tree does. Batch
updates write the leaves, then recompute each touched parent from all its children, level by level: no drift
accumulates, and duplicate indices do no harm.

Memory: the sum levels hold ``capacity * (1 + 1/F + 1/F^2 + ...)`` float64 values and the min levels
``capacity * (1/F + 1/F^2 + ...)``, i.e. about ``8 * (1 + 2 / (F - 1))`` bytes per leaf (9.1 bytes at ``F = 16``), one
float64 array of the capacity plus 13%. The minima ignore zero leaves (never written, or priority 0): they are the
minimum over the leaves that can be sampled (a min node with no positive leaf below holds inf). The leaves' minimum
over positive values is taken on the bit patterns as unsigned integers minus one, which keeps the order of
positive floats and sends +0.0 and -0.0 above all of them. Leaves are padded to ``n_top * F^(L - 1)`` (fewer than
``F^(L - 1)`` extra zero leaves) so that every node has its ``F`` children.

Floating point. A prefix-sum search must never return a leaf of priority 0 (a slot not yet written). Choosing the
child whose exclusive prefix sum is ``<= u`` and whose inclusive one is ``> u`` skips zero children (their two prefix
sums are equal), provided ``u`` is below the node's mass and the prefix sums are non-decreasing. Neither is certain to
the last bit in the fast pass (a parent's stored sum and its children's prefix sums are rounded differently; a matrix
product need not add in sequence), so every sampled leaf is checked, and the (rare) draws that landed on a zero leaf
are searched again exactly: sequential ``np.cumsum`` prefix sums (monotone) and ``u`` clipped below each node's mass.
"""

from __future__ import annotations

import numpy as np
import torch as th


class SumMinTree:
    """Sum and minimum of ``capacity`` non-negative leaves, with batch search and batch updates.

    :param capacity: number of leaves (for a replay buffer: ``buffer_size * n_envs``, one per (position, env) pair).
    :param fanout: children per node (``F``); a power of two.
    :param top_size: the last level has at most this many nodes; it is scanned with a cumulative sum at each search.
    """

    def __init__(self, capacity: int, fanout: int = 16, top_size: int = 4096) -> None:
        if capacity < 1:
            raise ValueError(f"SumMinTree: capacity must be >= 1, got {capacity!r}")
        if fanout < 2 or fanout & (fanout - 1):
            raise ValueError(f"SumMinTree: fanout must be a power of two >= 2, got {fanout!r}")
        if top_size < 1:
            raise ValueError(f"SumMinTree: top_size must be >= 1, got {top_size!r}")
        self.capacity = capacity
        self.fanout = fanout
        self._shift = fanout.bit_length() - 1  # node // F == node >> shift
        # Level sizes: n_top * F^(L - 1 - k) for level k, so that every node, padding included, has its F children
        # (padding leaves stay 0: no mass, no positive leaf; a search that overshoots through rounding lands on one
        # and is caught) and level k reshapes to [n_k / F, F] rows of siblings. Padding: under F^(L - 1) leaves.
        n_levels = 1
        while -(-capacity // fanout ** (n_levels - 1)) > top_size:
            n_levels += 1
        n_top = -(-capacity // fanout ** (n_levels - 1))
        sizes = [n_top * fanout ** (n_levels - 1 - level) for level in range(n_levels)]
        self._sums = [np.zeros(n, dtype=np.float64) for n in sizes]  # [n_k] per level, level 0 = leaves
        # Minimum over the positive leaves below each node, inf if none; _mins[0] is unused (the leaves are _sums[0]).
        self._mins = [np.empty(0)] + [np.full(n, np.inf) for n in sizes[1:]]
        # Row k of (_lower @ block.T) is the sum of the first k children of each node: [F + 1, F] @ [F, B] -> [F + 1, B].
        self._lower = np.tril(np.ones((fanout + 1, fanout)), k=-1)  # [F + 1, F]
        self._ones = np.ones(fanout)  # [F]
        self._make_row_views()

    def _make_row_views(self) -> None:
        """[n_k / F, F] views of the levels below the top (rows of siblings); not pickled (a pickled view would be a
        copy), rebuilt by ``__setstate__``."""
        self._sum_rows = [level.reshape(-1, self.fanout) for level in self._sums[:-1]]
        self._min_rows = [np.empty((0, self.fanout))] + [level.reshape(-1, self.fanout) for level in self._mins[1:-1]]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_sum_rows"], state["_min_rows"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_row_views()

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
            return float(_positive_min(self._sums[0][None, : self.capacity])[0])
        return float(self._mins[-1].min())

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        """Leaf values at ``indices``."""
        return self._sums[0][: self.capacity][indices]

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set ``leaf[indices] = values`` and recompute every ancestor of the written leaves.

        Duplicate indices: the value written last in the array wins (NumPy assigns a 1-D fancy index in order);
        either way the tree stays consistent, since each parent is recomputed from its children as written.
        ``values`` must be finite and non-negative (the replay buffer checks them before calling).

        :param indices: [B] leaf indices in ``[0, capacity)``.
        :param values: [B] new leaf values.
        """
        self._sums[0][indices] = values
        nodes = np.asarray(indices, dtype=np.int64)
        for level in range(1, self.n_levels):
            nodes = nodes >> self._shift  # [B] parents at this level
            siblings = self._sum_rows[level - 1].take(nodes, axis=0)  # [B, F]
            self._sums[level][nodes] = siblings @ self._ones
            if level == 1:
                self._mins[level][nodes] = _positive_min(siblings)
            else:
                child_mins = self._min_rows[level - 1].take(nodes, axis=0)  # [B, F]
                self._mins[level][nodes] = child_mins.T.copy().min(axis=0)  # contiguous [F, B]: vectorised min

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index ``i`` with ``cumsum[i - 1] <= mass < cumsum[i]`` for each value (the prefix-sum search).

        Values are clipped into ``[0, total)``; the leaf returned always has a positive value (if any leaf has).

        :param mass: [B] prefix-sum targets.
        :return: [B] int64 leaf indices.
        """
        return self._find(np.maximum(np.asarray(mass, dtype=np.float64), 0.0), self._top_cumsum())[0]

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Stratified draws (Schaul et al. 2016, Appendix B.2.1): the total mass is split into ``batch_size`` equal
        segments and one value is drawn uniformly in each, with NumPy's global RNG (as SB3's buffers draw).

        :return: [batch_size] int64 leaf indices, each drawn with probability proportional to its value, and
            [batch_size] their values.
        """
        cumsum = self._top_cumsum()
        total = cumsum[-1]
        if not total > 0.0:
            raise ValueError("SumMinTree: cannot sample, every priority is 0")
        mass = np.random.random(batch_size)  # [B]
        mass += np.arange(batch_size)
        mass *= total / batch_size  # [B]: one uniform draw in each segment, sorted, >= 0
        return self._find(mass, cumsum)

    def _top_cumsum(self) -> np.ndarray:
        """[n_top + 1] cumulative sum of the top level, from 0 (sequential, so non-decreasing). torch's CPU scan is 3x
        faster than ``np.cumsum`` on float64 at these sizes."""
        top = self._sums[-1]
        cumsum = np.empty(top.size + 1)
        cumsum[0] = 0.0
        th.cumsum(th.from_numpy(top), 0, out=th.from_numpy(cumsum[1:]))
        return cumsum

    def _find(self, mass: np.ndarray, cumsum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``find`` for non-negative ``mass``, also returning the leaf values."""
        leaves = self._descend(mass, cumsum, exact=False)
        values = self._sums[0].take(leaves)  # [B]
        if values.min() <= 0.0:
            bad = values <= 0.0  # [B]
            leaves[bad] = self._descend(mass[bad], cumsum, exact=True)
            values = self._sums[0].take(leaves)
        return leaves, values

    def _descend(self, mass: np.ndarray, cumsum: np.ndarray, exact: bool) -> np.ndarray:
        """One pass down the levels; ``exact`` is the slower pass that cannot return a zero leaf (see the module).

        :param mass: [B] non-negative prefix-sum targets.
        :param cumsum: the top level's ``_top_cumsum()``.
        """
        fanout, batch = self.fanout, mass.size
        if exact:  # u strictly below the total: the node found has cumsum[j] <= u < cumsum[j + 1], a positive node
            mass = np.minimum(mass, np.nextafter(cumsum[-1], 0.0))
        # Top node: the number of inner boundaries cumsum[1:-1] <= u, in [0, n_top); u at or above the total (rounding,
        # fast pass only) gives the last node.
        nodes = np.searchsorted(cumsum[1:-1], mass, side="right")  # [B]
        u = mass - cumsum.take(nodes)  # [B], mass left inside the node
        columns = np.arange(batch)  # [B]
        row_starts = np.arange(0, fanout * batch, batch)  # [F]: where row k of a flattened [F + 1, B] block starts
        for level in range(self.n_levels - 2, -1, -1):
            siblings = self._sum_rows[level].take(nodes, axis=0)  # [B, F] children of each node
            if exact:
                prefix = np.zeros((fanout + 1, batch))
                np.cumsum(siblings.T, axis=0, out=prefix[1:])  # [F + 1, B], sequential
                u = np.minimum(u, np.nextafter(prefix[-1], 0.0))
            else:
                prefix = self._lower @ siblings.T  # [F + 1, B]: row k = sum of the first k children
            # Children whose inclusive prefix sum is <= u lie entirely below u: their count is the child holding u.
            # The last child's inclusive sum (the node's mass) is left out, so u at or above the mass (through
            # rounding, in the fast pass) gives the last child rather than a child past the end.
            child = (prefix[1:fanout] <= u).view(np.uint8).sum(axis=0, dtype=np.uint8)  # [B] in [0, F)
            u = u - prefix.ravel().take(row_starts.take(child) + columns)
            nodes = nodes * fanout + child
        return nodes


def _positive_min(rows: np.ndarray) -> np.ndarray:
    """Minimum of the positive values of each row of a non-negative ``[B, F]`` array, inf where none is positive.

    As unsigned integers, the bit patterns of non-negative floats keep their order; subtracting 1 sends +0.0 to the
    largest value and -0.0 to one above inf's, so the integer minimum skips zeros; adding 1 back gives a zero for an
    all-zero row.
    """
    bits = rows.T.copy(order="C").view(np.uint64)  # [F, B], contiguous rows: the reduction below is vectorised
    bits -= np.uint64(1)
    smallest = bits.min(axis=0)  # [B]
    smallest += np.uint64(1)  # wraps to 0 for an all-zero row
    result = smallest.view(np.float64)
    result[result == 0.0] = np.inf
    return result
