"""Compiled kernels (numba) shared by the plugins.

The encoders' kernels follow "one source, two targets": each codec keeps its per-chunk work in
plain Python functions (``huffman.encode_chunk``, ``ans.decode_chunks``, ``lz.encode_chunk``, ...)
that use only scalars and the arrays passed in. ``targets.cpu`` compiles such a function with
``numba.njit`` (called from a ``prange`` driver, one iteration per chunk) and
``targets.cuda_device`` with ``numba.cuda.jit(device=True)`` (called from a CUDA kernel, one
thread per chunk), so the CPU and GPU paths run the same code and write the same bytes.
"""
