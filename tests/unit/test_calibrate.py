"""livingdrug.calibrate: a scenario's plausible patients calibrated to its [[targets]].

Closed forms used: for one binary target t reached by k of n patients, the maximum-entropy
weights are t/k (events) and (1 − t)/(n − k) (the others) and Kish's effective sample size is
1 / (t²/k + (1 − t)²/(n − k)) (Kish L 1965, Survey Sampling).  Published figure used as an
example: ELIANA overall remission 81 % of 75 infused (Maude SL et al. 2018 NEJM 378:439).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from livingdrug.calibrate import (
    CalibrationResult,
    calibrate_population,
    calibrated_sample,
    calibration_markdown,
    save_calibration,
    simulate_plausible,
)
from livingdrug.clinical.probability import proportion
from livingdrug.scenarios import (
    ScenarioError,
    dump_scenario,
    load_scenario,
    scenario_from_toml,
    scenario_hash,
)
from livingdrug.scenarios.load import scenario_json
from livingdrug.trials.calibration import CalibrationInputError, Target

ELIANA = "Maude SL et al. 2018 NEJM 378:439 (ELIANA, 75 infused)"
INFUSED = (("outcome", "==", "infused"), ("status", "==", 0))
REMISSION = Target("overall remission", "proportion", "responded", 0.81, ELIANA, n=75, among=INFUSED)


def _table(n: int = 200, responders: int = 100, seed: int = 1) -> dict[str, np.ndarray]:
    """A synthetic per-patient endpoint table (what calibrate_population would simulate)."""
    rng = np.random.default_rng(seed)
    resp = np.zeros(n, dtype=bool)
    resp[rng.choice(n, responders, replace=False)] = True
    return {
        "arm": np.array(["a"] * n, dtype=object),
        "patient": np.arange(n, dtype=np.int64),
        "outcome": np.array(["infused"] * n, dtype=object),
        "status": np.zeros(n, dtype=np.int64),
        "responded": resp,
        "crs_max_grade": rng.integers(0, 5, n).astype(float),
        "car_cmax": np.exp(rng.normal(0.0, 1.0, n)),
    }


# ---------------------------------------------------------------------------------------
# [[targets]] in scenario files


def _eliana_text(targets: str) -> str:
    text = dump_scenario(load_scenario("eliana"))
    return text[: text.index("\n[[targets]]\n") + 1] + targets


def test_targets_parse_round_trip_and_hash() -> None:
    s = load_scenario("eliana")
    assert [t.name for t in s.targets] == ["overall remission", "CRS, any grade", "neurological events, any grade"]
    assert s.targets[0] == Target("overall remission", "proportion", "responded", 0.81, s.targets[0].source,
                                  n=75, among=INFUSED)
    again = scenario_from_toml(dump_scenario(s), source="again")
    assert again.targets == s.targets and scenario_hash(again) == scenario_hash(s)
    # targets count in the hash only when present
    bare = scenario_from_toml(_eliana_text(""), source="bare")
    assert bare.targets == () and "targets" not in json.loads(scenario_json(bare))
    assert "\n[[targets]]\n" not in dump_scenario(bare)
    assert scenario_hash(bare) != scenario_hash(s)
    changed = scenario_from_toml(dump_scenario(s).replace("value = 0.81", "value = 0.8"), source="changed")
    assert scenario_hash(changed) != scenario_hash(s)


@pytest.mark.parametrize(("snippet", "field", "word"), [
    ('[[targets]]\nname = "r"\nkind = "proportion"\ncolumn = "responded"\nvalue = 1.5\nsource = "x 2018"\n',
     "targets[0].value", "proportion"),
    ('[[targets]]\nname = "r"\nkind = "proportion"\ncolumn = "responded"\nvalue = 0.5\nsource = "x 2018"\n'
     'colour = "red"\n', "targets[0].colour", "known target field"),
    ('[[targets]]\nname = "r"\nkind = "rate"\ncolumn = "responded"\nvalue = 0.5\nsource = "x 2018"\n',
     "targets[0].kind", "proportion"),
    ('[[targets]]\nname = "r"\nkind = "proportion"\ncolumn = "responded"\nvalue = 0.5\n',
     "targets[0].source", "required"),
    ('[[targets]]\nname = "r"\nkind = "proportion"\ncolumn = "responded"\nvalue = 0.5\nsource = "x 2018"\n'
     '[[targets]]\nname = "r"\nkind = "proportion"\ncolumn = "responded"\nvalue = 0.4\nsource = "x 2018"\n',
     "targets[1].name", "not used by another"),
    ('targets = 3\n', "targets", "array"),
])
def test_bad_targets_name_the_field(snippet: str, field: str, word: str) -> None:
    text = _eliana_text("")
    if snippet.startswith("targets ="):  # a top-level key must come before the first table
        text = snippet + text
    else:
        text += snippet
    with pytest.raises(ScenarioError) as e:
        scenario_from_toml(text, source="bad.toml")
    assert e.value.field == field
    assert word in str(e.value)


# ---------------------------------------------------------------------------------------
# calibrate_population on given endpoints (synthetic, exact)


def test_one_binary_target_matches_the_closed_form() -> None:
    n, k, t = 200, 100, 0.81
    r = calibrate_population("eliana", targets=[REMISSION], endpoints=_table(n, k))
    resp = r.patients["responded"]
    np.testing.assert_allclose(r.weights[resp], t / k, rtol=1e-9)
    np.testing.assert_allclose(r.weights[~resp], (1 - t) / (n - k), rtol=1e-9)
    assert r.n_effective == pytest.approx(1.0 / (t**2 / k + (1 - t) ** 2 / (n - k)), rel=1e-9)
    row = r.table[0]
    assert row["simulated"] == pytest.approx(t, abs=1e-9)
    pub = proportion(61, 75)  # Wilson interval of 81 % of 75 (61/75)
    assert row["published_interval"] == pytest.approx((pub.low, pub.high))
    # unweighted: 50 % is outside ELIANA's interval; calibrated: inside
    assert row["unweighted"] == pytest.approx(0.5) and row["unweighted_within"] is False
    assert row["within"] is True and r.all_within


def test_several_targets_reproduced_exactly_and_rows_flagged() -> None:
    tab = _table(300, 150)
    crs3 = Target("CRS grade >= 3", "proportion", "crs_max_grade", 0.40, "made-up 2024", n=50, op=">=",
                  threshold=3, among=INFUSED)
    cmax = Target("mean Cmax", "mean", "car_cmax", 2.0, "made-up 2024", interval=(1.9, 2.1), unit="cells/uL",
                  among=INFUSED)
    r = calibrate_population("eliana", targets=[REMISSION, crs3, cmax], endpoints=tab)
    w = r.weights
    assert w.sum() == pytest.approx(1.0) and (w > 0).all()
    assert w @ tab["responded"] == pytest.approx(0.81, abs=1e-8)
    assert w @ (tab["crs_max_grade"] >= 3) == pytest.approx(0.40, abs=1e-8)
    assert w @ tab["car_cmax"] == pytest.approx(2.0, abs=1e-8)
    assert r.n_effective == pytest.approx(1.0 / np.sum(w**2))
    assert 0.2 * r.n < r.n_effective < r.n
    for row in r.table:
        lo, hi = row["published_interval"]
        assert row["unweighted_within"] == (lo <= row["unweighted"] <= hi)
        assert row["within"] is True
    # the uniform cohort's mean Cmax is e^{1/2} ≈ 1.65 (log-normal), outside (1.9, 2.1)
    assert r.table[2]["unweighted_within"] is False


def test_failed_solves_get_weight_zero() -> None:
    tab = _table(100, 50)
    tab["status"][:10] = 3
    tab["responded"][:10] = False
    r = calibrate_population("eliana", targets=[REMISSION], endpoints=tab)
    assert r.n_failed == 10 and np.all(r.weights[:10] == 0)
    assert r.weights[10:] @ tab["responded"][10:] == pytest.approx(0.81, abs=1e-9)


def test_out_of_reach_target_is_named() -> None:
    with pytest.raises(CalibrationInputError, match="overall remission"):
        calibrate_population("eliana", targets=[REMISSION], endpoints=_table(50, 0))


def test_bad_inputs_are_clear() -> None:
    with pytest.raises(CalibrationInputError, match="method"):
        calibrate_population("eliana", method="magic", endpoints=_table())
    with pytest.raises(CalibrationInputError, match="patients"):
        calibrate_population("eliana", patients=10, endpoints=_table())
    with pytest.raises(CalibrationInputError, match="column"):
        calibrate_population("eliana", targets=[Target("x", "proportion", "no_such_column", 0.5, "made-up 2024",
                                                       among=INFUSED)], endpoints=_table())
    with pytest.raises(ScenarioError) as e:
        calibrate_population("cd19-ball", endpoints=_table())
    assert e.value.field == "targets"
    with pytest.raises(ScenarioError) as e:
        calibrate_population("cd19-lbcl", targets=[REMISSION])
    assert e.value.field == "population"


def test_selection_allen2016_on_a_distribution_target() -> None:
    """Allen 2016 selection of log Cmax ~ N(0.5, 0.5²) from log Cmax ~ N(0, 1): the kept
    patients' weighted K-S test does not reject, and only kept patients carry weight."""
    tab = _table(4000, 2000, seed=3)
    dist = Target("Cmax distribution", "distribution", "car_cmax", (0.5, 0.5), "made-up 2024", log=True,
                  unit="cells/uL", among=INFUSED)
    r = calibrate_population("eliana", targets=[dist], endpoints=tab, method="selection")
    kept = r.selection.indices.size
    assert np.count_nonzero(r.weights) == kept and r.n_effective == pytest.approx(kept)
    row = r.table[0]
    assert row["within"] is True and row["unweighted_within"] is False
    # weighted mean of log Cmax within 5 standard errors of 0.5
    assert abs(r.weights @ np.log(tab["car_cmax"]) - 0.5) < 5 * 0.5 / math.sqrt(kept)


