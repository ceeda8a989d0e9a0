"""CRS / ICANS mechanism, management drugs and the suicide switch (issue 4, parts 1, 4, 7).

Runs the real ODE engine through the public API (``livingdrug.api.simulate``) on the default
B-ALL patient (``cd19-ball``) and the high-risk patient of ``crs-management``.  Clinical
anchors: ELIANA (Maude SL et al. 2018 NEJM 378:439; pooled onset in Levine JE et al. 2021
J Immunother Cancer): CRS median onset 3 d (range 1-22), 46-47 % grade 3-4; Hay KA et al.
2017 Blood 130:2295: severity rises with marrow burden and dose and tracks CAR-T expansion
(Cmax); Nishimoto N et al. 2008 Blood 112:3959: serum IL-6 rises after IL-6R blockade;
Di Stasi A et al. 2011 NEJM 365:1673: > 90 % of iCasp9 T cells eliminated within 30 min.
"""

from __future__ import annotations

import json
import math
import tomllib
from functools import cache

import numpy as np
import pytest
import sympy as sp

import livingdrug as ld
from livingdrug.models import car_t
from livingdrug.models.cytokines import (
    CLINICAL_SIGNS,
    RULE_PARAMS,
    expansion_factor,
    toxicity_block,
)
from livingdrug.network import sym
from livingdrug.scenarios import dump_scenario, load_scenario, scenario_from_dict, with_parameters


def _scenario(name: str = "cd19-ball", *, dose: float | None = None, leukaemia: float | None = None,
              days: float = 120, toxicity: bool = True, **params: float):
    d = tomllib.loads(dump_scenario(load_scenario(name)))
    if dose is not None:
        d["dosing"]["dose"] = f"{dose:g} cell"
    mo = d.setdefault("model_options", {})
    if leukaemia is not None:
        mo["leukaemia"] = leukaemia
    mo["toxicity"] = toxicity
    d["simulation"]["days"] = days
    s = scenario_from_dict(json.loads(json.dumps(d)))
    return with_parameters(s, **params) if params else s


@cache
def _run(name: str = "cd19-ball", dose: float | None = None, leukaemia: float | None = None,
         toxicity: bool = True, params: tuple = ()):
    r = ld.simulate(_scenario(name, dose=dose, leukaemia=leukaemia, toxicity=toxicity, **dict(params)))
    assert int(r.dataset["status"].values[0]) == 0, r.dataset["message"].values[0]
    return r


def _v(r, name: str) -> np.ndarray:
    return np.asarray(r.dataset[name].values[0], dtype=float)


def _t(r) -> np.ndarray:
    return np.asarray(r.dataset.time.values, dtype=float)


def _onset(r, role: str = "crs_grade_model", grade: int = 1) -> float:
    g, t = _v(r, role), _t(r)
    i = np.flatnonzero((g >= grade) & (t >= 0))
    return float(t[i[0]]) if len(i) else math.nan


def _fever_onset(r) -> float:
    """First crossing of 38.0 degC after infusion, linearly interpolated between outputs (d)."""
    T, t = _v(r, "temperature_c"), _t(r)
    i = np.flatnonzero((T >= 38.0) & (t >= 0))[0]
    return float(t[i - 1] + (38.0 - T[i - 1]) * (t[i] - t[i - 1]) / (T[i] - T[i - 1]))


# --- structure -----------------------------------------------------------------------------


def test_contract_observables_have_their_roles():
    net = car_t.build()
    for name in CLINICAL_SIGNS:
        o = net.observable_by_role(name)
        assert o is not None and o.name == name
    for p in RULE_PARAMS:
        assert net.param(p.name).value == 9.0
    assert {"Cytokines", "Clinical signs"} <= set(net.meta["groups"])


def test_expansion_factor_is_exactly_one_without_drug():
    f = expansion_factor()
    assert float(f.subs({sym("Dex"): 0.0, sym("dex_e_exp"): 0.7, sym("dex_ec50"): 2.0})) == 1.0
    # and lies in (0, 1] with drug: 1 - 0.7 * 100/(100 + 2)
    assert float(f.subs({sym("Dex"): 100.0, sym("dex_e_exp"): 0.7, sym("dex_ec50"): 2.0})) == pytest.approx(
        1 - 0.7 * 100 / 102)


def test_block_switch_acts_on_every_car_species():
    b = toxicity_block(engaged=sym("E"), car_species=["A1", "A2"], volume_ul=sp.Float(5e6))
    kills = {r.name: r.stoich for r in b.reactions if r.name.startswith("switch_kill_")}
    assert kills == {"switch_kill_A1": {"A1": -1}, "switch_kill_A2": {"A2": -1}}


