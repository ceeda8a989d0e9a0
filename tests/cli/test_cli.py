"""The command line end to end: a real process, real files, clean errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from livingdrug.models import car_t

CLI = [sys.executable, "-m", "livingdrug"]
BUILTINS = {"cd19-ball", "stein2019", "kimmel2021", "cartmath-hdlm2", "cartmath-raji", "crs-management",
            "cd19-lbcl", "bcma-myeloma", "cd19-carnk"}


def run(*args, cwd=None, timeout=600):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("LIVINGDRUG_DEBUG", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "default"
    p = run("run", "--out", str(out), "--days", "120")
    assert p.returncode == 0, p.stderr
    return out, p


def test_default_run_writes_every_output(default_run):
    out, p = default_run
    names = {f.name for f in out.iterdir()}
    assert {"trajectories.parquet", "summary.json", "manifest.json", "report.html"} <= names
    assert len([n for n in names if n.endswith(".png")]) >= 3
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]
    assert "Cmax" in p.stdout and "not medical advice" in p.stdout


def test_trajectories_carry_units_and_time_in_days(default_run):
    out, _ = default_run
    table = pq.read_table(out / "trajectories.parquet")
    units = json.loads(table.schema.metadata[b"livingdrug.units"])
    assert units["time"] == "d"
    assert units["car_t_blood"] == "cell/uL"
    assert table.schema.field("car_t_blood").metadata[b"unit"] == b"cell/uL"
    t = table.column("time").to_numpy()
    assert t.max() == pytest.approx(120.0)


def test_summary_has_the_issue_endpoints_and_plausible_kinetics(default_run):
    out, _ = default_run
    s = json.loads((out / "summary.json").read_text())
    e = s["exposure"]
    assert e["unit"] == "cell/uL" and e["cmax"] > 0
    # peak between days 7 and 14 (tisagenlecleucel median Tmax 9.3 d, Stein 2019)
    assert 7 <= e["tmax"] <= 14
    assert s["exposure_transgene"]["unit"] == "copies/ug"
    for key in ("time_to_remission", "time_to_mrd_negative", "relapse_time", "relapse_type", "bcell_aplasia_duration"):
        assert key in s["response"]


def test_manifest_reproduces_the_run_exactly(default_run, tmp_path):
    out, _ = default_run
    m = json.loads((out / "manifest.json").read_text())
    assert {"livingdrug_version", "scenario", "seed", "engine", "outputs"} <= set(m)
    assert len(m["scenario"]["hash"]) == 64
    again = tmp_path / "again"
    p = run("run", "--from", str(out / "manifest.json"), "--out", str(again), "--no-figures")
    assert p.returncode == 0, p.stderr
    a = pq.read_table(out / "trajectories.parquet").to_pandas()
    b = pq.read_table(again / "trajectories.parquet").to_pandas()
    assert a.columns.tolist() == b.columns.tolist()
    assert np.array_equal(a.to_numpy(), b.to_numpy(), equal_nan=True)


def test_report_embeds_figures_and_says_research_use(default_run):
    html = (default_run[0] / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    assert "not medical advice" in html and "Cmax" in html
    # the scenario's own description, with its source, says what was simulated
    assert "<h2>Scenario</h2>" in html and "Stein AM et al. 2019" in html


def test_scenarios_lists_the_builtins():
    p = run("scenarios")
    assert p.returncode == 0
    for name in BUILTINS:
        assert name in p.stdout


@pytest.mark.parametrize("name", sorted(BUILTINS - {"cd19-ball"}))
def test_every_builtin_runs(name, tmp_path):
    p = run("run", name, "--out", str(tmp_path / name), "--no-figures")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / name / "manifest.json").exists()


@pytest.mark.parametrize("name", ["cure-probability", "one-cell-kills", "one-clone-saves"])
def test_every_stochastic_builtin_runs(name, tmp_path):
    """The stochastic built-ins run end to end from the command line (few replicates)."""
    p = run("run", name, "--out", str(tmp_path / name), "--replicates", "12", "--days", "60",
            "--no-figures")
    assert p.returncode == 0, p.stderr
    assert "95 % CI" in p.stdout
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    assert summary["replicates"] == 12 and summary["failed"] == 0
    assert (tmp_path / name / "manifest.json").exists()


SIM = "[simulation]\ndays = 30\n"
BAD = {
    "malformed.toml": ('name = "x"\nmodel = "car_t\n', "toml"),
    "unknown_field.toml": ('name = "x"\nmodel = "car_t"\n[simulaton]\ndays = 10\n', "simulaton"),
    "wrong_unit.toml": ('name = "x"\nmodel = "car_t"\n[dosing]\ndose = "1e8 cell"\ntime = "3 cell"\n' + SIM, "dosing.time"),
    "missing_unit.toml": ('name = "x"\nmodel = "car_t"\n[dosing]\ndose = 1e8\n' + SIM, "dosing.dose"),
    "negative.toml": ('name = "x"\nmodel = "car_t"\n[dosing]\ndose = "-1e8 cell"\n' + SIM, "dosing.dose"),
    "absurd_days.toml": ('name = "x"\nmodel = "car_t"\n[simulation]\ndays = 1e12\n', "simulation.days"),
    "missing_days.toml": ('name = "x"\nmodel = "car_t"\n', "[simulation]"),
    "unknown_model.toml": ('name = "x"\nmodel = "car_z"\n' + SIM, "car_z"),
}


@pytest.mark.parametrize("fname", sorted(BAD))
def test_bad_files_give_a_clean_error_naming_the_field(fname, tmp_path):
    text, needle = BAD[fname]
    f = tmp_path / fname
    f.write_text(text)
    for cmd in (("validate", str(f)), ("run", str(f), "--out", str(tmp_path / "o"))):
        p = run(*cmd)
        assert p.returncode == 2, (cmd, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr
        assert needle.lower() in p.stderr.lower(), p.stderr
        assert fname in p.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_unknown_scenario_lists_the_known_ones():
    p = run("run", "no-such-scenario")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "no-such-scenario" in p.stderr and "cd19-ball" in p.stderr


def test_unwritable_output_folder_is_a_clean_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    p = run("run", "--out", str(blocker / "sub"), "--days", "10")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "not writable" in p.stderr and "--out" in p.stderr


def test_bad_option_values_are_clean_errors(tmp_path):
    p = run("run", "--days", "-3", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and "--days" in p.stderr and "Traceback" not in p.stderr
    p = run("run", "--engine", "warp", "--out", str(tmp_path / "y"))
    assert p.returncode == 2 and "--engine" in p.stderr and "Traceback" not in p.stderr


def test_interrupt_keeps_finished_files_and_leaves_no_partial_ones(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import livingdrug.io as lio
    from livingdrug import cli

    orig = lio.write_json

    def flaky(path, data):
        if Path(path).name == "manifest.json":
            raise KeyboardInterrupt  # Ctrl-C just before the run is marked complete
        return orig(path, data)

    monkeypatch.setattr(lio, "write_json", flaky)
    out = tmp_path / "r"
    res = CliRunner().invoke(cli.app, ["run", "--out", str(out), "--days", "30", "--no-figures"])
    assert res.exit_code == 130
    assert (out / "trajectories.parquet").exists() and (out / "summary.json").exists()
    assert not (out / "manifest.json").exists()
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_bad_manifest_is_a_clean_error(tmp_path, default_run):
    missing = run("run", "--from", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "nope.json" in missing.stderr and "Traceback" not in missing.stderr
    junk = tmp_path / "manifest.json"
    junk.write_text("{not json")
    p = run("run", "--from", str(junk))
    assert p.returncode == 2 and "manifest" in p.stderr and "Traceback" not in p.stderr
    m = json.loads((default_run[0] / "manifest.json").read_text())
    m["scenario"]["toml"] = m["scenario"]["toml"].replace("seed = 0", "seed = 1")
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(m))
    p = run("run", "--from", str(edited))
    assert p.returncode == 2 and "scenario.hash" in p.stderr


def test_export_sbml_writes_a_model_libroadrunner_simulates(tmp_path):
    roadrunner = pytest.importorskip("roadrunner")
    out = tmp_path / "cd19.xml"
    p = run("export-sbml", "cd19-ball", "--out", str(out))
    assert p.returncode == 0, p.stderr
    rr = roadrunner.RoadRunner(str(out))
    # the eleven cell species plus the toxicity block's cytokines, drugs and dose bookkeeping
    ids = rr.model.getFloatingSpeciesIds()
    assert len(ids) == len(car_t.build().species) and {"C_E", "L_M", "IL6", "Tcz"} <= set(ids)
    assert rr.simulate(0, 30, 31).shape[0] == 31
