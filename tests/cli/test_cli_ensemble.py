"""``livingdrug run --engine ssa|tau|hybrid --replicates R [--sweep …]``: files, exit codes,
bad flags, interruption and bitwise re-runs.

Most tests run the command in-process (typer's CliRunner) with a small birth–death test model
registered in the model library; one runs a real process on a small patient of the default
CAR-T model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from ensemble_models import MODELS, bd_toml
from typer.testing import CliRunner

import livingdrug.models
from livingdrug import cli


@pytest.fixture
def bd_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(livingdrug.models.MODELS, "bd_tumour", MODELS["bd_tumour"])
    f = tmp_path / "bd.toml"
    f.write_text(bd_toml(days=10, replicates=80, seed=3))
    return f


def invoke(*args: str):
    return CliRunner().invoke(cli.app, list(args))


def test_stochastic_run_writes_the_run_folder(bd_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = invoke("run", str(bd_file), "--out", str(out), "--chunk-size", "32")
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert {"replicates.parquet", "trajectories.parquet", "bands.parquet", "summary.json", "manifest.json",
            "report.html", "fan_chart.png"} <= names
    assert "parts" not in names and not [n for n in names if n.endswith(".tmp")]
    assert "P(cure)" in res.stdout and "Wilson" in res.stdout and "not medical advice" in res.stdout
    table = pq.read_table(out / "replicates.parquet")
    units = json.loads(table.schema.metadata[b"livingdrug.units"])
    assert units["time_to_cure"] == "d" and units["tumour_end"] == "cell"
    assert table.schema.field("time_to_cure").metadata[b"unit"] == b"d"
    assert table.num_rows == 80 and table.column("replicate").to_pylist() == list(range(80))
    s = json.loads((out / "summary.json").read_text())
    p = s["probabilities"]["cure"]
    assert p["trials"] == 80 and p["low"] <= p["estimate"] <= p["high"] and "Wilson" in s["ci_method"]
    assert p["successes"] == int(table.column("cured").to_numpy().sum())
    m = json.loads((out / "manifest.json").read_text())
    assert m["engine"]["engine"] == "ssa" and m["engine"]["replicates"] == 80
    assert set(m["outputs"]) >= {"replicates.parquet", "summary.json", "report.html"}
    html = (out / "report.html").read_text()
    assert "not medical advice" in html and "Probabilities" in html and "data:image/png;base64," in html
    bands = pq.read_table(out / "bands.parquet").to_pandas()
    assert set(bands["statistic"]) == {"q5", "q25", "q50", "q75", "q95", "mean"}


def test_rerun_from_manifest_is_bitwise(bd_file: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke("run", str(bd_file), "--out", str(a), "--no-figures", "--replicates", "50", "--seed", "8").exit_code == 0
    res = invoke("run", "--from", str(a / "manifest.json"), "--out", str(b), "--no-figures")
    assert res.exit_code == 0, res.output
    for name in ("replicates.parquet", "trajectories.parquet", "bands.parquet"):
        x, y = pq.read_table(a / name).to_pandas(), pq.read_table(b / name).to_pandas()
        assert x.equals(y), name
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert ma["scenario"]["hash"] == mb["scenario"]["hash"] and ma["seed"] == mb["seed"] == 8
    assert "replicates = 50" in ma["scenario"]["toml"]


def test_sweep_writes_a_table_a_figure_and_reruns(bd_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    res = invoke("run", str(bd_file), "--sweep", "n=1:3:lin:3", "--replicates", "60", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "sweep of n" in res.stdout and "P(cure)" in res.stdout
    tab = pq.read_table(out / "sweep.parquet").to_pandas()
    assert tab["value"].tolist() == [1.0, 2.0, 3.0] and (tab["replicates"] == 60).all()
    assert {"p_cure", "p_cure_low", "p_cure_high"} <= set(tab.columns)
    assert json.loads((out / "sweep.json").read_text())["sweep"]["text"] == "n=1:3:lin:3"
    assert (out / "sweep_probabilities.png").exists()
    reps = pq.read_table(out / "replicates.parquet").to_pandas()
    assert len(reps) == 180 and sorted(set(reps["sweep_value"])) == [1.0, 2.0, 3.0]
    again = tmp_path / "again"
    assert invoke("run", "--from", str(out / "manifest.json"), "--out", str(again), "--no-figures").exit_code == 0
    assert pq.read_table(again / "sweep.parquet").to_pandas().equals(tab)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--engine", "warp"), "--engine warp"),
        (("--replicates", "0"), "--replicates 0"),
        (("--chunk-size", "0"), "--chunk-size 0"),
        (("--sweep", "n=1:3:cubic:3"), "n=1:3:cubic:3"),
        (("--sweep", "n=1:3"), "NAME=LO:HI:log|lin:N"),
        (("--sweep", "nn=1:3:lin:3"), 'did you mean "n"'),
        (("--sweep", "lam=1:300:log:3"), "parameters.lam"),
        (("--engine", "ode", "--replicates", "10"), "needs a stochastic engine"),
        (("--engine", "ode", "--sweep", "n=1:3:lin:3"), "needs a stochastic engine"),
    ],
)
def test_bad_flags_are_clean_errors(bd_file: Path, tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    out = tmp_path / "o"
    res = invoke("run", str(bd_file), "--out", str(out), *args)
    assert res.exit_code == 2, res.output
    assert needle in res.stderr, res.stderr
    assert "Traceback" not in res.output and not (out / "manifest.json").exists()


def test_from_cannot_be_combined_with_run_options(bd_file: Path, tmp_path: Path) -> None:
    res = invoke("run", "--from", str(tmp_path / "m.json"), "--engine", "ssa")
    assert res.exit_code == 2 and "--from" in res.stderr


def test_hopeless_exact_run_of_the_default_patient_is_refused(tmp_path: Path) -> None:
    res = invoke("run", "--engine", "ssa", "--replicates", "10", "--out", str(tmp_path / "x"))
    assert res.exit_code == 2
    assert "--engine hybrid" in res.stderr and "simulation.engine" in res.stderr


def test_interrupt_keeps_finished_chunks_and_writes_a_partial_summary(
    bd_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from livingdrug.io import ensemble as ens_io

    orig = ens_io.write_part
    written: list[Path] = []

    def flaky(out, chunk, units):  # noqa: ANN001, ANN202
        if len(written) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the third chunk is being saved
        written.append(orig(out, chunk, units))
        return written[-1]

    monkeypatch.setattr(ens_io, "write_part", flaky)
    out = tmp_path / "r"
    res = invoke("run", str(bd_file), "--out", str(out), "--chunk-size", "16", "--no-figures")
    assert res.exit_code == 130
    parts = sorted(p.name for p in (out / "parts").iterdir())
    assert parts == ["v000-r000000000.parquet", "v000-r000000016.parquet"]
    s = json.loads((out / "summary.json").read_text())
    assert s["partial"] is True and s["replicates"] == 32 and s["replicates_requested"] == 80
    assert s["probabilities"]["cure"]["trials"] == 32
    assert not (out / "manifest.json").exists()
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    assert "interrupted after 32 replicate(s)" in res.stderr


SMALL_BALL = """name = "small-ball"
title = "A small B-ALL patient (test)"
model = "car_t"

