"""Calibration of virtual populations to published figures (trials.calibration).

Synthetic problems with known answers: exact rejection sampling of a normal target from a
uniform plausible population (Allen RJ, Rieger TR, Musante CJ 2016, CPT Pharmacometrics Syst
Pharmacol 5:140), the closed-form maximum-entropy weights of one binary target, a direct
KL minimisation with equality constraints, and Kish's effective sample size (Kish L 1965).
Published figures used as targets: ELIANA (Maude SL et al. 2018 NEJM 378:439; 75 infused):
remission within 3 months 81 %, CRS grade 3–4 46 % (Penn scale).
"""

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import kstest, norm

from livingdrug.clinical.probability import proportion
from livingdrug.trials.calibration import (
    CalibrationInputError,
    Target,
    allen2016_inputs,
    calibrate_weights,
    calibration_table,
    effective_sample_size,
    maxent_weights,
    normal_target,
    plausible,
    sample_target,
    select_allen2016,
    target_moments,
)

ELIANA = "Maude SL et al. 2018 NEJM 378:439 (ELIANA, 75 infused)"
MU, SD = 0.5, 0.1


@pytest.fixture(scope="module")
def uniform_selection():
    """Plausible outputs ~ U(0, 1)², target N((0.5, 0.5), 0.1² I)."""
    x = np.random.default_rng(11).random((8000, 2))
    target = normal_target([MU, MU], [SD**2, SD**2], source="synthetic")
    return x, select_allen2016(x, target, rng=12)


# --- (a) Allen 2016 selection ---------------------------------------------------------------


def test_selected_population_matches_the_target_within_sampling_error(uniform_selection):
    x, sel = uniform_selection
    xs = x[sel.indices]
    k = xs.shape[0]
    assert k >= 200
    # mean: SE = σ/√k; SD: SE ≈ σ/√(2(k−1)) for a normal sample; 5 standard errors
    assert np.all(np.abs(xs.mean(axis=0) - MU) < 5 * SD / math.sqrt(k))
    assert np.all(np.abs(xs.std(axis=0, ddof=1) - SD) < 5 * SD / math.sqrt(2 * (k - 1)))
    for j in range(2):  # K-S against the target marginal does not reject
        assert kstest(xs[:, j], norm(MU, SD).cdf).pvalue > 0.01
    assert np.all(sel.ks_pvalues > 0.01)
    assert sel.gof == pytest.approx(sel.ks_pvalues.mean())


def test_non_uniform_plausible_density_is_divided_out():
    """Plausible outputs ~ N(0.5, 0.2²), target N(0.6, 0.1²): keeping patients in proportion
    to ρ_target alone would give the product of the two normals (mean 0.58, SD 0.089); the
    density ratio ρ_target/ρ_plaus (kernel density) recovers the target itself."""
    x = np.random.default_rng(31).normal(0.5, 0.2, size=(12000, 1))
    target = normal_target([0.6], [0.01], source="synthetic")
    sel = select_allen2016(x, target, rng=32)
    xs = x[sel.indices, 0]
    k = xs.size
    assert abs(xs.mean() - 0.6) < 5 * 0.1 / math.sqrt(k)
    assert abs(xs.std(ddof=1) - 0.1) < 5 * 0.1 / math.sqrt(2 * (k - 1))
    assert kstest(xs, norm(0.6, 0.1).cdf).pvalue > 0.01


def test_relative_scaling_one_is_exact_rejection_sampling():
    """With the true plausible density (1 on the unit square) and s·max p = 1, each patient is
    kept with probability ρ_target(x)/max ρ_target, so the number kept is binomial with mean
    Σ_i ρ_target(x_i)/max ρ_target."""
    x = np.random.default_rng(3).random((20000, 2))
    target = normal_target([MU, MU], [SD**2, SD**2], source="synthetic")
    sel = select_allen2016(x, target, rng=4, plausible_density=np.ones(len(x)), scalings=(1.0,), repeats=2)
    rho = target.pdf(x)
    acc = rho / rho.max()
    np.testing.assert_allclose(sel.p_inclusion, rho)
    assert sel.relative_scaling == 1.0 and sel.scaling == pytest.approx(1 / rho.max())
    mean, var = acc.sum(), (acc * (1 - acc)).sum()
    assert abs(sel.indices.size - mean) < 5 * math.sqrt(var)


