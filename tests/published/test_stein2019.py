"""Reproduction of Stein AM et al. 2019 CPT:PSP 8:285 (tisagenlecleucel cellular kinetics).

The paper's model (Fig. 2 / Eq. 1; typical values in Table 1, also in nlmixr2lib
``Stein_2019_Tisagenlecleucel.R``): ``C(t) = (Cmax/foldx)·e^{ρt}`` for ``t < Tmax`` with
``ρ = ln(foldx)/Tmax``; ``C(t) = (1−FB)·Cmax·e^{−α(t−Tmax)} + FB·Cmax·e^{−β(t−Tmax)}`` after.
Each expected number below is computed from those equations with the Table 1 values
(foldx 3,900; Tmax 9.3 d; Cmax 24,000 copies/µg; α 0.16/d; FB 0.0079; β 0.0032/d).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from livingdrug.engines.reference import reference_trajectory
from livingdrug.models import get_model
from livingdrug.models.published import stein2019

FOLDX, TMAX, CMAX, ALPHA, FB, BETA = 3900.0, 9.3, 24000.0, 0.16, 0.0079, 0.0032


@pytest.fixture(scope="module")
def solution():
    net = get_model("stein2019").network()
    t = np.array([0.0, 1.0, 5.0, TMAX - 1e-9, TMAX, 14.0, 28.0, 90.0, 180.0, 365.0])
    Y = reference_trajectory(net, (0.0, 365.0), t, rtol=1e-11, atol=1e-12)
    return net, t, Y.sum(axis=1)


def test_parameters_are_table_1():
    net = stein2019.build()
    got = {p.name: (p.value, p.iiv) for p in net.params}
    assert got == {
        "foldx": (3900.0, 2.4), "Tmax": (9.3, 0.38), "Cmax": (24000.0, 0.65),
        "alpha": (0.16, 0.91), "FB": (0.0079, 0.80), "beta": (0.0032, 0.86),
    }


def test_baseline_is_cmax_over_foldx(solution):
    _, _, C = solution
    # C(0) = Cmax/foldx = 24000/3900 = 6.1538... copies/µg
    assert C[0] == pytest.approx(CMAX / FOLDX, rel=1e-12)


def test_peak_is_cmax_at_tmax(solution):
    _, t, C = solution
    # just before the switch C = (Cmax/foldx)·e^{ln(foldx)} = Cmax; at Tmax the event only
    # redistributes the copies, so C(Tmax) = Cmax = 24,000 copies/µg as well
    assert C[3] == pytest.approx(CMAX, rel=1e-7)
    assert C[4] == pytest.approx(CMAX, rel=1e-7)


@pytest.mark.parametrize("t", [1.0, 5.0])
def test_expansion_phase_closed_form(solution, t):
    _, ts, C = solution
    i = int(np.where(ts == t)[0][0])
    rho = math.log(FOLDX) / TMAX  # = 0.8893 /d
    assert C[i] == pytest.approx(CMAX / FOLDX * math.exp(rho * t), rel=1e-8)


@pytest.mark.parametrize("t", [14.0, 28.0, 90.0, 180.0, 365.0])
def test_biphasic_decline_closed_form(solution, t):
    _, ts, C = solution
    i = int(np.where(ts == t)[0][0])
    dt = t - TMAX
    expected = (1 - FB) * CMAX * math.exp(-ALPHA * dt) + FB * CMAX * math.exp(-BETA * dt)
    assert C[i] == pytest.approx(expected, rel=1e-7)
    assert stein2019.analytic(t) == pytest.approx(expected, rel=1e-12)


def test_auc_0_28_matches_analytic_integral():
    """AUC0-28 = ∫0^Tmax C0 e^{ρt} dt + ∫Tmax^28 [A e^{−α(t−Tmax)} + B e^{−β(t−Tmax)}] dt
    = (Cmax − C0)/ρ + A(1 − e^{−α(28−Tmax)})/α + B(1 − e^{−β(28−Tmax)})/β, with C0 = Cmax/foldx,
    A = (1−FB)Cmax, B = FB·Cmax; = 26,980 + 141,400 + 3,440 ≈ 1.72×10⁵ copies·d/µg (compared with a trapezoid on a fine grid
    of the network solution)."""
    net = stein2019.build()
    t = np.linspace(0.0, 28.0, 28 * 400 + 1)
    Y = reference_trajectory(net, (0.0, 28.0), t, rtol=1e-11, atol=1e-12)
    C = Y.sum(axis=1)
    rho = math.log(FOLDX) / TMAX
    c0 = CMAX / FOLDX
    d = 28.0 - TMAX
    exact = (CMAX - c0) / rho + (1 - FB) * CMAX * (1 - math.exp(-ALPHA * d)) / ALPHA \
        + FB * CMAX * (1 - math.exp(-BETA * d)) / BETA
    auc = float(np.sum((C[1:] + C[:-1]) * np.diff(t)) / 2)
    assert auc == pytest.approx(exact, rel=1e-4)
    assert exact == pytest.approx(1.718e5, rel=1e-3)


def test_individual_parameters_move_the_switch():
    """With Tmax = 12 d and foldx = 1000 the peak is still Cmax, reached at the new Tmax."""
    net = stein2019.build()
    p = net.parameter_vector({"Tmax": 12.0, "foldx": 1000.0})
    Y = reference_trajectory(net, (0.0, 20.0), np.array([0.0, 12.0, 20.0]), params=p, rtol=1e-11, atol=1e-12)
    C = Y.sum(axis=1)
    assert C[0] == pytest.approx(24.0, rel=1e-10)
    assert C[1] == pytest.approx(CMAX, rel=1e-7)
    assert C[2] == pytest.approx(stein2019.analytic(20.0, foldx=1000.0, Tmax=12.0), rel=1e-7)


def test_transgene_observable_role():
    net = stein2019.build()
    assert net.observable_by_role("transgene") is not None
    assert "dose" not in net.meta
