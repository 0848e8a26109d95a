"""``kernels.huffman``'s decoder with either direct-entry width, and codes longer than the direct table."""

import numpy as np
import pytest

from compframe.kernels import huffman as hk
from compframe.plugins.encoders.entropy import chunk_layout


def _streams(codes, max_len, chunk):
    u = codes.view(np.uint8 if codes.itemsize == 1 else np.uint16)
    mask = 0xFF if codes.itemsize == 1 else 0xFFFF
    base = int(u.min())
    counts = np.bincount((u.astype(np.int64) - base) & mask)[None]
    lengths = hk.code_lengths_tables(counts, max_len)
    param = int(lengths.max())
    starts, ends, table_of = chunk_layout(u.size, 1, chunk)
    data, sizes, sums = hk.encode("cpu", u, starts, ends, table_of, base, mask, hk.encoder_table(lengths, param), param)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return u, lengths, param, base, mask, data, offsets, (starts, ends, table_of), sums


@pytest.mark.parametrize("dtype,entry", [(np.int8, np.uint32), (np.int8, np.int64), (np.int16, np.int64)])
def test_decoder_entries_and_long_codes(dtype, entry):
    """Skewed codes (many longer than the 12-bit direct table, several symbols per look-up for the
    short ones) decode exactly with uint32 and int64 entries (the encoder's checksums); a flipped bit
    changes its chunk's checksum (or marks it -1) and no other."""
    rng = np.random.default_rng(3)
    codes = (rng.geometric(0.3, 20000) * rng.choice([-1, 1], 20000)).astype(dtype)
    u, lengths, param, base, mask, data, offsets, layout, expected = _streams(codes, 20, 1000)
    assert param > hk.FAST_BITS  # the canonical-limit path is taken
    fast = np.empty((1, 1 << hk.FAST_BITS), entry)
    ok, limit, first_index, syms = hk.decoder_tables(lengths, param, base, mask, fast)
    assert ok
    out = np.zeros_like(u)
    sums = hk.decode("cpu", data, offsets, out, *layout, fast, limit, first_index, syms, param)
    assert np.array_equal(out, u) and np.array_equal(sums, expected)
    damaged = data.copy()
    damaged[offsets[7] + 5] ^= 0x04
    sums = hk.decode("cpu", damaged, offsets, np.zeros_like(u), *layout, fast, limit, first_index, syms, param)
    assert sums[7] != expected[7] and np.array_equal(np.delete(sums, 7), np.delete(expected, 7))
