"""ASTCT CRS and ICANS grading, every boundary of the consensus tables.

Reference: Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625 (Tables 4 and 6, and
their footnotes), as summarised in shared/reference/PUBLISHED.md section 6.
"""

import math

import numpy as np
import pytest

from livingdrug.clinical.grading import (
    GradeCourse,
    crs_domains,
    crs_grade,
    grade_course,
    grade_signs,
    icans_domains,
    icans_grade,
)

nan = math.nan

# (case, temperature °C, SBP mmHg, vasopressors (vasopressin excluded), o2_level,
#  anticytokine_given, expected ASTCT CRS grade)
CRS_TABLE = [
    # fever boundary: 38.0 °C is fever, 37.9 °C is not
    ("afebrile, untreated, all normal", 37.9, 120, 0, 0, 0, 0),
    ("fever alone is grade 1", 38.0, 120, 0, 0, 0, 1),
    ("high fever alone is grade 1", 40.5, 120, 0, 0, 0, 1),
    # no fever, untreated: no CRS whatever the other signs
    ("no fever untreated, hypotension: no CRS", 37.9, 80, 0, 0, 0, 0),
    ("no fever untreated, 2 pressors + ventilation: no CRS", 37.9, 80, 2, 3, 0, 0),
    # hypotension boundary: SBP 89.9 is hypotension, 90 is not (adults)
    ("SBP 89.9 without pressors -> 2", 38.5, 89.9, 0, 0, 0, 2),
    ("SBP 90 is not hypotension -> 1", 38.5, 90.0, 0, 0, 0, 1),
    # vasopressors 0/1/2 (vasopressin excluded from the count)
    ("one vasopressor -> 3", 38.5, 85, 1, 0, 0, 3),
    ("one vasopressor, SBP restored -> still 3", 38.5, 110, 1, 0, 0, 3),
    ("two vasopressors -> 4", 38.5, 85, 2, 0, 0, 4),
    ("three vasopressors -> 4", 38.5, 85, 3, 0, 0, 4),
    # hypoxia: each oxygen level
    ("low-flow cannula / blow-by -> 2", 38.5, 120, 0, 1, 0, 2),
    ("high-flow / facemask / NRB / Venturi -> 3", 38.5, 120, 0, 2, 0, 3),
    ("CPAP / BiPAP / ventilation -> 4", 38.5, 120, 0, 3, 0, 4),
    # the worse of hypotension and hypoxia
    ("hypotension 2 + hypoxia 3 -> 3", 38.5, 85, 0, 2, 0, 3),
    ("pressor 3 + low-flow 2 -> 3", 38.5, 85, 1, 1, 0, 3),
    ("pressor 3 + positive pressure 4 -> 4", 38.5, 85, 1, 3, 0, 4),
    # fever not required after antipyretics / anti-cytokine therapy
    ("treated, afebrile, one pressor -> 3", 37.0, 85, 1, 0, 1, 3),
    ("treated, afebrile, hypotension -> 2", 36.8, 85, 0, 0, 1, 2),
    ("treated, afebrile, high-flow -> 3", 37.2, 120, 0, 2, 1, 3),
    ("treated, afebrile, nothing -> 0 (resolved)", 37.2, 120, 0, 0, 1, 0),
    ("treated, febrile, nothing else -> 1", 38.0, 120, 0, 0, 1, 1),
    # NaN: not recorded, the domain does not contribute
    ("temperature not recorded, untreated -> 0", nan, 80, 1, 2, 0, 0),
    ("temperature not recorded, treated -> graded on the rest", nan, 80, 1, 2, 1, 3),
    ("SBP and pressors not recorded", 38.5, nan, nan, 1, 0, 2),
    ("SBP not recorded, one pressor recorded -> 3", 38.5, nan, 1, 0, 0, 3),
    ("pressors not recorded, SBP low -> 2", 38.5, 80, nan, 0, 0, 2),
    ("oxygen not recorded", 38.5, 120, 0, nan, 0, 1),
    ("therapy not recorded counts as not given", 37.0, 80, 1, 0, nan, 0),
    ("nothing recorded", nan, nan, nan, nan, nan, 0),
]


