"""Number formats shared by the scalar and block quantizers, and the bit-budget bookkeeping.

A ``SignMagnitude`` format is defined by the value of each of its codes: the top bit is the sign, the
other ``bits - 1`` bits name a magnitude (or inf/NaN). Encoding finds the nearest magnitude in the
sorted table of finite magnitudes; a tie goes to the even code, which for IEEE-style formats is
round-half-to-even on the mantissa (IEEE 754-2019 §4.3.1, roundTiesToEven). The same code serves
every minifloat (fp16, bf16, OCP fp8/fp6/fp4), the denormal-only minifloat and the log format, so
the rounding and overflow rules are written once.

``int_element`` is the two's-complement element of MXINT8 and block floating point: ``q * 2^-(w-2)``
with ``|q| <= 2^(w-1) - 1`` (OCP MX v1.0 §5.3: MXINT8 = int8 × 2^-6).
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from ...kernels import numformats as K

OVERFLOW_POLICIES = ("saturate", "nonfinite")
SPECIALS = ("ieee", "fn", "none")


def uint_dtype(bits: int) -> np.dtype:
    """The narrowest unsigned code dtype holding ``bits`` bits."""
    return np.dtype(np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else np.uint32)


def int_dtype(bits: int) -> np.dtype:
    """The narrowest signed code dtype holding a ``bits``-bit two's-complement integer."""
    return np.dtype(np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32)


def budget_meta(n: int, codes: dict[str, np.ndarray], side: dict[str, np.ndarray],
                code_bits: dict[str, int], nominal: float) -> dict:
    """``bits_per_value`` (codes at their used width plus 8 bits per side byte, per input value) and ``code_bits``.

    ``nominal`` is the rate for an empty input, where no value carries the cost (side data, if any,
    is then counted as if for one value).
    """
    total = sum(codes[k].size * code_bits[k] for k in codes) + 8 * sum(a.nbytes for a in side.values())
    return {"bits_per_value": total / n if n else max(float(nominal), float(total)), "code_bits": dict(code_bits)}


