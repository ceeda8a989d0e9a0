"""Stochastic ensembles report per-replicate ASTCT grades and P(CRS ≥ 1), P(CRS ≥ 3),
P(ICANS ≥ 1) with Wilson intervals; checked against a branching-process closed form.

Model (tests/toxicity_models.py with k_d = b = 0): C0 CAR cells each die at rate a and,
while alive, raise the inflammation count I by one at rate k_u; I never falls.  A cell's
number of increments before it dies is geometric, P(k) = q^k (1 − q) with q = k_u/(a + k_u),
so the total K over C0 independent cells is negative binomial NB(C0, 1 − q) (Feller W 1968,
An Introduction to Probability Theory, vol. 1, ch. VI.8).  ASTCT grades of the toy signs
(Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625): fever from I ≥ 1 → CRS ≥ 1 iff
K ≥ 1; one vasopressor while I > 4 → CRS ≥ 3 iff K ≥ 5.  The run lasts 20/a, so the chance
that a cell is still alive at the end (e^{−20}) is negligible.
"""

import math

import numpy as np
import toxicity_models as tm
from scipy.stats import nbinom

import livingdrug as ld
from livingdrug.report.ensemble_html import probability_rows
from livingdrug.scenarios import scenario_from_toml

C0, A, KU, R = 5, 1.0, 0.5, 4000


def test_toxicity_probabilities_match_the_negative_binomial():
    text = tm.TOML.format(t_dose=0, start=0, days=20, dt=0.5).replace("1e8 cell", f"{C0} cell")
    text = text.replace('engine = "ode"', f'engine = "ssa"\nreplicates = {R}\nseed = 7')
    text = text.replace("[simulation]", f'[parameters]\na = "{A} 1/d"\nku = "{KU} 1/cell/d"\nkd = "0 1/d"\nb = "0 1/d"\n\n[simulation]')
    e = ld.simulate(scenario_from_toml(text, source="toy-ssa.toml", models=tm.MODELS))
    probs = e.summary["probabilities"]
    p_keep = A / (A + KU)  # a cell dies before its next increment
    exact = {
        "crs_grade_ge_1": 1.0 - p_keep**C0,
        "crs_grade_ge_3": float(nbinom.sf(4, C0, p_keep)),
        "icans_grade_ge_1": 0.0,  # N never rises: ICE stays 10
    }
    for key, p in exact.items():
        got = probs[key]
        assert got["trials"] == R
        se = math.sqrt(max(p * (1 - p), 1e-12) / R)
        assert abs(got["estimate"] - p) <= 4.5 * se + 1e-12, (key, got["estimate"], p)
        assert got["low"] <= got["estimate"] <= got["high"] and got["method"] == "Wilson score"
    # per-replicate columns: max grade 0-4 and onset (d after infusion) only where CRS occurred
    rep = e.endpoints
    g = rep["crs_max_grade"].to_numpy()
    assert set(np.unique(g)) <= {0, 1, 2, 3} and rep.attrs["units"]["crs_onset_day"] == "d"
    onset = rep["crs_onset_day"].to_numpy()
    assert np.all(np.isnan(onset[g == 0])) and np.all(onset[g >= 1] >= 0)
    assert (g >= 1).mean() == probs["crs_grade_ge_1"]["estimate"]
    labels = [row[0] for row in probability_rows(e.summary)]
    assert "P(CRS grade ≥ 3; ASTCT)" in labels and "P(ICANS, any grade; ASTCT)" in labels
