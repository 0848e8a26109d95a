"""The fixed cost of a small frame: ``pipeline.compress`` / ``pipeline.decompress`` of one 64 x 32
float32 slice (the training exchange's unit: a pooled lookup's rows for one rank), int8 + zstd at
``abs:0.05``, best of 5 rounds of ``--calls`` calls each, in microseconds per call (run by hand)::

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
    for _ in range(100):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls)
    return best * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args(argv)
    x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    q, e, b = resolve("quantizer", "int8"), resolve("encoder", "zstd"), ErrorBound("abs", 0.05)
    frame = pipeline.compress(x, q, e, b)
    print(f"compress {best_us(lambda: pipeline.compress(x, q, e, b), args.calls):.1f} us, "
          f"decompress {best_us(lambda: pipeline.decompress(frame), args.calls):.1f} us, frame {len(frame)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
