"""The lane-parallel exact SSA kernel (:mod:`livingdrug.engines._ssa_lanes`): bitwise identical
to the scalar direct-method kernel, invariant to chunking / lane count / threads, dispatched
automatically, and its logarithm accurate to 1 ulp."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import sympy as sp
from ssa_models import (
    bimolecular_network,
    birth_death_network,
    death_events_network,
    tumour_killing_network,
)

from livingdrug.engines import _ssa_kernel, ssa_lanes
from livingdrug.engines.common import STATUS_BAD_PROPENSITY, STATUS_MAX_STEPS, STATUS_OK
from livingdrug.engines.ssa import solve_ssa
from livingdrug.network import Network, Reaction, Species, T, sym
from livingdrug.params import Param

WIDE = (-1e300, 1e300)


def _same(a, b):
    """Bitwise the same solution (NaN where the other has NaN)."""
    assert np.array_equal(a.y, b.y, equal_nan=True)
    assert np.array_equal(a.status, b.status)
    assert a.message == b.message
    assert a.stats == b.stats


def _capped_network() -> Network:
    """X → X+1 at k·(cap − X) (negative — an invalid propensity — once X > cap) and
    X → ∅ at μ·X·(1 + t) (an explicit time dependence)."""
    X, k, cap, mu = sym("X"), sym("k"), sym("cap"), sym("mu")
    return Network(
        "ssa_test_capped",
        species=(Species("X", initial=5.0),),
        params=(Param("k", 2.0, "1/d", bounds=WIDE), Param("cap", 40.0, "cell", bounds=WIDE),
                Param("mu", 0.2, "1/d", bounds=WIDE)),
        reactions=(Reaction("make", {"X": 1}, k * (cap - X)),
                   Reaction("die", {"X": -1}, mu * X * (1 + T))),
    )


def _functions_network() -> Network:
    """Rate laws with library functions and branches (non-integer power, exp of t, a
    Piecewise threshold), which the generated lane step must carry over unchanged."""
    X, Y, k = sym("X"), sym("Y"), sym("k")
    return Network(
        "ssa_test_functions",
        species=(Species("X", initial=20.0), Species("Y", initial=3.0)),
        params=(Param("k", 0.7, "1/d", bounds=WIDE),),
        reactions=(Reaction("grow", {"X": 1}, k * X**1.5 / (1 + X)),
                   Reaction("convert", {"X": -1, "Y": 1}, sp.exp(-T) * X),
                   Reaction("clear", {"Y": -1}, sp.Piecewise((k * Y, Y > 5), (0.1 * Y, True)))),
    )


@pytest.mark.parametrize("network", [tumour_killing_network, bimolecular_network,
                                     birth_death_network, _functions_network])
def test_lanes_bitwise_equal_to_scalar_kernel(network):
    """Same replicate, same stream, same arithmetic: the lane kernel must reproduce the scalar
    direct-method kernel (Gillespie 1977) bit for bit, on saturating rate laws (divisions), a
    reaction changing three species, and a start time before the first output."""
    net = network()
    c = net.compile()
    y0 = net.initial_state()
    P = net.parameter_vector()
    t_eval = np.linspace(0.5, 4.0, 6)
    lanes = solve_ssa(c, y0, P, t_eval, seed=21, replicates=45, t0=0.0, kernel="lanes")
    scalar = solve_ssa(c, y0, P, t_eval, seed=21, replicates=45, t0=0.0, kernel="scalar")
    assert lanes.settings["kernel"] == "lanes" and scalar.settings["kernel"] == "scalar"
    assert lanes.stats["reactions"] > 1000
    _same(lanes, scalar)


def test_lanes_statuses_and_time_dependence_match_scalar_kernel():
    """Rows that fail (negative propensity at the start or later, max_events), rows where
    nothing can fire (a0 = 0) and an explicit-time rate law: statuses, messages, NaN tails and
    firing counts are those of the scalar kernel."""
    net = _capped_network()
    c = net.compile()
    n = 70
    rng = np.random.default_rng(3)
    P = np.tile(net.parameter_vector(), (n, 1))
    Y0 = np.tile(net.initial_state(), (n, 1))
    P[:, 1] = rng.uniform(10.0, 60.0, n)   # cap
    P[::7, 0] = 500.0                      # fast rows: hit max_events
    P[::7, 2] = 500.0
    Y0[3::11, 0] = 80.0                    # above the cap: invalid propensity at t0
    P[5::13, 1] = 0.0                      # cap 0 and X0 = 0: nothing can fire
    Y0[5::13, 0] = 0.0
    P[6::17, 2] = -0.05                    # negative death rate: invalid while X > 0
    t_eval = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    kw = dict(seed=4, max_events=3000)
    lanes = solve_ssa(c, Y0, P, t_eval, kernel="lanes", **kw)
    scalar = solve_ssa(c, Y0, P, t_eval, kernel="scalar", **kw)
    _same(lanes, scalar)
    st = set(lanes.status.tolist())
    assert {STATUS_OK, STATUS_MAX_STEPS, STATUS_BAD_PROPENSITY} <= st
    assert np.all(lanes.y[5::13] == 0.0)


def test_lanes_invariant_to_chunking_lane_count_and_threads(monkeypatch):
    """Replicates 0–99 in one call equal 0–49 + 50–99 (replicate_offset), serial equals
    parallel, one thread equals several, and 8 lanes equal 32: a replicate's result depends
    only on (seed, replicate index) and its inputs."""
    net = tumour_killing_network()
    c = net.compile()
    y0, P = net.initial_state(), net.parameter_vector()
    t_eval = np.linspace(0.0, 3.0, 4)
    ref = solve_ssa(c, y0, P, t_eval, seed=8, replicates=100)
    assert ref.settings["kernel"] == "lanes"
    serial = solve_ssa(c, y0, P, t_eval, seed=8, replicates=100, parallel=False)
    a = solve_ssa(c, y0, P, t_eval, seed=8, replicates=50)
    b = solve_ssa(c, y0, P, t_eval, seed=8, replicates=50, replicate_offset=50)
    few = solve_ssa(c, y0, P, t_eval, seed=8, replicates=3, replicate_offset=97)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = solve_ssa(c, y0, P, t_eval, seed=8, replicates=100)
    finally:
        numba.set_num_threads(old)
    monkeypatch.setattr(ssa_lanes, "LANES", 8)
    eight = solve_ssa(c, y0, P, t_eval, seed=8, replicates=100)
    _same(ref, serial)
    _same(ref, one)
    _same(ref, eight)
    assert np.array_equal(ref.y, np.concatenate([a.y, b.y]))
    assert np.array_equal(ref.y[97:], few.y)
    assert ref.stats["reactions"] == a.stats["reactions"] + b.stats["reactions"]
    other = solve_ssa(c, y0, P, t_eval, seed=9, replicates=100)
    assert not np.array_equal(ref.y, other.y)


def test_lanes_mean_matches_closed_form():
    """Independent check of the lane kernel's law: bimolecular A + B → C at k·A·B has
    d(A − B)/dt = 0 exactly, and for A0 = 2000, B0 = 1500, k = 1e-3 /d the mean of A at t = 1 d
    is the mean-field solution A(t) = Δ/(1 − (B0/A0)e^{−kΔt}), Δ = A0 − B0, up to the
    fluctuation correction −k·Var(A)·t ≈ −0.25 cell (moment equation dE[A]/dt =
    −k(E[A]² + Var A − ΔE[A]), Var A ≈ 250): checked to 5 standard errors plus 0.5 cell."""
    net = bimolecular_network()
    c = net.compile()
    sol = solve_ssa(c, net.initial_state(), net.parameter_vector(), [0.0, 1.0], seed=2,
                    replicates=400, kernel="lanes")
    A, B = sol.y[:, -1, 0], sol.y[:, -1, 1]
    assert np.all(A - B == 500.0)
    d = 500.0
    exact = d / (1.0 - (1500.0 / 2000.0) * math.exp(-1e-3 * d * 1.0))
    se = A.std(ddof=1) / math.sqrt(A.size)
    assert abs(A.mean() - exact) < 5 * se + 0.5, (A.mean(), exact, se)


def test_dispatch_and_kernel_argument():
    """Event-free networks use the lane kernel by default, networks with events the scalar
    one; kernel='lanes' on a network with events and an unknown kernel name are clear
    errors."""
    bd = birth_death_network().compile()
    ev = death_events_network().compile()
    assert solve_ssa(bd, [3.0], [1.0, 0.5], [0.0, 1.0], seed=1).settings["kernel"] == "lanes"
    assert solve_ssa(bd, [3.0], [1.0, 0.5], [0.0, 1.0], seed=1,
                     kernel="scalar").settings["kernel"] == "scalar"
    P = death_events_network().parameter_vector()
    assert solve_ssa(ev, [3.0, -1.0], P, [0.0, 1.0], seed=1).settings["kernel"] == "scalar"
    with pytest.raises(ValueError, match="kernel = 'lanes'.*3 events"):
        solve_ssa(ev, [3.0, -1.0], P, [0.0, 1.0], seed=1, kernel="lanes")
    with pytest.raises(ValueError, match="kernel must be one of"):
        solve_ssa(bd, [3.0], [1.0, 0.5], [0.0, 1.0], seed=1, kernel="fast")


def test_log_open_within_one_ulp_of_libm():
    """The branch-free logarithm (fdlibm e_log.c, Sun Microsystems 1993: error < 1 ulp) on
    the generator's own uniforms, on the smallest one (2⁻⁵⁴), near 1, and around √2/2 where
    the mantissa reduction switches."""
    state = np.array([1, 2, 3, 4], dtype=np.uint64)
    _, u = _ssa_kernel.xoshiro_draws(state, 200_000)
    extra = [2.0**-54, 0.5, 1.0 - 2.0**-53, 1.0 - 2.0**-40, math.sqrt(0.5),
             np.nextafter(math.sqrt(0.5), 1.0), np.nextafter(math.sqrt(0.5), 0.0), 0.75, 1e-10]
    x = np.concatenate([u, np.array(extra), np.exp(-np.linspace(0.0, 37.0, 10_001))[1:]])
    got = np.array([_log1(v) for v in x[:2000]] + list(_log_many(x[2000:])))
    ref = np.log(x)
    ulps = np.abs(got - ref) / np.spacing(np.abs(ref))
    assert ulps.max() <= 1.0, float(ulps.max())
    assert _log1(1.0 - 2.0**-53) < 0.0


@numba.njit
def _log_many(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = _ssa_kernel.log_open(x[i])
    return out


def _log1(v):
    return float(_log_many(np.array([v]))[0])


@pytest.mark.parametrize("seed, first, n", [(0, 0, 40), (2024, 0, 300), (2**32 + 7, 5, 30),
                                            (2**100 + 3, 2**32 - 40, 40), (2**127 + 9, 10, 3),
                                            (7, 2**32 - 2, 5), (11, 3, 0)])
def test_replicate_states_are_numpys_seedsequence_streams(seed, first, n):
    """The vectorised seeding is numpy's SeedSequence(seed, spawn_key=(first + i,))
    .generate_state(4, uint64) bit for bit (the per-replicate stream convention of
    livingdrug.rng), including multi-word seeds and offsets beyond 2³² (numpy fallback)."""
    from livingdrug.engines.ssa import replicate_states

    ref = np.array([np.random.SeedSequence(seed, spawn_key=(first + i,)).generate_state(4, np.uint64)
                    for i in range(n)], dtype=np.uint64).reshape(n, 4)
    assert np.array_equal(replicate_states(seed, first, n), ref)