def test_toxicity_option_is_a_flag_and_can_be_switched_off():
    with pytest.raises(ValueError, match="toxicity"):
        car_t.build(toxicity="yes")  # type: ignore[arg-type]
    assert len(car_t.build(toxicity=False).species) == 11


# --- calibration: default patient ---------------------------------------------------------


def test_default_patient_crs_onset_grade_and_later_icans():
    r = _run()
    onset = _onset(r)
    # ELIANA (Maude 2018, 75 infused): median onset 3 d, range 1-22; a high-burden patient
    # (2.1e11 blasts) should start within 2-4 d
    assert 2.0 <= onset <= 4.0
    # high marrow burden: grade 3 (ELIANA 46-47 % grade 3-4)
    assert _v(r, "crs_grade_model").max() == 3
    # ICANS later than CRS and at most grade 3 (ELIANA: no grade 4 neurological events)
    assert _onset(r, "icans_grade_model") > onset
    assert _v(r, "icans_grade_model").max() <= 3
    # no rule fires by default (every rule parameter is 9 = never)
    for n in ("tcz_n", "dex_n", "ana_n", "switch_n"):
        assert _v(r, n).max() == 0.0
    # CRS resolves: grade 0 by day 60
    assert _v(r, "crs_grade_model")[_t(r) >= 60].max() == 0


def test_toxicity_block_leaves_cell_dynamics_unchanged_without_drugs():
    a, b = _run(), _run(toxicity=False)
    for obs in ("car_t_total", "leukaemia_total", "b_cells_blood"):
        x, y = _v(a, obs), _v(b, obs)
        big = y > 1e3  # compare where the population is well above round-off of the solver
        assert np.allclose(x[big], y[big], rtol=1e-3), obs
    assert a.summary["response"]["time_to_remission"] == b.summary["response"]["time_to_remission"]


# --- Hay 2017: burden and dose --------------------------------------------------------------


def test_higher_burden_gives_earlier_more_severe_crs_and_more_il6():
    runs = [_run(leukaemia=L) for L in (2e10, 1e11, 4e11)]
    fever = [_fever_onset(r) for r in runs]
    grades = [_v(r, "crs_grade_model").max() for r in runs]
    il6 = [_v(r, "il6_pg_ml").max() for r in runs]
    assert fever[0] > fever[1] > fever[2]
    assert grades[0] <= grades[1] <= grades[2] and grades[0] < grades[2]
    assert il6[0] < il6[1] < il6[2]


def test_higher_dose_gives_earlier_crs_more_il6_and_no_lower_grade():
    """Hay KA et al. 2017 Blood 130:2295: CAR-T dose is a risk factor of severe CRS. Default
    burden (2.1e11 blasts): over 1e7, 1e8, 1e9 CAR-T cells onset comes earlier, peak IL-6
    strictly rises and the maximal grade does not fall, although the CAR-T peak (set by the
    tumour) does not rise with dose: the mechanism is the product's ex vivo activation state,
    which wanes after infusion, so a bigger dose engages the leukaemia while its cells still
    secrete more IFN-gamma per engaged cell."""
    runs = [_run(dose=d) for d in (1e7, 1e8, 1e9)]
    onsets = [_onset(r) for r in runs]
    grades = [_v(r, "crs_grade_model").max() for r in runs]
    il6 = [_v(r, "il6_pg_ml").max() for r in runs]
    cmax = [_v(r, "car_t_total").max() for r in runs]
    assert onsets[0] > onsets[1] > onsets[2]
    assert il6[0] < il6[1] < il6[2]
    assert grades[0] <= grades[1] <= grades[2]
    assert cmax[0] > cmax[2]  # the tumour, not the dose, sets the CAR-T peak in this cell model


def test_higher_dose_raises_the_grade_at_a_moderate_burden():
    """At a moderate marrow burden (5e10 blasts), where the grade is not saturated, a higher
    dose gives strictly more IL-6 and the maximal grade rises within 1e7-1e9 CAR-T cells (Hay
    2017: dose is a risk factor of severe CRS)."""
    runs = [_run(dose=d, leukaemia=5e10) for d in (1e7, 1e8, 1e9)]
    grades = [_v(r, "crs_grade_model").max() for r in runs]
    il6 = [_v(r, "il6_pg_ml").max() for r in runs]
    assert il6[0] < il6[1] < il6[2]
    assert grades[0] <= grades[1] <= grades[2] and grades[0] < grades[2]


