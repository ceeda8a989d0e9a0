"""Tau-leaping engine: non-negativity, reproducibility, failures, events, arguments, speed-up."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from ssa_models import (
    bimolecular_network,
    birth_death_network,
    death_events_network,
    immigration_death_network,
)

from livingdrug.engines.common import STATUS_BAD_PROPENSITY, STATUS_MAX_STEPS, STATUS_OK
from livingdrug.engines.tau import solve_tau


def _bd():
    c = birth_death_network().compile()
    return c, np.array([500.0]), np.array([1.0, 0.5])


def test_populations_never_negative():
    """A + B → C drains B to zero; pure death with an aggressive ε and no critical reactions
    forces rejected leaps.  No count ever goes below zero, and mass is conserved."""
    c = bimolecular_network().compile()
    t_eval = np.linspace(0.0, 40.0, 11)
    sol = solve_tau(c, [2000.0, 1500.0, 0.0], [1e-3], t_eval, seed=4, replicates=200)
    assert np.all(sol.status == STATUS_OK)
    assert np.all(sol.y >= 0)
    assert np.all(sol.y[:, :, 0] + sol.y[:, :, 2] == 2000.0)
    assert np.all(sol.y[:, :, 1] + sol.y[:, :, 2] == 1500.0)
    assert np.all(sol.y[:, -1, 1] == 0.0)  # B exhausted (k·A·B ≥ 0.5·B per day)
    assert sol.stats["leaps"] > 0
    death = death_events_network().compile()
    P = [5.0, 1e9, 0.0, -1.0]
    sol = solve_tau(death, [1e4, -1.0], P, np.linspace(0, 3, 31), seed=5, replicates=200,
                    epsilon=0.9, n_critical=0)
    assert np.all(sol.status == STATUS_OK)
    assert np.all(sol.y[:, :, 0] >= 0)
    assert sol.stats["rejected"] > 0
    assert np.all(np.diff(sol.y[:, :, 0], axis=1) <= 0)


def test_bitwise_invariant_to_chunking_threads_and_parallel():
    c, y0, P = _bd()
    t_eval = np.linspace(0.0, 3.0, 7)
    n = 48
    ref = solve_tau(c, y0, P, t_eval, seed=5, replicates=n)
    serial = solve_tau(c, y0, P, t_eval, seed=5, replicates=n, parallel=False)
    a = solve_tau(c, y0, P, t_eval, seed=5, replicates=17)
    b = solve_tau(c, y0, P, t_eval, seed=5, replicates=n - 17, replicate_offset=17)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = solve_tau(c, y0, P, t_eval, seed=5, replicates=n)
    finally:
        numba.set_num_threads(old)
    assert np.array_equal(ref.y, serial.y)
    assert np.array_equal(ref.y, np.concatenate([a.y, b.y]))
    assert np.array_equal(ref.y, one.y)
    assert ref.stats == serial.stats == one.stats
    assert ref.stats["leaps"] == a.stats["leaps"] + b.stats["leaps"]
    assert not np.array_equal(ref.y, solve_tau(c, y0, P, t_eval, seed=6, replicates=n).y)
    assert ref.settings["seed"] == 5 and ref.settings["epsilon"] == 0.03
    st = np.random.get_state()[1].copy()
    solve_tau(c, y0, P, t_eval, seed=5, replicates=4)
    assert np.array_equal(st, np.random.get_state()[1])


def test_per_replicate_failure_isolation_and_max_steps():
    c, y0, _ = _bd()
    good = np.array([1.0, 0.5])
    bad = np.array([-1.0, 0.5])
    t_eval = np.array([0.0, 1.0, 2.0])
    ok = solve_tau(c, y0, np.stack([good, good, good]), t_eval, seed=9)
    mixed = solve_tau(c, y0, np.stack([good, bad, good]), t_eval, seed=9)
    assert list(mixed.status) == [STATUS_OK, STATUS_BAD_PROPENSITY, STATUS_OK]
    assert "replicate 1" in mixed.message[1] and "propensity" in mixed.message[1]
    assert np.array_equal(mixed.y[[0, 2]], ok.y[[0, 2]])
    assert mixed.y[1, 0, 0] == 500.0 and np.all(np.isnan(mixed.y[1, 1:]))
    capped = solve_tau(c, y0, good, [0.0, 5.0], seed=1, replicates=3, max_steps=3)
    assert np.all(capped.status == STATUS_MAX_STEPS)
    assert "max_steps = 3" in capped.message[0]
    assert np.all(np.isnan(capped.y[:, 1]))


def test_zero_propensity_and_timed_and_condition_events():
    c, _, P = _bd()
    sol = solve_tau(c, [0.0], P, [0.0, 1.0, 100.0], seed=1, replicates=2)
    assert np.all(sol.y == 0.0) and sol.stats["reactions"] == 0
    # bolus of 1e4 at t = 1 fires exactly then (right-continuous output), then leaps decay it;
    # the extinction record fires when the population reaches 0
    d = death_events_network().compile()
    n, dose, mu = 400, 1e4, 1.0
    sol = solve_tau(d, [0.0, -1.0], [mu, 1.0, dose, -1.0], [0.0, 1.0, 2.0, 40.0], seed=2,
                    replicates=n)
    assert np.all(sol.status == STATUS_OK)
    assert np.all(sol.y[:, 0, 0] == 0.0) and np.all(sol.y[:, 1, 0] == dose)
    p = math.exp(-mu)
    x = sol.y[:, 2, 0]
    assert abs(x.mean() - dose * p) < 5 * math.sqrt(dose * p * (1 - p) / n) + dose * p * 0.03
    assert np.all(sol.y[:, 3, 0] == 0.0)
    tx = sol.y[:, 3, 1]
    assert np.all((tx > 1.0) & (tx <= 40.0))
    assert sol.stats["leaps"] > 0 and sol.stats["events"] == 2 * n


def test_large_population_takes_far_fewer_steps_than_reactions():
    """Birth–death from 10⁶: ~1.9·10⁶ firings per replicate in a day, a handful of leaps."""
    c = birth_death_network().compile()
    sol = solve_tau(c, [1e6], [1.0, 0.9], [0.0, 1.0], seed=3, replicates=8)
    assert np.all(sol.status == STATUS_OK)
    assert sol.stats["reactions"] > 8 * 1.5e6
    assert sol.stats["leaps"] + sol.stats["ssa_steps"] < sol.stats["reactions"] / 10_000
    x = sol.y[:, -1, 0]
    assert abs(x.mean() / (1e6 * math.exp(0.1)) - 1) < 0.01


def test_argument_validation():
    c, y0, P = _bd()
    t = [0.0, 1.0]
    bad_calls = [
        dict(seed=-1),
        dict(seed=1.5),
        dict(seed=1, replicates=-2),
        dict(seed=1, max_steps=0),
        dict(seed=1, replicate_offset=-1),
        dict(seed=1, t0=0.5),
        dict(seed=1, epsilon=0.0),
        dict(seed=1, epsilon=1.0),
        dict(seed=1, epsilon="0.1"),
        dict(seed=1, n_critical=-1),
        dict(seed=1, n_critical=2.5),
    ]
    for kw in bad_calls:
        with pytest.raises(ValueError):
            solve_tau(c, y0, P, t, **kw)
    with pytest.raises(ValueError, match="strictly increasing"):
        solve_tau(c, y0, P, [1.0, 0.0], seed=1)
    with pytest.raises(ValueError, match="non-negative count"):
        solve_tau(c, [-1.0], P, t, seed=1)
    with pytest.raises(ValueError, match="must match"):
        solve_tau(c, np.ones((3, 1)), np.ones((2, 2)), t, seed=1)
    empty = solve_tau(immigration_death_network().compile(), [0.0], [1.0, 1.0], [0.0], seed=1,
                      replicates=0)
    assert empty.y.shape == (0, 1, 1)


def test_flat_api_exports_solve_tau():
    import livingdrug

    assert livingdrug.solve_tau is solve_tau
    assert "solve_tau" in livingdrug.__all__
