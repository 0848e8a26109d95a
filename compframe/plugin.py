"""The base class every plugin shares: typed, validated parameters and a JSON-able config.

As in numcodecs' ``Codec``: ``get_config()`` returns a JSON-able dict with the id, the plugin can be
rebuilt from it with ``registry.create_from_config``, and equality and ``repr`` follow the config.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, ClassVar

from .errors import ConfigError


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple):
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer()
        )
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


class Plugin:
    """A registered component. Subclasses define a ``Config`` dataclass and may override ``check``."""

    kind: ClassVar[str]
    plugin_id: ClassVar[str]

    @dataclasses.dataclass
    class Config:
        pass

    def __init__(self, **params: Any):
        hints = typing.get_type_hints(self.Config)
        names = [f.name for f in dataclasses.fields(self.Config)]
        for key, value in params.items():
            if key not in names:
                match = difflib.get_close_matches(key, names, n=1)
                hint = f" Did you mean '{match[0]}'?" if match else ""
                raise ConfigError(
                    self.kind, self.plugin_id, key,
                    f"is not a parameter; valid: {', '.join(names) or '(none)'}.{hint}",
                )
            if not _type_ok(value, hints[key]):
                raise ConfigError(self.kind, self.plugin_id, key, f"must be {hints[key]}, got {value!r}")
            if hints[key] is float and isinstance(value, int):
                params[key] = float(value)
            if hints[key] is int and isinstance(value, float):
                params[key] = int(value)
            if typing.get_origin(hints[key]) is list and isinstance(value, tuple):
                params[key] = list(value)
        self.config = self.Config(**params)
        self.check()

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this plugin cannot be built on this machine (a missing extra or device), or None."""
        return None

    def check(self) -> None:
        """Reject invalid parameter values (raise via ``self.fail``); called before any data is read."""

    def fail(self, param: str, message: str) -> typing.NoReturn:
        raise ConfigError(self.kind, self.plugin_id, param, message)

    def require(self, param: str, low: float | None = None, high: float | None = None,
                choices: typing.Sequence[Any] | None = None, open_low: bool = False) -> None:
        """Check ``config.<param>`` against a range ``[low, high]`` (``(low, high]`` if open_low) or choices."""
        value = getattr(self.config, param)
        if choices is not None and value not in choices:
            self.fail(param, f"is {value!r}; allowed: {', '.join(map(str, choices))}")
        if low is not None and (value < low or (open_low and value == low)):
            bracket = "(" if open_low else "["
            self.fail(param, f"is {value!r}; allowed range {bracket}{low}, {'inf' if high is None else high}]")
        if high is not None and value > high:
            self.fail(param, f"is {value!r}; allowed range [{low}, {high}]")

    def unused_unless(self, param: str, effective: bool, when: str) -> None:
        """Refuse a non-default ``param`` where it would change nothing (``effective`` is False):
        a parameter that does nothing must not look as if it had been tried (``when`` says when it counts)."""
        default = next(f for f in dataclasses.fields(self.Config) if f.name == param)
        default = default.default if default.default is not dataclasses.MISSING else default.default_factory()
        value = getattr(self.config, param)
        if value != default and not effective:
            self.fail(param, f"is {value!r} but has no effect unless {when} (otherwise leave it at {default!r})")

    def get_config(self) -> dict[str, Any]:
        """JSON-able config with the plugin id; ``registry.create_from_config`` rebuilds the plugin."""
        return {"id": self.plugin_id, **dataclasses.asdict(self.config)}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.config).items())
        return f"{type(self).__name__}({params})"
