"""The ODE engine against closed forms, convergence order, a stiff reference and events.

Models are built with the real Network API (Species / Reaction / Event / At / When / Param).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from ode_models import BIG, WIDE, logistic_network, robertson_network
from scipy.integrate import solve_ivp

from livingdrug.engines.common import STATUS_MAX_STEPS, STATUS_OK
from livingdrug.engines.ode import solve
from livingdrug.network import Event, Network, Reaction, Species, T, When, compile_network, sym
from livingdrug.params import Param


def params(r=1.0, K=BIG, t_dose=1e9, dose=0.0, thr=-1.0, t2=1e9) -> np.ndarray:
    return np.array([r, K, t_dose, dose, thr, t2], dtype=float)


@pytest.fixture(scope="module")
def logi():
    return compile_network(logistic_network())


METHODS = ["dopri5", "rodas", "auto"]


# ---------------------------------------------------------------------------------------
# 1. closed forms
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rtol", [1e-6, 1e-9])
def test_exponential_growth_and_decay(logi, method, rtol):
    """y = y0·e^{rt} (r = ±0.7) at every output time, relative error ≤ 10·rtol."""
    t = np.linspace(0.0, 10.0, 41)
    P = np.array([params(r=0.7), params(r=-0.7)])
    sol = solve(logi, [3.0, -1.0], P, t, method=method, rtol=rtol, atol=1e-14)
    assert np.all(sol.status == STATUS_OK), sol.message
    for i, r in enumerate((0.7, -0.7)):
        exact = 3.0 * np.exp(r * t)
        rel = np.abs(sol.y[i, :, 0] / exact - 1.0)
        assert rel.max() <= 10 * rtol, (method, r, rel.max())
    assert np.all(sol.y[:, :, 1] == -1.0)  # untouched species stays bitwise constant


@pytest.mark.parametrize("method", METHODS)
def test_logistic(logi, method):
    """y = K / (1 + (K/y0 − 1)·e^{−rt}), relative error ≤ 10·rtol over growth and plateau."""
    rtol = 1e-7
    t = np.linspace(0.0, 20.0, 81)
    K, y0, r = 1e9, 1e3, 1.3
    sol = solve(logi, [y0, 0.0], params(r=r, K=K), t, method=method, rtol=rtol, atol=1e-12)
    assert sol.status[0] == STATUS_OK
    exact = K / (1.0 + (K / y0 - 1.0) * np.exp(-r * t))
    rel = np.abs(sol.y[0, :, 0] / exact - 1.0)
    assert rel.max() <= 10 * rtol, rel.max()
    # sanity: the output really is at the requested times (first is the initial state)
    assert sol.y[0, 0, 0] == y0
    np.testing.assert_array_equal(sol.t, t)


def test_t0_before_first_output(logi):
    """t0 < t_eval[0]: outputs start later, still on the closed form."""
    t = np.array([2.0, 3.0])
    sol = solve(logi, [1.0, 0.0], params(r=-0.5), t, t0=0.0, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(sol.y[0, :, 0], np.exp(-0.5 * t), rtol=1e-8)
    assert sol.settings["t0"] == 0.0


# ---------------------------------------------------------------------------------------
# 2. convergence order with fixed steps
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "order"), [("dopri5", 5.0), ("rodas", 4.0)])
def test_convergence_order(logi, method, order):
    """Global error at t = 2 of the logistic problem (r = 1, K = 10, y0 = 1) with fixed steps
    h = 0.2 … 0.025 behaves as C·h^p; the least-squares slope of log error vs log h is the
    method's order p (DOPRI5: 5, Rodas4: 4) within ±0.3."""
    K = 10.0
    exact = K / (1.0 + (K - 1.0) * math.exp(-2.0))
    hs = np.array([0.2, 0.1, 0.05, 0.025])
    errs = []
    for h in hs:
        sol = solve(logi, [1.0, 0.0], params(r=1.0, K=K), np.array([0.0, 2.0]), method=method,
                    fixed_step=h)
        assert sol.status[0] == STATUS_OK
        assert sol.stats["steps"] == round(2.0 / h)
        assert sol.stats["rejected"] == 0
        errs.append(abs(sol.y[0, -1, 0] - exact))
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert abs(slope - order) <= 0.3, (method, slope, errs)


