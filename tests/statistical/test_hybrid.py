"""The hybrid engine (deterministic large populations, exact small ones) against closed forms,
the deterministic engine and the exact SSA.

Statistical tolerances are multiples of the sampling standard error (fixed seeds, so each test
is deterministic; a correct engine fails one at a 5-SE threshold with probability < 1e-6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from ssa_models import (
    birth_death_network,
    death_events_network,
    driven_birth_death_network,
    tumour_killing_network,
)

from livingdrug.engines.hybrid import solve_hybrid
from livingdrug.engines.ode import solve
from livingdrug.engines.ssa import solve_ssa
from livingdrug.models import get_model

Z = 5.0  # standard errors allowed


def _ok(sol):
    assert np.all(sol.status == 0), [m for m in sol.message if m != "ok"][:3]
    return sol


def test_threshold_zero_is_the_deterministic_engine():
    """Nothing discrete: the default CAR-T patient (10¹¹ cells, events) follows the ODE engine
    to within the tolerances of both."""
    net = get_model("car_t").network(toxicity=False)  # cytokines are not cell counts
    c = net.compile()
    y0, P = net.initial_state(), net.parameter_vector()
    t = np.linspace(-6.0, 120.0, 253)
    ode = solve(c, y0, P, t, t0=-6.0, rtol=1e-8, atol=1e-6)
    hyb = _ok(solve_hybrid(c, y0, P, t, t0=-6.0, seed=0, threshold=0.0, rtol=1e-8, atol=1e-6))
    assert hyb.stats["reactions"] == 0 and hyb.stats["switches"] == 0
    np.testing.assert_allclose(hyb.y[0], ode.y[0], rtol=1e-5, atol=1.0)


def test_threshold_inf_is_exact_birth_death():
    """Everything discrete: the engine is Gillespie's method.  Linear birth–death from n0:
    P(extinct by t) = [μ(e^{rt} − 1)/(λe^{rt} − μ)]^{n0} (Kendall 1948), E n = n0 e^{rt},
    Var n = n0 (λ+μ)/(λ−μ) e^{rt}(e^{rt} − 1)."""
    lam, mu, n0, n = 1.0, 0.5, 3, 20_000
    c = birth_death_network().compile()
    sol = _ok(solve_hybrid(c, [n0], [lam, mu], [0.0, 2.0, 6.0], seed=21, replicates=n,
                           threshold=math.inf))
    assert sol.stats["steps"] == 0  # no ODE step was ever needed
    e6 = math.exp((lam - mu) * 6.0)
    p = (mu * (e6 - 1.0) / (lam * e6 - mu)) ** n0
    p_hat = float(np.mean(sol.y[:, 2, 0] == 0))
    assert abs(p_hat - p) < Z * math.sqrt(p * (1 - p) / n)
    x = sol.y[:, 1, 0]
    assert np.array_equal(x, np.round(x))
    e2 = math.exp((lam - mu) * 2.0)
    mean = n0 * e2
    var = n0 * (lam + mu) / (lam - mu) * e2 * (e2 - 1.0)
    assert abs(x.mean() - mean) < Z * math.sqrt(var / n)
    m4 = np.mean((x - x.mean()) ** 4)
    assert abs(x.var(ddof=1) - var) < Z * math.sqrt((m4 - var**2) / n)


def _kendall_extinction(t, lam, mu0, kappa, delta):
    """P(a lineage of one cell is extinct by t) for birth λ and death μ(s) = μ0 + κ e^{−δs}:
    1 − 1/(e^{ρ(t)} + ∫₀ᵗ λ e^{ρ(s)} ds), ρ(t) = ∫₀ᵗ (μ − λ) (Kendall DG 1948, Ann Math Stat
    19:1–15)."""
    def rho(s):
        return (mu0 - lam) * s + kappa * (1.0 - math.exp(-delta * s)) / delta

    integral = quad(lambda s: lam * math.exp(rho(s)), 0.0, t, limit=200)[0]
    return 1.0 - 1.0 / (math.exp(rho(t)) + integral)


def test_kendall_formula_with_death_driven_by_deterministic_car_t():
    """A tumour lineage founded by one cell whose death rate is raised by a decaying CAR-T
    population (10⁶ cells: deterministic in the hybrid, C(t) = C0 e^{−δt}) goes extinct by
    time t with Kendall's probability for time-varying rates."""
    c = driven_birth_death_network().compile()
    net = c.network
    lam, mu0, kappa, delta = (net.param(n).value for n in ("lam", "mu0", "kappa", "delta"))
    t = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 20.0])
    n = 20_000
    sol = _ok(solve_hybrid(c, net.initial_state(), net.parameter_vector(), t, seed=5,
                           replicates=n, threshold=1000.0, rtol=1e-8))
    # the CAR-T population stayed deterministic and exponential
    np.testing.assert_allclose(sol.y[:, :, 1],
                               np.broadcast_to(1e6 * np.exp(-delta * t), (n, t.size)), rtol=1e-5)
    for j in range(1, t.size):
        p = _kendall_extinction(float(t[j]), lam, mu0, kappa, delta)
        p_hat = float(np.mean(sol.y[:, j, 0] == 0))
        assert abs(p_hat - p) < Z * math.sqrt(p * (1 - p) / n), (t[j], p_hat, p)


