"""Treatments compared in the same virtual patients (livingdrug.comparison)."""

import tomllib

import numpy as np
import pytest

from livingdrug.comparison import PRE_STEP, advance_untreated, run_comparison
from livingdrug.logistics import simulate_programme
from livingdrug.network import compile_network
from livingdrug.scenarios import ScenarioError, resolve
from livingdrug.scenarios.comparison import (
    comparison_builtin_dir,
    comparison_from_dict,
    load_comparison,
)

T, SLOW, NK = "CAR-T (autologous)", "CAR-T (slow centre)", "CAR-NK (off-the-shelf)"


def _raw():
    return tomllib.loads((comparison_builtin_dir() / "cart-vs-carnk.toml").read_text())


@pytest.fixture(scope="module")
def result():
    raw = _raw()
    slow = dict(raw["arms"][0], name=SLOW, logistics="autologous-centre-slow")
    raw["arms"].insert(1, slow)
    raw["population"]["patients"] = 150
    return run_comparison(comparison_from_dict(raw, source="three-arms.toml"))


def _arm(result, name):
    m = result.patients["arm"] == name
    return {k: v[m] for k, v in result.patients.items()}


def test_every_arm_treats_the_same_patients(result):
    t, nk, slow = (_arm(result, a) for a in (T, NK, SLOW))
    for col in ("weight", "r_L", "leukaemia", "neg_fraction", "bridged"):
        np.testing.assert_array_equal(t[col], nk[col])
        np.testing.assert_array_equal(t[col], slow[col])
    # eligibility is drawn from the patient's own logistics stream: common to the arms
    np.testing.assert_array_equal(t["outcome"] == "ineligible", nk["outcome"] == "ineligible")
    assert len(np.unique(t["weight"])) == t["weight"].size  # and they do differ between patients


def test_waiting_grows_the_leukaemia_by_the_disease_model(result):
    t, nk = _arm(result, T), _arm(result, NK)
    both = (t["outcome"] == "infused") & (nk["outcome"] == "infused")
    longer = both & (t["untreated_days"] > nk["untreated_days"])
    assert longer.sum() > 50
    # untreated leukaemia only grows towards marrow capacity, and the arms share the B-ALL part
    assert np.all(t["tumour_at_infusion"][longer] >= nk["tumour_at_infusion"][longer] * (1 - 1e-6))
    assert np.median(t["tumour_at_infusion"][both]) > 1.2 * np.median(nk["tumour_at_infusion"][both])


def test_the_untreated_interval_is_placed_anywhere_in_time():
    """advance_untreated solves every patient from t_start − max(days) in one batch; the
    direct solve of each patient from t_start − days[i] must give the same state."""
    from livingdrug.engines.ode import solve

    rs = resolve(load_comparison("cart-vs-carnk").arms[1].scenario)
    compiled = compile_network(rs.network)
    days = np.array([0.0, 3 * PRE_STEP, 20.0, 41.5])
    y0 = np.tile(rs.y0, (days.size, 1))
    k = rs.network.species_names.index("L_M")
    y0[:, k] *= np.array([0.1, 0.2, 0.05, 0.3])  # below capacity, so the leukaemia grows
    P = np.tile(rs.P, (days.size, 1))
    got, status = advance_untreated(compiled, rs, y0, P, days)
    assert np.all(status == 0)
    for i, d in enumerate(days):
        if d == 0:
            np.testing.assert_array_equal(got[i], y0[i])
            continue
        one = solve(compiled, y0[i:i + 1], P[i:i + 1], np.array([rs.t_start]), t0=rs.t_start - d,
                    rtol=1e-10, atol=1e-6)
        np.testing.assert_allclose(got[i], one.y[0, -1], rtol=1e-4, atol=1e-3)
        assert got[i][k] > y0[i][k]


def test_itt_response_worsens_with_a_slower_centre(result):
    s = result.summary["arms"]
    assert s[SLOW]["referral_to_infusion_days"]["median"] > s[T]["referral_to_infusion_days"]["median"] + 10
    assert s[SLOW]["infused"] < s[T]["infused"]
    assert s[SLOW]["response_itt"]["estimate"] < s[T]["response_itt"]["estimate"]


