"""Exact metrics over a rolling window of the last ``W`` (score, label) pairs.

The online worker scores each micro-batch before it trains on it (progressive validation) and
reports metrics over the most recent rows. :class:`RollingWindow` keeps those rows in a fixed
ring buffer (bounded memory, vectorised appends) and computes the metrics on demand with the
exact functions of :mod:`lt4rec.metrics.ranking`: the AUC is the exact rank statistic over
the window (ties averaged), not an approximation by a few thresholds such as river's
``ROCAUC``. One sort of ``W`` values costs about a millisecond for ``W = 10,000``, so the
metrics are computed when they are read (progress line, checkpoint), never per row.

The window's contents round-trip through :meth:`RollingWindow.state` /
:meth:`RollingWindow.from_state` (plain arrays), so a restarted worker continues the same
window.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from lt4rec.metrics.ranking import auc, logloss


class RollingWindow:
    """The last ``size`` (probability, label) pairs of one task."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("rolling window size must be >= 1")
        self.size = size
        self._p = np.zeros(size, dtype=np.float64)  # [W] ring buffer of probabilities
        self._y = np.zeros(size, dtype=np.float64)  # [W] ring buffer of 0/1 labels
        self._next = 0  # ring position of the next write
        self.filled = 0  # rows in the window (<= size)
        self.seen = 0  # rows ever added

    def __len__(self) -> int:
        return self.filled

    def add(self, probs: ArrayLike, labels: ArrayLike) -> None:
        """Append rows (oldest first); the oldest rows of the window fall out."""
        p = np.asarray(probs, dtype=np.float64).ravel()
        y = np.asarray(labels, dtype=np.float64).ravel()
        if p.shape != y.shape:
            raise ValueError(f"probs ({p.size}) and labels ({y.size}) differ in length")
        n = p.size
        self.seen += n
        if n >= self.size:  # only the newest `size` rows survive
            p, y, n = p[-self.size :], y[-self.size :], self.size
        end = self._next + n
        if end <= self.size:
            self._p[self._next : end], self._y[self._next : end] = p, y
        else:
            k = self.size - self._next
            self._p[self._next :], self._y[self._next :] = p[:k], y[:k]
            self._p[: n - k], self._y[: n - k] = p[k:], y[k:]
        self._next = end % self.size
        self.filled = min(self.size, self.filled + n)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's (probabilities, labels), oldest first: two ``[filled]`` arrays."""
        if self.filled < self.size:
            return self._p[: self.filled].copy(), self._y[: self.filled].copy()
        order = np.r_[self._next : self.size, 0 : self._next]
        return self._p[order], self._y[order]

    def auc(self) -> float:
        """Exact ROC AUC of the window (nan with one class only)."""
        p, y = self.arrays()
        return auc(p, y)

    def logloss(self) -> float:
        p, y = self.arrays()
        return logloss(p, y)

    def calibration(self) -> float:
        """Mean predicted over mean observed rate (1 = calibrated; nan without positives)."""
        p, y = self.arrays()
        observed = float(y.sum())
        return float(p.sum()) / observed if observed > 0 else float("nan")

    def state(self) -> tuple[np.ndarray, np.ndarray, int]:
        """``(probs, labels, seen)`` to checkpoint; see :meth:`from_state`."""
        p, y = self.arrays()
        return p, y, self.seen

    @classmethod
    def from_state(cls, size: int, probs: ArrayLike, labels: ArrayLike, seen: int) -> RollingWindow:
        """A window of ``size`` holding the newest of ``probs`` / ``labels`` (oldest first)."""
        w = cls(size)
        w.add(probs, labels)
        w.seen = max(int(seen), w.filled)
        return w