@pytest.mark.parametrize("case,temp,sbp,vaso,o2,ac,expected", CRS_TABLE, ids=[c[0] for c in CRS_TABLE])
def test_crs_grade_table(case, temp, sbp, vaso, o2, ac, expected):
    g = crs_grade(temp, sbp, vaso, o2, ac)
    assert g.dtype.kind == "i"
    assert int(g) == expected, case


def test_crs_grade_is_vectorised_over_the_whole_table():
    cols = list(zip(*[c[1:] for c in CRS_TABLE], strict=True))
    g = crs_grade(*(np.array(c, dtype=float) for c in cols[:5]))
    np.testing.assert_array_equal(g, np.array(cols[5]))


# (case, o2_level, flow L/min, expected grade with fever, untreated)
FLOW_TABLE = [
    ("nasal cannula 6 L/min is low-flow -> 2", 1, 6.0, 2),
    ("nasal cannula 6.1 L/min is high-flow -> 3", 1, 6.1, 3),
    ("low-flow, flow not recorded -> 2", 1, nan, 2),
    ("facemask whatever the flow -> 3", 2, 5.0, 3),
    ("positive pressure whatever the flow -> 4", 3, 2.0, 4),
    ("no oxygen, flow 0 -> 1", 0, 0.0, 1),
]


@pytest.mark.parametrize("case,o2,flow,expected", FLOW_TABLE, ids=[c[0] for c in FLOW_TABLE])
def test_oxygen_flow_above_6_l_min_on_a_cannula_is_high_flow(case, o2, flow, expected):
    assert int(crs_grade(38.5, 120, 0, o2, 0, o2_flow_l_min=flow)) == expected, case


# vasopressin never counts towards "multiple vasopressors" (Lee 2019 Table 4: grade 3 "with
# or without vasopressin", grade 4 "multiple vasopressors (excluding vasopressin)")
VASOPRESSIN_TABLE = [
    ("vasopressin alone -> one vasopressor, 3", 0, 1, 3),
    ("norepinephrine + vasopressin -> still 3", 1, 1, 3),
    ("two + vasopressin -> 4", 2, 1, 4),
    ("vasopressin not given, none -> 2 (SBP 85)", 0, 0, 2),
]


@pytest.mark.parametrize("case,n,vp,expected", VASOPRESSIN_TABLE, ids=[c[0] for c in VASOPRESSIN_TABLE])
def test_vasopressin_counts_as_a_vasopressor_but_never_towards_multiple(case, n, vp, expected):
    assert int(crs_grade(38.5, 85, n, 0, 0, vasopressin=vp)) == expected, case


def test_paediatric_hypotension_threshold_is_a_parameter():
    # SBP 85 is not hypotension at a threshold of 80 mmHg (e.g. a child), but is at 90
    assert int(crs_grade(38.5, 85, 0, 0, 0, hypotension_sbp_mmhg=80.0)) == 1
    assert int(crs_grade(38.5, 79.9, 0, 0, 0, hypotension_sbp_mmhg=80.0)) == 2


def test_crs_domains_report_nan_for_not_recorded():
    d = crs_domains([38.0, nan], [85, nan], [0, nan], [nan, 3], [0, 1])
    np.testing.assert_array_equal(d.fever, [1.0, nan])
    np.testing.assert_array_equal(d.hypotension, [2.0, nan])
    np.testing.assert_array_equal(d.hypoxia, [nan, 4.0])
    np.testing.assert_array_equal(d.treated, [0.0, 1.0])


ICE_TABLE = [(10, 0), (9, 1), (8, 1), (7, 1), (6, 2), (5, 2), (3, 2), (2, 3), (1, 3), (0, 3)]


