"""``vq``: vector quantization of small blocks against a codebook learnt by mini-batch k-means.

Blocks are 2x2 tiles of 2-D data or runs of 4 consecutive values otherwise (``block`` overrides).
The codebook (``2^bits`` centres) is learnt with mini-batch k-means (Sculley 2010, "Web-scale k-means
clustering", Algorithm 1: per-centre learning rate 1 / count) from a k-means++ start (Arthur &
Vassilvitskii 2007); each block's code is the index of its nearest centre in the stored codebook.
Rows, columns or the tail that do not fill a block are padded by repeating the edge value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ... import limits
from ...base import Quantized, Quantizer
from ...errors import FrameError
from ...registry import register
from .formats import budget_meta, uint_dtype

ASSIGN_CHUNK = 1 << 16


def nearest(vectors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (squared Euclidean) for each row of ``vectors``, in chunks."""
    out = np.empty(len(vectors), dtype=np.int64)
    c2 = (centres ** 2).sum(axis=1)
    for start in range(0, len(vectors), ASSIGN_CHUNK):
        v = vectors[start:start + ASSIGN_CHUNK]
        out[start:start + ASSIGN_CHUNK] = np.argmin(c2[None, :] - 2 * v @ centres.T, axis=1)
    return out


def kmeans_plus_plus(sample: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` starting centres drawn with probability proportional to the squared distance to the chosen ones."""
    centres = [sample[rng.integers(len(sample))]]
    dist = ((sample - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = dist.sum()
        pick = rng.choice(len(sample), p=dist / total) if total > 0 else rng.integers(len(sample))
        centres.append(sample[pick])
        dist = np.minimum(dist, ((sample - sample[pick]) ** 2).sum(axis=1))
    return np.array(centres)


def minibatch_kmeans(vectors: np.ndarray, k: int, iterations: int, batch_size: int, seed: int) -> np.ndarray:
    """A ``k`` x dim codebook for ``vectors`` (float64), reproducible for a given ``seed``."""
    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(len(vectors), size=min(len(vectors), 16 * k + batch_size), replace=False)]
    centres = kmeans_plus_plus(sample, k, rng)
    counts = np.zeros(k)
    for _ in range(iterations):
        batch = vectors[rng.integers(len(vectors), size=batch_size)]
        assign = nearest(batch, centres)
        hits = np.bincount(assign, minlength=k).astype(np.float64)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, batch)
        counts += hits
        moved = hits > 0
        centres[moved] += (sums[moved] - hits[moved, None] * centres[moved]) / counts[moved, None]
    return centres


@register("quantizer", "vq")
class VQ(Quantizer):
    """Vector quantization: each block of ``block`` values becomes a ``bits``-bit index into a learnt codebook.

    ``block`` empty = 2x2 tiles for 2-D input, 4 consecutive values otherwise. Promises
    ``bits / block_values`` bits per value plus the codebook (``2^bits x block_values`` floats in the
    input dtype) spread over the input.
    """

    guarantee: ClassVar[str] = "bit_budget"

    @dataclass
    class Config:
        bits: int = 4
        block: list[int] = field(default_factory=list)
        iterations: int = 100
        batch_size: int = 4096
        seed: int = 0

    def check(self):
        self.require("bits", low=1, high=12)
        self.require("iterations", low=0, high=100_000)
        self.require("batch_size", low=1, high=1 << 24)
        self.require("seed", low=0)
        if len(self.config.block) > 2 or any(int(b) < 1 or int(b) > 64 for b in self.config.block):
            self.fail("block", f"is {self.config.block!r}; give [] (auto), [k] or [rows, cols] with sizes 1..64")

    def _block(self, shape) -> tuple[int, ...]:
        block = tuple(int(b) for b in self.config.block)
        if not block:
            return (2, 2) if len(shape) == 2 else (4,)
        if len(block) == 2 and len(shape) != 2:
            raise ValueError(f"quantizer 'vq': block {list(block)} needs 2-D input, got shape {shape}")
        return block

    @staticmethod
    def _to_blocks(x: np.ndarray, block: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
        if len(block) == 1:
            flat = x.reshape(-1)
            flat = np.pad(flat, (0, -flat.size % block[0]), mode="edge")
            return flat.reshape(-1, block[0]), (flat.size // block[0],)
        (a, b), (rows, cols) = block, x.shape
        tiled = np.pad(x, ((0, -rows % a), (0, -cols % b)), mode="edge")
        grid = (tiled.shape[0] // a, tiled.shape[1] // b)
        return tiled.reshape(grid[0], a, grid[1], b).transpose(0, 2, 1, 3).reshape(-1, a * b), grid

    def quantize(self, x, bound=None) -> Quantized:
        x = self.check_input(x)
        c = self.config
        if not np.isfinite(x).all():
            raise ValueError("quantizer 'vq': input holds NaN or inf, which k-means cannot place")
        block = self._block(x.shape)
        if x.size == 0:
            codes = {"codes": np.zeros(0, dtype=uint_dtype(c.bits))}
            side = {"codebook": np.zeros((0, int(np.prod(block))), dtype=x.dtype)}
        else:
            vectors, grid = self._to_blocks(x.astype(np.float64), block)
            top = float(np.abs(vectors).max()) or 1.0  # k-means on data scaled into [-1, 1]: no overflow
            centres = minibatch_kmeans(vectors / top, 2 ** c.bits, c.iterations, c.batch_size, c.seed)
            codebook = (centres * top).astype(x.dtype)
            assign = nearest(vectors / top, codebook.astype(np.float64) / top)
            codes = {"codes": assign.astype(uint_dtype(c.bits)).reshape(grid)}
            side = {"codebook": codebook}
        meta = budget_meta(x.size, codes, side, {"codes": c.bits}, c.bits / np.prod(block))
        return Quantized(codes=codes, side=side, meta=meta, shape=x.shape, dtype=x.dtype.name)

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        try:
            block = self._block(q.shape)
        except ValueError as e:
            raise FrameError(str(e)) from None
        size = math.prod(block)
        book = q.side.get("codebook")
        if set(q.side) != {"codebook"} or book.ndim != 2 or book.shape[1] != size or book.dtype != np.dtype(q.dtype) \
                or book.shape[0] > 2 ** self.config.bits:
            raise FrameError(f"vq: the codebook must be at most {2 ** self.config.bits} x {size} of {q.dtype}, got "
                             f"{ {k: (v.shape, str(v.dtype)) for k, v in q.side.items()} }")
        if math.prod(q.shape) == 0:
            grid = (0,)
        elif len(block) == 1:
            grid = (-(-math.prod(q.shape) // block[0]),)
        else:
            grid = (-(-q.shape[0] // block[0]), -(-q.shape[1] // block[1]))
        if math.prod(grid) and book.shape[0] == 0:
            raise FrameError("vq: the codebook is empty but the field is not")
        return {"codes": (uint_dtype(self.config.bits), grid)}

    def dequantize(self, q: Quantized) -> np.ndarray:
        """The field from its codes and codebook; codes past the codebook raise ``FrameError``."""
        layout = self.code_layout(q)
        block = self._block(q.shape)
        codes = q.codes["codes"]
        if codes.shape != layout["codes"][1]:
            raise FrameError(f"vq: codes {codes.shape} do not fit the field {list(q.shape)} in blocks of {list(block)}")
        if codes.size == 0:
            return np.zeros(q.shape, dtype=q.dtype)
        if int(codes.max()) >= len(q.side["codebook"]):
            raise FrameError(f"vq: code {int(codes.max())} is past the codebook's {len(q.side['codebook'])} entries")
        # the gathered blocks, their tiled copy and the cast: three arrays of the (padded) field
        limits.charge(3 * codes.size * math.prod(block) * np.dtype(q.dtype).itemsize, "vq's block arrays")
        vectors = q.side["codebook"][codes.reshape(-1)]
        if len(block) == 1:
            return vectors.reshape(-1)[:int(np.prod(q.shape))].reshape(q.shape).astype(q.dtype)
        grid = q.codes["codes"].shape
        tiled = vectors.reshape(grid[0], grid[1], *block).transpose(0, 2, 1, 3).reshape(grid[0] * block[0], -1)
        return tiled[:q.shape[0], :q.shape[1]].astype(q.dtype)
