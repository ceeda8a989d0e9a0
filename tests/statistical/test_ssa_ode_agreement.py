"""SSA mean against the ODE solution on a mass-action network with large counts."""

from __future__ import annotations

import numpy as np
from ssa_models import bimolecular_network

from livingdrug.engines.ode import solve
from livingdrug.engines.ssa import solve_ssa


def test_bimolecular_mean_matches_ode():
    """A + B → C (A0 = 2000, B0 = 1500).  The SSA mean equals the reaction-rate equation up to
    an O(1)-molecule finite-size correction of a bimolecular reaction (Var A / A0 ~ 1e-3
    relative); we allow 5 standard errors plus one molecule."""
    c = bimolecular_network().compile()
    y0 = c.network.initial_state()
    P = c.network.parameter_vector()
    t_eval = np.array([0.0, 0.2, 0.5, 1.0, 2.0])
    n = 400
    sol = solve_ssa(c, y0, P, t_eval, seed=31, replicates=n)
    assert np.all(sol.status == 0)
    ode = solve(c, y0, P, t_eval, rtol=1e-10, atol=1e-8)
    assert np.all(ode.status == 0)
    mean = sol.y.mean(axis=0)
    se = sol.y.std(axis=0, ddof=1) / np.sqrt(n)
    diff = np.abs(mean - ode.y[0])
    assert np.all(diff <= 5 * se + 1.0), (diff, se)
    # conservation laws hold exactly in every realisation
    assert np.all(sol.y[:, :, 0] + sol.y[:, :, 2] == 2000.0)
    assert np.all(sol.y[:, :, 1] + sol.y[:, :, 2] == 1500.0)
    # the comparison is not vacuous: C moves by hundreds of molecules
    assert ode.y[0, -1, 2] > 1000