# ---------------------------------------------------------------------------------------
# 3. stiffness: Robertson
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rob():
    c = compile_network(robertson_network())
    P = c.network.parameter_vector()
    t = np.array([0.0, 1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5])

    def f(tt, y):
        dy = np.empty(3)
        c.rhs(tt, y, P, dy)
        return dy

    def jac(tt, y):
        J = np.empty((3, 3))
        c.jac(tt, y, P, J)
        return J

    ref = solve_ivp(f, (0.0, t[-1]), [1.0, 0.0, 0.0], method="Radau", rtol=1e-10, atol=1e-14,
                    t_eval=t, jac=jac)
    assert ref.success
    return c, P, t, ref.y.T


@pytest.mark.parametrize("method", ["auto", "rodas"])
def test_robertson_stiff(rob, method):
    """auto and rodas agree with scipy Radau (rtol 1e-10) to ≲10·rtol relative on every
    component, in a modest number of steps; auto records at least one stiffness switch."""
    c, P, t, ref = rob
    rtol = 1e-6
    sol = solve(c, [1.0, 0.0, 0.0], P, t, method=method, rtol=rtol, atol=1e-12)
    assert sol.status[0] == STATUS_OK, sol.message
    rel = np.abs(sol.y[0] - ref) / np.maximum(np.abs(ref), 1e-20)
    assert rel[1:].max() <= 10 * rtol, rel.max(axis=0)
    assert sol.stats["steps"] < 2000
    np.testing.assert_allclose(sol.y[0].sum(axis=1), 1.0, rtol=1e-12)  # mass conservation
    if method == "auto":
        assert sol.stats["stiff_switches"] >= 1
        assert sol.stats["jac_evals"] > 0
    else:
        assert sol.stats["stiff_switches"] == 0


def test_robertson_dopri5_fails_gracefully(rob):
    """Explicit DOPRI5 cannot cross 1e5 days of Robertson in 20 000 steps: it must return
    STATUS_MAX_STEPS (with NaN outputs after the failure), not hang or raise."""
    c, P, t, ref = rob
    sol = solve(c, [1.0, 0.0, 0.0], P, t, method="dopri5", max_steps=20_000)
    assert sol.status[0] == STATUS_MAX_STEPS
    assert "maximum number of steps" in sol.message[0] and "t = " in sol.message[0]
    assert np.isnan(sol.y[0, -1]).all()
    # what it did compute before failing is right
    ok = ~np.isnan(sol.y[0, :, 0])
    assert ok[:4].all()
    np.testing.assert_allclose(sol.y[0, ok, 0], ref[ok, 0], rtol=1e-4)


# ---------------------------------------------------------------------------------------
# 4. events
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_bolus_piecewise_closed_form(logi, method):
    """Decay y' = −k y from y0 = 1 with a bolus D at t = 2:
    y = e^{−kt} (t < 2),  y = (e^{−2k} + D)·e^{−k(t−2)} (t ≥ 2); the output AT t = 2 is the
    state after the dose (right-continuous)."""
    k, D = 0.8, 5.0
    t = np.linspace(0.0, 6.0, 25)  # contains 2.0 exactly
    t_off = np.array([0.0, 1.3, 2.7, 6.0])  # dose time not an output
    for tt in (t, t_off):
        sol = solve(logi, [1.0, 0.0], params(r=-k, t_dose=2.0, dose=D), tt, method=method,
                    rtol=1e-9, atol=1e-14)
        assert sol.status[0] == STATUS_OK
        exact = np.where(tt < 2.0, np.exp(-k * tt), (math.exp(-2 * k) + D) * np.exp(-k * (tt - 2.0)))
        np.testing.assert_allclose(sol.y[0, :, 0], exact, rtol=1e-8)
        assert sol.stats["events"] == 1
    assert abs(sol.y[0, 0, 0] - 1.0) == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_threshold_event_time(logi, method):
    """y' = −k y, y0 = 100, event "y falls below thr = 1 → y := 0" fires at ln(y0/thr)/k; the
    event records t in species tf.  Located to 1e-8 (at rtol 1e-11); y stays 0 after."""
    k = 0.5
    t = np.linspace(0.0, 20.0, 21)
    sol = solve(logi, [100.0, -1.0], params(r=-k, thr=1.0), t, method=method, rtol=1e-11,
                atol=1e-14)
    assert sol.status[0] == STATUS_OK
    t_exact = math.log(100.0) / k
    t_fire = sol.y[0, -1, 1]
    assert abs(t_fire - t_exact) <= 1e-8, (t_fire, t_exact)
    assert sol.stats["events"] == 1
    after = t > t_exact
    assert np.all(sol.y[0, after, 0] == 0.0)
    np.testing.assert_allclose(sol.y[0, ~after, 0], 100 * np.exp(-k * t[~after]), rtol=1e-9)


