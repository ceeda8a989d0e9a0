"""The exact stochastic engine against closed-form laws of linear birth–death processes.

Tolerances are multiples of the sampling standard error (fixed seeds, so each test is
deterministic; a correct engine fails one at a 5-SE threshold with probability < 1e-6).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps
from ssa_models import birth_death_network, immigration_death_network

from livingdrug.engines.ssa import solve_ssa

Z = 5.0  # standard errors allowed


def _run(net, y0, P, t_eval, n, seed):
    c = net.compile()
    sol = solve_ssa(c, y0, P, t_eval, seed=seed, replicates=n)
    assert np.all(sol.status == 0), sol.message[:3]
    return sol


def test_birth_death_extinction_probability_finite_time():
    """P(extinct by t) = [μ(e^{rt} − 1)/(λe^{rt} − μ)]^{n0}, r = λ − μ (Kendall 1948)."""
    lam, mu, n0, t, n = 1.0, 0.5, 3, 6.0, 20_000
    sol = _run(birth_death_network(), [n0], [lam, mu], [0.0, t], n, seed=11)
    e = math.exp((lam - mu) * t)
    p_exact = (mu * (e - 1.0) / (lam * e - mu)) ** n0
    p_hat = float(np.mean(sol.y[:, -1, 0] == 0))
    se = math.sqrt(p_exact * (1 - p_exact) / n)
    assert abs(p_hat - p_exact) < Z * se, (p_hat, p_exact, se)


def test_birth_death_mean_and_variance():
    """E n(t) = n0 e^{rt}; Var n(t) = n0 (λ+μ)/(λ−μ) e^{rt}(e^{rt} − 1)."""
    lam, mu, n0, t, n = 1.0, 0.5, 3, 2.0, 20_000
    sol = _run(birth_death_network(), [n0], [lam, mu], [0.0, 1.0, t], n, seed=12)
    x = sol.y[:, -1, 0]
    assert np.array_equal(x, np.round(x))  # counts stay integers
    assert np.all(sol.y[:, 0, 0] == n0)
    e = math.exp((lam - mu) * t)
    mean = n0 * e
    var = n0 * (lam + mu) / (lam - mu) * e * (e - 1.0)
    assert abs(x.mean() - mean) < Z * math.sqrt(var / n)
    s2 = x.var(ddof=1)
    m4 = np.mean((x - x.mean()) ** 4)
    se_var = math.sqrt((m4 - s2**2) / n)
    assert abs(s2 - var) < Z * se_var, (s2, var, se_var)


def test_birth_death_eventual_extinction():
    """Late-time extinction probability → (μ/λ)^{n0} (the finite-time value at t = 14 differs
    from it by < 1e-4)."""
    lam, mu, n0, t, n = 1.0, 0.5, 2, 14.0, 20_000
    sol = _run(birth_death_network(), [n0], [lam, mu], [0.0, t], n, seed=13)
    p_limit = (mu / lam) ** n0
    p_hat = float(np.mean(sol.y[:, -1, 0] == 0))
    se = math.sqrt(p_limit * (1 - p_limit) / n)
    assert abs(p_hat - p_limit) < Z * se + 1e-4, (p_hat, p_limit)


def test_immigration_death_poisson_law():
    """From n(0) = 0, n(t) ~ Poisson(k/γ · (1 − e^{−γt})): mean and variance both equal it, and
    the histogram passes a chi-square test (expected counts ≥ 5 per bin)."""
    k, g, t, n = 20.0, 1.0, 10.0, 20_000
    sol = _run(immigration_death_network(), [0.0], [k, g], [0.0, 5.0, t], n, seed=21)
    x = sol.y[:, -1, 0]
    lam = k / g * (1.0 - math.exp(-g * t))
    se_mean = math.sqrt(lam / n)
    assert abs(x.mean() - lam) < Z * se_mean
    # Var of the sample variance of a Poisson law: (μ4 − σ⁴)/n with μ4 = λ(1 + 3λ)
    se_var = math.sqrt((lam * (1 + 3 * lam) - lam**2) / n)
    assert abs(x.var(ddof=1) - lam) < Z * se_var
    # chi-square goodness of fit, tails merged so that every bin expects ≥ 5
    support = np.arange(0, int(lam + 20 * math.sqrt(lam)))
    lo = int(support[np.argmax(n * sps.poisson.cdf(support, lam) >= 5)])
    hi = int(support[np.nonzero(n * sps.poisson.sf(support - 1, lam) >= 5)[0][-1]])
    edges = np.arange(lo, hi + 1)
    probs = sps.poisson.pmf(edges, lam)
    probs[0] = sps.poisson.cdf(lo, lam)
    probs[-1] = sps.poisson.sf(hi - 1, lam)
    obs = np.array([np.sum(x <= lo)] + [np.sum(x == v) for v in edges[1:-1]] + [np.sum(x >= hi)])
    expected = probs * n
    assert expected.min() >= 5 and obs.sum() == n
    chi2 = float(np.sum((obs - expected) ** 2 / expected))
    assert chi2 < sps.chi2.ppf(1 - 1e-4, df=len(obs) - 1), chi2
