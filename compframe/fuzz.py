"""Frame fuzzing: structured mutants of real frames, with their CRCs recomputed, decoded in guarded workers.

``sample_frames()`` compresses small fields with every CPU encoder and the quantizers the frame
tests cover. ``mutants(frames, n, seed)`` edits them where a decoder reads a number, a dtype, a
shape, an id or an offset: a JSON value of the header (nested meta and section entries too), a
field of a code stream's dtype/shape header, an integer at some offset of a stream's payload, the
values of a side array, whole sections (swapped, renamed, dropped, duplicated), or the row count
(the header's, every stream's and the entropy coders' own, claimed k times larger together); every
mutant's section and header CRC-32s are then recomputed, so it passes the container's checksums and
reaches the decoders.

``run(mutants, workers, timeout)`` decodes them in a pool of worker processes, each decoding many
mutants in turn; the parent is the watchdog: a worker that dies (a crash) or runs past ``timeout``
seconds on one mutant (a hang, then killed) is replaced, and the mutant is recorded. Each decode ends
as ``ok`` (accepted), ``frame_error`` (``cf.FrameError`` from a check), ``unchecked`` (a
``FrameError`` from the decoder's safety net: an exception no check caught first), ``other`` (any
other exception), ``crash`` or ``hang``; workers also report the peak resident memory a decode added (Linux ``VmHWM``).
"""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import os
import random
import signal
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from . import container

QUANTIZERS = {
    "int8": ("int8", "rel:1e-2"),
    "int16": ("int16", "abs:1e-4"),
    "bf16": ("bf16", None),
    "mxint8": ({"id": "mxint8", "block_size": 8}, None),
    "vq": ({"id": "vq", "bits": 3, "iterations": 5}, None),
    "prune": ({"id": "prune", "fraction": 0.6, "then": "int8"}, "rel:1e-2"),
    "lorenzo": ({"id": "lorenzo", "code_dtype": "int8"}, "abs:1e-2"),
    "interp": ({"id": "interp", "code_dtype": "int8"}, "abs:1e-2"),
    "int8_one_pass": ({"id": "int8", "passes": 1, "chunk": 64}, "rel:1e-2"),
    "int16_one_pass": ({"id": "int16", "passes": 1, "chunk": 64}, "rel:1e-3"),
}
ONE_PASS = {"int8_one_pass", "int16_one_pass"}
"""The one-pass frames (per-chunk ``chunk_centre``/``chunk_step`` side arrays): their field has no
infinities (which send a field to the two-pass path) and a range that grows a little in its last
chunk (so that chunks keep their own plans)."""
ENCODERS = {
    "none": "none",
    "lz4": "lz4",
    "zstd": "zstd",
    "huffman": {"id": "huffman", "chunk": 64},
    "huffman_column": {"id": "huffman", "chunk": 64, "context": "column"},
    "ans": {"id": "ans", "chunk": 64},
    "ans_column": {"id": "ans", "chunk": 64, "context": "column"},
    "ans_lanes": {"id": "ans", "chunk": 256, "lanes": 16},
    "gpulz": {"id": "gpulz", "chunk": 64},
    "chain": {"id": "chain", "stages": [{"id": "huffman", "chunk": 64}, {"id": "zstd"}]},
}


def sample_field(seed: int = 0) -> np.ndarray:
    """A 24 x 16 float32 field with repeated rows (dedup), outliers, NaN and inf."""
    rng = np.random.default_rng(seed)
    x = (rng.laplace(0, 1, (24, 16)) * np.linspace(0.5, 3, 16)).astype(np.float32)
    x[5], x[9] = x[2], x[2]
    x[1, 1], x[3, 7], x[7, 0] = np.nan, np.inf, 40.0
    return x


