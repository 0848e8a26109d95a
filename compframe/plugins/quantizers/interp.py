"""``interp``: error-bounded multilevel interpolation prediction quantizer (SZ3's predictor for smooth fields).

The field is predicted level by level, from a coarse lattice of stride ``2^(L-1)`` down to stride 1,
one axis at a time, each point from already-reconstructed points along that axis by cubic (or
linear) interpolation (Zhao et al., "Optimizing Error-Bounded Lossy Compression for Scientific Data
by Dynamic Spline Interpolation", ICDE 2021; SZ3). The code is the prediction error in steps of
``2 eb_l``, where ``eb_l = eb_abs / min(alpha^(l-1), beta)`` is the bound of level ``l`` (QoZ's
level-wise bounds, Liu et al., SC 2022; ``alpha = 1``: one bound). ``eb_abs`` is as for
``int8``/``int16``. On smooth fields most codes of the fine levels, which hold most points, are 0.

Outliers, as in ``int8``/``int16``: values whose reconstruction misses ``eb_abs`` (NaN, ±inf, errors
past the code type, rounding cases) keep their raw bits (``outlier_index``, ``outlier_bits``); their
code is 0 and they are predicted onwards as ``x̂ = T(pred)``. The first point is predicted as the
midrange of the finite values, or their sample median where no code reaches the range's ends (one
huge value must not make the first point an outlier). See ``compframe.kernels.interp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ... import limits
from ...base import ErrorBound, Quantized, Quantizer
from ...errors import FrameError
from ...kernels import interp as K
from ...kernels.uniform import scatter_bits
from ...registry import register
from .lorenzo import _index_dtype, _sample_median, bounded_field, field_codes, header_bound, lattice
from .uniform import _limits

SIDE = ("outlier_index", "outlier_bits")
CANDIDATES = tuple((method, alpha, beta) for method in ("cubic", "linear")
                   for alpha, beta in ((1.0, 1.0), (1.25, 2.0), (1.5, 2.5), (2.0, 3.0)))
"""The settings ``tune`` tries: SZ3's interpolations and its level-bound pairs ``(alpha, beta)``."""
TUNE_BLOCK = 1 << 16
"""Values in the block ``tune`` samples, at most: the central block of ``min(TUNE_BLOCK, n / TUNE_SHARE)``
values or fewer (8 candidates on 1/64 of the field cost an eighth of its own sweep)."""
TUNE_SHARE = 64
TUNE_MIN = 1 << 12
"""Fields whose sample would hold fewer values than this (below 2^18 values) keep the configured settings."""


