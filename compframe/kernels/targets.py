"""The two compilation targets of a per-chunk kernel, and the checks and helpers both sides share.

Per-chunk functions keep every intermediate value a non-negative integer below 2**62 and mask
explicitly, so they give the same result compiled (int64 arithmetic) and under the CUDA simulator
(Python integers).
"""

from __future__ import annotations

import contextlib
import functools
import os
import zlib

import numba
import numpy as np
from numba.extending import register_jitable

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
"""FNV-1a's 32-bit offset basis and prime (Fowler, Noll, Vo), used by ``checksum_chunk``."""


def cpu(fn):
    """``fn`` compiled for the CPU (cached on disk, releases the GIL)."""
    return numba.njit(cache=True, nogil=True)(fn)


def cuda_device(fn):
    """``fn`` compiled as a CUDA device function (imports numba.cuda on first use)."""
    from numba import cuda

    return cuda.jit(device=True)(fn)


@register_jitable
def checksum_rest(x, i, hi, h0, h1, h2, h3):
    """The checksum of a chunk ending at ``hi``, given its four lanes ``h0..h3`` after its values
    before ``i`` (``checksum_chunk``'s loop from ``i`` on, then the folding of the lanes).
    ``register_jitable``: callable from CPU and CUDA code alike."""
    while i + 4 <= hi:
        h0 = ((h0 ^ np.int64(x[np.uint64(i)])) * FNV_PRIME) & 0xFFFFFFFF
        h1 = ((h1 ^ np.int64(x[np.uint64(i + 1)])) * FNV_PRIME) & 0xFFFFFFFF
        h2 = ((h2 ^ np.int64(x[np.uint64(i + 2)])) * FNV_PRIME) & 0xFFFFFFFF
        h3 = ((h3 ^ np.int64(x[np.uint64(i + 3)])) * FNV_PRIME) & 0xFFFFFFFF
        h0 ^= h0 >> 13
        h1 ^= h1 >> 13
        h2 ^= h2 >> 13
        h3 ^= h3 >> 13
        i += 4
    while i < hi:
        h0 = ((h0 ^ np.int64(x[np.uint64(i)])) * FNV_PRIME) & 0xFFFFFFFF
        h0 ^= h0 >> 13
        i += 1
    h0 = ((h0 ^ h1) * FNV_PRIME) & 0xFFFFFFFF
    h0 ^= h0 >> 13
    h0 = ((h0 ^ h2) * FNV_PRIME) & 0xFFFFFFFF
    h0 ^= h0 >> 13
    h0 = ((h0 ^ h3) * FNV_PRIME) & 0xFFFFFFFF
    return h0 ^ (h0 >> 13)


def checksum_chunk(x, lo, hi):
    """32-bit checksum of the values ``x[lo:hi]`` (non-negative, below 2**32).

    Four lanes take every fourth value, each ``h = ((h ^ v) * FNV_PRIME) mod 2**32; h ^= h >> 13``
    (FNV-1a's step on whole values, plus a shift that carries high bits down so that top-bit changes
    cannot cancel in pairs); the lanes are then folded the same way. Four lanes keep the multiply
    chains off the decoders' critical path.
    """
    return checksum_rest(x, lo, hi, FNV_OFFSET, FNV_OFFSET ^ 1, FNV_OFFSET ^ 2, FNV_OFFSET ^ 3)


checksum_cpu = cpu(checksum_chunk)


def checksum_chunks(x, lo0, hi0, lo1, hi1, sums, k0, k1):
    """``sums[k0] = checksum_chunk(x, lo0, hi0)`` and ``sums[k1] = checksum_chunk(x, lo1, hi1)``,
    computed together: eight independent multiply chains instead of four."""
    a0 = FNV_OFFSET
    a1 = FNV_OFFSET ^ 1
    a2 = FNV_OFFSET ^ 2
    a3 = FNV_OFFSET ^ 3
    b0 = FNV_OFFSET
    b1 = FNV_OFFSET ^ 1
    b2 = FNV_OFFSET ^ 2
    b3 = FNV_OFFSET ^ 3
    i = lo0
    j = lo1
    while i + 4 <= hi0 and j + 4 <= hi1:
        a0 = ((a0 ^ np.int64(x[np.uint64(i)])) * FNV_PRIME) & 0xFFFFFFFF
        a1 = ((a1 ^ np.int64(x[np.uint64(i + 1)])) * FNV_PRIME) & 0xFFFFFFFF
        a2 = ((a2 ^ np.int64(x[np.uint64(i + 2)])) * FNV_PRIME) & 0xFFFFFFFF
        a3 = ((a3 ^ np.int64(x[np.uint64(i + 3)])) * FNV_PRIME) & 0xFFFFFFFF
        b0 = ((b0 ^ np.int64(x[np.uint64(j)])) * FNV_PRIME) & 0xFFFFFFFF
        b1 = ((b1 ^ np.int64(x[np.uint64(j + 1)])) * FNV_PRIME) & 0xFFFFFFFF
        b2 = ((b2 ^ np.int64(x[np.uint64(j + 2)])) * FNV_PRIME) & 0xFFFFFFFF
        b3 = ((b3 ^ np.int64(x[np.uint64(j + 3)])) * FNV_PRIME) & 0xFFFFFFFF
        a0 ^= a0 >> 13
        a1 ^= a1 >> 13
        a2 ^= a2 >> 13
        a3 ^= a3 >> 13
        b0 ^= b0 >> 13
        b1 ^= b1 >> 13
        b2 ^= b2 >> 13
        b3 ^= b3 >> 13
        i += 4
        j += 4
    sums[k0] = checksum_rest(x, i, hi0, a0, a1, a2, a3)  # the rest of each alone
    sums[k1] = checksum_rest(x, j, hi1, b0, b1, b2, b3)