def test_carnk_gives_less_crs_than_cart_in_the_same_patients(result):
    t, nk = _arm(result, T), _arm(result, NK)
    both = (t["outcome"] == "infused") & (nk["outcome"] == "infused")
    # Liu E et al. 2020 NEJM 382:545: no CRS after CAR-NK; CAR-T: CRS in most (Maude 2018: 77 %)
    assert np.all(nk["crs_max_grade"][both] <= t["crs_max_grade"][both])
    s = result.summary["arms"]
    assert s[NK]["crs_grade_ge_1"]["high"] < s[T]["crs_grade_ge_1"]["low"]
    paired = {p["arm"]: p for p in result.summary["paired"]}[NK]
    assert paired["crs_grade_ge_1_difference_both_infused"] < -0.3


def test_off_the_shelf_is_infused_sooner_and_to_more_patients(result):
    s = result.summary["arms"]
    assert s[NK]["referral_to_infusion_days"]["median"] < 16 < 30 < s[T]["referral_to_infusion_days"]["median"]
    assert s[NK]["infused"] > s[T]["infused"]
    p = {x["arm"]: x for x in result.summary["paired"]}[NK]
    b, c = p["discordant_pairs"]["only_arm"], p["discordant_pairs"]["only_reference"]
    assert p["response_itt_difference"] == pytest.approx((b - c) / 150)
    from scipy.stats import binomtest

    assert p["mcnemar_p"] == pytest.approx(binomtest(b, b + c, 0.5).pvalue)


def test_cart_patients_receive_the_product_their_programme_made(result):
    c = result.comparison
    arm = next(a for a in c.arms if a.name == T)
    prog = simulate_programme(arm.logistics.programme, c.seed).patients
    t = _arm(result, T)
    inf = t["outcome"] == "infused"
    np.testing.assert_array_equal(t["outcome"], prog["outcome"][:150])
    np.testing.assert_allclose(t["dose"][inf], prog["dose"][:150][inf])
    assert np.all(t["dose"][inf] == 2e8)  # autologous-centre's target dose, not the scenario's 1e8
    for col in ("f_S", "f_E", "f_M", "vcn", "fitness"):
        np.testing.assert_array_equal(t[f"product_{col}"], prog[col][:150])
    assert np.unique(t["product_vcn"][inf]).size == inf.sum()  # each patient's own product (VCN drawn per product)
    nk = _arm(result, NK)
    m = nk["outcome"] == "infused"
    np.testing.assert_allclose(nk["dose"][m], 1e7 * nk["weight"][m])  # per-kg dose x the patient's weight


def test_endpoints_are_consistent_with_the_patient_table(result):
    for name, s in result.summary["arms"].items():
        a = _arm(result, name)
        n = a["patient"].size
        assert s["referred"] == n and s["response_itt"]["successes"] == int(a["responded"].sum())
        assert s["infused"] + sum(v for k, v in s["outcomes"].items() if k != "infused") == n
        dropped = np.isin(a["outcome"], ["ineligible", "progression", "death", "manufacturing failure"])
        assert not a["responded"][dropped].any()
        assert np.all(a["efs_event"][dropped]) and np.all(a["efs_day"] >= 0)
        assert s["efs"]["at_12_months"] <= s["efs"]["at_6_months"] <= s["infused_share"]["estimate"] + 1e-12


def test_a_comparison_is_reproducible_and_independent_of_its_size():
    c = load_comparison("cart-vs-carnk")
    a = run_comparison(c, patients=12, seed=5)
    b = run_comparison(c, patients=12, seed=5)
    for k in a.patients:
        np.testing.assert_array_equal(a.patients[k], b.patients[k])
    big = run_comparison(c, patients=20, seed=5)
    small_t = _arm(a, T)
    big_t = _arm(big, T)
    for col in ("weight", "leukaemia", "outcome", "referral_to_infusion"):
        np.testing.assert_array_equal(small_t[col], big_t[col][:12])


def _bad(mutate):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ScenarioError) as e:
        comparison_from_dict(raw, source="bad.toml")
    return str(e.value)


