"""``kernels.fnv`` (the FNV chunk checksums as LLVM vector code, 2 or 16 chunks at once) gives
``checksum_chunk``'s values, on this machine's target and on a generic CPU."""

import numpy as np
import pytest
from conftest import run_on_generic_cpu

from compframe.kernels.fnv import GROUP, checksums, record_chunks, record_group, record_run
from compframe.kernels.targets import checksum_cpu


def _values(dtype, n, seed):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, n).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_vector_checksums_equal_the_scalar_ones(dtype):
    x = _values(dtype, 5000, 5)
    cases = [(0, 0, 0, 0), (0, 7, 7, 7), (0, 100, 100, 300), (3, 250, 17, 18), (5, 9, 0, 300), (1, 4097, 4097, 4999),
             (0, 4, 4, 8), (11, 11, 0, 5000), (0, 16, 16, 32), (1, 17, 2, 33), (7, 22, 30, 61), (0, 15, 100, 115)]
    for lo0, hi0, lo1, hi1 in cases:
        sums = np.zeros(2, np.int64)
        checksums(x, lo0, hi0, lo1, hi1, sums, 0, 1)
        assert sums[0] == checksum_cpu(x, lo0, hi0) and sums[1] == checksum_cpu(x, lo1, hi1), (lo0, hi0, lo1, hi1)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_sixteen_chunk_checksums_equal_the_scalar_ones(dtype):
    """Groups of 16 chunks of equal and unequal lengths (0-3000 values, most not multiples of 16),
    at odd offsets, overlapping or not, in a longer array (``a`` > 0); flagged chunks get -1 and
    the others keep their values."""
    rng = np.random.default_rng(7)
    x = _values(dtype, 100000, 8)  # 48 equal chunks of up to 2003 values fit (the kernel checks no bounds)
    for trial in range(60):
        n = 3 * GROUP
        a = int(rng.integers(0, n - GROUP + 1))
        if trial % 3 == 0:  # equal lengths, the decoders' usual case
            size = int(rng.integers(0, 2000))
            starts = np.arange(n, dtype=np.int64) * (size + int(rng.integers(0, 5)))
            ends = starts + size
        else:
            starts = rng.integers(0, 37000, n).astype(np.int64)
            ends = starts + rng.integers(0, 3000 if trial % 3 == 1 else 40, n)
        status = int(rng.integers(0, 1 << GROUP)) if trial % 4 == 0 else 0
        sums = np.full(n, 7, np.int64)
        record_group(x, starts, ends, a, status, sums)
        want = np.array([-1 if status >> k & 1 else checksum_cpu(x, starts[a + k], ends[a + k]) for k in range(GROUP)])
        assert np.array_equal(sums[a:a + GROUP], want), trial
        assert np.all(sums[:a] == 7) and np.all(sums[a + GROUP:] == 7)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_sixteen_chunks_in_any_order_get_their_own_checksums(dtype):
    """``record_chunks`` on 16, 8 or 4 of 48 chunks named in any order (as ``simd_huffman`` orders class
    tables' chunks, longest first): each named chunk gets its own checksum, or -1 where its status bit is
    set, whatever its place; the chunks not named keep their values."""
    rng = np.random.default_rng(11)
    x = _values(dtype, 60000, 9)
    for trial in range(60):
        n = 3 * GROUP
        starts = rng.integers(0, 50000, n).astype(np.int64)
        ends = starts + rng.integers(0, 8000 if trial % 2 else 300, n)
        chunks = rng.permutation(n)[:(GROUP, 8, 4)[trial % 3]].astype(np.int64)
        if trial % 3 == 0:  # longest first, the decoder's order
            chunks = chunks[np.argsort(starts[chunks] - ends[chunks], kind="stable")]
        status = int(rng.integers(0, 1 << chunks.size)) if trial % 4 == 0 else 0
        sums = np.full(n, 7, np.int64)
        record_chunks(x, starts, ends, chunks, status, sums)
        for k, c in enumerate(chunks):
            assert sums[c] == (-1 if status >> k & 1 else checksum_cpu(x, starts[c], ends[c])), (trial, k)
        assert np.all(np.delete(sums, chunks) == 7)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_run_of_chunks_gets_their_own_checksums(dtype):
    """``record_run`` on runs of 0-40 consecutive chunks (16, 8 and 4 at a time, then pairs and a last one
    alone) of equal and unequal lengths: each chunk of the run gets its own checksum, or -1 where its flag is
    set; the chunks outside the run keep their values."""
    rng = np.random.default_rng(13)
    x = _values(dtype, 90000, 10)
    for trial in range(60):
        n = 48
        lengths = rng.integers(0, 1800, n) if trial % 2 else np.full(n, int(rng.integers(0, 1800)))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        ends = starts + lengths
        a = int(rng.integers(0, 8))
        b = min(n, a + int(rng.integers(0, 41)))
        flags = (rng.random(b - a) < 0.2).astype(np.int64) if trial % 3 == 0 else np.zeros(b - a, np.int64)
        sums = np.full(n, 7, np.int64)
        record_run(x, starts, ends, a, b, flags, sums)
        for c in range(a, b):
            assert sums[c] == (-1 if flags[c - a] else checksum_cpu(x, starts[c], ends[c])), (trial, c)
        assert np.all(sums[:a] == 7) and np.all(sums[b:] == 7)


@pytest.mark.slow
def test_checksums_when_numba_targets_a_generic_cpu(tmp_path):
    """NUMBA_CPU_NAME=generic (no AVX): the vector IR compiles for it and gives the same values."""
    script = (
        "import numpy as np\n"
        "from compframe.kernels import simd\n"
        "from compframe.kernels.fnv import checksums, record_group, record_run\n"
        "from compframe.kernels.targets import checksum_cpu\n"
        "assert not simd.target_features() & {'avx', 'avx2', 'avx512f'}\n"
        "rng = np.random.default_rng(3)\n"
        "for dt in (np.uint8, np.uint16):\n"
        "    x = rng.integers(0, 60000, 20000).astype(dt)\n"
        "    starts = rng.integers(0, 15000, 16).astype(np.int64)\n"
        "    ends = starts + rng.integers(0, 5000, 16)\n"
        "    got = np.zeros(16, np.int64)\n"
        "    record_group(x, starts, ends, 0, 0, got)\n"
        "    assert all(got[k] == checksum_cpu(x, starts[k], ends[k]) for k in range(16))\n"
        "    got[:] = 0\n"
        "    record_run(x, starts, ends, 0, 13, np.zeros(13, np.int64), got)\n"
        "    assert all(got[k] == checksum_cpu(x, starts[k], ends[k]) for k in range(13))\n"
        "    checksums(x, 1, 999, 5, 4000, got, 0, 1)\n"
        "    assert got[0] == checksum_cpu(x, 1, 999) and got[1] == checksum_cpu(x, 5, 4000)\n"
        "print('ok')\n")
    p = run_on_generic_cpu(script, tmp_path / "cache")
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
