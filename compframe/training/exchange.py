"""The compressed all-to-all of the pooled embedding lookups (model-parallel tables, data-parallel MLPs).

Every rank holds some tables and pools them over the whole global batch; rank ``r`` needs, for its
share of the batch (rows ``splits[r]``), the pooled lookups of every table. ``Exchange`` sends each
owner's ``[B_r, dim]`` slices to their ranks with ``torch.distributed.all_to_all_single``: first the
sizes (an int64 per slice), then the payload as one uint8 tensor with uneven splits. The payload of
a slice depends on ``mode``:

- ``none``: the float32 bytes of the slice;
- ``simulate``: the pooled lookup is quantized and dequantized in place with the run's quantizer
  and ``bound = schedule(table, iteration)`` (as the study's training script
  does: allenfengjr/dlrm_comp, dlrm_s_with_compress_quan.py), and the float32 bytes of the result travel;
- ``real``: frames travel (how the slices go into frames: ``pack``, below); the receiver parses
  them, decodes and dequantizes. With ``pack=slice`` each slice goes through the registry's pipeline
  (``compframe.pipeline``: quantize, encode, frame). A ``rel`` bound is taken over the whole pooled
  lookup ``[B, dim]`` of the table (``eb_abs = eb * (max - min)``, as the study does), and every
  slice is compressed with that ``abs`` bound, so the error does not depend on how many ranks share
  the batch. With ``pack=slice`` the table's range is found slice by slice in one pass
  (``kernels.uniform.finite_range``); a quantizer that ``takes_value_range`` (int8, int16) gets its
  slice's exact range, so it skips its own min/max pass and its frame is byte-identical to the
  two-pass frame it would build without it (slices below ``kernels.uniform.ONE_PASS_MIN`` values,
  every slice in practice, build that frame either way).

``pack`` (real mode): ``slice`` sends each (table, destination) slice as a frame of its own;
``destination`` sends one frame per destination rank holding the slices of all the tables this
rank owns (``compframe.training.packing``: each table's pooled lookup quantized once with its bound,
as ``simulate`` does, and its rows sent in the frames of their ranks; the codes of a frame encoded
once, its fixed cost paid once). ``auto`` (the default) is ``destination`` for a quantizer whose frames can
hold it (int8, int16) and ``slice`` otherwise; ``destination`` with another quantizer is refused.
Sizes message and payload then hold one item per destination. In a shared frame each table is charged its own side
data and a share of the rest by the entropy of its codes (``packing``); the charges of a frame sum to
its size, so the tables' bytes still sum to the bytes sent.

The sizes are known in ``none`` and ``simulate`` (raw float32), so those skip the sizes message.

Backward: the gradients of the pooled lookups go back to the tables' owners by the reverse
all-to-all. As in the study, only the forward exchange is compressed by default; the gradient
exchange travels as float32. With ``gradients=True`` it is compressed too (same mode), with the
schedule's bound of the table and iteration applied to each gradient slice (a ``rel`` bound is then
relative to that gradient slice's own value range).

``throttle_gbps`` holds every exchange for ``max(bytes sent, bytes received) / B`` seconds (bytes
to and from other ranks; the rank's own slice does not cross the network), emulating a link of
B GB/s whose send and receive directions overlap (full duplex).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from .. import container
from ..base import ErrorBound
from . import packing
from ..kernels.uniform import finite_range
from ..pipeline import compress as compress_frame
from ..pipeline import dequantize_frame, roundtrip

MODES = ("none", "simulate", "real")
PACKS = ("auto", "slice", "destination")


class Timer:
    """Seconds spent per phase (``lookup``, ``compress``, ...), summed until ``reset()``."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, key: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] += time.perf_counter() - t0

    def reset(self) -> dict[str, float]:
        out, self.seconds = dict(self.seconds), defaultdict(float)
        return out


@dataclass
class TableStats:
    """Per table (on its owner), summed over the iterations since the last ``reset``."""

    raw_bytes: int = 0  # float32 bytes of the slices (all destinations)
    sent_bytes: int = 0  # payload bytes of the slices (frames in real mode)
    wire_raw_bytes: int = 0  # the same two, counting only slices sent to other ranks
    wire_bytes: int = 0
    rel_bound: float = math.nan  # the schedule's value at the last iteration
    abs_bound: float = math.nan  # the bound in the data's units at the last iteration
    max_error_over_bound: float = 0.0  # only measured with verify=True