def test_calibrated_sample_reproduces_the_target() -> None:
    r = calibrate_population("eliana", targets=[REMISSION], endpoints=_table(200, 100))
    idx = calibrated_sample(r, 20000, seed=7)
    assert idx.dtype == np.int64 and idx.size == 20000
    assert np.array_equal(idx, calibrated_sample(r, 20000, seed=7))
    share = r.patients["responded"][idx].mean()  # patient == row here
    assert abs(share - 0.81) < 5 * math.sqrt(0.81 * 0.19 / 20000)
    with pytest.raises(CalibrationInputError, match="n = 0"):
        calibrated_sample(r, 0)


def test_save_calibration(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    r = calibrate_population("eliana", targets=[REMISSION], endpoints=_table(120, 60))
    out = save_calibration(r, tmp_path / "cal")
    w = pq.read_table(out / "weights.parquet")
    np.testing.assert_array_equal(w.column("patient").to_numpy(), r.patients["patient"])
    np.testing.assert_allclose(w.column("weight").to_numpy(), r.weights)
    data = json.loads((out / "calibration.json").read_text())
    assert data["n_effective"] == pytest.approx(r.n_effective) and data["all_within"] is True
    assert data["table"][0]["target"] == "overall remission" and data["targets"][0]["n"] == 75
    assert data["scenario"]["hash"] == scenario_hash(load_scenario("eliana"))
    md = (out / "calibration.md").read_text()
    assert md == calibration_markdown(r) and "overall remission" in md and "81.0 %" in md
    assert (out / "calibration.png").stat().st_size > 1000


# ---------------------------------------------------------------------------------------
# simulating a small population


def test_small_simulated_population_calibrates_and_chunking_does_not_matter() -> None:
    from livingdrug.trial import trial_design

    r = calibrate_population("eliana", patients=40, seed=3)
    assert isinstance(r, CalibrationResult) and r.n == 40 and r.seed == 3
    assert np.array_equal(r.patients["patient"], np.arange(40))
    ok = (r.patients["outcome"] == "infused") & (r.patients["status"] == 0)
    for t, row in zip(r.targets, r.table, strict=True):
        ev = r.patients[t.column] >= t.threshold if t.op else r.patients[t.column].astype(bool)
        assert r.weights[ok] @ ev[ok] == pytest.approx(t.value, abs=1e-8)
        assert row["simulated"] == pytest.approx(t.value, abs=1e-8)
    assert r.n_effective > 4  # ≥ 10 % of a tiny cohort
    import dataclasses

    design = trial_design(load_scenario("eliana"))
    design = dataclasses.replace(design, population=dataclasses.replace(design.population, size=12), seed=3)
    a, b = simulate_plausible(design, chunk=5), simulate_plausible(design)
    for k in ("responded", "crs_max_grade", "icans_max_grade", "car_cmax", "leukaemia", "k_exp"):
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k], r.patients[k][:12])