def test_bad_comparison_files_get_clear_errors():
    msg = _bad(lambda r: r["population"]["parameters"].update(r_LL={"cv": 0.3}))
    assert "population.parameters.r_LL" in msg and 'did you mean "r_L"' in msg
    msg = _bad(lambda r: r["population"]["parameters"]["weight"].pop("cv"))
    assert "population.parameters.weight.cv" in msg
    msg = _bad(lambda r: r["arms"][1].update(product="manufactured"))
    assert "arms[1].product" in msg and "autologous" in msg
    msg = _bad(lambda r: r["arms"][1].update(name=r["arms"][0]["name"]))
    assert "arms[1].name" in msg
    msg = _bad(lambda r: r.update(arms=[]))
    assert "arms" in msg and "[[arms]]" in msg
    msg = _bad(lambda r: r["population"].update(patients=0))
    assert "population.patients = 0" in msg
    msg = _bad(lambda r: r["population"]["covariates"].update(tumour_volume={"cv": 1}))
    assert "population.covariates.tumour_volume" in msg and "leukaemia" in msg
    msg = _bad(lambda r: r["arms"][0].update(scenario="cd19-bal"))
    assert "arms[0].scenario" in msg and "cd19-ball" in msg
    msg = _bad(lambda r: r["arms"][0]["parameters"].update(weight={"cv": 0.1}))
    assert "arms[0].parameters.weight" in msg and "once" in msg
    msg = _bad(lambda r: r["population"]["parameters"]["weight"].update(median="70 cell"))
    assert "population.parameters.weight.median" in msg and "kg" in msg


def test_a_patient_without_variability_is_the_patient_of_livingdrug_run():
    """The trial/comparison scoring (all patients at once) gives the endpoints that
    ``livingdrug run`` (api.simulate + summarise) gives the scenario's one patient."""
    import livingdrug as ld

    raw = {"name": "one", "population": {"patients": 2},
           "arms": [{"name": "CAR-T", "scenario": "cd19-ball"}, {"name": "CAR-NK", "scenario": "cd19-carnk"}]}
    r = run_comparison(comparison_from_dict(raw, source="one.toml"))
    for arm, scen in (("CAR-T", "cd19-ball"), ("CAR-NK", "cd19-carnk")):
        a = _arm(r, arm)
        s = ld.simulate(scen).summary
        assert a["outcome"][0] == "infused" and a["status"][0] == 0
        assert a["response_day"][0] == s["response"]["time_to_remission"]
        assert a["mrd_negative_day"][0] == s["response"]["time_to_mrd_negative"]
        rel = s["response"]["relapse_time"]
        assert (np.isnan(a["relapse_day"][0]) and rel is None) or a["relapse_day"][0] == rel
        assert a["crs_max_grade"][0] == s["toxicity"]["crs"]["max_grade"]
        assert a["icans_max_grade"][0] == s["toxicity"]["icans"]["max_grade"]
        assert a["car_cmax"][0] == s["exposure"]["cmax"] and a["car_tmax"][0] == s["exposure"]["tmax"]
        assert a["car_auc28"][0] == s["exposure"]["auc_0_28"]
        np.testing.assert_array_equal(a["car_cmax"][0], a["car_cmax"][1])  # two identical patients


def _randomised_raw(n=80):
    return {"name": "rand", "population": {"patients": n, "seed": 2,
                                           "parameters": {"weight": {"median": "70 kg", "cv": 0.2}}},
            "design": {"allocation": "randomised", "ratio": [1, 1]},
            "arms": [{"name": "CAR-T", "scenario": "cd19-ball"}, {"name": "CAR-NK", "scenario": "cd19-carnk"}]}


