"""Dose-escalation designs: 3+3 (Storer 1989), BOIN (Liu & Yuan 2015), DLT from ASTCT grades.

Statistical checks use fixed seeds and tolerances of 4.5 binomial standard errors."""

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binom

from livingdrug.trials.designs import (
    Cohort,
    DesignInputError,
    boin,
    boin_boundaries,
    boin_decision_table,
    dlt_from_grades,
    isotonic_dlt_estimates,
    operating_characteristics,
    select_mtd_isotonic,
    three_plus_three,
)

Z = 4.5
SCENARIO = (0.05, 0.12, 0.3, 0.5, 0.6)  # true DLT rates; level 2 is the MTD for target 0.3


# --- DLT from grades ---------------------------------------------------------------------------

def test_dlt_from_grades_threshold_and_not_evaluable():
    crs = np.array([0, 2, 3, 4, np.nan, 1, np.nan])
    icans = np.array([0, 2, 0, 1, np.nan, 3, 4])
    assert dlt_from_grades(crs, icans).tolist() == [False, False, True, True, False, True, True]
    assert dlt_from_grades(crs, icans, crs_dlt_grade=2, icans_dlt_grade=4).tolist() == [
        False, True, True, True, False, False, True]
    assert dlt_from_grades(3, np.nan).tolist() is True


@pytest.mark.parametrize("kw,field", [({"crs_max_grade": [7]}, "crs_max_grade"),
                                      ({"icans_max_grade": [-1]}, "icans_max_grade"),
                                      ({"crs_dlt_grade": 0}, "crs_dlt_grade"),
                                      ({"icans_dlt_grade": 6}, "icans_dlt_grade")])
def test_dlt_from_grades_bad_input(kw, field):
    args = {"crs_max_grade": [1], "icans_max_grade": [1]} | kw
    with pytest.raises(DesignInputError, match=field):
        dlt_from_grades(args.pop("crs_max_grade"), args.pop("icans_max_grade"), **args)


# --- 3+3 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_three_plus_three_escalation_probability_closed_form(p):
    """P(escalate from a level) = (1−p)³ + 3p(1−p)²·(1−p)³ (0/3, or 1/3 then 0/3; Storer 1989)."""
    exact = (1 - p) ** 3 + 3 * p * (1 - p) ** 2 * (1 - p) ** 3
    n, rng = 20_000, np.random.default_rng(2024)
    esc = sum(any(c.level == 1 for c in three_plus_three((p, 0.5), rng).cohorts) for _ in range(n))
    assert abs(esc / n - exact) < Z * math.sqrt(exact * (1 - exact) / n)


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_three_plus_three_single_level_selected_iff_at_most_one_of_six(p):
    """One level: 0/3 is confirmed with 3 more, 1/3 expanded, so P(MTD = 0) = P(Bin(6, p) ≤ 1)."""
    exact = binom.cdf(1, 6, p)
    n, rng = 20_000, np.random.default_rng(7)
    hits = sum(three_plus_three([p], rng).mtd == 0 for _ in range(n))
    assert abs(hits / n - exact) < Z * math.sqrt(exact * (1 - exact) / n)


def test_three_plus_three_scripted_dose_below_rule():
    # level 0: 0/3 → 1; level 1: 0/3 → 2; level 2: 2/3 → closed; back to 1 (3 patients) → 3 more, 1/6 → MTD 1
    script = [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1]
    res = three_plus_three(lambda level, i: bool(script[i]), n_levels=4)
    assert [c.level for c in res.cohorts] == [0, 1, 2, 1]
    assert res.mtd == 1 and res.n_patients.tolist() == [3, 6, 3, 0] and res.n_dlt.tolist() == [0, 1, 2, 0]
    assert res.eliminated.tolist() == [False, False, True, True]


def test_three_plus_three_start_above_lowest_dose_below_untreated():
    # start at level 2: 2/3 → closed; level 1 untreated: 0/3 then 3 more (0/6 total) → MTD 1
    script = [1, 1, 0] + [0, 0, 0] + [0, 0, 0]
    res = three_plus_three(lambda level, i: bool(script[i]), n_levels=3, start=2)
    assert [c.level for c in res.cohorts] == [2, 1, 1] and res.mtd == 1
    assert res.n_patients.tolist() == [0, 6, 3]


def test_three_plus_three_extremes():
    safe = three_plus_three(lambda level, i: False, n_levels=3)
    assert safe.mtd == 2 and safe.n_patients.tolist() == [3, 3, 6]
    toxic = three_plus_three(lambda level, i: True, n_levels=3)
    assert toxic.mtd is None and toxic.total_patients == 3 and "lowest" in toxic.stop_reason


