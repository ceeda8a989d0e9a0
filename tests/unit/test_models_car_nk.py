"""The ``car_nk`` model: allogeneic CD19 CAR-NK cells in the default B-ALL patient (issue 5,
parts 1 and 5).

Clinical anchor (shared/reference/PUBLISHED.md section 7): Liu E et al. 2020 NEJM 382:545,
cord-blood CD19 CAR-NK with IL-15 and iCasp9 in 11 patients with CD19+ lymphoma/CLL, three dose
levels (1e5, 1e6, 1e7 cells/kg) after Flu/Cy: 8/11 responded, 7 CR; no CRS, no ICANS, no GvHD;
CAR-NK persisted at low levels for at least 12 months.  CAR-T comparison: the default car_t
patient (ELIANA-like; Maude SL et al. 2018 NEJM 378:439, CRS 77 %, grade 3-4 46-47 %).
Mechanistic anchors: NK half-life ~10 d (Zhang Y et al. 2007 Immunology 121:258); HLA-E on
B2M-null cells resists NK lysis (Gornalusse GG et al. 2017 Nat Biotechnol 35:765).

Each test solves a batch of virtual patients with the ODE engine in one call.
"""

from __future__ import annotations

import json
import math
import tomllib
from functools import cache

import numpy as np
import pytest

import livingdrug as ld
from livingdrug.clinical.endpoints import ball_response, exposure
from livingdrug.engines.ode import solve
from livingdrug.engines.reference import reference_trajectory
from livingdrug.models import car_nk, get_model
from livingdrug.scenarios import dump_scenario, load_scenario, scenario_from_dict

T = np.concatenate([np.arange(-6.0, 60.0, 0.25), np.arange(60.0, 366.0, 1.0)])


@cache
def _compiled(**opts):
    net = get_model("car_nk").network(**opts)
    return net, net.compile()


def _run(params=({},), **opts):
    """Solve one patient per dict of parameter overrides; returns {name: array[patient, time]}."""
    net, c = _compiled(**opts)
    P = np.array([net.parameter_vector(p) for p in params])
    Y0 = np.repeat(net.initial_state()[None], len(P), axis=0)
    sol = solve(c, Y0, P, T, t0=-6.0, rtol=1e-7, atol=1e-9)
    assert np.all(sol.status == 0), sol.message
    obs = c.observables_batch(sol.t, sol.y, P)
    return {n: obs[:, :, j] for j, n in enumerate(net.observable_names)} | {
        n: sol.y[:, :, k] for k, n in enumerate(net.species_names)
    }


def _at(x, day):
    return x[..., int(np.argmin(np.abs(T - day)))]


def _auc(x, lo, hi):
    w = (T >= lo) & (T <= hi)
    return np.trapezoid(x[..., w], T[w], axis=-1)


# --- structure ---------------------------------------------------------------------------------


def test_registered_with_the_published_product_and_options():
    net = get_model("car_nk").network()
    assert net.name == "car_nk"
    assert {"K", "NK_h", "N_T", "B_N", "L_M", "L_B", "Lneg_M", "Lneg_B", "H_M"} <= set(net.species_names)
    # the dose is the top level of Liu 2020 (1e7 cells/kg, 70 kg)
    assert net.param("dose").value == pytest.approx(1e7 * net.param("weight").value)
    assert "Liu E et al. 2020" in net.param("dose").source
    # the B-ALL patient of car_t: same shared parameter values and initial leukaemia
    ct = get_model("car_t").network()
    for name in ("r_L", "d_L", "K_mar", "k_out", "k_in", "K_N", "r_N", "ld_surv_T"):
        assert net.param(name).value == ct.param(name).value, name
    for s in ("L_M", "L_B", "Lneg_M", "H_M", "N_T", "B_N"):
        assert net.species_by_name(s).initial == pytest.approx(ct.species_by_name(s).initial, rel=1e-12), s
    # CAR-NK defaults of the cytokine block: much less IFN-gamma per engaged cell than CAR-T
    assert net.param("sigma_ifng").value <= 0.2 * ct.param("sigma_ifng").value
    # the IL-15 armour is an option; without it there is no autocrine term or IL-15 read-out
    bare = get_model("car_nk").network(il15=False)
    assert "p_15" not in {p.name for p in bare.params} and "il15_pg_ml" not in bare.observable_names
    # no GvHD mechanism: no reaction removes a normal host tissue except B cells (CD19 on-target)
    host = {"H_M", "N_T", "NK_h"}
    killers = [r for r in net.reactions if r.name.startswith(("kill_", "innate_kill_"))]
    assert not any(set(r.stoich) & host for r in killers)
    assert {r.name for r in killers} >= {"kill_B_N", "innate_kill_Lneg_M", "innate_kill_Lneg_B"}


