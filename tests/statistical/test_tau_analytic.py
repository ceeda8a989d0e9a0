"""Tau-leaping against closed-form laws and against the exact SSA.

Fixed seeds; tolerances are Z = 5 sampling standard errors plus, where leaping is active, the
leap bias the step rule allows: for a linear model the leap with a fixed step τ has exactly
computable moments, and the Cao–Gillespie–Petzold rule never takes a step larger than a bound
τ* that follows from ε, so the sample moments must lie (within sampling error) between the
exact law and the fixed-τ* leap law.
"""

from __future__ import annotations

import math

import numpy as np
from ssa_models import birth_death_network, immigration_death_network

from livingdrug.engines.ssa import solve_ssa
from livingdrug.engines.tau import solve_tau

Z = 5.0
EPS = 0.03


def _run(net, y0, P, t_eval, n, seed, **kw):
    sol = solve_tau(net.compile(), y0, P, t_eval, seed=seed, replicates=n, epsilon=EPS, **kw)
    assert np.all(sol.status == 0), sol.message[:3]
    return sol


def _leap_moments_birth_death(lam, mu, n0, t, tau):
    """Mean and variance of a linear birth–death after explicit Poisson leaps of τ (the last
    one truncated at t): E' = (1 + rτ)E, V' = (1 + rτ)²V + (λ + μ)τE."""
    m, v, s = float(n0), 0.0, 0.0
    while s < t:
        h = min(tau, t - s)
        m, v = (1 + (lam - mu) * h) * m, (1 + (lam - mu) * h) ** 2 * v + (lam + mu) * h * m
        s += h
    return m, v


def _between(x, a, b, tol):
    return min(a, b) - tol <= x <= max(a, b) + tol


def test_birth_death_mean_and_variance_from_a_large_population():
    """E n(t) = n0 e^{rt}, Var n(t) = n0 (λ+μ)/(λ−μ) e^{rt}(e^{rt} − 1) (same closed forms as
    the SSA tests).  With n ≥ 1/ε the mean-change bound gives τ ≤ ε·n/|r n| = ε/|r|."""
    lam, mu, n0, t, n = 1.0, 0.5, 1000, 2.0, 4000
    sol = _run(birth_death_network(), [n0], [lam, mu], [0.0, 1.0, t], n, seed=12)
    assert sol.stats["leaps"] > 0 and sol.stats["reactions"] > 10 * sol.stats["leaps"]
    x = sol.y[:, -1, 0]
    assert np.array_equal(x, np.round(x))
    e = math.exp((lam - mu) * t)
    mean = n0 * e
    var = n0 * (lam + mu) / (lam - mu) * e * (e - 1.0)
    m_leap, v_leap = _leap_moments_birth_death(lam, mu, n0, t, EPS / abs(lam - mu))
    assert _between(x.mean(), mean, m_leap, Z * math.sqrt(var / n)), (x.mean(), mean, m_leap)
    s2 = x.var(ddof=1)
    se_var = math.sqrt((np.mean((x - x.mean()) ** 4) - s2**2) / n)
    assert _between(s2, var, v_leap, Z * se_var), (s2, var, v_leap)
    # and the bias is small: the first-order bound |r| t ε / 2 on the relative mean error
    assert abs(x.mean() / mean - 1) < abs(lam - mu) * t * EPS / 2 + Z * math.sqrt(var / n) / mean


def test_immigration_death_stationary_mean_and_variance():
    """Stationary law Poisson(k/γ).  The leap preserves the mean exactly (E' = E + τ(k − γE));
    its stationary variance is (k/γ)/(1 − γτ/2).  Within 6 SD of k/γ the variance bound gives
    τ ≤ (ε x)²/(k + γx) ≤ τ*."""
    k, g, t, n = 200.0, 1.0, 20.0, 4000
    sol = _run(immigration_death_network(), [k / g], [k, g], [0.0, t], n, seed=21)
    assert sol.stats["leaps"] > 0
    x = sol.y[:, -1, 0]
    lam = k / g
    x_hi = lam + 6 * math.sqrt(lam)
    tau_star = (EPS * x_hi) ** 2 / (k + g * x_hi)
    assert abs(x.mean() - lam) < Z * math.sqrt(lam / n)
    se_var = math.sqrt((lam * (1 + 3 * lam) - lam**2) / n)
    assert _between(x.var(ddof=1), lam, lam / (1 - g * tau_star / 2), Z * se_var)


def test_extinction_probability_agrees_with_ssa_and_kendall():
    """Birth–death from n0 = 5: P(extinct by t) = [μ(e^{rt} − 1)/(λe^{rt} − μ)]^{n0}; the tau
    engine (critical reactions, exact steps at low counts) must agree with it and with the
    SSA within sampling error."""
    lam, mu, n0, t, n = 1.0, 0.8, 5, 5.0, 20_000
    net = birth_death_network()
    tau = _run(net, [n0], [lam, mu], [0.0, t], n, seed=31)
    ssa = solve_ssa(net.compile(), [n0], [lam, mu], [0.0, t], seed=32, replicates=n)
    e = math.exp((lam - mu) * t)
    p_exact = (mu * (e - 1.0) / (lam * e - mu)) ** n0
    p_tau = float(np.mean(tau.y[:, -1, 0] == 0))
    p_ssa = float(np.mean(ssa.y[:, -1, 0] == 0))
    se = math.sqrt(p_exact * (1 - p_exact) / n)
    assert abs(p_tau - p_exact) < Z * se, (p_tau, p_exact)
    assert abs(p_tau - p_ssa) < Z * math.sqrt(2) * se, (p_tau, p_ssa)
