"""One spawned rank: ``python -m compframe.training.worker <train_spec.json>`` (see ``launch``).

It joins the ``env://`` world from the torchrun variables, builds the run's plugins through the
registry from the spec's config, trains, and sends rank 0's events to ``train_events.jsonl``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import traceback
from pathlib import Path

import torch.distributed as dist

from ..job import build_parts
from . import launch
from .loop import Trainer


def main(spec_path: str) -> None:
    faulthandler.enable()  # a rank killed by a signal leaves every thread's Python stack in rank<r>.log
    spec = json.loads(Path(spec_path).read_text())
    config, out_dir = spec["config"], Path(spec["out_dir"])
    rank, world = launch.joined_world()
    task = config["task"]
    launch.one_thread()
    device = launch.init(rank, world, task["backend"], task["timeout_s"])
    sink = launch.FileSink(out_dir / launch.EVENTS) if rank == 0 else launch.NullSink()
    code = 0
    try:
        parts = build_parts({k: v for k, v in config.items() if k != "task"})
        run(parts, task, out_dir, sink, rank, world, device)
        dist.barrier()  # no rank (rank 0 hosts the rendezvous store) leaves while another still talks
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        if rank == 0:
            sink.close()
        dist.destroy_process_group()
    # Ranks were seen to die by SIGABRT ("terminate called without an active exception") in the
    # interpreter's teardown after a finished run, about once in 15 two-rank runs under load: native
    # threads (gloo, torch) meeting Python's finalization. Everything is written and the group is
    # destroyed by now, so the teardown is skipped.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