def test_randomised_allocation_gives_each_patient_one_arm(tmp_path):
    from scipy.stats import fisher_exact

    from livingdrug.trial import run_trial

    c = comparison_from_dict(_randomised_raw(), source="rand.toml")
    r = run_comparison(c)
    t, nk = _arm(r, "CAR-T"), _arm(r, "CAR-NK")
    assert t["patient"].size + nk["patient"].size == 80
    assert not set(t["patient"]) & set(nk["patient"])
    assert 20 <= t["patient"].size <= 60  # 1:1 simple randomisation, 80 patients (|z| < 4.5)
    d = r.summary["randomised"][0]
    k1, n1 = int(nk["responded"].sum()), nk["responded"].size
    k0, n0 = int(t["responded"].sum()), t["responded"].size
    assert d["response_itt"]["difference"] == pytest.approx(k1 / n1 - k0 / n0)
    assert d["response_itt"]["fisher_p"] == pytest.approx(fisher_exact([[k1, n1 - k1], [k0, n0 - k0]]).pvalue)
    assert d["response_itt"]["low"] <= d["response_itt"]["difference"] <= d["response_itt"]["high"]
    assert r.summary["paired"] == []
    # a trial of the same design: the same allocation, whatever the chunk size
    toml = tmp_path / "rand.toml"
    toml.write_text('name = "rand"\n[population]\npatients = 30\nseed = 2\n[population.parameters.weight]\n'
                    'median = "70 kg"\ncv = 0.2\n[design]\nallocation = "randomised"\nratio = [1, 1]\n'
                    '[[arms]]\nname = "CAR-T"\nscenario = "cd19-ball"\n[[arms]]\nname = "CAR-NK"\nscenario = "cd19-carnk"\n')
    a = run_trial(toml, tmp_path / "a", chunk_size=7, figures=False).patients
    b = run_trial(toml, tmp_path / "b", chunk_size=30, figures=False).patients
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["patient"].size == 30


def test_randomised_allocation_checks_its_inputs():
    raw = _randomised_raw()
    raw["design"]["ratio"] = [1]
    with pytest.raises(ScenarioError, match="design.ratio"):
        comparison_from_dict(raw, source="r.toml")
    raw = _randomised_raw()
    raw["arms"][0]["logistics"] = "autologous-centre"
    with pytest.raises(ScenarioError, match="design.allocation"):
        comparison_from_dict(raw, source="r.toml")
    raw = _randomised_raw()
    raw["design"]["allocation"] = "stratified"
    with pytest.raises(ScenarioError, match="design.allocation"):
        comparison_from_dict(raw, source="r.toml")


def test_max_grades_equal_the_full_grading():
    """max_grades grades only the points where a grade can be above 0; on random sign
    tables (with NaN = not recorded) it must equal the maximum of grade_signs over time."""
    from livingdrug.clinical.grading import grade_signs
    from livingdrug.comparison import max_grades

    rng = np.random.default_rng(7)
    shape = (60, 40)

    def pick(values, p_nan=0.1):
        x = rng.choice(np.asarray(values, dtype=float), size=shape)
        x[rng.random(shape) < p_nan] = np.nan
        return x

    signs = {
        "temperature_c": pick(np.linspace(36.5, 40.0, 15)), "sbp_mmhg": pick(np.linspace(70, 130, 13)),
        "vasopressors_n": pick([0, 0, 0, 1, 2]), "o2_level": pick([0, 0, 0, 1, 2, 3]),
        "o2_flow_l_min": pick([0.0, 2.0, 8.0]), "anticytokine_given": pick([0, 0, 0, 1]),
        "ice_score": pick([10] * 8 + list(range(10))), "consciousness_level": pick([0] * 6 + [1, 2, 3]),
        "seizure_level": pick([0] * 8 + [1, 2]), "motor_weakness": pick([0] * 9 + [1]),
        "cerebral_edema_level": pick([0] * 9 + [1, 2]), "vasopressin": pick([0] * 5 + [1]),
    }
    full = grade_signs(signs)
    fast = max_grades(signs)
    np.testing.assert_array_equal(fast["crs"], full["crs_grade"].max(axis=1))
    np.testing.assert_array_equal(fast["icans"], full["icans_grade"].max(axis=1))
    assert fast["crs"].max() >= 3 and fast["icans"].max() >= 3  # the test covers high grades
    # without fever, a treated patient grades from hypotension, vasopressors or oxygen alone
    afebrile = {**signs, "temperature_c": pick(np.linspace(36.5, 37.9, 8))}
    full = grade_signs(afebrile)
    np.testing.assert_array_equal(max_grades(afebrile)["crs"], full["crs_grade"].max(axis=1))
    assert full["crs_grade"].max() >= 3


