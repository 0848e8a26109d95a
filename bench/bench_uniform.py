"""Benchmark: int8/int16 error-bounded quantization against the memory-bandwidth limit.

    python bench/bench_uniform.py                 # throughput table, 256 MiB float32
    python bench/bench_uniform.py --memory        # + peak resident memory on a 1 GiB field
    python bench/bench_uniform.py --vs-copy       # quantize into a reused buffer vs np.copyto only
    python bench/bench_uniform.py --ratio         # what the default's one-pass path costs in ratio
    python bench/bench_uniform.py --misses        # fields of zeros, clean and with NaN (outliers) spread
    python bench/bench_uniform.py --masked-ratio  # frame ratios of a field masked with NaN, and with a mask beside

The bandwidth limit is ``np.copyto(dst, x)`` of the same array into a preallocated buffer. Each
figure is the best of ``--repeat`` runs after one warm-up (numba compiles on the first call), in
GB/s of float32 input (1e9 bytes per second). The whole compress/decompress path is timed stage by
stage (quantize, encode, frame, parse + decode, dequantize) for each general-purpose encoder.

``--vs-copy`` (issue 13) times, in one interleaved loop (each repeat runs every contender once, the
figure is each one's best), ``np.copyto`` and int8/int16 quantization into a reused buffer for each
``--cases`` entry (quantizer:bound): the default (one pass for float32 fields from
``ONE_PASS_MIN`` values and ``rel`` bounds from the code type's ``ONE_PASS_REL_MIN``, see
``compframe.plugins.quantizers.uniform``), the one-pass path forced (``passes: 1``; only where the
default is the two-pass path), the two-pass path (``passes: 2``: the range, then the codes; the
default of smaller fields, and of every field before the one-pass path) and the
``value_range`` hint (the field's own range minus 1 %, as a training loop would pass the previous
iteration's), each on one numba thread and on the threads of compframe's policy
(``cpu_threads_for``: all threads from 512 Ki values). ``np.copyto`` runs on one thread either way.
``--cpu-time`` times the one-thread run by this process's CPU time (``time.process_time``) and skips
the other: on a machine shared past its cores the wall clock mostly measures the waits.

``--small-first`` (``--vs-copy``) first quantizes a 50 000-value field with each case, as a process that
quantized small fields before does: numba then loads the kernels compiled for small fields first, which
once decided which compiled copy of a shared chunk loop the large fields' parallel loops ran
(docs/benchmarks.md, fifteenth session).

``--field ramp|drift`` (``--vs-copy``, ``--ratio``) takes a field whose range the bulk of its values sets
instead of the Gaussian one, whose range a few tail values set (see ``field``).

``--misses`` (issue 13, ninth session) times quantization of fields of mostly exact zeros (``--mib``
of float64 values, also as float32; 70 % zeros, the rest Gaussian), clean and with NaN at three
densities (one per 50 000 values, so that every chunk holds a miss; 1e-3; 1e-1), and a field masked as
a land mask masks an ocean field (tenth session: the same values on a square grid, NaN over a disc and
a rectangle, 42 % of it): int8 ``rel:1e-2`` and int16 ``rel:1e-4``, one numba thread, each case's best
of ``--repeat`` in turn. float64 takes the exact per-element kernel, float32 the fast path.

``--ratio`` compares the default's codes with the two-pass codes of the same field: order-0 code
entropy, outliers, side bytes (the per-chunk centres and steps) and the frame ratio per encoder.

Memory: each of compress and decompress runs in a fresh process that first holds only its input
(the 1 GiB field, or the frame read from disk); the figure is that process's peak resident set
(``VmHWM``), which includes the input itself and the interpreter with its libraries.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parents[1]))  # last: PYTHONPATH=<another tree> selects the code

import compframe as cf  # noqa: E402
from compframe import container  # noqa: E402
from compframe.plugins.quantizers import uniform as U  # noqa: E402
from compframe.registry import create, create_from_config  # noqa: E402


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def embedding_like(n: int, seed: int = 0) -> np.ndarray:
    """Gaussian values with a heavy tail, like pooled embedding lookups (float32)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n, dtype=np.float32)
    x *= np.float32(0.05)
    return x


