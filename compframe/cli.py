"""The ``compframe`` command (also ``python -m compframe.run``): help, plugin listings, runs.

    compframe [group=id ...] [key=value ...] [-m]   compose a run (Hydra) and run it
    compframe plugins [kind | kind/id]              the plugins, or one plugin's parameters and ranges
    compframe report [--experiment|--run|--filter|--results ...]   figures comparing runs (docs/report.md)
    compframe --help                                what compframe does, every group with its ids

A single run is composed and its parts built and validated here, before Hydra creates an output
folder or the job opens an MLflow run: a bad value, a missing file or an unusable plugin prints one
line (``error: ...``) on stderr and exits with status 2. The traceback is shown with
``hydra.verbose=true`` on the command line or ``COMPFRAME_TRACEBACK=1``. A multirun's jobs are
validated one by one as they start (each sweep point is its own configuration).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
import typing
from importlib import resources

from .errors import ConfigError, DataError, RegistryError
from .registry import KINDS, available, config_packages, plugin_class

USAGE_ERROR = 2
# Hydra flags that turn the early validation off: those that print or exit on their own, and those
# that change where the config comes from or what it is (-cp, -cn, -cd, --experimental-rerun), which
# ``compose`` below does not follow; Hydra itself then composes the run and reports its errors.
HYDRA_INFO_FLAGS = ("--cfg", "-c", "--info", "-i", "--hydra-help", "--shell-completion", "-sc", "--resolve",
                    "--package", "-p", "--version", "--config-path", "-cp", "--config-name", "-cn",
                    "--config-dir", "-cd", "--experimental-rerun")
MULTIRUN_FLAGS = ("-m", "--multirun")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``compframe`` console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["plugins"]:
        sys.exit(_guarded(args, lambda: print(plugins_text(args[1] if len(args) > 1 else None))))
    if args[:1] == ["report"]:
        from .report import main as report_main

        sys.exit(_guarded(args, lambda: report_main(args[1:])))
    run(args)


def run(args: list[str]) -> None:
    """``python -m compframe.run ARGS``: help, early validation, then Hydra."""
    if "--help" in args or "-h" in args:
        print(help_text())
        return
    status = _guarded(args, lambda: validate(args))
    if status:
        sys.exit(status)
    from .run import main as hydra_main

    sys.argv = [sys.argv[0], *args]
    hydra_main()


def _guarded(args: list[str], fn) -> int:
    """Run ``fn``; a user error becomes one line on stderr and status 2 (traceback on request)."""
    from hydra.errors import HydraException

    try:
        fn()
    except (ConfigError, DataError, RegistryError, HydraException, ValueError, TypeError) as e:
        if _wants_traceback(args):
            traceback.print_exc()
        cause = f": {e.__cause__}" if isinstance(e, HydraException) and e.__cause__ is not None else ""
        message = " ".join(f"{e}{cause}".split())
        print(f"error: {message}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def _wants_traceback(args: list[str]) -> bool:
    verbose = any(a.startswith("hydra.verbose=") and a.split("=", 1)[1].lower() not in ("false", "null", "[]")
                  for a in args)
    return verbose or os.environ.get("COMPFRAME_TRACEBACK", "") not in ("", "0")


def validate(args: list[str]) -> None:
    """Check plugin ids (every sweep value too); for a single run, compose the config and build and
    validate its parts. Raises the error a user must fix."""
    from .run import check_group_overrides

    check_group_overrides(args)
    if any(a in MULTIRUN_FLAGS or a.split("=", 1)[0] in HYDRA_INFO_FLAGS for a in args):
        return
    config, multirun = compose([a for a in args if not a.startswith("-")])
    if multirun:
        return
    from . import job

    job.prepare(config)


def compose(overrides: list[str]) -> tuple[dict, bool]:
    """The resolved job config (without Hydra's node) and whether it describes a multirun."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    from .registry import store_schemas

    store_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="compframe.conf"):
        cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    multirun = str(OmegaConf.select(cfg, "hydra.mode", default="")).endswith("MULTIRUN")
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True), multirun


def groups() -> dict[str, list[str]]:
    """Every config group a user picks from (plugin kinds first, then experiment, hparams_search, ...)
    with its ids; internal ``schema/*`` groups are left out."""
    out: dict[str, list[str]] = {kind: available(kind) for kind in KINDS}
    for package in ["compframe.conf", *(p for _, p in config_packages())]:
        try:
            root = resources.files(package)
        except ModuleNotFoundError:
            continue
        for folder in sorted((f for f in root.iterdir() if f.is_dir()), key=lambda f: f.name):
            if folder.name in out or folder.name in ("schema", "__pycache__"):
                continue
            out[folder.name] = sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml"))
    return {g: ids for g, ids in out.items() if ids}


def _defaults() -> dict[str, str]:
    from omegaconf import OmegaConf

    text = resources.files("compframe.conf").joinpath("config.yaml").read_text(encoding="utf-8")
    out = {}
    for entry in OmegaConf.create(text).get("defaults", []):
        if isinstance(entry, dict) or hasattr(entry, "items"):
            for key, value in entry.items():
                out[str(key)] = str(value)
    return out


