"""``chain``: lossless stages one after another, as SZ3 codes its quantization codes (Huffman, then zstd).

``encoder=chain`` with ``stages: [{id: huffman}, {id: zstd, level: 3}]`` (the default): the first
stage encodes the code array (int8/int16/... as it takes them, with the array's shape, so a
``context=column`` Huffman sees the columns); every later stage encodes the previous stage's bytes
as uint8 codes. Each stage is any CPU encoder of the registry that takes such codes, built from its
config through the registry. An order-0 coder (``huffman``, ``ans``) cannot code a run of zeros in
less than 1 bit per code; zstd over its stream finds the repeated bit patterns the runs leave, which
is why SZ3 (Liang et al., "SZ3: A Modular Framework for Composing Prediction-Based Error-Bounded
Lossy Compressors", IEEE TBD 2022) puts a dictionary coder after its Huffman coder.

Stream (after the base class's dtype/shape header, integers little-endian)::

    u8  stages S             (must equal the stage count of the header's config)
    u64 sizes[S - 1]         bytes that stages 1..S-1 wrote (the input of the next stage)
    payload                  what stage S wrote for stage S-1's bytes (stage 1's for the codes if S = 1)

Each stage's payload is its own format without the dtype/shape header (the chain knows both).
Damage is caught by the stages' own checks (huffman's and ans's CRC-32, zstd's frame checksum,
lz4's CRC-32; ``none`` cannot tell, as on its own).

Limits: an intermediate buffer may hold at most ``GROWTH`` x the codes' bytes + ``SLACK`` bytes;
the encoder refuses to write a larger one (no stage of compframe expands its input that much) and
the decoder refuses a stream that states one, before allocating it. So decoding allocates at most
``(S - 1) x (GROWTH x codes' bytes + SLACK)`` beyond the codes and the stages' own tables, each
buffer charged to the decode's byte budget (``compframe.limits``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

import lz4
import numpy as np
import zstandard

from ... import limits
from ...base import Encoder, StreamError
from ...errors import ConfigError, RegistryError
from ...registry import plugin_class, register, resolve
from .general import cpu_only

MAX_STAGES = 4
GROWTH = 2
SLACK = 1 << 20
_U8 = np.dtype(np.uint8)


def _default_stages() -> list[dict[str, Any]]:
    return [{"id": "huffman"}, {"id": "zstd", "level": 3}]


@register("encoder", "chain")
class Chain(Encoder):
    """Up to 4 (``MAX_STAGES``) encoders in a row (``stages``: a list of encoder configs ``{id, <params>}``);
    the first takes the codes, each later one the bytes of the one before (as uint8 codes).

    Takes the code widths the first stage takes; runs on the CPU. A frame's header keeps each
    stage's format config (``Encoder.format_config``); the stages' other options (levels, chunk
    sizes, threads) are kept under ``encoder_options`` for the record only, without ``device``
    (always ``cpu`` in a chain: it would say nothing).
    """

    format_params = ("stages",)
    symbol_widths: ClassVar[tuple[int, ...]] = (1, 2, 4)  # replaced per instance by the first stage's

    @dataclass
    class Config:
        stages: list[dict[str, Any]] = field(default_factory=_default_stages)
        device: str = "cpu"

    def check(self):
        cpu_only(self, "its stages run on the host, one after another")
        stages = self.config.stages
        if not 1 <= len(stages) <= MAX_STAGES:
            self.fail("stages", f"holds {len(stages)} encoders; allowed 1..{MAX_STAGES}")
        self.stages = [self._stage(i, spec) for i, spec in enumerate(stages)]
        self.symbol_widths = self.stages[0].symbol_widths

    def _stage(self, i: int, spec: Any) -> Encoder:
        """Stage ``i`` built through the registry; a stage after the first must take uint8 codes."""
        name = f"stages[{i}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            self.fail(name, f"must be an encoder config {{id: <encoder>, <params>}}, got {spec!r:.80}")
        if spec["id"] == self.plugin_id:
            self.fail(name, "cannot be 'chain' itself (list the stages in one chain)")
        try:
            cls = plugin_class("encoder", spec["id"])
            stage = resolve("encoder", spec)
        except (RegistryError, ConfigError) as e:
            self.fail(name, f"cannot be built: {e}")
        if "cpu" not in cls.devices or getattr(stage.config, "device", "cpu") != "cpu":
            self.fail(name, f"encoder '{cls.plugin_id}' must run on the CPU inside a chain")
        if i and 1 not in stage.symbol_widths:
            self.fail(name, f"encoder '{cls.plugin_id}' cannot take the previous stage's bytes (uint8 codes)")
        return stage

    def split_config(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The stages' format configs (what decoding needs) and, for the record, their options but ``device``."""
        fmt, opts = zip(*(s.split_config() for s in self.stages))
        return ({"id": self.plugin_id, "stages": list(fmt)},
                {"stage_options": [{k: v for k, v in o.items() if k != "device"} for o in opts]})

    @classmethod
    def for_decoding(cls, params: dict[str, Any], device: str = "cpu") -> Chain:
        """A chain built from a header's stage configs, each cut to its encoder's format parameters
        (a header never chooses levels, threads or devices)."""
        stages = params.get("stages")
        if not isinstance(stages, list):
            raise ConfigError("encoder", cls.plugin_id, "stages",
                              f"must be a list of encoder configs, got {stages!r:.80}")
        kept = []
        for i, spec in enumerate(stages):
            if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
                raise ConfigError("encoder", cls.plugin_id, f"stages[{i}]",
                                  f"must be an encoder config, got {spec!r:.80}")
            stage_cls = plugin_class("encoder", spec["id"])
            kept.append({"id": spec["id"], **{k: spec[k] for k in stage_cls.format_params if k in spec}})
        return cls(stages=kept)

    def _encode(self, flat: np.ndarray, shape: tuple[int, ...]) -> list[bytes]:
        cap = GROWTH * flat.nbytes + SLACK
        sizes = []
        parts = _parts(self.stages[0]._encode(flat, shape))
        for stage in self.stages[1:]:
            codes = _joined(parts)
            if codes.size > cap:
                raise ValueError(f"chain: stage '{self.stages[len(sizes)].plugin_id}' wrote {codes.size} bytes, more "
                                 f"than the chain allows ({GROWTH} x {flat.nbytes} code bytes + {SLACK})")
            sizes.append(codes.size)
            parts = _parts(stage._encode(codes, codes.shape))
        return [struct.pack(f"<B{len(sizes)}Q", len(self.stages), *sizes), *parts]

    def _decode(self, payload: memoryview, dtype: np.dtype, count: int) -> np.ndarray:
        n = len(self.stages)
        head = struct.Struct(f"<B{n - 1}Q")
        if len(payload) < head.size:
            raise StreamError(f"chain stream: truncated in its header ({len(payload)} bytes)")
        stated, *sizes = head.unpack_from(payload, 0)
        if stated != n:
            raise StreamError(f"chain stream: written by {stated} stages, the config has {n}")
        cap = GROWTH * count * dtype.itemsize + SLACK
        for k, size in enumerate(sizes):
            if size > cap:
                raise StreamError(f"chain stream: stage {k + 1} states {size} bytes, more than the chain allows "
                                  f"for {count} codes of {dtype} ({GROWTH} x their bytes + {SLACK})")
        data = payload[head.size:]
        for k in range(n - 1, 0, -1):
            limits.charge(sizes[k - 1], f"chain stage {k + 1}'s input")
            data = memoryview(self._stage_decode(k, data, _U8, sizes[k - 1])).cast("B")
        return self._stage_decode(0, data, dtype, count)

    def _stage_decode(self, k: int, data: memoryview, dtype: np.dtype, count: int) -> np.ndarray:
        out = self.stages[k]._decode(data, dtype, count)
        if out.dtype != dtype or out.size != count:
            raise StreamError(f"chain stream: stage {k + 1} ('{self.stages[k].plugin_id}') decoded {out.size} "
                              f"values of {out.dtype}, expected {count} of {dtype}")
        return np.ascontiguousarray(out)


def stage_library(stage_id: str) -> str | None:
    """The version of the library whose bytes a stage writes (``zstd``: libzstd, ``lz4``: liblz4), None
    for compframe's own formats: a chain's last-stage bytes are pinned only against the same version."""
    if stage_id == "zstd":
        return ".".join(map(str, zstandard.ZSTD_VERSION))
    return lz4.library_version_string() if stage_id == "lz4" else None


def _parts(payload) -> list:
    """An ``Encoder._encode`` result (one bytes-like payload or a list of parts) as a list of parts."""
    return list(payload) if isinstance(payload, (list, tuple)) else [payload]


def _joined(parts: list) -> np.ndarray:
    """The parts' bytes in one writable uint8 array (the next stage's codes)."""
    views = [memoryview(p).cast("B") if memoryview(p).nbytes else memoryview(b"") for p in parts]
    out = np.empty(sum(v.nbytes for v in views), _U8)
    pos = 0
    for v in views:
        out[pos:pos + v.nbytes] = v
        pos += v.nbytes
    return out
