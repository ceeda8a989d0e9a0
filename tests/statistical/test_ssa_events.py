"""Timed (bolus) and condition (extinction, threshold) events in the exact stochastic engine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ssa_models import death_events_network

from livingdrug.engines.ssa import solve_ssa


def _params(mu=1.0, t_dose=1e9, dose=0.0, thr=-1.0):
    return [mu, t_dose, dose, thr]


def test_bolus_fires_exactly_at_its_time():
    """Empty until the bolus at t = 1 (no firing possible: a0 = 0 jumps to it); the output at
    t = 1 is right-continuous (= dose); at t = 2 each cell has survived w.p. e^{−μ}."""
    c = death_events_network().compile()
    n, dose, mu = 4000, 50.0, 1.0
    t_eval = [0.0, 0.5, 1.0, 2.0]
    sol = solve_ssa(c, [0.0, -1.0], _params(mu, 1.0, dose), t_eval, seed=41, replicates=n)
    assert np.all(sol.status == 0)
    assert np.all(sol.y[:, :2, 0] == 0.0)
    assert np.all(sol.y[:, 2, 0] == dose)
    x = sol.y[:, 3, 0]
    p = math.exp(-mu)
    assert abs(x.mean() - dose * p) < 5 * math.sqrt(dose * p * (1 - p) / n)
    assert sol.stats["events"] >= n  # every bolus fired


def test_bolus_at_t0_fires_before_the_first_output():
    c = death_events_network().compile()
    sol = solve_ssa(c, [0.0, -1.0], _params(1.0, 0.0, 7.0), [0.0, 1.0], seed=1, replicates=5)
    assert np.all(sol.y[:, 0, 0] == 7.0)


def test_extinction_time_law():
    """Pure death from n0 = 5: extinction time is the max of 5 Exp(μ) lifetimes, mean H_5/μ and
    variance Σ 1/j²/μ².  The condition event records the firing time in species tx."""
    c = death_events_network().compile()
    n, n0 = 20_000, 5
    sol = solve_ssa(c, [n0, -1.0], _params(), [0.0, 30.0], seed=42, replicates=n)
    assert np.all(sol.status == 0)
    assert np.all(sol.y[:, -1, 0] == 0.0)  # extinct by t = 30 (P(not) ≈ 5e-13)
    tx = sol.y[:, -1, 1]
    assert np.all(tx > 0)
    mean = sum(1.0 / j for j in range(1, n0 + 1))
    var = sum(1.0 / j**2 for j in range(1, n0 + 1))
    assert abs(tx.mean() - mean) < 5 * math.sqrt(var / n)
    assert sol.stats["events"] == n  # "once": fired exactly once per replicate


def test_threshold_event_zeroes_the_population():
    """When n falls below thr = 2.5 the threshold event sets n := 0 on the very firing that
    crosses: no trajectory is ever seen at 1 or 2 cells.  Events do not cascade (as in the ODE
    engine): the extinction record (n − 1/2 crossing) is evaluated before the assignment and
    its reference value refreshed after it, so it never fires here."""
    c = death_events_network().compile()
    n = 2000
    t_eval = np.linspace(0.0, 10.0, 201)
    sol = solve_ssa(c, [10.0, -1.0], _params(thr=2.5), t_eval, seed=43, replicates=n)
    assert np.all(sol.status == 0)
    x = sol.y[:, :, 0]
    assert not np.any((x == 1.0) | (x == 2.0))
    assert np.all(np.isin(x, np.arange(0, 11)))
    assert np.mean(x[:, -1] == 0) > 0.99  # P(3 of 10 cells alive at t = 10) ≈ 1e-11 each
    assert np.all(sol.y[:, :, 1] == -1.0)


def _crossing_counter(once: bool):
    from livingdrug.network import Event, Network, Reaction, Species, When, sym
    from livingdrug.params import Param

    n, c, k, g = sym("n"), sym("c"), sym("k"), sym("gamma")
    return Network(
        f"ssa_test_crossings_{once}",
        species=(Species("n"), Species("c", unit="1")),
        params=(Param("k", 5.0, "1/d"), Param("gamma", 1.0, "1/d")),
        reactions=(Reaction("immigrate", {"n": 1}, k), Reaction("die", {"n": -1}, g * n)),
        events=(Event("up", When(n - 5, +1), {"c": c + 1}, once=once),),
    ).compile()


def test_once_and_repeated_condition_events():
    """Counting upward crossings of n = 5 (from 4 to 5) in an immigration–death process
    fluctuating around 5: a repeatable event fires many times, a ``once`` event at most once."""
    t_eval = [0.0, 20.0]
    many = solve_ssa(_crossing_counter(False), [0.0, 0.0], [5.0, 1.0], t_eval, seed=44, replicates=200)
    one = solve_ssa(_crossing_counter(True), [0.0, 0.0], [5.0, 1.0], t_eval, seed=44, replicates=200)
    assert np.all(many.status == 0) and np.all(one.status == 0)
    assert many.y[:, -1, 1].min() >= 1 and many.y[:, -1, 1].mean() > 5
    assert np.all(one.y[:, -1, 1] == 1.0)
    # the event does not touch n, so both runs share every firing: identical n paths
    assert np.array_equal(many.y[:, :, 0], one.y[:, :, 0])
    assert many.stats["events"] == many.y[:, -1, 1].sum()


@pytest.mark.parametrize("engine", ["ssa", "tau", "hybrid"])
def test_fractional_event_results_are_rounded_without_bias(engine):
    """A bolus of 2.3 cells (no death) leaves 2 or 3 whole cells, 3 with probability 0.3,
    so the mean count is kept; the recorded time (changed by no reaction) is not rounded."""
    from livingdrug.engines.hybrid import solve_hybrid
    from livingdrug.engines.tau import solve_tau

    solver = {"ssa": solve_ssa, "tau": solve_tau, "hybrid": solve_hybrid}[engine]
    c = death_events_network().compile()
    n = 4000
    sol = solver(c, [0.0, -0.25], _params(0.0, 1.0, 2.3), [0.0, 1.0, 2.0], seed=44, replicates=n)
    assert np.all(sol.status == 0)
    x = sol.y[:, 1, 0]
    assert set(np.unique(x)) == {2.0, 3.0}
    p = 0.3
    assert abs(np.mean(x == 3.0) - p) < 5 * np.sqrt(p * (1 - p) / n)
    assert np.all(sol.y[:, :, 1] == -0.25)