def test_option_errors_name_the_option():
    with pytest.raises(ValueError, match="il15"):
        get_model("car_nk").network(il15="yes")
    with pytest.raises(ValueError, match="leukaemia"):
        get_model("car_nk").network(leukaemia=-5.0)
    with pytest.raises(ValueError, match="neg_fraction"):
        get_model("car_nk").network(neg_fraction=2.0)


def test_engine_matches_reference():
    """Batched ODE engine vs scipy's Radau reference at tight tolerance (DESIGN.md)."""
    net, c = _compiled()
    t = np.array([-5.5, 3.0, 7.0, 10.0, 14.0, 28.0, 90.0])
    sol = solve(c, net.initial_state(), net.parameter_vector(), t, t0=-6.0, rtol=1e-8, atol=1e-6)
    assert int(sol.status[0]) == 0
    ref = reference_trajectory(net, (-6.0, 90.0), t, rtol=1e-10, atol=1e-8)
    scale = np.abs(ref) + 1e-3 * np.abs(ref).max(axis=0) + 1e-9
    assert np.max(np.abs(sol.y[0] - ref) / scale) < 1e-5


# --- toxicity: CAR-NK vs CAR-T ----------------------------------------------------------------------


def _scenario(name: str, *, dose: str | None = None, days: float = 90):
    d = tomllib.loads(dump_scenario(load_scenario(name)))
    if dose is not None:
        d["dosing"]["dose"] = dose
    d["simulation"]["days"] = days
    return scenario_from_dict(json.loads(json.dumps(d)))


@cache
def _sim(name: str, dose: str | None = None):
    r = ld.simulate(_scenario(name, dose=dose))
    assert int(r.dataset["status"].values[0]) == 0, r.dataset["message"].values[0]
    return r


def test_car_nk_gives_less_crs_than_car_t_for_the_same_tumour_and_dose():
    """Issue 5 check.  Same default B-ALL patient, the same 1e8 cells: the CAR-T model gives
    severe CRS (its calibration, ELIANA: 46-47 % grade 3-4), the CAR-NK model none (Liu 2020: no
    CRS in 11 patients), with peak IL-6 an order of magnitude lower.  At the scenario's own dose
    (1e7 cells/kg, 7e8 cells) CAR-NK still gives no CRS and no ICANS (Liu 2020)."""
    cart, carnk = _sim("cd19-ball", "1e8 cell"), _sim("cd19-carnk", "1e8 cell")
    g_t = cart.summary["toxicity"]["crs"]["max_grade"]
    g_nk = carnk.summary["toxicity"]["crs"]["max_grade"]
    assert g_t >= 2 and g_nk < g_t
    assert g_nk == 0
    il6_t = float(cart.dataset["il6_pg_ml"].max())
    il6_nk = float(carnk.dataset["il6_pg_ml"].max())
    assert il6_nk < 0.1 * il6_t
    own = _sim("cd19-carnk")
    assert own.summary["toxicity"]["crs"]["max_grade"] == 0
    assert own.summary["toxicity"]["icans"]["max_grade"] == 0
    assert float(own.dataset["il6_pg_ml"].max()) < 0.1 * il6_t


def test_default_scenario_remission_and_low_level_persistence():
    """Liu 2020: responses (7/11 CR) and CAR-NK at low levels for >= 12 months.  The default
    patient reaches remission (< 5 % blasts) within 28 days, MRD-negativity, no relapse within a
    year, and the CAR-NK cells are still present at day 365 but below 5 % of their peak."""
    o = _run()
    resp = ball_response(T, blasts_pct=o["blasts_pct"][0], mrd=o["mrd"][0], bcells=o["b_cells_blood"][0])
    assert resp.time_to_remission <= 28.0
    assert math.isfinite(resp.time_to_mrd_negative)
    assert resp.relapse_type == "none"
    k = o["K"][0]
    assert 0 < _at(k, 365) < 0.05 * k.max()
    assert 5.0 <= T[np.argmax(k)] <= 30.0  # expansion within the first weeks


