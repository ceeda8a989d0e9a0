"""The tau-leaping engine's Poisson sampler (inversion below mean 10, PTRS above).

Fixed seeds; tolerances are multiples of the sampling standard error, and the chi-square test
is at level 1e-4, so a correct sampler fails with negligible probability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from livingdrug.engines import _tau_kernel
from livingdrug.engines.ssa import replicate_states

Z = 5.0
N = 200_000


def _chi2_poisson(x: np.ndarray, mu: float) -> tuple[float, int]:
    """Chi-square statistic of the sample against Poisson(mu), adjacent values merged (from the
    left, the remainder into the last bin) so that every bin expects ≥ 5; returns (statistic,
    degrees of freedom)."""
    n = x.size
    top = int(mu + 40 * math.sqrt(mu) + 40)
    probs = sps.poisson.pmf(np.arange(top + 1), mu)
    probs[-1] += sps.poisson.sf(top, mu)
    counts = np.bincount(np.minimum(x, top).astype(np.int64), minlength=top + 1)
    exp_bins: list[float] = []
    obs_bins: list[int] = []
    e_acc, o_acc = 0.0, 0
    for v in range(top + 1):
        e_acc += n * probs[v]
        o_acc += int(counts[v])
        if e_acc >= 5.0:
            exp_bins.append(e_acc)
            obs_bins.append(o_acc)
            e_acc, o_acc = 0.0, 0
    exp_bins[-1] += e_acc
    obs_bins[-1] += o_acc
    expected = np.array(exp_bins)
    observed = np.array(obs_bins)
    assert expected.min() >= 5 and observed.sum() == n
    return float(np.sum((observed - expected) ** 2 / expected)), len(observed) - 1


@pytest.mark.parametrize("mu", [0.5, 5.0, 9.99, 10.0, 50.0, 5000.0])
def test_poisson_mean_variance_and_goodness_of_fit(mu):
    state = replicate_states(77, int(mu * 100), 1)[0]
    x = _tau_kernel.poisson_draws(state, mu, N)
    assert np.all(x >= 0) and np.array_equal(x, np.round(x))
    assert abs(x.mean() - mu) < Z * math.sqrt(mu / N)
    se_var = math.sqrt((mu * (1 + 3 * mu) - mu**2) / N)  # (μ4 − σ⁴)/n for a Poisson law
    assert abs(x.var(ddof=1) - mu) < Z * se_var
    chi2, df = _chi2_poisson(x, mu)
    assert chi2 < sps.chi2.ppf(1 - 1e-4, df=df), (chi2, df)


def test_poisson_degenerate_and_huge_means():
    state = replicate_states(1, 0, 1)[0]
    assert np.all(_tau_kernel.poisson_draws(state, 0.0, 10) == 0.0)
    x = _tau_kernel.poisson_draws(state, 1e12, 2000)
    assert abs(x.mean() - 1e12) < Z * math.sqrt(1e12 / x.size)


def test_poisson_reproducible_from_the_state():
    state = replicate_states(3, 0, 1)[0]
    a = _tau_kernel.poisson_draws(state, 37.0, 100)
    b = _tau_kernel.poisson_draws(state, 37.0, 100)
    assert np.array_equal(a, b)
