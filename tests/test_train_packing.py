"""The exchange's one frame per destination (compframe.training.packing, ``compress.pack``): each
slice decodes to exactly what its own frame gives, within its own table's bound; the bytes charged to
the tables sum to the frames; and the packed exchange over a real 2-rank gloo group."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import compframe as cf
from compframe import container, pipeline
from compframe.base import ErrorBound
from compframe.registry import create
from compframe.training import packing
from compframe.training.exchange import Exchange, batch_splits


def lookups(rows: int = 24, dim: int = 16) -> list[np.ndarray]:
    """Five pooled lookups of one shape: plain, NaN and -inf, one far value, constant, a wide scale."""
    rng = np.random.default_rng(7)
    scales = ((1, 0), (3, 5), (1, -2), (0, 1.5), (40, 0))
    xs = [(rng.normal(size=(rows, dim)) * s + c).astype(np.float32) for s, c in scales]
    xs[1][2, 3], xs[1][5, 0] = np.nan, -np.inf
    xs[2][7, 7] = 1e4  # a far value: the centre of the range is far from the others
    return xs


REL = [0.01, 0.05, 1e-4, 0.01, 0.002]


@pytest.mark.parametrize("qid", ["int8", "int16"])
def test_each_packed_slice_is_its_rows_of_the_simulated_lookup(qid):
    """Every slice of a packed frame decodes, bit for bit, to its rows of what ``simulate`` mode
    computes for the whole lookup (``pipeline.roundtrip`` with the table's ``rel`` bound): within its
    own table's bound, non-finite values kept. ``cf.decompress`` reads a packed frame like any other;
    the bytes charged to the tables sum to the frame, a table's outliers are its own, and a constant
    table pays only for its plan."""
    q, enc = create("quantizer", qid), create("encoder", "zstd")
    xs = lookups()
    rel = [ErrorBound("rel", r) for r in REL]
    parts = packing.quantize_tables(xs, rel, q)
    simulated = [pipeline.roundtrip(x, q, b)[1] for x, b in zip(xs, rel)]
    for lo, hi in batch_splits(24, 3):
        frame, charged = packing.pack(parts, lo, hi, q, enc)
        decoded = packing.unpack(frame, 5, (hi - lo, 16), q, enc)
        assert np.array_equal(decoded.view(np.uint8), cf.decompress(frame).view(np.uint8))
        header = container.loads(frame).header
        assert header["meta"]["abs_bounds"] == [p.meta["abs_bound"] for p in parts]
        assert header["meta"]["abs_bound"] == max(p.meta["abs_bound"] for p in parts)
        for x, r, sim, part in zip(xs, REL, simulated, decoded):
            assert np.array_equal(part.view(np.uint8), sim[lo:hi].view(np.uint8))
            ok = np.isfinite(x[lo:hi])
            finite = x[np.isfinite(x)].astype(np.float64)
            assert np.abs(part[ok] - x[lo:hi][ok]).max() <= r * (finite.max() - finite.min())
            assert np.array_equal(part[~ok].view(np.uint32), x[lo:hi][~ok].view(np.uint32))
        assert sum(charged) == len(frame)
        assert charged[3] == packing.CHUNK_SIDE_BYTES  # constant: no outliers, codes of zero entropy
        if qid == "int8":  # steps of 2e-4 of the range around a far centre: every near value an outlier
            assert charged[2] >= 8 * ((hi - lo) * 16 - 1)  # a u4 index and the u4 bits of each


@pytest.mark.parametrize("qid", ["int8", "int16"])
def test_stacked_quantize_equals_one_table_at_a_time(qid):
    """``quantize_tables``' one kernel call over the stack of lookups gives, table by table, exactly
    what ``quantizer.quantize`` with the table's range gives (codes, outliers, meta), across bounds with
    no outliers, many outliers (int8 at rel 1e-4) and a tiny ``abs`` bound, on one chunk and on several
    (3000 x 40 values > ``kernels.uniform.CHUNK``); the lookups holding NaN/inf take the plain path."""
    q = create("quantizer", qid)
    for rows, dim in ((24, 16), (3000, 40)):
        xs = lookups(rows, dim)
        for bounds in ([ErrorBound("rel", r) for r in REL], [ErrorBound("abs", 1e-6)] * 5):
            stacked = packing._stacked(xs, bounds, q)
            assert stacked[1] is None and sum(p is not None for p in stacked) >= 2
            for part, x, b in zip(packing.quantize_tables(xs, bounds, q), xs, bounds):
                ref = packing._one_table(x, b, q)
                assert part.meta == ref.meta and part.shape == ref.shape and part.dtype == ref.dtype
                assert np.array_equal(part.codes["codes"], ref.codes["codes"])
                assert part.codes["codes"].dtype == ref.codes["codes"].dtype
                assert set(part.side) == set(ref.side)
                for k, v in part.side.items():
                    assert v.dtype == ref.side[k].dtype and np.array_equal(v, ref.side[k])


def test_empty_slices_pack_and_unpack():
    q, enc = create("quantizer", "int8"), create("encoder", "zstd")
    parts = packing.quantize_tables(lookups(), [ErrorBound("rel", 0.01)] * 5, q)
    frame, charged = packing.pack(parts, 24, 24, q, enc)
    assert packing.unpack(frame, 5, (0, 16), q, enc).shape == (5, 0, 16) and sum(charged) == len(frame)


def test_pack_refuses_what_it_cannot_hold():
    q, enc = create("quantizer", "int8"), create("encoder", "zstd")
    xs = lookups()
    parts = packing.quantize_tables([xs[0], xs[1][:3]], [ErrorBound("rel", 0.01)] * 2, q)
    with pytest.raises(ValueError, match="lookups of one shape"):
        packing.pack(parts, 0, 3, q, enc)
    frame, _ = packing.pack(parts[:1], 0, 24, q, enc)
    with pytest.raises(ValueError, match="holds \\[1, 24, 16\\], expected \\[2, 24, 16\\]"):
        packing.unpack(frame, 2, (24, 16), q, enc)
    lorenzo = create("quantizer", "lorenzo")
    with pytest.raises(ValueError, match="pack 'destination' needs a quantizer with per-slice plans"):
        Exchange([0], 0, 1, "real", lorenzo, enc, create("schedule", "constant"), pack="destination")
    assert Exchange([0], 0, 1, "real", lorenzo, enc, create("schedule", "constant")).pack == "slice"
    assert Exchange([0], 0, 1, "real", q, enc, create("schedule", "constant")).pack == "destination"
    with pytest.raises(ValueError, match="1 embedding tables on 2 ranks: every rank must hold at least one"):
        Exchange([0], 0, 2, "real", q, enc, create("schedule", "constant"))


# -- a real 2-rank gloo group ------------------------------------------------------------------------

OWNERS = [0, 1, 0, 1, 1]
BATCH, DIM = 37, 8


def table_lookups() -> dict[int, np.ndarray]:
    """Every table's pooled lookup over the whole batch (both ranks build the same)."""
    xs = dict(enumerate(lookups(rows=BATCH, dim=DIM)))
    xs[0][30, 1] = np.nan  # a non-finite value in the slice of rank 1
    return xs


def _rank(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        q, enc = create("quantizer", "int8"), create("encoder", "zstd")
        sched = create("schedule", "step", base=0.01, tight=0.002, tight_tables=[1], E=2.0, S=10)
        xs = table_lookups()
        mine = {t: torch.from_numpy(xs[t]) for t, o in enumerate(OWNERS) if o == rank}
        result = {}
        for mode, pack in (("real", "destination"), ("real", "slice"), ("simulate", "auto")):
            ex = Exchange(OWNERS, rank, 2, mode, q, enc, sched, pack=pack)
            received = []
            sizes = ex._alltoall_sizes
            ex._alltoall_sizes = lambda out, counts: received.append(sizes(out, counts)) or received[-1]
            got = [ex(mine, BATCH, it) for it in (0, 12)]
            result[pack if mode == "real" else mode] = {"out": [[g.numpy().tolist() for g in its] for its in got],
                            "received_from_other": sum(sum(r[1 - rank]) for r in received),
                            "payload": ex.payload_bytes["forward"],
                            "tables": {t: vars(s) for t, s in ex.totals.items()}}
        with open(f"{out}/rank{rank}.json", "w") as f:
            json.dump(result, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_packed_exchange_over_two_gloo_ranks(tmp_path):
    """2 ranks, 5 tables: with pack=destination every received element is within its table's bound
    (rel over the table's whole lookup) and equals, bit for bit, what simulate mode computes; per
    rank (both packs), the tables' bytes sum to the frames it sent, their wire bytes to what the other
    rank received from it, and the packed frames are smaller than the slices' frames."""
    from compframe.training.launch import free_port

    torch.multiprocessing.spawn(_rank, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    sched = create("schedule", "step", base=0.01, tight=0.002, tight_tables=[1], E=2.0, S=10)
    xs = table_lookups()
    for rank, (lo, hi) in enumerate(batch_splits(BATCH, 2)):
        dest, sim = res[rank]["destination"], res[rank]["simulate"]
        for k, it in enumerate((0, 12)):
            for t in range(len(OWNERS)):
                got = np.array(dest["out"][k][t], dtype=np.float32)
                assert np.array_equal(got, np.array(sim["out"][k][t], dtype=np.float32), equal_nan=True)
                x = xs[t][lo:hi]
                finite = xs[t][np.isfinite(xs[t])].astype(np.float64)
                ok = np.isfinite(x)
                assert np.abs(got[ok] - x[ok]).max() <= sched.bound(t, it).value * (finite.max() - finite.min())
                assert np.array_equal(np.isnan(got), np.isnan(x)) and np.array_equal(got[np.isinf(x)], x[np.isinf(x)])
        for pack in ("destination", "slice"):
            mine, other = res[rank][pack], res[1 - rank][pack]
            tables = mine["tables"].values()
            assert sum(s["sent_bytes"] for s in tables) == mine["payload"]
            assert sum(s["wire_bytes"] for s in tables) == other["received_from_other"]
            assert sum(s["raw_bytes"] - s["wire_raw_bytes"] for s in tables) == 2 * (hi - lo) * DIM * 4 * len(tables)
            assert all(math.isfinite(s["abs_bound"]) and s["abs_bound"] > 0 for s in tables)
        assert res[rank]["destination"]["payload"] < 0.9 * res[rank]["slice"]["payload"]


def test_cpu_threads_for_sets_threads_only_when_they_change(monkeypatch):
    """``cpu_threads_for`` (entered twice per packed frame) calls ``numba.set_num_threads`` only to go
    from several threads to one and back, never when numba already runs one thread."""
    import numba

    from compframe.kernels import targets

    calls = []
    real = numba.set_num_threads
    monkeypatch.setattr(numba, "set_num_threads", lambda n: (calls.append(n), real(n)))
    before = numba.get_num_threads()
    try:
        real(1)
        with targets.cpu_threads_for(10):
            assert numba.get_num_threads() == 1
        assert calls == []
        if numba.config.NUMBA_NUM_THREADS > 1:
            real(2)
            with targets.cpu_threads_for(10):
                assert numba.get_num_threads() == 1
                with targets.cpu_threads_for(10):
                    pass
            assert calls == [1, 2] and numba.get_num_threads() == 2
    finally:
        real(before)
