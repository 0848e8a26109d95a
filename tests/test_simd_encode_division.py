"""``simd_encode``'s vector rANS step against the scalar encoder ``ans.encode_lanes_steps`` (integer
arithmetic): the quotient ``x // freq`` (``floor((x + 1/2) / freq)`` in double precision) on the
states nearest an error, every frequency ``1 .. 2**R - 1`` of every precision with states at the
edges of each quotient (``k freq - 1``, ``k freq``) up to the largest state the encoder divides,
``freq * 2**(32 - R) - 1``; and the table entries of masks below 256 (byte planes in registers
where the CPU has AVX-512 VBMI, the gather elsewhere: the test checks the bytes on either path)."""

import numba
import numpy as np
import pytest

from compframe.kernels import ans as ans_kernels
from compframe.kernels import simd_encode

LANES = 64


def _states(freq: int, precision: int, rng) -> list[int]:
    """States for one frequency: 0, the ends of the first and last quotients, a few in between, and
    2**32 - 1 (emitted first: the division then sees ``2**16 - 1``)."""
    top = 1 << (32 - precision)  # quotients 0 .. top - 1
    ks = [1, 2, top - 1] + [int(k) for k in rng.integers(1, top, 3)]
    states = [0, freq - 1, freq * top - 1, freq * top - 2, (1 << 32) - 1]
    for k in ks:
        states += [k * freq - 1, k * freq, k * freq + freq - 1]
    return [s for s in states if 0 <= s < freq * top or s == (1 << 32) - 1]


@numba.njit
def _mismatches(states, codes, info32, rcp, info, precision):
    """Encode one group of ``LANES`` symbols per ``LANES`` cases with the vector and the scalar encoder
    from the same states; returns the index of the first case whose state, word count or words
    differ, or -1."""
    out = np.zeros(2 * LANES + 64, np.uint8)
    ref = np.zeros(2 * LANES + 64, np.uint8)
    st = np.empty(LANES, np.uint32)
    st2 = np.empty(LANES, np.int64)
    size = out.size
    for a in range(0, states.size, LANES):
        st[:] = states[a:a + LANES]
        st2[:] = states[a:a + LANES]
        x = codes[a:a + LANES]
        p = simd_encode.encode_groups(st, info32, x, 0, 1, 0, 0xFFFF, out, size, precision, 64, None, 1)
        p2 = ans_kernels.encode_lanes_steps(x, 0, 0xFFFF, precision, ref, rcp, info, 0, 0, LANES, size, LANES, st2,
                                            None, 1)
        if p != p2:
            return a
        for j in range(LANES):
            if np.int64(st[j]) != st2[j]:
                return a + j
        for k in range(p, size):
            if out[k] != ref[k]:
                return a
    return -1


@pytest.mark.parametrize("precision", range(1, 17))
def test_vector_quotient_is_the_integer_division(precision):
    rng = np.random.default_rng(precision)
    freqs = np.arange(1, 1 << precision, dtype=np.int64)
    # symbol f - 1 has frequency f, cum 0 (the kernel reads only cum and 2**R - freq; the new state
    # q 2**R + x % freq stays below 2**32)
    rcp, info = ans_kernels.encoder_tables(freqs.reshape(1, -1), np.zeros((1, freqs.size), np.int64), precision)
    cases = [(s, f) for f in range(1, 1 << precision) for s in _states(f, precision, rng)]
    cases += [cases[-1]] * (-len(cases) % LANES)
    states = np.array([s for s, _ in cases], np.int64)
    codes = np.array([f - 1 for _, f in cases], np.uint16)
    bad = _mismatches(states, codes, info.astype(np.uint32)[0], rcp[0], info[0], precision)
    assert bad == -1, (precision, cases[bad] if bad >= 0 else None)
    # the cases cover both sides of every quotient edge the encoder can reach
    assert any(s == f * (1 << (32 - precision)) - 1 for s, f in cases)


@numba.njit
def _groups(st, table, x, groups, base, mask, out, size, precision, lanes):
    if lanes == 16:
        return simd_encode.encode_groups(st, table, x, 0, groups, base, mask, out, size, precision, 16, None, 1)
    if lanes == 32:
        return simd_encode.encode_groups(st, table, x, 0, groups, base, mask, out, size, precision, 32, None, 1)
    return simd_encode.encode_groups(st, table, x, 0, groups, base, mask, out, size, precision, 64, None, 1)