def sample_frames() -> dict[str, bytes]:
    """One small frame per CPU encoder configuration x quantizer of ``ENCODERS`` x ``QUANTIZERS``
    (the one-pass ones with their per-chunk side arrays: see ``ONE_PASS``)."""
    import compframe as cf

    x = sample_field()
    finite = np.nan_to_num(x, nan=0.0, posinf=5.0)
    one_pass = np.where(np.isinf(x), np.float32(5.0), x)
    one_pass[-1, -1] = 41.0
    frames = {}
    for qname, (quantizer, bound) in QUANTIZERS.items():
        data = finite if qname == "vq" else one_pass if qname in ONE_PASS else x
        for ename, encoder in ENCODERS.items():
            frames[f"{qname}+{ename}"] = cf.compress(data, quantizer=quantizer, encoder=encoder, bound=bound)
    return frames


# ---------------------------------------------------------------- mutation


def split(frame: bytes) -> tuple[dict, list[bytearray]]:
    f = container.loads(frame)
    return f.header, [bytearray(f.sections[e["name"]]) for e in f.header["sections"]]


def join(header: dict, bodies: list[bytes]) -> bytes:
    """A frame from a header and section bodies, every length and CRC-32 recomputed as far as the
    (possibly mutated) section list allows."""
    entries = header.get("sections") if isinstance(header, dict) else None
    if isinstance(entries, list):
        for entry, body in zip(entries, bodies):
            if isinstance(entry, dict):
                entry["nbytes"] = len(body)
                entry["crc32"] = zlib.crc32(body)
    head = json.dumps(header, separators=(",", ":"), allow_nan=True).encode()
    return b"".join([struct.pack("<4sHHII", container.MAGIC, container.FORMAT_VERSION, 0, len(head),
                                 zlib.crc32(head)), head, *bodies])


INTERESTING = [0, 1, -1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 1023, 1024, 4095, 65535, 65536,
               2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**53, 2**62, 2**63 - 1, -2**31, -2**63]
STRINGS = ["", "int8", "uint8", "int16", "uint16", "int32", "uint64", "float16", "float32", "float64", "bfloat16",
           "<f4", ">f4", "<f8", "|i1", "<i2", ">i2", "<u4", "<i8", "O", "V8", "S4", "M8[s]", "c16", "?",
           "numpy", "torch", "cupy", "meta", "cuda", "cuda:0", "cpu", "mps", "code", "side", "zstd", "huffman",
           "nvcomp_lz4", "nvcomp_ans", "int8", "prune", "vq", "lplr", "then.codes", "codes", "scales", "mask",
           "outlier_index", "outlier_bits", "codebook", "x" * 300]
ODD = [None, True, False, [], {}, [1, 2], [0], [-1], [2**40, 2**40], float("nan"), float("inf"), float("-inf"),
       1e308, -0.0, 0.5, 1e-300, {"id": "int8"}, [[1]], "1"]


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, path + (i,))
    return out


def _get(node, path):
    for p in path:
        node = node[p]
    return node