def help_text() -> str:
    defaults = _defaults()
    lines = [
        "compframe: experiments in compressing machine-learning data (embedding lookups, weights,",
        "activations). A run composes, by name, a data source, an error-bound schedule, a quantizer (lossy)",
        "and an encoder (lossless), measures compression ratio, speed and error, writes results.json and",
        "logs to MLflow. Hydra composes and sweeps runs, Optuna searches, MLflow compares.",
        "",
        "usage: compframe [group=id ...] [key=value ...] [-m]   (or: python -m compframe.run ...)",
        "       compframe plugins [kind | kind/id]              plugins, or one plugin's parameters and ranges",
        "       compframe report [--experiment|--run|--filter|--results ...]  figures and an HTML page comparing runs",
        "",
        "groups (group=id; the default in [brackets]; * = cannot run here, see 'compframe plugins <kind>'):",
    ]
    for group, ids in groups().items():
        unusable = set(available(group)) - set(available(group, usable=True)) if group in KINDS else set()
        default = defaults.get(group)
        shown = [f"[{i}]" if i == default else i for i in ids]
        shown = [f"{s}*" if i in unusable else s for s, i in zip(shown, ids)]
        lines.append(f"  {group:<15} {' '.join(shown)}")
    lines += [
        "",
        "examples:",
        "  compframe quantizer=int16 encoder=zstd encoder.level=19 schedule.base=1e-3",
        "  compframe 'task.encoders=[lz4,{id:zstd,level:19}]'      several pipelines in one job",
        "  compframe encoder=lz4,zstd quantizer=int8,int16 -m      a multirun (one MLflow parent run)",
        "  compframe -m hparams_search=pareto                      an Optuna search",
        "  compframe plugins encoder/zstd                          zstd's parameters and their ranges",
        "",
        "Hydra: --cfg job prints the composed config, --hydra-help Hydra's own flags, hydra.verbose=true",
        "(or COMPFRAME_TRACEBACK=1) shows tracebacks. Docs: README.md and docs/ in the repository.",
    ]
    return "\n".join(lines)


def plugins_text(spec: str | None) -> str:
    """``compframe plugins``: every kind with its ids; ``<kind>``: one line per plugin;
    ``<kind>/<id>``: the plugin's description, parameters, defaults and ranges."""
    if spec is None:
        lines = ["kind      ids (* = cannot run here; 'compframe plugins <kind>' says why)"]
        for kind in KINDS:
            usable = set(available(kind, usable=True))
            lines.append(f"  {kind:<9} {' '.join(i if i in usable else i + '*' for i in available(kind))}")
        return "\n".join(lines)
    kind, _, plugin_id = spec.partition("/")
    if not plugin_id:
        lines = []
        for pid in available(kind):
            cls = plugin_class(kind, pid)
            reason = cls.unavailable()
            summary = next(iter((cls.__doc__ or "").strip().splitlines()), "")
            lines.append(f"{pid:<18} {summary}" + (f"  [unavailable: {reason}]" if reason else ""))
        return "\n".join(lines)
    return describe(kind, plugin_id)


def describe(kind: str, plugin_id: str) -> str:
    """A plugin's docstring, then each parameter: type, default and the range its ``check`` enforces."""
    cls = plugin_class(kind, plugin_id)
    ranges = parameter_ranges(cls)
    hints = typing.get_type_hints(cls.Config)
    doc = (cls.__doc__ or "").strip()
    lines = [f"{kind} '{plugin_id}' ({cls.__module__}.{cls.__qualname__})"]
    if doc:
        lines += ["", *("  " + line.strip() for line in doc.splitlines()), ""]
    reason = cls.unavailable()
    if reason:
        lines.append(f"unavailable here: {reason}")
    lines.append(f"parameters ({kind}.<name>=<value>):")
    for f in dataclasses.fields(cls.Config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        hint = getattr(hints[f.name], "__name__", None) or str(hints[f.name]).replace("typing.", "")
        lines.append(f"  {f.name:<20} {hint:<14} default {default!r:<14} {ranges.get(f.name, '')}".rstrip())
    return "\n".join(lines)


def parameter_ranges(cls: type) -> dict[str, str]:
    """The ranges and choices a plugin's ``check`` enforces with ``require``, recorded by building it
    with its defaults (a check that stops early, e.g. for a missing device, records what it reached)."""
    ranges: dict[str, str] = {}

    class Probe(cls):  # type: ignore[misc, valid-type]
        def require(self, param, low=None, high=None, choices=None, open_low=False):
            if choices is not None:
                ranges[param] = "one of: " + ", ".join(map(str, choices))
            else:
                left = "(" if open_low else "["
                ranges[param] = f"range {left}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            return super().require(param, low, high, choices, open_low)

    try:
        Probe()
    except (ConfigError, DataError, ValueError, TypeError, LookupError):
        pass
    return ranges
