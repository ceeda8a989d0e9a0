"""Exact stochastic engine: reproducibility, generator, failure isolation, argument checks."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from ssa_models import birth_death_network, death_events_network

from livingdrug.engines import _ssa_kernel
from livingdrug.engines.common import STATUS_BAD_PROPENSITY, STATUS_MAX_STEPS, STATUS_OK
from livingdrug.engines.ssa import replicate_states, solve_ssa
from livingdrug.network import Network, Reaction, Species, sym
from livingdrug.params import Param

M64 = (1 << 64) - 1


def _xoshiro_reference(state, n):
    """xoshiro256** written out in Python integers (Blackman & Vigna 2021)."""
    s = [int(v) for v in state]

    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    out = []
    for _ in range(n):
        out.append(rotl((s[1] * 5) & M64, 7) * 9 & M64)
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


def test_generator_matches_reference_and_is_open_interval():
    state = replicate_states(2024, 7, 1)[0]
    assert np.array_equal(state, np.random.SeedSequence(2024, spawn_key=(7,)).generate_state(4, np.uint64))
    raw, u = _ssa_kernel.xoshiro_draws(state, 2000)
    ref = _xoshiro_reference(state, 4000)
    assert [int(v) for v in raw] == ref[:2000]
    expect = np.array([((v >> 11) + 0.5) * 2.0**-53 for v in ref[2000:]])
    assert np.array_equal(u, expect)
    assert np.all((u > 0) & (u < 1))
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)


def _bd():
    c = birth_death_network().compile()
    return c, np.array([3.0]), np.array([1.0, 0.5])


def test_bitwise_invariant_to_chunking_threads_and_parallel():
    c, y0, P = _bd()
    t_eval = np.linspace(0.0, 3.0, 7)
    n = 64
    ref = solve_ssa(c, y0, P, t_eval, seed=5, replicates=n)
    serial = solve_ssa(c, y0, P, t_eval, seed=5, replicates=n, parallel=False)
    a = solve_ssa(c, y0, P, t_eval, seed=5, replicates=23)
    b = solve_ssa(c, y0, P, t_eval, seed=5, replicates=n - 23, replicate_offset=23)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = solve_ssa(c, y0, P, t_eval, seed=5, replicates=n)
    finally:
        numba.set_num_threads(old)
    assert np.array_equal(ref.y, serial.y)
    assert np.array_equal(ref.y, np.concatenate([a.y, b.y]))
    assert np.array_equal(ref.y, one.y)
    assert ref.stats == serial.stats == one.stats
    assert ref.stats["reactions"] == a.stats["reactions"] + b.stats["reactions"]
    other = solve_ssa(c, y0, P, t_eval, seed=6, replicates=n)
    assert not np.array_equal(ref.y, other.y)
    assert ref.settings["seed"] == 5
    # global numpy state untouched
    st = np.random.get_state()[1].copy()
    solve_ssa(c, y0, P, t_eval, seed=5, replicates=4)
    assert np.array_equal(st, np.random.get_state()[1])


def test_per_replicate_failure_isolation():
    """A negative propensity fails its own row only, with a message; the other rows are
    bitwise what they would have been."""
    c, y0, _ = _bd()
    good = np.array([1.0, 0.5])
    bad = np.array([-1.0, 0.5])
    t_eval = np.array([0.0, 1.0, 2.0])
    ok = solve_ssa(c, y0, np.stack([good, good, good]), t_eval, seed=9)
    mixed = solve_ssa(c, y0, np.stack([good, bad, good]), t_eval, seed=9)
    assert list(mixed.status) == [STATUS_OK, STATUS_BAD_PROPENSITY, STATUS_OK]
    assert "replicate 1" in mixed.message[1] and "propensity" in mixed.message[1]
    assert mixed.message[0] == "ok"
    assert np.array_equal(mixed.y[[0, 2]], ok.y[[0, 2]])
    # the output at t0 precedes the first propensity evaluation; it fails right after
    assert mixed.y[1, 0, 0] == 3.0 and np.all(np.isnan(mixed.y[1, 1:]))
    assert "at t = 0 d" in mixed.message[1]


def test_max_events_is_a_status():
    c, y0, P = _bd()
    sol = solve_ssa(c, [50.0], P, [0.0, 5.0], seed=1, replicates=3, max_events=100)
    assert np.all(sol.status == STATUS_MAX_STEPS)
    assert "max_events = 100" in sol.message[0]
    assert np.all(sol.y[:, 0, 0] == 50.0) and np.all(np.isnan(sol.y[:, 1]))


def test_zero_propensity_jumps_to_outputs():
    c, _, P = _bd()
    sol = solve_ssa(c, [0.0], P, [0.0, 1.0, 100.0], seed=1, replicates=2)
    assert np.all(sol.y == 0.0) and sol.stats["reactions"] == 0


def test_argument_validation():
    c, y0, P = _bd()
    t = [0.0, 1.0]
    bad_calls = [
        dict(seed=-1),
        dict(seed=1.5),
        dict(seed=1, replicates=-2),
        dict(seed=1, max_events=0),
        dict(seed=1, replicate_offset=-1),
        dict(seed=1, t0=0.5),
    ]
    for kw in bad_calls:
        with pytest.raises(ValueError):
            solve_ssa(c, y0, P, t, **kw)
    with pytest.raises(ValueError, match="strictly increasing"):
        solve_ssa(c, y0, P, [1.0, 0.0], seed=1)
    with pytest.raises(ValueError, match="shape"):
        solve_ssa(c, [1.0, 2.0], P, t, seed=1)
    with pytest.raises(ValueError, match="non-negative count"):
        solve_ssa(c, [-1.0], P, t, seed=1)
    with pytest.raises(ValueError, match="replicates"):
        solve_ssa(c, np.ones((3, 1)), P, t, seed=1, replicates=4)
    with pytest.raises(ValueError, match="must match"):
        solve_ssa(c, np.ones((3, 1)), np.ones((2, 2)), t, seed=1)
    k = sym("k")
    frac = Network(
        "ssa_test_fractional",
        species=(Species("x"),),
        params=(Param("k", 1.0, "1/d"),),
        reactions=(Reaction("half", {"x": 0.5}, k),),
    ).compile()
    with pytest.raises(ValueError, match="integer stoichiometry"):
        solve_ssa(frac, [0.0], [1.0], t, seed=1)


def test_rows_broadcast_and_per_row_parameters():
    c = death_events_network().compile()
    P = np.array([[1.0, 1e9, 0.0, -1.0], [1.0, 0.5, 3.0, -1.0]])
    sol = solve_ssa(c, [0.0, -1.0], P, [0.0, 1.0], seed=3)
    assert sol.y.shape == (2, 2, 2)
    assert sol.y[0, 1, 0] == 0.0 and 0.0 <= sol.y[1, 1, 0] <= 3.0
    empty = solve_ssa(c, [0.0, -1.0], P[0], [0.0], seed=3, replicates=0)
    assert empty.y.shape == (0, 1, 2)


def test_flat_api_exports_solve_ssa():
    import livingdrug

    assert livingdrug.solve_ssa is solve_ssa
    assert "solve_ssa" in livingdrug.__all__
