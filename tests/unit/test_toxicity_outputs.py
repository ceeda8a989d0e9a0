"""Grade outputs of a simulation: a synthetic model exposing the clinical-sign observables
(by role) runs through the real scenario loader, ODE engine, ``simulate``/``summarise``,
``save_run`` and the CLI; its grade course is checked against the crossing times of the
closed-form solution (tests/toxicity_models.py).  Grading: ASTCT, Lee DW et al. 2019,
Biol Blood Marrow Transplant 25:625."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import toxicity_models as tm
from scipy.optimize import brentq, minimize_scalar
from typer.testing import CliRunner

import livingdrug as ld
import livingdrug.models
from livingdrug import api, cli
from livingdrug.report.figures import TOXICITY_FIGURE
from livingdrug.report.html import summary_rows
from livingdrug.scenarios import scenario_from_toml

DT = 0.05  # output interval (d)
T_DOSE = 2.0  # infusion day


def _scenario(dose_text: str = "1e8 cell"):
    text = tm.TOML.format(t_dose=T_DOSE, start=-1, days=30, dt=DT).replace("1e8 cell", dose_text)
    return scenario_from_toml(text, source="toy.toml", models=tm.MODELS)


@pytest.fixture(scope="module")
def result():
    return ld.simulate(_scenario())


def _crossings(f, level):
    """Up- and down-crossing times (d after infusion) of f(τ) = level around its peak."""
    peak = minimize_scalar(lambda x: -f(x), bounds=(0.0, 10.0), method="bounded").x
    up = brentq(lambda x: f(x) - level, 1e-9, peak)
    down = brentq(lambda x: f(x) - level, peak, 60.0)
    return up, down


def test_crs_course_matches_the_closed_form(result):
    crs = result.summary["toxicity"]["crs"]
    # fever (grade 1) from I = 0.5; one vasopressor (grade 3) while I > 4; I peaks at 5.97
    f_up, f_down = _crossings(tm.inflammation, 0.5)
    v_up, _ = _crossings(tm.inflammation, 4.0)
    assert crs["max_grade"] == 3
    # the first output time at or after each crossing (grid spacing DT)
    assert f_up <= crs["onset_day"] <= f_up + DT + 1e-9
    assert v_up <= crs["peak_day"] <= v_up + DT + 1e-9
    assert crs["duration_days"] == pytest.approx(f_down - f_up, abs=DT + 1e-9)
    assert crs["resolved"] is True and crs["episodes"] == 1


def test_icans_course_matches_the_closed_form_and_follows_crs(result):
    tox = result.summary["toxicity"]
    icans = tox["icans"]
    # ICE 8 (grade 1) from N = 1, ICE 5 (grade 2) from N = 2; N peaks at 2.56
    n1_up, n1_down = _crossings(tm.neuro, 1.0)
    n2_up, _ = _crossings(tm.neuro, 2.0)
    assert icans["max_grade"] == 2
    assert n1_up <= icans["onset_day"] <= n1_up + DT + 1e-9
    assert n2_up <= icans["peak_day"] <= n2_up + DT + 1e-9
    assert icans["duration_days"] == pytest.approx(n1_down - n1_up, abs=DT + 1e-9)
    assert icans["onset_day"] > tox["crs"]["onset_day"]  # ICANS typically later than CRS
    assert "Lee DW et al. 2019" in tox["grading"]


def test_grade_time_series_are_in_the_dataset(result):
    ds = result.dataset
    assert ds["crs_grade"].attrs["units"] == "1" and ds["crs_grade"].attrs["kind"] == "grade"
    t = ds["time"].values
    crs = ds["crs_grade"].values[0]
    infl = ds["I"].values[0]
    assert np.all(crs[t < T_DOSE] == 0)  # nothing before the infusion
    # each grade is the ASTCT grade of the signs at that time (thresholds of toxicity_models)
    expected = np.select([infl > 4, infl > 3, infl > 2, infl >= 0.5], [3, 2, 2, 1], 0)
    np.testing.assert_array_equal(crs, expected)


def test_low_dose_gives_no_crs():
    r = ld.simulate(_scenario("1e6 cell"))  # I peaks at 0.06: never febrile
    tox = r.summary["toxicity"]
    assert tox["crs"]["max_grade"] == 0 and tox["crs"]["onset_day"] is None
    assert tox["icans"]["max_grade"] == 0 and tox["icans"]["resolved"] is None


def test_models_without_signs_get_no_toxicity():
    from ensemble_models import birth_death

    net = birth_death()
    assert api.sign_observables(net) == {}
    import xarray as xr

    ds = xr.Dataset({"tumour": (("patient", "time"), np.ones((1, 3)))}, coords={"time": [0.0, 1.0, 2.0]})
    assert api.grades_of(ds, net) == {}
    assert api.with_grades(ds, net) is ds


def test_saved_run_has_grade_columns_figure_and_report(result, tmp_path):
    out = api.save_run(result, tmp_path / "run")
    table = pq.read_table(out / "trajectories.parquet")
    assert {"crs_grade", "icans_grade"} <= set(table.column_names)
    assert json.loads(table.schema.metadata[b"livingdrug.units"])["crs_grade"] == "1"
    assert max(table.column("crs_grade").to_pylist()) == 3
    s = json.loads((out / "summary.json").read_text())
    assert s["toxicity"]["crs"]["max_grade"] == 3 and s["toxicity"]["icans"]["max_grade"] == 2
    assert (out / TOXICITY_FIGURE).stat().st_size > 10_000
    html = (out / "report.html").read_text()
    assert TOXICITY_FIGURE in html and "CRS (ASTCT grade)" in html and "ICANS (ASTCT grade)" in html


def test_summary_rows_show_max_grade_and_onset(result):
    rows = summary_rows(result.summary)
    by = {(sec, label): (v, u) for sec, label, v, u in rows}
    assert by[("CRS (ASTCT grade)", "Maximum grade")] == ("3", "0–4")
    assert by[("ICANS (ASTCT grade)", "Maximum grade")] == ("2", "0–4")
    onset, unit = by[("CRS (ASTCT grade)", "Onset (grade ≥ 1)")]
    assert unit == "d after infusion" and float(onset) == pytest.approx(result.summary["toxicity"]["crs"]["onset_day"], rel=1e-3)


def test_run_command_prints_max_grades_and_onset(tmp_path, monkeypatch):
    monkeypatch.setitem(livingdrug.models.MODELS, "toy_toxicity", tm.MODELS["toy_toxicity"])
    f = tmp_path / "toy.toml"
    f.write_text(tm.TOML.format(t_dose=T_DOSE, start=-1, days=30, dt=DT))
    r = CliRunner().invoke(cli.app, ["run", str(f), "--out", str(tmp_path / "run"), "--no-figures"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    cells = [[c.strip() for c in ln.split("│")] for ln in r.output.splitlines() if "Maximum grade  " in ln]
    assert [c[2] for c in cells] == ["3", "2"]  # CRS, then ICANS
    assert "CRS (ASTCT grade)" in r.output and "Onset (grade ≥ 1)" in r.output
