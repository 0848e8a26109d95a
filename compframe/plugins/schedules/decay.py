"""Error-bound schedules of the DLRM compression study: a base bound per table times a decay factor.

``bound(table, iteration) = ErrorBound(mode, base_of(table) * factor(iteration))``. Tables listed in
``tight_tables`` get ``tight``, those in ``loose_tables`` get ``loose``, all others (and ``table=None``)
get ``base``. The factor starts at ``E`` at iteration 0 and is 1 from the decay stage ``S`` on; the
four ids differ only in how it falls in between (allenfengjr/dlrm_comp, ``stage_check``; see
docs/schedules.md). ``iteration=None`` means the field has no training time: the factor is 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...base import BOUND_MODES, ErrorBound, Schedule
from ...registry import register


class DecaySchedule(Schedule):
    """Base of the four decay schedules; subclasses define ``early(i, S, E)`` for ``0 <= i < S``."""

    @dataclass
    class Config:
        mode: str = "rel"
        base: float = 0.01
        tight: float = 0.01
        loose: float = 0.05
        tight_tables: list[int] = field(default_factory=list)
        loose_tables: list[int] = field(default_factory=list)
        E: float = 2.0
        S: int = 65536

    def check(self):
        c = self.config
        self.require("mode", choices=BOUND_MODES)
        for param in ("base", "tight", "loose"):
            self.require(param, low=0.0, open_low=True)
        self.require("E", low=1.0)
        self.require("S", low=0, open_low=True)
        for param in ("tight_tables", "loose_tables"):
            negative = [t for t in getattr(c, param) if t < 0]
            if negative:
                self.fail(param, f"holds negative table ids {negative}")
        self.unused_unless("tight", bool(c.tight_tables), "tight_tables lists tables")
        self.unused_unless("loose", bool(c.loose_tables), "loose_tables lists tables")
        both = sorted(set(c.tight_tables) & set(c.loose_tables))
        if both:
            self.fail("loose_tables", f"shares tables {both} with tight_tables; a table is tight or loose, not both")

    def base_of(self, table: int | None) -> float:
        """The table's bound before decay: ``tight``, ``loose`` or ``base``."""
        c = self.config
        if table in c.tight_tables:
            return c.tight
        if table in c.loose_tables:
            return c.loose
        return c.base

    def factor(self, iteration: int | None) -> float:
        """The decay factor: ``E`` at iteration 0, 1 from ``S`` on, 1 for ``None`` (no training time)."""
        if iteration is None:
            return 1.0
        if iteration < 0:
            raise ValueError(f"schedule '{self.plugin_id}': iteration must be >= 0, got {iteration}")
        c = self.config
        if iteration >= c.S:
            return 1.0
        return self.early(iteration, c.S, c.E)

    def early(self, i: int, S: int, E: float) -> float:
        raise NotImplementedError

    def bound(self, table: int | None, iteration: int | None) -> ErrorBound:
        return ErrorBound(self.config.mode, self.base_of(table) * self.factor(iteration))


@register("schedule", "constant")
class Constant(DecaySchedule):
    """``E`` until ``S``, then 1 (dlrm_comp ``stage_check``, "constant")."""

    def early(self, i, S, E):
        return E


@register("schedule", "step")
class Step(DecaySchedule):
    """Ten equal steps from ``E`` down to 1: ``E * max(1 - floor(10 i/S)(1 - 1/E)/10, 1/E)`` (dlrm_comp, "step")."""

    def early(self, i, S, E):
        return E * max(1 - (10 * i // S) * (1 - 1 / E) / 10, 1 / E)


@register("schedule", "linear")
class Linear(DecaySchedule):
    """A straight line from ``E`` to 1: ``E (1 - (i/S)(1 - 1/E))`` (dlrm_comp, "linear")."""

    def early(self, i, S, E):
        return E * (1 - (i / S) * (1 - 1 / E))


@register("schedule", "log")
class Log(DecaySchedule):
    """A logarithmic fall, fast early: ``E (ls (1 - 1/E) + 1/E)``, ``ls = 1 - ln(1 + (i/S)(e - 1))`` (dlrm_comp, "log")."""

    def early(self, i, S, E):
        ls = 1 - math.log(1 + (i / S) * (math.e - 1))
        return E * (ls * (1 - 1 / E) + 1 / E)