def _new_value(rng: random.Random, old: Any, leaves_values: list) -> Any:
    choice = rng.random()
    if isinstance(old, bool) or old is None:
        return rng.choice(ODD + INTERESTING[:8])
    if isinstance(old, int):
        if choice < 0.5:
            return rng.choice([old + 1, old - 1, old * 2, old // 2, -old, old + 8, old * 1000, old ^ (1 << rng.randrange(64))])
        return rng.choice(INTERESTING + ODD)
    if isinstance(old, float):
        return rng.choice([old * 2, -old, old * 1e30, 0.0, float("nan"), float("inf"), 1e-320, 2**64, 3])
    if isinstance(old, str):
        return rng.choice(STRINGS) if choice < 0.8 else rng.choice(ODD + INTERESTING)
    if isinstance(old, list):
        if old and choice < 0.3:
            new = list(old)
            rng.shuffle(new)
            return new
        if choice < 0.5:
            return old + [rng.choice([1, 2, 0, 3])]
        if choice < 0.7:
            return old[:-1]
        return rng.choice(ODD + INTERESTING[:4])
    if isinstance(old, dict):
        if old and choice < 0.5:
            new = dict(old)
            del new[rng.choice(list(new))]
            return new
        return copy.deepcopy(rng.choice(ODD + [rng.choice(leaves_values)]))
    return rng.choice(ODD)


def mutate_header(rng: random.Random, header: dict, bodies: list[bytearray]) -> tuple[dict, list[bytearray]]:
    """Replace one JSON value anywhere in the header (or drop or add a key of a dict)."""
    paths = [p for p in _leaves(header) if p]
    path = rng.choice(paths)
    parent = _get(header, path[:-1])
    old = parent[path[-1]]
    if isinstance(parent, dict) and rng.random() < 0.1:
        del parent[path[-1]]
    elif isinstance(parent, dict) and rng.random() < 0.05:
        parent[rng.choice(STRINGS[:20])] = rng.choice(INTERESTING + ODD)
    else:
        parent[path[-1]] = _new_value(rng, old, [_get(header, p) for p in paths])
    return header, bodies


def _stream_header(body: bytes) -> tuple[str, list[int], int] | None:
    try:
        n = body[0]
        dt = bytes(body[1:1 + n]).decode("ascii")
        ndim = body[1 + n]
        shape = list(struct.unpack_from(f"<{ndim}Q", body, 2 + n))
    except Exception:
        return None
    return dt, shape, 2 + n + 8 * ndim


def mutate_stream_header(rng: random.Random, header: dict, bodies: list[bytearray]):
    """Change a code stream's dtype string or shape (the base class's header of the stream)."""
    codes = [i for i, e in enumerate(header["sections"]) if e["role"] == "code"]
    i = rng.choice(codes)
    parsed = _stream_header(bodies[i])
    if parsed is None:
        return header, bodies
    dt, shape, end = parsed
    r = rng.random()
    if r < 0.35:
        dt = rng.choice(["|i1", "|u1", "<i2", "<u2", "<i4", "<u4", ">i2", "<i8", "<f4", "|b1", "<f2", "O", "x"])
    elif r < 0.8 and shape:
        k = rng.randrange(len(shape))
        shape[k] = rng.choice([0, 1, shape[k] + 1, shape[k] - 1 if shape[k] else 2, shape[k] * 2, 2**32, 2**40, 2**63])
    elif r < 0.9:
        shape = shape[::-1] if len(shape) > 1 else shape + [1]
    else:
        shape = shape + [rng.choice([1, 2, 0])] if rng.random() < 0.5 else shape[:-1]
    raw = dt.encode()
    bodies[i] = bytearray(struct.pack(f"<B{len(raw)}sB{len(shape)}Q", len(raw), raw, len(shape), *shape)) + bodies[i][end:]
    return header, bodies


def mutate_payload(rng: random.Random, header: dict, bodies: list[bytearray]):
    """Write an interesting integer (1, 2, 4 or 8 bytes) at some offset of a section, or flip bytes;
    offsets favour the start of a stream, where its fields and tables are."""
    i = rng.randrange(len(bodies))
    body = bodies[i]
    if not body:
        return header, bodies
    start = 0
    if header["sections"][i]["role"] == "code":
        parsed = _stream_header(body)
        start = parsed[2] if parsed and parsed[2] < len(body) else 0
    span = len(body) - start
    pos = start + (min(int(rng.expovariate(1 / 24)), span - 1) if rng.random() < 0.7 else rng.randrange(span))
    width = rng.choice([1, 2, 4, 8])
    if rng.random() < 0.3:
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(start, len(body))] ^= 1 << rng.randrange(8)
        return header, bodies
    value = rng.choice(INTERESTING) % (1 << (8 * width))
    chunk = value.to_bytes(width, "little")[:len(body) - pos]
    body[pos:pos + len(chunk)] = chunk
    return header, bodies


def mutate_side(rng: random.Random, header: dict, bodies: list[bytearray]):
    """Edit a side array: an element set to an interesting value, or the entry's dtype/shape retyped
    (keeping or breaking the byte count)."""
    sides = [i for i, e in enumerate(header["sections"]) if e["role"] == "side"]
    if not sides:
        return mutate_payload(rng, header, bodies)
    i = rng.choice(sides)
    e = header["sections"][i]
    r = rng.random()
    if r < 0.5 and len(bodies[i]):
        arr = np.frombuffer(bytes(bodies[i]), dtype=e["dtype"]).copy()
        k = rng.randrange(arr.size)
        if arr.dtype.kind == "f":
            with np.errstate(over="ignore"):
                arr[k] = rng.choice([np.nan, np.inf, -np.inf, 0.0, 1e300, -1e300, 5e-324])
        else:
            info = np.iinfo(arr.dtype)
            value = rng.choice([info.max, info.min, 0, 1, int(info.max) // 2, k + 1000, 24 * 16, 24 * 16 - 1]) % (int(info.max) + 1) \
                if info.min == 0 else rng.choice([info.max, info.min, -1, 0, 24 * 16])
            arr[k] = value if info.min == 0 else np.int64(value).astype(arr.dtype)  # wraps 384 in int8 side codes
        bodies[i] = bytearray(arr.tobytes())
    elif r < 0.8:
        new = rng.choice(["<u4", "<i4", "<u8", "<i8", "<u2", "|u1", "<f4", "<f8", "<i2", ">u4", "|b1"])
        total = len(bodies[i])
        size = np.dtype(new).itemsize
        e["dtype"] = new
        e["shape"] = [total // size] if total % size == 0 or rng.random() < 0.5 else [total // size + 1]
    else:
        e["shape"] = rng.choice([[0], [1], list(reversed(e["shape"])), e["shape"] + [1], [2**31, 2**31]])
    return header, bodies


def mutate_sections(rng: random.Random, header: dict, bodies: list[bytearray]):
    """Swap two sections' bodies or names, drop one, or duplicate one under another name."""
    entries = header["sections"]
    r = rng.random()
    if len(entries) >= 2 and r < 0.4:
        a, b = rng.sample(range(len(entries)), 2)
        if rng.random() < 0.5:
            bodies[a], bodies[b] = bodies[b], bodies[a]
            for key in ("dtype", "shape"):
                if key in entries[a] or key in entries[b]:
                    va, vb = entries[a].get(key), entries[b].get(key)
                    if va is not None and vb is not None:
                        entries[a][key], entries[b][key] = vb, va
        else:
            entries[a]["name"], entries[b]["name"] = entries[b]["name"], entries[a]["name"]
    elif r < 0.7:
        k = rng.randrange(len(entries))
        del entries[k]
        del bodies[k]
    else:
        k = rng.randrange(len(entries))
        entries.append(dict(entries[k], name=entries[k]["name"] + rng.choice(["", "_2", ".x"])))
        bodies.append(bytearray(bodies[k]))
    return header, bodies


def mutate_grow(rng: random.Random, header: dict, bodies: list[bytearray]):
    """Claim ``k`` times more rows everywhere at once: the header's shape, every code stream's shape,
    and the value count of the entropy coders' streams, so that the claims agree with each other
    and only the data (or the byte budget) can refuse them."""
    k = rng.choice([2, 16, 1024, 1 << 20, 1 << 32])
    shape = header.get("shape")
    if not isinstance(shape, list) or not shape or type(shape[0]) is not int:  # an earlier edit retyped it
        return header, bodies
    header["shape"][0] *= k
    for i, e in enumerate(header["sections"]):
        parsed = _stream_header(bodies[i]) if e["role"] == "code" else None
        if not parsed or not parsed[1]:
            continue
        dt, shape, end = parsed
        count = int(np.prod(shape))
        shape[0] *= k
        raw = dt.encode()
        body = bytearray(struct.pack(f"<B{len(raw)}sB{len(shape)}Q", len(raw), raw, len(shape), *shape)) + bodies[i][end:]
        if len(body) >= end + 10 and body[end] == 1 and body[end + 1] in (1, 2, 3, 4) \
                and int.from_bytes(body[end + 2:end + 10], "little") == count:  # huffman/ans: version, mode, count
            body[end + 2:end + 10] = (count * k % (1 << 64)).to_bytes(8, "little")
        bodies[i] = body
    return header, bodies


OPERATORS = {
    "header": mutate_header,
    "stream_header": mutate_stream_header,
    "payload": mutate_payload,
    "side": mutate_side,
    "sections": mutate_sections,
    "grow": mutate_grow,
}
WEIGHTS = {"header": 4, "stream_header": 2, "payload": 3, "side": 2, "sections": 1, "grow": 1}


def mutants(frames: dict[str, bytes], n: int, seed: int = 0) -> list[tuple[str, str, bytes]]:
    """``n`` mutants as (frame name, operator(s), bytes); one to three edits each, CRCs recomputed."""
    rng = random.Random(seed)
    names = sorted(frames)
    parsed = {name: frames[name] for name in names}
    ops, weights = list(OPERATORS), [WEIGHTS[o] for o in OPERATORS]
    out = []
    for _ in range(n):
        name = rng.choice(names)
        header, bodies = split(parsed[name])
        applied = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            op = rng.choices(ops, weights)[0]
            try:
                header, bodies = OPERATORS[op](rng, header, bodies)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError, struct.error):
                continue  # an earlier edit removed what this one edits
            applied.append(op)
        out.append((name, "+".join(applied) or "none", join(header, bodies)))
    return out


# ---------------------------------------------------------------- guarded decoding


def _rss_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


CRASH = b"compframe-fuzz: crash"
HANG = b"compframe-fuzz: hang"
"""Cases a worker turns into a crash (SIGSEGV to itself) or a hang (sleeping): the watchdog's own test."""


def _worker(conn, max_bytes: int | None, measure_memory: bool, boundscheck: str | None) -> None:
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    if boundscheck:  # numba checks every index (and compiles into its own cache, separate from the normal one)
        os.environ["NUMBA_BOUNDSCHECK"] = "1"
        os.environ["NUMBA_CACHE_DIR"] = boundscheck
    import compframe as cf
    from compframe.decoding import UNEXPECTED

    if measure_memory:  # a frame of a tensor decodes to torch: its one-time import is not a decode's memory
        import torch  # noqa: F401
    conn.send("ready")
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        key, frame = item
        if frame == CRASH:
            os.kill(os.getpid(), signal.SIGSEGV)
        if frame == HANG:
            time.sleep(3600)
        peak = 0
        if measure_memory and _reset_peak():
            before = _rss_kib("VmRSS:")
        else:
            before = None
        try:
            cf.decompress(frame, **({} if max_bytes is None else {"max_bytes": max_bytes}))
            outcome, message = "ok", ""
        except cf.FrameError as e:
            outcome, message = "unchecked" if str(e).startswith(UNEXPECTED) else "frame_error", str(e)[:300]
        except BaseException as e:  # noqa: BLE001 - the point is to see anything else
            outcome, message = "other", f"{type(e).__name__}: {str(e)[:300]}"
        if before is not None:
            peak = max(0, _rss_kib("VmHWM:") - before) * 1024
        conn.send((key, outcome, message, peak))


@dataclass
class Report:
    """Counts of outcomes, the mutants that crashed, hung or raised something else, and the peak memory."""

    counts: Counter = field(default_factory=Counter)
    bad: list = field(default_factory=list)
    peak_bytes: int = 0
    peak_case: str = ""
    messages: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}
"""glibc settings of workers that measure memory: blocks of 64 KiB and more are mapped and unmapped
on their own, so the resident size follows the live arrays and its peak is the decode's."""


class _Slot:
    def __init__(self, ctx, max_bytes, measure_memory, boundscheck):
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, max_bytes, measure_memory, boundscheck), daemon=True)
        saved = {k: os.environ.get(k) for k in MALLOC_ENV}
        if measure_memory:
            os.environ.update(MALLOC_ENV)
        try:
            self.proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        child.close()
        self.job = None
        self.started = 0.0


