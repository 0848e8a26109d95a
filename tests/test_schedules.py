"""The four decay schedules of the DLRM compression study, against their formulas (dlrm_comp ``stage_check``)."""

import math

import pytest

from compframe.base import ErrorBound
from compframe.registry import ConfigError, create

S = 65536
IDS = ("constant", "step", "linear", "log")


def expected(kind: str, i: int, E: float, S: int = S) -> float:
    """The study's ``stage_check`` written out independently, in floating point."""
    if i >= S:
        return 1.0
    t = i / S
    if kind == "constant":
        return E
    if kind == "linear":
        return E * (1 - t * (1 - 1 / E))
    if kind == "log":
        ls = 1 - math.log(1 + t * (math.e - 1))
        return E * (ls * (1 - 1 / E) + 1 / E)
    return E * max(1 - math.floor(10 * t) * (1 - 1 / E) / 10, 1 / E)


def iterations(S: int = S) -> list[int]:
    steps = [round(k * S / 10) + d for k in range(1, 10) for d in (-1, 0, 1)]
    return sorted({0, 1, S // 3, S // 2, S - 1, S, S + 1, 2 * S, 10 * S, *steps, *range(0, 2 * S, 997)})


def test_registered():
    """Each schedule id is registered to the class whose factor follows that id's formula."""
    from compframe.registry import plugin_class

    for kind in IDS:
        cls = plugin_class("schedule", kind)
        assert (cls.kind, cls.plugin_id) == ("schedule", kind)
        assert create("schedule", kind, E=2.0, S=100).factor(37) == pytest.approx(expected(kind, 37, 2.0, S=100))


@pytest.mark.parametrize("kind", IDS)
@pytest.mark.parametrize("E", [1.0, 2.0, 4.5])
def test_factor_matches_formula(kind, E):
    sched = create("schedule", kind, E=E)
    for i in iterations():
        assert sched.factor(i) == pytest.approx(expected(kind, i, E), rel=1e-12), i


@pytest.mark.parametrize("kind", IDS)
def test_factor_shape(kind):
    sched = create("schedule", kind, E=3.0, S=1000)
    values = [sched.factor(i) for i in range(0, 2001)]
    assert values[0] == pytest.approx(3.0)
    assert all(a >= b - 1e-12 for a, b in zip(values, values[1:]))
    assert all(v == 1.0 for v in values[1000:])
    assert all(v >= 1.0 - 1e-12 for v in values)
    assert sched.factor(None) == 1.0


def test_step_boundaries_exact():
    """Ten plateaus of 6553.6 iterations at S=65536: the step happens at ceil(k*S/10)."""
    sched = create("schedule", "step", E=2.0)
    for k in range(1, 10):
        edge = math.ceil(k * S / 10)
        assert sched.factor(edge - 1) == pytest.approx(2 * (1 - (k - 1) * 0.05))
        assert sched.factor(edge) == pytest.approx(2 * (1 - k * 0.05))
    assert sched.factor(S - 1) == pytest.approx(1.1)


@pytest.mark.parametrize("kind", IDS)
def test_bound_per_table(kind):
    sched = create("schedule", kind, mode="abs", base=0.03, tight=0.01, loose=0.05,
                   tight_tables=[2, 3], loose_tables=[8], E=2.0, S=100)
    assert sched.bound(2, 100) == ErrorBound("abs", 0.01)
    assert sched.bound(3, 5000) == ErrorBound("abs", 0.01)
    assert sched.bound(8, 100) == ErrorBound("abs", 0.05)
    assert sched.bound(0, 100) == ErrorBound("abs", 0.03)
    assert sched.bound(None, None) == ErrorBound("abs", 0.03)
    assert sched.bound(2, 0).value == pytest.approx(0.02)
    assert sched.bound(8, 50).value == pytest.approx(0.05 * expected(kind, 50, 2.0, 100))
    assert create("schedule", kind).bound(0, 0).mode == "rel"


def test_negative_iteration():
    with pytest.raises(ValueError, match="iteration"):
        create("schedule", "linear").bound(0, -1)


@pytest.mark.parametrize("kind", IDS)
@pytest.mark.parametrize("params, param", [
    ({"E": 0.5}, "E"),
    ({"S": 0}, "S"),
    ({"S": -5}, "S"),
    ({"base": 0.0}, "base"),
    ({"tight": -0.1}, "tight"),
    ({"loose": 0.0}, "loose"),
    ({"mode": "foo"}, "mode"),
    ({"tight_tables": [1, 2], "loose_tables": [2, 5]}, "loose_tables"),
    ({"tight_tables": [-1]}, "tight_tables"),
])
def test_bad_params(kind, params, param):
    with pytest.raises(ConfigError, match=f"parameter '{param}'") as info:
        create("schedule", kind, **params)
    assert info.value.param == param


def test_config_round_trip():
    from compframe.registry import create_from_config

    sched = create("schedule", "log", tight_tables=[1], E=3.0)
    assert create_from_config("schedule", sched.get_config()) == sched


@pytest.mark.parametrize("kind", IDS)
def test_factor_properties(kind):
    """For any E >= 1 and S > 0: the factor stays in [1, E], never rises, and is 1 from S on."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=200, deadline=None)
    @given(E=st.floats(1.0, 100.0), S=st.integers(1, 10**7), a=st.floats(0, 2), b=st.floats(0, 2))
    def check(E, S, a, b):
        sched = create("schedule", kind, E=E, S=S)
        i, j = sorted((int(a * S), int(b * S)))
        fi, fj = sched.factor(i), sched.factor(j)
        assert 1.0 - 1e-12 <= fj <= fi <= E * (1 + 1e-12)
        assert sched.factor(S) == 1.0
        assert sched.factor(0) == pytest.approx(E)

    check()