def test_large_scaling_clips_the_acceptance_and_widens_the_population():
    """At s·max p = 1000 every patient with ρ > ρ_max/1000 is kept: nearly a uniform disc of
    radius σ√(2 ln 1000) ≈ 3.7σ, whose marginal SD (radius/2 ≈ 0.186) far exceeds σ = 0.1 —
    why the scaling must be chosen by goodness of fit."""
    x = np.random.default_rng(5).random((8000, 2))
    target = normal_target([MU, MU], [SD**2, SD**2], source="synthetic")
    sel = select_allen2016(x, target, rng=6, plausible_density=np.ones(len(x)), scalings=(1000.0,), repeats=1)
    radius = SD * math.sqrt(2 * math.log(1000))
    assert np.all(x[sel.indices].std(axis=0) > 0.15)
    assert x[sel.indices].std(axis=0) == pytest.approx([radius / 2] * 2, rel=0.1)
    assert sel.gof < 1e-6


def test_selection_from_observed_patients_and_reproducibility():
    rng = np.random.default_rng(21)
    observed = rng.normal(MU, SD, size=(300, 1))
    x = rng.random((6000, 1))
    x[:5] = np.nan  # failed solves are never selected
    target = sample_target(observed, source="synthetic observed patients")
    a = select_allen2016(x, target, rng=22)
    b = select_allen2016(x, observed, rng=22)  # an array of observed outputs is the same target
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.isin(np.arange(5), a.indices).any() and a.n_plausible == 5995
    xs = x[a.indices, 0]
    # two-sample: SE of the difference of means √(σ²/k + σ²/300)
    assert abs(xs.mean() - observed.mean()) < 5 * SD * math.sqrt(1 / xs.size + 1 / 300)
    assert a.ks_pvalues[0] > 0.01


def test_plausible_mask():
    x = np.array([[0.5, 1.0], [2.0, 1.0], [np.nan, 1.0], [0.1, -1.0]])
    np.testing.assert_array_equal(plausible(x, [0, 0], [1, 2]), [True, False, False, False])


def test_selection_input_errors():
    t = normal_target([0.0], [1.0], source="synthetic")
    with pytest.raises(CalibrationInputError, match="outputs"):
        select_allen2016(np.zeros((100, 2)), t, rng=0)
    with pytest.raises(CalibrationInputError, match="scalings"):
        select_allen2016(np.zeros((100, 1)), t, rng=0, scalings=(0.0,))
    with pytest.raises(CalibrationInputError, match="positive-definite"):
        normal_target([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]], source="x")


# --- (b) maximum-entropy weights ----------------------------------------------------------------


def _binary_cohort(n=4000, seed=7):
    rng = np.random.default_rng(seed)
    resp = rng.random(n) < 0.6
    crs3 = rng.random(n) < np.where(resp, 0.5, 0.2)
    return np.column_stack([resp, crs3]).astype(float)


def test_maxent_weights_reproduce_the_targets():
    G = _binary_cohort()
    w = maxent_weights(G, [0.81, 0.46], names=["response", "crs3"])
    assert w.sum() == pytest.approx(1.0, abs=1e-12) and np.all(w > 0)
    np.testing.assert_allclose(w @ G, [0.81, 0.46], atol=1e-8)


def test_maxent_weights_are_uniform_when_targets_already_hold():
    G = _binary_cohort()
    w = maxent_weights(G, G.mean(axis=0))
    np.testing.assert_allclose(w, 1 / len(G), rtol=1e-10)
    assert effective_sample_size(w) == pytest.approx(len(G))


