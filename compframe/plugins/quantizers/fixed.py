"""``fixed``: signed fixed point, ``width`` bits of which ``frac_width`` are fractional.

``x̂ = q 2^-f`` with ``q = round_half_even(x 2^f)`` in ``[-2^(w-1), 2^(w-1) - 1]`` (mase integer
quantizer, DeepWok/mase, src/chop/nn/quantizers/); past the range ``q`` saturates, or with ``saturating: false`` wraps around
modulo ``2^w`` as two's-complement hardware does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...base import Quantized, Quantizer
from ...registry import register
from .formats import budget_meta, int_dtype


@register("quantizer", "fixed")
class Fixed(Quantizer):
    """Fixed point: code ``q`` (two's complement, ``width`` bits), value ``q * 2^-frac_width``.

    ``frac_width`` defaults to ``width // 2``. Promises ``width`` bits per value. NaN has no code (error);
    ``±inf`` saturate; wrapping (``saturating: false``) is exact while ``|x 2^f| < 2^53``.
    """

    guarantee: ClassVar[str] = "bit_budget"

    @dataclass
    class Config:
        width: int = 8
        frac_width: int | None = None
        saturating: bool = True

    def check(self):
        self.require("width", low=2, high=32)
        if self.config.frac_width is not None:
            self.require("frac_width", low=-1074, high=1074)

    @property
    def frac(self) -> int:
        c = self.config
        return c.width // 2 if c.frac_width is None else c.frac_width

    def quantize(self, x, bound=None) -> Quantized:
        x = self.check_input(x)
        w = self.config.width
        if np.isnan(x).any() or (not self.config.saturating and np.isinf(x).any()):
            raise ValueError(f"quantizer 'fixed': input holds {'NaN' if np.isnan(x).any() else 'inf'}, which has no code")
        lo, hi = -(2.0 ** (w - 1)), 2.0 ** (w - 1) - 1
        with np.errstate(over="ignore"):  # past the float64 range: inf, then saturated like any overflow
            q = np.rint(np.ldexp(x.astype(np.float64), self.frac))
        if self.config.saturating:
            q = np.clip(q, lo, hi)
        else:
            q = np.mod(q - lo, 2.0 ** w) + lo
        codes = {"codes": q.astype(int_dtype(w))}
        meta = budget_meta(x.size, codes, {}, {"codes": w}, w)
        return Quantized(codes=codes, meta=meta, shape=x.shape, dtype=x.dtype.name)

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        return {"codes": (int_dtype(self.config.width), tuple(q.shape))}

    def dequantize(self, q: Quantized) -> np.ndarray:
        return np.ldexp(q.codes["codes"].astype(np.float64), -self.frac).astype(q.dtype).reshape(q.shape)
