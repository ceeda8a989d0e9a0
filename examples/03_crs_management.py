"""Managing severe CRS: toxicity averted against efficacy lost (built-in scenario crs-management).

A high-risk B-ALL patient (5e11 leukaemic cells, 1e9 CAR-T, strong IL-6 response) under four
strategies: no management; tocilizumab at CRS grade >= 2; + dexamethasone at grade >= 3; +
the iCasp9 suicide switch at grade >= 4.  Prints the maximum CRS and ICANS grades (in-model
ASTCT grades), CAR-T peak, remission, B-cell aplasia and relapse, and saves a figure.

Run:  python examples/03_crs_management.py [OUT_DIR]
"""

import sys
from pathlib import Path

import numpy as np

import livingdrug as ld
from livingdrug.scenarios import with_parameters

NEVER = 9.0
STRATEGIES = {
    "none": dict(tcz_at_crs_grade=NEVER, steroids_at_crs_grade=NEVER, steroids_at_icans_grade=NEVER,
                 switch_at_crs_grade=NEVER),
    "tocilizumab >= 2": dict(tcz_at_crs_grade=2, steroids_at_crs_grade=NEVER, steroids_at_icans_grade=NEVER,
                             switch_at_crs_grade=NEVER),
    "+ steroids >= 3": dict(tcz_at_crs_grade=2, steroids_at_crs_grade=3, steroids_at_icans_grade=3,
                            switch_at_crs_grade=NEVER),
    "+ switch at 4": dict(tcz_at_crs_grade=2, steroids_at_crs_grade=3, steroids_at_icans_grade=3,
                          switch_at_crs_grade=4),
}

base = ld.load_scenario("crs-management")
results = {name: ld.simulate(with_parameters(base, **rules), days=180) for name, rules in STRATEGIES.items()}
# the switch only fires if grade 4 is reached: show it alone too (tocilizumab and steroids off)
results["switch at 4 only"] = ld.simulate(with_parameters(base, **{**STRATEGIES["none"], "switch_at_crs_grade": 4}),
                                          days=180)

print(f"{'strategy':18} {'CRS max':>7} {'ICANS max':>9} {'CAR-T peak':>11} {'remission d':>11} "
      f"{'aplasia d':>9} {'relapse':>8} {'doses T/D/switch':>17}")
for name, r in results.items():
    ds, resp = r.dataset, r.summary["response"]
    def v(n: str, ds=ds) -> np.ndarray:
        return ds[n].values[0]
    rem = resp["time_to_remission"]
    print(f"{name:18} {v('crs_grade_model').max():7.0f} {v('icans_grade_model').max():9.0f} "
          f"{v('car_t_total').max():11.3g} {f'{rem:.1f}' if rem is not None else 'no':>11} "
          f"{resp['bcell_aplasia_duration']:9.1f} {resp['relapse_type']:>8} "
          f"{int(v('tcz_n').max()):>7}/{int(v('dex_n').max())}/{int(v('switch_n').max())}")

if len(sys.argv) > 1:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for name, r in results.items():
        ds, t = r.dataset, r.dataset.time.values
        axes[0, 0].step(t, ds["crs_grade_model"].values[0], where="post", label=name)
        axes[0, 1].semilogy(t, ds["il6_signalling"].values[0], label=name)
        axes[1, 0].semilogy(t, np.maximum(ds["car_t_total"].values[0], 1.0), label=name)
        axes[1, 1].semilogy(t, np.maximum(ds["leukaemia_total"].values[0], 1.0), label=name)
    for ax, title in zip(axes.flat, ("CRS grade (in-model ASTCT)", "IL-6 signalling (pg/mL)",
                                     "CAR-T cells (cell)", "leukaemic cells (cell)"), strict=True):
        ax.set_title(title)
        ax.set_xlim(-2, 60)
    axes[1, 0].set_xlabel("days after infusion")
    axes[1, 1].set_xlabel("days after infusion")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    path = out / "crs_management.png"
    fig.savefig(path, dpi=120)
    print("wrote", path)
