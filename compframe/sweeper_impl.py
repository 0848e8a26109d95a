"""The heavy half of ``compframe.sweeper`` (imports optuna): reseeding, per-trial seeds, heartbeats,
trial-numbered jobs."""

from __future__ import annotations

import logging
import threading

import numpy as np
import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from optuna.samplers._lazy_random_state import LazyRandomState  # the random state of every Optuna sampler

from .dblock import schema_lock

log = logging.getLogger("compframe.sweeper")


def stored_trials(storage: str | None, study_name: str | None) -> int:
    """How many trials the stored study holds (0 if there is no storage or no such study).

    The first process to open an empty database creates Optuna's tables under ``schema_lock``, so
    sweepers starting together on one PostgreSQL (or sqlite) database do not race the creation."""
    if not storage or not study_name:
        return 0
    try:
        with schema_lock(storage):
            storage = optuna.storages.RDBStorage(storage)
        return len(optuna.load_study(study_name=study_name, storage=storage).trials)
    except KeyError:  # no study of that name yet
        return 0
    except Exception as e:  # noqa: BLE001 - an unreadable storage: the sweep itself will say why
        log.warning("could not count the stored trials of study '%s' (%s); the sampler keeps its seed", study_name, e)
        return 0


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial ``number``'s draws: ``SeedSequence([seed, number])``, distinct per trial."""
    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0])


def seed_per_trial(sampler: optuna.samplers.BaseSampler, seed: int | None) -> None:
    """Reseed ``sampler`` from ``trial_seed(seed, trial.number)`` before each trial (``before_trial``
    runs before any draw of the trial, relative or independent).

    Trial numbers are handed out by the storage, so sweepers sharing one study draw differently
    even with the same configured seed (one sampler stream per process drew the same parameters in
    every process), and a trial's draws depend only on the seed, its number and the study so far.
    The grid sampler, built only when the sweep starts (the plugin defers it), keeps its own seed:
    it skips the grid points the study already ran or is running, whichever sweeper asked them.
    """
    built = isinstance(sampler, optuna.samplers.BaseSampler)
    if seed is None or not built or getattr(sampler, "_compframe_seeded", False):
        return
    before_trial = sampler.before_trial

    def seeded_before_trial(study, trial):
        _reseed(sampler, trial_seed(seed, trial.number))
        before_trial(study, trial)

    sampler.before_trial = seeded_before_trial
    sampler._compframe_seeded = True


def _reseed(sampler: optuna.samplers.BaseSampler, seed: int) -> None:
    """Seed every random state the sampler holds, its own and those of the samplers it wraps."""
    for value in vars(sampler).values():
        if isinstance(value, LazyRandomState):
            value.rng.seed(seed)
        elif isinstance(value, optuna.samplers.BaseSampler):
            _reseed(value, seed)


def resumed_seed(seed: int | None, n_stored: int) -> int | None:
    """The sampler seed of a sweep that finds ``n_stored`` trials: ``seed`` itself for a new study."""
    if seed is None or n_stored == 0:
        return seed
    return int(np.random.SeedSequence([int(seed), int(n_stored)]).generate_state(1)[0])


class _Heartbeat:
    """Records a heartbeat for some trials now and every ``interval`` seconds until stopped."""

    def __init__(self, storage, trial_ids: list[int], interval: float):
        self.storage, self.trial_ids, self.interval = storage, trial_ids, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            for trial_id in self.trial_ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as e:  # noqa: BLE001 - a missed beat must not stop the sweep
                    log.warning("heartbeat of trial %s not recorded: %s", trial_id, e)
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


class _TrialLauncher:
    """Wraps Hydra's launcher: jobs numbered by trial, heartbeats while they run."""

    def __init__(self, launcher, impl: ResumableImpl):
        self.launcher, self.impl = launcher, impl

    def launch(self, job_overrides, initial_job_idx: int):
        trials = self.impl.asked
        if not self.impl.heartbeat:
            return self._launch(job_overrides, initial_job_idx)
        with _Heartbeat(self.impl.storage, [t._trial_id for t in trials], self.impl.heartbeat_interval):
            return self._launch(job_overrides, initial_job_idx)

    def _launch(self, job_overrides, initial_job_idx: int) -> list:
        """Launchers number a batch's jobs from its first index on: a batch whose trial numbers have
        gaps (another sweeper on the study asked in between) goes out in runs of consecutive numbers."""
        numbers = [t.number for t in self.impl.asked]
        if not numbers:
            return self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        returns, start = [], 0
        for i in range(1, len(numbers) + 1):
            if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
                returns += self.launcher.launch(job_overrides[start:i], initial_job_idx=numbers[start])
                start = i
        return returns


class ResumableImpl(OptunaSweeperImpl):
    def __init__(self, *args, heartbeat_interval: int, grace_period: int, seed: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        seed_per_trial(self.sampler, seed)
        self.heartbeat_interval = heartbeat_interval
        self.asked: list[optuna.trial.Trial] = []
        self.heartbeat = isinstance(self.storage, str) and heartbeat_interval > 0
        if self.heartbeat:
            with schema_lock(self.storage):
                self.storage = optuna.storages.RDBStorage(self.storage, heartbeat_interval=heartbeat_interval,
                                                          grace_period=grace_period)

    def setup(self, **kwargs) -> None:
        super().setup(**kwargs)
        self.launcher = _TrialLauncher(self.launcher, self)

    def sweep(self, arguments: list[str]) -> None:
        if self.heartbeat and self.study_name:
            try:
                study = optuna.load_study(study_name=self.study_name, storage=self.storage)
            except KeyError:
                study = None
            if study is not None:
                running = [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
                optuna.storages.fail_stale_trials(study)
                failed = [t.number for t in study.get_trials(deepcopy=False)
                          if t.number in running and t.state == optuna.trial.TrialState.FAIL]
                if failed:
                    log.warning("trials %s of study '%s' lost their heartbeat (a killed sweep): marked FAIL",
                                failed, self.study_name)
        super().sweep(arguments)

    def _configure_trials(self, trials, *args, **kwargs):
        self.asked = list(trials)
        if isinstance(self.sampler, optuna.samplers.GridSampler):
            _tolerate_grid_stop(self.sampler)
        return super()._configure_trials(trials, *args, **kwargs)


def _tolerate_grid_stop(sampler: optuna.samplers.GridSampler) -> None:
    """Let the grid's last trial be told FAIL without ending the sweep in a RuntimeError.

    GridSampler's ``after_trial`` calls ``study.stop()`` once the grid is used up, and Optuna refuses
    ``stop()`` outside ``optimize``. hydra-optuna-sweeper 1.4.0rc3 tolerates that after a COMPLETE
    trial but not after ``tell(FAIL)``, so a failing last grid point crashed the sweep. The sweeper
    already caps a grid sweep at the grid's size, so the stop request has nothing left to stop.
    """
    if getattr(sampler, "_compframe_tolerates_stop", False):
        return
    after_trial = sampler.after_trial

    def tolerant_after_trial(study, trial, state, values):
        try:
            after_trial(study, trial, state, values)
        except RuntimeError as e:
            if "Study.stop" not in str(e):
                raise

    sampler.after_trial = tolerant_after_trial
    sampler._compframe_tolerates_stop = True
