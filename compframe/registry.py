"""The plugin registry: every data source, schedule, quantizer, encoder and task by kind and id.

A plugin is a class with a ``Config`` dataclass (its typed parameters, all with defaults) and a
``check()`` method that rejects bad values before any data is touched. It registers itself::

    @register("encoder", "zstd")
    class Zstd(Encoder):
        @dataclass
        class Config:
            level: int = 3

The same id is used everywhere: ``encoder=zstd`` on the command line, ``conf/encoder/zstd.yaml``,
the decorator, the docs. Each plugin has a Hydra schema, ``schema/<kind>/<id>`` (the dataclass plus
an ``id`` field), which its YAML file extends, so that a misspelt or mistyped parameter fails when
Hydra composes the config. The schemas are stored in Hydra's ConfigStore only when Hydra composes a
config (``store_schemas``, called by compframe's Hydra search-path plugin, ``compframe.hydra_plugin``), so the library
(``import compframe; cf.available()``) never imports Hydra.

Third-party packages register through the entry-point group ``compframe.plugins``: each entry
point names a module (or callable) that is imported (or called) once, and registers its plugins.
Their YAML files join the config search path through the group ``compframe.configs``: each entry
point names a package holding ``<kind>/<id>.yaml`` files (searched as ``pkg://<package>``).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from .errors import ConfigError, RegistryError

KINDS = ("data", "schedule", "quantizer", "encoder", "model", "task")
ENTRY_POINT_GROUP = "compframe.plugins"
CONFIG_ENTRY_POINT_GROUP = "compframe.configs"

_plugins: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}
_loaded = False


def _closest(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)  # close matches only
    return f" Did you mean '{match[0]}'?" if match else ""


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RegistryError(f"unknown plugin kind '{kind}'; kinds are {', '.join(KINDS)}.{_closest(kind, list(KINDS))}")


def schema_for(cls: type) -> type:
    """The Hydra schema of a plugin class: its ``Config`` dataclass with an ``id`` field first."""
    return cls._schema


def register(kind: str, plugin_id: str):
    """Class decorator: register ``cls`` as plugin ``plugin_id`` of ``kind``.

    A duplicate id within a kind is refused at import time.
    """
    _check_kind(kind)

    def decorate(cls: type) -> type:
        if plugin_id in _plugins[kind] and _plugins[kind][plugin_id] is not cls:
            other = _plugins[kind][plugin_id]
            raise RegistryError(
                f"duplicate {kind} id '{plugin_id}': already registered by {other.__module__}.{other.__qualname__}"
            )
        config_cls = getattr(cls, "Config", None)
        if config_cls is None or not dataclasses.is_dataclass(config_cls):
            raise RegistryError(f"{kind} '{plugin_id}' ({cls.__qualname__}) needs a dataclass 'Config'")
        cls.kind, cls.plugin_id = kind, plugin_id
        cls._schema = dataclasses.make_dataclass(
            f"{cls.__name__}Schema",
            [("id", str, dataclasses.field(default=plugin_id))],
            bases=(config_cls,),
        )
        _plugins[kind][plugin_id] = cls
        return cls

    return decorate


def store_schemas() -> None:
    """Store every registered plugin's schema in Hydra's ConfigStore as ``schema/<kind>/<id>``."""
    from hydra.core.config_store import ConfigStore

    load_plugins()
    store = ConfigStore.instance()
    for kind, plugins in _plugins.items():
        for plugin_id, cls in plugins.items():
            store.store(group=f"schema/{kind}", name=plugin_id, node=cls._schema, provider="compframe", replace=True)


def config_packages() -> list[tuple[str, str]]:
    """(entry-point name, package) of every installed package that adds config files
    (entry-point group ``compframe.configs``)."""
    return [(ep.name, ep.value.strip()) for ep in entry_points(group=CONFIG_ENTRY_POINT_GROUP)]


def load_plugins() -> None:
    """Import compframe's built-in plugins and those of installed packages (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    importlib.import_module("compframe.plugins")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        target = ep.load()
        if callable(target):
            target()


def plugin_class(kind: str, plugin_id: str) -> type:
    """The class registered as ``plugin_id`` of ``kind``; an unknown id lists the available ones."""
    _check_kind(kind)
    load_plugins()
    try:
        return _plugins[kind][plugin_id]
    except KeyError:
        ids = available(kind)
        raise RegistryError(
            f"unknown {kind} '{plugin_id}'. Available {kind} ids: {', '.join(ids)}.{_closest(str(plugin_id), ids)}"
        ) from None


def available(kind: str | None = None, pattern: str = "*", usable: bool = False) -> list[str] | dict[str, list[str]]:
    """Registered ids of ``kind`` matching the glob ``pattern``, sorted; without a kind, a dict of
    every kind's ids. ``usable=True`` leaves out plugins that cannot run here (a missing extra or
    device: ``plugin_class(kind, id).unavailable()`` says why)."""
    if kind is None:
        return {k: available(k, pattern, usable) for k in KINDS}
    _check_kind(kind)
    load_plugins()
    return sorted(i for i, cls in _plugins[kind].items()
                  if fnmatch.fnmatchcase(i, pattern) and not (usable and cls.unavailable() is not None))


def create(kind: str, plugin_id: str, **params: Any):
    """Build plugin ``plugin_id`` of ``kind`` from its parameters, validated before use."""
    return plugin_class(kind, plugin_id)(**params)


def resolve(kind: str, spec: Any):
    """A plugin of ``kind`` from an id, a config dict ``{id: ..., <params>}`` or a plugin object.

    The one way compframe builds plugins: the job (from its composed config), the benchmark task
    (``task.quantizers``, ``task.encoders``), the library (``cf.compress``) and the frame parser.
    """
    from .plugin import Plugin

    if isinstance(spec, Plugin):
        if spec.kind != kind:
            raise TypeError(f"expected a {kind}, got a {spec.kind} ({spec!r})")
        return spec
    if isinstance(spec, str):
        return create(kind, spec)
    if isinstance(spec, Mapping):
        return create_from_config(kind, spec)
    raise TypeError(f"{kind} must be an id, a config dict or a {kind} object, got {type(spec).__name__}")


def create_from_config(kind: str, node: Mapping[str, Any]):
    """Build a plugin from a config node ``{id: ..., <params>}`` (a dict or an OmegaConf node)."""
    if type(node).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        node = OmegaConf.to_container(node, resolve=True)
    params = dict(node)
    if "id" not in params:
        raise ConfigError(kind, "?", "id", f"is missing from the {kind} config; available: {', '.join(available(kind))}")
    plugin_id = params.pop("id")
    return create(kind, plugin_id, **params)
