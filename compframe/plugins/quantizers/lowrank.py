"""Low-rank quantizers of matrices: ``lplr``, ``lsvd``, ``dsvd`` and the plain baseline ``nq``.

After Saha, Srivastava & Pilanci, "Matrix Compression via Randomized Low Rank and Low Precision
Factorization" (NeurIPS 2023), Algorithm 1, and its code (pilancilab/matrix-compressor, ``src/lplr/``):

- ``Q_B(M)``: the whole matrix mapped affinely onto [-1, 1] by its min and max, rounded to the nearest
  of ``2^B`` evenly spaced points, mapped back; codes are the point indices, min and max are side data.
- ``lplr``: ``S ~ N(0, 1/r)`` (d x r), ``Z = Q_B1(A S)``, ``W = Q_B2(pinv(Z) A)``, ``Â = Z W``; the repository's
  options: a sparse JL sketch instead of the Gaussian one and ``q`` power iterations (``(A Aᵀ)^q A S``).
- ``lsvd``: as lplr with ``A S`` replaced by ``U_r Σ_r`` (the top-r singular subspace).
- ``dsvd``: ``Â = Q_B1(U_r) Q_B2(Σ_r V_rᵀ)``.
- ``nq``: ``Â = Q_B0(A)``.
- ``normalize_and_shift``: ``Â ← α Â + β`` with the least-squares α, β (stored as side data).

Rank: ``r = floor(cr n d B0 / (n B1 + d B2))`` (paper eq. in §4, "maximum output rank"), at least 1
and at most min(n, d); ``rank > 0`` overrides it. Inputs must be 2-D (leading axes of a higher-rank
array are flattened into rows); arithmetic is float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ... import limits
from ...base import Quantized, Quantizer
from ...errors import FrameError
from ...registry import register
from .formats import budget_meta, uint_dtype


def uniform_codes(m: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``Q_B``'s codes (indices of 2^B points between min and max) and its side data ``[min, max]``.

    Spans are taken in halves (``max/2 - min/2``) so that a range wider than the float64 maximum still works.
    """
    lo, hi = float(m.min()), float(m.max())
    half_span = hi / 2 - lo / 2
    q = np.rint((m / 2 - lo / 2) / half_span * (2 ** bits - 1)) if half_span > 0 else np.zeros(m.shape)
    return q.astype(uint_dtype(bits)), np.array([lo, hi])


