"""Endpoints on synthetic trajectories whose answers are known in closed form."""

import math

import numpy as np
import pytest

from livingdrug.clinical.endpoints import ball_response, exposure


def stein_curve(t, cmax=24000.0, foldx=3900.0, tmax=9.3, alpha=0.16, beta=0.0032, fb=0.0079):
    """Stein AM et al. 2019 CPT:PSP 8:285: exponential rise to Cmax at Tmax, then biphasic decline."""
    rho = math.log(foldx) / tmax
    up = cmax / foldx * np.exp(rho * t)
    dt = t - tmax
    down = cmax * ((1 - fb) * np.exp(-alpha * dt) + fb * np.exp(-beta * dt))
    return np.where(t < tmax, up, down)


def stein_auc_0_28(cmax=24000.0, foldx=3900.0, tmax=9.3, alpha=0.16, beta=0.0032, fb=0.0079):
    rho = math.log(foldx) / tmax
    rise = cmax / foldx * (math.exp(rho * tmax) - 1) / rho
    d = 28 - tmax
    fall = cmax * ((1 - fb) * (1 - math.exp(-alpha * d)) / alpha + fb * (1 - math.exp(-beta * d)) / beta)
    return rise + fall


def test_exposure_matches_closed_form_of_stein_2019_curve():
    t = np.linspace(0, 60, 60 * 200 + 1)  # includes Tmax = 9.3 exactly (9.3 * 200 = 1860)
    e = exposure(t, stein_curve(t), t_dose=0.0, unit="copies/ug")
    assert e.cmax == pytest.approx(24000.0, rel=1e-12)
    assert e.tmax == pytest.approx(9.3, abs=1e-9)
    # trapezoid error on a 0.005-d grid of an exponential with rate ln(3900)/9.3 ≈ 0.89/d is ~1e-6
    assert e.auc_0_28 == pytest.approx(stein_auc_0_28(), rel=1e-5)


def test_exposure_is_relative_to_the_dose_time_and_undefined_for_short_follow_up():
    t = np.linspace(-5, 20, 2501)
    c = stein_curve(np.clip(t, 0, None))
    e = exposure(t, c, t_dose=0.0)
    assert e.tmax == pytest.approx(9.3, abs=0.01)
    assert math.isnan(e.auc_0_28)  # only 20 days of follow-up


def test_remission_mrd_relapse_and_aplasia_times():
    t = np.arange(0.0, 201.0)
    blasts = np.where(t < 20, 80.0 * np.exp(-0.2 * t), 0.01)
    blasts[t >= 150] = 30.0  # relapse at day 150
    mrd = blasts / 100
    neg = np.where(t >= 150, 0.9, 0.0)  # antigen-negative majority at relapse
    b = np.where((t >= 10) & (t < 120), 1.0, 300.0)
    r = ball_response(t, blasts_pct=blasts, mrd=mrd, antigen_neg_fraction=neg, bcells=b, t_dose=0.0)
    # 80 e^{-0.2 t} < 5  <=>  t > 5 ln 16 = 13.86 → first daily output 14
    assert r.time_to_remission == 14.0
    # 0.8 e^{-0.2 t} < 1e-4 never happens before day 20 (min 0.8 e^-3.8 = 0.018); then 1e-4 is not < 1e-4
    assert math.isnan(r.time_to_mrd_negative)
    assert r.relapse_time == 150.0 and r.relapse_type == "CD19-"
    assert r.bcell_aplasia_start == 10.0 and r.bcell_aplasia_duration == 110.0
    assert not r.bcell_aplasia_ongoing


def test_no_remission_means_no_relapse_and_ongoing_aplasia_is_censored():
    t = np.arange(0.0, 50.0)
    r = ball_response(t, blasts_pct=np.full_like(t, 50.0), mrd=np.full_like(t, 0.5), bcells=np.zeros_like(t))
    assert math.isnan(r.time_to_remission) and r.relapse_type == "none"
    assert r.bcell_aplasia_ongoing and r.bcell_aplasia_duration == 49.0


@pytest.mark.parametrize(("neg", "masked", "expected"), [
    (0.0, 0.9, "CD19-masked (CAR+)"),   # Ruella M et al. 2018 Nat Med 24:1499
    (0.6, 0.3, "CD19-"),
    (0.2, 0.3, "CD19+"),                # CD19+ 0.5 is the largest part
    (0.3, 0.4, "CD19-masked (CAR+)"),   # largest of 0.3 / 0.3 / 0.4 without a majority
    (0.5, 0.0, "CD19+"),                # ties go to CD19+ (the two-way rule's neg > 0.5)
    (0.0, 0.5, "CD19+"),
])
def test_relapse_type_is_the_largest_part_of_the_leukaemia(neg, masked, expected):
    t = np.arange(0.0, 201.0)
    blasts = np.where(t < 20, 80.0 * np.exp(-0.2 * t), 0.01)
    blasts[t >= 150] = 30.0
    r = ball_response(t, blasts_pct=blasts, mrd=blasts / 100,
                      antigen_neg_fraction=np.full_like(t, neg), masked_fraction=np.full_like(t, masked))
    assert r.relapse_time == 150.0 and r.relapse_type == expected


def test_relapse_typing_without_masked_fraction_is_unchanged():
    t = np.arange(0.0, 201.0)
    blasts = np.where(t < 20, 80.0 * np.exp(-0.2 * t), 0.01)
    blasts[t >= 150] = 30.0
    for neg, expected in ((0.51, "CD19-"), (0.5, "CD19+"), (np.nan, "CD19+")):
        r = ball_response(t, blasts_pct=blasts, mrd=blasts / 100, antigen_neg_fraction=np.full_like(t, neg))
        assert r.relapse_type == expected