def throughput(mib: int, repeat: int, bound: str) -> list[dict]:
    n = mib * 2**20 // 4
    x = embedding_like(n)
    dst = np.empty_like(x)
    gb = x.nbytes / 1e9
    rows = [{"stage": "np.copyto (bandwidth limit)", "gbps": gb / best(lambda: np.copyto(dst, x), repeat)}]
    b = cf.ErrorBound.parse(bound)
    for qid in ("int8", "int16"):
        q = create("quantizer", qid)
        quantized = q.quantize(x, b)
        codes_buf = np.empty(x.size, q.code_dtype)
        rows.append({"stage": f"{qid} quantize, reused buffer", "outliers": quantized.meta["outliers"],
                     "gbps": gb / best(lambda: q.quantize(x, b, out=codes_buf), repeat)})
        rows.append({"stage": f"{qid} dequantize, reused buffer",
                     "gbps": gb / best(lambda: q.dequantize(quantized, out=dst), repeat)})
        rows.append({"stage": f"{qid} quantize, new array", "gbps": gb / best(lambda: q.quantize(x, b), repeat)})
        rows.append({"stage": f"{qid} dequantize, new array", "gbps": gb / best(lambda: q.dequantize(quantized), repeat)})
        for eid in ("none", "lz4", "zstd"):
            e = create("encoder", eid)
            codes = quantized.codes["codes"]
            stream = e.encode(codes)
            t_enc = best(lambda: e.encode(codes), repeat)
            t_dec = best(lambda: e.decode(stream), repeat)
            frame = cf.compress(x, quantizer=q, encoder=e, bound=b)
            t_comp = best(lambda: cf.compress(x, quantizer=q, encoder=e, bound=b), repeat)
            t_decomp = best(lambda: cf.decompress(frame), repeat)
            t_parse = best(lambda: container.loads(frame), repeat)
            rows.append({"stage": f"{qid} + {eid}", "ratio": x.nbytes / len(frame),
                         "encode_gbps": gb / t_enc, "decode_gbps": gb / t_dec, "parse_gbps": gb / t_parse,
                         "compress_gbps": gb / t_comp, "decompress_gbps": gb / t_decomp})
    return rows


def race(fns: dict, repeat: int, clock=time.perf_counter) -> dict[str, float]:
    """Best time of each callable, all warmed up and then run in turn ``repeat`` times (so that a
    burst of load on the shared machine hits every contender alike)."""
    for fn in fns.values():
        fn()
    out = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            out[name] = min(out[name], clock() - t0)
    return out


def field(kind: str, n: int) -> np.ndarray:
    """The float32 field of ``--field``: ``gaussian`` (``embedding_like``: a range set by rare tail values),
    ``ramp`` (-1 to 1) or ``drift`` (uniform noise of width 0.1 around a mean drifting from -0.2 to 0.2):
    ranges set by the bulk of the field, which no prefix of it holds."""
    if kind == "gaussian":
        return embedding_like(n)
    ramp = np.linspace(-1, 1, n, dtype=np.float32)
    if kind == "ramp":
        return ramp
    x = np.random.default_rng(0).random(n, dtype=np.float32)
    x -= np.float32(0.5)
    x *= np.float32(0.1)
    x += ramp * np.float32(0.2)
    return x


