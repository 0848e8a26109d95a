"""The self-describing compressed frame.

Layout (little-endian)::

    magic      4 bytes  b"CFRM"
    version    u16      FORMAT_VERSION
    reserved   u16      0
    header_len u32      length of the JSON header
    header_crc u32      CRC-32 of the JSON header
    header     JSON     {quantizer, encoder (configs with ids), shape, dtype, bound, meta,
                         sections: [{name, role, nbytes, crc32, [dtype, shape]}]}
    sections   bytes    concatenated in header order; role "code" = an encoder stream (which
                        carries its own dtype and shape), role "side" = a raw array (dtype and
                        shape in its header entry)

Every section has its own CRC-32, so damage is found and named before any decoder runs. The
frame holds everything needed to decompress it: ``decompress(frame)`` needs nothing but the bytes.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import limits
from .errors import FrameError

MAGIC = b"CFRM"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sHHII")
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=True)
"""The header's encoder (what ``json.dumps`` with these options builds on every call)."""


@dataclass
class Frame:
    """A parsed frame: the header dict and each section's bytes (zero-copy views)."""

    header: dict[str, Any]
    sections: dict[str, memoryview]

    def side_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for entry in self.header["sections"]:
            if entry["role"] == "side":
                out[entry["name"]] = np.frombuffer(self.sections[entry["name"]], dtype=entry["dtype"]).reshape(entry["shape"])
        return out

    def code_streams(self) -> dict[str, memoryview]:
        return {e["name"]: self.sections[e["name"]] for e in self.header["sections"] if e["role"] == "code"}


def dumps(header: dict[str, Any], codes: dict[str, bytes | tuple[bytes, ...]],
          side: dict[str, np.ndarray]) -> bytes:
    """Build a frame from a header, encoded code streams and raw side arrays (one copy of each).

    A code stream may be given as a tuple of consecutive parts (``Encoder.encode_parts``), which
    are written one after the other without joining them first.
    """
    entries, payloads = [], []
    for name, stream in codes.items():
        parts = [memoryview(p).cast("B") for p in (stream if isinstance(stream, (tuple, list)) else (stream,))]
        crc = 0
        for p in parts:
            crc = zlib.crc32(p, crc)
        entries.append({"name": name, "role": "code", "nbytes": sum(p.nbytes for p in parts), "crc32": crc})
        payloads.extend(parts)
    for name, array in side.items():
        array = np.ascontiguousarray(array)
        view = memoryview(array.reshape(-1)).cast("B") if array.size else memoryview(b"")
        entries.append({"name": name, "role": "side", "nbytes": view.nbytes, "crc32": zlib.crc32(view),
                        "dtype": array.dtype.str, "shape": list(array.shape)})
        payloads.append(view)
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"section names must be unique, got {names}")
    head = _JSON.encode({**header, "sections": entries}).encode()
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(head), zlib.crc32(head))
    return b"".join([prefix, head, *payloads])


SIDE_DTYPES = ("|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8")
"""The dtypes a side section may have (little-endian numbers); anything else is refused."""
ROLES = ("code", "side")


def _entries(header: Any) -> list[dict[str, Any]]:
    """The header's section entries, each checked for its fields' types and values."""
    limits.mapping(header, "the header")
    entries = header.get("sections")
    if not isinstance(entries, list):
        raise FrameError("frame header: 'sections' must be a list")
    names = set()
    for k, e in enumerate(entries):
        where = f"section {k}"
        limits.mapping(e, where)
        name = e.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise FrameError(f"frame header: {where} has a missing, empty or repeated name {name!r:.80}")
        names.add(name)
        where = f"section '{name}'"
        if e.get("role") not in ROLES:
            raise FrameError(f"frame header: {where} has role {e.get('role')!r:.80}; allowed: {', '.join(ROLES)}")
        limits.integer(e.get("nbytes"), f"{where} nbytes", 0)
        limits.integer(e.get("crc32"), f"{where} crc32", 0, 0xFFFFFFFF)
        if e["role"] == "side":
            itemsize = limits.dtype(e.get("dtype"), f"{where} dtype", SIDE_DTYPES).itemsize
            shape = limits.shape(e.get("shape"), f"{where} shape")
            if math.prod(shape) * itemsize != e["nbytes"]:
                raise FrameError(f"frame section '{name}' holds {e['nbytes']} bytes, not {list(shape)} of {e['dtype']}")
    return entries


def loads(data: bytes | bytearray | memoryview) -> Frame:
    """Parse and verify a frame; raise ``FrameError`` naming what is wrong.

    Beyond the checksums, the header's structure is checked: a JSON object whose section entries
    have unique names, a known role, integer sizes and CRCs, and (side sections) a little-endian
    number dtype and a shape that matches the byte count.
    """
    try:
        view = memoryview(data).cast("B")
    except TypeError as e:
        raise FrameError(f"a frame is bytes-like, got {type(data).__name__} ({e})") from None
    if view.nbytes < _PREFIX.size:
        raise FrameError(f"frame truncated: {view.nbytes} bytes, shorter than the {_PREFIX.size}-byte prefix")
    magic, version, reserved, head_len, head_crc = _PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise FrameError(f"not a compframe frame: magic {bytes(magic)!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise FrameError(f"frame format version {version} is not supported (this compframe reads {FORMAT_VERSION})")
    if reserved != 0:
        raise FrameError(f"frame prefix is damaged: reserved field is {reserved}, must be 0")
    end = _PREFIX.size + head_len
    if view.nbytes < end:
        raise FrameError(f"frame truncated in its header: {view.nbytes} bytes, header ends at {end}")
    head = view[_PREFIX.size:end]
    if zlib.crc32(head) != head_crc:
        raise FrameError("frame header is damaged (CRC-32 mismatch)")
    try:
        header = json.loads(bytes(head))
    except (ValueError, RecursionError) as e:  # RecursionError: JSON nested too deeply
        raise FrameError(f"frame header is not valid JSON: {type(e).__name__}: {str(e)[:200]}") from None
    entries = _entries(header)
    expected = end + sum(e["nbytes"] for e in entries)
    if view.nbytes < expected:
        raise FrameError(f"frame truncated: {view.nbytes} bytes, the header describes {expected}")
    if view.nbytes > expected:
        raise FrameError(f"frame has {view.nbytes - expected} trailing bytes after its {len(entries)} sections")
    sections, offset = {}, end
    for e in entries:
        body = view[offset:offset + e["nbytes"]]
        if zlib.crc32(body) != e["crc32"]:
            raise FrameError(f"frame section '{e['name']}' is damaged (CRC-32 mismatch)")
        sections[e["name"]] = body
        offset += e["nbytes"]
    return Frame(header, sections)
