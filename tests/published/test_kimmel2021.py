"""Reproduction checks for Kimmel GJ, Locke FL, Altrock PM 2021 Proc R Soc B 288:20210229.

Parameters and initial values are those of ``shared/reference/PUBLISHED.md`` §2.  The paper's
figures could not be re-read with the search tool in this session, so the assertions are facts
derived from the model equations (each derivation is in the test's docstring) plus the
qualitative behaviour the paper describes (CAR-T expand after lymphodepletion, then lose the
competition with recovering normal T cells while the tumour shrinks).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from livingdrug.engines.reference import reference_trajectory
from livingdrug.models import get_model
from livingdrug.models.published import kimmel2021

P = {"K_N": 500.0, "K_C": 139.0, "r_N": 0.17, "rho_C": 0.0251, "a": 0.423, "b": 0.525,
     "r_B": 0.01, "gamma_B": 1.15, "k_B": 4.05}


def test_published_values():
    net = kimmel2021.build()
    assert {p.name: p.value for p in net.params} == P
    assert list(net.initial_state()) == [6.0, 0.36, 94.86]


def test_normal_t_cells_follow_closed_form_gompertz_without_car_t():
    """With C = 0, N' = −r_N N ln(N/K_N) gives ln(N/K_N) = ln(N0/K_N)·e^{−r_N t}; N → K_N."""
    net = kimmel2021.build()
    t = np.array([0.0, 2.0, 10.0, 30.0, 100.0])
    Y = reference_trajectory(net, (0.0, 100.0), t, y0=np.array([6.0, 0.0, 1.0]), rtol=1e-11, atol=1e-12)
    expected = P["K_N"] * np.exp(math.log(6.0 / P["K_N"]) * np.exp(-P["r_N"] * t))
    np.testing.assert_allclose(Y[:, 0], expected, rtol=1e-7)
    assert Y[-1, 0] == pytest.approx(P["K_N"], rel=1e-6)


def test_tumour_grows_exponentially_without_car_t():
    """With C = 0, B' = r_B B, so B(t) = B0 e^{r_B t} (progression = 120 % of baseline at
    t = ln 1.2 / r_B ≈ 18.2 d)."""
    net = kimmel2021.build()
    t = np.array([0.0, 18.232155679395462, 50.0])
    Y = reference_trajectory(net, (0.0, 50.0), t, y0=np.array([6.0, 0.0, 94.86]), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(Y[:, 2], 94.86 * np.exp(P["r_B"] * t), rtol=1e-8)
    assert Y[1, 2] / 94.86 == pytest.approx(1.2, rel=1e-8)


@pytest.fixture(scope="module")
def treated():
    net = get_model("kimmel2021").network()
    t = np.linspace(0.0, 120.0, 12001)
    Y = reference_trajectory(net, (0.0, 120.0), t, rtol=1e-10, atol=1e-12)
    return t, Y


def test_car_t_peak_where_total_t_cells_equal_k_c(treated):
    """C' = −r_C(T)·C·ln(T/K_C) with r_C > 0 vanishes only at T = N + C = K_C, so at the CAR-T
    maximum N + C = K_C = 139 cells/µL."""
    t, Y = treated
    i = int(np.argmax(Y[:, 1]))
    assert 0 < i < len(t) - 1
    assert Y[i, 0] + Y[i, 1] == pytest.approx(P["K_C"], rel=2e-3)
    assert 3.0 < t[i] < 14.0  # expansion peaks within the first two weeks


def test_car_t_rise_then_fall_normal_t_recover(treated):
    t, Y = treated
    C, N = Y[:, 1], Y[:, 0]
    peak = C.max()
    assert peak > 10 * C[0]           # lymphodepletion lets CAR-T expand
    assert C[-1] < 0.1 * peak         # …then lose the competition
    assert N[-1] == pytest.approx(P["K_N"], rel=0.02)


def test_tumour_shrinks_exactly_while_car_t_above_threshold(treated):
    """B' < 0 ⇔ γ_B C/(k_B + C) > r_B ⇔ C > C* = r_B k_B/(γ_B − r_B) = 0.0355 cells/µL."""
    t, Y = treated
    cstar = P["r_B"] * P["k_B"] / (P["gamma_B"] - P["r_B"])
    assert cstar == pytest.approx(0.035526, rel=1e-4)
    dB = np.diff(Y[:, 2])
    above = Y[:-1, 1] > cstar * 1.01
    assert np.all(dB[above] < 0)
    assert Y[-1, 2] < 1e-6 * 94.86    # deep response (cure is then a stochastic question)
