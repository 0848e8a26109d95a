"""The ``lorenzo`` and ``interp`` quantizers with gpulz/ans/huffman against SZ3 and LZ4-64K on smooth fields (by hand).

    PYTHONPATH=. python bench/bench_lorenzo.py               # all fields, rel 1e-2, 1e-3, 1e-4; markdown to stdout
    PYTHONPATH=. python bench/bench_lorenzo.py --quick       # smaller fields, 3 repeats
    PYTHONPATH=. python bench/bench_lorenzo.py --predictors interp   # only the interp pipelines (and SZ3)
    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/bench_lorenzo.py --sweep --repeat 7   # interp's own sweep, CPU ms
    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/bench_lorenzo.py --predictors interp --fields grf2d --cpu   # CPU time
    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/bench_lorenzo.py --vs-sz3 ans chain --cpu --repeat 15   # in turn with SZ3
    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/bench_lorenzo.py --vs-sz3 ans lorenzo/int16+zstd --cpu   # both predictors
    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/bench_lorenzo.py --stages --repeat 9 --fields grf2d   # interp + ans, CPU ms
    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/bench_lorenzo.py --passes --fields grf3d --rel 1e-3 --repeat 15  # per pass

GPULZ's 1.23x over nvCOMP's LZ4 (ICS'23, arXiv 2304.07342) was measured on cuSZ's quantization codes:
Lorenzo residuals of smooth scientific fields. Fields here (float32): Gaussian random fields made
from a seed by filtering white noise in Fourier space to a power spectrum ``|k|^-slope``: a smooth
2-D one (``k^-4``, 2048 x 2048), a smooth 3-D one (``k^-6``, 96 x 128 x 128) and a rougher 3-D one
with Kolmogorov's spectrum (``k^-11/3``, 96 x 128 x 128); and
the ``image`` data source's two images (Shepp-Logan phantom 1024 x 1024, scikit-image's camera
photograph 512 x 512), all scaled to [0, 1].

Per field and bound: whole pipelines through ``cf.compress``/``cf.decompress`` (frame bytes, so side
data and headers count): ``lorenzo`` (int8 and int16 codes) + gpulz/ans/huffman/zstd and
+ ``lz4`` with 64 KiB independent blocks (what nvCOMP's LZ4 does; the project's ``lz4`` encoder with
``block: 65536``), the raw ``int8``/``int16`` uniform codes + gpulz and + LZ4-64K, and SZ3 (pysz,
serial, ABS mode at the same absolute bound) with its default algorithm (spline interpolation or
Lorenzo, chosen per field) and with Lorenzo + regression only. Ratio = float32 bytes / compressed
bytes; ``code ratio`` = code bytes / code stream bytes; speeds in MB/s of float32, best of
``--repeat``. Then the goals: gpulz's code stream vs LZ4-64K's on the same codes, and the best
lorenzo pipeline vs SZ3. ``interp`` (SZ3's multilevel interpolation predictor, int16 codes) runs
with ans/huffman/zstd/gpulz/chain (huffman, then zstd); its goals table sets SZ3's bits per value beside the order-0 entropy
of interp's codes (no order-0 coder goes below it), the share of zero codes and their mean run, and
the ratio of interp's codes coded as SZ3 codes its own (``huffman``, then ``zstd`` over that stream).
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import time
import zlib

import numpy as np

import compframe as cf
from compframe import container, registry
from compframe.base import ErrorBound
from compframe.kernels import interp as interp_kernels
from compframe.metrics import entropy_bits
from compframe.plugins.quantizers.lorenzo import lattice

LZ4_64K = {"id": "lz4", "block": 65536}
ENCODERS = {"gpulz": "gpulz", "ans": "ans", "huffman": "huffman", "zstd": "zstd", "LZ4-64K": LZ4_64K,
            "chain": "chain"}  # chain: huffman, then zstd level 3 over its stream (its defaults)
SZ3 = "SZ3 (pysz, default: interpolation or Lorenzo)"
H0 = "order-0 entropy of the lorenzo codes, bits/value"
INTERP_ENCODERS = ("ans", "huffman", "zstd", "gpulz", "chain")
INTERP_STATS = "interp codes: order-0 entropy, the same per pass (level and axis), bits/value; share of zeros; mean run"


def raw_codes(rel: float) -> str:
    """The uniform quantizer whose codes fit at ``rel`` (int8 needs rel >= 1/(4 * 127))."""
    return "int8" if rel >= 1 / 508 else "int16"


def gaussian_field(shape: tuple[int, ...], slope: float, seed: int) -> np.ndarray:
    """A Gaussian random field with power spectrum ``|k|^-slope``: white noise filtered in Fourier
    space, scaled to [0, 1], float32."""
    rng = np.random.default_rng(seed)
    freqs = np.meshgrid(*[np.fft.fftfreq(n) * n for n in shape[:-1]], np.fft.rfftfreq(shape[-1]) * shape[-1],
                        indexing="ij")
    k2 = sum(f * f for f in freqs)
    k2.flat[0] = 1.0
    spectrum = np.fft.rfftn(rng.standard_normal(shape)) * k2 ** (-slope / 4)
    spectrum.flat[0] = 0.0
    x = np.fft.irfftn(spectrum, s=shape, axes=range(len(shape)))
    return ((x - x.min()) / np.ptp(x)).astype(np.float32)


def fields(quick: bool) -> dict[str, np.ndarray]:
    s = 2 if quick else 1
    out = {
        f"grf2d k^-4 {2048 // s}x{2048 // s}": gaussian_field((2048 // s, 2048 // s), 4.0, 0),
        f"grf3d k^-6 {96 // s}x{128 // s}x{128 // s}": gaussian_field((96 // s, 128 // s, 128 // s), 6.0, 1),
        f"grf3d k^-11/3 {96 // s}x{128 // s}x{128 // s}": gaussian_field((96 // s, 128 // s, 128 // s), 11 / 3, 2),
    }
    source = registry.create("data", "image", size=1024 // s)
    for f in source.fields():
        out[f"{f.name} {'x'.join(map(str, f.data.shape))}"] = f.data
    return out


CLOCK = {"clock": time.perf_counter}
"""The clock of ``best_time``: wall time, or (``--cpu``) the process's CPU time, which on a machine
shared with other jobs does not count the time spent waiting for a core (run with one thread)."""


def best_time(fn, repeat: int):
    clock = CLOCK["clock"]
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = clock()
        out = fn()
        best = min(best, clock() - t0)
    return best, out


def code_stream_bytes(frame: bytes) -> int:
    return sum(s.nbytes for s in container.loads(frame).code_streams().values())


def build(kind: str, spec: str | dict):
    """A plugin from an id or a config dict."""
    return registry.create_from_config(kind, spec if isinstance(spec, dict) else {"id": spec})


def pipeline(x, quantizer, encoder, bound, repeat):
    """(ratio, code ratio, compress MB/s, decompress MB/s, max error / bound) of one cf pipeline."""
    q, e = build("quantizer", quantizer), build("encoder", encoder)
    tc, frame = best_time(lambda: cf.compress(x, quantizer=q, encoder=e, bound=bound), repeat)
    td, y = best_time(lambda: cf.decompress(frame), repeat)
    codes = q.quantize(x, bound).codes["codes"].nbytes
    eb = bound.absolute(float(x.max()) - float(x.min()))
    err = float(np.abs(y.astype(np.float64) - x).max()) / eb
    mb = x.nbytes / 1e6
    return x.nbytes / len(frame), codes / code_stream_bytes(frame), mb / tc, mb / td, err


def sz3_config(x, bound, algorithm=None):
    """pysz's configuration for SZ3 in ABS mode at ``bound``'s absolute bound on ``x`` (and its
    default algorithm, or ``algorithm``)."""
    from pysz import szAlgorithm, szConfig, szErrorBoundMode

    conf = szConfig()
    conf.errorBoundMode = szErrorBoundMode.ABS
    conf.absErrorBound = bound.absolute(float(x.max()) - float(x.min()))
    if algorithm is not None:
        conf.cmprAlgo = getattr(szAlgorithm, algorithm)
    return conf


def sz3(x, bound, repeat, algorithm=None):
    from pysz import sz

    conf = sz3_config(x, bound, algorithm)
    eb = conf.absErrorBound
    tc, (blob, _) = best_time(lambda: sz.compress(x, conf), repeat)
    td, (y, _) = best_time(lambda: sz.decompress(blob, np.float32, x.shape), repeat)
    mb = x.nbytes / 1e6
    return x.nbytes / blob.nbytes, float("nan"), mb / tc, mb / td, float(np.abs(y.astype(np.float64) - x).max()) / eb


def contender(spec: str) -> tuple[str, dict, str | dict]:
    """A ``--vs-sz3`` pipeline as (label, quantizer config, encoder): ``ENCODER`` (``interp`` + it, as the
    option first took), or ``PREDICTOR[/CODES]+ENCODER`` with ``interp`` or ``lorenzo``, codes ``int8`` or
    ``int16`` (the quantizer's default where left out) and an encoder of ``ENCODERS``, e.g. ``lorenzo/int8+zstd``."""
    predictor, plus, encoder = spec.rpartition("+")
    name, _, codes = (predictor if plus else "interp").partition("/")
    if name not in ("interp", "lorenzo") or codes not in ("", "int8", "int16") or encoder not in ENCODERS:
        raise argparse.ArgumentTypeError(f"--vs-sz3 {spec!r}: expected ENCODER or PREDICTOR[/CODES]+ENCODER with "
                                         f"PREDICTOR interp or lorenzo, CODES int8 or int16, ENCODER one of "
                                         f"{', '.join(ENCODERS)}")
    return f"{predictor if plus else 'interp'} + {encoder}", {"id": name, **({"code_dtype": codes} if codes else {})}, \
        ENCODERS[encoder]


def versus_sz3(quick: bool, repeat: int, rels, contenders, only) -> list[str]:
    """Each of ``contenders`` (``contender``'s) against SZ3 (default algorithm) with the contenders timed in
    turn within each repeat (a burst of load on the shared machine then hits all of them, where
    ``run`` times each pipeline's repeats in one block), best of ``repeat`` each: compress and
    decompress in ms of ``CLOCK``, and their speed as a multiple of SZ3's."""
    from pysz import sz
    from bench_uniform import race

    lines = ["| field | rel | pipeline | ratio / SZ3's | compress ms (SZ3) | decompress ms (SZ3) "
             "| compress vs SZ3 | decompress vs SZ3 | >= SZ3's ratio at >= 1.8x both ways |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    clock = CLOCK["clock"]
    for name, x in fields(quick).items():
        if only and not any(f in name for f in only):
            continue
        for rel in rels:
            bound = ErrorBound("rel", rel)
            conf = sz3_config(x, bound)
            ours = {label: (build("quantizer", q), build("encoder", enc)) for label, q, enc in contenders}
            frames = {e: cf.compress(x, quantizer=q, encoder=enc, bound=bound) for e, (q, enc) in ours.items()}
            blob = sz.compress(x, conf)[0]
            tasks = {("SZ3", "c"): lambda: sz.compress(x, conf),
                     ("SZ3", "d"): lambda: sz.decompress(blob, np.float32, x.shape)}
            for e, (q, enc) in ours.items():
                tasks[(e, "c")] = lambda q=q, enc=enc: cf.compress(x, quantizer=q, encoder=enc, bound=bound)
                tasks[(e, "d")] = lambda f=frames[e]: cf.decompress(f)
            best = race(tasks, repeat, clock)
            sz_ratio = x.nbytes / blob.nbytes
            for e in ours:
                ratio = x.nbytes / len(frames[e]) / sz_ratio
                c, d = best[("SZ3", "c")] / best[(e, "c")], best[("SZ3", "d")] / best[(e, "d")]
                lines.append(f"| {name} | {rel:g} | {e} | {ratio:.3f}x | {1e3 * best[(e, 'c')]:.1f} "
                             f"({1e3 * best[('SZ3', 'c')]:.1f}) | {1e3 * best[(e, 'd')]:.1f} "
                             f"({1e3 * best[('SZ3', 'd')]:.1f}) | {c:.2f}x | {d:.2f}x "
                             f"| {'yes' if ratio >= 1 and c >= 1.8 and d >= 1.8 else 'no'} |")
    return lines


def code_stats(x: np.ndarray, bound: ErrorBound) -> tuple[float, float, float, float, float]:
    """Of interp's codes (layout levels): order-0 entropy, order-0 entropy within each pass (level and
    axis; what a coder with one table per pass could reach), bits/value; share of zeros; mean length
    of the runs of zeros; and the ratio (float32 bytes / bytes) of the ``huffman`` stream of the codes
    put through ``zstd`` (level 3) once more, SZ3's two stages (the codes only: the frame's header
    and side data are not counted; the pipeline ``interp + chain`` counts them)."""
    codes = registry.create("quantizer", "interp").quantize(x, bound).codes["codes"]
    stream = np.frombuffer(build("encoder", "huffman").encode(codes), np.uint8)
    two_stages = x.nbytes / len(build("encoder", "zstd").encode(stream))
    view = lattice(x.shape, "auto")
    sizes = [1] + [int(np.prod(counts)) for *_, counts in interp_kernels.passes(view)]
    bounds = np.cumsum([0] + sizes)
    per_pass = sum(entropy_bits(codes[a:b]) * (b - a) for a, b in zip(bounds[:-1], bounds[1:]) if b > a) / codes.size
    zero = np.concatenate([[False], codes == 0, [False]])
    starts, ends = np.flatnonzero(zero[1:] & ~zero[:-1]), np.flatnonzero(~zero[1:] & zero[:-1])
    runs = float(np.mean(ends - starts)) if starts.size else 0.0
    return entropy_bits(codes), per_pass, float(np.mean(codes == 0)), runs, two_stages


def run(name, x, rel, repeat, predictors) -> tuple[list[str], dict]:
    bound = ErrorBound("rel", rel)
    uniform = raw_codes(rel)
    rows = {}
    if "lorenzo" in predictors:
        for dtype in ("int8", "int16"):
            for ename, enc in ENCODERS.items():
                rows[f"lorenzo/{dtype} + {ename}"] = pipeline(x, {"id": "lorenzo", "code_dtype": dtype}, enc, bound,
                                                              repeat)
        for ename in ("gpulz", "LZ4-64K"):
            rows[f"{uniform} (raw codes) + {ename}"] = pipeline(x, uniform, ENCODERS[ename], bound, repeat)
        rows[H0] = entropy_bits(registry.create("quantizer", "lorenzo").quantize(x, bound).codes["codes"])
    if "interp" in predictors:
        for ename in INTERP_ENCODERS:
            rows[f"interp/int16 + {ename}"] = pipeline(x, "interp", ENCODERS[ename], bound, repeat)
        rows[INTERP_STATS] = code_stats(x, bound)
    rows[SZ3] = sz3(x, bound, repeat)
    rows["SZ3, Lorenzo + regression only"] = sz3(x, bound, repeat, "LORENZO_REG")
    lines = [f"#### {name}, rel {rel:g}", "",
             "| pipeline | ratio | code ratio | compress MB/s | decompress MB/s | max err / eb |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, (ratio, cratio, c, d, err) in ((k, v) for k, v in rows.items() if k not in (H0, INTERP_STATS)):
        lines.append(f"| {label} | {ratio:.2f} | {'' if np.isnan(cratio) else f'{cratio:.2f}'} | {c:.0f} | {d:.0f} "
                     f"| {err:.3f} |")
    return lines + [""], rows


def summary(results, predictors) -> list[str]:
    return (lorenzo_summary(results) if "lorenzo" in predictors else []) + \
        (interp_summary(results) if "interp" in predictors else [])


def interp_summary(results) -> list[str]:
    lines = ["#### Goals (interp)", "",
             "| field | rel | SZ3 bits/value | interp codes: H0, H0 per pass (bits/value), zeros, mean zero run "
             "| best interp pipeline | its ratio / SZ3's | compress vs SZ3 | decompress vs SZ3 "
             "| interp pipelines >= SZ3's ratio at >= 1.8x its speed both ways "
             "| huffman stream + zstd (two stages, codes only): ratio / SZ3's |",
             "|---|---|---:|---|---|---:|---:|---:|---|---:|"]
    for (name, rel), rows in results.items():
        best = max((k for k in rows if k.startswith("interp/")), key=lambda k: rows[k][0])
        ref = rows[SZ3]
        met = [k for k in rows if k.startswith("interp/") and rows[k][0] >= ref[0]
               and rows[k][2] >= 1.8 * ref[2] and rows[k][3] >= 1.8 * ref[3]]
        h0, per_pass, zeros, run_length, two_stages = rows[INTERP_STATS]
        lines.append(f"| {name} | {rel:g} | {32 / ref[0]:.3f} | {h0:.3f}, {per_pass:.3f}, {zeros:.3f}, "
                     f"{run_length:.1f} "
                     f"| {best} "
                     f"| {rows[best][0] / ref[0]:.2f}x | {rows[best][2] / ref[2]:.1f}x | {rows[best][3] / ref[3]:.1f}x "
                     f"| {', '.join(met) or 'none'} | {two_stages / ref[0]:.2f}x |")
    return lines + [""]


def lorenzo_summary(results) -> list[str]:
    lines = ["#### Goals", "",
             "| field | rel | lorenzo codes' H0 bits/value "
             "| gpulz / LZ4-64K (code streams): lorenzo/int8, lorenzo/int16, raw codes "
             "| best lorenzo pipeline | its ratio / SZ3's | compress vs SZ3 | decompress vs SZ3 "
             "| lorenzo pipelines >= SZ3's ratio at >= 1.8x its speed both ways |",
             "|---|---|---:|---|---|---:|---:|---:|---|"]
    for (name, rel), rows in results.items():
        uniform = raw_codes(rel)
        gl = [rows[f"{p} + gpulz"][1] / rows[f"{p} + LZ4-64K"][1]
              for p in ("lorenzo/int8", "lorenzo/int16", f"{uniform} (raw codes)")]
        best = max((k for k in rows if k.startswith("lorenzo/")), key=lambda k: rows[k][0])
        ref = rows[SZ3]
        met = [k for k in rows if k.startswith("lorenzo/") and rows[k][0] >= ref[0]
               and rows[k][2] >= 1.8 * ref[2] and rows[k][3] >= 1.8 * ref[3]]
        gains = ", ".join(f"{g:.2f}x" for g in gl)
        lines.append(f"| {name} | {rel:g} | {rows[H0]:.2f} | {gains} | {best} | {rows[best][0] / ref[0]:.2f}x "
                     f"| {rows[best][2] / ref[2]:.1f}x | {rows[best][3] / ref[3]:.1f}x | {', '.join(met) or 'none'} |")
    return lines + [""]


def sweep_times(quick: bool, repeat: int) -> list[str]:
    """``interp`` alone (``tune: false``, int16 codes) on the two smooth random fields: quantize and
    dequantize in ms of CPU time (``time.process_time``, steadier than wall time on a shared machine;
    run with one thread), best of ``repeat``, and a CRC-32 of the codes and the reconstruction (the
    same bytes from tree to tree)."""
    lines = ["| field, bound | quantize ms (CPU) | dequantize ms (CPU) | CRC-32 codes, reconstruction |",
             "|---|---:|---:|---|"]
    for name, x in list(fields(quick).items())[:2]:
        for rel in (1e-2, 1e-3, 1e-4):
            q, bound = registry.create("quantizer", "interp", tune=False), ErrorBound("rel", rel)
            quantized = q.quantize(x, bound)
            times = []
            for fn in (lambda: q.quantize(x, bound), lambda: q.dequantize(quantized)):
                best = float("inf")
                for _ in range(repeat):
                    t0 = time.process_time()
                    fn()
                    best = min(best, time.process_time() - t0)
                times.append(best * 1e3)
            crc = (zlib.crc32(quantized.codes["codes"].tobytes()), zlib.crc32(q.dequantize(quantized).tobytes()))
            lines.append(f"| {name}, rel {rel:g} | {times[0]:.1f} | {times[1]:.1f} | {crc[0]:08x}, {crc[1]:08x} |")
    return lines


def pass_times(quick: bool, repeat: int, rels, only) -> list[str]:
    """Each pass of ``interp``'s sweep (level stride, axis) alone: ``kernels.interp._step`` encoding and
    decoding, ns per target of ``CLOCK`` (run with one thread), best of ``repeat``; cubic, QoZ's
    default level bounds (1.25, 2.0), int16 codes in the levels layout, no ``tune``."""
    lines = ["| field | rel | stride | axis | targets | encode ns/target | decode ns/target |",
             "|---|---|---:|---:|---:|---:|---:|"]
    clock = CLOCK["clock"]
    for name, x in fields(quick).items():
        if only and not any(f in name for f in only):
            continue
        flat = x.reshape(-1)
        view = lattice(x.shape, "auto")
        P, R, W = view
        for rel in rels:
            eb = rel * (float(x.max()) - float(x.min()))
            xh, codes = np.empty_like(flat), np.zeros(flat.size, np.int16)
            marks = np.zeros(-(-flat.size // interp_kernels.MARK), np.bool_)
            centre = float(x.min()) / 2 + float(x.max()) / 2
            interp_kernels.sweep(flat, xh, codes, view, centre, eb, True, 1.25, 2.0, -32768.0, 32767.0, True, True,
                                 marks)
            best, k0 = {}, 1
            for _ in range(repeat):
                k0 = 1
                for level, s, axis, start, align, counts in interp_kernels.passes(view):
                    e = interp_kernels.level_bound(eb, level, 1.25, 2.0)
                    step, inv = interp_kernels._grid(e)
                    for encode in (True, False):
                        out = codes if encode else np.empty(0, codes.dtype)
                        t0 = clock()
                        interp_kernels._step(flat, xh, codes, out, R, W, axis, s, start[0], align[0], counts[0],
                                             start[1], align[1], counts[1], start[2], align[2], counts[2],
                                             s * (R * W, W, 1)[axis], view[axis], True, k0, True, centre, inv, step,
                                             e, -32768.0, 32767.0, encode, marks)
                        dt = clock() - t0
                        best[(s, axis, encode)] = min(best.get((s, axis, encode), np.inf), dt)
                    k0 += int(np.prod(counts))
            for level, s, axis, start, align, counts in interp_kernels.passes(view):
                n = int(np.prod(counts))
                if s <= 4:
                    lines.append(f"| {name} | {rel:g} | {s} | {axis} | {n} | {1e9 * best[(s, axis, True)] / n:.2f} "
                                 f"| {1e9 * best[(s, axis, False)] / n:.2f} |")
    return lines


def stage_times(quick: bool, repeat: int, rels, only) -> list[str]:
    """Where ``interp`` + ``ans`` spends its time (default settings, ``tune`` on), in ms of CPU time,
    best of ``repeat`` each: the whole ``quantize``, its ``tune`` (the settings' search on the
    sample) and its sweep, ``ans`` encode and decode of the codes (and the chunk, lanes and bytes of
    the stream), ``dequantize``."""
    from compframe.plugins.encoders.entropy import Ans
    from compframe.plugins.quantizers.lorenzo import lattice

    def best(fn):  # ms of CLOCK, which --stages sets to CPU time
        return 1e3 * best_time(fn, repeat)[0]

    lines = ["| field | rel | quantize | of which tune | sweep | ans encode | ans decode | dequantize "
             "| ans stream: bytes, chunk, lanes |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, x in fields(quick).items():
        if only and not any(f in name for f in only):
            continue
        for rel in rels:
            q, enc, bound = build("quantizer", "interp"), build("encoder", "ans"), ErrorBound("rel", rel)
            quantized = q.quantize(x, bound)
            codes, meta, flat = quantized.codes["codes"], quantized.meta, x.reshape(-1)
            view, eb, centre = lattice(x.shape, "auto"), meta["abs_bound"], meta["centre"]
            settings = (meta["method"], meta["alpha"], meta["beta"])
            xh, scratch = np.empty_like(flat), np.zeros(codes.size, codes.dtype)
            stream = enc.encode(codes)
            head = 1 + 3 + 1 + 8 * codes.ndim  # the stream header, then the coded fields (entropy.py's layout)
            _, _, chunk, _, param, _, _ = struct.unpack_from("<iIIIBII", stream, head + 10)
            chunk, lanes = (chunk, Ans._split_param(param)[1]) if stream[head + 1] in (2, 4) else (0, "-")
            lines.append(
                f"| {name} | {rel:g} | {best(lambda: q.quantize(x, bound)):.2f} "
                f"| {best(lambda: q._tune(flat, view, centre, eb)):.2f} "
                f"| {best(lambda: q._sweep(flat, xh, scratch, view, centre, eb, settings, True, True)):.2f} "
                f"| {best(lambda: enc.encode(codes)):.2f} | {best(lambda: enc.decode(stream)):.2f} "
                f"| {best(lambda: q.dequantize(quantized)):.2f} | {len(stream)}, {chunk or '-'}, {lanes} |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fields of half the side, 3 repeats")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rel", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    ap.add_argument("--predictors", nargs="+", choices=("lorenzo", "interp"), default=["lorenzo", "interp"])
    ap.add_argument("--sweep", action="store_true", help="only interp's own quantize/dequantize times (CPU)")
    ap.add_argument("--cpu", action="store_true", help="speeds from CPU time (time.process_time), not wall time")
    ap.add_argument("--fields", nargs="+", help="only the fields whose name contains one of these, e.g. grf2d")
    ap.add_argument("--stages", action="store_true", help="only where interp + ans spends its time (CPU ms)")
    ap.add_argument("--passes", action="store_true",
                    help="only each pass of interp's sweep (stride 1, 2, 4) alone, ns per target (CPU time)")
    ap.add_argument("--vs-sz3", nargs="+", metavar="PIPELINE", type=contender,
                    help="only these pipelines against SZ3, timed in turn within each repeat: ENCODER (interp + it) "
                         "or PREDICTOR[/CODES]+ENCODER, e.g. lorenzo/int8+zstd")
    args = ap.parse_args(argv)
    args.cpu = args.cpu or args.stages or args.passes  # the stages and passes are CPU time
    if args.cpu:
        CLOCK["clock"] = time.process_time
    repeat = 3 if args.quick else args.repeat
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    out = [f"`uptime` before: {load}; numba threads: {os.environ.get('NUMBA_NUM_THREADS', 'default')}; "
           f"{'CPU' if args.cpu else 'wall'} time", ""]
    if args.sweep:
        print("\n".join(out + sweep_times(args.quick, repeat)))
        return
    if args.passes:
        print("\n".join(out + pass_times(args.quick, repeat, args.rel, args.fields)))
        return
    if args.stages:
        print("\n".join(out + stage_times(args.quick, repeat, args.rel, args.fields)))
        return
    if args.vs_sz3:
        out += versus_sz3(args.quick, repeat, args.rel, args.vs_sz3, args.fields)
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print("\n".join(out + ["", f"`uptime` after: {load}"]))
        return
    results = {}
    for name, x in fields(args.quick).items():
        if args.fields and not any(f in name for f in args.fields):
            continue
        for rel in args.rel:
            lines, rows = run(name, x, rel, repeat, args.predictors)
            out += lines
            results[(name, rel)] = rows
    out += summary(results, args.predictors)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    out.append(f"`uptime` after: {load}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