def run(cases: list[tuple[str, str, bytes]], workers: int = 2, timeout: float = 20.0, max_bytes: int | None = None,
        measure_memory: bool = False, warmup: list[bytes] | None = None, boundscheck: str | None = None) -> Report:
    """Decode every case in ``workers`` guarded processes (see the module doc); ``warmup`` frames are
    decoded first by each worker (loading numba's compiled kernels) outside the timeout.

    ``boundscheck``: a numba cache folder; the workers then compile the kernels with numba's index
    checks (``NUMBA_BOUNDSCHECK=1``), so that an access out of bounds raises instead of reading or
    writing the wrong memory silently, and shows up as ``unchecked`` (a ``FrameError`` from the
    decoder's safety net) rather than only when it happens to crash."""
    ctx = mp.get_context("spawn")
    report = Report()
    start = time.perf_counter()

    def spawn():
        slot = _Slot(ctx, max_bytes, measure_memory, boundscheck)
        slot.parent.recv()  # imports done: the timeout counts from here
        for k, frame in enumerate(warmup or []):
            slot.parent.send((-1 - k, frame))
            slot.parent.recv()
        return slot

    slots = [spawn() for _ in range(max(1, workers))]
    queue = list(enumerate(cases))[::-1]

    def feed(slot):
        if queue:
            slot.job = queue.pop()
            slot.started = time.perf_counter()
            slot.parent.send((slot.job[0], slot.job[1][2]))
        else:
            slot.job = None

    def record(slot, outcome, message):
        _, (name, ops, frame) = slot.job
        report.counts[outcome] += 1
        if outcome not in ("ok", "frame_error"):  # unchecked, other, crash, hang
            report.bad.append({"frame": name, "ops": ops, "outcome": outcome, "message": message, "bytes": frame})

    for slot in slots:
        feed(slot)
    while any(s.job is not None for s in slots):
        busy = [s for s in slots if s.job is not None]
        ready = wait([s.parent for s in busy] + [s.proc.sentinel for s in busy], timeout=0.5)
        now = time.perf_counter()
        for i, slot in enumerate(slots):
            if slot.job is None:
                continue
            if slot.parent in ready:
                try:
                    key, outcome, message, peak = slot.parent.recv()
                except (EOFError, ConnectionResetError, OSError):
                    key = None
                if key is not None:
                    record(slot, outcome, message)
                    report.messages[(outcome, message.split(":")[0][:60])] += 1
                    if peak > report.peak_bytes:
                        report.peak_bytes, report.peak_case = peak, f"{slot.job[1][0]} ({slot.job[1][1]})"
                    feed(slot)
                    continue
            if slot.proc.sentinel in ready or not slot.proc.is_alive():
                slot.proc.join()
                record(slot, "crash", f"worker died with exit code {slot.proc.exitcode}")
            elif now - slot.started > timeout:
                slot.proc.kill()
                slot.proc.join()
                record(slot, "hang", f"no result after {timeout} s")
            else:
                continue
            job_left = slot.job
            slots[i] = spawn()
            del job_left
            feed(slots[i])
    for slot in slots:
        try:
            slot.parent.send(None)
        except OSError:
            pass
        slot.proc.join(timeout=5)
        if slot.proc.is_alive():
            slot.proc.kill()
    report.seconds = time.perf_counter() - start
    return report
