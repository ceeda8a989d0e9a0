"""The default model on the real ODE engine agrees with the scipy Radau reference.

The engine kernel is compiled once for all models, so this runs in the default test run.
"""

from __future__ import annotations

import numpy as np
import pytest

from livingdrug.engines.reference import reference_trajectory
from livingdrug.models import get_model

ode = pytest.importorskip("livingdrug.engines.ode")


def test_car_t_engine_matches_reference():
    net = get_model("car_t").network()
    t = np.array([-5.5, 7.0, 10.0, 14.0, 28.0, 90.0, 180.0])
    sol = ode.solve(net.compile(), net.initial_state(), net.parameter_vector(), t, t0=-6.0,
                    rtol=1e-8, atol=1e-6)
    assert int(sol.status[0]) == 0
    ref = reference_trajectory(net, (-6.0, 180.0), t, rtol=1e-10, atol=1e-8)
    scale = np.abs(ref) + 1e-3 * np.abs(ref).max(axis=0) + 1e-9
    assert np.max(np.abs(sol.y[0] - ref) / scale) < 1e-5


@pytest.mark.parametrize("name", ["lbcl", "myeloma"])
def test_disease_models_engine_matches_reference(name):
    """The lymphoma and myeloma models (with the toxicity block) on the batched ODE engine agree
    with scipy's Radau reference at tight tolerance (cross-engine agreement, DESIGN.md)."""
    net = get_model(name).network()
    t = np.array([-5.5, 3.0, 7.0, 10.0, 14.0, 28.0, 90.0])
    sol = ode.solve(net.compile(), net.initial_state(), net.parameter_vector(), t, t0=-6.0,
                    rtol=1e-8, atol=1e-6)
    assert int(sol.status[0]) == 0
    ref = reference_trajectory(net, (-6.0, 90.0), t, rtol=1e-10, atol=1e-8)
    scale = np.abs(ref) + 1e-3 * np.abs(ref).max(axis=0) + 1e-9
    assert np.max(np.abs(sol.y[0] - ref) / scale) < 1e-5
