"""``synthetic``: DLRM-like pooled embedding lookups, generated from a seed with nothing on disk.

The model, per table ``t`` (its own random stream, seeded by ``(seed, t)``):

- the table has ``n = rows[t]`` rows (Criteo Terabyte counts at 10M by default, dlrm_comp), of which
  the first ``min(n, max_rows)`` are used, initialised uniform in ``±sqrt(1/n)`` as DLRM does;
- a lookup picks rank ``r`` with probability ``∝ 1/r^zipf`` and maps it to a row through a seeded
  permutation, so popular rows are scattered over the table;
- each of the ``batch`` samples looks up a bag of ``1..bag_size`` rows (``bag_size`` if fixed) and
  sums it: the pooled lookup ``[batch, dim]`` that DLRM exchanges between GPUs and dlrm_comp dumps;
- between two dumps the table moves: each row the dumped batch touched ``m`` times takes an
  SGD-like step ``drift * sqrt(1/n) * sqrt(m) * N(0, 1)`` per dimension, the sum of ``m`` random
  unit upstream gradients. Hot rows therefore move most.

Field ``k`` of table ``t`` is named ``EMB_{t}_iter_{k}`` with ``iteration = k * dump_interval``; the
fields come table-major. One table is in memory at a time, and of it only the rows that some dumped
batch touches (no other row can show in a field). See docs/data.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ...base import DataSource, Field
from ...registry import register

# Rows of the 26 sparse features of Criteo Terabyte, hashed to 10M (the DLRM compression study, Feng et al., SC24, allenfengjr/dlrm_comp).
TERABYTE_ROWS = [
    9980333, 36084, 17217, 7378, 20134, 3, 7112, 1442, 61, 9758201, 1333352, 313829, 10,
    2208, 11156, 122, 4, 970, 14, 9994222, 7267859, 9946608, 415421, 12420, 101, 36,
]


@register("data", "synthetic")
class Synthetic(DataSource):
    """``tables * iterations`` float32 fields ``[batch, dim]``, the same bytes for the same ``seed``."""

    @dataclass
    class Config:
        tables: int = 26
        iterations: int = 3
        batch: int = 2048
        dim: int = 64
        rows: list[int] = field(default_factory=list)
        max_rows: int = 100000
        bag_size: int = 10
        bag_size_fixed: bool = False
        zipf: float = 1.05
        dump_interval: int = 4096
        drift: float = 0.01
        seed: int = 0

    def check(self):
        for param in ("tables", "iterations", "batch", "dim", "max_rows", "bag_size", "dump_interval"):
            self.require(param, low=1)
        self.require("zipf", low=0.0, open_low=True)
        self.require("drift", low=0.0)
        self.require("seed", low=0)
        bad = [n for n in self.config.rows if n < 1]
        if bad:
            self.fail("rows", f"holds row counts {bad}; each must be >= 1")

    def count(self) -> int:
        return self.config.tables * self.config.iterations

    def rows_of(self, table: int) -> int:
        """The table's true row count (before ``max_rows``); the list is cycled over the tables."""
        rows = self.config.rows or TERABYTE_ROWS
        return rows[table % len(rows)]

    def fields(self) -> Iterator[Field]:
        c = self.config
        for t in range(c.tables):
            yield from self._table_fields(t)

    def _table_fields(self, t: int) -> Iterator[Field]:
        c = self.config
        rng = np.random.default_rng([c.seed, t])
        n_true = self.rows_of(t)
        n = min(n_true, c.max_rows)
        cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -c.zipf)
        cdf /= cdf[-1]
        row_of_rank = rng.permutation(n)
        batches = [self._lookups(rng, cdf, row_of_rank) for _ in range(c.iterations)]
        # Only rows some batch touches can show in a field: hold just those, numbered 0..len(touched)-1.
        touched, local = np.unique(np.concatenate([rows for rows, _ in batches]), return_inverse=True)
        scale = np.float32(np.sqrt(1.0 / n_true))
        weights = rng.random((len(touched), c.dim), dtype=np.float32)
        weights *= 2 * scale
        weights -= scale
        end = 0
        for k, (rows, starts) in enumerate(batches):
            rows = local[end:end + len(rows)]
            end += len(rows)
            pooled = np.add.reduceat(weights[rows], starts, axis=0)
            yield Field(name=f"EMB_{t}_iter_{k}", data=pooled, table=t, iteration=k * c.dump_interval)
            if k + 1 < c.iterations and c.drift > 0:
                self._step(rng, weights, rows, scale)

    def _lookups(self, rng: np.random.Generator, cdf: np.ndarray, row_of_rank: np.ndarray):
        """Rows looked up by one batch (bags concatenated) and where each bag starts."""
        c = self.config
        if c.bag_size_fixed:
            sizes = np.full(c.batch, c.bag_size, dtype=np.int64)
        else:
            sizes = rng.integers(1, c.bag_size, size=c.batch, endpoint=True)
        starts = np.zeros(c.batch, dtype=np.int64)
        np.cumsum(sizes[:-1], out=starts[1:])
        ranks = np.searchsorted(cdf, rng.random(int(sizes.sum())), side="right")
        return row_of_rank[np.minimum(ranks, len(cdf) - 1)], starts

    def _step(self, rng, weights, rows, scale):
        """Move each row the batch touched ``m`` times by ``drift * scale * sqrt(m) * N(0, 1)`` per dimension.

        ``sqrt(m) * N(0, 1)`` is the sum of ``m`` independent ``N(0, 1)`` upstream gradients, drawn at once.
        """
        touched, times = np.unique(rows, return_counts=True)
        step = rng.standard_normal((len(touched), self.config.dim), dtype=np.float32)
        step *= (np.float32(self.config.drift) * scale * np.sqrt(times, dtype=np.float32))[:, None]
        weights[touched] += step
