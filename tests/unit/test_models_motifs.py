"""Motifs produce non-negative, correctly stoichiometric reactions."""

from __future__ import annotations

import sympy as sp

from livingdrug.models import motifs as m
from livingdrug.network import sym


def _val(expr, **kw):
    return float(sp.sympify(expr).subs({sym(k): v for k, v in kw.items()}))


def test_kill_regimes():
    r = m.kill("k", "X", "E", "k", "K", "A", "s")
    assert r.stoich == {"X": -1}
    # target-rich: each effector kills k per day
    v = _val(r.rate, k=2.0, E=10.0, X=1e9, K=1.0, A=1e9, s=0.1)
    assert abs(v - 20.0) / 20.0 < 1e-6
    # effector-rich: each target dies at k*s per day
    v = _val(r.rate, k=2.0, E=1e12, X=5.0, K=1.0, A=5.0, s=0.1)
    assert abs(v - 5.0 * 0.2) < 1e-6


def test_logistic_pair_is_logistic():
    b = m.logistic_growth("g", "X", "r")
    d = m.crowding_death("c", "X", "r", "X", "K")
    net = sp.simplify(b.rate - d.rate - sym("r") * sym("X") * (1 - sym("X") / sym("K")))
    assert net == 0


def test_factors_and_conservation():
    assert _val(m.saturating("A", "K"), A=1.0, K=1.0) == 0.5
    assert _val(m.homeostatic("K", "N"), K=1.0, N=1.0) == 0.5
    r = m.differentiate("d", "S", "E", "k")
    assert sum(r.stoich.values()) == 0
    assert m.traffic("t", "a", "b", "k").stoich == {"a": -1, "b": 1}
    assert m.source("s", "X", 3.0).rate == 3.0