def test_one_binary_target_closed_form():
    """One indicator with k of n events and target t: the KL-closest weights are t/k on the
    events and (1−t)/(n−k) on the rest (the tilt is constant within each group)."""
    G = _binary_cohort()[:, :1]
    k, n = int(G.sum()), len(G)
    w = maxent_weights(G, [0.81])
    np.testing.assert_allclose(w[G[:, 0] == 1], 0.81 / k, rtol=1e-10)
    np.testing.assert_allclose(w[G[:, 0] == 0], 0.19 / (n - k), rtol=1e-10)
    # Kish: 1 / Σw² = 1 / (t²/k + (1−t)²/(n−k))
    assert effective_sample_size(w) == pytest.approx(1 / (0.81**2 / k + 0.19**2 / (n - k)), rel=1e-10)


def test_maxent_weights_are_the_kl_closest():
    """Against a direct minimisation of Σ w ln(n w) under the equality constraints (SLSQP)."""
    rng = np.random.default_rng(1)
    g = np.column_stack([rng.random(8) < 0.5, rng.normal(size=8)]).astype(float)
    g[:2, 0] = [1.0, 0.0]
    t = np.array([0.3, g[:, 1].mean() + 0.2])
    w = maxent_weights(g, t)
    n = len(g)
    res = minimize(lambda v: float(np.sum(v * np.log(n * v))), np.full(n, 1 / n), method="SLSQP",
                   jac=lambda v: np.log(n * v) + 1, bounds=[(1e-12, 1)] * n,
                   constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1},
                                {"type": "eq", "fun": lambda v: v @ g - t}],
                   options={"ftol": 1e-15, "maxiter": 1000})
    assert res.success
    np.testing.assert_allclose(w, res.x, atol=1e-6)
    # and the solution is an exponential tilt: ln w is affine in g
    A = np.column_stack([np.ones(n), g])
    coef = np.linalg.lstsq(A, np.log(w), rcond=None)[0]
    np.testing.assert_allclose(A @ coef, np.log(w), atol=1e-8)


def test_target_on_the_boundary_gives_zero_weight_to_contradicting_patients():
    """"No CRS" (0 %, as in Liu E et al. 2020 NEJM, CAR-NK): patients with CRS get weight 0;
    with only that target the others stay uniform."""
    G = _binary_cohort()
    crs = G[:, 1] == 1
    w = maxent_weights(G[:, 1:], [0.0])
    assert np.all(w[crs] == 0)
    np.testing.assert_allclose(w[~crs], 1 / (~crs).sum(), rtol=1e-12)
    w2 = maxent_weights(G, [0.81, 0.0])
    np.testing.assert_allclose(w2 @ G, [0.81, 0.0], atol=1e-10)


# --- (c) infeasible targets ---------------------------------------------------------------------


def test_infeasible_target_names_it():
    G = _binary_cohort()
    G[:, 0] = 0.0  # no simulated patient responds
    with pytest.raises(ValueError, match="response") as e:
        maxent_weights(G, [0.9, 0.46], names=["response", "crs3"])
    assert "0.9" in str(e.value) and "crs3" not in str(e.value)


def test_jointly_infeasible_targets_name_the_culprits():
    G = _binary_cohort()
    both = np.column_stack([G[:, 0], G[:, 0]])  # the same event reported twice at different rates
    with pytest.raises(ValueError, match="jointly out of reach") as e:
        maxent_weights(both, [0.5, 0.6], names=["remission", "response"])
    assert "remission" in str(e.value) and "response" in str(e.value)


def test_infeasible_table_target_names_it():
    table = {"responded": np.zeros(50, dtype=bool), "outcome": np.array(["infused"] * 50, dtype=object)}
    t = Target("ELIANA remission", "proportion", "responded", 0.81, ELIANA, n=75)
    with pytest.raises(CalibrationInputError, match="ELIANA remission"):
        calibrate_weights(table, [t])


# --- (d) effective sample size --------------------------------------------------------------------


def test_effective_sample_size():
    assert effective_sample_size(np.ones(37)) == pytest.approx(37)
    assert effective_sample_size([0, 0, 5.0, 0]) == pytest.approx(1)
    assert effective_sample_size([1, 1, 2]) == pytest.approx(16 / 6)  # (Σw)²/Σw²
    assert effective_sample_size([3, 3, 6]) == pytest.approx(16 / 6)  # scale-free
    for bad in ([], [1, -1], [0, 0], [1, np.nan]):
        with pytest.raises(CalibrationInputError, match="weights"):
            effective_sample_size(bad)


