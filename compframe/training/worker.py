"""One spawned rank: ``python -m compframe.training.worker <train_spec.json>`` (see ``launch``).

It joins the ``env://`` world from the torchrun variables, builds the run's plugins through the
registry from the spec's config, trains, and sends rank 0's events to ``train_events.jsonl``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from ..job import build_parts
from . import launch
from .loop import Trainer


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    config, out_dir = spec["config"], Path(spec["out_dir"])
    rank, world = launch.joined_world()
    task = config["task"]
    launch.one_thread()
    device = launch.init(rank, world, task["backend"], task["timeout_s"])
    sink = launch.FileSink(out_dir / launch.EVENTS) if rank == 0 else launch.NullSink()
    try:
        parts = build_parts({k: v for k, v in config.items() if k != "task"})
        run(parts, task, out_dir, sink, rank, world, device)
    finally:
        if rank == 0:
            sink.close()
        dist.destroy_process_group()


def run(parts, task, out_dir, sink, rank, world, device) -> dict:
    """Train this rank (resuming if ``task.resume`` names a checkpoint); returns rank 0's final results."""
    from . import checkpoint

    trainer = Trainer(parts, task, out_dir, sink, rank, world, device)
    resume = checkpoint.find(task["resume"], out_dir)
    if resume is not None:
        trainer.resume(resume)
    trainer.run()
    return trainer.final


if __name__ == "__main__":
    main(sys.argv[1])
