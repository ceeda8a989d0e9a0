"""The default model on the real ODE engine agrees with the scipy Radau reference.

Marked slow when the engine compiled its driver per model (~100 s cold); since the kernel is
compiled once for all models it takes ~2 s with a warm cache (the mark could be dropped).
"""

from __future__ import annotations

import numpy as np
import pytest

from livingdrug.models import get_model, reference_solve

ode = pytest.importorskip("livingdrug.engines.ode")


@pytest.mark.slow
def test_car_t_engine_matches_reference():
    net = get_model("car_t").network()
    t = np.array([-5.5, 7.0, 10.0, 14.0, 28.0, 90.0, 180.0])
    sol = ode.solve(net.compile(), net.initial_state(), net.parameter_vector(), t, t0=-6.0,
                    rtol=1e-8, atol=1e-6)
    assert int(sol.status[0]) == 0
    ref = reference_solve(net, (-6.0, 180.0), t, rtol=1e-10, atol=1e-8)
    scale = np.abs(ref) + 1e-3 * np.abs(ref).max(axis=0) + 1e-9
    assert np.max(np.abs(sol.y[0] - ref) / scale) < 1e-5
