"""``livingdrug compare`` (and ``run`` on a comparison) end to end: real process, real files."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq

CLI = [sys.executable, "-m", "livingdrug"]

SMALL = """
name = "small"
title = "Small CAR-T vs CAR-NK comparison"
[population]
patients = 8
seed = 4
[population.covariates.leukaemia]
median = "1e11 cell"
cv = 0.5
upper = "2.2e11 cell"
[[arms]]
name = "CAR-T"
scenario = "cd19-ball"
logistics = "autologous-centre"
product = "manufactured"
[[arms]]
name = "CAR-NK"
scenario = "cd19-carnk"
logistics = "off-the-shelf-centre"
"""


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("LIVINGDRUG_DEBUG", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=600, env=env)


def test_compare_writes_the_run_folder(tmp_path):
    f = tmp_path / "small.toml"
    f.write_text(SMALL)
    out = tmp_path / "cmp"
    p = run("compare", str(f), "--out", str(out), "--patients", "6")
    assert p.returncode == 0, p.stderr
    names = {x.name for x in out.iterdir()}
    assert {"patients.parquet", "summary.json", "manifest.json", "report.html", "endpoints.png",
            "efs_from_referral.png", "referral_to_infusion.png", "time_courses.png"} <= names
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]
    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    table = pq.read_table(out / "patients.parquet")
    assert table.num_rows == 12 and summary["patients"] == 6 == manifest["patients"]
    assert manifest["seed"] == 4 and manifest["comparison"]["toml"] == SMALL
    assert table.schema.field("referral_to_infusion").metadata[b"unit"] == b"d"
    assert table.schema.field("leukaemia").metadata[b"unit"] == b"cell"
    assert set(summary["arms"]) == {"CAR-T", "CAR-NK"} and summary["paired"][0]["reference"] == "CAR-T"
    html = (out / "report.html").read_text()
    assert html.count("not medical advice") == 1 and "Paired comparison" in html and "CAR-NK" in html
    assert "referral → infusion" in p.stdout and "McNemar" in p.stdout and "not medical advice" in p.stdout


def test_run_on_a_comparison_runs_it_and_scenarios_lists_it(tmp_path):
    f = tmp_path / "small.toml"
    f.write_text(SMALL)
    out = tmp_path / "via-run"
    p = run("run", str(f), "--out", str(out), "--no-figures")
    assert p.returncode == 0, p.stderr
    assert (out / "manifest.json").exists() and not (out / "report.html").exists()
    assert json.loads((out / "summary.json").read_text())["patients"] == 8
    p = run("run", str(f), "--engine", "hybrid")
    assert p.returncode == 2 and "comparison" in p.stderr and "Traceback" not in p.stderr
    p = run("scenarios")
    assert p.returncode == 0 and "cart-vs-carnk (comparison)" in p.stdout
    p = run("compare", "--list")
    assert p.returncode == 0 and "cart-vs-carnk" in p.stdout


def test_bad_comparison_input_gets_one_clear_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL.replace('[population.covariates.leukaemia]\nmedian = "1e11 cell"\ncv = 0.5',
                                 '[population.covariates.leukaemia]\nmedian = "1e11 cell"'))
    p = run("compare", str(bad), "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "bad.toml" in p.stderr and "population.covariates.leukaemia.cv" in p.stderr
    assert not (tmp_path / "x" / "manifest.json").exists()
    p = run("compare", "cart-vs-carn")
    assert p.returncode == 2 and 'did you mean "cart-vs-carnk"' in p.stderr
    p = run("compare", str(tmp_path / "small.toml"), "--patients", "0")
    assert p.returncode == 2 and "--patients 0" in p.stderr


def test_validate_and_rerun_of_a_comparison_give_clear_answers(tmp_path):
    f = tmp_path / "small.toml"
    f.write_text(SMALL)
    p = run("validate", str(f))
    assert p.returncode == 0 and "comparison 'small'" in p.stdout and "CAR-NK" in p.stdout
    out = tmp_path / "cmp"
    assert run("compare", str(f), "--out", str(out), "--patients", "2", "--no-figures").returncode == 0
    p = run("run", "--from", str(out / "manifest.json"))
    assert p.returncode == 2 and "livingdrug compare" in p.stderr and "Traceback" not in p.stderr
    bad = tmp_path / "median.toml"
    bad.write_text(SMALL.replace('upper = "2.2e11 cell"', 'upper = "5e10 cell"'))
    p = run("compare", str(bad))
    assert p.returncode == 2 and "population.covariates.leukaemia.median" in p.stderr and "within" in p.stderr
    hyb = tmp_path / "hybrid.toml"
    hyb.write_text(SMALL.replace('scenario = "cd19-ball"', 'scenario = "one-cell-kills"'))
    p = run("compare", str(hyb))
    assert p.returncode == 2 and "arms[0].scenario" in p.stderr and "ODE" in p.stderr
