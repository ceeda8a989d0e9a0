"""The built-in "one cell" scenarios against branching theory.

`one-cell-kills` (Ruella M et al. 2018 Nat Med 24:1499) and `cure-probability` (Kimmel GJ et al.
2021 Proc R Soc B 288:20210229) turn on single leukaemic cells that CAR-T cells cannot kill.
Each such cell founds a lineage with per-cell birth r_L + d_L and death d_L; where crowding is
negligible the lineage dies out with probability q = d_L/(r_L + d_L) and n independent ones with
q^n (Kendall DG 1948 Ann Math Stat 19:1).  The tests shrink the patient's CD19+ leukaemia so
that crowding is negligible and compare the hybrid engine's probabilities with these closed
forms, within 5 binomial standard errors (fixed seeds).  `one-clone-saves` (Fraietta JA et al.
2018 Nature 558:307) is checked for what the trait does: without an advantage a single founder
cell never dominates.
"""

from __future__ import annotations

import math

import numpy as np

import livingdrug as ld
from livingdrug.models import get_model
from livingdrug.scenarios import builtin_dir, scenario_from_toml

Z = 5.0


def _toml(name: str) -> str:
    return (builtin_dir() / f"{name}.toml").read_text(encoding="utf-8")


def _q() -> float:
    net = get_model("car_t").network()
    r, d = net.param("r_L").value, net.param("d_L").value
    return d / (r + d)


def test_one_cell_kills_reports_the_infusion_probability_exactly():
    """P(≥ 1 CAR+ leukaemic cell infused) = 1 − exp(−f_contam · dose) (Poisson thinning of the
    product's leukaemic cells by the transduction efficiency)."""
    text = _toml("one-cell-kills").replace("replicates = 1000", "replicates = 20").replace(
        "days = 1095", "days = 30")
    r = ld.simulate(scenario_from_toml(text))
    cp = r.summary["count_params"]["n_car_leuk"]
    lam = 1e-9 * 1e8
    assert math.isclose(cp["mean"], lam, rel_tol=1e-12)
    assert math.isclose(cp["p_at_least_one"], -math.expm1(-lam), rel_tol=1e-12)
    assert np.all(r.endpoints["n_car_leuk"] >= 1)  # conditioned on at least one


def test_one_cell_kills_relapse_probability_is_the_lineage_survival():
    """Conditioned on N ≥ 1 masked cells (N zero-truncated Poisson(λ)), a masked relapse happens
    iff some lineage survives: P = 1 − E[q^N | N ≥ 1] = 1 − (e^{−λ(1−q)} − e^{−λ})/(1 − e^{−λ}).
    Every relapse is typed CD19-masked and none is lost by the follow-up of 3 years."""
    n = 2000
    text = (_toml("one-cell-kills")
            .replace("neg_fraction = 0.0", "neg_fraction = 0.0\nleukaemia = 1e6")
            .replace("replicates = 1000", f"replicates = {n}")
            .replace("f_contam = 1e-9", "f_contam = 1e-8"))
    r = ld.simulate(scenario_from_toml(text))
    assert r.summary["failed"] == 0
    lam, q = 1.0, _q()
    p = 1.0 - (math.exp(-lam * (1 - q)) - math.exp(-lam)) / (1 - math.exp(-lam))
    rel = r.summary["probabilities"]["relapse"]
    assert abs(rel["estimate"] - p) < Z * math.sqrt(p * (1 - p) / n), (rel["estimate"], p)
    masked = r.summary["relapse_types"]["CD19-masked (CAR+)"]
    assert masked["successes"] == rel["successes"]
    # a surviving lineage from one cell needs ~ln(5e10)/r_L ≈ 500 d to reach 5 % blasts:
    # much later than the 9 months of Ruella 2018 (the model's blasts double every 14 d)
    km = r.summary["relapse_free_survival"]
    assert 300.0 < km["median"] < 800.0 if km["median"] is not None else True