def test_trial_grades_equal_the_dataset_grades_of_the_same_patients():
    c = load_comparison("cart-vs-carnk")
    from livingdrug.comparison import _t_dose, arm_chunk, plan_arm

    plan = plan_arm(c, 0, 30)
    cols, ds = arm_chunk(c, plan, np.arange(30), with_dataset=True)
    inf = np.flatnonzero(cols["outcome"] == "infused")
    t = ds["time"].values
    after = t >= _t_dose(plan.rs)
    np.testing.assert_array_equal(cols["crs_max_grade"][inf], ds["crs_grade"].values[:, after].max(axis=1))
    np.testing.assert_array_equal(cols["icans_max_grade"][inf], ds["icans_grade"].values[:, after].max(axis=1))


def test_trial_columns_do_not_depend_on_the_solve_block(monkeypatch):
    """Trial chunks solve and score SOLVE_BLOCK infused patients at a time; a patient's row
    is bitwise the same whatever the block (here 3 against the whole chunk at once)."""
    import livingdrug.comparison as cmp

    c = load_comparison("cart-vs-carnk")
    plan = cmp.plan_arm(c, 0, 20)
    whole, _ = cmp.arm_chunk(c, plan, np.arange(20), with_dataset=False)
    monkeypatch.setattr(cmp, "SOLVE_BLOCK", 3)
    small, _ = cmp.arm_chunk(c, plan, np.arange(20), with_dataset=False)
    assert (whole["outcome"] == "infused").sum() > 6  # several blocks of 3
    for k, v in whole.items():
        if v.dtype == object:
            assert (v == small[k]).all(), k
        else:
            np.testing.assert_array_equal(v, small[k], err_msg=k)


def test_trial_columns_do_not_depend_on_the_solver_threads(monkeypatch):
    """Blocks are solved by a pool of solver threads, several ahead of the scoring: three
    threads racing over blocks of 2 give the bits of one thread solving them in order."""
    import concurrent.futures

    import livingdrug.comparison as cmp

    c = load_comparison("cart-vs-carnk")
    plan = cmp.plan_arm(c, 1, 20)
    monkeypatch.setattr(cmp, "SOLVE_BLOCK", 2)
    cols = []
    for threads in (1, 3):
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            monkeypatch.setattr(cmp, "_SOLVER", (pool, threads))
            cols.append(cmp.arm_chunk(c, plan, np.arange(20), with_dataset=False)[0])
    one, three = cols
    assert (one["outcome"] == "infused").sum() > 6
    for k, v in one.items():
        if v.dtype == object:
            assert (v == three[k]).all(), k
        else:
            np.testing.assert_array_equal(v, three[k], err_msg=k)


def test_a_failed_solve_is_scored_as_failed_not_as_data(monkeypatch):
    """A patient whose integration stops (status != 0, NaN after the failure) gets its status,
    no response and no grade; the other patients of its block are untouched."""
    import dataclasses

    import livingdrug.comparison as cmp
    import livingdrug.engines.ode as ode

    real = ode.solve
    c = load_comparison("cart-vs-carnk")
    plan = cmp.plan_arm(c, 0, 12)
    grid = np.asarray(plan.rs.t_out, dtype=float)

    def failing(*a, **k):
        sol = real(*a, **k)
        if not np.array_equal(a[3], grid):  # the untreated interval before it is not touched
            return sol
        y, status = sol.y.copy(), np.asarray(sol.status).copy()
        y[0, 40:] = np.nan  # the block's first patient fails after 40 outputs
        status[0] = 1
        return dataclasses.replace(sol, y=y, status=status)

    good, _ = cmp.arm_chunk(c, plan, np.arange(12), with_dataset=False)
    monkeypatch.setattr(cmp, "SOLVE_BLOCK", 4)
    monkeypatch.setattr(ode, "solve", failing)
    bad, _ = cmp.arm_chunk(c, plan, np.arange(12), with_dataset=False)
    inf = np.flatnonzero(good["outcome"] == "infused")
    first = inf[::4]  # the first infused patient of every block of 4
    rest = np.setdiff1d(inf, first)
    assert (bad["status"][first] == 1).all() and not bad["responded"][first].any()
    assert np.isnan(bad["crs_max_grade"][first]).all()
    for k in ("status", "responded", "crs_max_grade", "car_cmax", "relapse_day"):
        np.testing.assert_array_equal(bad[k][rest], good[k][rest], err_msg=k)


