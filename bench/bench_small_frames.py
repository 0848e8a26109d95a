"""The fixed cost of a small frame: ``pipeline.compress`` / ``pipeline.decompress`` of one 64 x 32
float32 slice (the training exchange's unit with ``pack=slice``: a pooled lookup's rows for one
rank), int8 + zstd at ``abs:0.05``, best of 5 rounds of ``--calls`` calls each, in microseconds per
call; then one rank's forward exchange of the Kaggle DLRM on 2 ranks (13 tables of 128 x 32, rel
bounds): ``pack=slice`` (26 frames) against ``pack=destination`` (``compframe.training.packing``,
2 frames), encode and decode per iteration, the bytes, and the quantization's share of the
``destination`` encode (run by hand)::

    PYTHONPATH=. python bench/bench_small_frames.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from compframe import pipeline
from compframe.base import ErrorBound
from compframe.registry import resolve


def best_us(fn, calls: int, rounds: int = 5) -> float:
    for _ in range(max(3, calls // 30)):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls)
    return best * 1e6


def exchange(calls: int) -> None:
    """Encode and decode of one rank's forward exchange, per iteration, with both packs."""
    try:
        from compframe.training.exchange import Exchange, batch_splits
    except ImportError:
        return
    import torch

    q, e = resolve("quantizer", "int8"), resolve("encoder", "zstd")
    sched = resolve("schedule", {"id": "step", "base": 0.03, "tight": 0.01, "tight_tables": [2, 4], "loose": 0.05,
                                 "loose_tables": [8], "E": 2.0, "S": 65536})
    rng = np.random.default_rng(0)
    xs = [torch.from_numpy((rng.standard_normal((128, 32)) * 0.05).astype(np.float32)) for _ in range(13)]
    for pack in ("slice", "destination"):
        try:
            ex = Exchange([0, 1] * 13, 0, 2, "real", q, e, sched, pack=pack)
        except TypeError:  # a tree without compress.pack
            if pack != "slice":
                return
            ex = Exchange([0, 1] * 13, 0, 2, "real", q, e, sched)
        ex.splits = batch_splits(128, 2)
        arrays = [x.numpy() for x in xs]
        if pack == "slice":
            encode = lambda: [ex._encode_table(t, x, 100, "real", False) for t, x in zip(ex.mine, arrays)]  # noqa: E731
        else:
            encode = lambda: ex._encode_packed(arrays, 100, False)  # noqa: E731
        items = encode()
        if pack == "slice":
            frames = [items[t][1] for t in range(13)]
            decode = lambda: [ex._decode(f, (64, -1), raw=False) for f in frames]  # noqa: E731
            nbytes = sum(i.size for per in items for i in per)
        else:
            from compframe.training import packing

            decode = lambda: packing.unpack(items[1][0], 13, (64, 32), q, e)  # noqa: E731
            nbytes = sum(i.size for per in items for i in per)
        print(f"exchange pack={pack}: encode {best_us(encode, calls):.0f} us, decode (one source) "
              f"{best_us(decode, calls):.0f} us per iteration, {nbytes} bytes")
        if pack == "destination":
            bounds = [ex._bound(t, 100) for t in ex.mine]
            print(f"  of which quantize_tables (the 13 tables) "
                  f"{best_us(lambda: packing.quantize_tables(arrays, bounds, q), calls):.0f} us")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args(argv)
    x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    q, e, b = resolve("quantizer", "int8"), resolve("encoder", "zstd"), ErrorBound("abs", 0.05)
    frame = pipeline.compress(x, q, e, b)
    print(f"compress {best_us(lambda: pipeline.compress(x, q, e, b), args.calls):.1f} us, "
          f"decompress {best_us(lambda: pipeline.decompress(frame), args.calls):.1f} us, frame {len(frame)} bytes")
    exchange(max(10, args.calls // 30))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