@pytest.mark.parametrize("ice,expected", ICE_TABLE)
def test_ice_score_domain(ice, expected):
    # ICE 0 alone is grade 3 ("awake with global aphasia"), not 4 (Lee 2019 Table 6 note)
    assert int(icans_grade(ice, nan, nan, nan, nan)) == expected
    assert int(icans_grade(ice, 0, 0, 0, 0)) == expected


@pytest.mark.parametrize("level,expected", [(0, 0), (1, 2), (2, 3), (3, 4)])
def test_consciousness_domain(level, expected):
    # level 0 ("awakens spontaneously") alone is not ICANS; see the module doc
    assert int(icans_grade(10, level, 0, 0, 0)) == expected
    assert int(icans_grade(nan, level, nan, nan, nan)) == expected


def test_ice_0_is_grade_4_only_when_unarousable():
    assert int(icans_grade(0, 2, 0, 0, 0)) == 3
    assert int(icans_grade(0, 3, 0, 0, 0)) == 4


def test_awakens_spontaneously_with_ice_7_to_9_is_grade_1():
    assert int(icans_grade(8, 0, 0, 0, 0)) == 1


@pytest.mark.parametrize("level,expected", [(0, 0), (1, 3), (2, 4)])
def test_seizure_domain(level, expected):
    assert int(icans_grade(10, 0, level, 0, 0)) == expected


@pytest.mark.parametrize("level,expected", [(0, 0), (1, 4)])
def test_motor_domain(level, expected):
    assert int(icans_grade(10, 0, 0, level, 0)) == expected


@pytest.mark.parametrize("level,expected", [(0, 0), (1, 3), (2, 4)])
def test_cerebral_edema_domain(level, expected):
    assert int(icans_grade(10, 0, 0, 0, level)) == expected


def test_icans_is_the_worst_domain():
    # Lee 2019's example: ICE 3 (grade 2) with a generalised seizure (grade 3) is grade 3
    assert int(icans_grade(3, 0, 1, 0, 0)) == 3
    g = icans_grade([9, 5, 9, 10], [1, 0, 0, 0], [0, 0, 0, 2], [0, 0, 1, 0], [0, 1, 0, 0])
    np.testing.assert_array_equal(g, [2, 3, 4, 4])


def test_icans_nan_domains_do_not_contribute():
    assert int(icans_grade(nan, nan, nan, nan, nan)) == 0
    assert int(icans_grade(nan, nan, 1, nan, nan)) == 3
    d = icans_domains([5, nan], nan, nan, nan, nan)
    np.testing.assert_array_equal(d.ice, [2.0, nan])
    assert np.isnan(d.seizure).all() and d.seizure.shape == (2,)


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: icans_grade(11, 0, 0, 0, 0), "ice_score = 11.0"),
        (lambda: icans_grade(6.5, 0, 0, 0, 0), "ice_score = 6.5"),
        (lambda: icans_grade(9, 4, 0, 0, 0), "consciousness_level = 4.0"),
        (lambda: icans_grade(9, 0, 3, 0, 0), "seizure_level = 3.0"),
        (lambda: crs_grade(38, 120, -1, 0, 0), "vasopressors_n = -1.0"),
        (lambda: crs_grade(38, 120, 0, 4, 0), "o2_level = 4.0"),
        (lambda: crs_grade(310.0, 120, 0, 0, 0), "temperature_c = 310.0 degC"),
    ],
)
def test_out_of_range_signs_name_the_sign_and_the_value(call, needle):
    with pytest.raises(ValueError) as e:
        call()
    assert needle in str(e.value) and "expected" in str(e.value)


def test_grade_course_of_a_timeline():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    g = np.array([0, 1, 2, 3, 1, 0, 0])
    c = grade_course(t, g)
    assert c == GradeCourse(max_grade=3, onset=1.0, peak_time=3.0, duration=4.0, resolved=True, episodes=1)


