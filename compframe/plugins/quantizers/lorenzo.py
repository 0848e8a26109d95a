"""``lorenzo``: error-bounded Lorenzo prediction quantizer (SZ's predictor on cuSZ's dual quantization).

Every value is put on the grid of the uniform quantizer, ``q = round((x - c) / (2 eb_abs))`` around
the midrange ``c`` (``eb_abs`` as for ``int8``/``int16``; if the int32 grid cannot span the whole
range, ``c`` is the median of a sample instead, so that one huge value costs one outlier), whose
points ``T(c + q·2eb_abs)`` are the reconstructed values, and the code is the Lorenzo residual of
``q``: ``q[i] - q[i-1]`` in 1-D, ``q - (a + b - c)`` in 2-D, the seven-neighbour prediction in 3-D
(Ibarria et al., Eurographics 2003; SZ, Tao et al., IPDPS 2017), predicted from already-reconstructed
neighbours as in SZ, in integers as in cuSZ's dual quantization (Tian et al., PACT 2020). On smooth
fields the residuals are small and repetitive, which is what the entropy and LZ coders exploit.

Outliers, as in ``int8``/``int16``: values whose grid point does not hold the bound in the
dequantizer's arithmetic (NaN, ±inf, beyond the int32 grid, rounding cases) keep their raw bits
(``outlier_index``, ``outlier_bits``); residuals too wide for the code type are code 0 and kept in
``wide_index``/``wide_codes`` (int32, modulo 2^32). See ``compframe.kernels.lorenzo``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ... import limits
from ...base import ErrorBound, Quantized, Quantizer
from ...errors import FrameError
from ...kernels import lorenzo as K
from ...kernels.uniform import dequantize_into, finite_range, scatter_bits
from ...registry import register

SIDE = ("outlier_index", "outlier_bits", "wide_index", "wide_codes")


def lattice(shape: tuple[int, ...], dims: int | str) -> tuple[int, int, int]:
    """The ``(P, R, W)`` view the predictor runs on: ``dims`` trailing axes (``auto``: all, up to 3),
    leading axes merged into the first; a field with fewer axes than ``dims`` gets leading 1s."""
    d = min(len(shape), 3) if dims == "auto" else int(dims)
    n = math.prod(shape)
    w = shape[-1] if d >= 2 and shape else n
    r = shape[-2] if d == 3 and len(shape) >= 2 else (n // w if d == 2 and w else 1)
    p = n // (r * w) if r * w else 1
    return (p, r, w) if n else (0, 0, 0)


def _sample_median(flat: np.ndarray, default: float) -> float:
    """The (lower) median of at most 4097 evenly spaced finite values of ``flat`` (``default`` if none)."""
    sample = flat[::max(1, flat.size // 4096)].astype(np.float64)
    sample = np.sort(sample[np.isfinite(sample)])
    return float(sample[(sample.size - 1) // 2]) if sample.size else default


def bounded_field(q: Quantizer, x: np.ndarray, bound: ErrorBound | None):
    """A prediction quantizer's start: ``x`` checked (``check_input``) and flattened, the finite
    values' ``lo``, ``hi``, their range (inf where float64 data span the whole range) and the absolute
    bound; ``ValueError`` without a bound."""
    if bound is None:
        raise ValueError(f"quantizer '{q.plugin_id}' is error-bounded and needs a bound, e.g. 'rel:1e-2'")
    x = q.check_input(x)
    flat = x.reshape(-1)
    lo, hi, _ = finite_range(flat)
    value_range = hi - lo
    return x, flat, lo, hi, value_range, bound.absolute(value_range)


def field_codes(quantizer: Quantizer, q: Quantized) -> tuple[np.ndarray, int]:
    """A frame's ``codes`` as one contiguous run of the field's ``n`` values, and ``n``;
    ``FrameError`` if they are not ``n`` codes of the quantizer's ``code_dtype``."""
    codes, n, dtype = q.codes["codes"], math.prod(q.shape), quantizer.config.code_dtype
    if codes.dtype != np.dtype(dtype) or codes.size != n:
        raise FrameError(f"{quantizer.plugin_id}: codes are {codes.shape} of {codes.dtype}, the field is "
                         f"{list(q.shape)} ({dtype} codes)")
    return np.ascontiguousarray(codes).reshape(-1), n


def header_bound(q: Quantized) -> float:
    """``meta.abs_bound`` of a prediction quantizer's frame, checked: it must be what the frame header's
    bound gives for ``meta.value_range`` (``bounded_field``'s rule; ``quantize`` records its bound in the
    ``Quantized`` too); ``FrameError`` naming the field otherwise, and for a header without a bound (the
    quantizer never writes one, and ``meta.abs_bound`` could not be checked)."""
    eb = limits.number(q.meta.get("abs_bound"), "meta.abs_bound")
    value_range = limits.number(q.meta.get("value_range"), "meta.value_range")
    if not value_range >= 0.0:
        raise FrameError(f"frame header: meta.value_range = {value_range!r} is not a range (>= 0)")
    if q.bound is None:
        raise FrameError(f"frame header: bound is null, but meta.abs_bound = {eb!r} must be checked against the "
                         "bound it was derived from (a prediction quantizer's frame always has one)")
    if eb != q.bound.absolute(value_range):
        raise FrameError(f"frame header: meta.abs_bound = {eb!r} is not the bound {q.bound} of meta.value_range = "
                         f"{value_range!r} ({q.bound.absolute(value_range)!r})")
    return eb


def _index_dtype(n: int) -> type:
    return np.uint32 if n < 2**32 else np.uint64


