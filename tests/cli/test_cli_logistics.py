"""``livingdrug logistics`` end to end: a real process, real files, clean errors."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

CLI = [sys.executable, "-m", "livingdrug"]


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("LIVINGDRUG_DEBUG", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


def test_logistics_run_writes_the_run_folder(tmp_path):
    out = tmp_path / "centre"
    p = run("logistics", "autologous-centre", "--out", str(out), "--months", "4", "--seed", "3")
    assert p.returncode == 0, p.stderr
    names = {f.name for f in out.iterdir()}
    assert {"patients.parquet", "summary.json", "manifest.json", "report.html", "vein_to_vein.png",
            "cumulative_referred_infused.png", "suite_utilisation.png"} <= names
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]
    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    table = pq.read_table(out / "patients.parquet")
    assert table.num_rows == summary["referred"] > 0
    assert manifest["seed"] == 3 and manifest["overrides"] == {"months": 4.0}
    assert len(manifest["scenario"]["sha256"]) == 64 and "autologous-centre" in manifest["scenario"]["text"]
    assert "vein-to-vein" in p.stdout and "not medical advice" in p.stdout
    assert "second attempt" in p.stdout and "failed products by attempt" in p.stdout
    assert summary["max_attempts"] == 2 and len(summary["failures_by_attempt"]) == 2
    attempts = table.column("attempts").to_numpy()
    assert summary["second_attempts"] == int((attempts >= 2).sum())
    assert table.schema.field("attempts").metadata[b"unit"] == b"1"
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and "not medical advice" in html


def test_logistics_same_seed_gives_identical_patients(tmp_path):
    for d in ("a", "b"):
        p = run("logistics", "off-the-shelf-centre", "--out", str(tmp_path / d), "--months", "3",
                "--seed", "5", "--no-figures")
        assert p.returncode == 0, p.stderr
    assert (tmp_path / "a" / "patients.parquet").read_bytes() == (tmp_path / "b" / "patients.parquet").read_bytes()
    assert (tmp_path / "a" / "inventory.png").exists() is False  # --no-figures


def test_logistics_list():
    p = run("logistics", "--list")
    assert p.returncode == 0
    for name in ("autologous-centre", "autologous-centre-slow", "off-the-shelf-centre"):
        assert name in p.stdout


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('kind = "autologous"\n[capacity]\nsuites = 0\n', "capacity.suites = 0"),
        ('[programme]\nreferrals_per_week = -2\n', "programme.referrals_per_week = -2"),
        ('kind = "off-the-shelf"\n[inventory]\nlead = "90 d"\nshelf_life = "30 d"\n', "inventory.shelf_life"),
        ('[programme]\nlymphodepletion_lead = "21 d"\ninfusion_window = "14 d"\n', "programme.lymphodepletion_lead"),
        ('[programme\n', "valid TOML"),
        ('[capacity]\nmax_manufacturing_attempts = 0\n', "capacity.max_manufacturing_attempts = 0"),
        ('[capacity]\nmax_manufacturing_attempts = 1.5\n', "capacity.max_manufacturing_attempts = 1.5"),
        ('[capacity]\nremanufacture_from = "fresh"\n', "capacity.remanufacture_from"),
    ],
)
def test_bad_logistics_file_exits_2_with_one_line(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    p = run("logistics", str(f), "--out", str(tmp_path / "o"))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and needle in p.stderr and "bad.toml" in p.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [(("no-such-centre",), "built-in logistics scenario"), (("--months", "0"), "--months"),
     (("--seed", "-1"), "--seed")],
)
def test_bad_logistics_arguments_exit_2(tmp_path, args, needle):
    p = run("logistics", *args, "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "Traceback" not in p.stderr and needle in p.stderr


def test_logistics_with_the_disease_model(tmp_path):
    out = tmp_path / "centre"
    p = run("logistics", "autologous-centre", "--out", str(out), "--months", "3", "--disease", "cd19-ball",
            "--no-figures")
    assert p.returncode == 0, p.stderr
    summary = json.loads((out / "summary.json").read_text())
    dm = summary["disease_model"]
    assert dm["scenario"] == "cd19-ball" and dm["referred"] == summary["referred"] and dm["infused"] == summary["infused"]
    assert "by the disease model" in p.stdout
    assert json.loads((out / "manifest.json").read_text())["overrides"]["disease"] == "cd19-ball"
    p = run("logistics", "autologous-centre", "--months", "3", "--disease", "cd19-bal", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and "cd19-ball" in p.stderr and "Traceback" not in p.stderr
