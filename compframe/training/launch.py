"""Starting the ranks: torchrun-compatible ``env://`` rendezvous on loopback, a supervisor, event sinks.

``task=train`` with ``world_size`` N > 1 starts N processes (``python -m compframe.training.worker``)
with the variables torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR=127.0.0.1``,
``MASTER_PORT`` = a free port) and one thread each (torch, OpenMP, numba), then supervises them:
rank 0 appends its events (logged metrics, evaluations, results) as JSON lines to
``train_events.jsonl`` in the job's folder, which the supervisor replays into the job's recorder
(results.json, MLflow) as they come. Each rank's output goes to ``rank<r>.log``. If a rank exits
with an error or a signal, the others get ``grace_s`` to stop on their own (their collectives fail
or time out) and are then killed, and the job fails with an error naming the rank that died first.
When ``RANK`` and ``WORLD_SIZE`` are already set (the job runs under torchrun), the process joins
that world instead of spawning one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..job import _json_default

EVENTS = "train_events.jsonl"


class RankFailure(RuntimeError):
    """A rank died or stopped making progress; the message names it."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def joined_world() -> tuple[int, int] | None:
    """``(rank, world)`` when this process was started by torchrun (or our own spawner), else None."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return None


def backend_for(name: str) -> str:
    """``auto``: NCCL where CUDA is present, gloo on CPU."""
    if name != "auto":
        return name
    return "nccl" if torch.cuda.is_available() else "gloo"


def init(rank: int, world: int, backend: str, timeout_s: float) -> torch.device:
    """Join the process group (``env://``); every collective then times out after ``timeout_s``."""
    backend = backend_for(backend)
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))
    return device


def one_thread() -> None:
    """One compute thread per rank when ranks share the machine."""
    torch.set_num_threads(1)
    import numba

    numba.set_num_threads(1)


class RecorderSink:
    """Applies rank 0's events to the job's recorder (results.json, MLflow)."""

    def __init__(self, recorder):
        self.recorder = recorder

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        r = self.recorder
        if kind == "log":
            r.log_metrics(data["metrics"], step=data["step"])
            r.results.setdefault("history", []).append(data["row"])
            r.results.setdefault("losses", []).extend(data["losses"])
        elif kind == "eval":
            r.log_metrics({k: v for k, v in data["row"].items() if k != "iteration"}, step=data["step"])
            r.results.setdefault("evals", []).append(data["row"])
        elif kind == "update":
            r.results.update(data)
        else:
            raise ValueError(f"unknown training event '{kind}'")
        r.flush()


class FileSink:
    """Appends events as JSON lines (one write per event, flushed), for the supervisor to replay."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        self.file.write(json.dumps({"kind": kind, "data": data}, default=_json_default) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class NullSink:
    def emit(self, kind: str, data: dict[str, Any]) -> None:
        pass


def spawn(config: dict[str, Any], out_dir: Path, world: int, sink: RecorderSink, timeout_s: float,
          grace_s: float = 3.0) -> None:
    """Start ``world`` ranks on loopback and supervise them until all finish (or one fails)."""
    out_dir = Path(out_dir)
    spec = out_dir / "train_spec.json"
    spec.write_text(json.dumps({"config": config, "out_dir": str(out_dir)}, default=_json_default))
    events = out_dir / EVENTS
    events.unlink(missing_ok=True)
    events.touch()
    port = free_port()
    procs, logs = [], []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        log = open(out_dir / f"rank{rank}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-m", "compframe.training.worker", str(spec)],
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        _supervise(procs, events, sink, out_dir, timeout_s, grace_s)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for log in logs:
            log.close()


def _supervise(procs, events: Path, sink, out_dir: Path, timeout_s: float, grace_s: float) -> None:
    start_allowance = 120.0  # imports, rendezvous and model building come before the first event
    pos, last_event, buffer = 0, time.monotonic(), b""
    first_failure: tuple[int, int, float] | None = None
    stalled = 0.0
    with open(events, "rb") as f:
        while True:
            f.seek(pos)
            chunk = f.read()
            pos += len(chunk)
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = json.loads(line)
                sink.emit(event["kind"], event["data"])
                last_event = time.monotonic()
            codes = [p.poll() for p in procs]
            if all(c == 0 for c in codes) and not buffer:
                f.seek(pos)
                if not f.read():
                    return
                continue
            now = time.monotonic()
            if first_failure is None:
                for r, c in enumerate(codes):
                    if c not in (None, 0):
                        first_failure = (r, c, now)
                        break
            if first_failure is not None:
                if all(c is not None for c in codes) or now - first_failure[2] > grace_s:
                    break
            elif now - last_event > timeout_s + start_allowance:
                stalled = now - last_event
                break
            time.sleep(0.05)
    for p in procs:
        if p.poll() is None:
            p.kill()
    if first_failure is None:
        raise RankFailure(f"training made no progress for {stalled:.0f} s (task.timeout_s={timeout_s:g}); "
                          f"ranks killed; logs in {out_dir}/rank*.log")
    rank, code, _ = first_failure
    others = [f"rank {r} {_ended(p.returncode)}" for r, p in enumerate(procs) if r != rank]
    raise RankFailure(f"rank {rank} {_ended(code)}{_tail(out_dir / f'rank{rank}.log')}; {', '.join(others)}; "
                      f"logs in {out_dir}/rank*.log")


def _ended(code: int | None) -> str:
    """How a rank ended, from its return code (None: still running when the supervisor stopped it)."""
    if code is None:
        return "was stopped"
    if code == 0:
        return "had finished"
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f" (last output: {lines[-1][:300]})" if lines else ""