[model_options]
leukaemia = 200.0
neg_fraction = 0.01
lymphodepletion = false
toxicity = false

[patient]
weight = "70 kg"

[dosing]
dose = "20 cell"
time = "0 d"

[parameters]
K_A = "100 cell"
K_kill = "100 cell"
K_mar = "1e9 cell"
r_H = "0 1/d"
r_N = "0 1/d"
d_B = "1e-4 1/d"
d_L = "0 1/d"
extinction_threshold = "0 cell"

[initial]
N_T = "100 cell"
B_N = "0 cell"
H_M = "1000 cell"

[simulation]
start = "0 d"
days = 90
output_interval = "1 d"
engine = "ssa"
replicates = 100
seed = 7
"""


def test_small_car_t_patient_in_a_real_process(tmp_path: Path) -> None:
    """The default CAR-T model with a few hundred leukaemic cells (2 of them CD19-negative)
    and 20 CAR-T cells: remission in every replicate, CD19-negative relapses, a Kaplan–Meier
    relapse-free curve, and a clean exit."""
    f = tmp_path / "small.toml"
    f.write_text(SMALL_BALL)
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("LIVINGDRUG_DEBUG", None)
    p = subprocess.run([sys.executable, "-m", "livingdrug", "run", str(f), "--out", str(out)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr
    assert "P(remission)" in p.stdout and "median relapse time" in p.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["probabilities"]["remission"]["successes"] == 100
    # the two CD19-negative cells are never killed and (d_L = 0) never die: no replicate can be cured
    assert s["probabilities"]["cure"]["successes"] == 0
    assert s["relapse_types"]["CD19-"]["successes"] == s["probabilities"]["relapse"]["successes"] > 0
    km = s["relapse_free_survival"]
    assert km["n"] == 100 and km["events"] == s["probabilities"]["relapse"]["successes"]
    assert (out / "relapse_free_survival.png").exists() and (out / "fan_chart.png").exists()
    reps = pq.read_table(out / "replicates.parquet").to_pandas()
    assert np.nanmin(reps["relapse_time"]) > 0 and set(reps["relapse_type"]) <= {"CD19-", "none"}
