"""Write the golden frames of tests/test_container.py (run once per format version, then commit).

    python tests/data/make_golden.py

Each golden frame comes with the decoded array (.npy) and the plugin configs (.json); the test
checks that today's compframe still decodes the frame to exactly that array.
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


if __name__ == "__main__":
    main()