def test_three_plus_three_max_patients():
    res = three_plus_three(lambda level, i: False, n_levels=5, max_patients=7)
    assert res.total_patients == 6 and res.mtd is None and "max_patients" in res.stop_reason


# --- BOIN ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("target,lam_e,lam_d", [(0.3, 0.236, 0.358), (0.25, 0.197, 0.298)])
def test_boin_boundaries_published(target, lam_e, lam_d):
    """Liu S, Yuan Y 2015 J R Stat Soc C 64:507 (φ1 = 0.6φ, φ2 = 1.4φ).  The published
    3-decimal values are not all rounded the same way (0.3585 appears as 0.358, 0.1968 as
    0.197), so each must agree to within one unit of the third decimal."""
    e, d = boin_boundaries(target)
    assert abs(e - lam_e) < 1e-3 and abs(d - lam_d) < 1e-3
    assert 0 < e < target < d < 1


def test_boin_decision_table_target_0_3():
    """The target-0.3 decision table of the BOIN R package (get.boundary; Liu & Yuan 2015),
    n = 3 … 12; elimination cross-checked by the identity P(p > φ | Beta(1+y, 1+n−y)) =
    P(Bin(n+1, φ) ≤ y)."""
    t = boin_decision_table(0.3, 12)
    sl = slice(2, 12)
    assert t["escalate"][sl].tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert t["deescalate"][sl].tolist() == [2, 2, 2, 3, 3, 3, 4, 4, 4, 5]
    assert t["eliminate"][sl].tolist() == [3, 3, 4, 4, 5, 5, 5, 6, 6, 7]
    for n, y in zip(t["n"][sl], t["eliminate"][sl], strict=True):
        assert binom.cdf(y, n + 1, 0.3) > 0.95 >= binom.cdf(y - 1, n + 1, 0.3)


def test_boin_scripted_trial_follows_boundaries_and_eliminates():
    # cohort 1 at level 0: 0/3 → escalate; level 1: 1/3 → stay (0.33 in (λe, λd)); 1/3 → 2/6 stay;
    # 3/3 → 5/9 ≥ eliminate threshold (5 of 9) → levels ≥ 1 eliminated, back to 0; then 0/3 → stay at 0
    script = [0, 0, 0] + [1, 0, 0] + [1, 0, 0] + [1, 1, 1] + [0, 0, 0]
    res = boin(lambda level, i: bool(script[i]), n_levels=3, n_cohorts=5)
    assert [c.level for c in res.cohorts] == [0, 1, 1, 1, 0]
    assert res.eliminated.tolist() == [False, True, True]
    assert res.mtd == 0 and res.n_patients.tolist() == [6, 9, 0]


def test_boin_extremes():
    toxic = boin(lambda level, i: True, n_levels=4)
    assert toxic.mtd is None and toxic.total_patients == 3 and toxic.eliminated.all()
    safe = boin(lambda level, i: False, n_levels=4, n_cohorts=6)
    assert [c.level for c in safe.cohorts] == [0, 1, 2, 3, 3, 3] and safe.mtd == 3
    stop = boin(lambda level, i: False, n_levels=1, n_cohorts=10, n_earlystop=9)
    assert stop.total_patients == 9 and "n_earlystop" in stop.stop_reason


