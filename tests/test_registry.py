"""The registry: kinds, ids, creation, errors, entry points, and one YAML per plugin."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import compframe as cf
from compframe import registry
from compframe.plugin import Plugin
from compframe.registry import ConfigError, RegistryError, create_from_config

ROOT = Path(__file__).resolve().parents[1]
ALL = [(kind, pid) for kind in registry.KINDS for pid in registry.available(kind)
       if registry.plugin_class(kind, pid).unavailable() is None]
UNAVAILABLE = [(kind, pid) for kind in registry.KINDS for pid in registry.available(kind)
               if registry.plugin_class(kind, pid).unavailable() is not None]


def test_every_kind_has_plugins():
    for kind in registry.KINDS:
        assert registry.available(kind), kind
    assert registry.available("encoder") == sorted(registry.available("encoder"))
    assert {"none", "lz4", "zstd"} <= set(cf.available("encoder"))
    assert {"int8", "int16"} <= set(cf.available("quantizer"))
    assert {"constant", "step", "linear", "log"} <= set(cf.available("schedule"))
    assert {"synthetic", "emb_dump", "npy"} <= set(cf.available("data"))


def test_available_glob():
    assert registry.available("quantizer", "int*") == [i for i in registry.available("quantizer") if i.startswith("int")]


def test_unknown_id_lists_and_suggests():
    with pytest.raises(RegistryError) as e:
        registry.create("encoder", "zstdd")
    msg = str(e.value)
    assert "unknown encoder 'zstdd'" in msg and "Did you mean 'zstd'" in msg
    for pid in registry.available("encoder"):
        assert pid in msg


def test_unknown_kind():
    with pytest.raises(RegistryError, match="unknown plugin kind 'encoders'.*Did you mean 'encoder'"):
        registry.available("encoders")


def test_duplicate_id_refused():
    @dataclasses.dataclass
    class Config:
        pass

    class Other(Plugin):
        pass

    Other.Config = Config
    with pytest.raises(RegistryError, match="duplicate encoder id 'zstd'"):
        registry.register("encoder", "zstd")(Other)


def test_bad_parameters_named():
    with pytest.raises(ConfigError, match="'levl' is not a parameter.*Did you mean 'level'"):
        registry.create("encoder", "zstd", levl=3)
    with pytest.raises(ConfigError, match="'level' is 99; allowed range"):
        registry.create("encoder", "zstd", level=99)
    with pytest.raises(ConfigError, match="'level' must be"):
        registry.create("encoder", "zstd", level="high")
    with pytest.raises(ConfigError, match="schedule 'step': parameter 'base'"):
        registry.create("schedule", "step", base=-0.1)
    with pytest.raises(ConfigError, match="parameter 'mode'"):
        registry.create("schedule", "step", mode="relative")


def test_entry_point_plugins_are_loaded(monkeypatch):
    calls = []

    class EP:
        def load(self):
            return lambda: calls.append("loaded")

    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [EP()] if group == "compframe.plugins" else [])
    registry.load_plugins()
    assert calls == ["loaded"]


@pytest.mark.parametrize("kind,pid", ALL)
def test_config_round_trips_through_json(kind, pid):
    plugin = registry.create(kind, pid)
    config = json.loads(json.dumps(plugin.get_config()))
    assert config["id"] == pid
    rebuilt = create_from_config(kind, config)
    assert rebuilt == plugin and repr(rebuilt) == repr(plugin)


@pytest.mark.parametrize("kind,pid", UNAVAILABLE)
def test_unavailable_plugins_say_why_at_creation(kind, pid):
    reason = registry.plugin_class(kind, pid).unavailable()
    with pytest.raises(ConfigError) as e:
        registry.create(kind, pid)
    assert pid in str(e.value) and reason.split(":")[0] in str(e.value)


def _yaml_ids(kind: str) -> set[str]:
    return {p.stem for p in (ROOT / "conf" / kind).glob("*.yaml")}


@pytest.mark.parametrize("kind", registry.KINDS)
def test_every_plugin_has_a_yaml_and_every_yaml_a_plugin(kind):
    assert _yaml_ids(kind) == set(registry.available(kind))


@pytest.mark.slow  # a Hydra composition per plugin: about half a minute in all
@pytest.mark.parametrize("kind,pid", ALL + UNAVAILABLE)
def test_every_yaml_composes_and_builds(kind, pid):
    text = (ROOT / "conf" / kind / f"{pid}.yaml").read_text()
    assert text.startswith("# python -m compframe.run"), "the first line says how to run it"
    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="config", overrides=[f"{kind}={pid}"])
    node = OmegaConf.to_container(cfg[kind], resolve=True)
    assert node["id"] == pid
    if (kind, pid) in UNAVAILABLE:
        return
    assert create_from_config(kind, node) == registry.create(kind, pid)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")))
def test_experiments_compose_and_build(name):
    """Each experiment composes, changes the default config, and builds plugins that hold exactly
    the composed parameters (none dropped or defaulted on the way)."""
    from compframe.job import build_parts

    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        config = OmegaConf.to_container(compose(config_name="config", overrides=[f"experiment={name}"]), resolve=True)
        default = OmegaConf.to_container(compose(config_name="config"), resolve=True)
    assert config != default
    parts = build_parts(config)
    assert set(parts) == {kind for kind in registry.KINDS if config.get(kind) is not None}
    for kind, plugin in parts.items():
        assert plugin.get_config() == json.loads(json.dumps(config[kind])), kind


def test_misspelt_parameter_fails_at_composition():
    from hydra.errors import ConfigCompositionException

    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        with pytest.raises(ConfigCompositionException, match="levl"):
            compose(config_name="config", overrides=["encoder=zstd", "encoder.levl=3"])


def test_list_items_are_type_checked():
    with pytest.raises(ConfigError, match="parameter 'tight_tables' must be"):
        registry.create("schedule", "step", tight_tables=["a"])
    assert registry.create("schedule", "step", tight_tables=[1, 2]).config.tight_tables == [1, 2]


def test_available_usable_leaves_out_what_cannot_run():
    usable = cf.available("encoder", usable=True)
    assert set(usable) == {pid for pid in cf.available("encoder") if registry.plugin_class("encoder", pid).unavailable() is None}
    assert set(cf.available()) == set(registry.KINDS) and cf.available()["encoder"] == cf.available("encoder")


def test_suggests_only_close_matches():
    with pytest.raises(RegistryError) as e:
        registry.create("encoder", "nosuch")
    assert "Did you mean" not in str(e.value)
    with pytest.raises(RegistryError, match="Did you mean 'huffman'"):
        registry.create("encoder", "huffmann")


def test_library_import_does_not_import_hydra():
    import subprocess
    import sys

    code = ("import sys, compframe as cf; cf.available(); cf.available('encoder', usable=True); "
            "cf.decompress(cf.compress(__import__('numpy').ones(64, 'f4'))); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('hydra', 'omegaconf')))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "[]"


def test_parameters_that_do_nothing_are_refused():
    with pytest.raises(ConfigError, match="'acceleration' is 4 but has no effect unless mode=fast"):
        registry.create("encoder", "lz4", acceleration=4)
    assert registry.create("encoder", "lz4", mode="fast", acceleration=4).config.acceleration == 4
    with pytest.raises(ConfigError, match="'compression' is 3 but has no effect unless mode=high_compression"):
        registry.create("encoder", "lz4", compression=3)
    with pytest.raises(ConfigError, match="'block' is 4096 but has no effect unless context=block"):
        registry.create("encoder", "ans", context="column", block=4096)
    with pytest.raises(ConfigError, match="'tight' is 0.001 but has no effect unless tight_tables"):
        registry.create("schedule", "step", tight=1e-3)


def test_plugin_description_names_parameters_and_ranges():
    from compframe.cli import describe, plugins_text

    text = describe("encoder", "zstd")
    assert "level" in text and "range [-7, 22]" in text and "default 3" in text
    assert "one of: cpu, cuda" in text
    assert "range (0.0, inf]" in describe("schedule", "step")  # base, from the plugin's own check
    listing = plugins_text("encoder")
    assert all(pid in listing for pid in cf.available("encoder"))
    for pid in set(cf.available("encoder")) - set(cf.available("encoder", usable=True)):
        assert f"{pid}*" in plugins_text(None)
