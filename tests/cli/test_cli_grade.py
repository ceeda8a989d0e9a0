"""``livingdrug grade FILE.csv``: ASTCT grading of monitoring data end to end (a real
process), and a clean error for every kind of bad input.

Grades follow Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625 (ASTCT consensus).
"""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "livingdrug"]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "monitoring" / "crs_icans_example.csv"
HEADER = "time,temperature_c,sbp_mmhg,vasopressors,o2_device,o2_flow_l_min,antipyretic_or_anticytokine,ice_score"


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    env.pop("LIVINGDRUG_DEBUG", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120, env=env)


def test_example_patient_is_graded_row_by_row(tmp_path):
    out = tmp_path / "graded.csv"
    p = run("grade", str(EXAMPLE), "--out", str(out))
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(out.open()))
    crs = [int(r["crs_grade"]) for r in rows]
    icans = [int(r["icans_grade"]) for r in rows]
    # fever 38.6 °C on day 2 -> 1; + low-flow O2 -> 2; hypotension without pressor -> 2;
    # norepinephrine -> 3; afebrile after tocilizumab but still on norepinephrine -> 3 (fever
    # no longer required after anti-cytokine therapy); off pressor, 1 L/min cannula -> 2; then 0
    assert crs == [0, 0, 1, 2, 2, 3, 3, 2, 0, 0, 0, 0, 0]
    # ICE 9, 8 -> 1; ICE 5 and awakens to voice -> 2; ICE 4 -> 2; ICE 6 -> 2; ICE 8 -> 1; 10 -> 0
    assert icans == [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 1, 0]
    assert rows[5]["crs_hypotension_grade"] == "3" and rows[5]["crs_hypoxia_grade"] == "2"
    assert rows[6]["fever"] == "0"
    assert rows[1]["icans_edema_grade"] == ""  # not recorded in that row
    assert [float(r["hours"]) for r in rows][:3] == [0.0, 24.0, 46.0]
    s = p.stdout
    assert re.search(r"maximum grade\s*│\s*3\s*│\s*2\s*│", s), s  # CRS 3, ICANS 2
    assert re.search(r"duration at grade ≥ 1 \(h\)\s*│\s*60\s*│\s*84\s*│", s), s
    assert "2024-05-03T08:00 (+46 h)" in s  # CRS onset: first fever
    assert "2024-05-04T20:00 (+82 h)" in s  # ICANS onset: ICE 9
    assert "Lee DW et al. 2019" in s and "not medical advice" in s


def test_numeric_hours_are_kept_and_nothing_else_is_required(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("time,temperature_c,sbp_mmhg,vasopressors\n0,37,120,\n12.5,38.2,85,\n30,38.4,80,noradrenaline;vasopressin\n")
    out = tmp_path / "g.csv"
    p = run("grade", str(f), "-o", str(out))
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["hours"] for r in rows] == ["0", "12.5", "30"]
    # noradrenaline + vasopressin is one vasopressor (vasopressin never makes "multiple") -> 3
    assert [r["crs_grade"] for r in rows] == ["0", "2", "3"]
    assert all(r["icans_grade"] == "0" and r["icans_ice_grade"] == "" for r in rows)
    assert "12.5 h" in p.stdout


def _bad(tmp_path, text):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    p = run("grade", str(f), "--out", str(tmp_path / "never.csv"))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert not (tmp_path / "never.csv").exists()
    return p.stderr