def batch_splits(batch: int, world: int) -> list[tuple[int, int]]:
    """Rows ``[lo, hi)`` of each rank's share of a global batch (sizes differ by at most one)."""
    return [(batch * r // world, batch * (r + 1) // world) for r in range(world)]


def assign_tables(rows: list[int], world: int) -> list[int]:
    """Owner rank of each table: largest tables first, each to the rank holding the fewest rows."""
    load = [0] * world
    owners = [0] * len(rows)
    for t in sorted(range(len(rows)), key=lambda t: (-rows[t], t)):
        r = min(range(world), key=lambda r: (load[r], r))
        owners[t], load[r] = r, load[r] + rows[t]
    return owners


class BoundViolation(AssertionError):
    """A decompressed slice outside the quantizer's declared bound (raised only with ``verify``)."""


class Exchange:
    """The all-to-all of one rank; call it with this rank's pooled lookups (see the module doc)."""

    def __init__(self, owners: list[int], rank: int, world: int, mode: str, quantizer=None, encoder=None,
                 schedule=None, gradients: bool = False, verify: bool = False, timer: Timer | None = None,
                 device: torch.device | None = None, pack: str = "auto"):
        if mode not in MODES:
            raise ValueError(f"compress.mode '{mode}' is unknown; allowed: {', '.join(MODES)}")
        if pack not in PACKS:
            raise ValueError(f"compress.pack '{pack}' is unknown; allowed: {', '.join(PACKS)}")
        if pack == "destination" and not packing.packable(quantizer):
            raise ValueError(f"compress.pack 'destination' needs a quantizer with per-slice plans (int8, int16), "
                             f"got '{getattr(quantizer, 'plugin_id', None)}'; use pack=slice or auto")
        self.owners, self.rank, self.world, self.mode = owners, rank, world, mode
        self.quantizer, self.encoder, self.schedule = quantizer, encoder, schedule
        self.gradients, self.verify = gradients, verify
        self.pack = "destination" if pack != "slice" and packing.packable(quantizer) else "slice"
        self.timer = timer or Timer()
        self.device = device or torch.device("cpu")
        self.by_rank = [[t for t, o in enumerate(owners) if o == r] for r in range(world)]
        if not all(self.by_rank):
            raise ValueError(f"{len(owners)} embedding tables on {world} ranks: every rank must hold at least one "
                             f"table (allowed world_size: 1 to {len(owners)})")
        self.mine = self.by_rank[rank]
        self.stats: dict[int, TableStats] = {t: TableStats() for t in self.mine}
        self.totals: dict[int, TableStats] = {t: TableStats() for t in self.mine}
        self.throttle_gbps: float | None = None
        self.grad_bytes = [0, 0]  # raw, sent: the backward exchange
        self.payload_bytes = {"forward": 0, "backward": 0}  # numel of the uint8 tensors handed to all_to_all

    # -- the autograd entry point -------------------------------------------------------------
    def __call__(self, pooled: dict[int, torch.Tensor], batch: int, iteration: int,
                 compress: bool = True) -> list[torch.Tensor]:
        """Pooled lookups of every table for this rank's share of ``batch`` rows, differentiable."""
        self.splits = batch_splits(batch, self.world)
        return list(_ExchangeFn.apply(self, iteration, compress, *[pooled[t] for t in self.mine]))

    def reset_stats(self) -> dict[int, TableStats]:
        out = self.stats
        self.stats = {t: TableStats() for t in self.mine}
        return out

    # -- forward -------------------------------------------------------------------------------
    def _bound(self, table: int, iteration: int) -> ErrorBound | None:
        if self.quantizer.guarantee != "error_bound":
            return None
        return self.schedule.bound(table, iteration)

    def forward(self, mine: list[torch.Tensor], iteration: int, compress: bool) -> list[torch.Tensor]:
        mode = self.mode if compress else "none"
        packed = mode == "real" and self.pack == "destination"
        dim = mine[0].shape[1]
        xs = [np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32) for tensor in mine]
        if packed:
            send = self._encode_packed(xs, iteration, account=compress)
        else:
            send = [[] for _ in range(self.world)]
            for t, x in zip(self.mine, xs):
                for r, item in enumerate(self._encode_table(t, x, iteration, mode, account=compress)):
                    send[r].append(item)
        lo, hi = self.splits[self.rank]
        raw = mode != "real"
        counts = [min(len(ts), 1) if packed else len(ts) for ts in self.by_rank]
        recv = self._transfer(send, counts, [[(hi - lo) * dim * 4] * n for n in counts] if raw else None)
        out: list[torch.Tensor | None] = [None] * len(self.owners)
        with self.timer("decompress"):
            for s, items in enumerate(recv):
                if packed and items:
                    parts = packing.unpack(items[0], len(self.by_rank[s]), (hi - lo, dim), self.quantizer, self.encoder)
                    for t, part in zip(self.by_rank[s], parts):
                        out[t] = torch.from_numpy(part)
                    continue
                for t, buf in zip(self.by_rank[s], items):
                    out[t] = self._decode(buf, (hi - lo, -1), raw)
        return [o.to(self.device) for o in out]

    def _encode_packed(self, xs: list[np.ndarray], iteration: int, account: bool) -> list[list[np.ndarray]]:
        """One frame per destination rank holding the slices of all this rank's tables (``packing``):
        each table's pooled lookup quantized once with its bound (``rel``: over the whole lookup)."""
        if not xs:
            return [[] for _ in range(self.world)]
        with self.timer("compress"):
            bounds = [self._bound(t, iteration) for t in self.mine]
            parts = packing.quantize_tables(xs, bounds, self.quantizer)
            frames, charges = [], []
            for lo, hi in self.splits:
                frame, charged = packing.pack(parts, lo, hi, self.quantizer, self.encoder)
                frames.append(np.frombuffer(frame, dtype=np.uint8))
                charges.append(charged)
        abs_bounds = [p.meta["abs_bound"] for p in parts]
        if self.verify:
            for frame, (lo, hi) in zip(frames, self.splits):
                decoded = packing.unpack(frame, len(xs), (hi - lo, xs[0].shape[1]), self.quantizer, self.encoder)
                for t, x, part, b in zip(self.mine, xs, decoded, abs_bounds):
                    self._check(t, x[lo:hi], part, b)
        if account:
            for j, (t, x) in enumerate(zip(self.mine, xs)):
                self._account(t, x.shape[1], [c[j] for c in charges], bounds[j], abs_bounds[j])
        return [[f] for f in frames]

    def _encode_table(self, t: int, x: np.ndarray, iteration: int, mode: str, account: bool) -> list[np.ndarray]:
        """This table's payload for each destination rank; ``account``: add it to the table's counts."""
        bound = None
        if mode == "simulate":
            with self.timer("compress"):
                bound = self._bound(t, iteration)
                q, x_hat = roundtrip(x, self.quantizer, bound)
                abs_bound = q.meta.get("abs_bound", math.nan)
            self._check(t, x, x_hat, abs_bound)
            items = [x_hat[lo:hi].reshape(-1).view(np.uint8) for lo, hi in self.splits]
        elif mode == "real":
            with self.timer("compress"):
                bound = self._bound(t, iteration)
                hint = self.quantizer.takes_value_range
                need = hint or (bound is not None and bound.mode == "rel")
                ranges = [finite_range(x[lo:hi].reshape(-1)) if need else (0.0, 0.0, 0) for lo, hi in self.splits]
                abs_bound = _absolute(bound, ranges, x.dtype)
                items = []
                for (lo, hi), (a, b, n) in zip(self.splits, ranges):
                    kw = {"value_range": (a, b)} if hint and n else None
                    frame = compress_frame(x[lo:hi], self.quantizer, self.encoder, abs_bound, quantize_kwargs=kw)
                    items.append(np.frombuffer(frame, dtype=np.uint8))
            if self.verify:
                for (lo, hi), item in zip(self.splits, items):
                    self._check(t, x[lo:hi], self._decode(item, (hi - lo, -1), raw=False).numpy(),
                                math.nan if abs_bound is None else abs_bound.value)
            abs_bound = math.nan if abs_bound is None else abs_bound.value
        else:
            items = [x[lo:hi].reshape(-1).view(np.uint8) for lo, hi in self.splits]
            abs_bound = math.nan
        if account:
            self._account(t, x.shape[1], [i.size for i in items], bound, abs_bound)
        return items

    def _account(self, t: int, dim: int, sent: list[int], bound: ErrorBound | None, abs_bound: float) -> None:
        """Add one iteration of table ``t`` to its counts: ``sent[r]`` bytes of its slice to rank ``r``."""
        raw = [(hi - lo) * dim * 4 for lo, hi in self.splits]
        for acc in (self.stats[t], self.totals[t]):
            acc.raw_bytes += sum(raw)
            acc.sent_bytes += sum(sent)
            acc.wire_raw_bytes += sum(n for r, n in enumerate(raw) if r != self.rank)
            acc.wire_bytes += sum(n for r, n in enumerate(sent) if r != self.rank)
            acc.rel_bound = math.nan if bound is None else bound.value
            acc.abs_bound = abs_bound

    def _check(self, t: int, x: np.ndarray, x_hat: np.ndarray, abs_bound: float) -> None:
        if not self.verify or math.isnan(abs_bound):
            return
        err = float(np.max(np.abs(x.astype(np.float64) - x_hat.astype(np.float64)))) if x.size else 0.0
        ratio = err / abs_bound if abs_bound > 0 else (0.0 if err == 0 else math.inf)
        for acc in (self.stats[t], self.totals[t]):
            acc.max_error_over_bound = max(acc.max_error_over_bound, ratio)
        if err > abs_bound:
            raise BoundViolation(f"table {t}: max |x - x̂| = {err:.6g} exceeds the bound {abs_bound:.6g}")

    def _decode(self, buf: np.ndarray, shape, raw: bool) -> torch.Tensor:
        if raw:
            return torch.from_numpy(np.frombuffer(buf, dtype=np.float32).reshape(shape))
        x_hat = dequantize_frame(container.loads(buf.tobytes()), self.encoder, self.quantizer)
        return torch.from_numpy(np.ascontiguousarray(x_hat, dtype=np.float32).reshape(shape))

    # -- backward ------------------------------------------------------------------------------
    def backward(self, grads: list[torch.Tensor | None], iteration: int, compress: bool) -> list[torch.Tensor]:
        """Gradients of this rank's tables over the whole batch, gathered from every rank's share."""
        lo, hi = self.splits[self.rank]
        mode = self.mode if (compress and self.gradients) else "none"
        dim = next(g.shape[1] for g in grads if g is not None)
        send: list[list[np.ndarray]] = [[] for _ in range(self.world)]
        for s in range(self.world):
            for t in self.by_rank[s]:
                g = grads[t]
                g = np.zeros((hi - lo, dim), np.float32) if g is None else \
                    np.ascontiguousarray(g.detach().cpu().numpy(), dtype=np.float32)
                send[s].append(self._encode_grad(t, g, iteration, mode))
        self.grad_bytes[0] += len(self.owners) * (hi - lo) * dim * 4
        self.grad_bytes[1] += sum(i.size for items in send for i in items)
        raw = mode != "real"
        sizes = [[(rhi - rlo) * dim * 4] * len(self.mine) for rlo, rhi in self.splits] if raw else None
        recv = self._transfer(send, [len(self.mine)] * self.world, sizes, backward=True)
        out = []
        with self.timer("decompress_bwd"):
            for j in range(len(self.mine)):
                parts = [self._decode(recv[r][j], (rhi - rlo, dim), raw) for r, (rlo, rhi) in enumerate(self.splits)]
                out.append(torch.cat(parts).to(self.device))
        return out

    def _encode_grad(self, t: int, g: np.ndarray, iteration: int, mode: str) -> np.ndarray:
        if mode == "none":
            return g.reshape(-1).view(np.uint8)
        with self.timer("compress_bwd"):
            bound = self._bound(t, iteration)
            if mode == "real":
                return np.frombuffer(compress_frame(g, self.quantizer, self.encoder, bound), dtype=np.uint8)
            x_hat = roundtrip(g, self.quantizer, bound)[1]
            return np.ascontiguousarray(x_hat, dtype=np.float32).reshape(-1).view(np.uint8)

    # -- the collectives -------------------------------------------------------------------------
    def _transfer(self, send: list[list[np.ndarray]], recv_counts: list[int],
                  sizes_in: list[list[int]] | None, backward: bool = False) -> list[list[np.ndarray]]:
        """All-to-all of variable-size byte items: ``send[r]`` goes to rank ``r``; returns ``recv[s]``,
        ``recv_counts[s]`` items from rank ``s``. ``sizes_in`` (bytes of each item to receive) is
        given when known (raw float32); ``None`` exchanges the sizes first.
        """
        with self.timer("exchange_bwd" if backward else "exchange"):
            sizes_out = [[int(i.size) for i in items] for items in send]
            if sizes_in is None:
                sizes_in = self._alltoall_sizes(sizes_out, recv_counts)
            out_split = [sum(s) for s in sizes_in]
            in_split = [sum(s) for s in sizes_out]
            if self.throttle_gbps:
                hold = hold_seconds(in_split, out_split, self.rank, self.throttle_gbps)
                self.timer.seconds["throttle_target"] += hold
                with self.timer("throttle"):  # part of the exchange time, also reported on its own
                    _hold(hold)
            flat = [i for items in send for i in items]
            send_buf = torch.from_numpy(np.concatenate(flat) if flat else np.zeros(0, np.uint8))
            self.payload_bytes["backward" if backward else "forward"] += send_buf.numel()
            if self.world == 1:
                recv_buf = send_buf
            else:
                recv_buf = torch.empty(sum(out_split), dtype=torch.uint8, device=self.device)
                dist.all_to_all_single(recv_buf, send_buf.to(self.device), out_split, in_split)
                recv_buf = recv_buf.cpu()
        data = recv_buf.numpy()
        recv, pos = [], 0
        for sizes in sizes_in:
            items = []
            for n in sizes:
                items.append(data[pos:pos + n])
                pos += n
            recv.append(items)
        return recv

    def _alltoall_sizes(self, sizes_out: list[list[int]], recv_counts: list[int]) -> list[list[int]]:
        if self.world == 1:
            return sizes_out
        send = torch.tensor([n for sizes in sizes_out for n in sizes], dtype=torch.int64)
        recv = torch.empty(sum(recv_counts), dtype=torch.int64, device=self.device)
        dist.all_to_all_single(recv, send.to(self.device), recv_counts, [len(s) for s in sizes_out])
        flat, out, pos = recv.cpu().tolist(), [], 0
        for n in recv_counts:
            out.append(flat[pos:pos + n])
            pos += n
        return out


def _hold(seconds: float) -> None:
    """Wait ``seconds``: sleep all but the last millisecond, then spin to the deadline (a plain sleep
    wakes up late by a scheduler slice, far more than the sub-millisecond holds of small messages)."""
    deadline = time.perf_counter() + seconds
    if seconds > 2e-3:
        time.sleep(seconds - 1e-3)
    while time.perf_counter() < deadline:
        pass


def hold_seconds(sent: list[int], received: list[int], rank: int, gbps: float) -> float:
    """How long a link of ``gbps`` GB/s (full duplex) needs for the bytes this rank sends to and
    receives from the other ranks (``sent[r]``, ``received[r]``; its own share stays local)."""
    remote = max(sum(n for r, n in enumerate(sent) if r != rank), sum(n for r, n in enumerate(received) if r != rank))
    return remote / (gbps * 1e9)


def _absolute(bound: ErrorBound | None, ranges: list[tuple[float, float, int]], dtype: np.dtype) -> ErrorBound | None:
    """``bound`` in the data's units over a whole pooled lookup of ``dtype`` whose slices have the
    finite ``(min, max, count)`` of ``ranges`` (``rel``: times max - min, subtracted in ``dtype``)."""
    if bound is None or bound.mode == "abs":
        return bound
    found = [(lo, hi) for lo, hi, n in ranges if n]
    lo, hi = (min(f[0] for f in found), max(f[1] for f in found)) if found else (0.0, 0.0)
    value_range = float(dtype.type(hi) - dtype.type(lo))
    return ErrorBound("abs", max(bound.value * value_range, float(np.finfo(np.float32).tiny)))


class _ExchangeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ex: Exchange, iteration: int, compress: bool, *mine):
        ctx.ex, ctx.iteration, ctx.compress = ex, iteration, compress
        return tuple(ex.forward(list(mine), iteration, compress))

    @staticmethod
    def backward(ctx, *grads):
        return (None, None, None, *ctx.ex.backward(list(grads), ctx.iteration, ctx.compress))
