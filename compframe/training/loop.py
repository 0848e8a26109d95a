"""One rank's training loop: DLRM with model-parallel tables, data-parallel MLPs, compressed exchange.

Every rank reads the same global batches from the ``ClickData`` source, pools its own tables over
the whole batch, exchanges the pooled lookups (``Exchange``) and runs the MLPs on its share of the
batch. The loss of a rank is ``sum of BCE over its share / global batch``, and the MLP gradients
are summed by one allreduce (which also carries the loss), so N ranks optimise exactly the mean
BCE of the global batch, as one process does; only the order of float additions differs.

Per iteration the time is split into ``lookup``, ``compress``, ``exchange``, ``decompress`` (the
forward exchange), ``forward`` (bottom MLP, interaction, top MLP, loss), ``backward`` (MLP and
embedding backward, without the gradient exchange), ``exchange_bwd`` (+ ``compress_bwd``,
``decompress_bwd`` when gradients are compressed), ``allreduce``, ``optimizer`` and ``other``
(data, logging: the rest of the wall time). Rank 0 reports; the other ranks send it their table
statistics at each log step.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..metrics import speedups
from . import checkpoint
from .dlrm import DLRM, PRESETS, ModelConfig, capped_rows
from .exchange import Exchange, Timer, assign_tables, batch_splits

SPEEDUP_ROUNDS = 4  # the speed-up phases take turns this many times
PHASES = ("lookup", "compress", "exchange", "decompress", "forward", "backward", "exchange_bwd", "compress_bwd",
          "decompress_bwd", "allreduce", "optimizer")


def model_config(task: dict[str, Any], data) -> ModelConfig:
    """The preset named by ``task['preset']`` with the task's non-null overrides, sized by the data."""
    shape = {k: (task[k] if task.get(k) is not None else v) for k, v in PRESETS[task["preset"]].items()}
    rows = list(data.table_rows())
    return ModelConfig(n_dense=int(data.n_dense()), table_rows=capped_rows(rows, shape["max_ind_range"]),
                       dim=shape["dim"], bottom_mlp=list(shape["bottom_mlp"]), top_mlp=list(shape["top_mlp"]),
                       seed=task["seed"], max_ind_range=shape["max_ind_range"], data_rows=rows)


def batch_size(task: dict[str, Any]) -> int:
    return int(task["batch_size"] if task.get("batch_size") is not None else PRESETS[task["preset"]]["batch_size"])