@pytest.mark.parametrize("design", [boin, three_plus_three])
def test_callable_equals_probability_form(design):
    """A callable drawing Bernoulli(p[level]) from the same generator sequence gives the same trial."""
    for seed in range(20):
        a = design(SCENARIO, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        calls = []

        def dlt(level, i, rng=rng, calls=calls):
            calls.append((level, i))
            return bool(rng.random() < SCENARIO[level])
        b = design(dlt, n_levels=len(SCENARIO))
        assert a.cohorts == b.cohorts and a.mtd == b.mtd
        assert [i for _, i in calls] == list(range(b.total_patients))
        assert [lv for lv, _ in calls] == [c.level for c in b.cohorts for _ in range(c.n)]


# --- isotonic regression and MTD selection ----------------------------------------------------------

def _brute_isotonic(y, w):
    """Min weighted SSE over all partitions into consecutive blocks with non-decreasing block means."""
    k, best = len(y), (math.inf, None)
    for cuts in itertools.product([0, 1], repeat=k - 1):
        blocks, start = [], 0
        for j, c in enumerate(cuts, start=1):
            if c:
                blocks.append((start, j))
                start = j
        blocks.append((start, k))
        means = [np.average(y[a:b], weights=w[a:b]) for a, b in blocks]
        if any(m2 < m1 - 1e-15 for m1, m2 in zip(means, means[1:], strict=False)):
            continue
        fit = np.concatenate([np.full(b - a, m) for (a, b), m in zip(blocks, means, strict=True)])
        sse = float(np.sum(w * (y - fit) ** 2))
        if sse < best[0]:
            best = (sse, fit)
    return best[1]


def test_isotonic_matches_brute_force_and_min_max_formula():
    rng = np.random.default_rng(11)
    for _ in range(200):
        k = int(rng.integers(1, 7))
        n = rng.integers(1, 13, size=k)
        y = rng.binomial(n, rng.uniform(0, 1, size=k))
        est = isotonic_dlt_estimates(y, n)
        np.testing.assert_allclose(est, _brute_isotonic(y / n, n.astype(float)), atol=1e-12)
        # Barlow 1972 max–min formula: p̃_j = max_{s≤j} min_{t≥j} Σy[s..t]/Σn[s..t]
        mm = [max(min(y[s:t + 1].sum() / n[s:t + 1].sum() for t in range(j, k)) for s in range(j + 1))
              for j in range(k)]
        np.testing.assert_allclose(est, mm, atol=1e-12)


def test_select_mtd_ties_and_elimination():
    # pooled below target (1/6 at both) → the higher tied level
    assert select_mtd_isotonic([1, 0], [3, 3], 0.3)[0] == 1
    # pooled above target (1/2 at both) → the lower tied level
    assert select_mtd_isotonic([2, 1], [3, 3], 0.3)[0] == 0
    # untreated levels are skipped, eliminated ones excluded; lowest eliminated → None
    mtd, est = select_mtd_isotonic([0, 1, 0, 3], [3, 6, 0, 3], 0.3, eliminated=[False, False, False, True])
    assert mtd == 1 and np.isnan(est[[2, 3]]).all()
    assert select_mtd_isotonic([3, 0], [3, 0], 0.3, eliminated=[True, True])[0] is None


# --- operating characteristics -------------------------------------------------------------------

def test_boin_operating_characteristics_beat_three_plus_three():
    """Liu & Yuan 2015: BOIN selects the true MTD more often than 3+3.  Scenario: true DLT
    (0.05, 0.12, 0.30, 0.50, 0.60), target 0.3, 10 cohorts of 3."""
    n = 2000
    b = operating_characteristics("boin", SCENARIO, n, seed=5, target=0.3, cohort_size=3, n_cohorts=10)
    t = operating_characteristics("3+3", SCENARIO, n, seed=5)
    for oc in (b, t):
        assert math.isclose(oc.p_select.sum() + oc.p_no_mtd, 1.0)
        assert math.isclose(oc.mean_patients.sum(), oc.mean_total_patients)
        assert np.all(oc.mean_dlt <= oc.mean_patients)
    pb, pt = b.p_select[2], t.p_select[2]
    assert pb - Z * b.se(pb) > 0.5
    assert pb > max(np.delete(b.p_select, 2)) + Z * b.se(pb)
    assert pb - pt > Z * math.hypot(b.se(pb), t.se(pt))
    # 10 cohorts of 3 unless the lowest dose is eliminated (rare here)
    assert b.mean_total_patients <= 30 and b.mean_total_patients > 29


def test_operating_characteristics_reproducible():
    a = operating_characteristics(boin, SCENARIO, 50, seed=3)
    b = operating_characteristics("boin", SCENARIO, 50, seed=3)
    np.testing.assert_array_equal(a.p_select, b.p_select)
    assert a.as_dict()["design"] == "boin"


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("call,field", [
    (lambda: boin([0.1, 1.2], 1), r"p_dlt\[1\]"),
    (lambda: three_plus_three([-0.1], 1), r"p_dlt\[0\]"),
    (lambda: boin([0.1], 1, target=1.0), "target"),
    (lambda: boin([0.1], 1, target=0.0), "target"),
    (lambda: boin([0.1], 1, cohort_size=0), "cohort_size"),
    (lambda: boin([0.1], 1, n_cohorts=0), "n_cohorts"),
    (lambda: boin([0.1], 1, phi1=0.4), "phi1"),
    (lambda: three_plus_three([0.1, 0.2], 1, start=2), "start"),
    (lambda: three_plus_three(lambda level, i: False), "n_levels"),
    (lambda: boin(lambda level, i: 0.5, n_levels=2), r"dlt\(0, 0\)"),
    (lambda: boin([0.1]), "rng"),
    (lambda: boin([], 1), "p_dlt"),
    (lambda: operating_characteristics("crm", [0.1], 10, 1), "design"),
    (lambda: operating_characteristics("boin", [0.1], 0, 1), "n_trials"),
])
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ValueError, match=field) as e:
        call()
    assert "expected" in str(e.value)


def test_cohort_is_a_value():
    assert Cohort(1, 3, 0) == Cohort(1, 3, 0)
