"""Binarization: ``binary`` (sign times one per-tensor scale) and ``binary_residual`` (a sum of such terms).

``binary``: ``x̂ = α sign(x)`` with ``sign(0) = +1`` (bipolar, mase's binary quantizer) and
``α = mean|x|``, the scale that minimizes ``‖x - α b‖²`` for ``b = sign(x)`` (XNOR-Net, Rastegari et
al. 2016, eq. 4). ``binary_residual``: ``levels`` rounds of the same step on what is left,
``r_0 = x``, ``α_l = mean|r_l|``, ``r_{l+1} = r_l - α_l sign(r_l)``, ``x̂ = Σ α_l sign(r_l)``
(residual binarization as in ReBNet, Ghasemzadeh et al. 2018, §3.1, with fitted rather than learnt scales).
Codes are one bit per value and level (stored one per byte, code_bits 1), scales are float64 side data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...base import Quantized, Quantizer
from ...errors import FrameError
from ...registry import register
from .formats import budget_meta


def mean_magnitude(r: np.ndarray) -> float:
    """``mean|r|`` without overflow for values near the float64 limit (0 for an empty array)."""
    top = float(np.abs(r).max(initial=0.0))
    return top * float(np.mean(np.abs(r) / top)) if top > 0 else 0.0


class Binarized(Quantizer):
    """``levels`` sign planes with one mean-|r| scale each; promises ``levels`` bits per value plus 64 per level over all."""

    guarantee: ClassVar[str] = "bit_budget"

    @property
    def levels(self) -> int:
        return getattr(self.config, "levels", 1)

    def quantize(self, x, bound=None) -> Quantized:
        x = self.check_input(x)
        if not np.isfinite(x).all():
            raise ValueError(f"quantizer '{self.plugin_id}': input holds NaN or inf, which a sign and a mean cannot represent")
        residual = x.astype(np.float64)
        planes = np.empty((self.levels,) + x.shape, dtype=np.uint8)
        scales = np.zeros(self.levels, dtype=np.float64)
        for level in range(self.levels):
            negative = residual < 0
            planes[level] = ~negative
            scales[level] = mean_magnitude(residual)
            residual -= np.where(negative, -scales[level], scales[level])
        codes, side = {"signs": planes}, {"scales": scales}
        meta = budget_meta(x.size, codes, side, {"signs": 1}, self.levels)
        return Quantized(codes=codes, side=side, meta=meta, shape=x.shape, dtype=x.dtype.name)

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        scales = q.side.get("scales")
        if set(q.side) != {"scales"} or scales.shape != (self.levels,) or scales.dtype != np.float64:
            raise FrameError(f"{self.plugin_id}: side data must be {self.levels} float64 scales, got "
                             f"{ {k: (v.shape, str(v.dtype)) for k, v in q.side.items()} }")
        return {"signs": (np.dtype(np.uint8), (self.levels, *q.shape))}

    def dequantize(self, q: Quantized) -> np.ndarray:
        self.code_layout(q)
        planes, scales = q.codes["signs"], q.side["scales"]
        if planes.shape != (self.levels, *q.shape):
            raise FrameError(f"{self.plugin_id}: sign planes {planes.shape} do not fit {self.levels} x {list(q.shape)}")
        out = np.zeros(q.shape, dtype=np.float64)
        for level in range(planes.shape[0]):
            out += np.where(planes[level] == 1, scales[level], -scales[level])
        return out.astype(q.dtype)


@register("quantizer", "binary")
class Binary(Binarized):
    """Bipolar sign binarization with a per-tensor scale ``mean|x|``: ``x̂ = ±mean|x|`` (1 bit per value)."""

    @dataclass
    class Config:
        pass


@register("quantizer", "binary_residual")
class BinaryResidual(Binarized):
    """Residual binarization with ``levels`` (2..8) sign planes, each scaled by the mean magnitude of what is left."""

    @dataclass
    class Config:
        levels: int = 2

    def check(self):
        self.require("levels", low=2, high=8)
