"""The death model of virtual patients (livingdrug.trials.survival) and the OS/PFS columns."""

import math

import numpy as np
import pytest

from livingdrug.clinical.probability import kaplan_meier
from livingdrug.models import MODELS
from livingdrug.trials.survival import (
    DEFAULTS,
    SurvivalInputError,
    SurvivalModel,
    cumulative_hazard,
    death_times,
    default_survival,
    disease_of,
    exposures,
    weighted_survival_at,
)

MONTH = 30.4375  # d


def _paths(n, days=1000.0, step=1.0, burden=1e11):
    t = np.arange(0.0, days + step / 2, step)
    return np.tile(t, (n, 1)), np.full((n, t.size), burden)


def test_constant_burden_gives_exponential_survival():
    """Constant hazard h ⇒ S(t) = exp(−h t) (the exponential model; Cox DR, Oakes D 1984,
    Analysis of Survival Data, ch. 2).  KM of 4000 patients within 5 binomial standard errors."""
    sm = SurvivalModel(h_bg=2e-4, h_d=3e-3, b_ref=2e11, beta=1.0)
    n, burden = 4000, 1e11
    h = 2e-4 + 3e-3 * (burden / 2e11)
    t, b = _paths(n, burden=burden)
    death, end = death_times(t, b, exposures(7, np.arange(n)), sm)
    assert np.all(end == 1000.0)
    km = kaplan_meier(np.where(np.isfinite(death), death, end), np.isfinite(death))
    for tau in (30.0, 100.0, 250.0, 500.0, 900.0):
        s = math.exp(-h * tau)
        se = math.sqrt(s * (1 - s) / n)
        assert abs(float(km.at(tau)) - s) < 5 * se, tau
    assert abs(km.median - math.log(2) / h) < 0.1 * math.log(2) / h


def test_constant_hazard_death_time_is_e_over_h_exactly():
    """With a constant hazard Λ(t) = h t is linear, so the trapezoid rule and the linear
    interpolation of the crossing are exact: T = E/h."""
    sm = SurvivalModel(h_bg=1e-3, h_d=4e-3, b_ref=1e10, beta=2.0)
    e = np.array([0.0, 0.01, 0.5, 1.0, 1.9, 2.5])
    t, b = _paths(e.size, burden=5e9)
    death, _ = death_times(t, b, e, sm)
    h = 1e-3 + 4e-3 * 0.25
    np.testing.assert_allclose(death[:5], e[:5] / h, rtol=1e-12, atol=1e-12)
    assert np.isnan(death[5])  # E/h = 1250 d is after the end of the path (1000 d): alive


def test_zero_hazard_nobody_dies_and_death_is_monotone_in_e():
    t, b = _paths(50)
    never, end = death_times(t, b, exposures(0, np.arange(50)), SurvivalModel(0.0, 0.0, 1e11))
    assert np.all(np.isnan(never)) and np.all(end == 1000.0)
    # a growing burden: the larger E, the later the death (Λ is non-decreasing)
    grow = 1e9 * np.exp(0.02 * t)
    e = np.sort(np.random.default_rng(1).exponential(size=50))
    death, _ = death_times(t, grow, e, DEFAULTS["b-all"])
    assert np.all(np.isfinite(death)) and np.all(np.diff(death) >= 0)


def test_cumulative_hazard_is_the_trapezoid_of_the_hazard_and_stops_at_nan():
    sm = SurvivalModel(1e-4, 1e-2, 1e10, 1.0)
    t = np.array([0.0, 1.0, 3.0, 4.0, np.nan])
    b = np.array([0.0, 1e10, 1e10, 3e10, np.nan])
    lam = cumulative_hazard(t, b, sm)
    h = sm.hazard(b[:4])
    expect = np.concatenate([[0.0], np.cumsum(0.5 * (h[1:] + h[:-1]) * np.diff(t[:4]))])
    np.testing.assert_allclose(lam[:4], expect, rtol=1e-14)
    assert lam[4] == lam[3]  # a NaN point adds nothing
    # a path that ends (NaN) is censored at its last valid time
    death, end = death_times(t[None], b[None], np.array([50.0]), sm)
    assert np.isnan(death[0]) and end[0] == 4.0


def test_exposures_do_not_depend_on_the_other_patients():
    full = exposures(3, np.arange(20))
    np.testing.assert_array_equal(exposures(3, np.array([5, 6, 17])), full[[5, 6, 17]])
    assert not np.array_equal(exposures(4, np.arange(20)), full)
    assert np.all(full > 0)