@register("quantizer", "interp")
class Interp(Quantizer):
    """Multilevel interpolation prediction with the error bound exact on every element; codes
    ``code_dtype`` (int8/int16) of the field's shape. See the module doc."""

    options_params = ("method", "alpha", "beta", "tune")  # meta records the settings the sweep used

    @dataclass
    class Config:
        dims: int | str = "auto"
        code_dtype: str = "int16"
        method: str = "cubic"
        alpha: float = 1.25
        beta: float = 2.0
        layout: str = "levels"
        tune: bool = True

    def check(self):
        self.require("dims", choices=("auto", 1, 2, 3))
        self.require("code_dtype", choices=("int8", "int16"))
        self.require("method", choices=("cubic", "linear"))
        self.require("alpha", low=1.0, high=16.0)
        self.require("beta", low=1.0, high=1024.0)
        self.require("layout", choices=("levels", "field"))
        self.require("tune", choices=(True, False))
        for param in ("method", "alpha", "beta"):
            self.unused_unless(param, not self.config.tune, "tune=false")

    def _sweep(self, x, xh, codes, view, centre, eb, settings, encode, ranked, marks=None):
        """``kernels.interp.sweep`` with ``settings`` = (method, alpha, beta)."""
        method, alpha, beta = settings
        lo, hi = _limits(self.config.code_dtype)
        K.sweep(x, xh, codes, view, centre, eb, method == "cubic", alpha, beta, lo, hi, encode, ranked, marks)

    def _tune(self, x: np.ndarray, view: tuple[int, int, int], centre: float, eb: float) -> tuple[str, float, float]:
        """SZ3's tuning (``SZAlgoInterp``: linear or cubic, then level-bound pairs) on a sample: the
        settings of ``CANDIDATES`` whose codes on the central block (see ``TUNE_BLOCK``) cost the
        fewest bits, counted as the order-0 entropy within each pass plus the raw bits of the outliers."""
        side = max(2, int(min(TUNE_BLOCK, x.size // TUNE_SHARE) ** (1 / max(1, sum(n > 1 for n in view)))))
        block = x.reshape(view)[tuple(slice(max(0, (n - side) // 2), max(0, (n - side) // 2) + side) for n in view)]
        sample = np.ascontiguousarray(block).reshape(-1)
        edges = np.cumsum([0, 1] + [math.prod(counts) for *_, counts in K.passes(block.shape)])
        codes, xh = np.zeros(sample.size, self.config.code_dtype), np.empty_like(sample)
        scratch = np.zeros(1 << (8 * codes.itemsize), np.int64)
        best = None
        for settings in CANDIDATES:
            marks = np.zeros(-(-sample.size // K.MARK), np.bool_)
            self._sweep(sample, xh, codes, block.shape, centre, eb, settings, True, True, marks)
            misses = int(K.count_misses(sample, xh, eb, marks).sum()) if marks.any() else 0
            cost = K.pass_bits(codes, edges, scratch) + 8 * sample.itemsize * misses
            if best is None or cost < best[0]:
                best = (cost, settings)
        return best[1]

    def _code_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The codes' shape: the field's, or (``layout: levels``) one row in the order of prediction."""
        return (math.prod(shape),) if self.config.layout == "levels" else tuple(shape)

    def quantize(self, x: np.ndarray, bound: ErrorBound | None) -> Quantized:
        x, flat, lo, hi, value_range, eb = bounded_field(self, x, bound)
        centre = lo / 2 + hi / 2  # the first point's prediction: the median if a code cannot reach the range
        if 2.0 * eb * _limits(self.config.code_dtype)[1] < value_range / 2:
            centre = _sample_median(flat, centre)
        n = flat.size
        view = lattice(x.shape, self.config.dims)
        settings = (self.config.method, float(self.config.alpha), float(self.config.beta))
        if self.config.tune and n // TUNE_SHARE >= TUNE_MIN:
            settings = self._tune(flat, view, centre, eb)
        codes = np.zeros(self._code_shape(x.shape), self.config.code_dtype)
        index, bits = np.empty(0, _index_dtype(n)), np.empty(0, f"u{x.itemsize}")
        if n:
            xh, marks = np.empty_like(flat), np.zeros(-(-n // K.MARK), np.bool_)
            self._sweep(flat, xh, codes.reshape(-1), view, centre, eb, settings, True, self.config.layout == "levels",
                        marks)
            counts = K.count_misses(flat, xh, eb, marks) if marks.any() else None  # unmarked blocks hold eb
            if counts is not None and counts.any():
                index, bits = np.empty(int(counts.sum()), _index_dtype(n)), np.empty(int(counts.sum()), bits.dtype)
                K.gather_misses(flat, xh, eb, counts, index, bits, marks)
        return Quantized(
            codes={"codes": codes},
            side={"outlier_index": index, "outlier_bits": bits},
            meta={"centre": centre, "abs_bound": eb, "value_range": value_range, "levels": K.levels(view),
                  "method": settings[0], "alpha": settings[1], "beta": settings[2], "outliers": int(index.size)},
            shape=tuple(x.shape),
            dtype=x.dtype.name,
            bound=bound,
        )

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        self._side(q)
        return {"codes": (np.dtype(self.config.code_dtype), self._code_shape(q.shape))}

    def _side(self, q: Quantized) -> tuple[np.ndarray, np.ndarray]:
        """The outlier index and bits, checked against each other and the field."""
        n = math.prod(q.shape)
        if set(q.side) != set(SIDE):
            raise FrameError(f"{self.plugin_id}: side arrays {sorted(q.side)}, expected {', '.join(SIDE)}")
        index, bits = (q.side[k] for k in SIDE)
        if index.ndim != 1 or index.dtype not in (np.uint32, np.uint64) or bits.shape != index.shape \
                or bits.dtype != np.dtype(f"u{np.dtype(q.dtype).itemsize}") or index.size > n:
            raise FrameError(f"{self.plugin_id}: outlier side data ({index.shape} of {index.dtype}, {bits.shape} of "
                             f"{bits.dtype}) does not fit a {q.dtype} field of {n} values")
        if index.size and int(index.max()) >= n:
            raise FrameError(f"{self.plugin_id}: outlier index {int(index.max())} is outside the field of {n} values")
        return index, bits

    def dequantize(self, q: Quantized) -> np.ndarray:
        """Rebuild the field level by level from the codes (the encoder's own sweep), then put the
        outliers' raw bits back. Codes or side data that do not fit raise ``FrameError``."""
        index, bits = self._side(q)
        centre, eb = limits.number(q.meta.get("centre"), "meta.centre"), header_bound(q)
        method = q.meta.get("method")
        if method not in ("cubic", "linear"):
            raise FrameError(f"frame header: meta.method must be 'cubic' or 'linear', got {method!r:.80}")
        alpha, beta = (limits.number(q.meta.get(k), f"meta.{k}") for k in ("alpha", "beta"))
        if not (1.0 <= alpha <= 16.0 and 1.0 <= beta <= 1024.0):
            raise FrameError(f"frame header: meta.alpha = {alpha!r}, meta.beta = {beta!r} are outside "
                             "[1, 16], [1, 1024]")
        view = lattice(q.shape, self.config.dims)
        if limits.integer(q.meta.get("levels"), "meta.levels") != K.levels(view):
            raise FrameError(f"frame header: meta.levels = {q.meta['levels']} but a field of shape {list(q.shape)} "
                             f"(view {list(view)}) has {K.levels(view)}")
        if limits.integer(q.meta.get("outliers"), "meta.outliers") != index.size:
            raise FrameError(f"frame header: meta.outliers = {q.meta['outliers']} but the side data holds {index.size}")
        codes, n = field_codes(self, q)
        out = np.empty(n, np.dtype(q.dtype))
        if n:
            self._sweep(out, out, codes, view, centre,
                        eb, (method, alpha, beta), False, self.config.layout == "levels")
            if index.size:
                scatter_bits(out.view(bits.dtype), index, bits)
        return out.reshape(q.shape)
