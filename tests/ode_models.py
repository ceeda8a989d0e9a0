"""Test models shared by the ODE engine tests, built with the real Network API."""

from __future__ import annotations

from livingdrug.network import At, Event, Network, Reaction, Species, T, When, sym
from livingdrug.params import Param

BIG = 1e300
WIDE = (-BIG, BIG)


def logistic_network() -> Network:
    """dy/dt = r·y·(1 − y/K) with a bolus (At t_dose: y += dose), a threshold event
    (When y − thr falls through 0: y := 0, tf := t — records the firing time) and two events
    at the same time t2 (y := 2y, then y := y + 1; index order gives 2y + 1).

    K = 1e300 makes it exponential growth/decay y0·e^{rt} to ~1e-300 relative; event times
    beyond the horizon and thr < 0 switch the events off.
    """
    y = sym("y")
    r, K, td, dose, thr, t2 = (sym(n) for n in ("r", "K", "t_dose", "dose", "thr", "t2"))
    return Network(
        "ode_test_logistic",
        species=(Species("y", initial=1.0), Species("tf", unit="d", initial=-1.0)),
        params=(
            Param("r", 1.0, "1/d", bounds=WIDE),
            Param("K", BIG, "cell", bounds=WIDE),
            Param("t_dose", 1e9, "d", bounds=WIDE),
            Param("dose", 0.0, "cell", bounds=WIDE),
            Param("thr", -1.0, "cell", bounds=WIDE),
            Param("t2", 1e9, "d", bounds=WIDE),
        ),
        reactions=(Reaction("grow", {"y": 1}, r * y * (1 - y / K)),),
        events=(
            Event("bolus", At(td), {"y": y + dose}),
            Event("extinct", When(y - thr, -1), {"y": 0.0, "tf": T}),
            Event("double", At(t2), {"y": 2 * y}),
            Event("plus_one", At(t2), {"y": y + 1}),
        ),
    )


def robertson_network() -> Network:
    """Robertson's chemical kinetics (Hairer & Wanner II, Sect. IV.1), a classic stiff test:
    y1' = −0.04 y1 + 1e4 y2 y3,  y2' = 0.04 y1 − 1e4 y2 y3 − 3e7 y2²,  y3' = 3e7 y2²."""
    y1, y2, y3 = sym("y1"), sym("y2"), sym("y3")
    k1, k2, k3 = sym("k1"), sym("k2"), sym("k3")
    return Network(
        "ode_test_robertson",
        species=(Species("y1", "1", 1.0), Species("y2", "1", 0.0), Species("y3", "1", 0.0)),
        params=(Param("k1", 0.04, "1/d"), Param("k2", 3e7, "1/d"), Param("k3", 1e4, "1/d")),
        reactions=(
            Reaction("r1", {"y1": -1, "y2": 1}, k1 * y1),
            Reaction("r2", {"y2": -1, "y3": 1}, k2 * y2**2),
            Reaction("r3", {"y2": -1, "y1": 1}, k3 * y2 * y3),
        ),
    )
