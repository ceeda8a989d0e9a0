"""Treatment-programme simulation (livingdrug.logistics.programme) and logistics scenarios.

Published figures (shared/reference/PUBLISHED.md section 8): median vein-to-vein time in large
B-cell lymphoma, meta-analysis of 40 studies (2023): axi-cel 30.4 d, liso-cel 35.9 d,
tisa-cel 48.4 d; pivotal trials ZUMA-1 24 d, JULIET 54 d; myeloma 44 d (CARTITUDE-4) and 49 d
(KarMMa-3); 85–89 % of randomised patients infused.
"""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from livingdrug.logistics import (
    STEPS,
    LogisticsInputError,
    Process,
    Programme,
    response_probability,
    simulate_programme,
    success_probability,
)
from livingdrug.logistics.programme import _drop_time
from livingdrug.report.logistics import write_patients
from livingdrug.scenarios import ScenarioError
from livingdrug.scenarios.logistics import list_logistics, load_logistics, logistics_from_dict


def _median_se(x: np.ndarray) -> float:
    """Asymptotic standard error of a sample median, 1.2533 sigma / sqrt(n), with sigma
    estimated robustly from the IQR (sigma = IQR / 1.349)."""
    x = x[np.isfinite(x)]
    q1, q3 = np.percentile(x, [25, 75])
    return 1.2533 * (q3 - q1) / 1.349 / math.sqrt(x.size)


@pytest.mark.parametrize(
    ("name", "published_median", "class_range"),
    [
        # axi-cel-like: 30.4 d; fast products range from 24 d (ZUMA-1) to 35.9 d (liso-cel)
        ("autologous-centre", 30.4, (24.0, 35.9)),
        # tisa-cel-like: 48.4 d; slow products range from 44 d (CARTITUDE-4) to 54 d (JULIET)
        ("autologous-centre-slow", 48.4, (44.0, 54.0)),
    ],
)
def test_vein_to_vein_median_lands_on_the_published_figure(name, published_median, class_range):
    sc = load_logistics(name)
    res = simulate_programme(sc.programme, sc.seed)
    v2v = res.patients["vein_to_vein"]
    med = res.summary["vein_to_vein_days"]["median"]
    se = _median_se(v2v)
    assert res.summary["vein_to_vein_days"]["n"] > 200
    # the simulated median is the published one up to 4 standard errors of its sampling error
    assert abs(med - published_median) < 4 * se, (med, se)
    assert class_range[0] - 4 * se <= med <= class_range[1] + 4 * se
    # the share of referred patients infused is in the range of the pivotal trials (85-89 %
    # of randomised patients infused in KarMMa-3/CARTITUDE-4), widened by 4 binomial SEs
    share, n = res.summary["infused_share"], res.summary["referred"]
    se_b = math.sqrt(share * (1 - share) / n)
    assert 0.70 - 4 * se_b < share < 0.95 + 4 * se_b


def test_itt_outcome_worsens_as_vein_to_vein_time_grows():
    base = load_logistics("autologous-centre").programme
    itt, share, v2v = [], [], []
    for release in (5.0, 15.0, 30.0):
        proc = replace(base.process, step_days={**base.process.step_days, "release": release})
        r = simulate_programme(replace(base, process=proc), seed=3)  # common random numbers
        itt.append(r.summary["itt_response"])
        share.append(r.summary["infused_share"])
        v2v.append(r.summary["vein_to_vein_days"]["median"])
    assert v2v[0] < v2v[1] < v2v[2]
    assert itt[0] > itt[1] > itt[2]
    assert share[0] >= share[1] >= share[2] and share[0] > share[2]


def test_off_the_shelf_is_sooner_and_treats_more_of_the_referred():
    auto = load_logistics("autologous-centre")
    ots = load_logistics("off-the-shelf-centre")
    ra = simulate_programme(auto.programme, 5)
    ro = simulate_programme(ots.programme, 5)
    a, o = ra.patients["referral_to_infusion"], ro.patients["referral_to_infusion"]
    ma, mo = np.nanmedian(a), np.nanmedian(o)
    assert mo + 4 * (_median_se(a) + _median_se(o)) < ma
    # common random numbers: patient i has the same referral time, eligibility and drop-out
    # time in both programmes, so compare paired outcomes (exact sign test on discordant pairs)
    assert ra.summary["referred"] == ro.summary["referred"]
    ia, io = ra.patients["outcome"] == "infused", ro.patients["outcome"] == "infused"
    only_ots, only_auto = int(np.sum(io & ~ia)), int(np.sum(ia & ~io))
    assert only_ots > only_auto
    assert stats.binomtest(only_ots, only_ots + only_auto, 0.5, alternative="greater").pvalue < 1e-3
    assert ro.summary["itt_response"] > ra.summary["itt_response"]
    assert np.all(np.isnan(ro.patients["vein_to_vein"]))  # no apheresis off the shelf


