"""How CAR-T exposure and remission change with the infused dose (pure scenario variants).

Run:  python examples/02_dose_comparison.py
"""

import livingdrug as ld
from livingdrug.scenarios import with_dose

base = ld.load_scenario("cd19-ball")
print(f"{'dose (cells)':>14} {'Cmax (cells/uL)':>16} {'Tmax (d)':>9} {'remission (d)':>14}")
for dose in (1e6, 1e7, 1e8, 5e8):
    r = ld.simulate(with_dose(base, dose), days=90).summary
    print(f"{dose:14.3g} {r['exposure']['cmax']:16.4g} {r['exposure']['tmax']:9.2f} {str(r['response']['time_to_remission']):>14}")
