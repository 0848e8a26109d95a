"""The CUDA kernels of huffman, ans and gpulz, run in numba's CUDA simulator, write the CPU's bytes.

Modes 6 and 7 (``ans``, codes in rows with a table per class of columns) run the CUDA lane kernels with
their column offsets. The simulator must be switched on before ``numba.cuda`` is first imported,
so the check runs in a subprocess with ``NUMBA_ENABLE_CUDASIM=1``. Inputs are small: the
simulator runs each GPU thread as Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import struct
import numpy as np
from compframe import registry
from compframe.base import StreamError
from compframe.kernels.targets import cuda_status, simulated

assert simulated() and cuda_status() is None, cuda_status()
rng = np.random.default_rng(0)
varied = np.stack([rng.geometric(0.6, 200), rng.integers(-100, 100, 200), 7 * rng.geometric(0.3, 200)], 1)
inputs = {
    "int8-columns": varied.astype(np.int8),
    "uint16": (rng.geometric(0.05, 301) * 97).astype(np.uint16),
    "int16-one": np.array([-5], np.int16),
    "uint8-constant": np.full(70, 3, np.uint8),
    "int8-empty": np.zeros(0, np.int8),
    "int8-drift": np.rint(rng.laplace(0, 1, 2100) * np.repeat([1.0, 40.0], 1050)).clip(-127, 127).astype(np.int8),
    "int8-classes": np.rint(rng.laplace(0, 1, (100, 8)) * np.tile([1.0, 30.0], 4)).clip(-127, 127).astype(np.int8),
}
drifting = np.rint(rng.laplace(0, 1, (600, 8)) * np.tile([0.5, 6.0], 4) * np.repeat([1.0, 4.0], 300)[:, None])
blocks_of_classes = drifting.clip(-127, 127).astype(np.int8)  # mode 7 under auto with block=4096
cases = [
    ("huffman", {"chunk": 64}),
    ("huffman", {"chunk": 64, "context": "column", "max_length": 8}),
    ("ans", {"chunk": 64}),
    ("ans", {"chunk": 64, "context": "column", "precision": 10}),
    ("huffman", {"chunk": 64, "context": "classes"}),
    ("ans", {"chunk": 64, "context": "classes"}),
    ("huffman", {"chunk": 64, "block": 1024}),
    ("ans", {"chunk": 64, "block": 1024}),
    ("ans", {"chunk": 100, "lanes": 16}),
    ("ans", {"chunk": 64, "lanes": 64, "block": 1024}),
    ("ans", {"chunk": 100, "lanes": 16, "context": "classes"}),
    ("ans", {"chunk": 100, "lanes": 32, "context": "column"}),
    ("gpulz", {"chunk": 64}),
    ("gpulz", {"chunk": 64, "symbol_bytes": 1, "window": 8}),
    ("gpulz", {"chunk": 64, "symbol_bytes": 4}),
]
checked = 0
multi_table = 0
in_blocks = 0
by_class = 0
in_rows = 0
for pid, params in cases:
    cpu = registry.create("encoder", pid, **params)
    gpu = registry.create("encoder", pid, device="cuda", **params)
    for name, codes in inputs.items():
        a, b = cpu.encode(codes), gpu.encode(codes)
        assert a == b, (pid, params, name)
        assert np.array_equal(gpu.decode(a), codes) and np.array_equal(cpu.decode(b), codes), (pid, name)
        if pid != "gpulz" and name == "int8-columns" and params.get("context") == "column":
            multi_table += struct.unpack_from("<iIIIBII", a, 1 + 3 + 1 + 16 + 10)[3] > 1
        if pid != "gpulz" and name == "int8-drift" and "block" in params:
            in_blocks += a[1 + 3 + 1 + 8 + 1] == 4  # mode 4: one table per block of chunks
        if name == "int8-classes" and params.get("context") == "classes":
            by_class += a[1 + 3 + 1 + 16 + 1] == 5  # mode 5: a table per class of columns
        if name in ("int8-classes", "int8-columns") and params.get("lanes") in (16, 32):
            in_rows += a[1 + 3 + 1 + 16 + 1] == 6  # mode 6: in rows, a table per class of columns
        checked += 1
    stream = bytearray(cpu.encode(inputs["uint16"]))
    stream[-3] ^= 0x55
    try:
        gpu.decode(bytes(stream))
    except StreamError:
        pass
    else:
        raise AssertionError(f"{pid}: damaged stream decoded on the simulated GPU")
cpu = registry.create("encoder", "ans", chunk=256, lanes=16, block=4096)
gpu = registry.create("encoder", "ans", chunk=256, lanes=16, block=4096, device="cuda")
a, b = cpu.encode(blocks_of_classes), gpu.encode(blocks_of_classes)
assert a == b and a[1 + 3 + 1 + 16 + 1] == 7
assert np.array_equal(gpu.decode(a), blocks_of_classes)
print("SIMULATOR-OK", checked, multi_table, in_blocks, by_class, in_rows)
"""


def test_cuda_kernels_match_cpu_in_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "SIMULATOR-OK 105 3 3 2 4" in done.stdout, done.stdout + done.stderr[-2000:]
