"""``criteo_synthetic``: Criteo-like click data from a seed, with a planted ground truth.

A hidden model gives each sample's click probability, so a trained model's test AUC can be read
against the best any model can reach (``oracle_auc``). Per sample:

- 13 dense counts ``raw_j = floor(exp(mu_j + sigma_j·z))`` (non-negative, heavy-tailed like
  Criteo's integer features), missing (0) with probability ``q_j``; the features are
  ``d_j = log(1 + raw_j)``, the preprocessing of the real data;
- 26 categorical features: table ``t`` has ``n_t = min(rows[t], max_ind_range)`` categories;
  popularity rank ``r`` is drawn with probability ``∫_r^{r+1} x^-zipf dx / ∫_1^{n_t+1} x^-zipf dx``
  (``≈ r^-zipf``: the continuous power law, sampled by its inverse CDF and floored) and mapped to an id by a seeded affine bijection of
  ``0..n_t-1``, so hot ids are scattered; ``multi_hot`` ids per table (bags);
- click logit ``b + Σ_j w_j d_j + Σ_t a_t e_t(id) + Σ_{t<s} <u_t(id), u_s(id')>``: dense weights,
  a per-category effect ``e ~ N(0, 1)`` scaled per table, and a rank-``rank`` interaction between
  hidden category vectors ``u ~ N(0, s² I)`` (the pairwise dot products a DLRM's interaction layer
  can learn); a bag contributes the mean of its members. ``b`` is solved so the mean click rate is
  ``click_rate``. The label is Bernoulli(sigmoid(logit)).

Category effects and vectors are hashes of ``(seed, table, id)`` (splitmix64, then Box-Muller, in one
numba loop), so
nothing is stored per category. Samples come in blocks of 4096, each generated from
``(seed, split, block)``; a batch is cut from the blocks, so sample ``i`` of a split does not depend
on the batch size, ``start`` costs nothing, and train and test are independent streams.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numba
import numpy as np
from scipy.special import expit

from ...base import ClickBatch, ClickData
from ...registry import register

# Rows of the 26 categorical features of Criteo Kaggle (as counted by facebookresearch/dlrm, used by allenfengjr/dlrm_comp).
KAGGLE_ROWS = [
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
    5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
]
N_DENSE = 13
BLOCK = 4096
SPLITS = {"train": 0, "test": 1}
_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, inline="always")
def _mix(x):
    """splitmix64's finaliser (Steele et al. 2014): a bijective hash of a uint64."""
    x = x + _GOLD
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _normal(h):
    """A standard normal from one uint64 hash: Box-Muller (1958) on its two 32-bit halves."""
    u1 = (np.float64(h >> np.uint64(32)) + 0.5) * 2.0 ** -32
    u2 = np.float64(h & np.uint64(0xFFFFFFFF)) * 2.0 ** -32
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2)


@numba.njit(cache=True, nogil=True)
def _hidden_terms(keys, ids, a, s, rank):
    """Per sample: ``Σ_t a_t·e_t`` and ``Σ_{t<s} <u_t, u_s>`` over its ids ``[tables, n, bag]``.

    Category ``id`` of table ``t`` has ``e = N(hash(k, 1))`` and ``u_r = s·N(hash(k, 2 + r))`` with
    ``k = keys[t] ^ mix(id)``; a bag takes the mean of its members.
    """
    tables, n, bag = ids.shape
    effect = np.zeros(n)
    pairs = np.zeros(n)
    total = np.zeros(rank)
    vec = np.zeros(rank)
    for i in range(n):
        total[:] = 0.0
        squares = 0.0
        for t in range(tables):
            vec[:] = 0.0
            e = 0.0
            for b in range(bag):
                key = keys[t] ^ _mix(np.uint64(ids[t, i, b]))
                e += _normal(_mix(key + np.uint64(1)))
                for r in range(rank):
                    vec[r] += _normal(_mix(key + np.uint64(2 + r)))
            effect[i] += a[t] * e / bag
            for r in range(rank):
                v = vec[r] * s / bag
                total[r] += v
                squares += v * v
        pairs[i] = 0.5 * ((total ** 2).sum() - squares)  # Σ_{t<s} <u_t, u_s> = (|Σu|² - Σ|u|²) / 2
    return effect, pairs