def test_peak_il6_tracks_car_t_expansion_across_burden():
    # Hay 2017: CRS severity tracks CAR-T Cmax; across marrow burden (same dose) the peak IL-6
    # orders exactly as the CAR-T peak (Spearman rank correlation 1)
    runs = [_run(leukaemia=L) for L in (2e10, 1e11, 4e11)] + [_run()]
    cmax = np.array([_v(r, "car_t_total").max() for r in runs])
    il6 = np.array([_v(r, "il6_pg_ml").max() for r in runs])
    assert (np.argsort(np.argsort(cmax)) == np.argsort(np.argsort(il6))).all()


# --- management ------------------------------------------------------------------------------


def test_tocilizumab_lowers_signalling_and_grade_raises_serum_il6_and_keeps_killing():
    none, tcz = _run(), _run(params=(("tcz_at_crs_grade", 2.0),))
    t = _t(tcz)
    first = t[np.flatnonzero(_v(tcz, "tcz_n") >= 1)[0]]
    assert 1.0 <= _v(tcz, "tcz_n").max() <= 4.0
    assert _v(tcz, "anticytokine_given")[t >= first].min() == 1.0
    assert _v(tcz, "il6_signalling").max() < 0.7 * _v(none, "il6_signalling").max()
    assert _v(tcz, "crs_grade_model").max() < _v(none, "crs_grade_model").max()
    # serum IL-6 rises after IL-6R blockade (receptor-mediated clearance lost; Nishimoto 2008)
    assert _v(tcz, "il6_pg_ml").max() > 2 * _v(none, "il6_pg_ml").max()
    # killing untouched: remission reached at the same time, CAR-T expansion unchanged
    assert tcz.summary["response"]["time_to_remission"] == none.summary["response"]["time_to_remission"]
    assert _v(tcz, "car_t_total").max() == pytest.approx(_v(none, "car_t_total").max(), rel=1e-3)


def test_repeat_tocilizumab_doses_are_at_least_8_hours_apart():
    r = _run("crs-management", params=(("steroids_at_crs_grade", 9.0), ("steroids_at_icans_grade", 9.0),
                                        ("switch_at_crs_grade", 9.0)))
    n, t = _v(r, "tcz_n"), _t(r)
    times = [t[np.flatnonzero(n >= k)[0]] for k in range(1, int(n.max()) + 1)]
    assert 1 <= len(times) <= 4
    assert all(b - a >= 8 / 24 - 0.25 for a, b in zip(times, times[1:], strict=False))  # 0.25 d output grid


def test_steroids_reduce_car_t_expansion_but_keep_remission():
    none, ster = _run(), _run(params=(("steroids_at_crs_grade", 2.0),))
    assert _v(ster, "dex_n").max() >= 1
    assert _v(ster, "car_t_total").max() < 0.8 * _v(none, "car_t_total").max()
    assert not math.isnan(ster.summary["response"]["time_to_remission"] or math.nan)


def test_switch_at_grade_4_eliminates_car_t_stops_crs_and_costs_efficacy():
    base = (("tcz_at_crs_grade", 9.0), ("steroids_at_crs_grade", 9.0), ("steroids_at_icans_grade", 9.0))
    none = _run("crs-management", params=(*base, ("switch_at_crs_grade", 9.0)))
    sw = _run("crs-management", params=base)  # switch_at_crs_grade = 4 from the scenario
    assert _v(none, "crs_grade_model").max() == 4  # this patient reaches grade 4 untreated
    t, rim, car, grade = _t(sw), _v(sw, "Rim"), _v(sw, "car_t_total"), _v(sw, "crs_grade_model")
    i0 = np.flatnonzero(rim > 0)[0] - 1  # last output before the rimiducid dose
    t_sw = t[i0]
    assert grade[i0 + 1] == 4 or grade[i0] >= 3
    # >= 90 % of CAR-T cells gone within hours (Di Stasi 2011): by the next output (<= 6 h)
    assert car[i0 + 1] <= 0.1 * car[i0]
    # CRS falls below grade 4 within two days of the switch (endothelial recovery, t1/2 ~2 d)
    assert grade[(t > t_sw) & (t <= t_sw + 2.0)].min() < 4
    # efficacy lost: slower remission and lower CAR-T persistence at day 60
    assert sw.summary["response"]["time_to_remission"] > none.summary["response"]["time_to_remission"]
    j = np.searchsorted(t, 60.0)
    assert car[j] < _v(none, "car_t_total")[j]