BAD = [
    (
        "bad number",
        HEADER + "\n2024-05-01T10:00,38.5,high,,none,0,false,10\n",
        ["row 2", "'sbp_mmhg'", "'high'", "a number in mmHg"],
    ),
    (
        "comma decimal",
        HEADER + '\n2024-05-01T10:00,"38,5",120,,none,0,false,10\n',
        ["row 2", "'temperature_c'", "'38,5'", "decimal separator"],
    ),
    (
        "fahrenheit",
        HEADER + "\n2024-05-01T10:00,101.3,120,,none,0,false,10\n",
        ["row 2", "'temperature_c'", "'101.3'", "from 25 to 45 degC", "(F − 32) / 1.8"],
    ),
    (
        "unknown device",
        HEADER + "\n2024-05-01T10:00,38.5,120,,nasal_prongs,2,false,10\n",
        ["row 2", "'o2_device'", "'nasal_prongs'", "nasal_cannula", "mechanical_ventilation"],
    ),
    (
        "unknown drug",
        HEADER + "\n2024-05-01T10:00,38.5,120,,none,0,false,10\n2024-05-01T12:00,38.5,80,norepinephrine;levophed,none,0,false,10\n",
        ["row 3", "'vasopressors'", "levophed", "norepinephrine", "phenylephrine", "vasopressin"],
    ),
    (
        "inotrope is not a vasopressor",
        HEADER + "\n2024-05-01T10:00,38.5,80,dobutamine,none,0,false,10\n",
        ["row 2", "'vasopressors'", "dobutamine", "inotrope"],
    ),
    (
        "missing time column",
        "temperature_c,sbp_mmhg\n38.5,120\n",
        ["row 1", "'time'", "add a column named time"],
    ),
    (
        "non-increasing time",
        HEADER + "\n2024-05-01T10:00,38.5,120,,none,0,false,10\n2024-05-01T10:00,38.9,110,,none,0,false,10\n",
        ["row 3", "'time'", "'2024-05-01T10:00'", "after the previous row", "increase strictly"],
    ),
    (
        "time going back",
        "time,temperature_c\n5,38\n4,38\n",
        ["row 3", "'time'", "'4'", "after the previous row"],
    ),
    (
        "unknown column",
        "time,temperature_c,heart_rate\n0,38.5,110\n",
        ["row 1", "'heart_rate'", "known column names", "sbp_mmhg", "cerebral_edema"],
    ),
    (
        "ice out of range",
        HEADER + "\n2024-05-01T10:00,38.5,120,,none,0,false,12\n",
        ["row 2", "'ice_score'", "'12'", "whole number from 0 to 10"],
    ),
    (
        "fractional ice",
        HEADER + "\n2024-05-01T10:00,38.5,120,,none,0,false,7.5\n",
        ["row 2", "'ice_score'", "'7.5'", "whole number from 0 to 10"],
    ),
    (
        "bad time",
        "time,temperature_c\nyesterday,38.5\n",
        ["row 2", "'time'", "'yesterday'", "ISO 8601"],
    ),
    (
        "mixed time kinds",
        "time,temperature_c\n0,38.5\n2024-05-01T10:00,38.5\n",
        ["row 3", "'time'", "same kind of time"],
    ),
    (
        "empty time",
        "time,temperature_c\n0,38.5\n,38.5\n",
        ["row 3", "'time'", "a time in every row"],
    ),
    (
        "bad boolean",
        HEADER + "\n2024-05-01T10:00,38.5,120,,none,0,maybe,10\n",
        ["row 2", "'antipyretic_or_anticytokine'", "'maybe'", "true or false"],
    ),
    (
        "therapy un-given",
        "time,temperature_c,antipyretic_or_anticytokine\n0,38.5,true\n1,38.5,false\n",
        ["row 3", "'antipyretic_or_anticytokine'", "at or before row 2", "once true it stays true"],
    ),
    (
        "unknown consciousness",
        "time,consciousness\n0,drowsy\n",
        ["row 2", "'consciousness'", "'drowsy'", "spontaneous, voice, tactile, unarousable"],
    ),
    (
        "unknown seizure",
        "time,seizure\n0,long\n",
        ["row 2", "'seizure'", "'long'", "none, brief, prolonged"],
    ),
    (
        "unknown oedema",
        "time,cerebral_edema\n0,global\n",
        ["row 2", "'cerebral_edema'", "'global'", "none, focal, diffuse"],
    ),
    (
        "flow without device",
        "time,o2_device,o2_flow_l_min\n0,none,4\n",
        ["row 2", "'o2_flow_l_min'", "no oxygen flow when o2_device is none"],
    ),
    (
        "short row",
        "time,temperature_c,sbp_mmhg\n0,38.5\n",
        ["row 2", "3 cells", "this row has 2"],
    ),
    (
        "header only",
        "time,temperature_c\n",
        ["at least one data row"],
    ),
]


@pytest.mark.parametrize("case,text,needles", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clean_error_naming_row_and_column(case, text, needles, tmp_path):
    err = _bad(tmp_path, text)
    assert err.startswith("error:") and "bad.csv" in err
    for n in needles:
        assert n in err, (case, n, err)


def test_missing_file_is_a_clean_error(tmp_path):
    p = run("grade", str(tmp_path / "nope.csv"))
    assert p.returncode == 2 and "file not found" in p.stderr and "Traceback" not in p.stderr


def test_bad_threshold_option_is_a_clean_error():
    p = run("grade", str(EXAMPLE), "--hypotension-sbp", "5")
    assert p.returncode == 2 and "--hypotension-sbp 5" in p.stderr