# --- allogeneic rejection ---------------------------------------------------------------------------


def test_hla_edited_product_persists_longer_than_a_mismatched_one():
    """Issue 5 check.  A fully HLA-mismatched unit is rejected by recovering host T cells; the
    same unit HLA class I-edited (B2M-null with HLA-E, Gornalusse 2017) escapes T-cell rejection
    and meets only partial missing-self NK rejection, so it persists longer (higher CAR-NK at days
    60-180 and exposure over days 28-365).  A partially matched unit lies in between."""
    o = _run(({"hla_mismatch": 1.0}, {"hla_mismatch": 1.0, "hla_edited": 1.0}, {"hla_mismatch": 1.0 / 3.0}))
    k = o["K"]
    for day in (60, 90, 180):
        assert _at(k[1], day) > 1.5 * _at(k[0], day), day
    auc = _auc(k, 28, 365)
    assert auc[1] > auc[2] > auc[0]
    # closed form of the rejection rate (module docstring): rho = k_T m_T N_T/K_T + k_N m_N NK_h/K_H
    net, _ = _compiled()
    p = {q.name: q.value for q in net.params}
    vul = p["v_b"] * p["weight"] * 1e6
    KT, KH = p["K_N"] * vul / p["f_T"], p["K_NK"] * vul / p["f_NK"]
    for i, (mu, e) in enumerate(((1.0, 0.0), (1.0, 1.0), (1.0 / 3.0, 0.0))):
        mT, mN = mu * (1 - e), p["f_kir"] * mu * (1 - e) + e * (1 - p["hlae_protect"])
        rho = p["k_rej_T"] * mT * _at(o["N_T"][i], 90) / KT + p["k_rej_NK"] * mN * _at(o["NK_h"][i], 90) / KH
        assert _at(o["rejection_rate"][i], 90) == pytest.approx(rho, rel=1e-9)
    # rejection rises as the host recovers from lymphodepletion
    r = o["rejection_rate"][0]
    assert _at(r, 1) < _at(r, 30) < _at(r, 120)


# --- innate killing ----------------------------------------------------------------------------------


def test_innate_killing_controls_cd19_negative_leukaemia():
    """CD19-negative blasts are invisible to the CAR but not to NK cells (NKG2D / missing self):
    with innate killing the CD19-negative subclone is eradicated; without it (k_innate = 0) it
    grows back and relapses as CD19-negative leukaemia (as after CD19 CAR-T)."""
    o = _run(({}, {"k_innate": 0.0}))
    neg = o["leukaemia_cd19neg"]
    assert _at(neg[0], 90) < 1e-3 * max(_at(neg[1], 90), 1.0)
    assert _at(neg[1], 365) > 100 * _at(neg[1], 0)
    resp = [ball_response(T, blasts_pct=o["blasts_pct"][i], mrd=o["mrd"][i],
                          antigen_neg_fraction=neg[i] / np.maximum(o["leukaemia_total"][i], 1e-300))
            for i in range(2)]
    assert resp[0].relapse_type == "none"
    assert resp[1].relapse_type == "CD19-"


# --- IL-15 armouring ---------------------------------------------------------------------------------


def test_il15_armouring_lengthens_persistence():
    """Liu 2020 armoured the CAR-NK with IL-15 for persistence: with the armour the CAR-NK stay
    higher after the peak (days 45-90) and stay above 10 % of their peak for longer (later both
    settle at a low level sustained by recovering CD19+ B cells)."""
    arm, bare = _run(), _run(il15=False)
    for day in (45, 60, 90):
        assert _at(arm["K"][0], day) > 2 * _at(bare["K"][0], day), day

    def last_above(k):
        above = np.flatnonzero(k >= 0.1 * k.max())
        return T[above[-1]]

    assert last_above(arm["K"][0]) > last_above(bare["K"][0]) + 14.0


