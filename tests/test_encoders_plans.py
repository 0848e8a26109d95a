"""The column grouping of ``context=classes``/``auto`` is skipped where class tables cannot win
(their cost is bounded below by the columns' free entropy), with the streams of grouping first."""

from __future__ import annotations

import numpy as np
import pytest

from compframe.plugins.encoders import entropy
from compframe.registry import create


def drifting(rows=1024, columns=128, seed=5):
    """int8 codes whose columns differ enough for ``auto`` to price class tables (their free tables
    are more than ``auto_gain`` smaller than one table), but whose second half of rows is 5x wider:
    block tables win, and class tables cannot."""
    rng = np.random.default_rng(seed)
    x = rng.geometric(np.linspace(0.1, 0.5, columns), (rows, columns)) - 1
    x[rows // 2:] *= 5
    return np.clip(x - 3, -128, 127).astype(np.int8)


def column_scaled(rows=512, columns=48, seed=6):
    """int16 codes whose columns differ 20x in scale: class tables win."""
    rng = np.random.default_rng(seed)
    return np.rint(rng.laplace(0, np.geomspace(1, 20, columns), (rows, columns))).astype(np.int16)


@pytest.mark.parametrize("coder", ["ans", "huffman"])
def test_grouping_skipped_only_where_it_cannot_win(coder, monkeypatch):
    calls = []
    grouping = entropy.column_classes
    monkeypatch.setattr(entropy, "column_classes", lambda by_column: calls.append(1) or grouping(by_column))
    for codes, context, skipped in ((drifting(), "auto", True), (column_scaled(), "auto", False),
                                    (column_scaled(), "classes", False), (drifting(), "classes", False)):
        params = {"context": context, "dedup": False, "chunk": 16384}
        if context == "auto":
            params["block"] = 1 << 16  # 8 chunks, 2 blocks of codes
        enc = create("encoder", coder, **params)
        calls.clear()
        stream = enc.encode(codes)
        assert (not calls) == skipped, (context, calls)
        always = create("encoder", coder, **params)  # no best model known: always groups
        always._plans = lambda *args, e=always: type(e)._plans(e, *args[:5])
        calls.clear()
        assert always.encode(codes) == stream and calls, context
        assert np.array_equal(enc.decode(stream), codes)
