"""Block formats: a shared power-of-two scale per block of values along the last axis.

``blockfp`` (integer elements), ``block_minifloat``, ``block_log`` and the OCP Microscaling presets
``mxint8``, ``mxfp8_e4m3``, ``mxfp8_e5m2``, ``mxfp6_e2m3``, ``mxfp6_e3m2``, ``mxfp4``.

One rule for every block (OCP Microscaling Formats (MX) v1.0, §6.3 "conversion"):
``X = 2^(floor(log2 amax) - emax_elem)`` (``round`` instead of ``floor`` for log elements),
``P_i = element(V_i / X)`` rounded to nearest even and saturated at the element's largest magnitude,
``V̂_i = X P_i``. ``emax_elem`` is the exponent of the element's largest binade (8 for E4M3, 15 for E5M2, 2 for E2M3 and E2M1, 4 for E3M2, 0 for INT8 with
its implicit 2^-6). The scale is stored as an exponent code of ``scale_width`` bits with bias
``2^(scale_width-1) - 1``, all ones meaning NaN (E8M0 for 8 bits: 2^-127 .. 2^127, 0xFF = NaN).
A block of zeros gets the smallest scale; a block holding NaN or inf gets the NaN scale and decodes
to NaN. The last block of a row is padded with zeros when the row length is not a multiple of the
block size; codes are stored unpadded, in the input's shape, so padding costs nothing but its scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...base import Quantized, Quantizer
from ...errors import FrameError
from ...kernels import numformats as K
from ...registry import register
from .formats import budget_meta, int_element, log_format, minifloat, uint_dtype


class BlockScaled(Quantizer):
    """Shared power-of-two scale per ``block_size`` values along the last axis, elements in a small format.

    Promises ``element_bits + scale_width * blocks / values`` bits per value (8.25 for MXINT8 on full blocks).
    """

    guarantee: ClassVar[str] = "bit_budget"
    scale_width: ClassVar[int] = 8

    def element(self):
        raise NotImplementedError

    def scale_bits(self) -> int:
        return getattr(self.config, "scale_width", self.scale_width)

    def _layout(self, shape) -> tuple[int, int, int]:
        length = shape[-1] if len(shape) else 1
        rows = int(np.prod(shape[:-1])) if len(shape) else 1
        block = self.config.block_size
        return rows, length, -(-length // block) if length else 0

    def quantize(self, x, bound=None) -> Quantized:
        x = self.check_input(x)
        elem, sw, block = self.element(), self.scale_bits(), self.config.block_size
        rows, length, nblocks = self._layout(x.shape)
        bias = 2 ** (sw - 1) - 1
        codes = np.empty((rows, length), dtype=elem.dtype)
        scales = np.empty((rows, nblocks), dtype=uint_dtype(sw))
        K.block_encode_into(x.reshape(rows, length), codes, scales, block, elem.emax, bias, 2 ** sw - 2 - bias,
                            2 ** sw - 1, elem.log_rounding, elem.twos_complement, elem.mids, elem.buckets,
                            elem.bucket_e_lo, elem.bucket_bits, elem.table_codes, elem.sign_bit,
                            -1 if elem.overflow_code is None else elem.overflow_code)
        codes = {"elements": codes.reshape(x.shape), "scales": scales}
        meta = budget_meta(x.size, codes, {}, {"elements": elem.bits, "scales": sw}, elem.bits + sw / block)
        return Quantized(codes=codes, meta=meta, shape=x.shape, dtype=x.dtype.name)

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        rows, _, nblocks = self._layout(q.shape)
        return {"elements": (self.element().dtype, tuple(q.shape)), "scales": (uint_dtype(self.scale_bits()), (rows, nblocks))}

    def dequantize(self, q: Quantized) -> np.ndarray:
        """The field from its elements and scales; codes or scale shapes that do not fit raise ``FrameError``."""
        elem, sw = self.element(), self.scale_bits()
        rows, length, nblocks = self._layout(q.shape)
        elements, scales = q.codes["elements"], q.codes["scales"]
        if (elements.size, elements.dtype, scales.shape, scales.dtype) != (rows * length, elem.dtype, (rows, nblocks),
                                                                          uint_dtype(sw)):
            raise FrameError(f"{self.plugin_id}: elements {elements.shape} of {elements.dtype} and scales {scales.shape} "
                             f"of {scales.dtype} do not fit a {list(q.shape)} field in blocks of {self.config.block_size}")
        out = np.empty((rows, length), dtype=q.dtype)
        bad = K.block_decode_into(elements.reshape(rows, length), scales, out, self.config.block_size,
                                  2 ** (sw - 1) - 1, 2 ** sw - 1, elem.lut64, elem.twos_complement, elem.sign_bit)
        if bad:
            raise FrameError(f"{self.plugin_id}: {bad} element code(s) are not {elem.bits}-bit codes of the format")
        return out.reshape(q.shape)


def _require_block(plugin: Quantizer) -> None:
    plugin.require("block_size", low=1, high=1 << 20)


@register("quantizer", "blockfp")
class BlockFP(BlockScaled):
    """Block floating point: ``width``-bit two's-complement integers sharing an ``exponent_width``-bit exponent.

    The element is ``q 2^-(width-2)``, ``|q| <= 2^(width-1) - 1``; the step is ``2^(floor(log2 amax) - width + 2)``
    (mase BlockFP's ``2^(ceil(log2 amax) - width + 1)`` except at exact powers of two, where mase clamps).
    ``width=8, exponent_width=8, block_size=32`` is MXINT8.
    """

    @dataclass
    class Config:
        width: int = 8
        exponent_width: int = 8
        block_size: int = 16

    def check(self):
        self.require("width", low=2, high=16)
        self.require("exponent_width", low=2, high=16)
        _require_block(self)

    def scale_bits(self):
        return self.config.exponent_width

    def element(self):
        return int_element(self.config.width)


@register("quantizer", "block_minifloat")
class BlockMinifloat(BlockScaled):
    """Minifloat elements (``width`` bits, ``exponent_width`` exponent bits, all codes finite) sharing a
    ``scale_width``-bit exponent per block; ``form`` as for ``minifloat`` (``ieee`` with subnormals or ``denorm``).

    The shared exponent replaces mase's per-block bias with the MX rule, so the block maximum lands in the
    element's top binade.
    """

    @dataclass
    class Config:
        width: int = 8
        exponent_width: int = 4
        scale_width: int = 8
        block_size: int = 16
        form: str = "ieee"

    def check(self):
        c = self.config
        self.require("width", low=3, high=16)
        self.require("exponent_width", low=1, high=min(8, c.width - 2))
        self.require("scale_width", low=2, high=16)
        self.require("form", choices=("ieee", "denorm"))
        _require_block(self)
        self._element = minifloat(c.exponent_width, c.width - 1 - c.exponent_width, form=c.form)

    def element(self):
        return self._element


@register("quantizer", "block_log")
class BlockLog(BlockScaled):
    """Log elements (sign and ``width - 1``-bit exponent, zero code, see ``log``) sharing a ``scale_width``-bit exponent."""

    @dataclass
    class Config:
        width: int = 4
        scale_width: int = 8
        block_size: int = 16

    def check(self):
        self.require("width", low=2, high=8)
        self.require("scale_width", low=2, high=16)
        _require_block(self)
        self._element = log_format(self.config.width, bias=2 ** (self.config.width - 1) - 1)

    def element(self):
        return self._element


def _mx(plugin_id: str, element_format, doc: str):
    @dataclass
    class Config:
        block_size: int = 32

    class MX(BlockScaled):
        __doc__ = doc
        _element = element_format

        def check(self):
            _require_block(self)

        def element(self):
            return self._element

    MX.Config = Config
    MX.__name__ = MX.__qualname__ = plugin_id.upper()
    return register("quantizer", plugin_id)(MX)


_MX_DOC = "OCP MX v1.0 {}: blocks of ``block_size`` (spec: 32) sharing an E8M0 scale; {} elements."
MXINT8 = _mx("mxint8", int_element(8), _MX_DOC.format("MXINT8", "int8 × 2^-6 (|q| <= 127)"))
MXFP8_E4M3 = _mx("mxfp8_e4m3", minifloat(4, 3, specials="fn"), _MX_DOC.format("MXFP8", "FP8 E4M3 (max 448)"))
MXFP8_E5M2 = _mx("mxfp8_e5m2", minifloat(5, 2, specials="ieee"), _MX_DOC.format("MXFP8", "FP8 E5M2 (max 57344)"))
MXFP6_E2M3 = _mx("mxfp6_e2m3", minifloat(2, 3), _MX_DOC.format("MXFP6", "FP6 E2M3 (max 7.5)"))
MXFP6_E3M2 = _mx("mxfp6_e3m2", minifloat(3, 2), _MX_DOC.format("MXFP6", "FP6 E3M2 (max 28)"))
MXFP4 = _mx("mxfp4", minifloat(2, 1), _MX_DOC.format("MXFP4", "FP4 E2M1 (max 6)"))
