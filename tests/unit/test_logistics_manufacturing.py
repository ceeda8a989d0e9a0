"""Manufacturing model (livingdrug.logistics.manufacturing): closed forms, statistical laws and
the hand-over of the product to the car_t patient model."""

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.linalg import expm

from livingdrug.logistics import (
    STEPS,
    LogisticsInputError,
    Patient,
    Process,
    fitness,
    fold_expansion,
    make_product,
    phenotype,
    product_parameters,
    success_probability,
)

# a process whose dose never falls short, so only the per-step OOS draws can fail it
BIG = Process(seeded_cells=1e10, target_dose=1e8, min_dose=1.0)


def test_fold_expansion_is_the_doubling_closed_form_and_grows_with_culture_days():
    p = Process(lag_days=1.0, doubling_days=1.5)
    days = np.arange(0.0, 15.0, 0.5)
    fold = np.array([fold_expansion(p, d) for d in days])
    expected = 2.0 ** (np.maximum(0.0, days - 1.0) / 1.5)
    np.testing.assert_allclose(fold, expected, rtol=1e-12)
    assert np.all(np.diff(fold[days >= 1.0]) > 0)  # strictly increasing after the lag


def test_phenotype_drift_matches_the_chain_solved_by_matrix_exponential():
    """S -> M -> E at rate k: the closed form equals expm of the chain's generator."""
    p = Process(s0=0.6, m0=0.25, k_diff=0.12)
    q = np.array([[-0.12, 0.0, 0.0], [0.12, -0.12, 0.0], [0.0, 0.12, 0.0]])  # columns: from S, M, E
    x0 = np.array([0.6, 0.25, 0.15])
    prev = None
    for t in (0.0, 1.0, 2.0, 5.0, 9.0, 14.0, 21.0):
        f_s, f_e, f_m = phenotype(p, t)
        s, m, e = expm(q * t) @ x0
        np.testing.assert_allclose([f_s, f_m, f_e], [s, m, e], rtol=1e-10, atol=1e-12)
        assert f_s + f_e + f_m == pytest.approx(1.0)
        if prev is not None:  # towards effector with longer culture (Ghassemi 2018)
            assert f_s < prev[0] and f_e > prev[1]
        prev = (f_s, f_e)


def test_rapid_process_gives_less_differentiated_fitter_cells():
    classic, rapid = Process(culture_days=10.0), Process(culture_days=1.5)
    assert phenotype(rapid)[0] > phenotype(classic)[0]
    assert fitness(rapid) > 1.0 > fitness(classic)
    assert fitness(Process(culture_days=7.0, reference_culture_days=7.0)) == pytest.approx(1.0)


def test_success_probability_is_the_product_of_step_successes_statistically():
    p_fail = dict(zip(STEPS, (0.01, 0.02, 0.03, 0.0, 0.05, 0.02, 0.01), strict=True))
    proc = replace(BIG, p_fail=p_fail)
    expected_ok = math.prod(1 - v for v in p_fail.values())
    assert success_probability(proc) == pytest.approx(expected_ok)
    rng = np.random.default_rng(20260101)
    n = 20_000
    failed = [make_product(proc, Patient(), rng).failed_step for _ in range(n)]
    ok = sum(f is None for f in failed) / n
    assert abs(ok - expected_ok) < 4.5 * math.sqrt(expected_ok * (1 - expected_ok) / n)
    survive = 1.0
    for step in STEPS:  # first failure at step k: prod_{j<k}(1 - p_j) * p_k
        pk = survive * p_fail[step]
        share = sum(f == step for f in failed) / n
        assert abs(share - pk) <= 4.5 * math.sqrt(max(pk * (1 - pk), 1e-12) / n) + 1e-12, step
        survive *= 1 - p_fail[step]