class Trainer:
    """The state of one rank: model shard, optimizer, exchange, and what rank 0 reports."""

    def __init__(self, parts: dict, task: dict[str, Any], out_dir: Path, sink, rank: int, world: int,
                 device: torch.device | None = None):
        self.data, self.task, self.out_dir, self.sink = parts["data"], task, Path(out_dir), sink
        self.rank, self.world = rank, world
        self.device = device or torch.device("cpu")
        self.mcfg = model_config(task, self.data)
        if world > self.mcfg.n_tables:
            raise ValueError(f"task.world_size={world} exceeds the {self.mcfg.n_tables} tables: every rank must own one")
        self.batch = batch_size(task)
        if self.batch < world:
            raise ValueError(f"batch size {self.batch} is smaller than task.world_size={world}")
        self.owners = assign_tables(self.mcfg.table_rows, world)
        torch.manual_seed(task["seed"])
        np.random.seed(task["seed"] % 2**32)
        random.seed(task["seed"])
        self.model = DLRM(self.mcfg, tables=[t for t, o in enumerate(self.owners) if o == rank]).to(self.device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=task["lr"])
        comp = task["compress"]
        self.timer = Timer()
        self.exchange = Exchange(self.owners, rank, world, comp["mode"], parts.get("quantizer"), parts.get("encoder"),
                                 parts.get("schedule"), gradients=comp["gradients"], verify=comp["verify"],
                                 timer=self.timer, device=self.device, pack=comp.get("pack", "auto"))
        self.splits = batch_splits(self.batch, world)
        self.start = 0
        self.wall = 0.0
        self.wall_phases: dict[str, float] = {}

    # -- one iteration -------------------------------------------------------------------------
    def _tensors(self, batch, lo: int, hi: int):
        dev = self.device
        idx = [torch.from_numpy(np.asarray(i, dtype=np.int64)).to(dev) for i in batch.indices]
        off = [torch.from_numpy(np.asarray(o, dtype=np.int64)).to(dev) for o in batch.offsets]
        dense = torch.from_numpy(np.asarray(batch.dense[lo:hi], dtype=np.float32)).to(dev)
        label = torch.from_numpy(np.asarray(batch.label[lo:hi], dtype=np.float32)).to(dev)
        return idx, off, dense, label

    def step(self, it: int, batch) -> float:
        """One SGD step on the global ``batch``; returns the global mean BCE (same on every rank)."""
        tm, n = self.timer, len(batch)
        lo, hi = batch_splits(n, self.world)[self.rank]
        idx, off, dense, label = self._tensors(batch, lo, hi)
        with tm("lookup"):
            pooled = self.model.lookup(idx, off)
        self._dump(it, pooled)
        ly = self.exchange(pooled, n, it)
        with tm("forward"):
            logits = self.model.dense(dense, ly)
            loss = F.binary_cross_entropy_with_logits(logits, label, reduction="sum") / n
        with tm("backward"):
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        with tm("allreduce"):
            total = self._allreduce(loss.detach())
        with tm("optimizer"):
            self.opt.step()
        return total

    def _allreduce(self, loss: torch.Tensor) -> float:
        """Sum the MLP gradients and the loss over the ranks in one allreduce."""
        if self.world == 1:
            return float(loss)
        params = self.model.dense_parameters()
        flat = torch.cat([p.grad.reshape(-1) for p in params] + [loss.reshape(1)])
        dist.all_reduce(flat)
        pos = 0
        for p in params:
            p.grad.copy_(flat[pos:pos + p.numel()].view_as(p.grad))
            pos += p.numel()
        return float(flat[-1])

    def _dump(self, it: int, pooled: dict[int, torch.Tensor]) -> None:
        every = self.task["dump_every"]
        if not every or it % every:
            return
        folder = self.out_dir / "dumps"
        folder.mkdir(parents=True, exist_ok=True)
        for t, x in pooled.items():  # dlrm_comp dump layout: raw float32, C order, [batch, dim], no header
            np.ascontiguousarray(x.detach().cpu().numpy(), dtype="<f4").tofile(folder / f"EMB_{t}_iter_{it // every}.bin")

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, it: int) -> dict[str, float] | None:
        """Test AUC, log loss and accuracy (scikit-learn) on the first ``test_batches`` test batches;
        the exchange is uncompressed here (the study compresses training only). Rank 0 gets the dict."""
        from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

        preds, labels = [], []
        with torch.no_grad():
            for batch in islice(self.data.batches("test", self.task["test_batch_size"], 0), self.task["test_batches"]):
                n = len(batch)
                lo, hi = batch_splits(n, self.world)[self.rank]
                idx, off, dense, label = self._tensors(batch, lo, hi)
                ly = self.exchange(self.model.lookup(idx, off), n, it, compress=False)
                preds.append(torch.sigmoid(self.model.dense(dense, ly)).double().cpu().numpy())
                labels.append(label.cpu().numpy())
        mine = (np.concatenate(preds), np.concatenate(labels))
        parts = self._gather(mine)
        if self.rank != 0:
            return None
        p = np.concatenate([np.asarray(a[0]) for a in parts])
        y = np.concatenate([np.asarray(a[1]) for a in parts]).astype(np.int64)
        auc = float(roc_auc_score(y, p)) if 0 < y.sum() < y.size else math.nan
        return {"auc": auc, "logloss": float(log_loss(y, p, labels=[0, 1])),
                "accuracy": float(accuracy_score(y, p > 0.5)), "test_samples": int(y.size)}

    def _gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    # -- reporting -----------------------------------------------------------------------------
    def _table_stats(self, which: str) -> dict[int, dict[str, float]]:
        """Per-table statistics of every rank, gathered (``which``: 'interval' or 'run')."""
        local = self.exchange.reset_stats() if which == "interval" else self.exchange.totals
        mine = {t: vars(s).copy() for t, s in local.items()}
        merged: dict[int, dict[str, float]] = {}
        for part in self._gather(mine):
            merged.update(part)
        return dict(sorted(merged.items()))

    def _log(self, done: int, losses: list[float], seconds: dict[str, float], steps: int) -> None:
        """One log row at ``done`` iterations: the last loss, the interval's means, per-table statistics."""
        tables = self._table_stats("interval")
        if self.rank != 0:
            return
        raw = sum(s["raw_bytes"] for s in tables.values())
        sent = sum(s["sent_bytes"] for s in tables.values())
        metrics = {"loss": losses[-1], "loss_avg": float(np.mean(losses)), "exchange_bytes": sent,
                   "exchange_raw_bytes": raw, "compression_ratio": raw / sent if sent else math.nan,
                   "wire_bytes": sum(s["wire_bytes"] for s in tables.values()),
                   "wire_raw_bytes": sum(s["wire_raw_bytes"] for s in tables.values())}
        metrics.update({f"{k}_ms": 1e3 * v / steps for k, v in _phases(seconds).items()})
        for t, s in tables.items():
            metrics[f"ratio.table_{t}"] = s["raw_bytes"] / s["sent_bytes"] if s["sent_bytes"] else math.nan
            metrics[f"bound.table_{t}"] = s["rel_bound"]
            metrics[f"abs_bound.table_{t}"] = s["abs_bound"]
        self.sink.emit("log", {"step": done, "metrics": {k: v for k, v in metrics.items() if _finite(v)},
                               "row": {"iteration": done, **metrics}, "losses": losses})

    # -- the run -------------------------------------------------------------------------------
    def resume(self, path: Path) -> None:
        state = checkpoint.load(path, self.mcfg)
        own = {k: v for k, v in state["model"].items() if k in self.model.state_dict()}
        self.model.load_state_dict(own)
        self.opt.param_groups[0]["lr"] = state["optimizer"]["lr"]
        checkpoint.set_rng(state["rng"])
        self.start = int(state["iteration"])
        if self.rank == 0:
            self.sink.emit("update", {"resumed_from": {"path": str(path), "iteration": self.start}})

    def save(self, it: int, evaluation: dict | None) -> None:
        path = self.out_dir / "checkpoint.pt"
        checkpoint.save(path, self, it, evaluation)
        if self.rank == 0:
            self.sink.emit("update", {"checkpoint": {"path": str(path), "iteration": it}})

    def run(self) -> None:
        task = self.task
        iters, log_every = task["iterations"], max(1, task["log_every"])
        if self.rank == 0:
            self.sink.emit("update", {"model": self.mcfg.to_dict(), "owners": self.owners, "batch_size": self.batch,
                                      "world_size": self.world, "start_iteration": self.start})
        losses: list[float] = []
        evaluation = None
        steps_done, t_run = 0, time.perf_counter()
        t_log = time.perf_counter()
        self.last_loss = math.nan
        for it, batch in zip(range(self.start, iters), self.data.batches("train", self.batch, self.start)):
            if it == task["crash_at"] and self.rank == task["crash_rank"]:
                _crash(self.world, it)
            self.last_loss = self.step(it, batch)
            losses.append(self.last_loss)
            steps_done += 1
            done = it + 1
            if done % log_every == 0 or done == iters:
                seconds = self.timer.reset()
                seconds["wall"] = time.perf_counter() - t_log
                self._log(done, losses, seconds, len(losses))
                self.wall_phases = _accumulate(self.wall_phases, seconds)
                losses, t_log = [], time.perf_counter()
            paused, held = time.perf_counter(), self.timer.reset()  # evaluation and saving are not steps
            if task["eval_every"] and done % task["eval_every"] == 0 and done < iters:
                evaluation = self._eval_event(done)
            if task["checkpoint_every"] and done % task["checkpoint_every"] == 0 and done < iters:
                self.save(done, evaluation)
            self.timer.seconds.clear()
            self.timer.seconds.update(held)
            t_log += time.perf_counter() - paused
        done = self.start + steps_done
        self.wall = time.perf_counter() - t_run
        evaluation = self._eval_event(done)
        self.save(done, evaluation)
        tables = self._table_stats("run")  # before the speed-up phases, which count bytes of their own
        speed = self.speedup(done) if task["speedup_iters"] > 0 and self.exchange.mode != "none" else None
        final = [self._final(done, steps_done, evaluation, tables, speed) if self.rank == 0 else None]
        if self.world > 1:  # every rank returns the totals (a sweeper under torchrun asks each one)
            dist.broadcast_object_list(final, src=0)
        self.final = final[0]
        if self.rank == 0:
            self.sink.emit("update", self.final)

    def _eval_event(self, done: int) -> dict | None:
        ev = self.evaluate(done)
        if self.rank == 0:
            self.sink.emit("eval", {"step": done, "row": {"iteration": done, **ev}})
        return ev

    def _final(self, done, steps_done, evaluation, tables, speed) -> dict:
        phases = _phases(self.wall_phases)
        per_step = {f"{k}_ms": 1e3 * v / max(steps_done, 1) for k, v in phases.items()}
        raw = sum(s["raw_bytes"] for s in tables.values())
        sent = sum(s["sent_bytes"] for s in tables.values())
        gbytes = self.exchange.grad_bytes
        step_ms = per_step.get("wall_ms", math.nan)
        comp_ms = per_step.get("compress_ms", 0.0) + per_step.get("decompress_ms", 0.0)
        totals = {
            "iterations": done, "steps_run": steps_done, "train_seconds": self.wall,
            "final_loss": self.last_loss, **(evaluation or {}),
            "compression_ratio": raw / sent if sent else math.nan,
            "exchange_raw_bytes": raw, "exchange_bytes": sent,
            "wire_raw_bytes": sum(s["wire_raw_bytes"] for s in tables.values()),
            "wire_bytes": sum(s["wire_bytes"] for s in tables.values()),
            "grad_exchange_raw_bytes_rank0": gbytes[0], "grad_exchange_bytes_rank0": gbytes[1],
            "compress_share_of_step": comp_ms / step_ms if step_ms else math.nan,
            "max_error_over_bound": max((s["max_error_over_bound"] for s in tables.values()), default=0.0)
            if self.exchange.verify else None,
            **per_step,
        }
        by_table = [{"table": t, "owner": self.owners[t], "rows": self.mcfg.table_rows[t],
                     "compression_ratio": s["raw_bytes"] / s["sent_bytes"] if s["sent_bytes"] else math.nan, **s}
                    for t, s in tables.items()]
        out = {"totals": totals, "by_table": by_table}
        if speed is not None:
            out["speedup"] = speed
            totals.update({k: v for k, v in speed["summary"].items()})
        return out

    # -- the speed-up phases ------------------------------------------------------------------------
    def speedup(self, done: int) -> dict:
        """Time ``speedup_iters`` iterations per phase: mode none and the run's mode, at loopback speed
        and throttled to each B of ``bandwidths_gbps``. The phases take turns in ``SPEEDUP_ROUNDS``
        rounds (so a change of the machine's load hits them alike); each phase of a round starts from
        the trained weights and reads the same batches, after one untimed warm-up iteration."""
        ex, n = self.exchange, self.task["speedup_iters"]
        per_round = -(-n // SPEEDUP_ROUNDS)
        snapshot = {k: v.clone() for k, v in self.model.state_dict().items()}
        mode = ex.mode
        phases = [("none", None), (mode, None)]
        for b in self.task["bandwidths_gbps"]:
            phases += [("none", b), (mode, b)]
        acc = [{"wall": 0.0, "seconds": {}, "raw": 0, "sent": 0, "comp": 0.0, "decomp": 0.0} for _ in phases]
        for _ in range(SPEEDUP_ROUNDS):
            for a, (phase_mode, b) in zip(acc, phases):
                ex.mode, ex.throttle_gbps = phase_mode, b
                batches = self.data.batches("train", self.batch, done)
                self.step(done, next(batches))
                self.timer.reset()
                ex.reset_stats()
                self._barrier()
                t0 = time.perf_counter()
                for k, batch in zip(range(per_round), batches):
                    self.step(done + 1 + k, batch)
                a["wall"] += time.perf_counter() - t0
                seconds = self.timer.reset()
                a["seconds"] = _accumulate(a["seconds"], seconds)
                tables = self._table_stats("interval")
                a["raw"] += sum(s["raw_bytes"] for s in tables.values())
                a["sent"] += sum(s["sent_bytes"] for s in tables.values())
                for c, d in self._gather((seconds.get("compress", 0.0), seconds.get("decompress", 0.0))):
                    a["comp"], a["decomp"] = a["comp"] + c, a["decomp"] + d
                self.model.load_state_dict(snapshot)
        ex.mode, ex.throttle_gbps = mode, None
        ex.reset_stats()
        steps = per_round * SPEEDUP_ROUNDS
        rows = [{"mode": m, "bandwidth_gbps": b, "step_ms": 1e3 * a["wall"] / steps,
                 **{f"{k}_ms": 1e3 * v / steps for k, v in _phases(a["seconds"]).items()},
                 "compression_ratio": a["raw"] / a["sent"] if a["sent"] else math.nan, "raw_bytes": a["raw"],
                 "compress_gbps_per_rank": a["raw"] / max(a["comp"], 1e-12) / 1e9,
                 "decompress_gbps_per_rank": a["raw"] / max(a["decomp"], 1e-12) / 1e9}
                for a, (m, b) in zip(acc, phases)]
        return {"iterations_per_phase": steps, "rounds": SPEEDUP_ROUNDS, "phases": rows,
                "summary": _speedup_summary(rows, self.task["bandwidths_gbps"])}

    def _barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def _comm_ms(row: dict) -> float:
    return sum(row.get(f"{k}_ms", 0.0) for k in ("compress", "exchange", "decompress", "exchange_bwd",
                                                   "compress_bwd", "decompress_bwd"))


def _speedup_summary(rows: list[dict], bandwidths) -> dict[str, float]:
    """The three figures side by side (docs/training.md): measured at loopback, the benchmark's model
    ``1/(1/CR + B(1/Tc + 1/Td))`` (dlrm_comp speedup_calculation.py) fed with the measured compress and
    decompress throughputs, and measured with the exchange throttled to B."""
    base, comp = rows[0], rows[1]
    out = {"speedup_loopback": base["step_ms"] / comp["step_ms"],
           "comm_speedup_loopback": _comm_ms(base) / _comm_ms(comp)}
    tc, td = comp["compress_gbps_per_rank"], comp["decompress_gbps_per_rank"]
    model = speedups(comp["compression_ratio"], {"quantize_gbps": tc, "encode_gbps": math.inf,
                                                 "decode_gbps": td, "dequantize_gbps": math.inf}, bandwidths)
    for k, b in enumerate(bandwidths):
        none_b, comp_b = rows[2 + 2 * k], rows[3 + 2 * k]
        out[f"speedup_model@{b:g}GBps"] = model[f"speedup@{b:g}GBps"]
        out[f"comm_speedup_throttled@{b:g}GBps"] = _comm_ms(none_b) / _comm_ms(comp_b)
        out[f"speedup_throttled@{b:g}GBps"] = none_b["step_ms"] / comp_b["step_ms"]
    return out


def _phases(seconds: dict[str, float]) -> dict[str, float]:
    """Seconds per phase; ``backward`` net of the gradient exchange nested in it; ``other`` = wall - rest."""
    out = {k: seconds.get(k, 0.0) for k in PHASES}
    out["backward"] -= out["exchange_bwd"] + out["compress_bwd"] + out["decompress_bwd"]
    out["throttle"] = seconds.get("throttle", 0.0)  # slept, inside exchange and exchange_bwd
    out["throttle_target"] = seconds.get("throttle_target", 0.0)  # bytes / B: what should have been slept
    if "wall" in seconds:
        out["wall"] = seconds["wall"]
        out["other"] = seconds["wall"] - sum(out[k] for k in PHASES)
    return out


def _accumulate(acc: dict[str, float], seconds: dict[str, float]) -> dict[str, float]:
    out = dict(acc)
    for k, v in seconds.items():
        out[k] = out.get(k, 0.0) + v
    return out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _crash(world: int, it: int) -> None:
    """Fault injection (``task.crash_at``): a spawned rank dies as if killed; one process raises."""
    if world > 1:
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected crash at iteration {it} (task.crash_at)")