def test_same_time_events_fire_in_index_order(logi):
    """Events 'double' (index 2) and 'plus_one' (index 3) at t2 = 1 give 2y + 1, not 2(y + 1);
    an event at t0 fires before integrating (output at t0 shows it)."""
    t = np.array([0.0, 1.0, 2.0])
    sol = solve(logi, [3.0, 0.0], params(r=0.0, t2=1.0), t)
    np.testing.assert_array_equal(sol.y[0, :, 0], [3.0, 7.0, 7.0])
    sol0 = solve(logi, [3.0, 0.0], params(r=0.0, t2=0.0, t_dose=0.0, dose=10.0), t)
    # bolus (0) then double (2) then plus_one (3): (3 + 10)·2 + 1
    np.testing.assert_array_equal(sol0.y[0, :, 0], [27.0, 27.0, 27.0])
    assert sol0.stats["events"] == 3
    # an event before t0 or after the last output never fires
    sol1 = solve(logi, [3.0, 0.0], np.array([params(r=0.0, t2=-1.0), params(r=0.0, t2=2.5)]), t)
    np.testing.assert_array_equal(sol1.y[:, :, 0], 3.0)
    assert sol1.stats["events"] == 0


def oscillator_network() -> Network:
    """y' = cos(t) (y = sin t for y0 = 0), non-autonomous; two counters incremented on every
    upward crossing of y = 1/2: c_once (once=True) and c_all (once=False)."""
    y, c1, c2 = sym("y"), sym("c_once"), sym("c_all")
    lev = sym("level")
    return Network(
        "ode_test_oscillator",
        species=(Species("y", "1"), Species("c_once", "1"), Species("c_all", "1")),
        params=(Param("level", 0.5, "1", bounds=WIDE),),
        reactions=(Reaction("drive", {"y": 1}, sp.cos(T)),),
        events=(
            Event("first", When(y - lev, 1), {"c_once": c1 + 1}, once=True),
            Event("every", When(y - lev, 1), {"c_all": c2 + 1}, once=False),
        ),
    )


@pytest.mark.parametrize("method", METHODS)
def test_once_and_repeated_condition_events(method):
    """sin t crosses 1/2 upwards at π/6 + 2πj: 4 times in [0, 20].  The once-event fires once,
    the other 4 times (no re-triggering at the root although the assignment leaves y at the
    threshold).  y = sin t holds throughout (∂f/∂t is used by Rodas here)."""
    c = compile_network(oscillator_network())
    t = np.linspace(0.0, 20.0, 201)
    sol = solve(c, [0.0, 0.0, 0.0], [0.5], t, method=method, rtol=1e-8, atol=1e-12)
    assert sol.status[0] == STATUS_OK
    crossings = [math.pi / 6 + 2 * math.pi * j for j in range(4)]
    expect_all = np.searchsorted(crossings, t, side="right")
    np.testing.assert_array_equal(sol.y[0, :, 2], expect_all)
    np.testing.assert_array_equal(sol.y[0, :, 1], np.minimum(expect_all, 1))
    np.testing.assert_allclose(sol.y[0, :, 0], np.sin(t), atol=1e-7)
    # a downward-only event would not have fired: direction matters (level 2 never reached)
    sol2 = solve(c, [0.0, 0.0, 0.0], [2.0], t, method=method)
    assert np.all(sol2.y[0, :, 1:] == 0.0)