def uniform_values(codes: np.ndarray, bounds: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = bounds
    return lo + codes.astype(np.float64) * ((hi / 2 - lo / 2) / (2 ** bits - 1)) * 2


def quantize_factor(m: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes, bounds and the dequantized matrix ``Q_B(m)``."""
    codes, bounds = uniform_codes(m, bits)
    return codes, bounds, uniform_values(codes, bounds, bits)


class LowRank(Quantizer):
    """A matrix as a product of two uniformly quantized factors (or one quantized matrix for ``nq``).

    Promises the bits actually spent: ``(n r B1 + r d B2) / (n d)`` plus the side data (factor bounds,
    shift), which the rank formula keeps at or below ``cr B0`` plus that small overhead.
    """

    guarantee: ClassVar[str] = "bit_budget"

    @dataclass
    class Config:
        b1: int = 8
        b2: int = 8
        b0: int = 8
        cr: float = 1.0
        rank: int = 0
        seed: int = 0
        normalize_and_shift: bool = False

    def check(self):
        for name in ("b1", "b2", "b0"):
            self.require(name, low=1, high=16)
        self.require("cr", low=0, high=64, open_low=True)
        self.require("rank", low=0)
        self.require("seed", low=0)

    def rank_for(self, n: int, d: int) -> int:
        c = self.config
        r = c.rank or int(np.floor(c.cr * n * d * c.b0 / (n * c.b1 + d * c.b2)))
        if r < 1:
            self.fail("cr", f"gives rank 0 for a {n}x{d} matrix; raise cr or b0, or set rank")
        return min(r, n, d)

    def factors(self, a: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
        """The two float64 factors to quantize with B1 and B2 bits; the second may depend on Q_B1 of the first."""
        raise NotImplementedError

    def matrix(self, x: np.ndarray) -> np.ndarray:
        """``x`` as a float64 matrix ``(prod(leading axes), last axis)``; 0-D and 1-D input is refused."""
        if x.ndim < 2:
            raise ValueError(f"quantizer '{self.plugin_id}' takes a matrix (2-D, or more with leading axes "
                             f"flattened into rows); got shape {x.shape}")
        return x.reshape(-1, x.shape[-1]).astype(np.float64)

    def _check(self, x):
        x = self.check_input(x)
        a = self.matrix(x)
        if a.size == 0:
            raise ValueError(f"quantizer '{self.plugin_id}': empty matrix {x.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"quantizer '{self.plugin_id}': input holds NaN or inf")
        return x, a

    def quantize(self, x, bound=None) -> Quantized:
        x, a = self._check(x)
        c = self.config
        r = self.rank_for(*a.shape)
        # factorize a / 2^k with max|a / 2^k| in [0.5, 1): no overflow or underflow in the SVD and least
        # squares for huge or tiny data; meta 'exponent' = k scales the result back (exactly: a power of two)
        k = math.frexp(float(np.abs(a).max()))[1]
        a = np.ldexp(a, -k)
        codes, side, code_bits, approx = self.encode(a, r)
        if c.normalize_and_shift:
            side["shift"] = least_squares_shift(approx, a)
        meta = budget_meta(x.size, codes, side, code_bits, self.nominal_bits())
        meta["exponent"] = k
        if r:
            meta["rank"] = r
        return Quantized(codes=codes, side=side, meta=meta, shape=x.shape, dtype=x.dtype.name)

    def nominal_bits(self) -> float:
        return self.config.cr * self.config.b0

    def encode(self, a: np.ndarray, r: int):
        """Codes, side data, code widths and the float64 approximation of ``a`` at rank ``r``."""
        c = self.config
        first, second_of = self.factors(a, r)
        z_codes, z_bounds, z = quantize_factor(first, c.b1)
        w_codes, w_bounds, w = quantize_factor(second_of(z), c.b2)
        codes, side = {"Z": z_codes, "W": w_codes}, {"Z_bounds": z_bounds, "W_bounds": w_bounds}
        return codes, side, {"Z": c.b1, "W": c.b2}, z @ w

    def reconstruct(self, q: Quantized) -> np.ndarray:
        c = self.config
        z = uniform_values(q.codes["Z"], q.side["Z_bounds"], c.b1)
        return z @ uniform_values(q.codes["W"], q.side["W_bounds"], c.b2)

    def shapes(self, q: Quantized) -> dict[str, tuple[int, ...]]:
        """The code arrays' shapes: ``Z`` (n x r) and ``W`` (r x d), r = ``meta['rank']``."""
        if len(q.shape) < 2:
            raise FrameError(f"{self.plugin_id}: a frame of shape {list(q.shape)} is not a matrix")
        n, d = math.prod(q.shape[:-1]), q.shape[-1]
        r = limits.integer(q.meta.get("rank"), "meta.rank", 1, max(1, min(n, d)))
        return {"Z": (n, r), "W": (r, d)}

    def code_bits(self) -> dict[str, int]:
        return {"Z": self.config.b1, "W": self.config.b2}

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        bits, shapes = self.code_bits(), self.shapes(q)
        bounds = {f"{k}_bounds" for k in shapes}
        if not bounds <= set(q.side) or not set(q.side) <= bounds | {"shift"} or any(
                v.shape != (2,) or v.dtype != np.float64 for v in q.side.values()):
            raise FrameError(f"{self.plugin_id}: side arrays must be {sorted(bounds)} (and 'shift'), two float64 "
                             f"each; got { {k: (v.shape, str(v.dtype)) for k, v in q.side.items()} }")
        limits.integer(q.meta.get("exponent"), "meta.exponent", -1 << 16, 1 << 16)
        return {k: (uint_dtype(bits[k]), shape) for k, shape in shapes.items()}

    def dequantize(self, q: Quantized) -> np.ndarray:
        """``Z W`` (or ``A``), shifted and scaled back; factor shapes that do not fit raise ``FrameError``."""
        layout = self.code_layout(q)
        if any(q.codes[k].shape != shape for k, (_, shape) in layout.items()):
            raise FrameError(f"{self.plugin_id}: factors { {k: v.shape for k, v in q.codes.items()} } do not fit "
                             f"{ {k: s for k, (_, s) in layout.items()} }")
        # float64 factors, their product, the scaled copy and the cast (each at most the field's size)
        limits.charge(8 * (sum(math.prod(s) for _, s in layout.values()) + 2 * math.prod(q.shape)) +
                      math.prod(q.shape) * np.dtype(q.dtype).itemsize, f"{self.plugin_id}'s float64 factors")
        approx = self.reconstruct(q)
        if "shift" in q.side:
            alpha, beta = q.side["shift"]
            approx = alpha * approx + beta
        with np.errstate(over="ignore", invalid="ignore"):  # past the dtype's range: inf, as in any cast
            return np.ldexp(approx, q.meta["exponent"]).astype(q.dtype).reshape(q.shape)


def least_squares_shift(approx: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``[α, β]`` minimizing ``‖α approx + β - a‖_F`` (the repo's normalize_and_shift)."""
    design = np.stack([approx.reshape(-1), np.ones(approx.size)], axis=1)
    return np.linalg.lstsq(design, a.reshape(-1), rcond=None)[0]


def _solve_right(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``pinv(z) a`` by least squares."""
    return np.linalg.lstsq(z, a, rcond=None)[0]


def _top_svd(a: np.ndarray, r: int):
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    return u[:, :r], s[:r], vt[:r]


def _orthonormal(y: np.ndarray) -> np.ndarray:
    """An orthonormal basis of ``y``'s columns (reduced QR)."""
    return np.linalg.qr(y)[0]


SKETCHES = ("gaussian", "sparse_jl")


@register("quantizer", "lplr")
class LPLR(LowRank):
    """LPLR: ``Z = Q_B1(Y)``, ``W = Q_B2(pinv(Z) A)``, ``Y = (A Aᵀ)^q A S`` for a d x r sketch ``S`` seeded by ``seed``.

    ``sketch``: ``gaussian``, ``S ~ N(0, 1/r)`` (the paper's Algorithm 1), or ``sparse_jl``, exactly ``sketch_nnz``
    nonzeros ``±1/sqrt(sketch_nnz)`` per row of ``S`` in random columns (the repository's ``sparse_jl_transform``;
    Kane & Nelson, JACM 2014; one nonzero is CountSketch, Clarkson & Woodruff, STOC 2013).
    ``power_iters`` = q: randomized subspace iteration, an orthonormal basis taken before each product (Halko,
    Martinsson & Tropp 2011, Alg. 4.4). It spans the range of the repository's plain products ``(A Aᵀ)^q A S``
    (in exact arithmetic), but the basis rounded into ``Z`` is ``A Q`` with ``Q`` orthonormal, not the plain
    products, whose columns all tend to the top singular vector as q grows.
    """

    @dataclass
    class Config(LowRank.Config):
        sketch: str = "gaussian"
        sketch_nnz: int = 1
        power_iters: int = 0

    def check(self):
        super().check()
        self.require("sketch", choices=SKETCHES)
        self.require("sketch_nnz", low=1)
        self.unused_unless("sketch_nnz", self.config.sketch == "sparse_jl", "sketch=sparse_jl")
        self.require("power_iters", low=0)

    def sketch_matrix(self, d: int, r: int) -> np.ndarray:
        """The d x r sketch ``S`` (float64), a function of d, r, ``seed``, ``sketch`` and ``sketch_nnz`` only."""
        c, rng = self.config, np.random.default_rng(self.config.seed)
        if c.sketch == "gaussian":
            return rng.normal(0.0, 1.0 / np.sqrt(r), size=(d, r))
        if c.sketch_nnz > r:
            self.fail("sketch_nnz", f"is {c.sketch_nnz}; at most the sketch's {r} columns (the rank) "
                                    f"for a {d}-column matrix")
        columns = np.argsort(rng.random((d, r)), axis=1)[:, :c.sketch_nnz]  # distinct, uniformly random
        s = np.zeros((d, r))
        np.put_along_axis(s, columns, rng.choice([-1.0, 1.0], size=columns.shape) / np.sqrt(c.sketch_nnz), axis=1)
        return s

    def factors(self, a, r):
        y = a @ self.sketch_matrix(a.shape[1], r)
        for _ in range(self.config.power_iters):
            y = a @ _orthonormal(a.T @ _orthonormal(y))
        return y, lambda z: _solve_right(z, a)


@register("quantizer", "lsvd")
class LSVD(LowRank):
    """LSVD: ``Z = Q_B1(U_r Σ_r)``, ``W = Q_B2(pinv(Z) A)``."""

    def factors(self, a, r):
        u, s, _ = _top_svd(a, r)
        return u * s, lambda z: _solve_right(z, a)


@register("quantizer", "dsvd")
class DSVD(LowRank):
    """DSVD: ``Â = Q_B1(U_r) Q_B2(Σ_r V_rᵀ)``, both factors from one SVD."""

    def factors(self, a, r):
        u, s, vt = _top_svd(a, r)
        return u, lambda z: s[:, None] * vt


@register("quantizer", "nq")
class NQ(LowRank):
    """NQ: the whole array at ``b0`` bits, ``Â = Q_B0(A)`` (the baseline of the LPLR paper); any shape."""

    @dataclass
    class Config:
        b0: int = 8
        normalize_and_shift: bool = False

    def check(self):
        self.require("b0", low=1, high=16)

    def rank_for(self, n, d):
        return 0

    def nominal_bits(self):
        return self.config.b0

    def matrix(self, x):
        return x.reshape(1, -1).astype(np.float64) if x.ndim < 2 else super().matrix(x)

    def encode(self, a, r):
        codes, bounds, approx = quantize_factor(a, self.config.b0)
        return {"A": codes}, {"A_bounds": bounds}, {"A": self.config.b0}, approx

    def reconstruct(self, q):
        return uniform_values(q.codes["A"], q.side["A_bounds"], self.config.b0)

    def shapes(self, q):
        return {"A": (1, math.prod(q.shape)) if len(q.shape) < 2 else (math.prod(q.shape[:-1]), q.shape[-1])}

    def code_bits(self):
        return {"A": self.config.b0}