def test_il15_toxicity_trade_off():
    """Systemic IL-15 amplifies the cytokine drive: with a_15 = 0 the cells are identical (the
    block does not feed back without drugs) but peak IFN-gamma and IL-6 are lower."""
    o = _run(({}, {"a_15": 0.0}))
    assert np.allclose(o["K"][0], o["K"][1], rtol=1e-6)
    assert o["ifng_pg_ml"][0].max() > 1.2 * o["ifng_pg_ml"][1].max()
    assert o["il6_pg_ml"][0].max() > o["il6_pg_ml"][1].max()
    assert o["il15_pg_ml"][0].max() > 0


# --- repeated doses and viability ----------------------------------------------------------------------


def test_repeated_doses_raise_exposure_and_each_adds_viable_cells():
    """Infusions on days 0, 7, 14 from one batch: each adds dose x viability cells (closed form
    of the event), and blood exposure (AUC0-28, role cart_blood) rises with the number of doses."""
    net, c = _compiled()
    params = [{"n_doses": n} for n in (1.0, 2.0, 3.0)]
    o = _run(params)
    aucs = [exposure(T, o["car_nk_blood"][i]).auc_0_28 for i in range(3)]
    assert aucs[0] < aucs[1] < aucs[2]
    # jump of K across the day-7 infusion: dose x viability (growth over 2e-4 d is negligible)
    P = np.array([net.parameter_vector(params[1])])
    tt = np.array([7.0 - 1e-4, 7.0 + 1e-4])
    sol = solve(c, net.initial_state()[None], P, np.concatenate([[-6.0, 0.0, 6.0], tt]), t0=-6.0,
                rtol=1e-9, atol=1e-9)
    k = sol.y[0, :, net.species_names.index("K")]
    jump = net.param("dose").value * net.param("viability").value
    assert k[-1] - k[-2] == pytest.approx(jump, rel=5e-3)
    # one dose: no jump on day 7
    sol1 = solve(c, net.initial_state()[None], np.array([net.parameter_vector()]),
                 np.concatenate([[-6.0, 0.0, 6.0], tt]), t0=-6.0, rtol=1e-9, atol=1e-9)
    k1 = sol1.y[0, :, net.species_names.index("K")]
    assert abs(k1[-1] - k1[-2]) < 1e-2 * jump
    assert car_nk.MAX_DOSES == 3 and net.param("n_doses").bounds == (1.0, 3.0)


# --- the cytokine block's guarantee ---------------------------------------------------------------------


def test_toxicity_block_leaves_cell_dynamics_unchanged_without_drugs():
    """Without management drugs the block's expansion factor is exactly 1, so the cells follow
    the toxicity = false model (cytokines.toxicity_block contract)."""
    a, b = _run(), _run(toxicity=False)
    for name in ("car_nk_total", "leukaemia_total", "b_cells_blood", "host_nk_blood"):
        x, y = a[name][0], b[name][0]
        big = y > 1e3 if name.endswith("total") else y > 1e-3
        assert np.allclose(x[big], y[big], rtol=1e-3), name
    assert get_model("car_nk").network(toxicity=False).meta.get("ode_only_species") is None
    assert "IL6" in get_model("car_nk").network().meta["ode_only_species"]


def test_hybrid_engine_agrees_with_the_ode_and_innate_killing_ends_the_cd19_negative_cells():
    """Cross-engine check (DESIGN.md): on the hybrid engine (cytokines and large populations
    integrated, populations under 100 cells simulated cell by cell) the CAR-NK course follows
    the ODE, and the last CD19-negative cells, which the CAR cannot see, die out in every
    replicate by innate killing."""
    d = tomllib.loads(dump_scenario(load_scenario("cd19-carnk")))
    d["simulation"].update(days=90, engine="hybrid", replicates=4)
    hyb = ld.simulate(scenario_from_dict(json.loads(json.dumps(d))))
    assert np.all(hyb.dataset["status"].values == 0)
    ode = _sim("cd19-carnk")
    t_h, t_o = hyb.dataset.time.values, ode.dataset.time.values
    common = np.isin(t_o, t_h) & (t_o <= 90)
    k_o = ode.dataset["car_nk_blood"].values[0][common]
    for i in range(4):
        k_h = hyb.dataset["car_nk_blood"].values[i][np.isin(t_h, t_o[common])]
        big = k_o > 1e-3 * k_o.max()
        assert np.allclose(k_h[big], k_o[big], rtol=1e-2)
        assert hyb.dataset["leukaemia_cd19neg"].values[i][-1] == 0.0