@numba.njit
def _pair(st, ta, tb, x, half, groups, base, mask, out, pos, precision, lanes):
    if lanes == 16:
        simd_encode.encode_groups_pair(st, ta, tb, x, 0, half, groups, base, mask, out, pos, precision, 16, None, 1)
    elif lanes == 32:
        simd_encode.encode_groups_pair(st, ta, tb, x, 0, half, groups, base, mask, out, pos, precision, 32, None, 1)
    else:
        simd_encode.encode_groups_pair(st, ta, tb, x, 0, half, groups, base, mask, out, pos, precision, 64, None, 1)


@pytest.mark.parametrize("lanes", [16, 32, 64])
def test_small_tables_in_registers_write_the_scalar_bytes(lanes):
    """Masks below 256 (the table entries then come from byte planes in registers with AVX-512
    VBMI): tables of ``mask + 1`` entries whose four bytes all vary (R = 16: cum and 2**R - freq up to
    16 bits), and tables shorter than the mask (codes only below their length), for one chunk and
    for two chunks with different tables at once; the words, states and word counts of the scalar
    encoder ``encode_lanes_steps``."""
    rng = np.random.default_rng(lanes)
    groups = 23
    for dtype in (np.uint8, np.uint16):
        for mask, k, precision in ((255, 256, 16), (255, 256, 9), (127, 128, 16), (63, 64, 12), (15, 16, 5),
                                   (255, 100, 16), (255, 200, 12), (0, 1, 4)):
            tables = []
            for _ in range(2):
                freq = rng.integers(1, 8, k)
                freq[rng.integers(0, k)] += (1 << precision) - freq.sum() if freq.sum() < (1 << precision) else 0
                while freq.sum() > (1 << precision):
                    freq = np.maximum(freq // 2, 1)
                    freq[0] += (1 << precision) - freq.sum() if freq.sum() < (1 << precision) else 0
                freq = freq.reshape(1, -1).astype(np.int64)
                cum = np.cumsum(freq, axis=1) - freq
                tables.append(ans_kernels.encoder_tables(freq, cum, precision))
            base = (int(np.iinfo(dtype).max) - 3) if k == mask + 1 else 0
            n = lanes * groups
            x = ((rng.integers(0, k, 2 * n) + base) & np.iinfo(dtype).max).astype(dtype)
            states = rng.integers(1 << 16, 1 << 32, 2 * lanes).astype(np.uint32)
            size = 4 * n + 128
            # one chunk
            for t, (rcp, info) in enumerate(tables):
                out, ref = np.zeros(size, np.uint8), np.zeros(size, np.uint8)
                st, st2 = states[:lanes].copy(), states[:lanes].astype(np.int64)
                p = _groups(st, info.astype(np.uint32)[0], x, groups, base, mask, out, size, precision, lanes)
                p2 = ans_kernels.encode_lanes_steps(x, base, mask, precision, ref, rcp[0], info[0], 0, 0, n, size,
                                                    lanes, st2, None, 1)
                assert p == p2 and np.array_equal(st, st2.astype(np.uint32)), (dtype, mask, k, precision, t)
                assert np.array_equal(out[p:], ref[p:]), (dtype, mask, k, precision, t)
            # two chunks, two tables
            out, ref = np.zeros(size, np.uint8), np.zeros(size, np.uint8)
            st = states.copy()
            pos = np.array([size // 2, size], np.int64)
            _pair(st, tables[0][1].astype(np.uint32)[0], tables[1][1].astype(np.uint32)[0], x, n, groups, base, mask,
                  out, pos, precision, lanes)
            for c, (at, end) in enumerate(((0, size // 2), (n, size))):
                rcp, info = tables[c]
                st2 = states[c * lanes:(c + 1) * lanes].astype(np.int64)
                p2 = ans_kernels.encode_lanes_steps(x, base, mask, precision, ref, rcp[0], info[0], at, at, at + n,
                                                    end, lanes, st2, None, 1)
                assert pos[c] == p2, (dtype, mask, k, precision, c)
                assert np.array_equal(st[c * lanes:(c + 1) * lanes], st2.astype(np.uint32)), (dtype, mask, k, c)
                assert np.array_equal(out[p2:end], ref[p2:end]), (dtype, mask, k, precision, c)