def test_defaults_give_the_published_median_survival_at_the_reference_burden():
    """At B_ref the hazard is ln 2 / m with m the published median survival of r/r disease
    (Oriol 2010: 4.5 months, B-ALL; Crump 2017 SCHOLAR-1: 6.3 months, LBCL; Kumar 2017:
    13 months, myeloma); h_bg is the one-year non-relapse mortality (Cordas dos Santos 2024:
    6.1 % LBCL, 8.0 % myeloma)."""
    for disease, months, nrm in (("b-all", 4.5, 0.061), ("lbcl", 6.3, 0.061), ("myeloma", 13.0, 0.080)):
        sm = DEFAULTS[disease]
        h = float(sm.hazard(np.array(sm.b_ref)))
        assert math.log(2) / h / MONTH == pytest.approx(months, rel=1e-12)
        assert 1 - math.exp(-sm.h_bg * 365.25) == pytest.approx(nrm, rel=1e-12)


@pytest.mark.parametrize("model,disease", [("car_t", "b-all"), ("car_nk", "b-all"), ("lbcl", "lbcl"),
                                           ("myeloma", "myeloma")])
def test_every_built_in_disease_model_has_a_burden_and_a_default(model, disease):
    net = MODELS[model].network()
    assert net.observable_by_role("tumour_total") is not None
    assert net.observable_by_role("tumour_total").unit == "cell"
    assert disease_of(net) == disease and default_survival(net) is DEFAULTS[disease]


@pytest.mark.parametrize("kwargs,field", [
    ({"h_bg": -1e-4}, "h_bg"), ({"h_d": math.nan}, "h_d"), ({"b_ref": 0.0}, "b_ref"),
    ({"beta": -1.0}, "beta"), ({"beta": 50.0}, "beta"), ({"follow_up": 0.0}, "follow_up"),
    ({"h_d": 5.0}, "h_d"), ({"h_bg": True}, "h_bg"),
])
def test_bad_survival_values_name_the_field(kwargs, field):
    base = {"h_bg": 1e-4, "h_d": 1e-3, "b_ref": 1e11}
    with pytest.raises(SurvivalInputError) as info:
        SurvivalModel(**{**base, **kwargs})
    assert info.value.field == field and f"survival.{field}" in str(info.value)


def test_weighted_survival_with_equal_weights_is_kaplan_meier():
    rng = np.random.default_rng(2)
    d = np.round(rng.exponential(300, 300), 1)
    e = rng.random(300) < 0.7
    km = kaplan_meier(d, e)
    for tau in (50.0, 200.0, 400.0):
        r = weighted_survival_at(d, e, np.full(300, 2.5), tau)
        j = int(np.searchsorted(km.time, tau, side="right")) - 1
        assert r["estimate"] == pytest.approx(km.survival[j], rel=1e-12)
        assert r["low"] == pytest.approx(km.low[j], rel=1e-6) and r["high"] == pytest.approx(km.high[j], rel=1e-6)
        assert r["n_effective"] == pytest.approx(300)


# --- [survival] in scenario files --------------------------------------------------------

def _eliana(**survival):
    import tomllib

    from livingdrug.scenarios import builtin_dir

    raw = tomllib.loads((builtin_dir() / "eliana.toml").read_text())
    raw.pop("survival", None)  # the shipped file asks for a year of follow-up
    if survival:
        raw["survival"] = survival
    return raw


def test_a_survival_table_overrides_the_default_and_round_trips():
    from livingdrug.scenarios import dump_scenario, load_scenario, scenario_from_dict, scenario_hash

    plain = scenario_from_dict(_eliana())
    assert plain.survival is None
    s = scenario_from_dict(_eliana(h_bg="1e-4 1/d", beta=2, follow_up="1 year"))
    sv, base = s.survival, DEFAULTS["b-all"]
    assert sv.h_bg == pytest.approx(1e-4) and sv.beta == 2.0 and sv.follow_up == pytest.approx(365.25, rel=1e-6)
    assert sv.h_d == base.h_d and sv.b_ref == base.b_ref  # the fields not given keep the disease default
    assert scenario_hash(s) != scenario_hash(plain)
    # the hash of a scenario without [survival] is what it was: the table is hashed only when present
    assert scenario_hash(scenario_from_dict(_eliana())) == scenario_hash(plain)
    text = dump_scenario(s)
    assert "[survival]" in text and "[survival]" not in dump_scenario(plain)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.toml"
        p.write_text(text)
        back = load_scenario(p)
    assert back.survival == sv or (back.survival.h_bg == sv.h_bg and back.survival.follow_up == sv.follow_up)
    assert scenario_hash(back) == scenario_hash(s)