def transient_stiff_network() -> Network:
    """x' = −x, y' = λ·x·(1 − y) − 0.2·y: stiff (eigenvalue −λx ≈ −1e4) at first, non-stiff once
    x has decayed (λx < 1 after t ≈ 9)."""
    x, y, lam = sym("x"), sym("y"), sym("lam")
    return Network(
        "ode_test_transient_stiff",
        species=(Species("x", "1", 1.0), Species("y", "1", 0.0)),
        params=(Param("lam", 1e4, "1/d"),),
        reactions=(
            Reaction("decay", {"x": -1}, x),
            Reaction("relax", {"y": 1}, lam * x * (1 - y)),
            Reaction("loss", {"y": -1}, 0.2 * y),
        ),
    )


def scaled_stiff_network() -> Network:
    """A cell population C ≈ 1e9 (slow decay, 0.01/d) secreting a cytokine S ≈ 1 that decays
    fast (8/d, a half-life of 2 h), like the CAR-T model's IL-1 and IFN-γ:
    C' = −0.01·C,  S' = 1e-8·C − 8·S.  Closed form:
    C = C0·e^{−0.01t},  S = a·C0·e^{−0.01t} + (S0 − a·C0)·e^{−8t},  a = 1e-8/(8 − 0.01)."""
    c, s = sym("C"), sym("S")
    return Network(
        "ode_test_scaled_stiff",
        species=(Species("C", "cell", 1e9), Species("S", "1", 0.0)),
        params=(),
        reactions=(
            Reaction("death", {"C": -1}, 0.01 * c),
            Reaction("secrete", {"S": 1}, 1e-8 * c),
            Reaction("decay", {"S": -1}, 8.0 * s),
        ),
    )


def test_auto_detects_stiffness_of_a_small_fast_species_beside_a_large_slow_one():
    """DOPRI5 is stability-limited here (h·8 ≤ 3.3: ~890 steps over a year) although the
    solution is smooth.  Hairer's stiffness estimate ‖Δf‖/‖Δy‖ in absolute units only sees C
    (1e9, eigenvalue −0.01); weighted by the error-norm scales it sees S (eigenvalue −8), so
    auto must switch to Rodas, which interpolates the 6-hourly outputs: fewer than half of
    DOPRI5's steps, and both within 10·(atol + rtol·|y|) of the closed form at every output."""
    c = compile_network(scaled_stiff_network())
    t = np.arange(0.0, 365.01, 0.25)
    rtol, atol = 1e-6, 1e-9
    sol = solve(c, [1e9, 0.0], np.zeros(0), t, rtol=rtol, atol=atol)
    dp = solve(c, [1e9, 0.0], np.zeros(0), t, method="dopri5", rtol=rtol, atol=atol)
    assert sol.status[0] == STATUS_OK and dp.status[0] == STATUS_OK
    assert sol.stats["stiff_switches"] >= 1
    assert dp.stats["steps"] > 800
    assert sol.stats["steps"] < dp.stats["steps"] / 2
    a = 1e-8 / (8.0 - 0.01)
    C = 1e9 * np.exp(-0.01 * t)
    S = a * C - a * 1e9 * np.exp(-8.0 * t)
    exact = np.stack([C, S], axis=1)
    for run in (sol, dp):
        scaled = np.abs(run.y[0] - exact) / (atol + rtol * np.abs(exact))
        assert scaled.max() <= 10.0, scaled.max(axis=0)


