"""``train``: DLRM training with a compressed embedding all-to-all (compframe.training; docs/training.md).

The data source must be a click log (``base.ClickData``: ``criteo`` or ``criteo_synthetic``, the
default of this task). The run's schedule, quantizer and encoder compress the pooled lookups that
travel between ranks (``compress.mode``: none, simulate, real). ``world_size`` ranks are started on
loopback (or joined, under torchrun); with ``world_size=1`` the same loop runs in this process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ...base import ClickData, Task
from ...registry import register

COMPRESS_KEYS = {"mode": ("none", "simulate", "real"), "gradients": (True, False), "verify": (True, False),
                 "pack": ("auto", "slice", "destination")}


@register("task", "train")
class Train(Task):
    """Train DLRM (preset ``kaggle`` or ``terabyte``; ``dim``, ``bottom_mlp``, ``top_mlp``,
    ``batch_size``, ``max_ind_range`` override the preset when set) for ``iterations`` SGD steps.

    ``compress``: ``mode`` (none | simulate | real), ``gradients`` (also compress the backward
    exchange), ``verify`` (the sender decompresses what it sends and fails if any element is out
    of bound), ``pack`` (real mode: ``slice``, a frame per table and destination; ``destination``, one
    frame per destination rank; ``auto``, destination where the quantizer allows it: int8, int16). ``eval_every``/``log_every``/``checkpoint_every``/``dump_every``: iterations (0 =
    only at the end / never for dumps). ``speedup_iters`` > 0 times that many iterations per phase
    (none and the run's mode, loopback and throttled to each of ``bandwidths_gbps``) after training.
    ``crash_at``/``crash_rank`` inject a fault (the rank dies at that iteration), for tests.
    """

    @dataclass
    class Config:
        preset: str = "kaggle"
        dim: int | None = None
        bottom_mlp: list[int] | None = None
        top_mlp: list[int] | None = None
        batch_size: int | None = None
        max_ind_range: int | None = None
        iterations: int = 1000
        lr: float = 0.1
        seed: int = 0
        compress: dict[str, Any] = field(default_factory=lambda: {"mode": "real", "gradients": False, "verify": False,
                                                                  "pack": "auto"})
        world_size: int = 2
        backend: str = "auto"
        timeout_s: float = 60.0
        log_every: int = 10
        eval_every: int = 0
        test_batches: int = 4
        test_batch_size: int = 4096
        checkpoint_every: int = 0
        resume: str = ""
        dump_every: int = 0
        bandwidths_gbps: list[float] = field(default_factory=lambda: [5.0])
        speedup_iters: int = 0
        crash_at: int = -1
        crash_rank: int = 0

    def check(self):
        from compframe.training.dlrm import PRESETS

        c = self.config
        self.require("preset", choices=sorted(PRESETS))
        for name in ("iterations", "world_size", "log_every", "test_batches", "test_batch_size"):
            self.require(name, low=1)
        for name in ("eval_every", "checkpoint_every", "dump_every", "speedup_iters"):
            self.require(name, low=0)
        for name in ("dim", "batch_size"):
            if getattr(c, name) is not None:
                self.require(name, low=1)
        if c.max_ind_range is not None:
            self.require("max_ind_range", low=0)
        self.require("lr", low=0.0, open_low=True)
        self.require("timeout_s", low=0.0, open_low=True)
        self.require("backend", choices=("auto", "gloo", "nccl"))
        for i, b in enumerate(c.bandwidths_gbps):
            if not b > 0:
                self.fail("bandwidths_gbps", f"entry {i} is {b}; bandwidths must be > 0 (GB/s)")
        unknown = sorted(set(c.compress) - set(COMPRESS_KEYS))
        if unknown:
            self.fail("compress", f"has unknown keys {unknown}; allowed: {', '.join(COMPRESS_KEYS)}")
        merged = {"mode": "real", "gradients": False, "verify": False, "pack": "auto", **c.compress}
        for key, allowed in COMPRESS_KEYS.items():
            if merged[key] not in allowed:
                self.fail("compress", f"{key}={merged[key]!r}; allowed: {', '.join(map(str, allowed))}")
        c.compress = merged
        cpus = os.cpu_count() or 1
        if c.world_size > cpus and "RANK" not in os.environ:
            self.fail("world_size", f"is {c.world_size} but this machine has {cpus} CPUs; allowed range [1, {cpus}] "
                                    "(one process per rank)")

    def run(self, parts, recorder, progress: bool = True):
        from compframe.training import launch
        from compframe.training.plots import plot_run

        data = parts["data"]
        if not isinstance(data, ClickData):
            raise TypeError(f"task=train needs a click-log data source (data=criteo_synthetic or data=criteo), "
                            f"got data={data.plugin_id}")
        task = self.get_config()
        sink = launch.RecorderSink(recorder)
        joined = launch.joined_world()
        if joined is not None:  # under torchrun: this process is one rank of an existing world
            rank, world = joined
            if rank != 0:
                recorder.path = recorder.out_dir / f"results.rank{rank}.json"
            device = launch.init(rank, world, self.config.backend, self.config.timeout_s)
            try:
                launch.one_thread()
                final = self._train(parts, task, recorder, sink if rank == 0 else launch.NullSink(), rank, world, device)
                if rank != 0:
                    recorder.results["totals"] = final["totals"]
            finally:
                launch.dist.destroy_process_group()
        elif self.config.world_size == 1:  # in this process, with one compute thread like each spawned rank
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                self._train(parts, task, recorder, sink, 0, 1, None)
            finally:
                torch.set_num_threads(threads)
        else:
            launch.spawn({**recorder.config, "task": task}, recorder.out_dir, self.config.world_size, sink, self.config.timeout_s)
        plot_run(recorder.results, recorder.out_dir)
        return recorder.results

    @staticmethod
    def _train(parts, task, recorder, sink, rank, world, device):
        from compframe.training.worker import run

        return run(parts, task, recorder.out_dir, sink, rank, world, device)