@pytest.mark.parametrize("table,field,expected", [
    ({"h_bg": "-1e-4 1/d"}, "survival.h_bg", "1/d"),
    ({"h_bg": 1e-4}, "survival.h_bg", "unit"),
    ({"h_d": "3 cell"}, "survival.h_d", "1/d"),
    ({"b_ref": "0 cell"}, "survival.b_ref", "> 0"),
    ({"beta": "1 d"}, "survival.beta", ""),
    ({"follow_up": "-5 d"}, "survival.follow_up", "> 0"),
    ({"hazard": "1 1/d"}, "survival.hazard", ""),
])
def test_bad_survival_tables_are_clear_errors(table, field, expected):
    from livingdrug.scenarios import ScenarioError, scenario_from_dict

    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(_eliana(**table))
    msg = str(info.value)
    assert field in msg and expected in msg
    assert "\n" not in msg.strip() or "Traceback" not in msg


def test_a_model_without_a_default_needs_the_whole_table():
    from livingdrug.scenarios import ScenarioError, scenario_from_dict

    raw = {"name": "k", "model": "kimmel2021", "simulation": {"days": 30}, "survival": {"h_bg": "1e-4 1/d"}}
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(raw)
    assert "survival.h_d" in str(info.value) and "no default survival model" in str(info.value)
    ok = scenario_from_dict({**raw, "survival": {"h_bg": "1e-4 1/d", "h_d": "1e-3 1/d", "b_ref": "1e9 cell"}})
    assert ok.survival.b_ref == 1e9 and ok.survival.beta == 1.0


# --- OS/PFS columns of a comparison --------------------------------------------------------

@pytest.fixture(scope="module")
def cohort():
    """30 patients of cart-vs-carnk (logistics: waits and drop-outs) with many drop-outs."""
    import tomllib

    from livingdrug.comparison import run_comparison
    from livingdrug.scenarios.comparison import comparison_builtin_dir, comparison_from_dict

    raw = tomllib.loads((comparison_builtin_dir() / "cart-vs-carnk.toml").read_text())
    raw["population"]["patients"] = 60
    return run_comparison(comparison_from_dict(raw, source="c.toml"))


def test_survival_columns_obey_their_definitions(cohort):
    p = cohort.patients
    death, os_day, os_ev = p["death_day"], p["os_day"], p["os_event"]
    assert np.all(np.isfinite(os_day)) and np.all(os_day >= 0)
    assert np.all(np.isfinite(death) == os_ev)
    np.testing.assert_array_equal(os_day[os_ev], death[os_ev])
    assert np.all(death[np.isfinite(death)] >= 0)  # death only after referral
    # death ends EFS: nobody is event-free after death
    assert np.all(os_day >= p["efs_day"] - 1e-9)
    assert np.all(p["efs_event"][os_ev])
    # a drop-out for death dies on its drop-out day
    d = p["outcome"] == "death"
    np.testing.assert_array_equal(death[d], p["dropout_day"][d])
    # PFS: infused only, from infusion, ends no later than death
    inf = p["outcome"] == "infused"
    assert np.all(np.isnan(p["pfs_day"][~inf])) and not p["pfs_event"][~inf].any()
    alive_at_infusion = inf & ~(death < p["referral_to_infusion"])
    assert np.all(np.isfinite(p["pfs_day"][alive_at_infusion]))
    dead_after = alive_at_infusion & np.isfinite(death)
    assert np.all(p["pfs_day"][dead_after] <= death[dead_after] - p["referral_to_infusion"][dead_after] + 1e-9)
    # a B-ALL non-responder has refractory disease: progression at day 28 unless dead before
    nr = alive_at_infusion & ~p["responded"] & (p["status"] == 0)
    assert np.all(p["pfs_event"][nr]) and np.all(p["pfs_day"][nr] <= 28.0 + 1e-9)
    # a responder who relapsed within the scenario's window progressed on that day (or died before)
    rel = alive_at_infusion & p["responded"] & np.isfinite(p["relapse_day"])
    assert rel.any() and np.all(p["pfs_event"][rel]) and np.all(p["pfs_day"][rel] <= p["relapse_day"][rel] + 1e-9)
    # every infused patient is followed for its scenario's follow-up after infusion (the
    # default follow_up: scenario end minus infusion day) unless dead
    from livingdrug.comparison import _t_dose
    from livingdrug.scenarios import resolve

    for arm in cohort.comparison.arms:
        rs = resolve(arm.scenario)
        cens = inf & ~os_ev & (p["arm"] == arm.name)
        assert cens.any(), arm.name
        np.testing.assert_allclose(os_day[cens], p["referral_to_infusion"][cens] + float(rs.t_end) - _t_dose(rs))


