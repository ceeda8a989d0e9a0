"""Autologous CAR-T against off-the-shelf CAR-NK in the same virtual patients, from referral.

Runs the built-in comparison ``cart-vs-carnk`` (docs/comparison.md) with 40 virtual patients:
each is referred, waits for an autologous CAR-T product made for them (autologous-centre,
median vein-to-vein ~30 d) or for a CAR-NK dose from stock (off-the-shelf-centre, ~13 d),
may drop out while waiting, and is treated with the B-ALL model.  Prints per arm the
response by intention to treat (every referred patient in the denominator), CRS of any grade
among the infused (ASTCT, Lee 2019) with Wilson 95 % intervals and the median time from
referral to infusion, then the paired difference in ITT response with McNemar's exact test
(McNemar 1947).  Saves the run folder (table, summary, figures, report.html) to OUT_DIR or a
temporary folder.  The models are calibrated to one default patient, not to trials.

Run:  python examples/04_cart_vs_carnk.py [OUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

from livingdrug.comparison import run_comparison
from livingdrug.report.comparison import save_comparison_run
from livingdrug.scenarios.comparison import load_comparison

comparison = load_comparison("cart-vs-carnk")
result = run_comparison(comparison, patients=40, seed=0)
s = result.summary


def pct(p: dict) -> str:
    """A proportion as 'estimate % (low–high) [k/n]'."""
    return f"{100 * p['estimate']:5.1f} % ({100 * p['low']:.0f}–{100 * p['high']:.0f}) [{p['successes']}/{p['trials']}]"


print(f"{comparison.title}: {s['patients']} virtual patients, seed {s['seed']}\n")
print(f"{'arm':24} {'ITT response':>24} {'CRS grade >= 1 (infused)':>26} {'referral -> infusion':>21}")
for name, arm in s["arms"].items():
    wait = arm["referral_to_infusion_days"]["median"]
    print(f"{name:24} {pct(arm['response_itt']):>24} {pct(arm['crs_grade_ge_1']):>26} {wait:>17.1f} d")

for p in s["paired"]:
    d = p["discordant_pairs"]
    print(f"\npaired, {p['arm']} vs {p['reference']} (same patients): ITT response "
          f"{100 * p['response_itt_difference']:+.1f} percentage points; {d['only_arm']} responded only with "
          f"{p['arm']}, {d['only_reference']} only with {p['reference']} (McNemar exact p = {p['mcnemar_p']:.2g})")

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="livingdrug-cmp-"))
folder = save_comparison_run(result, out)
print(f"\nwrote {folder}/ (patients.parquet, summary.json, figures, report.html, manifest.json)")
print("Research and education use only; not medical advice.")
