"""Write the golden frames of tests/test_container.py (run once per format version, then commit).

    python tests/data/make_golden.py

Each golden frame comes with the decoded array (.npy) and the plugin configs (.json); the test
checks that today's compframe still decodes the frame to exactly that array. The golden streams
(``golden_stream_*``) do the same for the formats of compframe's own encoders, one per mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import compframe as cf
from compframe import container

HERE = Path(__file__).parent


def main() -> None:
    rng = np.random.default_rng(2024)
    x = rng.standard_normal((32, 16)).astype(np.float32)
    x[3, 3], x[4, 4] = np.nan, np.inf
    cases = {
        "int8_lz4": (x, "int8", "lz4", "rel:1e-2"),
        "int16_zstd": (x.astype(np.float64), "int16", "zstd", "abs:1e-3"),
        "int8_none": (x[:5], "int8", "none", "rel:1e-3"),
    }
    for name, (data, q, e, b) in cases.items():
        frame = cf.compress(data, quantizer=q, encoder=e, bound=b)
        (HERE / f"golden_{name}.cfrm").write_bytes(frame)
        np.save(HERE / f"golden_{name}.npy", cf.decompress(frame))
        header = container.loads(frame).header
        (HERE / f"golden_{name}.json").write_text(json.dumps({"quantizer": header["quantizer"],
                                                              "encoder": header["encoder"]}, indent=1))
    write_streams(np.random.default_rng(2025))


def write_streams(rng) -> None:
    """Encoder streams of compframe's own formats (huffman, ans, gpulz) in each of their modes:
    ``golden_stream_<name>.bin`` with the codes it holds (``.npy``) and the encoder config (``.json``)."""
    drift = np.rint(rng.laplace(0, 1, 2100) * np.repeat([1.0, 30.0], 1050)).clip(-127, 127).astype(np.int8)
    pool = rng.integers(-200, 200, (5, 8)).astype(np.int16)
    cases = {
        "huffman_one_table": ("huffman", {"chunk": 64}, np.rint(rng.laplace(0, 4, 700)).astype(np.int8)),
        "huffman_columns": ("huffman", {"chunk": 64, "context": "column"},
                            (rng.laplace(0, 1, (400, 3)) * [0.3, 20, 300] + [0, 500, -900]).round().astype(np.int16)),
        "huffman_blocks": ("huffman", {"chunk": 64, "block": 1024}, drift),
        "huffman_dedup": ("huffman", {"chunk": 64}, pool[rng.integers(0, 5, 40)]),
        "ans_one_table": ("ans", {"chunk": 64}, rng.geometric(0.1, 700).astype(np.uint16)),
        "ans_columns": ("ans", {"chunk": 64, "context": "column"},
                        (rng.laplace(0, 1, (400, 3)) * [0.3, 3, 10] + [0, 60, -60]).round().astype(np.int8)),
        "ans_blocks": ("ans", {"chunk": 64, "block": 1024}, drift),
        "ans_dedup": ("ans", {"chunk": 64}, pool[rng.integers(0, 5, 40)]),
        "ans_constant": ("ans", {}, np.full(33, 7, np.uint8)),
        "gpulz_s2": ("gpulz", {"chunk": 64}, np.repeat(rng.integers(-9, 9, 100), 3).astype(np.int16)),
        "gpulz_s1": ("gpulz", {"chunk": 64, "symbol_bytes": 1, "window": 8}, rng.integers(0, 4, 500).astype(np.uint8)),
        "gpulz_s4": ("gpulz", {"chunk": 64, "symbol_bytes": 4}, np.repeat(rng.integers(0, 3, 90), 4).astype(np.uint16)),
    }
    for name, (pid, params, codes) in cases.items():
        stream = cf.create("encoder", pid, **params).encode(codes)
        (HERE / f"golden_stream_{name}.bin").write_bytes(stream)
        np.save(HERE / f"golden_stream_{name}.npy", codes)
        (HERE / f"golden_stream_{name}.json").write_text(json.dumps({"encoder": pid, "params": params}, indent=1))


if __name__ == "__main__":
    main()
