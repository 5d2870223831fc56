"""A fixed-size quantile sketch for latencies: logarithmic buckets with a relative error.

The bucket of a value ``x > 0`` is ``k = round(ln(x) / ln(gamma))`` with
``gamma = (1 + a)**2``, and a quantile is answered with ``gamma**k``: every value of the
bucket lies within ``[gamma**(k - 1/2), gamma**(k + 1/2)]``, so the answer is within a share
``a`` of it (1% by default) -- the reported p50/p95/p99 is within ``a`` of the exact value
of the same rank (the DDSketch construction). The database computes the same bucket
(``round(ln(x) * factor)``, see ``queries.steps_sql``), so grouped rows feed ``add_bucket``.
Values at or below ``1e-9`` s count as zero.

Memory is bounded by ``max_bins`` buckets: past it the lowest buckets are folded into one
(their values then report as the smallest kept bucket), which only ever touches the low
quantiles; with 1% accuracy, 2,048 buckets span 1 ns to more than a year.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

ZERO = 1e-9


class LogSketch:
    __slots__ = ("bins", "count", "gamma", "inv_log_gamma", "max_bins", "total", "zeros")

    def __init__(self, relative_error: float = 0.01, max_bins: int = 2048) -> None:
        if not 0 < relative_error < 1:
            raise ValueError("relative_error must be between 0 and 1")
        self.gamma = (1 + relative_error) ** 2
        self.inv_log_gamma = 1.0 / math.log(self.gamma)
        self.max_bins = max_bins
        self.bins: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.total = 0.0

    def add(self, value: float, weight: int = 1) -> None:
        if value <= ZERO:
            self.add_bucket(None, weight)
            return
        self.total += value * weight
        self.add_bucket(round(math.log(value) * self.inv_log_gamma), weight)

    def add_bucket(self, key: int | None, count: int, total: float = 0.0) -> None:
        """Count ``count`` values of bucket ``key`` (None: zeros) summing to ``total``
        (for the mean), as the database grouped them."""
        if key is None:
            self.zeros += count
            self.count += count
            return
        self.count += count
        self.total += total
        bins = self.bins
        bins[key] = bins.get(key, 0) + count
        if len(bins) > self.max_bins:
            self._fold()

    def add_all(self, values: Iterable[float]) -> None:
        for value in values:
            self.add(value)

    def merge(self, other: LogSketch) -> None:
        if other.gamma != self.gamma:
            raise ValueError("only sketches of the same accuracy merge")
        self.count += other.count
        self.zeros += other.zeros
        self.total += other.total
        for key, n in other.bins.items():
            self.bins[key] = self.bins.get(key, 0) + n
        while len(self.bins) > self.max_bins:
            self._fold()

    def _fold(self) -> None:
        low = sorted(self.bins)[:2]
        self.bins[low[1]] += self.bins.pop(low[0])

    def quantile(self, q: float) -> float | None:
        """The value of rank ``q`` (0..1), within the relative error; None when empty."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if rank < seen:
                return float(self.gamma**key)
        return float(self.gamma ** max(self.bins))

    def summary(self) -> dict[str, float | None]:
        """``p50``, ``p95``, ``p99`` and ``mean`` (exact) in seconds."""
        keys = sorted(self.bins)
        out: dict[str, float | None] = {}
        if self.count == 0:
            return {"p50": None, "p95": None, "p99": None, "mean": None}
        # One pass over the sorted buckets for the three ranks.
        targets = [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)]
        seen = self.zeros
        index = 0
        for name, q in targets:
            rank = q * (self.count - 1)
            if rank < self.zeros:
                out[name] = 0.0
                continue
            while index < len(keys) and seen + self.bins[keys[index]] <= rank:
                seen += self.bins[keys[index]]
                index += 1
            key = keys[min(index, len(keys) - 1)]
            out[name] = round(self.gamma**key, 6)
        out["mean"] = round(self.total / self.count, 6)
        return out
