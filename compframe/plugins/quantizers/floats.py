"""Scalar floating-point formats: ``bf16``, ``fp16``, ``fp8_e4m3``, ``fp8_e5m2``, ``minifloat`` and ``log``.

Codes are the formats' bit patterns (sign, exponent, mantissa), rounded to nearest with ties to the
even code (IEEE 754-2019 §4.3.1). The OCP 8-bit formats follow "OCP 8-bit Floating Point
Specification (OFP8) rev 1.0": E4M3 has no infinities and one NaN pattern per sign (S.1111.111),
E5M2 is IEEE-like. ``overflow`` chooses what a finite value past the largest one becomes:
``saturate`` (the largest finite value) or ``nonfinite`` (inf, or NaN for E4M3, as an IEEE cast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...base import Quantized, Quantizer
from ...errors import FrameError
from ...registry import register
from .formats import OVERFLOW_POLICIES, SPECIALS, SignMagnitude, budget_meta, log_format, minifloat


class ScalarFormat(Quantizer):
    """One code per value, the bit pattern of a sign-magnitude number format; promises its width in bits."""

    guarantee: ClassVar[str] = "bit_budget"

    def number_format(self) -> SignMagnitude:
        raise NotImplementedError

    @property
    def overflow(self) -> str:
        return getattr(self.config, "overflow", "saturate")

    def quantize(self, x, bound=None) -> Quantized:
        x = self.check_input(x)
        fmt = self.number_format()
        try:
            codes = {"codes": fmt.encode(x, self.overflow)}
        except ValueError as e:  # NaN input to a format without NaN
            raise ValueError(f"quantizer '{self.plugin_id}': {e}") from None
        meta = budget_meta(x.size, codes, {}, {"codes": fmt.bits}, fmt.bits)
        return Quantized(codes=codes, meta=meta, shape=x.shape, dtype=x.dtype.name)

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        return {"codes": (self.number_format().dtype, tuple(q.shape))}

    def dequantize(self, q: Quantized) -> np.ndarray:
        fmt, codes = self.number_format(), q.codes["codes"]
        if codes.size and codes.dtype.itemsize * 8 > fmt.bits and int(codes.max()) >> fmt.bits:
            raise FrameError(f"{self.plugin_id}: code {int(codes.max())} is not a {fmt.bits}-bit code")
        return fmt.decode(codes, q.dtype).reshape(q.shape)


def _preset(plugin_id: str, exponent_bits: int, mantissa_bits: int, specials: str, default_overflow: str, doc: str):
    @dataclass
    class Config:
        overflow: str = default_overflow

    class Preset(ScalarFormat):
        __doc__ = doc
        _format = minifloat(exponent_bits, mantissa_bits, specials=specials)

        def check(self):
            self.require("overflow", choices=OVERFLOW_POLICIES)

        def number_format(self):
            return self._format

    Preset.Config = Config
    Preset.__name__ = Preset.__qualname__ = plugin_id.upper()
    return register("quantizer", plugin_id)(Preset)


BF16 = _preset("bf16", 8, 7, "ieee", "nonfinite",
               "bfloat16 (1-8-7, bias 127, IEEE specials); the same bits as torch's ``.to(torch.bfloat16)``.")
FP16 = _preset("fp16", 5, 10, "ieee", "nonfinite",
               "IEEE 754 binary16 (1-5-10, bias 15); the same bits as ``.to(torch.float16)`` and numpy's float16.")
FP8_E4M3 = _preset("fp8_e4m3", 4, 3, "fn", "saturate",
                   "OCP FP8 E4M3 (bias 7, max 448, NaN = S.1111.111, no inf); default saturating as torch's "
                   "``.to(torch.float8_e4m3fn)``; ``overflow=nonfinite`` gives NaN as the OFP8 non-saturating mode.")
FP8_E5M2 = _preset("fp8_e5m2", 5, 2, "ieee", "nonfinite",
                   "OCP FP8 E5M2 (bias 15, max 57344, IEEE inf/NaN); default overflow to inf as "
                   "``.to(torch.float8_e5m2)``.")


@register("quantizer", "minifloat")
class Minifloat(ScalarFormat):
    """A ``width``-bit minifloat: 1 sign bit, ``exponent_width`` exponent bits, the rest mantissa.

    ``form='ieee'``: hidden bit with subnormals (value ``(1 + M/2^m) 2^(E-b)``, ``E = 0`` subnormal);
    ``form='denorm'``: no hidden bit anywhere (``(M/2^m) 2^(E-b)``, mase's MinifloatDenorm).
    ``bias`` defaults to ``2^(e-1) - 1``; ``specials``: ``none`` (all codes finite), ``ieee``, ``fn``.
    """

    @dataclass
    class Config:
        width: int = 8
        exponent_width: int = 4
        bias: int | None = None
        form: str = "ieee"
        specials: str = "none"
        overflow: str = "saturate"

    def check(self):
        c = self.config
        self.require("width", low=3, high=16)
        self.require("exponent_width", low=1, high=min(8, c.width - 2))
        if c.bias is not None:
            self.require("bias", low=-64, high=256)
        self.require("form", choices=("ieee", "denorm"))
        self.require("specials", choices=SPECIALS)
        if c.specials != "none" and c.form != "ieee":
            self.fail("specials", f"is '{c.specials}'; inf/NaN codes need form 'ieee'")
        if c.specials == "ieee" and c.exponent_width < 2:
            self.fail("specials", "'ieee' needs exponent_width >= 2 (the top exponent is reserved)")
        self.require("overflow", choices=OVERFLOW_POLICIES)
        self._format = minifloat(c.exponent_width, c.width - 1 - c.exponent_width, c.bias, c.form, c.specials)

    def number_format(self):
        return self._format


@register("quantizer", "log")
class Log(ScalarFormat):
    """Sign and power-of-two exponent: ``±2^(E-b)`` with a ``width - 1``-bit field ``E >= 1``, ``E = 0`` is zero.

    Rounds ``log2|x|`` to the nearest integer (mase's log quantizer); saturates at both ends, except
    that magnitudes below half the smallest power become zero. ``bias`` defaults to ``2^(width-2) - 1``.
    """

    @dataclass
    class Config:
        width: int = 8
        bias: int | None = None

    def check(self):
        self.require("width", low=2, high=16)
        if self.config.bias is not None:
            self.require("bias", low=-(2 ** 15), high=2 ** 15)
        self._format = log_format(self.config.width, self.config.bias)

    def number_format(self):
        return self._format