def test_crs_management_rules_avert_grade_4():
    none = _run("crs-management", params=(("tcz_at_crs_grade", 9.0), ("steroids_at_crs_grade", 9.0),
                                           ("steroids_at_icans_grade", 9.0), ("switch_at_crs_grade", 9.0)))
    managed = _run("crs-management")
    assert _v(none, "crs_grade_model").max() == 4
    assert _v(managed, "crs_grade_model").max() < 4
    assert managed.summary["response"]["time_to_remission"] is not None


# --- stochastic engines: exact ones refuse concentrations, the hybrid integrates them ---------------


def test_exact_and_tau_engines_refuse_cytokine_species_with_a_clear_error():
    from livingdrug.engines.ssa import solve_ssa
    from livingdrug.engines.tau import solve_tau
    from livingdrug.scenarios import ScenarioError, with_engine

    net = car_t.build()
    c = net.compile()
    for solver in (solve_ssa, solve_tau):
        with pytest.raises(ValueError, match=r"species IFNg .* pg/mL.*hybrid.*toxicity = false"):
            solver(c, net.initial_state(), net.parameter_vector(), np.array([0.0, 1.0]), seed=0, replicates=1)
    for engine in ("ssa", "tau"):
        with pytest.raises(ScenarioError, match="toxicity = false") as e:
            with_engine(load_scenario("cd19-ball"), engine)
        assert e.value.field == "simulation.engine"
    # the stochastic built-ins run the cell-only model
    for name in ("cure-probability", "one-cell-kills", "one-clone-saves"):
        assert load_scenario(name).model_options["toxicity"] is False


def test_hybrid_integrates_cytokines_deterministically_and_matches_the_ode():
    """The hybrid keeps the ODE-only species (pg/mL, mg) continuous whatever their value: over
    the first 6 days the cell populations that drive cytokines (1e8 infused CAR-T, 2e11 CD19+
    blasts) are far above the threshold and only the small CD19-negative subclone (which no
    CAR-T cell engages) is simulated cell by cell, so the hybrid must reproduce the ODE solution
    of IL-6 (up to its own DOPRI5 tolerance) — while a concentration below 100 pg/mL (the
    threshold) is never rounded to a whole number."""
    from livingdrug.engines.hybrid import solve_hybrid
    from livingdrug.engines.ode import solve

    net = car_t.build()
    c = net.compile()
    y0, P = net.initial_state(), net.parameter_vector()
    t = np.array([0.5, 2.0, 4.0, 6.0])
    t0 = float(net.meta["time_start"])
    ode = solve(c, y0, P, t, t0=t0, rtol=1e-9, atol=1e-9)
    hyb = solve_hybrid(c, y0, P, t, t0=t0, seed=3, replicates=2, threshold=100.0)
    assert list(hyb.status) == [0, 0]
    i6 = net.species_names.index("IL6")
    assert np.all(ode.y[0, :, i6] < 1e5)
    for r in range(2):
        np.testing.assert_allclose(hyb.y[r, :, i6], ode.y[0, :, i6], rtol=1e-4)
    # small concentrations are not whole numbers (never rounded)
    ifng = net.species_names.index("IFNg")
    small = hyb.y[0, :, ifng][(hyb.y[0, :, ifng] > 0) & (hyb.y[0, :, ifng] < 100)]
    assert np.all(small != np.round(small))


def test_disease_overrides_set_block_defaults_and_unknown_names_are_refused():
    b = toxicity_block(engaged=sym("E"), car_species=["A1"], volume_ul=sp.Float(5e6),
                       overrides={"sigma_ifng": (5e-4, "test source")})
    p = {q.name: q for q in b.params}["sigma_ifng"]
    assert p.value == 5e-4 and p.source == "test source"
    with pytest.raises(ValueError, match=r"\['sigma_ifn'\].*TOX_PARAMS"):
        toxicity_block(engaged=sym("E"), car_species=["A1"], volume_ul=sp.Float(5e6), overrides={"sigma_ifn": (1.0, "x")})
    # the myeloma model carries its own default; lbcl and B-ALL the block's
    from livingdrug.models import get_model
    assert get_model("myeloma").network().param("sigma_ifng").value == 5e-4
    assert car_t.build().param("sigma_ifng").value == 1e-3


def test_product_activation_is_set_at_infusion_and_wanes_with_its_half_life():
    """Pact' = -ln2/t_half Pact after Pact <- 1 at t_inf: Pact(t_inf + t_half) = 1/2 (closed form)."""
    r = _run()
    t, pact = _t(r), _v(r, "Pact")
    assert pact[t < 0].max() == 0.0
    th = car_t.build().param("act_thalf").value
    for day in (1.0, th, 2 * th):
        assert pact[np.argmin(np.abs(t - day))] == pytest.approx(2.0 ** (-day / th), rel=1e-4)
