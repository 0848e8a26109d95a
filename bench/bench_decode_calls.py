"""Whole ``Encoder.decode`` calls on a 2048 x 64 pooled-lookup field, one thread: best time in us with
the model cached (warm: the same stream again) and with the model cache cleared before every call
(cold), for ``ans`` and ``huffman``, contexts none and block, int8 (rel 1e-2) and int16 (rel 1e-3).

    python bench/bench_decode_calls.py [--calls 1500]

Run another tree as ``PYTHONPATH=<tree> python bench/bench_decode_calls.py`` (this script's tree is
only a fallback on ``sys.path``)."""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("COMPFRAME_PARALLEL_MIN", "100000000")  # one thread, before compframe reads it
sys.path.append(str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402
import numpy as np  # noqa: E402
from bench_encoders import pooled_lookups, quantize  # noqa: E402

import compframe  # noqa: E402
from compframe.plugins.encoders import entropy  # noqa: E402
from compframe.registry import create  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1500, help="warm calls per case (cold: a third)")
    args = parser.parse_args()
    numba.set_num_threads(1)
    x = pooled_lookups(2)[1][1]
    print("compframe from", Path(compframe.__file__).parent)
    for dtype, eb in (("int8", 1e-2), ("int16", 1e-3)):
        codes = quantize(x, eb, dtype)[0]
        for coder in ("ans", "huffman"):
            cache = entropy._ANS_MODELS if coder == "ans" else entropy._DECODERS
            for context in ("none", "block"):
                enc = create("encoder", coder, context=context, dedup=False)
                blob = enc.encode(codes)
                assert np.array_equal(enc.decode(blob), codes)
                best = {}
                for mode, calls in (("warm", args.calls), ("cold", max(1, args.calls // 3))):
                    b = float("inf")
                    for _ in range(calls):
                        if mode == "cold":
                            cache._items.clear()
                        t = time.perf_counter_ns()
                        enc.decode(blob)
                        b = min(b, time.perf_counter_ns() - t)
                    best[mode] = b / 1e3
                print(f"{coder}:{context} {dtype}: warm {best['warm']:.1f} us, cold {best['cold']:.1f} us "
                      f"({codes.nbytes / best['warm'] / 1e3:.2f} GB/s warm)")


if __name__ == "__main__":
    main()
