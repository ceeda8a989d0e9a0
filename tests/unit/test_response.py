"""Lugano 2014 and IMWG 2016 response criteria (livingdrug.clinical.response).

Boundaries from Cheson BD et al. 2014 J Clin Oncol 32:3059 (Lugano: PR ≥ 50 % decrease of
the SPD from baseline, PD ≥ 50 % increase from the nadir) and Kumar S et al. 2016 Lancet Oncol
17:e328 (IMWG: VGPR ≥ 90 %, PR ≥ 50 %, MR 25–49 % M-protein reduction; PD ≥ 25 % increase from
the nadir with an absolute increase ≥ 0.5 g/dL, or ≥ 1 g/dL when the nadir is ≥ 5 g/dL; CR
negative immunofixation and < 5 % marrow plasma cells; sCR here with MRD < 10⁻⁵).  The
operational thresholds (CR SPD 1 cm², immunofixation 0.02 g/dL) are the module's stated
choices.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from livingdrug.clinical.response import (
    CR_SPD_CM2,
    M_DETECT_G_DL,
    depletion_episode,
    imwg_category,
    imwg_response,
    lugano_category,
    lugano_response,
)

NAN = math.nan


@pytest.mark.parametrize(
    "spd, baseline, nadir, expected",
    [
        (CR_SPD_CM2, 40.0, CR_SPD_CM2, "CR"),            # at the CR threshold
        (CR_SPD_CM2 * 1.001, 40.0, CR_SPD_CM2 * 1.001, "PR"),  # just above: PR (≤ 50 % of baseline)
        (0.0, 40.0, 0.0, "CR"),
        (20.0, 40.0, 20.0, "PR"),                          # exactly −50 %
        (20.01, 40.0, 20.01, "SD"),                        # −49.98 %
        (40.0, 40.0, 40.0, "SD"),                          # unchanged
        (59.99, 40.0, 40.0, "SD"),                         # +49.98 % from the nadir
        (60.0, 40.0, 40.0, "PD"),                          # +50 % from the nadir (= baseline)
        (15.0, 40.0, 10.0, "PD"),                          # +50 % from a nadir after a PR: PD wins over PR
        (14.99, 40.0, 10.0, "PR"),
        (1.5, 40.0, 0.1, "PD"),                            # reappearance after CR
        (NAN, 40.0, 40.0, "NE"),
        (10.0, NAN, 10.0, "NE"),
    ],
)
def test_lugano_boundaries(spd, baseline, nadir, expected):
    assert lugano_category(spd, baseline, nadir) == expected


def test_lugano_threshold_is_a_parameter():
    assert lugano_category(2.0, 40.0, 2.0, cr_spd_cm2=2.25) == "CR"  # 1.5 cm x 1.5 cm
    assert lugano_category(2.0, 40.0, 2.0, cr_spd_cm2=1.0) == "PR"


@pytest.mark.parametrize(
    "m, base, nadir, pct, mrd, expected",
    [
        (0.3, 3.0, 0.3, None, None, "VGPR"),          # exactly −90 %
        (0.3001, 3.0, 0.3001, None, None, "PR"),
        (1.5, 3.0, 1.5, None, None, "PR"),             # exactly −50 %
        (1.5001, 3.0, 1.5001, None, None, "MR"),
        (2.25, 3.0, 2.25, None, None, "MR"),           # exactly −25 %
        (2.2501, 3.0, 2.2501, None, None, "SD"),
        (3.0, 3.0, 3.0, None, None, "SD"),
        # PD: +25 % from the nadir and ≥ 0.5 g/dL absolute
        (3.75, 3.0, 3.0, None, None, "PD"),            # +25 % and +0.75
        (3.74, 3.0, 3.0, None, None, "SD"),            # +24.7 %
        (1.5, 3.0, 1.0, None, None, "PD"),             # +50 %, +0.5 exactly
        (1.49, 3.0, 1.0, None, None, "PR"),            # +49 % but only +0.49 g/dL
        (0.2, 3.0, 0.01, None, None, "VGPR"),          # ×20 from the nadir but < 0.5 g/dL absolute
        # nadir ≥ 5 g/dL: an increase of ≥ 1 g/dL is PD whatever its percentage
        (6.0, 7.0, 5.0, None, None, "PD"),             # +20 %, +1.0 g/dL
        (5.99, 7.0, 5.0, None, None, "SD"),            # +19.8 %, +0.99 g/dL
        (5.99, 7.0, 4.99, None, None, "SD"),           # nadir < 5: +20 % is not enough
        # CR: below immunofixation detection and < 5 % marrow plasma cells
        (M_DETECT_G_DL * 0.99, 3.0, 0.001, 4.99, None, "CR"),
        (M_DETECT_G_DL * 0.99, 3.0, 0.001, 5.0, None, "VGPR"),
        (M_DETECT_G_DL, 3.0, 0.001, 1.0, None, "VGPR"),  # at the detection limit: still detectable
        (M_DETECT_G_DL * 0.99, 3.0, 0.001, None, None, "VGPR"),  # no marrow: CR not confirmed
        (0.001, 3.0, 0.001, 1.0, 0.99e-5, "sCR"),
        (0.001, 3.0, 0.001, 1.0, 1.0e-5, "CR"),
        (NAN, 3.0, 3.0, None, None, "NE"),
    ],
)
def test_imwg_boundaries(m, base, nadir, pct, mrd, expected):
    assert imwg_category(m, base, nadir, marrow_plasma_pct=pct, myeloma_mrd=mrd) == expected


def test_lugano_course_days_best_and_progression():
    """A lesion sum falling to a PR by day 28, a CR by day 60, reappearing at day 150."""
    t = np.arange(-5.0, 200.0, 0.5)
    spd = np.interp(t, [-5, 0, 28, 60, 120, 150, 199.5], [35, 40, 15, 0.5, 0.4, 5.0, 50.0])
    r = lugano_response(t, spd, t_dose=0.0)
    d = r.as_dict()
    assert d["day_28"] == "PR" and d["day_90"] == "CR" and d["best_response"] == "CR"
    assert d["baseline_spd"] == pytest.approx(40.0)
    assert d["spd_change_day_28_pct"] == pytest.approx(-62.5)
    # PR (≤ 20 cm²) first reached at the output time where the ramp 40 → 15 crosses 20
    assert d["time_to_response"] == pytest.approx(22.5, abs=0.5)
    # PD: SPD ≥ 1.5 × 0.4 and above 1 cm² once it climbs from 0.4 (day 120) towards 5 (day 150)
    assert 120.0 < d["progression_time"] < 130.0
    assert d["nadir_spd"] == pytest.approx(0.4)


def test_lugano_short_follow_up_is_not_evaluable():
    t = np.linspace(0.0, 40.0, 81)
    r = lugano_response(t, np.full_like(t, 30.0))
    assert r.at == {"day_28": "SD", "day_90": "NE"}
    assert math.isnan(r.time_to_response) and math.isnan(r.progression_time)
    assert r.as_dict()["spd_change_day_90_pct"] is None


def test_imwg_course_with_half_life_decay():
    """After instant eradication the M-protein falls with the IgG half-life (~21 d): −50 % takes
    21 d (PR at day 28), −90 % takes 70 d (VGPR at day 90)."""
    t = np.arange(0.0, 366.0, 1.0)
    m = 3.0 * 0.5 ** (t / 21.0)
    pct = np.full_like(t, 1.0)
    r = imwg_response(t, m, marrow_plasma_pct=pct)
    assert r.at == {"day_28": "PR", "day_90": "VGPR"}
    assert r.time_to_response == pytest.approx(21.0)
    # below 0.02 g/dL after 21·log2(150) = 151.8 d → CR (no MRD given, so not sCR)
    assert r.best_response == "CR"
    assert math.isnan(r.progression_time)


def test_imwg_progression_from_nadir():
    t = np.arange(0.0, 200.0, 1.0)
    m = np.interp(t, [0, 50, 199], [3.0, 1.0, 4.0])  # PR, then +0.5 g/dL from 1.0 → PD
    r = imwg_response(t, m)
    assert r.best_response == "PR"
    assert r.progression_time == pytest.approx(50.0 + 0.5 / (3.0 / 149.0), abs=1.0)


def test_depletion_episode():
    t = np.arange(-5.0, 100.0, 1.0)
    x = np.where((t >= 3) & (t < 40), 5.0, 200.0)
    e = depletion_episode(t, x, 20.0)
    assert (e.start, e.duration, e.ongoing) == (3.0, 37.0, False)
    e = depletion_episode(t, np.where(t >= 10, 1.0, 200.0), 20.0)
    assert (e.start, e.duration, e.ongoing) == (10.0, 89.0, True)
    e = depletion_episode(t, np.full_like(t, 200.0), 20.0)
    assert math.isnan(e.start) and not e.ongoing
