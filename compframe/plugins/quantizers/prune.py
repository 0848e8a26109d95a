"""``prune``: zero a fraction of the values, keep a bit mask, and quantize the survivors with another quantizer.

``quantizer=prune quantizer.then=int8 quantizer.fraction=0.9``: the ``fraction`` of values with the
smallest magnitude (``mode: magnitude``, as in magnitude pruning, Han et al. 2015) or a seeded random
fraction (``mode: random``) become zero; the mask is bit-packed (``np.packbits``, 1 bit per value);
the surviving values, in order, go to the quantizer named by ``then`` (built with ``then_params``
through the registry) as a 1-D array. Its codes and side arrays are stored under ``then.<name>``
and its meta under ``meta['then']``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ... import limits
from ...base import Quantized, Quantizer
from ...errors import FrameError
from ...registry import ConfigError, register, resolve
from .formats import budget_meta

PREFIX = "then."


@register("quantizer", "prune")
class Prune(Quantizer):
    """Pruning in front of another quantizer, whose kind of promise it takes over.

    With a bit-budget inner quantizer: the mask (1 bit per value) plus the inner quantizer's codes (at its
    ``code_bits``, else the dtype's width) and side data. With an error-bounded one (``guarantee`` is set
    per instance): ``abs_bound = max(largest pruned magnitude, inner abs_bound)``; NaN and inf are never
    pruned, so they come back bit-identical through the inner quantizer. Pruned values are exactly 0.
    """

    guarantee: ClassVar[str] = "bit_budget"

    @dataclass
    class Config:
        fraction: float = 0.5
        mode: str = "magnitude"
        seed: int = 0
        then: str = "fp16"
        then_params: dict[str, Any] = field(default_factory=dict)

    def check(self):
        c = self.config
        self.require("fraction", low=0.0, high=1.0)
        self.require("mode", choices=("magnitude", "random"))
        self.require("seed", low=0)
        if c.then == "prune":
            self.fail("then", "cannot be 'prune' itself")
        try:
            self.inner = resolve("quantizer", {**c.then_params, "id": c.then})
        except ConfigError as e:
            self.fail("then_params", f"are invalid for '{c.then}': {e}")
        except LookupError as e:
            self.fail("then", str(e))
        self.guarantee = self.inner.guarantee

    def keep_mask(self, x: np.ndarray) -> np.ndarray:
        """False for the ``round(fraction * n)`` values to prune, chosen among the finite ones."""
        flat = x.reshape(-1)
        finite = np.flatnonzero(np.isfinite(flat))
        drop = min(int(round(self.config.fraction * flat.size)), finite.size)
        keep = np.ones(flat.size, dtype=bool)
        if drop:
            if self.config.mode == "random":
                chosen = np.random.default_rng(self.config.seed).permutation(finite)[:drop]
            else:
                magnitude = np.abs(flat[finite])
                chosen = finite[np.argpartition(magnitude, drop - 1)[:drop] if drop < finite.size else slice(None)]
            keep[chosen] = False
        return keep

    def quantize(self, x, bound=None) -> Quantized:
        x = self.check_input(x)
        keep = self.keep_mask(x)
        flat = x.reshape(-1)
        survivors = flat[keep]
        codes = {"mask": np.packbits(keep)}
        code_bits = {"mask": 8}
        side: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"kept": int(keep.sum())}
        if survivors.size:
            inner = self.inner.quantize(survivors, bound)
            inner_bits = inner.meta.get("code_bits", {})
            for name, array in inner.codes.items():
                codes[PREFIX + name] = array
                code_bits[PREFIX + name] = int(inner_bits.get(name, 8 * array.dtype.itemsize))
            side.update({PREFIX + name: array for name, array in inner.side.items()})
            meta["then"] = inner.meta
            meta["then_dtype"] = inner.dtype
        pruned = np.abs(flat[~keep])
        meta["pruned_max"] = float(np.max(pruned, initial=0.0))
        meta.update(budget_meta(x.size, codes, side, code_bits, 1.0))
        if self.guarantee == "error_bound":
            meta["abs_bound"] = max(meta["pruned_max"], meta["then"]["abs_bound"] if survivors.size else 0.0)
        return Quantized(codes=codes, side=side, meta=meta, shape=x.shape, dtype=x.dtype.name, bound=bound)

    def _inner(self, q: Quantized) -> Quantized | None:
        """The survivors' ``Quantized`` (None when nothing was kept), its header values checked; it carries
        the frame's bound, which the inner quantizer was given, so it checks its ``abs_bound`` against it."""
        n = math.prod(q.shape)
        kept = limits.integer(q.meta.get("kept"), "meta.kept", 0, n)
        codes = {k[len(PREFIX):]: v for k, v in q.codes.items() if k.startswith(PREFIX)}
        side = {k[len(PREFIX):]: v for k, v in q.side.items() if k.startswith(PREFIX)}
        if len(side) != len(q.side):
            raise FrameError(f"prune: side arrays {sorted(q.side)} do not all belong to the inner quantizer")
        if not kept:
            if side:
                raise FrameError("prune: side arrays of an inner quantizer, but no value was kept")
            return None
        dtype = limits.dtype(q.meta.get("then_dtype"), "meta.then_dtype", tuple(self.inner.float_dtypes))
        meta = limits.mapping(q.meta.get("then"), "meta.then")
        return Quantized(codes=codes, side=side, meta=meta, shape=(kept,), dtype=dtype.name, bound=q.bound)

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        layout = {"mask": (np.dtype(np.uint8), (-(-math.prod(q.shape) // 8),))}
        inner = self._inner(q)
        if inner is not None:
            inner_layout = self.inner.code_layout(inner)
            if inner_layout is None:
                raise FrameError(f"prune: inner quantizer '{self.inner.plugin_id}' cannot check its frame layout")
            layout.update({PREFIX + k: v for k, v in inner_layout.items()})
        return layout

    def dequantize(self, q: Quantized) -> np.ndarray:
        """The field: zeros, and the survivors where the mask is set; a mask that does not hold
        ``meta['kept']`` set bits raises ``FrameError``."""
        n = math.prod(q.shape)
        inner = self._inner(q)
        mask = q.codes["mask"]
        if mask.dtype != np.uint8 or mask.size != -(-n // 8):
            raise FrameError(f"prune: mask of {mask.size} bytes ({mask.dtype}) does not fit {n} values")
        limits.charge(2 * n, "prune's mask")  # unpacked (uint8), then as bool
        keep = np.unpackbits(mask.reshape(-1), count=n).astype(bool)
        kept = int(np.count_nonzero(keep))
        if kept != (0 if inner is None else inner.shape[0]):
            raise FrameError(f"prune: the mask keeps {kept} values, meta.kept says {q.meta.get('kept')}")
        out = np.zeros(n, dtype=q.dtype)
        if inner is not None:
            values = self.inner.dequantize(inner)
            if values.shape != (kept,):
                raise FrameError(f"prune: the inner quantizer gave {values.shape} values for {kept} survivors")
            out[keep] = values
        return out.reshape(q.shape)