def test_auto_switches_to_rodas_and_back():
    """auto goes DOPRI5 → Rodas (stiff start) → DOPRI5 (stiffness gone): ≥ 2 switches, far
    fewer steps than pure DOPRI5, fewer Jacobians than steps, and agreement with Radau
    (rtol 1e-11) within 10·(atol + rtol·|y|)."""
    c = compile_network(transient_stiff_network())
    t = np.linspace(0.0, 40.0, 81)
    rtol, atol = 1e-6, 1e-12
    sol = solve(c, [1.0, 0.0], [1e4], t, rtol=rtol, atol=atol)
    dp = solve(c, [1.0, 0.0], [1e4], t, method="dopri5", rtol=rtol, atol=atol)
    assert sol.status[0] == STATUS_OK and dp.status[0] == STATUS_OK
    assert sol.stats["stiff_switches"] >= 2
    assert sol.stats["jac_evals"] < 0.8 * sol.stats["steps"]
    assert sol.stats["steps"] < dp.stats["steps"] / 5

    def f(tt, yy):
        d = np.empty(2)
        c.rhs(tt, yy, np.array([1e4]), d)
        return d

    ref = solve_ivp(f, (0.0, 40.0), [1.0, 0.0], method="Radau", rtol=1e-11, atol=1e-15,
                    t_eval=t).y.T
    scaled = np.abs(sol.y[0] - ref) / (atol + rtol * np.abs(ref))
    assert scaled.max() <= 10.0, scaled.max(axis=0)


@pytest.mark.parametrize("rtol", [1e-5, 1e-8])
def test_dopri5_dense_output(logi, rtol):
    """DOPRI5 interpolates outputs inside its steps (order-4 continuous extension): with 1001
    outputs it takes far fewer steps than outputs, and the interpolated values of the logistic
    closed form stay within 20·rtol (the interpolation error is of the size of the local error
    estimate, i.e. ~rtol per step, on top of the global error; measured 10.6·rtol at rtol 1e-8).
    Rodas interpolates too (order-3 continuous extension of Hairer & Wanner 1996, rodas.f):
    fewer steps than half the outputs (measured 78 and 422 steps) within the same 20·rtol
    (measured 1.3·rtol and 1.4·rtol)."""
    t = np.linspace(0.0, 15.0, 1001)
    K, y0, r = 1e6, 1.0, 1.1
    exact = K / (1.0 + (K / y0 - 1.0) * np.exp(-r * t))
    sol = solve(logi, [y0, 0.0], params(r=r, K=K), t, method="dopri5", rtol=rtol, atol=1e-14)
    assert sol.stats["steps"] < 300
    rel = np.abs(sol.y[0, :, 0] / exact - 1.0)
    assert rel.max() <= 20 * rtol, rel.max()
    ro = solve(logi, [y0, 0.0], params(r=r, K=K), t, method="rodas", rtol=rtol, atol=1e-14)
    assert ro.stats["steps"] < 500
    rel = np.abs(ro.y[0, :, 0] / exact - 1.0)
    assert rel.max() <= 20 * rtol, rel.max()


@pytest.mark.parametrize("theta", [0.3, 0.7])
def test_rodas_dense_output_order(logi, theta):
    """Rodas4's continuous extension (Hairer & Wanner, Solving ODE II, 2nd ed. 1996, Sect. VI.7;
    the coefficients of rodas.f) is of order 3: inside one step of size h, at t0 + θh, its
    error against the logistic closed form is O(h⁴).  One accepted step of size h (tolerances
    so loose that the first step is kept, ``first_step = h``), output at θh interpolated,
    h = 0.1 … 0.0125: the observed order log2(e(h)/e(h/2)) is 4 ± 0.5 (measured 3.5–4.1)."""
    K, y0, r, t0 = 1e6, 1.0, 1.1, 2.0

    def exact(tt):
        return K / (1.0 + (K / y0 - 1.0) * np.exp(-r * tt))

    errs = []
    for h in (0.1, 0.05, 0.025, 0.0125):
        te = np.array([t0 + theta * h, t0 + h])
        sol = solve(logi, [exact(t0), 0.0], params(r=r, K=K), te, t0=t0, method="rodas",
                    rtol=1.0, atol=1.0, first_step=h)
        assert sol.stats["steps"] == 1 and sol.stats["rejected"] == 0
        errs.append(abs(sol.y[0, 0, 0] / exact(te[0]) - 1.0))
    slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(slopes - 4.0) <= 0.5), (slopes, errs)