# --- targets, weights on a table, and (e) the calibration table ---------------------------------


def _table(n=600, seed=2):
    rng = np.random.default_rng(seed)
    infused = rng.random(n) < 0.8
    resp = infused & (rng.random(n) < 0.5)
    crs = np.where(infused, rng.integers(0, 5, n), np.nan)
    cmax = np.where(infused, rng.lognormal(3.0, 1.0, n), np.nan)
    return {
        "patient": np.arange(n),
        "outcome": np.where(infused, "infused", "progression").astype(object),
        "status": np.zeros(n, dtype=np.int64),
        "responded": resp,
        "crs_max_grade": crs,
        "car_cmax": cmax,
    }


INFUSED = (("outcome", "==", "infused"), ("status", "==", 0))


def _eliana_targets():
    return [
        Target("ELIANA remission", "proportion", "responded", 0.81, ELIANA, n=75, among=INFUSED),
        Target("ELIANA CRS grade >= 3", "proportion", "crs_max_grade", 0.46, ELIANA, n=75,
               op=">=", threshold=3, among=INFUSED),
    ]


def test_calibration_table_flags_a_target_outside_its_interval():
    table = _table()
    rows = calibration_table(table, _eliana_targets(), weights=np.ones(len(table["patient"])))
    rem = rows[0]
    ok = (table["outcome"] == "infused")
    assert rem["simulated"] == pytest.approx(table["responded"][ok].mean())  # ≈ 0.5
    p = proportion(61, 75)  # 81 % of 75 (Wilson)
    assert rem["published_interval"] == pytest.approx((p.low, p.high))
    assert rem["within"] is False
    assert rem["n_effective"] == pytest.approx(ok.sum())


def test_weights_from_targets_reproduce_conditional_rates_and_pass_the_table():
    table = _table()
    targets = _eliana_targets()
    w = calibrate_weights(table, targets)
    ok = table["outcome"] == "infused"
    assert w.sum() == pytest.approx(1.0)
    rate = (w * ok * table["responded"]).sum() / (w * ok).sum()
    crs = (w * ok * (np.nan_to_num(table["crs_max_grade"]) >= 3)).sum() / (w * ok).sum()
    assert rate == pytest.approx(0.81, abs=1e-8) and crs == pytest.approx(0.46, abs=1e-8)
    rows = calibration_table(table, targets, weights=w)
    assert all(r["within"] for r in rows)
    for r in rows:
        lo, hi = r["simulated_interval"]
        assert lo < r["simulated"] < hi
        assert r["n_effective"] < ok.sum()  # weighting costs precision


def test_selected_indices_in_the_table_use_plain_wilson():
    table = _table()
    idx = np.arange(0, 600, 3)
    rows = calibration_table(table, _eliana_targets()[:1], selected=idx)
    ok = (table["outcome"][idx] == "infused")
    k, n = int(table["responded"][idx][ok].sum()), int(ok.sum())
    p = proportion(k, n)
    assert rows[0]["simulated"] == pytest.approx(k / n)
    assert rows[0]["simulated_interval"] == pytest.approx((p.low, p.high))


def test_mean_quantile_and_distribution_targets():
    table = _table()
    mu_log, sd_log = 3.4, 0.7
    targets = [
        Target("Cmax median", "quantiles", "car_cmax", (40.0,), "synthetic", unit="cells/uL",
               probabilities=(0.5,), interval=((30.0, 50.0),), among=INFUSED),
        Target("Cmax log-normal", "distribution", "car_cmax", (mu_log, sd_log), "synthetic", unit="cells/uL",
               log=True, among=INFUSED),
    ]
    G, labels = target_moments(table, targets)
    assert labels == ["Cmax median (q50 %)", "Cmax log-normal (mean)", "Cmax log-normal (SD)"]
    w = calibrate_weights(table, targets)
    ok = np.isfinite(table["car_cmax"])
    y = np.log(table["car_cmax"][ok])
    wn = w[ok] / w[ok].sum()
    assert wn @ (table["car_cmax"][ok] <= 40.0) == pytest.approx(0.5, abs=1e-8)
    assert wn @ y == pytest.approx(mu_log, abs=1e-8)
    assert math.sqrt(wn @ (y - mu_log) ** 2) == pytest.approx(sd_log, abs=1e-8)
    rows = calibration_table(table, targets, weights=w)
    assert rows[0]["within"] and 30 <= rows[0]["simulated"] <= 50
    assert rows[1]["simulated"] == pytest.approx(mu_log, abs=1e-8)
    assert rows[1]["simulated_sd"] == pytest.approx(sd_log, abs=1e-8)
    mean_t = Target("mean log", "mean", "car_cmax", 25.0, "synthetic", unit="cells/uL", interval=(20.0, 30.0),
                    among=INFUSED)
    w2 = calibrate_weights(table, [mean_t])
    (row,) = calibration_table(table, [mean_t], weights=w2)
    assert row["simulated"] == pytest.approx(25.0, rel=1e-8) and row["within"]


