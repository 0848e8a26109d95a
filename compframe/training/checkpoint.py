"""Training checkpoints: one file holding the whole DLRM, gathered from every rank.

``checkpoint.pt`` (in the job's folder, rewritten atomically) loads with
``torch.load(path, weights_only=True)`` and holds::

    {"format": "compframe.dlrm/1",
     "config": ModelConfig as a dict (n_dense, table_rows, dim, bottom_mlp, top_mlp, seed, max_ind_range, data_rows),
     "model": state_dict of the full DLRM (compframe.training.dlrm.DLRM(ModelConfig(**config)).load_state_dict),
     "iteration": the number of iterations done (the next one to run),
     "optimizer": {"name": "sgd", "lr": ..., "state": {}},  # plain SGD keeps no state
     "rng": {"torch": uint8 tensor, "numpy": {...}, "python": tuple},
     "owners": [rank of each table], "world_size": N, "task": the task's config,
     "evaluation": the last test metrics (auc, logloss, accuracy) or None}

State-dict keys: ``bottom.<k>.weight|bias``, ``top.<k>.weight|bias`` (``nn.Sequential`` indices,
ReLUs in between) and ``emb.<table>.weight`` (``[rows, dim]``, ``nn.EmbeddingBag`` sum).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

FORMAT = "compframe.dlrm/1"
FILE = "checkpoint.pt"


def get_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": random.getstate()}


def set_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_tuples(state["python"]))


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def save(path: Path, trainer, iteration: int, evaluation: dict | None) -> None:
    """Gather every rank's tables on rank 0 (point-to-point) and write the file there, atomically."""
    model, rank = trainer.model, trainer.rank
    if rank != 0:
        for t in model.tables:
            dist.send(model.emb[str(t)].weight.detach().cpu().contiguous(), dst=0)
        return
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    cfg = trainer.mcfg
    for t, owner in enumerate(trainer.owners):
        if owner != 0:
            w = torch.empty(cfg.table_rows[t], cfg.dim)
            dist.recv(w, src=owner)
            state[f"emb.{t}.weight"] = w
    doc = {"format": FORMAT, "config": cfg.to_dict(), "model": dict(sorted(state.items())), "iteration": iteration,
           "optimizer": {"name": "sgd", "lr": trainer.opt.param_groups[0]["lr"], "state": {}},
           "rng": get_rng(), "owners": list(trainer.owners), "world_size": trainer.world,
           "task": trainer.task, "evaluation": evaluation}
    path = Path(path)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(doc, tmp)
    os.replace(tmp, path)


def find(spec: str, out_dir: Path) -> Path | None:
    """The checkpoint named by ``task.resume``: ``auto`` (this job's folder, if it has one), a file,
    or a run folder holding ``checkpoint.pt``; ``""`` means start fresh."""
    if not spec:
        return None
    if spec == "auto":
        path = Path(out_dir) / FILE
        return path if path.exists() else None
    path = Path(spec)
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise FileNotFoundError(f"task.resume: no checkpoint at '{path}' (give a checkpoint.pt, its run folder, or 'auto')")
    return path


def load(path: Path, expected=None) -> dict[str, Any]:
    """Read a checkpoint (``weights_only``); with ``expected`` (a ModelConfig) the model must match it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"'{path}' is not a compframe DLRM checkpoint (format {FORMAT})")
    if expected is not None:
        want = expected.to_dict()
        diff = sorted(k for k in want if state["config"].get(k) != want[k])
        if diff:
            raise ValueError(f"checkpoint '{path}' holds another model: {', '.join(diff)} differ "
                             f"(checkpoint {[state['config'].get(k) for k in diff]}, this run {[want[k] for k in diff]})")
    return state
