"""One CD19 CAR-T infusion in one virtual B-ALL patient, through the Python API.

Run:  python examples/01_default_patient.py [OUT_DIR]
"""

import sys

import livingdrug as ld

scenario = ld.load_scenario("cd19-ball")
result = ld.simulate(scenario, days=180)

e = result.summary["exposure"]
r = result.summary["response"]
print(f"CAR-T peak {e['cmax']:.3g} {e['unit']} on day {e['tmax']:.1f}; AUC0-28 {e['auc_0_28']:.3g} {e['unit']}·d")
print(f"remission on day {r['time_to_remission']}, MRD-negative on day {r['time_to_mrd_negative']}")

if len(sys.argv) > 1:
    print("wrote", ld.save_run(result, sys.argv[1]))