def test_a_trial_of_a_calibrated_scenario_reports_weighted_endpoints(tmp_path):
    """`livingdrug trial liu2020-carnk` weights its own patients to the published figures
    (Liu E et al. 2020 NEJM 382:545: 7/11 complete remissions — the B-ALL response of the
    car_nk model is a complete remission — no CRS, no ICANS) and reports the weighted
    endpoints next to the unweighted ones."""
    import pyarrow.parquet as pq

    from livingdrug.trial import run_trial

    r = run_trial("liu2020-carnk", tmp_path / "t", patients=120, chunk_size=60, figures=False)
    cal = r.summary["calibration"]
    assert "error" not in cal and cal["all_within"] and cal["n_effective"] > 0.2 * 120
    assert cal["weighted"]["response_itt"] == pytest.approx(7 / 11, abs=1e-8)
    # the B-ALL response of the CAR-NK model is a complete remission: the same weighted figure
    assert cal["weighted"]["complete_response_itt"] == pytest.approx(7 / 11, abs=1e-8)
    assert cal["weighted"]["crs_grade_ge_1"] == pytest.approx(0.0, abs=1e-8)
    w = pq.read_table(tmp_path / "t" / "weights.parquet").column("weight").to_numpy()
    assert w.size == 120 and w.sum() == pytest.approx(1.0)
    unweighted = r.summary["arms"][next(iter(r.summary["arms"]))]["response_itt"]["estimate"]
    assert unweighted != pytest.approx(7 / 11, abs=1e-3)  # the weighting did something


def test_the_trial_report_shows_the_calibration(tmp_path):
    from livingdrug.trial import run_trial

    r = run_trial("liu2020-carnk", tmp_path / "t", patients=60, chunk_size=60, figures=True)
    page = (tmp_path / "t" / "report.html").read_text()
    assert "Calibration to published figures" in page and "Liu E et al. 2020" in page
    n_eff = r.summary["calibration"]["n_effective"]
    assert f"effective sample size {n_eff:.0f}" in page