@register("data", "criteo_synthetic")
class CriteoSynthetic(ClickData):
    """Criteo-shaped samples (13 dense, 26 categorical) whose click probability is known exactly."""

    @dataclass
    class Config:
        rows: list[int] = field(default_factory=list)
        max_ind_range: int = 100_000
        zipf: float = 1.1
        multi_hot: int = 1
        train_samples: int = 4_194_304
        test_samples: int = 262_144
        click_rate: float = 0.25
        rank: int = 4
        seed: int = 0

    def check(self):
        c = self.config
        for param in ("multi_hot", "train_samples", "test_samples", "rank"):
            self.require(param, low=1)
        self.require("max_ind_range", low=1, high=2 ** 31)
        self.require("zipf", low=0.0, open_low=True)
        self.require("click_rate", low=0.01, high=0.99)
        self.require("seed", low=0)
        if any(r < 1 for r in c.rows):
            self.fail("rows", f"holds {c.rows}; each table needs >= 1 row")
        self._model()

    def _model(self) -> None:
        """Draw the hidden model from ``seed`` and solve the bias for the click rate."""
        c = self.config
        rng = np.random.default_rng([c.seed, 2])
        self._rows = np.array([min(r, c.max_ind_range) for r in (c.rows or KAGGLE_ROWS)], dtype=np.int64)
        n_tables = len(self._rows)
        self._mu = rng.uniform(0.0, 4.0, N_DENSE)
        self._sigma = rng.uniform(0.5, 2.0, N_DENSE)
        self._missing = rng.uniform(0.0, 0.4, N_DENSE)
        self._w = rng.normal(0.0, 0.15, N_DENSE)
        self._a = rng.uniform(0.0, 0.5, n_tables)
        self._s = (1.0 / (n_tables * (n_tables - 1) / 2 * c.rank)) ** 0.25 if n_tables > 1 else 0.0
        self._perm_a = np.array([_coprime(rng, n) for n in self._rows], dtype=np.uint64)
        self._perm_b = np.array([rng.integers(n) for n in self._rows], dtype=np.uint64)
        self._keys = np.array([_mix(np.uint64((c.seed * int(_M2) + t * int(_M1)) % 2 ** 64)) for t in range(n_tables)],
                              np.uint64)
        self._bias = 0.0
        logits = self._sample(np.random.default_rng([c.seed, 3]), 16384)[-1]
        lo, hi = -20.0, 20.0
        for _ in range(60):  # bisection: mean sigmoid(logit + b) = click_rate
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if expit(logits + mid).mean() < c.click_rate else (lo, mid)
        self._bias = (lo + hi) / 2

    def n_dense(self) -> int:
        return N_DENSE

    def table_rows(self) -> list[int]:
        """``min(rows[t], max_ind_range)``; ``rows`` defaults to the Criteo Kaggle counts."""
        return [int(n) for n in self._rows]

    def samples(self, split: str) -> int:
        if split not in SPLITS:
            raise ValueError(f"split is '{split}'; allowed: train, test")
        return self.config.train_samples if split == "train" else self.config.test_samples

    def _sample(self, rng: np.random.Generator, n: int):
        """``n`` samples: dense features, ids ``[tables, n, multi_hot]``, logits (with the current bias)."""
        c = self.config
        raw = np.floor(np.exp(self._mu + self._sigma * rng.standard_normal((n, N_DENSE))))
        raw[rng.random((n, N_DENSE)) < self._missing] = 0
        dense = np.log1p(raw).astype(np.float32)
        u = rng.random((len(self._rows), n, c.multi_hot))
        n_t = self._rows[:, None, None].astype(np.float64)
        if c.zipf == 1.0:
            x = (n_t + 1) ** u
        else:
            x = (1 + u * ((n_t + 1) ** (1 - c.zipf) - 1)) ** (1 / (1 - c.zipf))
        rank = np.minimum(np.floor(x).astype(np.int64), self._rows[:, None, None]) - 1
        ids = ((rank.astype(np.uint64) * self._perm_a[:, None, None] + self._perm_b[:, None, None])
               % self._rows[:, None, None].astype(np.uint64)).astype(np.int64)
        effect, pairs = _hidden_terms(self._keys, ids, self._a, self._s, c.rank)
        logits = self._bias + dense.astype(np.float64) @ self._w + effect + pairs
        return dense, ids, logits

    def _block(self, split: str, b: int):
        """Block ``b`` of ``split``: (label, dense, ids, probability); a pure function of (seed, split, b)."""
        n = min(BLOCK, self.samples(split) - b * BLOCK)
        rng = np.random.default_rng([self.config.seed, SPLITS[split], b])
        dense, ids, logits = self._sample(rng, n)
        p = expit(logits)
        label = (rng.random(n) < p).astype(np.float32)
        return label, dense, ids, p

    def _blocks(self, split: str, first: int) -> Iterator[tuple]:
        total = self.samples(split)
        b = first // BLOCK
        skip = first - b * BLOCK
        while b * BLOCK < total:
            block = self._block(split, b)
            yield tuple(a[skip:] if a.ndim != 3 else a[:, skip:] for a in block)
            b, skip = b + 1, 0

    def batches(self, split: str, batch_size: int, start: int = 0) -> Iterator[ClickBatch]:
        """Batches of ``batch_size`` samples (the last may be shorter); batch ``start`` first, at no cost."""
        if batch_size < 1 or start < 0:
            raise ValueError(f"batch_size must be >= 1 and start >= 0, got {batch_size} and {start}")
        pending, held = [], 0
        for block in self._blocks(split, min(start * batch_size, self.samples(split))):
            pending.append(block)
            held += len(block[0])
            if held < batch_size:
                continue
            label, dense, ids, _ = _join(pending)
            whole = held - held % batch_size
            for i in range(0, whole, batch_size):
                yield self._batch(label[i:i + batch_size], dense[i:i + batch_size], ids[:, i:i + batch_size])
            pending, held = [(label[whole:], dense[whole:], ids[:, whole:], None)], held - whole
        if held:
            label, dense, ids, _ = _join(pending)
            yield self._batch(label, dense, ids)

    def _batch(self, label, dense, ids) -> ClickBatch:
        m = self.config.multi_hot
        offsets = np.arange(0, len(label) * m, m, dtype=np.int64)
        return ClickBatch(dense=np.ascontiguousarray(dense), indices=[np.ascontiguousarray(t.reshape(-1)) for t in ids],
                          offsets=[offsets] * len(ids), label=label)

    def probabilities(self, split: str = "test", n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The planted click probabilities and drawn labels of the first ``n`` samples of ``split``."""
        n = self.samples(split) if n is None else min(n, self.samples(split))
        p, y = [], []
        for b in range(math.ceil(n / BLOCK)):
            label, _, _, prob = self._block(split, b)
            p.append(prob)
            y.append(label)
        return np.concatenate(p)[:n], np.concatenate(y)[:n]

    def oracle_auc(self, n: int | None = None, split: str = "test") -> float:
        """Test AUC of the planted model itself on the first ``n`` samples: the ceiling any model can
        reach in expectation (Bayes-optimal scores), computed with scikit-learn."""
        from sklearn.metrics import roc_auc_score

        p, y = self.probabilities(split, n)
        return float(roc_auc_score(y, p))


def _coprime(rng: np.random.Generator, n: int) -> int:
    """A random multiplier in ``[1, n)`` coprime with ``n`` (1 for n <= 2): ``r -> a·r + b mod n`` is a bijection."""
    if n <= 2:
        return 1
    while True:
        a = int(rng.integers(1, n))
        if math.gcd(a, n) == 1:
            return a


def _join(pending):
    label, dense, ids = (np.concatenate([p[k] for p in pending], axis=1 if k == 2 else 0) for k in range(3))
    return label, dense, ids, None