def test_contamination_counts_follow_the_poisson_law():
    """Leukaemic cells ~ Poisson(f_contam*dose/eta); CAR+ ones ~ Poisson(f_contam*dose)
    (Poisson thinning; Ruella 2018's one-cell-kills mechanism)."""
    proc = replace(BIG, p_fail={s: 0.0 for s in STEPS}, transduction_efficiency=0.3, transduction_concentration=1e6)
    patient = Patient(f_contam=2e-8)
    rng = np.random.default_rng(7)
    prods = [make_product(proc, patient, rng) for _ in range(8000)]
    dose = prods[0].dose
    assert all(p.dose == dose for p in prods)
    car = np.array([p.car_leukaemic_cells for p in prods])
    lam = 2e-8 * dose  # = 2
    n = car.size
    assert abs(car.mean() - lam) < 4.5 * math.sqrt(lam / n)
    p0 = math.exp(-lam)
    assert abs(np.mean(car == 0) - p0) < 4.5 * math.sqrt(p0 * (1 - p0) / n)
    leuk = np.array([p.leukaemic_cells for p in prods])
    lam_all = float(np.mean([2e-8 * dose / p.eta for p in prods]))
    assert abs(leuk.mean() - lam_all) < 4.5 * math.sqrt(lam_all / n)
    assert np.all(car <= leuk)


def test_transduction_and_vector_copy_number_follow_the_poisson_integration_law():
    proc = replace(BIG, transduction_efficiency=0.25, transduction_concentration=30.0, p_fail={})
    rng = np.random.default_rng(3)
    prods = [make_product(proc, Patient(), rng) for _ in range(4000)]
    eta = np.array([p.eta for p in prods])
    sd = math.sqrt(0.25 * 0.75 / 31.0)  # Beta(mean 0.25, concentration 30)
    assert abs(eta.mean() - 0.25) < 4.5 * sd / math.sqrt(eta.size)
    np.testing.assert_allclose([p.vcn for p in prods], -np.log1p(-eta), rtol=1e-12)


def test_short_expansion_fails_out_of_specification():
    proc = Process(culture_days=0.5, seeded_cells=1e6, min_dose=1e7, p_fail={})
    prod = make_product(proc, Patient(), np.random.default_rng(0))
    assert prod.failed_step == "expansion" and prod.dose == 0.0
    with pytest.raises(LogisticsInputError, match="failed_step"):
        product_parameters(prod)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"culture_days": -1.0}, "process.culture_days"),
        ({"p_fail": {"expansion": 1.5}}, "process.p_fail.expansion"),
        ({"transduction_efficiency": 0.0}, "process.transduction_efficiency"),
        ({"min_dose": 1e9, "target_dose": 1e8}, "process.min_dose"),
        ({"step_days": {"release": -2.0}}, "process.release_days"),
    ],
)
def test_bad_process_settings_name_the_field(kwargs, field):
    with pytest.raises(LogisticsInputError) as e:
        Process(**kwargs)
    assert e.value.field == field and "expected" in str(e.value)


def test_the_product_made_is_the_product_the_patient_model_receives():
    """product_parameters -> scenario overrides -> api.simulate: the CAR-T cells present right
    after the infusion are the product's dose split by its composition."""
    from livingdrug import api
    from livingdrug.models import car_t
    from livingdrug.scenarios import load_scenario, resolve, with_dose, with_parameters

    assert car_t.build().param("k_exp").value == pytest.approx(1.0)  # K_EXP_REFERENCE
    prod = make_product(Process(culture_days=9.0, p_fail={}), Patient(f_contam=1e-9), np.random.default_rng(11))
    params = product_parameters(prod)
    # the contamination parameters exist with the car_leukaemia option (one-cell-kills)
    s1 = load_scenario("one-cell-kills")
    s1 = with_parameters(with_dose(s1, params["dose"]), **{k: v for k, v in params.items() if k != "dose"})
    rs = resolve(s1)
    names = list(rs.network.param_names)
    for k, v in params.items():
        assert rs.P[names.index(k)] == pytest.approx(v, rel=1e-12), k
    # the default model receives the dose, composition, VCN and fitness
    s = load_scenario("cd19-ball")
    s = with_parameters(with_dose(s, params["dose"]),
                        **{k: params[k] for k in ("f_S", "f_E", "f_M", "VCN", "k_exp")})
    ds = api.simulate(s, days=1.0).dataset
    i0 = int(np.flatnonzero(ds["time"].values == 0.0)[0])  # output at the infusion, after the dose
    w = prod.f_S + prod.f_E + prod.f_M
    for sp_name, f in (("C_S", prod.f_S), ("C_E", prod.f_E), ("C_M", prod.f_M)):
        assert float(ds[sp_name].values[0, i0]) == pytest.approx(prod.dose * f / w, rel=1e-9), sp_name
