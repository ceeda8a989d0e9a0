"""``livingdrug run cd19-lbcl`` / ``bcma-myeloma`` end to end: the Lugano 2014 and IMWG 2016
responses reach the terminal summary, summary.json, the figures and the report.

Plausibility (shared/reference/PUBLISHED.md section 7): the default LBCL patient responds by
day 28 (ZUMA-1, Neelapu SS et al. 2017 NEJM, paper cohort: ORR 82 %, CR 54 %); the default
myeloma patient reaches at least PR (KarMMa, Munshi NC et al. 2021 NEJM, paper cohort: ORR 73 %).
"""

import json
import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "livingdrug"]


def run(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    env.pop("LIVINGDRUG_DEBUG", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize(
    "name, section, key, good, figure",
    [
        ("cd19-lbcl", "Lymphoma response (Lugano 2014, CT)", "response_lugano", {"PR", "CR"}, "lesion_burden_spd.png"),
        ("bcma-myeloma", "Myeloma response (IMWG 2016)", "response_imwg", {"PR", "VGPR", "CR", "sCR"}, "serum_m_protein.png"),
    ],
)
def test_disease_scenario_reports_its_response(name, section, key, good, figure, tmp_path):
    out = tmp_path / name
    p = run("run", name, "--out", str(out), "--days", "120")
    assert p.returncode == 0, p.stderr
    assert section in p.stdout and "Response at day 28" in p.stdout and "Best response" in p.stdout
    summary = json.loads((out / "summary.json").read_text())
    block = summary[key]
    assert set(block) >= {"day_28", "day_90", "best_response", "time_to_response"}
    assert block["best_response"] in good
    assert "response" not in summary  # no B-ALL (blasts) response for these diseases
    html = (out / "report.html").read_text()
    assert section in html and "Best response" in html
    assert (out / figure).exists()
    if name == "cd19-lbcl":
        assert block["day_28"] in good and block["bcell_aplasia_start"] is not None
    else:
        assert block["hypogamma_start"] is not None
