"""compframe's error types, in one module that imports nothing of compframe (no import cycles).

- ``RegistryError``: an unknown kind or id, or a duplicate registration.
- ``ConfigError``: a plugin parameter that is unknown, mistyped or outside its range.
- ``DataError``: input data that cannot be used (a missing or mis-sized file, a bad line).
- ``FrameError``: a frame that cannot be decoded; ``StreamError`` (an encoded stream that cannot be
  decoded) is one, so ``except cf.FrameError`` catches every failure to decompress.
"""

from __future__ import annotations


class RegistryError(LookupError):
    """An unknown kind or id, or a duplicate registration."""


class ConfigError(ValueError):
    """A plugin parameter that is unknown, of the wrong type or outside its allowed range."""

    def __init__(self, kind: str, plugin_id: str, param: str, message: str):
        self.kind, self.plugin_id, self.param = kind, plugin_id, param
        super().__init__(f"{kind} '{plugin_id}': parameter '{param}' {message}")


class DataError(ValueError):
    """Input data that cannot be used: a missing or mis-sized file, a non-float array, a bad line."""


class FrameError(ValueError):
    """A frame that is damaged, truncated or not a compframe frame; never returned as data."""


class StreamError(FrameError):
    """An encoded stream that is damaged, truncated or of another format."""