def test_complete_response_for_lymphoma_is_lugano_cr_at_day_90():
    """Lugano 2014 (Cheson BD et al. 2014 J Clin Oncol 32:3059): a complete response is the CR
    category at the day-90 assessment, recomputed here patient by patient from the dataset
    with livingdrug.api.disease_responses; a CR is also a response."""
    from livingdrug.api import disease_responses
    from livingdrug.comparison import _t_dose, arm_chunk, plan_arm

    raw = {"name": "lbcl", "population": {"patients": 8, "parameters": {"weight": {"median": "70 kg", "cv": 0.2}}},
           "arms": [{"name": "axi-cel", "scenario": "cd19-lbcl"}]}
    c = comparison_from_dict(raw, source="lbcl.toml")
    plan = plan_arm(c, 0, 8)
    cols, ds = arm_chunk(c, plan, np.arange(8), with_dataset=True)
    net = plan.rs.network
    cats = [disease_responses(ds, net, i, t_dose=_t_dose(plan.rs))["response_lugano"]["day_90"] for i in range(8)]
    np.testing.assert_array_equal(cols["complete_response"], [x == "CR" for x in cats])
    np.testing.assert_array_equal(cols["responded"], [x in ("CR", "PR") for x in cats])
    assert np.all(cols["complete_response"] <= cols["responded"])
    s = run_comparison(c).summary["arms"]["axi-cel"]
    assert s["complete_response_itt"]["successes"] == int(cols["complete_response"].sum())


def test_programme_outcomes_by_the_disease_model():
    """A logistics programme's referred patients treated by the disease model: the same
    referrals and infusions as the programme itself, and the slower centre (tisa-cel-like,
    ~48 d vein-to-vein) loses more patients by intention to treat than the axi-cel-like one."""
    import dataclasses

    from livingdrug.comparison import programme_outcomes
    from livingdrug.logistics import simulate_programme
    from livingdrug.scenarios.logistics import load_logistics

    out = {}
    for name in ("autologous-centre", "autologous-centre-slow"):
        lg = load_logistics(name)
        lg = dataclasses.replace(lg, programme=dataclasses.replace(lg.programme, months=12))
        arm = programme_outcomes(lg, "cd19-ball")
        prog = simulate_programme(lg.programme, lg.seed).summary
        assert arm["referred"] == prog["referred"] and arm["infused"] == prog["infused"]
        out[name] = arm
    fast, slow = out["autologous-centre"], out["autologous-centre-slow"]
    assert slow["referral_to_infusion_days"]["median"] > fast["referral_to_infusion_days"]["median"] + 10
    assert slow["response_itt"]["estimate"] < fast["response_itt"]["estimate"]
    assert slow["untreated_days"]["median"] > fast["untreated_days"]["median"]


def test_landmark_survival_reads_a_year_of_follow_up_and_never_extrapolates():
    """Ŝ at 6/12 months (1 month = 365.25/12 d): a follow-up of 365 d gives the 12-month figure
    (Ŝ at the end of follow-up, 6 h short of 365.25 d); a follow-up that ends more than a day
    before the landmark gives None, not the last value carried forward."""
    from livingdrug.clinical.streaming import kaplan_meier_scan
    from livingdrug.comparison import _landmark
    from livingdrug.trials.survival import MONTH_DAYS, weighted_survival_at

    def kaplan_meier(d: np.ndarray, e: np.ndarray):  # one batch, asked for the two landmarks
        return kaplan_meier_scan(lambda: [(d, e.astype(float)[None])], landmarks=[6 * MONTH_DAYS, 12 * MONTH_DAYS])

    days = np.array([50.0, 100.0, 200.0, 300.0, 365.0, 365.0, 365.0, 365.0])
    event = np.array([True, True, False, True, False, False, False, False])
    km = kaplan_meier(days, event)
    at12 = _landmark(km, 12)
    # hand-computed product limit: (7/8)(6/7)(4/5) = 0.6 after the death at day 300
    assert at12["estimate"] == pytest.approx(7 / 8 * 6 / 7 * 4 / 5) and at12["low"] < 0.6 < at12["high"]
    assert _landmark(km, 6)["estimate"] == pytest.approx(7 / 8 * 6 / 7)  # 182.6 d: two deaths before
    short = kaplan_meier(days.clip(max=300.0), event)
    assert 12 * MONTH_DAYS > 300.0 + 1.0 and _landmark(short, 12) is None
    # the weighted estimate (calibrated trials) follows the same rule; equal weights = Kaplan–Meier
    assert weighted_survival_at(days, event, np.ones(8), 12 * MONTH_DAYS)["estimate"] == pytest.approx(0.6)
    assert np.isnan(weighted_survival_at(days.clip(max=300.0), event, np.ones(8), 12 * MONTH_DAYS)["estimate"])


