"""Error-bounded uniform quantization to int8 or int16 codes (``int8``, ``int16``).

As in the DLRM compression benchmark (allenfengjr/dlrm_comp, ``comp_benchmark/quantization.py``):
``eb_abs = eb * (max - min)`` in ``rel`` mode, ``code = round((x - c) / (2 eb_abs))``. The centre
``c`` (the midrange of the finite values) travels as side data, so data far from zero still fits the
code type. Values whose code does not fit, NaN and infinities are kept exactly as outliers, so
``max|x - x̂| <= eb_abs`` holds for every finite element in the dequantizer's own arithmetic
(see ``compframe.kernels.uniform``) and non-finite values come back bit-identical.

Float32 fields of ``ONE_PASS_MIN`` values or more (``rel`` bounds from the code type's
``ONE_PASS_REL_MIN``; every ``abs`` bound) are quantized in one pass (``_one_pass``; ``passes: 1``
forces it, ``passes: 2`` refuses it): each chunk of ``chunk`` values with the bound, centre and step
of the range seen before its wave of ``WAVE`` chunks (quantized in parallel), which is never looser
than the field's; the frame then carries each chunk's centre and step (side arrays ``chunk_centre``,
``chunk_step``), unless every chunk ends with the field's own. Decoding refuses side data no quantizer
writes (``_plan_params``, ``_chunk_params``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np

from ... import limits
from ...base import ErrorBound, Quantized, Quantizer
from ...errors import FrameError
from ...kernels import uniform as K
from ...registry import register


ONE_PASS_MIN = 1 << 22
"""Float32 fields of at least this many values (16 MiB) take the one-pass path by default: past the
caches, where a second read of the field costs what the whole copy does."""
ONE_PASS_REL_MIN = {code: max(2.5e-4, 1 / (4 * (np.iinfo(code).max - 1))) for code in ("int8", "int16")}
"""... and ``rel`` bounds of at least this, per code type: the larger of 2.5e-4 and the finest bound
whose codes span the field's range around its midrange (``1 / (4 (max code - 1))``: 1.98e-3 for int8,
7.6e-6 for int16). Finer int8 bounds leave the values past the codes as outliers, which the one-pass
path finds chunk by chunk, with a plan centred on what came before, and retries: it measured slower
than two passes there. Below 2.5e-4 (int16 codes beyond about ±1000) the float32 fast loop leaves
more than 5 % of its blocks to the exact check, the codes pass is compute-bound, and one pass
measured no faster than two on one thread of an AMD Zen 4 (docs/benchmarks.md); on an Intel Xeon,
since the waves (``WAVE``), it measured 1.13-1.23x faster on one and two threads, for 0.2 % more code
entropy and 40x the outliers: the cut-off stands until measured on more machines."""
REDO_BITS = 1 / 8
"""A one-pass chunk whose bound came out tighter than the field's by more than this many bits (the
codes it costs per value) is quantized again with the field's bound."""
WAVE = 16
"""One-pass chunks quantized at once, in parallel, each with the plan of the range of the waves of
chunks before (``kernels.uniform.quantize_running``): up to this many threads share the pass. Fixed,
so that the codes do not depend on the thread count. A wave's chunks see a range that lags by up to
``WAVE - 1`` chunks: on the 256 MiB Gaussian bench field 128 chunks of 1024 are redone for a tight
bound instead of 120 one chunk at a time (a throwaway script), and the code entropy is 4.1434 bits
against 4.1430 (int8, ``rel:1e-2``; ``bench/bench_uniform.py --ratio``); two threads then quantize at
1.6-1.8x one (``--vs-copy``; docs/benchmarks.md)."""
SAMPLE_LINES = 4096
SAMPLE_MIN = 1 << 20
"""A one-pass field of at least ``SAMPLE_MIN`` values starts from the range of ``SAMPLE_LINES`` cache lines
spread over it (``kernels.uniform.sample_range``; 64 Ki values, 0.3 ms at 256 MiB), so that a
range set by the bulk of the field (a trend, a drift, sorted values) is known from the first chunk and
the early chunks are not coded tight and redone; a range set by a few rare values (a Gaussian's tails)
is found as before."""
OUTLIER_SIDE = {"outlier_index", "outlier_bits"}
CHUNK_SIDE = {"chunk_centre", "chunk_step"}


