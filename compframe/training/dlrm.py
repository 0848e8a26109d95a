"""The DLRM of Naumov et al. (2019, arXiv 1906.00091) in plain torch, and the study's two shapes.

``nn.EmbeddingBag`` tables (sum pooling), a bottom MLP over the dense features whose output has the
embedding dimension, the dot interaction (the pairwise dot products of the bottom output and the
pooled lookups, concatenated with the bottom output), a top MLP ending in one logit. The model is
split the way a model-parallel run uses it: ``lookup`` gives the pooled lookups of the tables this
process holds (the whole global batch), ``dense`` takes this rank's share of the dense features
and the pooled lookups of *every* table for that share, and returns logits.

Initialisation follows the reference implementation (facebookresearch/dlrm): table rows
``U(-1/sqrt(n), 1/sqrt(n))``, linear weights ``N(0, sqrt(2/(fan_in + fan_out)))``, biases
``N(0, sqrt(1/fan_out))``. Each table draws from its own generator seeded by ``(seed, table)``, so
a table has the same weights whichever rank holds it (one process and N ranks start equal).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

#: The study's two shapes (allenfengjr/dlrm_comp run scripts, SC_ADAE_scripts): embedding dim, bottom MLP after
#: the dense input (its last width is the dim), top MLP after the interaction (ends in 1), batch.
PRESETS = {
    "kaggle": {"dim": 32, "bottom_mlp": [512, 256, 64, 32], "top_mlp": [512, 256, 1], "batch_size": 128,
               "max_ind_range": 0},
    "terabyte": {"dim": 64, "bottom_mlp": [512, 256, 64], "top_mlp": [512, 512, 256, 1], "batch_size": 2048,
                 "max_ind_range": 10_000_000},
}


@dataclass
class ModelConfig:
    """Everything that fixes the model's tensors: enough to rebuild it from a checkpoint."""

    n_dense: int
    table_rows: list[int]
    dim: int
    bottom_mlp: list[int]
    top_mlp: list[int]
    seed: int = 0
    max_ind_range: int = 0  # rows are capped here (indices taken modulo), 0 = no cap
    data_rows: list[int] = field(default_factory=list)  # the rows the data source declared

    def __post_init__(self):
        if self.bottom_mlp and self.bottom_mlp[-1] != self.dim:
            raise ValueError(f"bottom_mlp {self.bottom_mlp} must end in the embedding dim {self.dim}")
        if not self.top_mlp or self.top_mlp[-1] != 1:
            raise ValueError(f"top_mlp {self.top_mlp} must end in 1 (one logit)")
        if any(r < 1 for r in self.table_rows):
            raise ValueError(f"table_rows {self.table_rows} must all be >= 1")

    @property
    def n_tables(self) -> int:
        return len(self.table_rows)

    @property
    def interaction_width(self) -> int:
        """Top MLP input: the bottom output plus one dot per pair of the ``1 + n_tables`` vectors."""
        n = 1 + self.n_tables
        return self.dim + n * (n - 1) // 2

    def to_dict(self) -> dict:
        return asdict(self)

    def table_bytes(self) -> int:
        return 4 * self.dim * sum(self.table_rows)


def capped_rows(rows: list[int], max_ind_range: int) -> list[int]:
    """Table sizes capped by ``max_ind_range`` (0 = no cap), as DLRM's ``--max-ind-range`` does."""
    return [min(r, max_ind_range) if max_ind_range > 0 else r for r in rows]


def mlp(widths: list[int], generator: torch.Generator, last_relu: bool) -> nn.Sequential:
    """Linear layers ``widths[0] -> widths[1] -> ...`` with ReLU between (and after the last if asked)."""
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(n_in, n_out)
        with torch.no_grad():
            lin.weight.normal_(0.0, math.sqrt(2.0 / (n_in + n_out)), generator=generator)
            lin.bias.normal_(0.0, math.sqrt(1.0 / n_out), generator=generator)
        layers.append(lin)
        if k < len(widths) - 2 or last_relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def dot_interaction(bottom: torch.Tensor, pooled: list[torch.Tensor]) -> torch.Tensor:
    """``[x, dots]``: the bottom output and the strictly-lower triangle of ``T Tᵀ``, ``T = [x, e_0, ...]``."""
    t = torch.stack([bottom, *pooled], dim=1)  # [B, n, d]
    z = torch.bmm(t, t.transpose(1, 2))  # [B, n, n]
    n = t.shape[1]
    li, lj = torch.tril_indices(n, n, offset=-1, device=t.device)
    return torch.cat([bottom, z[:, li, lj]], dim=1)


class DLRM(nn.Module):
    """DLRM holding the MLPs and the tables in ``tables`` (all of them by default).

    ``lookup(indices, offsets) -> {table: [B, dim]}`` pools the tables held here;
    ``dense(x, pooled) -> logits [B]`` runs the bottom MLP, the interaction and the top MLP.
    """

    def __init__(self, cfg: ModelConfig, tables: list[int] | None = None):
        super().__init__()
        self.cfg = cfg
        self.tables = list(range(cfg.n_tables)) if tables is None else sorted(tables)
        g = torch.Generator().manual_seed(cfg.seed)
        self.bottom = mlp([cfg.n_dense, *cfg.bottom_mlp], g, last_relu=True)
        self.top = mlp([cfg.interaction_width, *cfg.top_mlp], g, last_relu=False)
        self.emb = nn.ModuleDict()
        for t in self.tables:
            rows = cfg.table_rows[t]
            bag = nn.EmbeddingBag(rows, cfg.dim, mode="sum", sparse=True)
            gt = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 7919 * (t + 1))
            with torch.no_grad():
                bound = math.sqrt(1.0 / rows)
                bag.weight.uniform_(-bound, bound, generator=gt)
            self.emb[str(t)] = bag

    def dense_parameters(self) -> list[nn.Parameter]:
        """The data-parallel parameters (the MLPs), in a fixed order (for the allreduce)."""
        return [*self.bottom.parameters(), *self.top.parameters()]

    def lookup(self, indices: list[torch.Tensor], offsets: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        out = {}
        for t in self.tables:
            idx = indices[t]
            if self.cfg.max_ind_range > 0:
                idx = torch.remainder(idx, self.cfg.table_rows[t])
            out[t] = self.emb[str(t)](idx, offsets[t])
        return out

    def dense(self, x: torch.Tensor, pooled: list[torch.Tensor]) -> torch.Tensor:
        return self.top(dot_interaction(self.bottom(x), pooled)).squeeze(1)

    def forward(self, x, indices, offsets):
        """One-process forward over all tables (``tables`` must be all of them)."""
        pooled = self.lookup(indices, offsets)
        return self.dense(x, [pooled[t] for t in range(self.cfg.n_tables)])
