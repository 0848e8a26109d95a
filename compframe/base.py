"""The contracts between the parts of a run: error bounds, fields, and one base class per plugin kind.

Data flows one way: a data source yields ``Field``s; a schedule gives each field an ``ErrorBound``;
a quantizer turns the field into integer codes plus side data (``Quantized``); an encoder turns each
code array into bytes and back, bit-exact. The pipeline (``compframe.pipeline``) joins them.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from . import limits
from .errors import DataError, FrameError, StreamError
from .plugin import Plugin

BOUND_MODES = ("abs", "rel")


@dataclass(frozen=True)
class ErrorBound:
    """A pointwise error bound: ``abs`` (in the data's units) or ``rel`` (times the value range, max - min).

    ``ErrorBound("rel", 1e-2)`` is the same as ``ErrorBound.parse("rel:1e-2")``.
    """

    mode: str
    value: float

    def __post_init__(self):
        if self.mode not in BOUND_MODES:
            raise ValueError(f"error bound mode '{self.mode}' is unknown; allowed: {', '.join(BOUND_MODES)}")
        value = float(self.value)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"error bound value must be finite and > 0, got {self.value!r}")
        object.__setattr__(self, "value", value)

    @classmethod
    def parse(cls, spec: str | ErrorBound) -> ErrorBound:
        """Parse ``"rel:1e-2"`` or ``"abs:0.5"``."""
        if isinstance(spec, ErrorBound):
            return spec
        mode, sep, value = str(spec).partition(":")
        if not sep:
            raise ValueError(f"error bound '{spec}' must look like 'rel:1e-2' or 'abs:0.5'")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"error bound '{spec}': '{value}' is not a number") from None
        return cls(mode.strip(), number)

    def absolute(self, value_range: float) -> float:
        """The bound in the data's units: ``value`` (abs) or ``value * value_range`` (rel)."""
        return self.value if self.mode == "abs" else self.value * float(value_range)

    def scaled(self, factor: float) -> ErrorBound:
        return ErrorBound(self.mode, self.value * factor)

    def __str__(self) -> str:
        """``mode:value``, which ``parse`` reads back to the same bound (``:g`` unless that rounds)."""
        short = f"{self.value:g}"
        return f"{self.mode}:{short if float(short) == self.value else repr(self.value)}"


@dataclass
class Field:
    """One array to compress, with its coordinates in the experiment (any may be None)."""

    name: str
    data: np.ndarray
    table: int | None = None
    iteration: int | None = None
    layer: str | None = None

    def coords(self) -> dict[str, Any]:
        return {"table": self.table, "iteration": self.iteration, "layer": self.layer}


@dataclass
class Quantized:
    """The output of a quantizer: integer code arrays, side arrays and JSON-able scalars.

    ``meta`` carries the quantizer's promise: ``abs_bound`` (every finite element is within it after
    dequantization) for error-bounded quantizers, ``bits_per_value`` for fixed-budget ones.
    """

    codes: dict[str, np.ndarray]
    side: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    bound: ErrorBound | None = None
    """The frame header's bound, set when a frame is decoded (and by ``quantize`` of the quantizers that
    check it: ``lorenzo``, ``interp``; None otherwise): a quantizer whose ``meta`` derives from it
    (``abs_bound``) may check the two against each other."""

    @property
    def side_nbytes(self) -> int:
        return sum(a.nbytes for a in self.side.values())

    @property
    def codes_nbytes(self) -> int:
        return sum(a.nbytes for a in self.codes.values())


class Quantizer(Plugin):
    """The lossy step: ``quantize(x, bound) -> Quantized`` and ``dequantize(q) -> x̂``.

    ``guarantee`` is ``"error_bound"`` (``max|x - x̂| <= meta['abs_bound']`` on every finite element,
    non-finite elements bit-identical) or ``"bit_budget"`` (``meta['bits_per_value']``).
    """

    guarantee: ClassVar[str] = "error_bound"
    float_dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")
    takes_value_range: ClassVar[bool] = False
    """Whether ``quantize`` accepts ``value_range=(min, max)``, the caller's expected finite range."""
    options_params: ClassVar[tuple[str, ...]] = ()
    """Parameters that only steer how ``quantize`` works (a frame's meta records what decoding needs):
    left out of a frame's header (``format_config``), so they cost no header bytes and a frame's
    bytes do not depend on them; decoding rebuilds the quantizer with their defaults."""

    def format_config(self) -> dict[str, Any]:
        """The config a frame's header holds: ``get_config()`` without ``options_params``."""
        return {k: v for k, v in self.get_config().items() if k not in self.options_params}

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """``x`` as a C-contiguous array in native byte order, of its own shape (0-d stays 0-d)."""
        x = np.asarray(x)
        if x.dtype.name not in self.float_dtypes:
            raise TypeError(
                f"quantizer '{self.plugin_id}' takes {', '.join(self.float_dtypes)} arrays, got {x.dtype}"
            )
        if not x.dtype.isnative:  # numba kernels take native byte order only: a big-endian '>f4' is converted
            x = x.astype(x.dtype.newbyteorder("="))
        return np.ascontiguousarray(x).reshape(x.shape)

    def code_layout(self, q: Quantized) -> dict[str, tuple[np.dtype, tuple[int, ...]]] | None:
        """The code arrays a frame of this quantizer must hold, ``name -> (dtype, shape)``, derived from
        ``q.shape``, ``q.dtype``, ``q.meta`` and ``q.side`` (``q.codes`` is still empty); raises
        ``FrameError`` for header values and side arrays that do not fit together.

        The decoder compares every code stream's own dtype and shape with this before decoding it,
        so no stream can make decoding allocate more than the header's shape implies. None (the
        default, for quantizers of other packages) means unchecked.
        """
        return None

    def quantize(self, x: np.ndarray, bound: ErrorBound | None) -> Quantized:
        raise NotImplementedError

    def dequantize(self, q: Quantized) -> np.ndarray:
        raise NotImplementedError

    # Quantizers may accept ``out=`` buffers in both methods (the uniform ones do) so that a loop
    # can reuse memory; callers that do not pass them get fresh arrays.


CODE_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32")
STREAM_DTYPES = {np.dtype(d).newbyteorder("<").str: np.dtype(d).newbyteorder("<") for d in CODE_DTYPES}
"""The dtype strings a stream header may name (little-endian code dtypes, as every stream is written)."""
MAX_STREAM_NDIM = 32


def stream_header(data: bytes | memoryview, name: str = "stream") -> tuple[np.dtype, tuple[int, ...], int]:
    """The dtype, shape and header length at the start of an encoder stream; ``StreamError`` if the
    header is truncated, names another dtype, or its shape holds 2**62 values or more."""
    view = memoryview(data).cast("B")
    try:
        (n,) = struct.unpack_from("<B", view, 0)
        dt = bytes(view[1:1 + n]).decode("ascii")
        (ndim,) = struct.unpack_from("<B", view, 1 + n)
        shape = struct.unpack_from(f"<{ndim}Q", view, 2 + n)
    except (struct.error, UnicodeDecodeError) as e:
        raise StreamError(f"{name}: header is damaged or truncated ({type(e).__name__}: {e})") from None
    if dt not in STREAM_DTYPES:
        raise StreamError(f"{name}: header names dtype {dt!r}, not a code dtype ({', '.join(STREAM_DTYPES)})")
    if ndim > MAX_STREAM_NDIM or math.prod(shape) >= 1 << 62:
        raise StreamError(f"{name}: header shape {list(shape)} is not a code array's")
    return STREAM_DTYPES[dt], tuple(shape), 2 + n + 8 * ndim


class Encoder(Plugin):
    """The lossless step over integer code arrays: ``decode(encode(c))`` equals ``c`` bit for bit.

    The stream starts with the code array's dtype and shape, so it decodes on its own. Subclasses
    implement ``_encode(flat, shape) -> bytes`` (``shape`` is the code array's, for encoders that model
    columns) and ``_decode(payload, dtype, count) -> flat array``.
    """

    symbol_widths: ClassVar[tuple[int, ...]] = (1, 2, 4)
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def encode(self, codes: np.ndarray) -> bytes:
        """The stream of ``codes`` (dtype and shape header, then the payload) as one bytes object."""
        return b"".join(self.encode_parts(codes))

    def encode_parts(self, codes: np.ndarray) -> tuple[bytes, ...]:
        """The stream as (header, payload parts...), so that a container can write it without a copy.

        ``_encode`` may return one bytes-like payload or a list of consecutive parts.
        """
        codes = np.asarray(codes)
        if codes.dtype.name not in CODE_DTYPES or codes.dtype.itemsize not in self.symbol_widths:
            allowed = [d for d in CODE_DTYPES if np.dtype(d).itemsize in self.symbol_widths]
            raise TypeError(f"encoder '{self.plugin_id}' takes {', '.join(allowed)} codes, got {codes.dtype}")
        if codes.dtype.byteorder == ">":  # streams are little-endian
            codes = codes.astype(codes.dtype.newbyteorder("<"))
        flat = np.ascontiguousarray(codes).reshape(-1)
        dt = codes.dtype.str.encode()
        header = struct.pack(f"<B{len(dt)}sB{codes.ndim}Q", len(dt), dt, codes.ndim, *codes.shape)
        payload = self._encode(flat, codes.shape)
        return (header, *payload) if isinstance(payload, (list, tuple)) else (header, payload)

    def decode(self, data: bytes | memoryview, expect: tuple[np.dtype, tuple[int, ...]] | None = None,
               max_bytes: int | None = None) -> np.ndarray:
        """The code array of a stream; ``StreamError`` for any stream that does not decode.

        ``expect`` (dtype, shape), if given, must match the stream's own header, which is checked
        before anything is allocated. Allocations are charged to the budget of the decode in
        progress (``compframe.limits``), or to ``max_bytes`` (default: 256 MiB or 256 x the stream's
        size, whichever is larger).
        """
        view = memoryview(data).cast("B")
        dtype, shape, start = stream_header(view, f"{self.plugin_id} stream")
        if expect is not None and (dtype, shape) != (np.dtype(expect[0]), tuple(expect[1])):
            raise StreamError(f"{self.plugin_id} stream: holds {list(shape)} of {dtype}, the frame expects "
                              f"{list(expect[1])} of {np.dtype(expect[0])}")
        if dtype.itemsize not in self.symbol_widths:
            raise StreamError(f"{self.plugin_id} stream: dtype {dtype} is not one this encoder writes")
        count = math.prod(shape)
        with limits.budget(max_bytes, view.nbytes):
            try:
                limits.charge(count * dtype.itemsize, lambda: f"{self.plugin_id} codes {list(shape)} of {dtype}")
                flat = self._decode(view[start:], dtype, count)
            except StreamError:
                raise
            except FrameError as e:  # the byte budget: a stream's error to the stream's caller
                raise StreamError(f"{self.plugin_id} stream: {e}") from None
            except Exception as e:  # a library's own error on damaged input
                if type(e).__module__.startswith("numba"):  # a kernel that failed to compile: a bug, not the data's
                    raise
                raise StreamError(f"{self.plugin_id} stream: payload is damaged ({type(e).__name__}: {e})") from None
        if flat.dtype != dtype or flat.size != count:
            raise StreamError(f"{self.plugin_id} stream: decoded {flat.size} values of {flat.dtype}, header says {count} of {dtype}")
        return flat.reshape(shape)

    format_params: ClassVar[tuple[str, ...]] = ()
    """The parameters a stream needs to be decoded (stored in a frame's header as ``encoder``);
    every other parameter (device, level, threads, chunk sizes a stream records itself) is a
    run-time option, kept as ``encoder_options`` for the record and never read when decoding."""

    unrecorded_params: ClassVar[tuple[str, ...]] = ()
    """Run-time options that change neither the stream's bytes nor its decoding (threads over
    independent blocks, a device that is always ``cpu``): left out of ``encoder_options``, so that a
    frame's header does not vary with them. Frames that recorded them still decode (options are
    never read)."""

    def format_config(self) -> dict[str, Any]:
        """``{"id": ..., <format_params>}``: what a frame's header needs to decode this encoder's streams."""
        return self.split_config()[0]

    def options_config(self) -> dict[str, Any]:
        """The run-time options a header records: every parameter but the format parameters and ``unrecorded_params``."""
        return self.split_config()[1]

    def split_config(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(format_config(), options_config())`` from one ``get_config``."""
        config = self.get_config()
        skip = ("id", *self.format_params, *self.unrecorded_params)
        return ({"id": config["id"], **{k: config[k] for k in self.format_params}},
                {k: v for k, v in config.items() if k not in skip})

    @classmethod
    def for_decoding(cls, params: dict[str, Any], device: str = "cpu") -> Encoder:
        """A decoder of this encoder's streams built from a header's ``params`` (only the format
        parameters are read; run-time options such as ``device``, levels and threads are ignored),
        running on ``device`` (``cpu`` unless the caller asked for a CUDA result)."""
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        kwargs = {k: params[k] for k in cls.format_params if k in params}
        if "device" in fields:
            kwargs["device"] = device
        return cls(**kwargs)

    def _encode(self, flat: np.ndarray, shape: tuple[int, ...]) -> bytes | list[bytes]:
        raise NotImplementedError

    def _decode(self, payload: memoryview, dtype: np.dtype, count: int) -> np.ndarray:
        raise NotImplementedError


class Schedule(Plugin):
    """``bound(table, iteration) -> ErrorBound``: the error bound of each field over training."""

    def bound(self, table: int | None, iteration: int | None) -> ErrorBound:
        raise NotImplementedError


class DataSource(Plugin):
    """Yields ``Field``s. ``validate()`` checks what can be checked before the data is read."""

    def validate(self) -> None:
        """Check files and shapes up front; raises ``DataError`` naming the file."""

    def count(self) -> int | None:
        """How many fields ``fields()`` will yield, if known (for progress bars)."""
        return None

    def fields(self) -> Iterator[Field]:
        raise NotImplementedError


@dataclass
class ClickBatch:
    """One global mini-batch of click data, preprocessed, in the layout a DLRM consumes.

    ``dense``: float32 ``[B, n_dense]`` (already ``log(1 + max(x, 0))``); ``indices[t]`` and
    ``offsets[t]``: int64 ``nn.EmbeddingBag`` inputs of table ``t`` (``offsets`` has ``B`` entries;
    bag ``i`` is ``indices[t][offsets[t][i]:offsets[t][i + 1]]``; one index per sample for Criteo),
    every index in ``[0, table_rows()[t])``; ``label``: float32 ``[B]`` in {0, 1}.
    """

    dense: np.ndarray
    indices: list[np.ndarray]
    offsets: list[np.ndarray]
    label: np.ndarray

    def __len__(self) -> int:
        return int(self.label.shape[0])


class ClickData(DataSource):
    """A click-log source for ``task=train`` (Criteo files, or Criteo-like synthetic data).

    It yields batches, not fields: ``batches(split, batch_size, start)`` gives the global
    mini-batches of ``split`` (``"train"`` or ``"test"``) in a fixed order, from batch number
    ``start`` on (a resumed run skips what it has seen). Every rank of a distributed run reads the
    same batches and takes its share. ``fields()`` is not offered: such a source has no arrays to
    benchmark (a training run dumps its lookups with ``task.dump_every`` for ``data=emb_dump``).
    """

    def n_dense(self) -> int:
        """Number of dense (integer) features, 13 for Criteo."""
        raise NotImplementedError

    def table_rows(self) -> list[int]:
        """Rows of each categorical table (after hashing modulo ``max_ind_range`` where that applies)."""
        raise NotImplementedError

    def batches(self, split: str, batch_size: int, start: int = 0) -> Iterator[ClickBatch]:
        raise NotImplementedError

    def fields(self) -> Iterator[Field]:
        raise DataError(
            f"data '{self.plugin_id}' is a click log for task=train; task=benchmark needs a field source "
            "(data=synthetic, emb_dump, npy, image, model)"
        )


class Task(Plugin):
    """A job: ``run(parts, recorder, progress) -> results dict``.

    ``parts`` holds the built plugins by kind; ``recorder`` (``compframe.job.Recorder``) is the job's
    ``results.json`` (``recorder.results``, ``flush()``), its folder (``out_dir``) and its step-wise
    MLflow metrics (``log_metrics``).
    """

    def run(self, parts: dict[str, Plugin], recorder, progress: bool = True) -> dict[str, Any]:
        raise NotImplementedError


class ModelSource(Plugin):
    """A torch model and its task metric, for ``task=compress_model`` (kind ``model``).

    ``load()`` gives the fp32 model (built or trained once, then cached); the caller copies it before
    changing it. ``evaluate(module)`` returns ``{metric: value, ...}`` for any module of the same
    architecture (the compressed copy), in eval mode, without gradients; ``metric`` names its main
    entry and ``higher_is_better`` its direction. ``train_batches(epoch)`` and ``loss(module, batch)``
    are what fine-tuning needs: the batches of one epoch in a fixed order per epoch, and the scalar
    loss of ``module`` on one batch. Constructing a source reads nothing; ``load`` does the work.
    """

    metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True

    def load(self) -> Any:
        """The fp32 ``torch.nn.Module`` (the same object on every call; do not modify it)."""
        raise NotImplementedError

    def evaluate(self, module: Any) -> dict[str, float]:
        """The task metric(s) of ``module``; ``metric`` is among the keys."""
        raise NotImplementedError

    def train_batches(self, epoch: int) -> Iterator[Any]:
        """The fine-tuning batches of ``epoch`` (each one is passed to ``loss`` as is)."""
        raise NotImplementedError

    def loss(self, module: Any, batch: Any) -> Any:
        """The scalar training loss (a torch tensor with gradients) of ``module`` on ``batch``."""
        raise NotImplementedError