@register("quantizer", "lorenzo")
class Lorenzo(Quantizer):
    """Lorenzo prediction on the error-bounded grid; codes ``code_dtype`` (int8/int16) of the
    field's shape; ``dims`` (auto, 1, 2, 3) axes predicted over. See the module doc."""

    @dataclass
    class Config:
        dims: int | str = "auto"
        code_dtype: str = "int16"

    def check(self):
        self.require("dims", choices=("auto", 1, 2, 3))
        self.require("code_dtype", choices=("int8", "int16"))

    def quantize(self, x: np.ndarray, bound: ErrorBound | None) -> Quantized:
        x, flat, lo, hi, value_range, eb = bounded_field(self, x, bound)
        step = 2.0 * eb if np.isfinite(2.0 * eb) else 0.0  # an infinite bound: one grid point, the centre
        centre = lo / 2 + hi / 2
        if step > 0 and value_range / step > K.GRID:  # the grid cannot span the range: centre it on the bulk
            centre = _sample_median(flat, centre)
        n = flat.size
        codes = np.zeros(x.shape, self.config.code_dtype)
        side = {"outlier_index": np.empty(0, _index_dtype(n)), "outlier_bits": np.empty(0, f"u{x.itemsize}"),
                "wide_index": np.empty(0, _index_dtype(n)), "wide_codes": np.empty(0, np.int32)}
        if n:
            grid = np.empty(n, np.int32)
            counts = K.grid_into(flat, grid, centre, step, eb)
            if counts.any():
                side["outlier_index"] = np.empty(int(counts.sum()), _index_dtype(n))
                side["outlier_bits"] = np.empty(int(counts.sum()), f"u{x.itemsize}")
                K.gather_raw(flat, grid, centre, step, eb, counts, side["outlier_index"], side["outlier_bits"])
            info = np.iinfo(self.config.code_dtype)
            view = lattice(x.shape, self.config.dims)
            grid = grid.reshape(view)
            counts = K.residuals(grid, codes.reshape(view), info.min, info.max)
            if counts.any():
                side["wide_index"] = np.empty(int(counts.sum()), _index_dtype(n))
                side["wide_codes"] = np.empty(int(counts.sum()), np.int32)
                K.gather_wide(grid, info.min, info.max, counts, side["wide_index"], side["wide_codes"])
        return Quantized(
            codes={"codes": codes},
            side=side,
            meta={"centre": centre, "step": step, "abs_bound": eb, "value_range": value_range,
                  "outliers": int(side["outlier_index"].size), "wide": int(side["wide_index"].size)},
            shape=tuple(x.shape),
            dtype=x.dtype.name,
            bound=bound,
        )

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        self._side(q)
        return {"codes": (np.dtype(self.config.code_dtype), tuple(q.shape))}

    def _side(self, q: Quantized) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The side arrays, checked against each other and the field; wide indices as int64."""
        n = math.prod(q.shape)
        if set(q.side) != set(SIDE):
            raise FrameError(f"{self.plugin_id}: side arrays {sorted(q.side)}, expected {', '.join(SIDE)}")
        index, bits, wide, values = (q.side[k] for k in SIDE)
        width = np.dtype(q.dtype).itemsize
        for idx, data, dtype in ((index, bits, np.dtype(f"u{width}")), (wide, values, np.dtype(np.int32))):
            if idx.ndim != 1 or idx.dtype not in (np.uint32, np.uint64) or data.shape != idx.shape \
                    or data.dtype != dtype or idx.size > n:
                raise FrameError(f"{self.plugin_id}: side data ({idx.shape} of {idx.dtype}, {data.shape} of "
                                 f"{data.dtype}) does not fit a {q.dtype} field of {n} values")
            if idx.size and int(idx.max()) >= n:
                raise FrameError(f"{self.plugin_id}: index {int(idx.max())} is outside the field of {n} values")
        wide = wide.astype(np.int64)
        if wide.size > 1 and not (np.diff(wide) > 0).all():
            raise FrameError(f"{self.plugin_id}: wide_index is not strictly increasing")
        return index, bits, wide, values

    def dequantize(self, q: Quantized) -> np.ndarray:
        """Rebuild the field: prefix sums of the residuals along each axis give the grid, then
        ``T(c + q·step)``, then the raw outliers. Codes or side data that do not fit raise ``FrameError``."""
        index, bits, wide, values = self._side(q)
        centre = limits.number(q.meta.get("centre"), "meta.centre")
        step, eb = limits.number(q.meta.get("step"), "meta.step"), header_bound(q)
        if step != (2.0 * eb if math.isfinite(2.0 * eb) else 0.0):
            raise FrameError(f"frame header: meta.step = {step!r} is not 2 * meta.abs_bound = {2.0 * eb!r}")
        for key, side in (("outliers", index), ("wide", wide)):
            if limits.integer(q.meta.get(key), f"meta.{key}") != side.size:
                raise FrameError(f"frame header: meta.{key} = {q.meta.get(key)!r} but the side data holds {side.size}")
        codes, n = field_codes(self, q)
        out = np.empty(n, np.dtype(q.dtype))
        if n:
            limits.charge(4 * n, f"{self.plugin_id}'s int32 grid")
            view = lattice(q.shape, self.config.dims)
            grid = np.empty(view, np.int32)
            K.integrate_rows(codes.reshape(view), wide, values, grid)
            planes, rows = view[0] > 1, view[1] > 1
            if rows:
                K.integrate_columns(grid, out.reshape(view), centre, step, not planes)
            if planes:
                K.integrate_planes(grid.reshape(view[0], -1), out.reshape(view[0], -1), centre, step)
            if not (rows or planes):
                dequantize_into(grid.reshape(-1), out, centre, step)
            if index.size:
                scatter_bits(out.view(bits.dtype), index, bits)
        return out.reshape(q.shape)
