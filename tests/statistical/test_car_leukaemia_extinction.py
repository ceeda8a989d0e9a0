"""One CAR+ CD19-masked leukaemic cell under the exact stochastic engine goes extinct as a
linear birth–death process predicts.

The default ``car_t`` network with ``car_leukaemia`` is emptied of everything else (no
CAR-T dose, no other leukaemia, no normal T, B or marrow cells, no lymphodepletion), so the only
reactions that can fire are the masked blast's birth ``λ = r_L + d_L``, intrinsic death
``μ = d_L`` and crowding death ``r_L·X·X/K_mar`` (< 1e-8 /d for the < 10⁴ cells reached here:
negligible).  From one cell, P(extinct by t) = μ(e^{rt} − 1)/(λe^{rt} − μ) with r = λ − μ, and
→ μ/λ = d_L/(r_L + d_L) as t → ∞ (Kendall DG 1948 Ann Math Stat 19:1; PUBLISHED.md §5).
Fixed seed; tolerance 5 binomial standard errors.
"""

from __future__ import annotations

import math

import numpy as np

from livingdrug.engines.ssa import solve_ssa
from livingdrug.models import car_t

Z = 5.0


def test_one_masked_blast_goes_extinct_with_the_birth_death_probability():
    net = car_t.build(car_leukaemia=True, lymphodepletion=False, leukaemia=0.0, neg_fraction=0.0,
                      toxicity=False)  # cell counts only: cytokines are concentrations
    y0 = net.initial_state({"N_T": 0.0, "B_N": 0.0, "H_M": 0.0})
    P = net.parameter_vector({"dose": 0.0, "n_car_leuk": 1.0, "extinction_threshold": 0.0})
    r_L, d_L = net.param("r_L").value, net.param("d_L").value
    lam, mu, t_end, n = r_L + d_L, d_L, 60.0, 20_000
    sol = solve_ssa(net.compile(), y0, P, np.array([0.0, t_end]), seed=20180901, replicates=n, t0=0.0)
    assert np.all(sol.status == 0), sol.message[:3]
    k = net.species_names.index("Lcar_M")
    assert np.all(sol.y[:, 0, k] == 1.0)                    # one cell infused at day 0
    x = sol.y[:, -1, k]
    assert np.array_equal(x, np.round(x)) and x.max() < 1e4
    others = [i for i, s in enumerate(net.species_names) if s != "Lcar_M"]
    assert np.all(sol.y[:, -1, others] == 0.0)              # nothing else in the network
    e = math.exp((lam - mu) * t_end)
    p_exact = mu * (e - 1.0) / (lam * e - mu)
    p_hat = float(np.mean(x == 0))
    se = math.sqrt(p_exact * (1 - p_exact) / n)
    assert abs(p_hat - p_exact) < Z * se, (p_hat, p_exact, se)
    # the finite-time value is within 0.02 of the eventual d_L/(r_L + d_L) = 0.444
    assert abs(p_exact - d_L / (r_L + d_L)) < 0.02
    # survivors: E[X | X > 0] = e^{rt} / (1 − P0)
    surv = x[x > 0]
    mean_surv = e / (1.0 - p_exact)
    var_x = (lam + mu) / (lam - mu) * e * (e - 1.0)            # Var X(t) from one cell
    var_surv = (var_x + e**2) / (1 - p_exact) - mean_surv**2   # Var(X | X > 0)
    assert abs(surv.mean() - mean_surv) < Z * math.sqrt(var_surv / surv.size)
