"""Throughput of the click-log sources: the Criteo reader (plain and gzip) and the synthetic generator.

    python bench/bench_criteo.py [--lines 1000000] [--batch 128]

Writes a Criteo-format file of random lines into a temporary folder (plain and gzip), reads it
through ``data=criteo`` in batches (parse and preprocessing included), and prints lines/s; then
the samples/s of ``data=criteo_synthetic``. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import numpy as np

from compframe import registry


def criteo_file(path: Path, n: int, seed: int = 0) -> None:
    """``n`` random lines: counts with 20% missing, 8-digit hex categories with 15% missing."""
    rng = np.random.default_rng(seed)
    chunk = 100_000
    with open(path, "wb") as f:
        for lo in range(0, n, chunk):
            m = min(chunk, n - lo)
            label = rng.integers(0, 2, m)
            dense = rng.integers(0, 1000, (m, 13)).astype(str)
            dense[rng.random((m, 13)) < 0.2] = ""
            cats = np.char.mod("%08x", rng.integers(0, 2 ** 32, (m, 26)))
            cats[rng.random((m, 26)) < 0.15] = ""
            rows = np.concatenate([label.astype(str)[:, None], dense, cats], axis=1)
            f.write(("\n".join("\t".join(r) for r in rows) + "\n").encode())


def rate(source, n: int, batch: int) -> float:
    start, seen = time.perf_counter(), 0
    for b in source.batches("train", batch):
        seen += len(b)
    assert seen == n, (seen, n)
    return seen / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "train.txt"
        criteo_file(plain, args.lines)
        packed = Path(tmp) / "train.txt.gz"
        packed.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=6))
        mib = plain.stat().st_size / 2 ** 20
        for path in (plain, packed):
            src = registry.create("data", "criteo", path=str(path), test_fraction=1e-9)
            src.validate()
            n = sum(len(b) for b in src.batches("train", 1 << 16))
            print(f"criteo {path.name}: {n} lines ({mib:.0f} MiB as text), "
                  f"{rate(src, n, args.batch) / 1e3:.0f} k lines/s in batches of {args.batch}")
    synth = registry.create("data", "criteo_synthetic", train_samples=args.lines)
    print(f"criteo_synthetic: {rate(synth, args.lines, args.batch) / 1e3:.0f} k samples/s in batches of {args.batch}")


if __name__ == "__main__":
    main()