class SignMagnitude:
    """A sign-magnitude number format of ``bits`` bits given by the values of its magnitude codes.

    ``values[c]`` for ``c < 2^(bits-1)`` is the magnitude of code ``c`` (``inf`` or ``nan`` for
    special codes). ``log_rounding`` rounds to the nearest magnitude in log2 (for log formats);
    otherwise to the nearest in value, ties to the even code.
    """

    twos_complement = False  # codes of negative values stored as -magnitude_code (int_element)

    def __init__(self, bits: int, values: np.ndarray, log_rounding: bool = False):
        self.bits = bits
        self.log_rounding = log_rounding
        self.sign_bit = 1 << (bits - 1)
        self.dtype = uint_dtype(bits)
        values = np.asarray(values, dtype=np.float64)
        finite = np.flatnonzero(np.isfinite(values))
        mags, first = np.unique(values[finite], return_index=True)
        self.magnitudes = mags
        self.mag_codes = finite[first].astype(np.int64)
        self.max_finite = float(mags[-1])
        inf = np.flatnonzero(np.isposinf(values))
        nan = np.flatnonzero(np.isnan(values))
        self.inf_code = int(inf[0]) if inf.size else None
        # the quiet NaN with only the top mantissa bit set (IEEE 754 §6.2.1), or the single NaN pattern of E4M3
        self.nan_code = int(nan[(nan.size - 1) // 2]) if nan.size else None
        self.values = values
        # the first value past max_finite in the unbounded format: the overflow target of round-to-nearest
        self.overflow_code = self.inf_code if self.inf_code is not None else self.nan_code
        mids = self._midpoints(mags, log_rounding)
        self.table_codes = self.mag_codes
        if self.overflow_code is not None:
            mids = np.append(mids, (mags[-1] + self._next_after_max()) / 2)
            self.table_codes = np.append(self.mag_codes, self.overflow_code)
        self.mids = mids
        self.buckets, self.bucket_e_lo, self.bucket_bits = K.bucket_table(mids)

    def _next_after_max(self) -> float:
        """The value after ``max_finite`` in the same format with an unbounded exponent."""
        top, below = self.magnitudes[-1], self.magnitudes[-2]
        return 2 * top if 2 * below == top else 2 * top - below

    @staticmethod
    def _midpoints(mags: np.ndarray, log_rounding: bool) -> np.ndarray:
        mids = (mags[:-1] + mags[1:]) / 2
        if log_rounding and mags.size > 2:
            mids[1:] = np.sqrt(mags[1:-1] * mags[2:])
        return mids

    @property
    def emax(self) -> int:
        """``floor(log2(max_finite))``: the exponent of the largest binade (OCP MX ``emax_elem``)."""
        return math.frexp(self.max_finite)[1] - 1

    @cached_property
    def lut64(self) -> np.ndarray:
        """Value of every code (``2^bits`` entries, sign included) in float64."""
        return np.concatenate([self.values, -self.values])

    def lut(self, dtype) -> np.ndarray:
        return self.lut64.astype(dtype)

    def encode(self, x: np.ndarray, overflow: str = "saturate") -> np.ndarray:
        """Codes of ``x`` (any float array), rounded to nearest, ties to even code.

        ``overflow='saturate'``: finite values past the largest magnitude become it; ``'nonfinite'``:
        they round to inf (or NaN where the format has no inf), as an IEEE cast does. ``±inf`` map to
        the inf code when there is one, else to the largest magnitude (saturate) or NaN. NaN maps to
        the format's NaN code; a format without NaN raises ``ValueError``.
        """
        flat = np.ascontiguousarray(x).reshape(-1)
        if self.nan_code is None and np.isnan(flat).any():
            raise ValueError(f"a {self.bits}-bit format without NaN cannot encode NaN input")
        out = np.empty(flat.size, dtype=self.dtype)
        special = (lambda code: -1 if code is None else code)
        K.encode_into(flat, out, self.mids, self.buckets, self.bucket_e_lo, self.bucket_bits, self.table_codes,
                      self.sign_bit, special(self.inf_code), special(self.nan_code), True,
                      special(self.overflow_code), overflow == "saturate")
        return out.reshape(np.shape(x))

    def decode(self, codes: np.ndarray, dtype) -> np.ndarray:
        return self.lut(dtype)[codes]


def minifloat(exponent_bits: int, mantissa_bits: int, bias: int | None = None, form: str = "ieee",
              specials: str = "none", **kwargs) -> SignMagnitude:
    """A minifloat of ``1 + exponent_bits + mantissa_bits`` bits.

    ``form='ieee'``: hidden bit, subnormals at exponent field 0 (IEEE 754 §3.4):
    ``(1 + M/2^m) 2^(E-b)`` for ``E >= 1`` and ``(M/2^m) 2^(1-b)`` for ``E = 0``.
    ``form='denorm'``: no hidden bit at any exponent, ``(M/2^m) 2^(E-b)`` (mase's MinifloatDenorm).
    ``specials``: ``'ieee'`` reserves the top exponent for inf (M = 0) and NaN (fp16, bf16, e5m2);
    ``'fn'`` reserves only the all-ones code for NaN (OCP e4m3); ``'none'`` has every code finite
    (OCP fp6/fp4, mase minifloats). ``b`` defaults to ``2^(e-1) - 1``.
    """
    e, m = exponent_bits, mantissa_bits
    b = 2 ** (e - 1) - 1 if bias is None else bias
    code = np.arange(2 ** (e + m))
    field, mant = code >> m, (code & (2 ** m - 1)).astype(np.float64)
    if form == "ieee":
        values = np.where(field > 0, np.ldexp(1 + mant / 2 ** m, field - b), np.ldexp(mant / 2 ** m, 1 - b))
    else:
        values = np.ldexp(mant / 2 ** m, field - b)
    top = field == 2 ** e - 1
    if specials == "ieee":
        values[top] = np.where(mant[top] == 0, np.inf, np.nan)
    elif specials == "fn":
        values[-1] = np.nan
    return SignMagnitude(1 + e + m, values, **kwargs)


def log_format(bits: int, bias: int | None = None) -> SignMagnitude:
    """Sign and a ``bits - 1``-bit exponent field ``E``: ``±2^(E-b)`` for ``E >= 1``, ``±0`` for ``E = 0``.

    Rounds in the log domain (``round(log2|x|)``, as mase's log quantizer); magnitudes below half the
    smallest step become zero. ``b`` defaults to ``2^(bits-2) - 1``.
    """
    b = 2 ** (bits - 2) - 1 if bias is None else bias
    field = np.arange(2 ** (bits - 1))
    values = np.where(field > 0, np.ldexp(1.0, field - b), 0.0)
    return SignMagnitude(bits, values, log_rounding=True)


def int_element(bits: int) -> SignMagnitude:
    """Symmetric two's-complement element ``q 2^-(bits-2)``, ``|q| <= 2^(bits-1) - 1`` (OCP MXINT8 for 8 bits).

    Encoded as a sign-magnitude format whose codes are then stored as two's-complement integers.
    """
    fmt = SignMagnitude(bits, np.ldexp(np.arange(2 ** (bits - 1), dtype=np.float64), -(bits - 2)))
    fmt.twos_complement = True
    fmt.dtype = int_dtype(bits)
    return fmt
