"""The command line: ``python -m compframe.run [group=id ...] [key=value ...] [-m]`` (or ``compframe``).

Thin on purpose: ``compframe.cli`` checks the plugin ids on the command line against the registry
(an unknown id lists the available ones and suggests a close one) and validates a single run before
Hydra starts; ``main`` composes the config (Hydra, ``pkg://compframe.conf``), calls the pure
``compframe.job.run`` and returns the optimized metric(s) to the sweeper.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .outputs import register_resolvers
from .registry import KINDS, plugin_class, store_schemas
from .sweeper import register as register_sweeper

# What Hydra may instantiate from config: our callback, the sweeper plugins and their samplers,
# and the logging handlers of Hydra's own logging config.
TRUSTED_TARGETS = ["compframe.*", "hydra_plugins.*", "optuna.*", "logging.*", "hydra.*"]

store_schemas()  # every plugin's schema in Hydra's ConfigStore before composition
register_resolvers()  # ${cf_uid:} in the run and sweep folders (conf/config.yaml)
register_sweeper()  # hydra/sweeper=compframe_optuna, the resumable Optuna sweeper (conf/hparams_search)


def check_group_overrides(args: list[str]) -> None:
    """Fail early, with the registry's message, on ``<kind>=<unknown id>`` (lists and sweeps too)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [a for a in args if not a.startswith("-") and "=" in a]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - Hydra reports its own syntax errors
        return
    for o in parsed:
        if o.key_or_group not in KINDS or o.is_delete() or o.package:
            continue
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
        for v in values:
            if isinstance(v, str):
                plugin_class(o.key_or_group, v)


@hydra.main(config_path="pkg://compframe.conf", config_name="config", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig):
    from hydra.core.hydra_config import HydraConfig

    from . import job
    from .tracking import JobTracker
    from .workers import limit_threads

    limit_threads()  # a launcher's worker (joblib, SLURM) keeps to its share of the CPUs
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    multirun = hc.mode.name == "MULTIRUN"
    name = hc.job.override_dirname or hc.job.name
    tracker = JobTracker(config["tracking"], run_name=name,
                         parent_dir=Path(hc.sweep.dir) if multirun else None)
    results = job.run(config, out_dir, name=name, progress=config.get("progress", True), tracker=tracker)
    print(f"results: {out_dir / 'results.json'}")
    if not multirun:  # only a sweeper reads the objectives; a single run of any task needs none
        return None
    return job.objectives(results, list(config.get("optimized_metrics") or []))


def cli() -> None:
    """``python -m compframe.run``: the same as the ``compframe`` command (``compframe.cli``)."""
    from .cli import run

    run(sys.argv[1:])


if __name__ == "__main__":
    cli()
