"""Resource limits of decoding, and the checks of values read from a frame.

Every allocation whose size a frame decides (the result, each code array, an entropy coder's
decoding tables, a dequantizer's temporaries) is charged against one byte budget before it is
made: ``cf.decompress(frame, max_bytes=...)``, by default ``default_max_bytes(len(frame))`` =
``max(256 MiB, 256 x the frame's size)``. A frame that needs more is refused with a ``FrameError``
that says how to raise the limit, before the allocation. ``Encoder.decode`` called on its own opens
a budget of the same default for its stream.

The ``number``, ``integer``, ``shape`` and ``dtype`` helpers turn a JSON value of a header into the
type a decoder needs, or raise ``FrameError`` naming the field.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import FrameError

DEFAULT_FLOOR = 256 << 20
DEFAULT_RATIO = 256
MAX_NDIM = 32


def default_max_bytes(frame_nbytes: int) -> int:
    """The default budget of a decode: ``max(256 MiB, 256 x frame_nbytes)``."""
    return max(DEFAULT_FLOOR, DEFAULT_RATIO * int(frame_nbytes))


class Budget:
    """Bytes a decode may still allocate (``limit`` in all, ``used`` so far)."""

    def __init__(self, limit: int):
        self.limit, self.used = int(limit), 0

    def charge(self, nbytes: int, what: str | Callable[[], str]) -> None:
        nbytes = int(nbytes)
        if nbytes < 0 or self.used + nbytes > self.limit:
            what = what() if callable(what) else what
            raise FrameError(
                f"decoding this frame needs more than max_bytes={self.limit} bytes ({what}: {nbytes} bytes after "
                f"{self.used}); a frame you trust decodes with cf.decompress(frame, max_bytes=<larger>)")
        self.used += nbytes


_active: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("compframe_decode_budget", default=None)


class budget:
    """The budget of one decode, entered with ``with``: a new ``Budget`` of ``max_bytes`` (None:
    ``default_max_bytes(frame_nbytes)``); nested uses (a stream inside a frame) share the outer one.
    A class rather than a generator context manager: 1-1.5 us less per decode."""

    __slots__ = ("max_bytes", "frame_nbytes", "token")

    def __init__(self, max_bytes: int | None, frame_nbytes: int):
        self.max_bytes, self.frame_nbytes, self.token = max_bytes, frame_nbytes, None

    def __enter__(self) -> Budget:
        outer = _active.get()
        if outer is not None:
            return outer
        max_bytes = self.max_bytes
        if max_bytes is None:
            max_bytes = default_max_bytes(self.frame_nbytes)
        elif isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a whole number of bytes >= 0, got {max_bytes!r}")
        active = Budget(max_bytes)
        self.token = _active.set(active)
        return active

    def __exit__(self, *exc) -> None:
        if self.token is not None:
            _active.reset(self.token)
            self.token = None


def charge(nbytes: int, what: str | Callable[[], str]) -> None:
    """Charge an allocation of ``nbytes`` to the active decode's budget (nothing outside a decode);
    ``what`` names it in the error (a callable: built only then, as it costs microseconds per call)."""
    active = _active.get()
    if active is not None:
        active.charge(nbytes, what)


# ------------------------------------------------------------------ values read from a header


def number(value: Any, field: str) -> float:
    """A JSON number (int or float, not bool) as a float; NaN and infinities pass."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FrameError(f"frame header: {field} must be a number, got {value!r:.80}")
    try:
        return float(value)
    except OverflowError:
        raise FrameError(f"frame header: {field} = {value!r:.80} is out of range") from None


def integer(value: Any, field: str, low: int | None = None, high: int | None = None) -> int:
    """A JSON integer (not bool) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameError(f"frame header: {field} must be an integer, got {value!r:.80}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise FrameError(f"frame header: {field} = {value} is outside [{low}, {high}]")
    return value


def shape(value: Any, field: str) -> tuple[int, ...]:
    """A JSON list of at most ``MAX_NDIM`` integers >= 0 whose product fits 2**62."""
    if not isinstance(value, list) or len(value) > MAX_NDIM:
        raise FrameError(f"frame header: {field} must be a list of at most {MAX_NDIM} sizes, got {value!r:.80}")
    dims = tuple(integer(v, field, 0, 1 << 62) for v in value)
    if math.prod(dims) >= 1 << 62:
        raise FrameError(f"frame header: {field} {list(dims)} holds more than 2**62 values")
    return dims


def dtype(value: Any, field: str, allowed: tuple[str, ...]) -> np.dtype:
    """A dtype named by one of the ``allowed`` names (numpy names or strings such as ``'<u4'``)."""
    if not isinstance(value, str) or value not in allowed:
        raise FrameError(f"frame header: {field} is {value!r:.80}; allowed: {', '.join(allowed)}")
    return np.dtype(value)


def mapping(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise FrameError(f"frame header: {field} must be an object, got {value!r:.80}")
    return value