def test_cure_probability_is_the_extinction_of_the_antigen_negative_cells():
    """With 2.1 CD19-negative cells expected in the marrow (rounded stochastically to 2 or 3)
    and 0.021 in blood (0 or 1), and CD19+ blasts all killed, P(cure) =
    q² (0.9 + 0.1 q)(0.979 + 0.021 q)."""
    n = 1000
    text = (_toml("cure-probability")
            .replace("neg_fraction = 1e-11", "neg_fraction = 1e-6\nleukaemia = 2.1e6")
            .replace("replicates = 1000", f"replicates = {n}"))
    r = ld.simulate(scenario_from_toml(text))
    assert r.summary["failed"] == 0
    q = _q()
    p = q**2 * (0.9 + 0.1 * q) * (0.979 + 0.021 * q)
    cure = r.summary["probabilities"]["cure"]
    assert abs(cure["estimate"] - p) < Z * math.sqrt(p * (1 - p) / n), (cure["estimate"], p)
    # every non-cured replicate relapses with CD19-negative leukaemia
    assert r.summary["relapse_types"]["CD19-"]["successes"] == n - cure["successes"]


def test_one_clone_saves_needs_the_advantage():
    """A single stem-like founder dominates (≥ 90 % of all CAR-T cells) with the scenario's
    trait, never without it (a neutral clone of 1 cell among 10⁸ keeps a share ~10⁻⁸)."""
    base = (_toml("one-clone-saves").replace("tracked_clones = 10", "tracked_clones = 0")
            .replace('clone_cells = "10 cell"\n', "")
            .replace("replicates = 200", "replicates = 40").replace("days = 365", "days = 300"))
    adv = ld.simulate(scenario_from_toml(base))
    neutral = ld.simulate(scenario_from_toml(
        base.replace("adv_prolif = 2.0", "adv_prolif = 1.0").replace("adv_persist = 3.0",
                                                                      "adv_persist = 1.0")))
    pa = adv.summary["clonality"]["probabilities"]["adv_dominates"]
    pn = neutral.summary["clonality"]["probabilities"]["adv_dominates"]
    assert pa["low"] > 0.8
    assert pn["successes"] == 0
    assert np.nanmax(neutral.endpoints["adv_max_share"]) < 1e-4


def test_clone_diversity_over_time_starts_from_the_founders():
    """Right after the infusion (t = 0, before any division) the tracked clones are the
    founders: 10 clones of 10 cells and the advantaged clone of 1 cell, so Shannon's
    H = −Σ p ln p and Simpson's Σ p² take their closed-form values in every replicate; the
    largest tracked clone is then 10 cells of the 10⁸ infused."""
    text = (_toml("one-clone-saves").replace("replicates = 200", "replicates = 5")
            .replace("days = 365", "days = 10"))
    r = ld.simulate(scenario_from_toml(text))
    b = r.bands.sel(time=0.0)
    p = np.array([10.0] * 10 + [1.0]) / 101.0
    np.testing.assert_allclose(b["clone_shannon"].values, -(p * np.log(p)).sum(), rtol=1e-12)
    np.testing.assert_allclose(b["clone_simpson"].values, (p**2).sum(), rtol=1e-12)
    np.testing.assert_allclose(b["largest_clone_share"].values, 10.0 / 1e8, rtol=1e-9)


def test_sweep_of_the_clone_trait_reports_dominance():
    """A sweep over adv_prolif tabulates P(the advantaged clone dominates) with its interval;
    a neutral clone (×1) never dominates."""
    base = (_toml("one-clone-saves").replace("tracked_clones = 10", "tracked_clones = 0")
            .replace('clone_cells = "10 cell"\n', "")
            .replace("replicates = 200", "replicates = 8").replace("days = 365", "days = 40"))
    sw = ld.sweep(scenario_from_toml(base), "adv_prolif=1:3:lin:2")
    tab = sw.table
    assert list(tab["value"]) == [1.0, 3.0]
    assert {"p_adv_dominates", "p_adv_dominates_low", "p_adv_dominates_high"} <= set(tab.columns)
    assert tab["p_adv_dominates"].iloc[0] == 0.0
