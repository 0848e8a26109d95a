"""Frame fuzzing at scale (run by hand; the test suite runs 10^4 mutants): mutants of real frames,
CRCs recomputed, decoded in guarded worker processes (``compframe.fuzz``).

    python bench/fuzz_frames.py                          # 10^5 mutants, markdown to stdout
    python bench/fuzz_frames.py --write-docs             # ... and into docs/benchmarks.md ("Frame fuzzing")
    python bench/fuzz_frames.py --mutants 20000 --boundscheck 20000   # plus a run with numba's index checks
    python bench/fuzz_frames.py --decode-speed           # what the checks cost: cf.decompress on normal frames

Frames: the 100 small frames of ``fuzz.sample_frames()`` (24 x 16 float32; 10 quantizers x 10 CPU
encoder configurations) and 40 large ones (512 x 256 float32, 10 quantizers x zstd, huffman and
ans with their defaults, so the ans lane mode and class tables (mode 5) are among them, and
huffman in 32 chunks for its 16-chunk decoder; 9 KB to 620 KB each). Mutants are spread evenly over them. Each worker measures the peak resident
memory a decode adds (Linux ``VmHWM`` after resetting it through ``/proc/self/clear_refs``), under
an explicit ``max_bytes`` (default 8 MiB) so that the cap is what limits a mutant, not the frame.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # last: an installed compframe or PYTHONPATH=<another tree> comes first

from compframe import fuzz  # noqa: E402

OUTCOMES = ("ok", "frame_error", "unchecked", "other", "crash", "hang")
LARGE_ENCODERS = {"zstd": "zstd", "huffman": "huffman", "ans": "ans",
                  "huffman16": {"id": "huffman", "chunk": 4096}}
"""The large frames' encoders: defaults, and huffman in 32 chunks, which its CPU decoder takes 16 at
a time (``kernels/simd_huffman.py``; the small frames have at most 6 chunks)."""


def large_frames(shape=(512, 256)) -> dict[str, bytes]:
    import compframe as cf

    rng = np.random.default_rng(1)
    x = (rng.laplace(0, 1, shape) * np.linspace(0.5, 3, shape[1])).astype(np.float32)
    x[::7] = x[3]
    x[5, 5], x[9, 1] = np.nan, np.inf
    frames = {}
    for qname, (quantizer, bound) in fuzz.QUANTIZERS.items():
        data = np.nan_to_num(x, nan=0.0, posinf=5.0) if qname == "vq" else x
        for ename, encoder in LARGE_ENCODERS.items():
            frames[f"large {qname}+{ename}"] = cf.compress(data, quantizer=quantizer, encoder=encoder, bound=bound)
    return frames


def table(title: str, report: fuzz.Report, max_bytes: int, frames: dict[str, bytes], workers: int) -> list[str]:
    counts = " | ".join(str(report.counts.get(k, 0)) for k in OUTCOMES)
    return [f"**{title}**: {report.total} mutants of {len(frames)} frames ({min(map(len, frames.values()))} to "
            f"{max(map(len, frames.values()))} bytes) in {report.seconds:.0f} s on {workers} worker processes", "",
            "| mutants | " + " | ".join(OUTCOMES) + " | peak memory of a decode | max_bytes |",
            "|---:|" + "---:|" * (len(OUTCOMES) + 2),
            f"| {report.total} | {counts} | {report.peak_bytes / 2**20:.1f} MiB | {max_bytes / 2**20:.0f} MiB |", ""]


def decode_speed(repeat: int = 5) -> list[str]:
    """``cf.decompress`` throughput on 8 fields of 2048 x 64 float32 (MB/s of float32) and its time on
    one 24 x 16 field (us), best of ``repeat``, in CPU time: what the checks cost on the normal path."""
    import compframe as cf

    rng = np.random.default_rng(0)
    fields = [rng.laplace(0, 1, (2048, 64)).astype(np.float32) for _ in range(8)]
    small = fuzz.sample_field()
    lines = ["| pipeline | decompress MB/s (2048 x 64 fields) | decompress of a 24 x 16 field (us) |",
             "|---|---:|---:|"]
    for q, e, b in (("int8", "ans", "rel:1e-2"), ("int8", "huffman", "rel:1e-2"), ("int8", "zstd", "rel:1e-2"),
                    ("int8", "none", "rel:1e-2"), ("bf16", "zstd", None), ("mxint8", "huffman", None)):
        frames = [cf.compress(x, quantizer=q, encoder=e, bound=b) for x in fields]
        one = cf.compress(small, quantizer=q, encoder=e, bound=b)
        cf.decompress(one)
        for f in frames:
            cf.decompress(f)
        big = min(_timed(lambda: [cf.decompress(f) for f in frames]) for _ in range(repeat))
        tiny = min(_timed(lambda: [cf.decompress(one) for _ in range(100)]) for _ in range(repeat)) / 100
        lines.append(f"| {q} + {e} | {sum(x.nbytes for x in fields) / 1e6 / big:.0f} | {1e6 * tiny:.0f} |")
    from compframe import container, decoding

    frame = cf.compress(small, quantizer="int8", encoder="none")
    f = container.loads(frame)
    quantizer, _ = decoding.plugins(f.header)
    parts = {"container.loads (CRCs, header structure)": lambda: container.loads(frame),
             "of which the header structure checks": lambda: container._entries(f.header),
             "plugins built from the header": lambda: decoding.plugins(f.header),
             "shape, dtype, meta, side arrays and code layout": lambda: quantizer.code_layout(
                 decoding.header_quantized(f, quantizer)),
             "the whole cf.decompress": lambda: cf.decompress(frame)}
    lines += ["", "| int8 + none, 24 x 16: step | us |", "|---|---:|"]
    for name, fn in parts.items():
        lines.append(f"| {name} | {1e6 * min(_timed(lambda: [fn() for _ in range(1000)]) for _ in range(repeat)) / 1000:.1f} |")
    return lines + [""]


def _timed(fn) -> float:
    """CPU seconds of this process (the fields are small enough to decode on one thread): steadier
    than wall time on a machine that other jobs load."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutants", type=int, default=100_000)
    ap.add_argument("--boundscheck", type=int, default=0, help="mutants decoded again with NUMBA_BOUNDSCHECK=1")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-bytes", type=int, default=8 << 20)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--decode-speed", action="store_true", help="only time cf.decompress on normal frames")
    args = ap.parse_args(argv)
    if args.decode_speed:
        print("\n".join(decode_speed()))
        return

    import compframe as cf

    frames = {**fuzz.sample_frames(), **large_frames()}
    for name, frame in frames.items():  # compile every kernel once here; the workers load them
        cf.decompress(frame, max_bytes=args.max_bytes)
    ref = fuzz.run([(n, "none", f) for n, f in frames.items()], workers=1, max_bytes=args.max_bytes,
                   measure_memory=True, warmup=list(frames.values()))
    lines = [f"Command: `python bench/fuzz_frames.py --mutants {args.mutants}"
             + (f" --boundscheck {args.boundscheck}" if args.boundscheck else "") + "`", ""]
    runs = [("Mutants", args.mutants, None)]
    if args.boundscheck:
        runs.append(("With numba's index checks (NUMBA_BOUNDSCHECK=1)", args.boundscheck, str(Path(tempfile.gettempdir()) / "compframe_numba_boundscheck")))
    bad_all = []
    for title, n, boundscheck in runs:
        cases = fuzz.mutants(frames, n, seed=args.seed + (boundscheck is not None))
        t0 = time.perf_counter()
        report = fuzz.run(cases, workers=args.workers, timeout=args.timeout, max_bytes=args.max_bytes,
                          measure_memory=True, warmup=list(frames.values()), boundscheck=boundscheck)
        print(f"{title}: {dict(report.counts)} in {time.perf_counter() - t0:.0f} s; peak {report.peak_bytes} "
              f"bytes ({report.peak_case})", file=sys.stderr)
        lines += table(title, report, args.max_bytes, frames, args.workers)
        bad_all += report.bad
    ops = Counter(op for _, ops, _ in fuzz.mutants(frames, min(args.mutants, 20_000), seed=args.seed)
                  for op in ops.split("+"))
    lines += [f"Edits per mutant: 1 to 3, drawn from {', '.join(f'{k} {v / sum(ops.values()):.0%}' for k, v in ops.most_common())}. "
              f"Decoding the unmutated frames peaks at {ref.peak_bytes / 2**20:.1f} MiB.", ""]
    for b in bad_all[:20]:
        lines.append(f"- {b['outcome']}: {b['frame']} ({b['ops']}): {b['message'][:160]}")
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        path = ROOT / "docs" / "benchmarks.md"
        doc = path.read_text()
        begin, end = "<!-- fuzz_frames:begin -->", "<!-- fuzz_frames:end -->"
        if begin not in doc:
            raise SystemExit(f"{path} has no '{begin}' marker (the 'Frame fuzzing' section)")
        doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{text}\n{end}", doc, flags=re.S)
        path.write_text(doc)


if __name__ == "__main__":
    main()