def test_the_same_patient_draws_the_same_death_threshold_in_every_arm(cohort):
    """Patient i's E_i is common to the arms: with the same burden course it dies on the same
    day; here the untreated drop-outs (ineligible) share their course and death day."""
    p = cohort.patients
    arms = list(dict.fromkeys(p["arm"]))
    a, b = (p["arm"] == arms[0]), (p["arm"] == arms[1])
    both = (p["outcome"][a] == "ineligible") & (p["outcome"][b] == "ineligible")
    assert both.any()
    # the arms' models (car_t, car_nk) share the B-ALL equations but are different networks, so the
    # untreated course agrees to the solver's tolerance, not bitwise
    np.testing.assert_allclose(p["death_day"][a][both], p["death_day"][b][both], rtol=1e-8)


def test_survival_summaries_match_the_patient_table(cohort):
    for name, s in cohort.summary["arms"].items():
        m = cohort.patients["arm"] == name
        p = {k: v[m] for k, v in cohort.patients.items()}
        km = kaplan_meier(p["os_day"], p["os_event"])
        assert s["os"]["events"] == int(p["os_event"].sum()) == s["deaths"]
        at12 = s["os"]["at_12_months"]
        assert at12["estimate"] == pytest.approx(float(km.at(12 * MONTH)))
        assert at12["low"] <= at12["estimate"] <= at12["high"]
        assert s["os"]["at_6_months"]["estimate"] >= at12["estimate"]
        assert s["pfs"]["n"] == int(np.isfinite(p["pfs_day"]).sum())
    assert {"os", "pfs"} <= set(cohort.summary["definitions"])


def test_survival_columns_do_not_depend_on_the_chunk():
    from livingdrug.comparison import arm_chunk, plan_arm
    from livingdrug.scenarios.comparison import load_comparison

    c = load_comparison("cart-vs-carnk")
    plan = plan_arm(c, 0, 40)
    whole, _ = arm_chunk(c, plan, np.arange(40), with_dataset=False)
    some = np.array([3, 11, 12, 29, 38])
    part, _ = arm_chunk(c, plan, some, with_dataset=False)
    assert (whole["outcome"] != "infused").any()
    for col in ("death_day", "os_day", "os_event", "pfs_day", "pfs_event", "efs_day", "efs_event"):
        np.testing.assert_array_equal(part[col], whole[col][some])


def test_randomised_designs_test_overall_survival_by_log_rank():
    """OS and PFS log-rank p-values of a randomised design equal scipy.stats.logrank on the
    arms' columns (Peto R, Peto J 1972 J R Stat Soc A 135:185)."""
    from scipy.stats import CensoredData, logrank

    from livingdrug.comparison import run_comparison
    from livingdrug.scenarios.comparison import comparison_from_dict

    raw = {"name": "rand", "population": {"patients": 40, "seed": 2,
                                          "parameters": {"weight": {"median": "70 kg", "cv": 0.2}}},
           "design": {"allocation": "randomised", "ratio": [1, 1]},
           "arms": [{"name": "CAR-T", "scenario": "cd19-ball"}, {"name": "CAR-NK", "scenario": "cd19-carnk"}]}
    r = run_comparison(comparison_from_dict(raw, source="rand.toml"))
    p = r.patients
    t, nk = (p["arm"] == "CAR-T"), (p["arm"] == "CAR-NK")
    d = r.summary["randomised"][0]
    for key in ("os", "pfs"):
        x, y = p[f"{key}_day"], p[f"{key}_event"]
        a = CensoredData(uncensored=x[nk & y], right=x[nk & ~y & np.isfinite(x)])
        b = CensoredData(uncensored=x[t & y], right=x[t & ~y & np.isfinite(x)])
        assert d[f"{key}_logrank_p"] == pytest.approx(float(logrank(a, b).pvalue))


def test_reports_show_overall_and_progression_free_survival(cohort, tmp_path):
    from livingdrug.report.comparison import COLUMN_UNITS, comparison_rows, save_comparison_run

    for col in ("death_day", "os_day", "os_event", "pfs_day", "pfs_event"):
        assert col in COLUMN_UNITS and col in cohort.patients
    out = save_comparison_run(cohort, tmp_path / "run")
    assert (out / "os_from_referral.png").stat().st_size > 0 and (out / "pfs_from_infusion.png").stat().st_size > 0
    _, rows = comparison_rows(cohort.summary)
    labels = [label for label, _ in rows]
    assert "overall survival at 6 / 12 months (95 % CI)" in labels
    html = (out / "report.html").read_text()
    s = cohort.summary["arms"][next(iter(cohort.summary["arms"]))]["os"]["at_12_months"]
    assert f"{100 * s['estimate']:.1f} % ({100 * s['low']:.1f}–{100 * s['high']:.1f})" in html
