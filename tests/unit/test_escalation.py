"""In-silico dose escalation with virtual patients (livingdrug.escalation)."""

import numpy as np
import pytest

from livingdrug.escalation import DoseToxicity, dose_toxicity, simulate_escalation
from livingdrug.scenarios import ScenarioError
from livingdrug.trials.designs import DesignInputError, dlt_from_grades, operating_characteristics


def _synthetic(p, n=4000, seed=1):
    """Virtual patients with a latent tolerance u_i: patient i has a DLT at level j when
    u_i < p_j, so DLT rates are p_j and toxicity is monotone in dose for every patient."""
    u = np.random.default_rng(seed).random(n)
    dlt = u[:, None] < np.asarray(p)[None, :]
    return DoseToxicity(np.arange(1.0, len(p) + 1), dlt, ~dlt, [], None)


@pytest.mark.parametrize("design", ["3+3", "boin"])
def test_virtual_patients_reproduce_the_designs_operating_characteristics(design):
    # with a large population the per-level DLT rates are the p's, so selection probabilities
    # must agree with the probability form (Storer 1989; Liu & Yuan 2015) within sampling error
    p = (0.05, 0.12, 0.3, 0.5, 0.6)
    dt = _synthetic(p)
    n = 1500
    opts = {"target": 0.3, "n_cohorts": 10} if design == "boin" else {}
    vp = simulate_escalation(dt, design=design, n_trials=n, seed=3, **opts)
    ref = operating_characteristics(design, list(dt.dlt.mean(axis=0)), n, seed=4, **opts)
    for a, b in zip(vp["p_select"], ref.p_select, strict=True):
        se = np.sqrt(max(a * (1 - a), b * (1 - b), 1e-4) * 2 / n)
        assert abs(a - b) < 5 * se
    assert vp["true_dlt_rate"] == pytest.approx(list(p), abs=0.03)


def test_escalation_is_reproducible_and_checks_its_inputs():
    dt = _synthetic((0.1, 0.4), n=200)
    a = simulate_escalation(dt, design="boin", n_trials=50, seed=9)
    b = simulate_escalation(dt, design="boin", n_trials=50, seed=9)
    assert a == b
    with pytest.raises(DesignInputError, match="design"):
        simulate_escalation(dt, design="crm")
    with pytest.raises(DesignInputError, match="n_trials"):
        simulate_escalation(dt, n_trials=0)


def test_dose_levels_treat_the_same_virtual_patients():
    dt = dose_toxicity("cd19-ball", [1e7, 1e8], patients=12)
    r = dt.comparison.patients
    a, b = (r["arm"] == name for name in ("1e+07 cells", "1e+08 cells"))
    np.testing.assert_array_equal(r["weight"][a], r["weight"][b])
    np.testing.assert_array_equal(r["dose"][a], 1e7)
    np.testing.assert_array_equal(r["dose"][b], 1e8)
    np.testing.assert_array_equal(dt.dlt[:, 1], dlt_from_grades(r["crs_max_grade"][b], r["icans_max_grade"][b]))
    assert dt.summary[1]["dlt"]["trials"] == 12
    with pytest.raises(ScenarioError, match="--doses"):
        dose_toxicity("cd19-ball", [1e8, 1e7])