def test_drop_out_times_follow_the_gompertz_law():
    """h(t) = h0 exp(b t): the drawn times pass a KS test against scipy's Gompertz law."""
    rng = np.random.default_rng(42)
    h0, b = 0.003, 0.025
    t = np.array([_drop_time(rng, h0, b) for _ in range(5000)])
    ks = stats.kstest(t, stats.gompertz(c=h0 / b, scale=1 / b).cdf)
    assert ks.pvalue > 1e-3
    e = np.array([_drop_time(rng, h0, 0.0) for _ in range(5000)])  # b = 0: exponential
    assert stats.kstest(e, stats.expon(scale=1 / h0).cdf).pvalue > 1e-3


def test_response_probability_closed_form():
    p = Programme(p_response0=0.8, burden_doubling_days=20.0, response_burden_exponent=0.5)
    assert response_probability(p, 0.0) == pytest.approx(0.8)
    w = np.array([0.0, 10.0, 20.0, 40.0, 80.0])
    pr = response_probability(p, w)
    odds = pr / (1 - pr)
    np.testing.assert_allclose(odds, 4.0 * 2.0 ** (-0.5 * w / 20.0), rtol=1e-12)
    assert np.all(np.diff(pr) < 0)
    assert response_probability(p, 40.0, True) == pytest.approx(response_probability(p, 20.0))


def test_one_suite_is_busier_and_slower_than_six():
    base = load_logistics("autologous-centre").programme
    r6 = simulate_programme(replace(base, months=6), 1)
    r1 = simulate_programme(replace(base, months=6, suites=1), 1)
    assert 0 < r6.summary["suite_utilisation"] < r1.summary["suite_utilisation"] <= 1.0
    assert r1.summary["vein_to_vein_days"]["median"] > r6.summary["vein_to_vein_days"]["median"]


def test_inventory_never_goes_negative_and_runs_to_the_end():
    sc = load_logistics("off-the-shelf-centre")
    r = simulate_programme(sc.programme, 2)
    t, level = r.stock
    assert np.all(level >= 0) and t[-1] == pytest.approx(sc.programme.horizon_days + sc.programme.follow_days)
    assert r.summary["outcomes"]["infused"] <= r.summary["batches_ordered"] * 30 + 60


def test_same_seed_same_patients_file(tmp_path: Path):
    sc = load_logistics("autologous-centre")
    prog = replace(sc.programme, months=6)
    a = write_patients(simulate_programme(prog, 9).patients, tmp_path / "a.parquet")
    b = write_patients(simulate_programme(prog, 9).patients, tmp_path / "b.parquet")
    c = write_patients(simulate_programme(prog, 10).patients, tmp_path / "c.parquet")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_builtins_are_listed_and_valid():
    names = {n for n, _ in list_logistics()}
    assert {"autologous-centre", "autologous-centre-slow", "off-the-shelf-centre"} <= names
    for n in names:
        assert load_logistics(n).name == n


def _raw(**changes):
    raw = {"name": "t", "kind": "autologous", "programme": {"months": 6, "referrals_per_week": 2},
           "capacity": {"apheresis_slots_per_week": 3, "suites": 2}}
    for k, v in changes.items():
        sec, key = k.split("__")
        raw.setdefault(sec, {})[key] = v
    return raw