def test_cure_probability_agrees_with_the_exact_ssa():
    """Tumour 1000 cells vs 1000 CAR-T (both start continuous in the hybrid, threshold 100):
    the probability that the tumour is extinct, and the mean CAR-T count, agree with the exact
    SSA within the two-sample standard error."""
    c = tumour_killing_network().compile()
    net = c.network
    y0, P = net.initial_state(), net.parameter_vector()
    t = np.array([0.0, 10.0, 30.0, 60.0])
    n = 3000
    exact = _ok(solve_ssa(c, y0, P, t, seed=31, replicates=n))
    hyb = _ok(solve_hybrid(c, y0, P, t, seed=32, replicates=n, threshold=100.0))
    assert hyb.stats["switches"] > 0 and hyb.stats["reactions"] < exact.stats["reactions"] / 10
    for j in (1, 2, 3):
        p1 = float(np.mean(exact.y[:, j, 0] == 0))
        p2 = float(np.mean(hyb.y[:, j, 0] == 0))
        pool = (p1 + p2) / 2
        assert 0.05 < pool < 0.95 or j == 1
        assert abs(p1 - p2) < Z * math.sqrt(2 * pool * (1 - pool) / n), (t[j], p1, p2)
        e1, e2 = exact.y[:, j, 1], hyb.y[:, j, 1]
        se = math.sqrt(e1.var(ddof=1) / n + e2.var(ddof=1) / n)
        assert abs(e1.mean() - e2.mean()) < Z * se, (t[j], e1.mean(), e2.mean())


def test_small_populations_are_integer_counts():
    c = tumour_killing_network().compile()
    net = c.network
    sol = _ok(solve_hybrid(c, net.initial_state(), net.parameter_vector(),
                           np.linspace(0, 60, 121), seed=4, replicates=200, threshold=100.0))
    small = sol.y[sol.y < 100.0]
    assert small.size > 1000
    assert np.array_equal(small, np.round(small))
    assert np.all(sol.y >= 0)


def test_condition_crossed_by_the_continuous_state_is_located():
    """n = 10⁶ decays deterministically (threshold 10) at μ = 1/d; the event "n falls through
    thr = 10⁵: n := 0" must fire at ln 10 d: just before, n is still ≈ 10⁵, just after, 0.
    Events do not cascade (as in the ODE and SSA engines): the extinction record stays −1."""
    c = death_events_network().compile()
    names = c.network.param_names
    P = np.zeros(len(names))
    P[names.index("mu")] = 1.0
    P[names.index("t_dose")] = 1e9
    P[names.index("thr")] = 1e5
    tc = math.log(10.0)
    t = [0.0, 1.0, tc - 1e-7, tc + 1e-7, 3.0]
    sol = _ok(solve_hybrid(c, [1e6, -1.0], P, t, seed=1, threshold=10.0, rtol=1e-9, atol=1e-9))
    np.testing.assert_allclose(sol.y[0, 1, 0], 1e6 * math.exp(-1.0), rtol=1e-8)
    np.testing.assert_allclose(sol.y[0, 2, 0], 1e5 * math.exp(1e-7), rtol=1e-8)
    assert sol.y[0, 3, 0] == 0.0 and sol.y[0, 4, 0] == 0.0
    assert np.all(sol.y[0, :, 1] == -1.0)


