"""The scipy reference engine against closed forms and its event semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from livingdrug.engines.common import STATUS_OK
from livingdrug.engines.reference import solve_reference
from livingdrug.network import At, Event, Network, Reaction, Species, When, sym
from livingdrug.params import Param

X = sym("X")


def decay_with_dose(t_dose: float = 2.0) -> Network:
    return Network(
        "decay_dose",
        species=(Species("X", initial=100.0),),
        params=(Param("k", 0.5, "1/d"), Param("dose", 50.0, "cell"), Param("t_dose", t_dose, "d", bounds=(-math.inf, math.inf))),
        reactions=(Reaction("decay", {"X": -1}, sym("k") * X),),
        events=(Event("dose", At(sym("t_dose")), {"X": X + sym("dose")}),),
    )


def exact_decay(t: np.ndarray, y0: float, k: float, dose: float, td: float) -> np.ndarray:
    return y0 * np.exp(-k * t) + np.where(t >= td, dose * np.exp(-k * (t - td)), 0.0)


def test_exponential_decay_with_dose_matches_closed_form():
    net = decay_with_dose()
    c = net.compile()
    t = np.linspace(0.0, 10.0, 41)  # includes the dose time 2.0: output is after the dose
    P = np.array([[0.5, 50.0, 2.0], [1.3, 10.0, 7.25], [0.1, 0.0, 3.0]])
    y0 = np.array([[100.0], [3.0], [1e9]])
    sol = solve_reference(c, y0, P, t)
    assert sol.y.shape == (3, 41, 1)
    assert np.all(sol.status == STATUS_OK)
    for i in range(3):
        want = exact_decay(t, y0[i, 0], P[i, 0], P[i, 1], P[i, 2])
        np.testing.assert_allclose(sol.y[i, :, 0], want, rtol=1e-8)
    assert sol.y[0, 8, 0] == pytest.approx(100 * math.exp(-1.0) + 50.0, rel=1e-9)  # t = 2.0


def test_event_at_t0_fires_first_and_shared_inputs_broadcast():
    net = decay_with_dose(t_dose=0.0)
    sol = solve_reference(net.compile(), net.initial_state(), net.parameter_vector(), [0.0, 1.0])
    assert sol.y[0, 0, 0] == pytest.approx(150.0)
    assert sol.y[0, 1, 0] == pytest.approx(150.0 * math.exp(-0.5), rel=1e-9)


def test_events_outside_the_window_do_not_fire():
    net = decay_with_dose(t_dose=-1.0)
    sol = solve_reference(net.compile(), net.initial_state(), net.parameter_vector(), [0.0, 1.0])
    assert sol.y[0, 1, 0] == pytest.approx(100.0 * math.exp(-0.5), rel=1e-9)
    net = decay_with_dose(t_dose=5.0)
    sol = solve_reference(net.compile(), net.initial_state(), net.parameter_vector(), [0.0, 4.0])
    assert sol.y[0, 1, 0] == pytest.approx(100.0 * math.exp(-2.0), rel=1e-9)


def test_simultaneous_timed_events_fire_in_index_order():
    net = Network(
        "order",
        species=(Species("X", initial=1.0),),
        params=(Param("k", 0.0, "1/d"),),
        reactions=(Reaction("decay", {"X": -1}, sym("k") * X),),
        events=(Event("double", At(1.0), {"X": 2 * X}), Event("add", At(1.0), {"X": X + 1})),
    )
    sol = solve_reference(net.compile(), net.initial_state(), net.parameter_vector(), [0.0, 1.0, 2.0])
    np.testing.assert_allclose(sol.y[0, :, 0], [1.0, 3.0, 3.0])  # (1*2)+1, not (1+1)*2


def threshold_net(once: bool = True) -> Network:
    return Network(
        "threshold",
        species=(Species("X", initial=1e6), Species("Y", initial=0.0)),
        params=(Param("k", 0.7, "1/d"), Param("thr", 10.0, "cell")),
        reactions=(Reaction("decay", {"X": -1}, sym("k") * X),),
        events=(Event("extinct", When(X - sym("thr"), -1), {"X": 0.0, "Y": sym("Y") + 1}, once=once),),
    )


def test_threshold_event_time_is_exact():
    net = threshold_net()
    k, y0, thr = 0.7, 1e6, 10.0
    t_hit = math.log(y0 / thr) / k  # 16.447...
    t = np.array([0.0, t_hit - 1e-6, t_hit + 1e-6, 30.0])
    sol = solve_reference(net.compile(), net.initial_state(), net.parameter_vector(), t)
    assert sol.status[0] == STATUS_OK
    assert sol.y[0, 1, 0] == pytest.approx(thr * math.exp(k * 1e-6), rel=1e-7)
    assert sol.y[0, 2, 0] == 0.0 and sol.y[0, 3, 0] == 0.0
    np.testing.assert_array_equal(sol.y[0, :, 1], [0.0, 0.0, 1.0, 1.0])
    assert sol.stats["events"] == 1


def test_condition_already_true_at_start_does_not_fire():
    net = threshold_net()
    sol = solve_reference(net.compile(), np.array([5.0, 0.0]), net.parameter_vector(), [0.0, 1.0])
    assert sol.y[0, 1, 1] == 0.0
    assert sol.y[0, 1, 0] == pytest.approx(5.0 * math.exp(-0.7), rel=1e-9)


def test_jump_across_threshold_fires_condition_event():
    net = Network(
        "jump",
        species=(Species("X", initial=1e6),),
        params=(Param("k", 0.01, "1/d"),),
        reactions=(Reaction("decay", {"X": -1}, sym("k") * X),),
        events=(
            Event("ld", At(1.0), {"X": X * 1e-6}),
            Event("extinct", When(X - 10.0, -1), {"X": 0.0}),
        ),
    )
    sol = solve_reference(net.compile(), net.initial_state(), net.parameter_vector(), [0.0, 1.0, 2.0])
    assert sol.y[0, 1, 0] == 0.0 and sol.y[0, 2, 0] == 0.0


def test_failure_is_data_not_exception():
    blow = Network(
        "blowup",
        species=(Species("X", initial=1.0),),
        params=(Param("a", 1.0, "1/(cell*d)"),),
        reactions=(Reaction("blow", {"X": 1}, sym("a") * X**2),),
    )
    P = np.array([[1.0], [0.01]])  # patient 0 blows up at t = 1, patient 1 at t = 100
    sol = solve_reference(blow.compile(), np.array([[1.0], [1.0]]), P, [0.0, 0.5, 2.0], method="RK45",
                          rtol=1e-8, atol=1e-10)
    assert sol.status[0] != STATUS_OK and "t=" in sol.message[0]
    assert np.isnan(sol.y[0, 2, 0]) and sol.y[0, 1, 0] == pytest.approx(2.0, rel=1e-6)
    assert sol.status[1] == STATUS_OK
    np.testing.assert_allclose(sol.y[1, :, 0], 1 / (1 - 0.01 * np.array([0.0, 0.5, 2.0])), rtol=1e-7)


def test_bad_inputs_raise():
    net = decay_with_dose()
    c = net.compile()
    with pytest.raises(ValueError):
        solve_reference(c, net.initial_state(), net.parameter_vector(), [1.0, 0.0])
    with pytest.raises(ValueError):
        solve_reference(c, np.zeros((2, 2)), net.parameter_vector(), [0.0, 1.0])
    with pytest.raises(ValueError):
        solve_reference(c, net.initial_state(), net.parameter_vector(), [0.0, 1.0], t0=0.5)
