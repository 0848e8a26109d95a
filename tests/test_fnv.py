"""``kernels.fnv.checksums`` (the paired FNV loop as LLVM vector code) gives ``checksum_chunk``'s values."""

import numpy as np
import pytest

from compframe.kernels.fnv import checksums
from compframe.kernels.targets import checksum_cpu


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_vector_checksums_equal_the_scalar_ones(dtype):
    x = np.random.default_rng(5).integers(0, np.iinfo(dtype).max + 1, 5000).astype(dtype)
    cases = [(0, 0, 0, 0), (0, 7, 7, 7), (0, 100, 100, 300), (3, 250, 17, 18), (5, 9, 0, 300), (1, 4097, 4097, 4999),
             (0, 4, 4, 8), (11, 11, 0, 5000)]
    for lo0, hi0, lo1, hi1 in cases:
        sums = np.zeros(2, np.int64)
        checksums(x, lo0, hi0, lo1, hi1, sums, 0, 1)
        assert sums[0] == checksum_cpu(x, lo0, hi0) and sums[1] == checksum_cpu(x, lo1, hi1), (lo0, hi0, lo1, hi1)