def vs_copy(mib: int, repeat: int, cases: list[str], cpu_time: bool = False, kind: str = "gaussian") -> list[dict]:
    """Quantization into a reused buffer against ``np.copyto`` of the same field (see the module doc);
    ``cpu_time``: this process's CPU time instead of the wall clock, on one thread only."""
    import numba

    from compframe.kernels.targets import cpu_threads_for

    x = field(kind, mib * 2**20 // 4)
    dst = np.empty_like(x)
    threads = numba.get_num_threads()
    rows = []
    fns = {"np.copyto": lambda: np.copyto(dst, x)}
    for case in cases:
        qid, bound = case.split(":", 1)
        b = cf.ErrorBound.parse(bound)
        q, one, two = (create_from_config("quantizer", {"id": qid, **p}) for p in ({}, {"passes": 1}, {"passes": 2}))
        buf = np.empty(x.size, q.code_dtype)
        meta = q.quantize(x, b).meta
        hint = (meta["range"][0] * 0.99, meta["range"][1] * 0.99)
        fns[f"{case} default"] = lambda q=q, b=b, buf=buf: q.quantize(x, b, out=buf)
        if not q.takes_one_pass(x.size, b):
            fns[f"{case} one-pass"] = lambda q=one, b=b, buf=buf: q.quantize(x, b, out=buf)
        fns[f"{case} two-pass"] = lambda q=two, b=b, buf=buf: q.quantize(x, b, out=buf)
        fns[f"{case} value_range"] = lambda q=q, b=b, buf=buf, hint=hint: q.quantize(x, b, out=buf, value_range=hint)
    many = {}
    if not cpu_time:
        with cpu_threads_for(x.size):
            policy = numba.get_num_threads()
            many = race(fns, repeat)
    numba.set_num_threads(1)
    try:
        one = race(fns, repeat, time.process_time if cpu_time else time.perf_counter)
    finally:
        numba.set_num_threads(threads)
    for name in fns:
        row = {"stage": name, "gbps_1_thread": x.nbytes / one[name] / 1e9,
               "vs_copy_1_thread": one["np.copyto"] / one[name]}
        if many:
            row.update({f"gbps_{policy}_threads": x.nbytes / many[name] / 1e9,
                        f"vs_copy_{policy}_threads": many["np.copyto"] / many[name]})
        rows.append(row)
    return rows


def entropy_bits(codes: np.ndarray) -> float:
    """Order-0 entropy of the codes, bits per value."""
    counts = np.bincount(codes.reshape(-1).astype(np.int64) - int(np.iinfo(codes.dtype).min))
    p = counts[counts > 0] / codes.size
    return float(-(p * np.log2(p)).sum())


def ratio_cost(mib: int, cases: list[str], encoders: list[str], kind: str = "gaussian") -> list[dict]:
    """What the one-pass path costs in ratio against the two-pass codes of the same field (the default, and
    ``passes: 1`` where the default is the two-pass path): order-0 code entropy, outliers, per-chunk side
    bytes and the frame ratio with each encoder."""
    x = field(kind, mib * 2**20 // 4)
    rows = []
    for case in cases:
        qid, bound = case.split(":", 1)
        b = cf.ErrorBound.parse(bound)
        paths = [("two-pass", {"id": qid, "passes": 2}), ("default", {"id": qid})]
        if not create_from_config("quantizer", {"id": qid}).takes_one_pass(x.size, b):
            paths.append(("one-pass", {"id": qid, "passes": 1}))
        for path, q in paths:
            quantized = create_from_config("quantizer", q).quantize(x, b)
            row = {"case": case, "path": path, "entropy_bits": entropy_bits(quantized.codes["codes"]),
                   "outliers": quantized.meta["outliers"], "side_bytes": quantized.side_nbytes}
            if "chunk_step" in quantized.side:
                row["chunks_own_step"] = int((quantized.side["chunk_step"] != quantized.meta["step"]).sum())
                row["chunks"] = int(quantized.side["chunk_step"].size)
            for eid in encoders:
                row[f"ratio_{eid}"] = x.nbytes / len(cf.compress(x, quantizer=q, encoder=eid, bound=b))
            rows.append(row)
    return rows


def land_mask(n: int) -> np.ndarray:
    """``n`` flags: the cells of a square grid (row-major, the last row cut) inside a disc of 0.32 of the
    side around (0.37, 0.49) or a rectangle over the last quarter of the columns and the first 37 % of
    the rows: 42 % of the grid, in runs as long as a row's, as land covers an ocean field."""
    side = int(np.ceil(np.sqrt(n)))
    yy, xx = np.divmod(np.arange(n), side)
    disc = (xx - 0.37 * side) ** 2 + (yy - 0.49 * side) ** 2 < (0.32 * side) ** 2
    return disc | ((xx > 0.73 * side) & (yy < 0.37 * side))


def misses(mib: int, repeat: int) -> list[dict]:
    """``--misses``: quantize (ms) of float64 and float32 fields of 70 % zeros, clean, with NaN at
    three densities (one per 50 000 values, 1e-3, 1e-1) and with NaN over ``land_mask``."""
    import numba

    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = mib * 2**20 // 8
    base = rng.standard_normal(n) * (rng.random(n) < 0.3)
    fields = {}
    for dtype in (np.float64, np.float32):
        for name, rate in (("clean", 0.0), ("NaN 2e-5", 2e-5), ("NaN 1e-3", 1e-3), ("NaN 1e-1", 1e-1)):
            x = base.astype(dtype)
            x[np.random.default_rng(1).random(n) < rate] = np.nan
            fields[(np.dtype(dtype).name, name)] = x
        x = base.astype(dtype)
        x[land_mask(n)] = np.nan
        fields[(np.dtype(dtype).name, "NaN land mask")] = x
    cases = {}
    for q, bound in (("int8", "rel:1e-2"), ("int16", "rel:1e-4")):
        quantizer, b = cf.create("quantizer", q), cf.ErrorBound.parse(bound)
        for (dtype, name), x in fields.items():
            cases[(q, bound, dtype, name)] = (lambda quantizer=quantizer, b=b, x=x: quantizer.quantize(x, b))
    times = race(cases, repeat)
    return [{"quantizer": q, "bound": bound, "dtype": dtype, "field": name, "ms": 1e3 * t}
            for (q, bound, dtype, name), t in times.items()]


def masked_ratio(encoders: list[str], bound: str) -> list[dict]:
    """``--masked-ratio``: frame ratios of a smooth 2048 x 2048 float32 field (a product of sines, noise
    of 5 % of its amplitude) compressed with int8 at ``bound`` and each encoder: clean; masked with NaN
    as ``land_mask`` masks it (42 %); with NaN at random (one value in ten); and the masked field with
    its NaN put to 0 before compressing and the mask carried beside the frame as ``np.packbits`` of
    ``np.isnan`` through zlib (what a user can do today: the frame's outliers cost 8 bytes each, an
    index and the value's bits, stored raw)."""
    import zlib

    from compframe import container

    side = 2048
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    clean = (np.sin(xx / 150) * np.cos(yy / 100) + 0.05 * rng.standard_normal((side, side))).astype(np.float32)
    land = land_mask(side * side).reshape(side, side)
    fields = {"clean": clean, "NaN land mask": np.where(land, np.float32(np.nan), clean),
              "NaN 1e-1 at random": np.where(rng.random((side, side)) < 0.1, np.float32(np.nan), clean)}
    rows = []
    for name, x in fields.items():
        for enc in encoders:
            frame = cf.compress(x, quantizer="int8", encoder=enc, bound=bound)
            back = cf.decompress(frame)
            nan = np.isnan(x)
            if not np.array_equal(np.isnan(back), nan):
                raise AssertionError(f"{name}, {enc}: the NaN did not come back")
            row = {"field": name, "encoder": enc, "ratio": x.nbytes / len(frame),
                   "outliers": int(container.loads(frame).header["meta"]["outliers"])}
            if nan.any():
                filled = cf.compress(np.where(nan, np.float32(0), x), quantizer="int8", encoder=enc, bound=bound)
                mask = zlib.compress(np.packbits(nan).tobytes(), 6)
                row["ratio, NaN put to 0 and a mask beside"] = x.nbytes / (len(filled) + len(mask))
            rows.append(row)
    return rows


def _hwm_kib() -> int:
    """This process's peak resident set (VmHWM, KiB). Unlike ru_maxrss it is not carried over
    from the parent across fork and exec, so it measures this process alone."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _peak_child(mode: str, path: str, quantizer: str, encoder: str, bound: str) -> None:
    base = _hwm_kib()
    if mode == "compress":
        x = np.load(path)  # the field, read into memory once
        held = _hwm_kib()
        frame = cf.compress(x, quantizer=quantizer, encoder=encoder, bound=bound)
        Path(path + ".cfrm").write_bytes(frame)
        size = x.nbytes
    else:
        frame = Path(path + ".cfrm").read_bytes()
        held = _hwm_kib()
        x_hat = cf.decompress(frame)
        size = x_hat.nbytes
    peak = _hwm_kib()
    print(json.dumps({"mode": mode, "field_bytes": size, "baseline_kib": base, "holding_input_kib": held,
                      "peak_kib": peak, "frame_bytes": len(frame)}))


def memory(gib: float, quantizer: str, encoder: str, bound: str) -> list[dict]:
    n = int(gib * 2**30) // 4
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "field.npy")
        np.save(path, embedding_like(n, seed=1))
        for mode in ("compress", "decompress"):
            p = subprocess.run([sys.executable, __file__, "--child", mode, path, quantizer, encoder, bound],
                               capture_output=True, text=True, check=True)
            out.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bound", default="rel:1e-2")
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS on a 1 GiB field")
    ap.add_argument("--memory-gib", type=float, default=1.0)
    ap.add_argument("--vs-copy", action="store_true", help="only quantization into a reused buffer vs np.copyto")
    ap.add_argument("--cases", default="int8:rel:1e-2,int16:rel:1e-3,int16:rel:1e-4",
                    help="comma-separated quantizer:bound cases for --vs-copy and --ratio")
    ap.add_argument("--cpu-time", action="store_true",
                    help="--vs-copy on one thread timed by this process's CPU time (time descheduled on a loaded "
                         "machine left out; memory contention is not)")
    ap.add_argument("--field", choices=("gaussian", "ramp", "drift"), default="gaussian",
                    help="the field of --vs-copy and --ratio (see field())")
    ap.add_argument("--small-first", action="store_true",
                    help="--vs-copy after quantizing a 50 000-value field with each case, as a process that "
                    "quantized small fields before (which loads the kernels numba compiled for them first)")
    ap.add_argument("--ratio", action="store_true", help="only the one-pass path's ratio cost against the two-pass")
    ap.add_argument("--encoders", default=None,
                    help="comma-separated encoders for --ratio (default huffman,ans) and --masked-ratio "
                    "(zstd,ans,huffman)")
    ap.add_argument("--misses", action="store_true",
                    help="only fields of zeros, clean, with NaN spread at three densities and with NaN over a land "
                    "mask (--mib of float64)")
    ap.add_argument("--masked-ratio", action="store_true",
                    help="only frame ratios of a smooth field clean, masked with NaN (a land mask, NaN at random), "
                    "and masked with its NaN put to 0 and the mask beside (int8 at --bound, --encoders)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _peak_child(*args.child)
        return
    import numba

    if args.vs_copy:
        clock = "CPU time" if args.cpu_time else "wall clock"
        if args.small_first:
            small = field(args.field, 50_000)
            for case in args.cases.split(","):
                qid, bound = case.split(":", 1)
                create("quantizer", qid).quantize(small, cf.ErrorBound.parse(bound))
        print(f"# {args.mib} MiB float32 {args.field}, best of {args.repeat} interleaved ({clock}), "
              f"numba threads {numba.get_num_threads()}" + (", after a small field" if args.small_first else ""))
        for row in vs_copy(args.mib, args.repeat, args.cases.split(","), args.cpu_time, args.field):
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
        return
    if args.misses:
        print(f"# {args.mib} MiB of float64 (and as float32), 70 % zeros, best of {args.repeat} in turn, "
              "one numba thread")
        for row in misses(args.mib, args.repeat):
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
        return
    if args.masked_ratio:
        print(f"# 2048 x 2048 float32, int8 {args.bound}")
        for row in masked_ratio((args.encoders or "zstd,ans,huffman").split(","), args.bound):
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
        return
    if args.ratio:
        print(f"# {args.mib} MiB float32 {args.field}: the default (one-pass from {U.ONE_PASS_MIN} values) against the "
              f"two-pass")
        encoders = (args.encoders or "huffman,ans").split(",")
        for row in ratio_cost(args.mib, args.cases.split(","), encoders, args.field):
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
        return

    print(f"# {args.mib} MiB float32, bound {args.bound}, best of {args.repeat}, numba threads {numba.get_num_threads()}")
    for row in throughput(args.mib, args.repeat, args.bound):
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
    if args.memory:
        for quantizer in ("int8", "int16"):
            for row in memory(args.memory_gib, quantizer, "lz4", args.bound):
                row["peak_over_field"] = round(row["peak_kib"] * 1024 / row["field_bytes"], 3)
                print(json.dumps({"quantizer": quantizer, "encoder": "lz4", **row}))


if __name__ == "__main__":
    main()
