"""The two compilation targets of a per-chunk kernel, and the checks and helpers both sides share.

Per-chunk functions keep every intermediate value a non-negative integer below 2**62 and mask
explicitly, so they give the same result compiled (int64 arithmetic) and under the CUDA simulator
(Python integers).
"""

from __future__ import annotations

import contextlib
import functools
import os

import numba
import numpy as np

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


def checksum_chunk(x, lo, hi):
    """32-bit checksum of the values ``x[lo:hi]`` (non-negative, below 2**32).

    Four lanes take every fourth value, each ``h = ((h ^ v) * FNV_PRIME) mod 2**32; h ^= h >> 13``
    (FNV-1a's step on whole values, plus a shift that carries high bits down so that top-bit changes
    cannot cancel in pairs); the lanes are then folded the same way. Four lanes keep the multiply
    chains off the decoders' critical path.
    """
    h0 = FNV_OFFSET
    h1 = FNV_OFFSET ^ 1
    h2 = FNV_OFFSET ^ 2
    h3 = FNV_OFFSET ^ 3
    i = lo
    while i + 4 <= hi:
        h0 = ((h0 ^ np.int64(x[i])) * FNV_PRIME) & 0xFFFFFFFF
        h1 = ((h1 ^ np.int64(x[i + 1])) * FNV_PRIME) & 0xFFFFFFFF
        h2 = ((h2 ^ np.int64(x[i + 2])) * FNV_PRIME) & 0xFFFFFFFF
        h3 = ((h3 ^ np.int64(x[i + 3])) * FNV_PRIME) & 0xFFFFFFFF
        h0 ^= h0 >> 13
        h1 ^= h1 >> 13
        h2 ^= h2 >> 13
        h3 ^= h3 >> 13
        i += 4
    while i < hi:
        h0 = ((h0 ^ np.int64(x[i])) * FNV_PRIME) & 0xFFFFFFFF
        h0 ^= h0 >> 13
        i += 1
    h0 = ((h0 ^ h1) * FNV_PRIME) & 0xFFFFFFFF
    h0 ^= h0 >> 13
    h0 = ((h0 ^ h2) * FNV_PRIME) & 0xFFFFFFFF
    h0 ^= h0 >> 13
    h0 = ((h0 ^ h3) * FNV_PRIME) & 0xFFFFFFFF
    return h0 ^ (h0 >> 13)


checksum_cpu = cpu(checksum_chunk)


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


PARALLEL_MIN = 1 << 19
"""Below this many values the CPU drivers run on the calling thread alone: waking numba's worker
threads costs more than it saves there, and much more when other processes hold the cores."""


@contextlib.contextmanager
def cpu_threads_for(work: int):
    """Run numba's parallel regions inside the block on one thread when ``work`` < ``PARALLEL_MIN``."""
    if work >= PARALLEL_MIN:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


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
    followed by the per-chunk checksums (little-endian u32)."""
    import zlib

    crc = 0
    for m in meta:
        crc = zlib.crc32(m, crc)
    return zlib.crc32(np.ascontiguousarray(chunk_sums, dtype="<u4").tobytes(), crc)