checksums_cpu = cpu(checksum_chunks)


def simulated() -> bool:
    """True when numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1`` before numba.cuda loads)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


@functools.cache
def cuda_status() -> str | None:
    """None if CUDA kernels can run here (a device, or the simulator); else the reason they cannot."""
    try:
        from numba import cuda
    except Exception as e:  # numba-cuda missing or broken
        return f"numba.cuda cannot be imported ({type(e).__name__}: {e}); install the 'gpu' extra"
    try:
        if cuda.is_available():
            return None
    except Exception as e:
        return f"CUDA is not usable ({type(e).__name__}: {e})"
    return "no CUDA device is available (numba.cuda.is_available() is False)"


def _parallel_min() -> int:
    value = os.environ.get("COMPFRAME_PARALLEL_MIN", "")
    if not value:
        return 1 << 19
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise ValueError(f"environment variable COMPFRAME_PARALLEL_MIN={value!r} is not a whole number of values >= 0")
    return n


PARALLEL_MIN = _parallel_min()
"""Below this many values the CPU drivers run on the calling thread alone (environment variable
``COMPFRAME_PARALLEL_MIN``, default 512 Ki). On an idle machine two threads pay off from about
32 Ki values (1.3-2x on 64-128 Ki); but each parallel region waits for its slowest thread, and when
other processes hold the cores a region can wait a scheduler time slice: a 131 Ki-value field took
80 ms instead of 0.6 ms to quantize on two threads of a 2-core machine under load (an observation
while another job ran, not a benchmark)."""


@contextlib.contextmanager
def cpu_threads_for(work: int):
    """Run numba's parallel regions inside the block on one thread when ``work`` < ``PARALLEL_MIN``.

    compframe's one thread policy: ``compframe.pipeline`` applies it around each field (``work`` is
    the field's number of values), so ``cf.compress`` and the benchmark task run every plugin on the
    same threads; plugins never change numba's thread count themselves.
    """
    if work >= PARALLEL_MIN:
        yield
        return
    previous = numba.get_num_threads()
    if previous == 1:  # already one thread (a nested block, or a one-thread process): nothing to set
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@contextlib.contextmanager
def compilations():
    """Yield a list that fills with numba's compiler events inside the block: empty unless numba
    compiled a kernel, or loaded one from its disk cache, meanwhile (it takes its compiler lock for
    either), so a caller can tell a timing that included compilation and time again."""
    from numba.core import event

    with event.install_recorder("numba:compiler_lock") as recorder:
        yield recorder.buffer


def launch(kernel, nchunks: int, *args) -> None:
    """Run ``kernel`` with one thread per chunk (blocks of up to 128 threads)."""
    if nchunks == 0:
        return
    threads = min(128, nchunks)
    kernel[(nchunks + threads - 1) // threads, threads](*args)


def to_device(*arrays):
    from numba import cuda

    return [cuda.to_device(np.ascontiguousarray(a)) for a in arrays]


def combine_checksums(chunk_sums: np.ndarray, *meta) -> int:
    """One 32-bit checksum: CRC-32 of the ``meta`` byte strings (the stream's header fields, tables)
    followed by the per-chunk checksums (little-endian u32; ``chunk_sums`` an array, cast as numpy
    casts, so -1 counts as 0xFFFFFFFF). A uint32 array is hashed in place, without a copy."""
    crc = 0
    for m in meta:
        crc = zlib.crc32(m, crc)
    return zlib.crc32(np.asarray(chunk_sums, dtype="<u4"), crc)