class UniformQuantizer(Quantizer):
    """Uniform scalar quantizer with step ``2·eb_abs`` around a centre (the midrange with two passes;
    one-pass frames keep the running plan's, per chunk where it differs); see the module doc."""

    code_dtype: ClassVar[str]
    takes_value_range = True

    options_params = ("passes", "chunk")  # meta.chunk records a one-pass frame's chunking

    @dataclass
    class Config:
        passes: int | str = "auto"
        """``auto``: one pass for float32 fields from ``ONE_PASS_MIN`` values and ``rel`` bounds from
        ``ONE_PASS_REL_MIN``, else two; ``1``: one pass for every float32 field (a field holding ±inf
        or no number in its first chunk, and float64 fields, still take two); ``2``: always two."""
        chunk: int = K.CHUNK
        """Values per chunk of the one-pass path (each chunk with its own centre and step)."""

    def check(self):
        self.require("passes", choices=("auto", 1, 2))
        self.require("chunk", low=64, high=1 << 30)
        self.unused_unless("chunk", self.config.passes != 2, "passes is auto or 1")

    def quantize(self, x: np.ndarray, bound: ErrorBound | None, out: np.ndarray | None = None,
                 value_range: tuple[float, float] | None = None) -> Quantized:
        """Quantize ``x``; ``out`` (optional, C-contiguous, ``x.size`` elements of the code dtype)
        receives the codes, so a caller in a loop can reuse one buffer instead of fresh pages.

        ``value_range`` (optional ``(min, max)`` the caller expects, e.g. the previous iteration's
        ``meta["range"]``) saves the pass that finds the range of a float32 field: the codes are
        taken with the bound and centre of the given range while the field's own range is found in
        the same pass. That result is kept only if it keeps every promise of the two-pass one: the
        bound it holds is at most the bound of the field's own range (``rel``: the given range is not
        wider than the field's), and, if there are outliers, no value lacked a code because of the
        given centre (the field's range has codes around it, or lies within the given range).
        Otherwise the field is quantized again from its own range, exactly as without the hint.

        Without the hint, a float32 field of at least ``ONE_PASS_MIN`` values (and a ``rel`` bound of at
        least ``ONE_PASS_REL_MIN``) takes the one-pass path
        (see the module doc and ``_one_pass``); ``meta["abs_bound"]`` is the field's own bound either way.
        """
        if bound is None:
            raise ValueError(f"quantizer '{self.plugin_id}' is error-bounded and needs a bound, e.g. 'rel:1e-2'")
        hint = None if value_range is None else _hint(value_range)
        x = self.check_input(x)
        flat = x.reshape(-1)
        codes = np.empty(flat.size, dtype=self.code_dtype) if out is None else _buffer(out, flat.size, self.code_dtype)
        kept = None
        if hint is not None and x.dtype == np.float32 and flat.size:
            plan = _plan(bound, *hint)
            counts, found, marks = self._code_pass(flat, codes, plan, *hint, track=True)
            if found is not None and plan[0] <= bound.absolute(found[1] - found[0]) \
                    and (not counts.any() or self._fits(plan, *found) or hint[0] <= found[0] and found[1] <= hint[1]):
                kept = plan, counts, found, None, K.CHUNK, marks
        elif x.dtype == np.float32 and flat.size and self.takes_one_pass(flat.size, bound):
            kept = self._one_pass(flat, codes, bound)
        if kept is None:
            lo, hi, _ = K.finite_range(flat)
            plan = _plan(bound, lo, hi)
            counts, _, marks = self._code_pass(flat, codes, plan, lo, hi)
            kept = plan, counts, (lo, hi), None, K.CHUNK, marks
        # counts: outliers per chunk of `chunk` values; marks: the blocks holding them (None: unknown)
        (eb, centre, step), counts, (lo, hi), chunks, chunk, marks = kept
        n_out = int(counts.sum())
        bits_dtype = np.uint32 if x.dtype == np.float32 else np.uint64
        index = np.empty(n_out, dtype=np.uint32 if flat.size < 2**32 else np.uint64)
        bits = np.empty(n_out, dtype=bits_dtype)
        if n_out:
            nc = counts.size
            centres, steps, ebs = chunks or (np.full(nc, centre), np.full(nc, step), np.full(nc, eb))
            found = K.gather_outliers(flat, codes, centres, steps, ebs, *_limits(self.code_dtype), counts, chunk,
                                      index, bits, marks)
            if not np.array_equal(found, counts):  # a kernel bug: stop before a frame with garbage outliers
                raise RuntimeError(f"{self.plugin_id}: the outlier gather found {found.tolist()[:8]} per chunk where "
                                   f"the codes pass counted {counts.tolist()[:8]} (first 8 chunks)")
        side = {"outlier_index": index, "outlier_bits": bits}
        meta = {"centre": centre, "step": step, "abs_bound": eb, "value_range": hi - lo, "range": [lo, hi],
                "outliers": n_out}
        if chunks:
            side.update(chunk_centre=chunks[0], chunk_step=chunks[1])
            meta["chunk"] = chunk
        return Quantized(codes={"codes": codes.reshape(x.shape)}, side=side, meta=meta, shape=tuple(x.shape),
                         dtype=x.dtype.name)

    def takes_one_pass(self, n: int, bound: ErrorBound) -> bool:
        """Whether a float32 field of ``n`` values takes the one-pass path (see ``Config.passes``)."""
        if self.config.passes != "auto":
            return self.config.passes == 1
        return n >= ONE_PASS_MIN and (bound.mode == "abs" or bound.value >= ONE_PASS_REL_MIN[self.code_dtype])

    def _one_pass(self, flat: np.ndarray, codes: np.ndarray, bound: ErrorBound):
        """The one-pass path (``kernels.uniform.quantize_running``, in waves of ``WAVE`` chunks) for a
        float32 field, then the chunks whose bound came out more than ``REDO_BITS`` bits tighter than the
        field's again with the field's plan, and those with more than 1/64 outliers (of their own values:
        the last chunk may be short) that are not NaN too, kept where that leaves fewer (a range that
        does not fit the codes, centred on what was seen before the chunk, may miss the bulk; no plan
        codes NaN, so a field with NaN spread densely is not coded twice). ``(plan, counts, (min, max),
        per-chunk (centres, steps, bounds) or None, chunk, block marks)``, or None where the field needs
        the two-pass path (±inf, or no number in the first chunk)."""
        lo_code, hi_code = _limits(self.code_dtype)
        chunk = self.config.chunk
        nc = -(-flat.size // chunk)
        centres, ebs, steps = np.empty(nc), np.empty(nc), np.empty(nc)
        counts = np.zeros(nc, np.int64)
        marks = K.block_marks(flat.size, chunk)
        rel = bound.value if bound.mode == "rel" else 0.0
        lines = SAMPLE_LINES if flat.size >= SAMPLE_MIN else 0
        done, lo, hi = K.quantize_running(flat, codes, rel, bound.value, lo_code, hi_code, centres, ebs, steps, counts,
                                          chunk, marks, lines, WAVE, numba.get_num_threads() == 1)
        if not done:
            return None
        eb, centre, step = plan = K._running_plan(rel, bound.value, lo, hi, centres[-1], hi_code)
        tight = ebs < eb * 2.0**-REDO_BITS
        most = np.full(nc, chunk // 64)  # outliers a chunk keeps without a retry: 1/64 of its values
        most[-1] = (flat.size - (nc - 1) * chunk) // 64
        retry = ~tight & (counts > most) & ((centres != centre) | (steps != step))
        if retry.any():  # NaN is an outlier under any plan: count only the outliers another plan could code
            listed = np.flatnonzero(retry)
            retry[listed] = counts[listed] - K.chunk_nans(flat, listed, chunk) > most[listed]
        for chunks, fewer in ((np.flatnonzero(tight), False), (np.flatnonzero(retry), True)):
            if chunks.size:
                chunks = chunks[K.requantize_chunks(flat, codes, chunks, chunk, centre, step, eb, lo, hi, lo_code,
                                                    hi_code, counts, fewer, marks)]
                centres[chunks], ebs[chunks], steps[chunks] = centre, eb, step
        same = (centres == centre).all() and (steps == step).all() and (ebs == eb).all()
        return plan, counts, (lo, hi), None if same else (centres, steps, ebs), chunk, marks

    def _fits(self, plan: tuple[float, float, float], lo: float, hi: float) -> bool:
        """Whether every value in ``[lo, hi]`` has a code (one to spare) with ``plan``'s centre and step."""
        _, centre, step = plan
        return step > 0 and max(hi - centre, centre - lo) / step <= _limits(self.code_dtype)[1] - 1

    def _code_pass(self, flat: np.ndarray, codes: np.ndarray, plan: tuple[float, float, float], lo: float, hi: float,
                   track: bool = False) -> tuple[np.ndarray, tuple[float, float] | None, np.ndarray | None]:
        """Codes of ``flat`` for ``plan = (eb, centre, step)`` fitted to the range ``[lo, hi]``: per-chunk
        outlier counts, with ``track`` (float32 only) the field's finite (min, max) or None, and the
        blocks holding an outlier (``kernels.uniform.block_marks``)."""
        eb, centre, step = plan
        lo_code, hi_code = _limits(self.code_dtype)
        fast = K.fast_params(centre, step, eb, max(hi - centre, centre - lo), lo_code, hi_code) \
            if flat.dtype == np.float32 else None
        if fast is not None:
            marks = K.block_marks(flat.size)
            return (*K.quantize_fast_into(flat, codes, fast, centre, step, eb, lo_code, hi_code, track, marks), marks)
        if track:  # the value_range path needs the fast kernel; report nothing found so the caller redoes it
            return np.zeros(1, np.int64), None, None
        counts = K.quantize_into(flat, codes, centre, step, eb, lo_code, hi_code)
        marks = K.block_marks(flat.size)
        if counts.any():
            counts = K.repair(flat, codes, centre, step, eb, lo_code, hi_code, counts, marks)
        return counts, None, marks

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        self._outliers(q)
        return {"codes": (np.dtype(self.code_dtype), tuple(q.shape))}

    def _outliers(self, q: Quantized) -> tuple[np.ndarray, np.ndarray]:
        """The outlier index and bits, checked against each other and the field."""
        n = math.prod(q.shape)
        if set(q.side) not in (OUTLIER_SIDE, OUTLIER_SIDE | CHUNK_SIDE):
            raise FrameError(f"{self.plugin_id}: side arrays {sorted(q.side)}, expected outlier_index and outlier_bits "
                             f"(and chunk_centre with chunk_step)")
        index, bits = q.side["outlier_index"], q.side["outlier_bits"]
        width = np.dtype(q.dtype).itemsize
        if index.ndim != 1 or index.dtype not in (np.uint32, np.uint64) or bits.shape != index.shape \
                or bits.dtype != np.dtype(f"u{width}") or index.size > n:
            raise FrameError(f"{self.plugin_id}: outlier side data ({index.shape} of {index.dtype}, {bits.shape} of "
                             f"{bits.dtype}) does not fit a {q.dtype} field of {n} values")
        return index, bits

    def _plan_params(self, q: Quantized) -> tuple[float, float]:
        """The centre and step of the field's plan, refused (``FrameError`` naming the field) unless a
        quantizer could have written them with ``meta.abs_bound`` (itself at most the frame header's
        bound of ``meta.value_range``, when the header is known): a centre the field's dtype holds
        (a midrange of its values), a bound >= 0 (inf for an unbounded one), a finite step of at most
        twice the bound, 0 only where twice the bound is 0 or overflows (one code for every value)."""
        centre = limits.number(q.meta.get("centre"), "meta.centre")
        step = limits.number(q.meta.get("step"), "meta.step")
        eb = limits.number(q.meta.get("abs_bound"), "meta.abs_bound")
        top = float(np.finfo(q.dtype).max)
        if not abs(centre) <= top:
            raise FrameError(f"{self.plugin_id}: meta.centre = {centre!r} is not a finite {q.dtype} value")
        if not eb >= 0:
            raise FrameError(f"{self.plugin_id}: meta.abs_bound = {eb!r} must be >= 0")
        if q.bound is not None:  # a frame's: the bound of the field's range, or tighter (a value_range hint)
            value_range = limits.number(q.meta.get("value_range"), "meta.value_range")
            if not eb <= q.bound.absolute(value_range):
                raise FrameError(f"{self.plugin_id}: meta.abs_bound = {eb!r} is looser than the frame's bound "
                                 f"{q.bound} of meta.value_range = {value_range!r}")
        if not (0 < step <= 2 * eb and math.isfinite(step) or step == 0 and not 0 < 2 * eb < math.inf):
            raise FrameError(f"{self.plugin_id}: meta.step = {step!r} does not fit meta.abs_bound = {eb!r} (a finite "
                             f"step in (0, 2 * abs_bound], or 0 where 2 * abs_bound is 0 or overflows)")
        return centre, step

    def _chunk_params(self, q: Quantized, step: float) -> tuple[np.ndarray, np.ndarray, int] | None:
        """Per-chunk centres and steps with the chunk length (a one-pass frame), or None (one plan).
        Refused unless a quantizer could have written them: centres the field's dtype holds, steps
        positive and never looser than the field's ``step`` (``meta.step``, checked by ``_plan_params``)."""
        if "chunk_centre" not in q.side:
            return None
        chunk = limits.integer(q.meta.get("chunk"), "meta.chunk", 1, 1 << 40)
        centres, steps = q.side["chunk_centre"], q.side["chunk_step"]
        nc = -(-math.prod(q.shape) // chunk)
        for name, a in (("chunk_centre", centres), ("chunk_step", steps)):
            if a.dtype != np.float64 or a.shape != (nc,):
                raise FrameError(f"{self.plugin_id}: {name} is {a.shape} of {a.dtype}, expected ({nc},) of float64 "
                                 f"(one per {chunk} values)")
        top = float(np.finfo(q.dtype).max)
        for name, a, ok in (("chunk_centre", centres, np.abs(centres) <= top),
                            ("chunk_step", steps, (steps > 0) & (steps <= step))):
            if not ok.all():
                c = int(np.flatnonzero(~ok)[0])
                raise FrameError(f"{self.plugin_id}: {name}[{c}] = {a[c]!r} is impossible (centres: finite {q.dtype} "
                                 f"values; steps: in (0, meta.step = {step!r}])")
        return centres, steps, chunk

    def dequantize(self, q: Quantized, out: np.ndarray | None = None) -> np.ndarray:
        """Rebuild the field; ``out`` (optional, C-contiguous, of the field's size and dtype) receives it.
        Codes or outliers that do not fit the field raise ``FrameError``."""
        index, bits = self._outliers(q)
        centre, step = self._plan_params(q)
        chunks = self._chunk_params(q, step)
        codes = q.codes["codes"]
        if codes.dtype != np.dtype(self.code_dtype) or codes.size != math.prod(q.shape):
            raise FrameError(f"{self.plugin_id}: codes are {codes.shape} of {codes.dtype}, the field is "
                             f"{list(q.shape)} ({self.code_dtype} codes)")
        codes = codes.reshape(-1)
        dtype = np.dtype(q.dtype)
        out = np.empty(codes.size, dtype=dtype) if out is None else _buffer(out, codes.size, dtype)
        if chunks is None:
            K.dequantize_into(codes, out, centre, step)
        else:
            K.dequantize_chunks_into(codes, out, *chunks)
        if index.size:
            if int(index.max()) >= out.size:
                raise FrameError(f"{self.plugin_id}: outlier index {int(index.max())} is outside the field of {out.size} values")
            K.scatter_bits(out.view(bits.dtype), index, bits)
        return out.reshape(q.shape)


@functools.cache
def _limits(code_dtype: str) -> tuple[float, float]:
    """The smallest and largest code of ``code_dtype``, as floats (the kernels' ``lo``, ``hi``)."""
    info = np.iinfo(code_dtype)
    return float(info.min), float(info.max)


def _plan(bound: ErrorBound, lo: float, hi: float) -> tuple[float, float, float]:
    """``(eb, centre, step)`` for a field whose finite values span ``[lo, hi]``."""
    eb = bound.absolute(hi - lo)  # the range may overflow to inf for float64 data spanning the whole range
    # A step too large to represent (an infinite bound) means one code, 0, for every value.
    return eb, lo / 2 + hi / 2, 2.0 * eb if math.isfinite(2.0 * eb) else 0.0


def _hint(value_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be a pair (min, max) of numbers, got {value_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"value_range must be finite with min <= max, got {value_range!r}")
    return lo, hi


def _buffer(out: np.ndarray, size: int, dtype) -> np.ndarray:
    if out.dtype != np.dtype(dtype) or out.size != size or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {np.dtype(dtype)} array of {size} elements, "
                         f"got {out.dtype} {out.shape}")
    return out.reshape(-1)


@register("quantizer", "int8")
class Int8(UniformQuantizer):
    """Error-bounded uniform quantization to int8 codes (|code| <= 127; wider values become outliers)."""

    code_dtype = "int8"


@register("quantizer", "int16")
class Int16(UniformQuantizer):
    """Error-bounded uniform quantization to int16 codes (wider values become outliers)."""

    code_dtype = "int16"