def test_timed_bolus_is_exact():
    """Deterministic decay with a bolus at t = 1: n(2) = (n0 e^{−1} + D) e^{−1}."""
    c = death_events_network().compile()
    names = c.network.param_names
    P = np.zeros(len(names))
    P[names.index("mu")] = 1.0
    P[names.index("t_dose")] = 1.0
    P[names.index("dose")] = 5e5
    P[names.index("thr")] = -1.0
    sol = _ok(solve_hybrid(c, [1e6, -1.0], P, [0.0, 1.0, 2.0], seed=1, threshold=10.0,
                           rtol=1e-9, atol=1e-9))
    np.testing.assert_allclose(sol.y[0, 1, 0], 1e6 * math.exp(-1.0) + 5e5, rtol=1e-8)
    np.testing.assert_allclose(sol.y[0, 2, 0], (1e6 * math.exp(-1.0) + 5e5) * math.exp(-1.0),
                               rtol=1e-8)


def test_results_do_not_depend_on_chunking_or_threads():
    c = tumour_killing_network().compile()
    net = c.network
    y0, P, t = net.initial_state(), net.parameter_vector(), np.array([0.0, 15.0, 40.0])
    whole = solve_hybrid(c, y0, P, t, seed=9, replicates=40)
    a = solve_hybrid(c, y0, P, t, seed=9, replicates=15, parallel=False)
    b = solve_hybrid(c, y0, P, t, seed=9, replicates=25, replicate_offset=15)
    assert np.array_equal(whole.y, np.concatenate([a.y, b.y]))


def test_default_patient_is_fast_and_ends_in_whole_cells():
    """The default patient (2.1×10¹¹ leukaemic cells): every replicate completes, the large
    CAR-T expansion follows the ODE peak closely, and leukaemic populations that vanish do so
    as whole cells (exactly 0, not a mean-field fraction)."""
    net = get_model("car_t").network(toxicity=False)  # cytokines are not cell counts
    c = net.compile()
    y0, P = net.initial_state(), net.parameter_vector()
    t = np.arange(-6.0, 60.25, 0.25)
    ode = solve(c, y0, P, t, t0=-6.0)
    hyb = _ok(solve_hybrid(c, y0, P, t, t0=-6.0, seed=2, replicates=8))
    car = [net.species_names.index(s) for s in ("C_S", "C_E", "C_M", "C_X")]
    peak_ode = ode.y[0][:, car].sum(axis=1).max()
    peaks = hyb.y[:, :, car].sum(axis=2).max(axis=1)
    np.testing.assert_allclose(peaks, peak_ode, rtol=0.01)
    lm = net.species_names.index("L_M")
    assert np.all(hyb.y[:, -1, lm] == 0.0)  # CD19+ leukaemia extinct by day 60 (MRD-negative)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"threshold": -1.0}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": "100"}, "threshold"),
        ({"rtol": 0.0}, "rtol"),
        ({"atol": -1e-6}, "atol"),
        ({"max_events": 0}, "max_events"),
        ({"max_steps": 1.5}, "max_steps"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_clear_errors(kw, match):
    c = birth_death_network().compile()
    args = {"seed": 1} | kw
    with pytest.raises(ValueError, match=match):
        solve_hybrid(c, [3], [1.0, 0.5], [0.0, 1.0], **args)


def test_budget_exhaustion_is_a_status_not_an_exception():
    c = birth_death_network().compile()
    sol = solve_hybrid(c, [3], [1.0, 0.5], [0.0, 50.0], seed=1, replicates=4,
                       threshold=math.inf, max_events=20)
    assert np.all(sol.status == 1)
    assert all("max_events = 20" in m for m in sol.message)
    assert np.all(np.isnan(sol.y[:, -1, 0]))


def test_failure_messages_name_the_replicate_in_the_whole_run():
    c = birth_death_network().compile()
    sol = solve_hybrid(c, [3], [1.0, 0.5], [0.0, 50.0], seed=1, replicates=2,
                       replicate_offset=7, threshold=math.inf, max_events=20)
    assert [m.split(":")[0] for m in sol.message] == ["replicate 7", "replicate 8"]