@pytest.mark.parametrize(
    ("raw", "field", "value_text"),
    [
        (_raw(capacity__suites=0), "capacity.suites", "0"),
        (_raw(capacity__apheresis_slots_per_week=0), "capacity.apheresis_slots_per_week", "0"),
        (_raw(programme__referrals_per_week=-1), "programme.referrals_per_week", "-1"),
        (_raw(waiting__hazard0="-0.01 1/d"), "waiting.hazard0", "-0.01"),
        (_raw(programme__lymphodepletion_lead="20 d", programme__infusion_window="14 d"),
         "programme.lymphodepletion_lead", "20"),
        (_raw(process__culture="2 kg"), "process.culture", "2 kg"),
        (_raw(process__p_fail=1.5), "process.p_fail.apheresis", "1.5"),
        (_raw(capacity__suits=2), "capacity.suits", "2"),
        ({"kind": "off-the-shelf", "inventory": {"lead": "90 d", "shelf_life": "60 d"}},
         "inventory.shelf_life", "60"),
        ({"kind": "off-the-shelf"}, "inventory", ""),
        ({"kind": "allogenic"}, "kind", "allogenic"),
        (_raw(capacity__max_manufacturing_attempts=0), "capacity.max_manufacturing_attempts", "= 0"),
        (_raw(capacity__max_manufacturing_attempts=-1), "capacity.max_manufacturing_attempts", "-1"),
        (_raw(capacity__max_manufacturing_attempts=1.5), "capacity.max_manufacturing_attempts", "1.5"),
        (_raw(capacity__max_manufacturing_attempts="x"), "capacity.max_manufacturing_attempts", '"x"'),
        (_raw(capacity__max_manufacturing_attempts=float("inf")), "capacity.max_manufacturing_attempts", "inf"),
        (_raw(capacity__remanufacture_from="fresh"), "capacity.remanufacture_from", "fresh"),
    ],
)
def test_bad_logistics_inputs_give_one_clear_error(raw, field, value_text):
    with pytest.raises(ScenarioError) as e:
        logistics_from_dict(raw, source="centre.toml")
    msg = str(e.value)
    assert msg.startswith("centre.toml") and field in msg and value_text in msg and "expected" in msg
    assert "\n" not in msg


# --------------------------------------------------------------------------------------------
# A second manufacturing attempt after a failed product (programme module docstring).


def _no_dropout(**kw):
    """An autologous programme where only manufacturing decides the outcome: nobody is
    ineligible or drops out (h0 = 0), capacity far above demand (about 26 collections a week
    against 60 slots; about 37 products in suites against 80), a year of follow-up so nobody
    is still waiting, min_dose 1 cell so only the out-of-specification draws fail, and a
    per-step failure probability 0.05: q = 1 - 0.95^7 = 0.302 per attempt."""
    proc = Process(p_fail={s: 0.05 for s in STEPS}, min_dose=1.0)
    return Programme(months=12, referrals_per_week=20, p_ineligible=0.0, hazard0_per_day=0.0,
                     apheresis_slots_per_week=60, suites=80, follow_days=365.0, process=proc, **kw)


def _binomial_ok(k: int, n: int, p: float, z: float = 4.5) -> bool:
    return abs(k / n - p) < z * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("source", ["apheresis", "retained"])
def test_two_attempts_fail_with_probability_q_squared(source):
    """Independent attempts: P(every attempt fails) = q^2 with a new apheresis; with retained
    cells the second attempt has no collection step, q_r = 1 - (1 - p)^6, except after a
    failed collection (probability p), which needs a new one: P = p q + (q - p) q_r."""
    prog = _no_dropout(max_attempts=2, remanufacture_from=source)
    r2 = simulate_programme(prog, 11)
    r1 = simulate_programme(replace(prog, max_attempts=1), 11)
    p = 0.05
    q = 1 - success_probability(prog.process)
    q_r = 1 - (1 - p) ** 6
    expected = q * q if source == "apheresis" else p * q + (q - p) * q_r
    n = r2.summary["referred"]
    o2, o1 = r2.summary["outcomes"], r1.summary["outcomes"]
    assert n > 900 and o2["waiting"] == o1["waiting"] == 0
    assert o2["progression"] + o2["death"] + o2["ineligible"] == 0
    k2, k1 = o2["manufacturing failure"], o1["manufacturing failure"]
    assert _binomial_ok(k2, n, expected), (k2 / n, expected)
    assert _binomial_ok(k1, n, q), (k1 / n, q)  # one attempt: q
    assert k2 < k1
    # bookkeeping: failures at attempt 1 are the single-attempt failures (the first product
    # does not depend on max_attempts), every one of them got a second attempt, and the
    # failures found at the last attempt are the patients left without a product
    s = r2.summary
    assert s["failures_by_attempt"][0] == k1 == s["second_attempts"] == s["attempts_by_number"][1]
    assert s["failures_by_attempt"][1] == k2 == s["manufacturing_failures"]
    assert s["attempts_by_number"][0] == n
    # common random numbers: exactly the patients who failed with one attempt had a second
    a2 = r2.patients["attempts"]
    failed1 = r1.patients["outcome"] == "manufacturing failure"
    np.testing.assert_array_equal(a2 == 2, failed1)
    np.testing.assert_array_equal(r1.patients["attempts"], np.ones(n))
    assert set(r2.patients["outcome"][a2 == 2]) <= {"infused", "manufacturing failure"}
    # patients who needed one attempt are untouched by the option (capacity never binds here)
    one = a2 == 1
    for col in ("apheresis", "suite_start", "release", "infusion", "end", "dose", "p_response"):
        np.testing.assert_array_equal(r2.patients[col][one], r1.patients[col][one], err_msg=col)
    # a second attempt starts when the first failure is found (the single-attempt run's end):
    # at once into a suite from retained cells, after a new collection otherwise
    again = a2 == 2
    t_found = r1.patients["end"][again]
    start2 = r2.patients["suite_start"][again]
    new_collection = r1.patients["failed_step"][again] == "apheresis"
    if source == "retained":
        np.testing.assert_allclose(start2[~new_collection], t_found[~new_collection], rtol=0, atol=1e-9)
        assert np.all(start2[new_collection] > t_found[new_collection])
    else:
        assert np.all(start2 > t_found)
    inf2 = again & (r2.patients["outcome"] == "infused")
    assert inf2.sum() > 100 and np.all(r2.patients["infusion"][inf2] > r1.patients["end"][inf2])