def test_daily_output_after_day_28_scores_like_six_hourly_throughout():
    """The built-in one-year trials sample 6-hourly to day 28, then daily
    (``simulation.output_after``).  The daily points are a subset of the 6-hourly ones and the
    solver's steps do not depend on the output times, so against the same patients on a
    6-hourly grid throughout: every endpoint read before day 28 (grades, response, AUC) is
    the same bits; a first time after day 28 (relapse, MRD negativity, progression) comes at
    most one day later, never earlier; a maximum can only be lower and a minimum only higher;
    death days, from the hazard integrated on the grid, move by under 0.05 d (and so may
    progression- and event-free survival, which end at the earlier of the two)."""
    from livingdrug.comparison import arm_chunk, plan_arm
    from livingdrug.scenarios import load_scenario, scenario_from_dict
    from livingdrug.scenarios.load import thaw
    from livingdrug.trial import trial_design

    coarse_s = load_scenario("cd19-ball")
    assert coarse_s.simulation.output_after == ((28.0, 1.0),)
    raw = thaw(coarse_s.raw)
    del raw["simulation"]["output_after"]
    fine_s = scenario_from_dict(raw, source="cd19-ball (6-hourly)")
    n = 150
    cols = {}
    for name, s in (("coarse", coarse_s), ("fine", fine_s)):
        c = trial_design(s)
        plan = plan_arm(c, 0, n)
        cols[name], _ = arm_chunk(c, plan, np.arange(n), with_dataset=False)
        cols[name + "_points"] = plan.rs.t_out.size
    assert cols["coarse_points"] == 24 + 4 * 28 + 365 - 28 + 1 and cols["fine_points"] == 4 * 371 + 1
    coarse, fine = cols["coarse"], cols["fine"]
    later = {"relapse_day": 0.0, "mrd_negative_day": 0.0, "pfs_day": -0.05, "efs_day": -0.05}
    moved = {*later, "car_cmax", "car_tmax", "tumour_nadir", "death_day", "os_day"}
    for k, v in fine.items():
        if k in moved:
            continue
        if v.dtype == object:
            assert (v == coarse[k]).all(), k
        else:
            np.testing.assert_array_equal(coarse[k], v, err_msg=k)
    for k, lo in later.items():
        f, c = fine[k], coarse[k]
        np.testing.assert_array_equal(np.isnan(c), np.isnan(f), err_msg=k)
        d = (c - f)[~np.isnan(f)]
        assert np.all((d >= lo) & (d < 1.0)), (k, d.min(), d.max())
    assert (fine["relapse_day"] > 28).sum() >= 10  # the test sees late relapses
    assert np.all(coarse["car_cmax"] <= fine["car_cmax"])
    early = fine["car_tmax"] <= 28
    assert early.mean() > 0.9
    np.testing.assert_array_equal(coarse["car_cmax"][early], fine["car_cmax"][early])
    assert np.all(coarse["tumour_nadir"] >= fine["tumour_nadir"])
    for k in ("death_day", "os_day"):
        np.testing.assert_array_equal(np.isnan(coarse[k]), np.isnan(fine[k]), err_msg=k)
        np.testing.assert_allclose(coarse[k], fine[k], atol=0.05, rtol=0, err_msg=k)
