"""``livingdrug trial`` end to end: a real process, real files, ``kill -9`` and ``--resume``.

The design is cd19-ball shortened to 60 days of daily output with a small virtual population
(weight, expansion and leukaemic burden vary), so each chunk takes a fraction of a second.
Endpoints must be *bitwise* those of an uninterrupted in-process run: the trial promises that
patient *i*'s endpoints depend only on *i*, the design and the seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from livingdrug.trial import run_trial

CLI = [sys.executable, "-m", "livingdrug"]

DESIGN = """
name = "cli-trial"
title = "CLI CD19 CAR-T trial"
model = "car_t"

[patient]
weight = "70 kg"

[dosing]
dose = "1e8 cell"
time = "0 d"

[simulation]
start = "-6 d"
days = 60
output_interval = "1 d"

[population]
patients = 16
seed = 5

[population.parameters.weight]
median = "70 kg"
cv = 0.2
lower = "40 kg"
upper = "140 kg"

[population.parameters.k_exp]
cv = 0.3

[population.covariates.leukaemia]
median = "1.5e11 cell"
cv = 1.0
lower = "1e9 cell"
upper = "2.2e11 cell"
"""


def env() -> dict[str, str]:
    e = dict(os.environ, PYTHONUNBUFFERED="1")
    src = str(Path(__file__).resolve().parents[2] / "src")
    e["PYTHONPATH"] = src + os.pathsep + e.get("PYTHONPATH", "")  # this checkout's livingdrug
    e.pop("LIVINGDRUG_DEBUG", None)
    return e


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=600, env=env())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def design(tmp_path: Path) -> Path:
    f = tmp_path / "design.toml"
    f.write_text(DESIGN)
    return f


def test_trial_writes_the_folder_and_reports_progress(design, tmp_path):
    out = tmp_path / "t"
    p = run("trial", str(design), "--patients", "12", "--chunk-size", "5", "--out", str(out))
    assert p.returncode == 0, p.stderr
    names = {x.name for x in out.iterdir()}
    assert {"trial.json", "parts", "endpoints.parquet", "summary.json", "manifest.json", "report.html"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert sorted(x.name for x in (out / "parts").iterdir()) == [
        f"part-{k:06d}.{ext}" for k in range(3) for ext in ("parquet", "sha256")]
    table = pq.read_table(out / "endpoints.parquet")
    assert table.column("patient").to_pylist() == list(range(12))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "trial" and manifest["patients"] == 12 and manifest["chunks"] == 3
    assert manifest["reused_chunks"] == 0 and manifest["outputs"]["endpoints.parquet"] == sha(out / "endpoints.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arms"]["CLI CD19 CAR-T trial"]["referred"] == 12
    assert "12 virtual patients, seed 5" in p.stdout and "patients/s" in p.stdout and "not medical advice" in p.stdout


def one_line_error(p, *needles: str) -> None:
    """Exit 2 and one ``error:`` line on stderr naming what is wrong (``p``: a finished process
    or typer's in-process result)."""
    code = p.returncode if isinstance(p, subprocess.CompletedProcess) else p.exit_code
    assert code == 2, (code, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def invoke(*args: str):
    from typer.testing import CliRunner

    from livingdrug import cli

    return CliRunner().invoke(cli.app, list(args))


def test_bad_input_in_a_real_process_is_one_clear_line(design, tmp_path):
    one_line_error(run("trial", str(design), "--executor", "foo", "--out", str(tmp_path / "t")),
                   "--executor foo", "local or dask")
    assert not (tmp_path / "t").exists()


def test_bad_input_is_one_clear_line(design, tmp_path):
    out = str(tmp_path / "t")
    one_line_error(invoke("trial", str(design), "--resume"), "--resume needs --out")
    one_line_error(invoke("trial", str(design), "--scheduler", "tcp://127.0.0.1:1", "--out", out), "--executor dask")
    one_line_error(invoke("trial", str(design), "--chunk-size", "0", "--out", out), "--chunk-size 0")
    single = tmp_path / "single.toml"
    single.write_text(DESIGN.split("[population]")[0])
    one_line_error(invoke("trial", str(single), "--out", out), "single.toml", "population")
    one_line_error(invoke("trial", str(design), "--resume", "--out", out), "trial.json", "nothing to resume")
    assert not (tmp_path / "t").exists()
    # a second run into a trial folder, and a resume with another seed
    assert invoke("trial", str(design), "--patients", "3", "--out", out, "--no-figures").exit_code == 0
    one_line_error(invoke("trial", str(design), "--patients", "3", "--out", out), "trial.json", "--resume")
    one_line_error(invoke("trial", str(design), "--patients", "3", "--seed", "6", "--resume", "--out", out),
                   "seed", "another folder")


def test_kill_9_then_resume_keeps_finished_parts(design, tmp_path):
    n, chunk = 240, 4
    out = tmp_path / "t"
    parts = out / "parts"
    proc = subprocess.Popen([*CLI, "trial", str(design), "--patients", str(n), "--chunk-size", str(chunk),
                             "--out", str(out), "--no-figures"], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (parts / "part-000001.sha256").exists():
            assert proc.poll() is None, "the trial ended before it could be killed"
            assert time.monotonic() < deadline, "no part after 300 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    finished = {p.name.replace(".sha256", ".parquet") for p in parts.glob("part-*.sha256")}
    assert 2 <= len(finished) < n // chunk and not (out / "manifest.json").exists()
    mtimes = {name: (parts / name).stat().st_mtime_ns for name in finished}
    p = run("trial", str(design), "--patients", str(n), "--chunk-size", str(chunk), "--out", str(out),
            "--no-figures", "--resume")
    assert p.returncode == 0, p.stderr
    assert {name: (parts / name).stat().st_mtime_ns for name in finished} == mtimes  # kept, not recomputed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reused_chunks"] == len(finished) and manifest["chunks"] == n // chunk
    assert not list(parts.glob(".*.tmp"))
    table = pq.read_table(out / "endpoints.parquet")
    assert table.column("patient").to_pylist() == list(range(n))  # each patient exactly once, in order
    # bitwise the table of an uninterrupted run in one chunk
    ref = run_trial(design, tmp_path / "ref", patients=n, chunk_size=n, figures=False)
    assert sha(out / "endpoints.parquet") == sha(ref.folder / "endpoints.parquet")


def test_calibrate_command_writes_the_calibration(tmp_path):
    """`livingdrug calibrate liu2020-carnk`: every published target reproduced (Liu E et al.
    2020 NEJM 382:545: 7/11 complete remissions, no CRS, no ICANS), files written, exit 0."""
    out = tmp_path / "cal"
    p = subprocess.run([sys.executable, "-m", "livingdrug", "calibrate", "liu2020-carnk", "--out", str(out),
                        "--no-figures"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    names = {f.name for f in out.iterdir()}
    assert {"calibration.json", "calibration.md", "weights.parquet"} <= names
    cal = json.loads((out / "calibration.json").read_text())
    assert "effective sample size" in p.stdout and "NO" not in p.stdout
    assert cal["all_within"] and cal["n_effective"] > 0.2 * cal["patients"]
    p = subprocess.run([sys.executable, "-m", "livingdrug", "calibrate", "liu2020-carnk", "--method", "magic"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--method magic" in p.stderr and "Traceback" not in p.stderr


def test_help_names_the_scenario_sections_it_needs():
    """Rich markup would swallow "[population]" in the argument's help; it is escaped."""
    r = invoke("trial", "--help")
    assert r.exit_code == 0 and "[population]" in " ".join(r.output.split())
    r = invoke("calibrate", "--help")
    assert r.exit_code == 0 and "[population] and [[targets]]" in " ".join(r.output.split())
