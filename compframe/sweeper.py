"""``hydra/sweeper=compframe_optuna``: Hydra's Optuna sweeper, made safe to resume.

hydra-optuna-sweeper 1.4.0rc3 loads a stored study (``load_if_exists``) but builds its sampler from
the configured seed every time, so a resumed sweep draws the startup trials of the first run
again, parameter for parameter; it records no heartbeat, so a trial left RUNNING by a killed
sweep stays RUNNING forever; and it numbers jobs from 0 in each process, so with a fixed
``hydra.sweep.dir`` a resumed sweep writes into the folders of earlier trials. This sweeper, a thin
layer over the plugin's own implementation (same parameters, same search-space syntax):

- reseeds the sampler when the study already holds trials: seed ``SeedSequence([seed,
  n_trials_stored])``, so a resumed sweep continues with new draws (a fresh study keeps ``seed``);
- seeds each trial's draws from ``SeedSequence([seed, trial number])`` (``sweeper_impl.seed_per_trial``):
  several sweepers sharing one study (PostgreSQL storage) with the same seed would otherwise draw
  the same parameters in every process;
- keeps a heartbeat for every running trial (``storage.record_heartbeat`` every
  ``heartbeat_interval`` s, on an ``RDBStorage`` with ``grace_period``) and, when a sweep starts,
  marks FAIL the trials whose heartbeat stopped more than ``grace_period`` s ago
  (``optuna.storages.fail_stale_trials``): a killed sweep's trials, not those of a sweep still
  running elsewhere on the same study;
- numbers each job by its Optuna trial (``hydra.job.num`` = ``trial.number``), so job folders are
  never reused, even in a fixed sweep folder.

The killed sweep's MLflow runs are closed as KILLED by ``tracking.SweepCallback`` (process check).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf

log = logging.getLogger("compframe.sweeper")


class ResumableOptunaSweeper(Sweeper):
    """The Optuna sweeper with reseeding on resume, trial heartbeats and trial-numbered jobs."""

    def __init__(self, sampler: Any, direction: Any, storage: Any | None, study_name: str | None, n_trials: int,
                 n_jobs: int, max_failure_rate: float, custom_search_space: str | None, params: Any | None,
                 heartbeat_interval: int = 10, grace_period: int = 30) -> None:
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        from .sweeper_impl import ResumableImpl, resumed_seed, stored_trials

        sampler = OmegaConf.create(OmegaConf.to_container(sampler, resolve=True))
        seed = sampler.get("seed")
        n_stored = stored_trials(storage if isinstance(storage, str) else None, study_name)
        if "seed" in sampler:
            sampler.seed = resumed_seed(sampler.seed, n_stored)
            if n_stored:
                log.info("study '%s' holds %d trials: sampler reseeded to %s", study_name, n_stored, sampler.seed)
        sampler = instantiate(sampler, _execution_whitelist_=("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*"))
        self.sweeper = ResumableImpl(sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate,
                                      custom_search_space, params, heartbeat_interval=heartbeat_interval,
                                      grace_period=grace_period, seed=seed)

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)


@dataclass
class ResumableOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "compframe.sweeper.ResumableOptunaSweeper"
    heartbeat_interval: int = 10   # seconds between heartbeats of a running trial; 0: none
    grace_period: int = 30         # seconds without a heartbeat after which a RUNNING trial is dead


def register() -> None:
    """Offer ``hydra/sweeper=compframe_optuna`` (with the plugin's ``hydra/sweeper/sampler`` options).

    Imports no optuna: the command line calls it at start-up."""
    from hydra.core.plugins import Plugins

    Plugins.instance().register(ResumableOptunaSweeper)
    ConfigStore.instance().store(group="hydra/sweeper", name="compframe_optuna", node=ResumableOptunaSweeperConf,
                                 provider="compframe", replace=True)