def test_grade_course_sums_episodes_and_flags_ongoing():
    t = np.array([0.0, 0.5, 1.0, 3.0, 3.5, 10.0])
    g = np.array([0, 2, 0, 1, 2, 2])
    c = grade_course(t, g)
    # [0.5, 1.0) at 2 and [3.0, 10.0) at >= 1: 0.5 + 7.0 days; still on at the end
    assert c.duration == pytest.approx(7.5)
    assert (c.onset, c.peak_time, c.max_grade, c.episodes, c.resolved) == (0.5, 0.5, 2, 2, False)


def test_grade_course_without_episode():
    c = grade_course([0.0, 1.0], [0, 0])
    assert c.max_grade == 0 and c.duration == 0.0 and c.resolved is None
    assert math.isnan(c.onset) and c.as_dict()["onset"] is None


def test_grade_course_duration_converges_to_the_exact_time_above_a_threshold():
    # grade 1 while sin(t) > 0 on [0, 2π): exactly π days; the step integral on a grid of
    # spacing h is within h of it
    for n in (101, 1001, 10001):
        t = np.linspace(0.0, 2 * np.pi, n)
        c = grade_course(t, (np.sin(t) > 1e-12).astype(int))
        assert abs(c.duration - np.pi) <= 2 * (t[1] - t[0])


def test_grade_course_rejects_unsorted_times():
    with pytest.raises(ValueError, match="strictly increasing"):
        grade_course([0.0, 2.0, 1.0], [0, 1, 0])


def test_grade_signs_grades_a_table_with_missing_signs():
    signs = {
        "temperature_c": np.array([37.0, 38.4, 38.9, 37.2]),
        "sbp_mmhg": np.array([120.0, 88.0, 84.0, 100.0]),
        "vasopressors_n": np.array([0.0, 0.0, 1.0, 0.0]),
        "anticytokine_given": np.array([0.0, 0.0, 1.0, 1.0]),
        "ice_score": np.array([10.0, 10.0, 8.0, 4.0]),
    }
    out = grade_signs(signs)
    np.testing.assert_array_equal(out["crs_grade"], [0, 2, 3, 0])
    np.testing.assert_array_equal(out["icans_grade"], [0, 0, 1, 2])
    np.testing.assert_array_equal(out["fever"], [0, 1, 1, 0])
    assert np.isnan(out["crs_hypoxia_grade"]).all()  # oxygen not recorded
    assert np.isnan(out["icans_seizure_grade"]).all()


def test_grade_signs_needs_at_least_one_sign():
    with pytest.raises(ValueError, match="no clinical signs"):
        grade_signs({"unrelated": [1.0]})


def test_replicate_grades_count_only_after_the_infusion():
    from livingdrug.clinical.grading import replicate_grades

    t = np.array([-1.0, 0.0, 1.0, 2.0, 3.0])
    crs = np.array([[4, 0, 1, 3, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 2]])
    out = replicate_grades(t, {"crs_grade": crs}, t_dose=0.0)
    np.testing.assert_array_equal(out["crs_max_grade"], [3, 0, 2])  # the pre-dose 4 is ignored
    np.testing.assert_array_equal(out["crs_onset_day"], [1.0, nan, 3.0])
    assert "icans_max_grade" not in out


def test_toxicity_summary_in_days_after_the_dose():
    from livingdrug.clinical.grading import toxicity_summary

    t = np.arange(0.0, 10.0, 1.0)
    g = np.array([0, 0, 0, 1, 2, 2, 1, 0, 0, 0])
    s = toxicity_summary(t, {"crs_grade": g}, t_dose=2.0)
    assert s["crs"] == {"max_grade": 2, "onset_day": 1.0, "peak_day": 2.0, "duration_days": 4.0, "episodes": 1, "resolved": True}
    assert "icans" not in s and "Lee DW et al. 2019" in s["grading"]