def test_second_attempt_delays_infusion():
    """With failures frequent (per step 0.05) in the axi-cel-like centre (with drop-out and
    finite capacity), infused patients who needed two attempts waited longer from referral
    than those who needed one (Welch difference of means, > 4.5 standard errors), and
    vein-to-vein time (first apheresis to infusion) grows with them."""
    base = load_logistics("autologous-centre").programme
    proc = replace(base.process, p_fail={s: 0.05 for s in STEPS})
    r = simulate_programme(replace(base, process=proc, max_attempts=2), 4)
    pt = r.patients
    infused = pt["outcome"] == "infused"
    w1 = pt["referral_to_infusion"][infused & (pt["attempts"] == 1)]
    w2 = pt["referral_to_infusion"][infused & (pt["attempts"] == 2)]
    v1 = pt["vein_to_vein"][infused & (pt["attempts"] == 1)]
    v2 = pt["vein_to_vein"][infused & (pt["attempts"] == 2)]
    assert w2.size > 30 and w1.size > 100
    se = math.sqrt(w1.var(ddof=1) / w1.size + w2.var(ddof=1) / w2.size)
    assert w2.mean() - w1.mean() > 4.5 * se, (w1.mean(), w2.mean(), se)
    se_v = math.sqrt(v1.var(ddof=1) / v1.size + v2.var(ddof=1) / v2.size)
    assert v2.mean() - v1.mean() > 4.5 * se_v
    # a second attempt is not free: it shows up as lost patients and worse ITT than
    # the same programme with no manufacturing failures at all (common random numbers)
    r0 = simulate_programme(replace(base, process=replace(proc, p_fail={s: 0.0 for s in STEPS})), 4)
    assert r0.summary["second_attempts"] == 0
    assert r.summary["itt_response"] < r0.summary["itt_response"]


def test_max_attempts_is_inert_when_nothing_fails():
    """With no failures the option never triggers: the extra products drawn up front for
    later attempts come after every other draw, so the programme is identical for
    max_attempts = 1, 2, 3 and either source (the first product does not move)."""
    base = load_logistics("autologous-centre").programme
    proc = replace(base.process, p_fail={s: 0.0 for s in STEPS}, min_dose=1.0)
    prog = replace(base, months=6, process=proc, max_attempts=1)
    ref = simulate_programme(prog, 8)
    assert ref.summary["referred"] > 50
    for k, src in ((2, "apheresis"), (3, "retained")):
        r = simulate_programme(replace(prog, max_attempts=k, remanufacture_from=src), 8)
        for col, a in ref.patients.items():
            if a.dtype == object:
                assert list(a) == list(r.patients[col]), col
            else:
                np.testing.assert_array_equal(a, r.patients[col], err_msg=col)
        assert r.summary["outcomes"] == ref.summary["outcomes"]
        assert r.summary["failures_by_attempt"] == [0] * k


@pytest.mark.parametrize("value", [0, -1, 1.5, "x", 11, True])
def test_programme_rejects_a_bad_number_of_attempts(value):
    with pytest.raises(LogisticsInputError) as e:
        Programme(max_attempts=value)
    assert e.value.field == "programme.max_attempts" and "whole number" in str(e.value)
    with pytest.raises(LogisticsInputError, match="remanufacture_from"):
        Programme(remanufacture_from="fresh")