def test_distribution_target_through_allen_selection():
    """A log-normal Cmax distribution: select from the table's infused patients, then the table
    (K-S with n = number selected) does not flag it."""
    rng = np.random.default_rng(8)
    n = 6000
    table = {"outcome": np.array(["infused"] * n, dtype=object), "status": np.zeros(n, dtype=np.int64),
             "car_cmax": np.exp(rng.uniform(1.0, 6.0, n))}
    t = Target("Cmax", "distribution", "car_cmax", (3.5, 0.4), "synthetic", unit="cells/uL", log=True,
               among=INFUSED)
    outputs, target, rows = allen2016_inputs(table, [t])
    sel = select_allen2016(outputs, target, rng=9)
    (row,) = calibration_table(table, [t], selected=rows[sel.indices])
    k = sel.indices.size
    assert row["within"] and row["ks_pvalue"] > 0.01
    assert abs(row["simulated"] - 3.5) < 5 * 0.4 / math.sqrt(k)
    # a shifted published distribution is flagged
    shifted = Target("Cmax", "distribution", "car_cmax", (4.5, 0.4), "synthetic", log=True, among=INFUSED)
    (bad,) = calibration_table(table, [shifted], selected=rows[sel.indices])
    assert bad["within"] is False


def test_target_validation_names_the_field():
    with pytest.raises(CalibrationInputError, match="kind"):
        Target("x", "rate", "responded", 0.5, "s")
    with pytest.raises(CalibrationInputError, match=r"value.*proportion in \[0, 1\]"):
        Target("x", "proportion", "responded", 81, "s")
    with pytest.raises(CalibrationInputError, match="source"):
        Target("x", "proportion", "responded", 0.5, "")
    with pytest.raises(CalibrationInputError, match="probabilities"):
        Target("x", "quantiles", "car_cmax", (1.0, 2.0), "s", probabilities=(0.5,))
    with pytest.raises(CalibrationInputError, match="column"):
        calibrate_weights(_table(), [Target("x", "proportion", "no_such_column", 0.5, "s")])
    with pytest.raises(CalibrationInputError, match="among"):
        calibrate_weights(_table(), [Target("x", "proportion", "responded", 0.5, "s",
                                            among=(("outcome", "==", "waiting"),))])
    with pytest.raises(CalibrationInputError, match="weights/selected"):
        calibration_table(_table(), _eliana_targets())


def test_target_from_plain_data():
    """As a TOML table would give it: lists instead of tuples."""
    t = Target.from_dict({"name": "ELIANA CRS grade >= 3", "kind": "proportion", "column": "crs_max_grade",
                          "value": 0.46, "n": 75, "op": ">=", "threshold": 3, "source": ELIANA,
                          "among": [["outcome", "==", "infused"], ["status", "==", 0]]})
    assert t == _eliana_targets()[1]
    with pytest.raises(CalibrationInputError, match="colour.*known"):
        Target.from_dict({"name": "x", "kind": "mean", "column": "c", "value": 1.0, "source": "s", "colour": 1})
    with pytest.raises(CalibrationInputError, match="source"):
        Target.from_dict({"name": "x", "kind": "mean", "column": "c", "value": 1.0})
