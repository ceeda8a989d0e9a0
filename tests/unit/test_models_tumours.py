"""Mechanistic and clinical plausibility checks of the ``lbcl`` and ``myeloma`` models.

Clinical reference figures (shared/reference/PUBLISHED.md section 7):
* ZUMA-1, axicabtagene ciloleucel 2e6 CAR+ cells/kg in refractory large B-cell lymphoma
  (Neelapu SS et al. 2017 NEJM 377:2531, phase 2 paper cohort, 101 treated): ORR 82 %, CR 54 %.
  The default patient should respond (Lugano PR or CR) by day 28.
* KarMMa, idecabtagene vicleucel (target 450e6 CAR+ cells) in relapsed/refractory myeloma
  (Munshi NC et al. 2021 NEJM 384:705, paper cohort, 128 treated): ORR 73 % (≥ PR), CR 33 %.
* On-target off-tumour: B-cell aplasia with CD19 CAR-T; normal plasma cells are BCMA+, so
  BCMA CAR-T depletes them (hypogammaglobulinaemia).
* Antigen sink: soluble BCMA blocks BCMA CAR-T recognition (Pont MJ et al. 2019 Blood 134:1585).
* Antigen density drives CAR engagement (Singh AP et al. 2020 mAbs 12:1688616); antigen-negative
  subclones escape (CD19 loss in LBCL; BCMA loss, Samur MK et al. 2021 Nat Commun 12:868).

Each test solves a batch of virtual patients (one row of parameters / initial state each) with
the ODE engine in one call.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from livingdrug.clinical.response import (
    HYPOGAMMA_G_DL,
    IMWG_CATEGORIES,
    LUGANO_CATEGORIES,
    imwg_response,
    lugano_response,
)
from livingdrug.engines.ode import solve
from livingdrug.models import get_model
from livingdrug.models.tumours import density_factor, spd_from_cells

T = np.concatenate([np.arange(-6.0, 60.0, 0.25), np.arange(60.0, 181.0, 1.0)])


@pytest.fixture(scope="module")
def lbcl():
    net = get_model("lbcl").network()
    return net, net.compile()


@pytest.fixture(scope="module")
def myeloma():
    net = get_model("myeloma").network()
    return net, net.compile()


def _run(model, params=(), initial=()):
    """Solve one patient per entry of ``params`` / ``initial`` (dicts of overrides)."""
    net, c = model
    n = max(len(params), len(initial), 1)
    params = list(params) or [{}] * n
    initial = list(initial) or [{}] * n
    P = np.array([net.parameter_vector(p) for p in params])
    Y0 = np.array([net.initial_state(y) for y in initial])
    sol = solve(c, Y0, P, T, t0=-6.0, rtol=1e-7, atol=1e-9)
    assert np.all(sol.status == 0), sol.message
    obs = c.observables_batch(sol.t, sol.y, P)
    return {name: obs[:, :, j] for j, name in enumerate(net.observable_names)} | {
        name: sol.y[:, :, k] for k, name in enumerate(net.species_names)
    }


def _at(x, day):
    return x[..., int(np.argmin(np.abs(T - day)))]


def _better_or_equal(a, b, order):
    return order.index(a) <= order.index(b)


# --- geometry and helpers -------------------------------------------------------------------

def test_spd_closed_form():
    """One sphere of 1 cm³: D = (6/π)^{1/3} cm, SPD = D²; n equal spheres: SPD = n^{1/3}(6V/π)^{2/3}."""
    one = float(spd_from_cells(1e9, 1e9, 1))
    assert one == pytest.approx((6 / math.pi) ** (2 / 3), rel=1e-12)
    six = float(spd_from_cells(6e9, 1e9, 6))  # six 1 cm³ lesions
    assert six == pytest.approx(6 * one, rel=1e-12)
    # SPD ∝ V^{2/3}: a Lugano PR (−50 % SPD) is a (1 − 0.5^{1.5}) = 65 % fall in cells
    assert float(spd_from_cells(0.5**1.5 * 5e10, 1e9, 6) / spd_from_cells(5e10, 1e9, 6)) == pytest.approx(0.5)


def test_density_factor():
    assert float(density_factor(1.0, 0.2)) == pytest.approx(1.0)
    assert float(density_factor(0.0, 0.2)) == 0.0
    lo = [float(density_factor(r, 0.2)) for r in (0.01, 0.1, 0.5, 1.0, 5.0)]
    assert all(a < b for a, b in zip(lo, lo[1:], strict=False))
    assert float(density_factor(1e6, 0.2)) == pytest.approx(1.2, rel=1e-5)  # saturates at 1 + K


def test_option_errors_name_the_option():
    with pytest.raises(ValueError, match="neg_fraction"):
        get_model("lbcl").network(neg_fraction=1.5)
    with pytest.raises(ValueError, match="tumour"):
        get_model("lbcl").network(tumour=-1.0)
    with pytest.raises(ValueError, match="myeloma"):
        get_model("myeloma").network(myeloma="many")
    with pytest.raises(ValueError, match="lymphodepletion"):
        get_model("myeloma").network(lymphodepletion=1)


# --- large B-cell lymphoma -------------------------------------------------------------------

def test_lbcl_baseline(lbcl):
    net, _ = lbcl
    spd0 = _run(lbcl)["tumour_spd"][0, 0]
    # of the order of ZUMA-1's median baseline SPD (~37 cm², Locke FL et al. 2020 Blood Adv 4:4898: uncertain)
    assert 20.0 <= spd0 <= 60.0
    assert 1e10 <= net.species_by_name("T_pos").initial <= 1e11


def test_lbcl_grows_without_car_t(lbcl):
    o = _run(lbcl, params=[{"dose": 0.0}])
    spd = o["tumour_spd"][0]
    assert np.all(np.diff(spd[T >= 0]) > 0)
    r = lugano_response(T, spd)
    assert r.at["day_90"] == "PD" and r.best_response in ("SD", "PD")


def test_lbcl_default_product_responds_by_day_28(lbcl):
    """ZUMA-1 (Neelapu 2017, paper cohort): ORR 82 %, CR 54 % — the default patient responds."""
    o = _run(lbcl)
    r = lugano_response(T, o["tumour_spd"][0])
    assert r.at["day_28"] in ("PR", "CR")
    assert r.time_to_response <= 28.0
    cb = o["car_t_blood"][0]
    tmax = T[int(np.argmax(cb))]
    assert 7.0 <= tmax <= 21.0  # expansion over the first 1-3 weeks (Liu C et al. 2021 Clin Pharmacol Ther)
    # CAR-T expand in the lesions: more there at the peak than the infused cells' equilibrium share
    assert o["car_t_tumour"][0].max() > 0.25 * net_dose(lbcl)


def net_dose(model):
    return model[0].param("dose").value


def test_lbcl_b_cell_aplasia(lbcl):
    """On-target off-tumour: blood B cells < 20 cells/µL from the first week to day 90, and none
    without CAR-T after the B cells recover from lymphodepletion."""
    o = _run(lbcl, params=[{}, {"dose": 0.0}])
    b = o["b_cells_blood"]
    window = (T >= 7) & (T <= 90)
    assert np.all(b[0, window] < 20.0)
    assert _at(b[1], 90.0) > 100.0


def test_lbcl_lower_antigen_density_is_worse(lbcl):
    dens = [1.0, 0.3, 0.1, 0.03, 0.01]
    o = _run(lbcl, params=[{"antigen_density": d} for d in dens])
    spd28 = _at(o["tumour_spd"], 28.0)
    # non-decreasing (the two highest densities both clear the CD19+ clone by day 28 and leave
    # the same CD19-negative remnant), and much larger at the lowest density
    assert np.all(spd28[1:] >= spd28[:-1] * (1 - 1e-2))
    assert spd28[-1] > 100 * spd28[0]
    # the CD19+ clone shrinks more slowly at every lower density (day 14, mid-response)
    assert np.all(np.diff(_at(o["T_pos"], 14.0)) > 0)
    cats = [lugano_response(T, o["tumour_spd"][i]).at["day_28"] for i in range(len(dens))]
    assert all(_better_or_equal(a, b, LUGANO_CATEGORIES) for a, b in zip(cats, cats[1:], strict=False))
    assert cats[0] in ("PR", "CR") and cats[-1] in ("SD", "PD")


def test_lbcl_larger_antigen_negative_fraction_is_worse(lbcl):
    net, _ = lbcl
    total = net.species_by_name("T_pos").initial + net.species_by_name("T_neg").initial
    fracs = [1e-5, 1e-3, 0.05, 0.5]
    o = _run(lbcl, initial=[{"T_pos": total * (1 - f), "T_neg": total * f} for f in fracs])
    spd90 = _at(o["tumour_spd"], 90.0)
    assert np.all(np.diff(spd90) > 0)
    # half CD19-negative: the SPD falls at most by 1 − 0.5^{2/3} = 37 % → no PR at day 28
    assert lugano_response(T, o["tumour_spd"][-1]).at["day_28"] in ("SD", "PD")
    # relapse with the CD19-negative clone: it dominates the lymphoma at day 180
    assert _at(o["lymphoma_cd19neg"][0], 180.0) > 0.9 * _at(o["lymphoma_total"][0], 180.0)


# --- multiple myeloma -------------------------------------------------------------------------

def test_myeloma_baseline(myeloma):
    o = _run(myeloma)
    assert 1.0 <= o["m_protein"][0, 0] <= 6.0          # measurable disease (IMWG: ≥ 0.5-1 g/dL)
    assert 10.0 <= o["marrow_plasma_pct"][0, 0] <= 60.0
    # sBCMA several-fold above healthy donors (Sanchez E et al. 2012 Br J Haematol 158:727)
    assert o["soluble_bcma"][0, 0] > 100.0
    # steady state at the start: M-protein flat over the pre-infusion days (slow growth only)
    assert abs(_at(o["m_protein"][0], -1.0) / o["m_protein"][0, 0] - 1.0) < 0.1


def test_myeloma_grows_without_car_t(myeloma):
    o = _run(myeloma, params=[{"dose": 0.0}])
    m = o["m_protein"][0]
    assert _at(m, 90.0) > 1.2 * _at(m, 0.0)
    r = imwg_response(T, m, marrow_plasma_pct=o["marrow_plasma_pct"][0])
    assert r.best_response == "SD" and math.isnan(r.time_to_response)


def test_myeloma_default_product_reaches_pr(myeloma):
    """KarMMa (Munshi 2021, paper cohort): ORR 73 % (≥ PR) — the default patient responds; the
    M-protein falls no faster than IgG clearance (t½ 21 d) allows."""
    o = _run(myeloma)
    r = imwg_response(T, o["m_protein"][0], marrow_plasma_pct=o["marrow_plasma_pct"][0],
                      myeloma_mrd=o["myeloma_mrd"][0])
    assert _better_or_equal(r.at["day_90"], "PR", IMWG_CATEGORIES)
    assert _better_or_equal(r.best_response, "PR", IMWG_CATEGORIES)
    m = o["m_protein"][0]
    floor = _at(m, 0.0) * 0.5 ** (28.0 / 21.0)
    assert _at(m, 28.0) >= 0.99 * floor


def test_myeloma_normal_plasma_cells_and_igg_depleted(myeloma):
    """BCMA is on normal plasma cells: they are depleted and polyclonal IgG falls below
    0.4 g/dL (hypogammaglobulinaemia); without CAR-T neither happens."""
    o = _run(myeloma, params=[{}, {"dose": 0.0}])
    p = o["P_N"]
    assert _at(p[0], 28.0) < 0.01 * _at(p[0], -6.0)
    assert _at(o["polyclonal_igg"][0], 60.0) < HYPOGAMMA_G_DL
    assert _at(o["polyclonal_igg"][1], 60.0) > HYPOGAMMA_G_DL


def test_soluble_bcma_sink_weakens_car_t(myeloma):
    """More shedding → more sBCMA → weaker CAR-T expansion and slower killing (monotone)."""
    shed = [0.0, 1.1e-6, 2.25e-6, 4.5e-6, 9e-6, 2.25e-5]  # default 2.25e-6 ng/cell/d
    o = _run(myeloma, params=[{"sigma_B": s} for s in shed])
    s0 = _at(o["soluble_bcma"], -1.0)  # baseline (steady state set half a day before Flu/Cy)
    assert np.all(np.diff(s0) > 0)
    assert s0[2] == pytest.approx(o["soluble_bcma"][2, 0], rel=0.05)  # the default is that steady state
    cmax = o["car_t_blood"].max(axis=1)
    assert np.all(np.diff(cmax) < 0)
    assert np.all(np.diff(_at(o["My_pos"], 7.0)) > 0)  # slower killing (mid-response)
    m28 = _at(o["m_protein"], 28.0) / o["m_protein"][:, 0]
    assert np.all(np.diff(m28) > 0)
    # ten-fold shedding: the sink abolishes the response (no PR by day 90)
    r = imwg_response(T, o["m_protein"][-1])
    assert not _better_or_equal(r.at["day_90"], "PR", IMWG_CATEGORIES)


def test_myeloma_lower_antigen_density_is_worse(myeloma):
    dens = [1.0, 0.3, 0.1, 0.03]
    o = _run(myeloma, params=[{"antigen_density": d} for d in dens])
    rel = _at(o["m_protein"], 60.0) / o["m_protein"][:, 0]
    assert np.all(np.diff(rel) > 0)


def test_myeloma_larger_antigen_negative_fraction_is_worse(myeloma):
    net, _ = myeloma
    total = net.species_by_name("My_pos").initial + net.species_by_name("My_neg").initial
    fracs = [1e-5, 1e-3, 0.05, 0.5]
    o = _run(myeloma, initial=[{"My_pos": total * (1 - f), "My_neg": total * f} for f in fracs])
    rel = _at(o["m_protein"], 180.0) / o["m_protein"][:, 0]
    assert np.all(np.diff(rel) > 0)
    best = [imwg_response(T, o["m_protein"][i]).best_response for i in range(len(fracs))]
    assert all(_better_or_equal(a, b, IMWG_CATEGORIES) for a, b in zip(best, best[1:], strict=False))


# --- toxicity block plugged in ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["lbcl", "myeloma"])
def test_toxicity_block_leaves_cells_alone_without_drugs(name, lbcl, myeloma):
    """Without a management rule firing (defaults: 9 = never) the toxicity block only reads
    the CAR-T cells: the cell species follow the model without it."""
    with_tox = lbcl if name == "lbcl" else myeloma
    net0 = get_model(name).network(toxicity=False)
    plain = (net0, net0.compile())
    a, b = _run(with_tox), _run(plain)
    for s in net0.species_names:
        scale = np.abs(b[s]).max() + 1e-9
        assert np.max(np.abs(a[s] - b[s])) <= 1e-4 * scale, s


@pytest.mark.parametrize("name", ["lbcl", "myeloma"])
def test_steroids_reduce_car_t_expansion(name, lbcl, myeloma):
    """Steroids at CRS grade ≥ 1 dampen antigen-driven CAR-T proliferation (expansion_factor of
    models.cytokines): fewer CAR-T cells 3 days after the first dose and a smaller CAR-T
    exposure (AUC of all CAR-T cells, days 0-28)."""
    model = lbcl if name == "lbcl" else myeloma
    o = _run(model, params=[{}, {"steroids_at_crs_grade": 1.0}])
    assert o["anticytokine_given"][1].max() == 1.0 and o["anticytokine_given"][0].max() == 0.0
    t_dex = T[np.argmax(o["Dex"][1] > 0)]  # first dexamethasone dose
    assert 0.0 < t_dex < 14.0
    total = o["car_t_total"]
    assert _at(total[1], t_dex + 3.0) < _at(total[0], t_dex + 3.0)
    w = (T >= 0) & (T <= 28)
    auc = np.trapezoid(total[:, w], T[w], axis=1)  # CAR-T exposure over the first 28 days (cell·d)
    assert auc[1] < auc[0]


@pytest.mark.parametrize("name", ["lbcl", "myeloma"])
def test_default_patient_gets_early_mild_crs_and_later_icans(name, lbcl, myeloma):
    """CRS starts within days of infusion and is mild: ZUMA-1 (Neelapu 2017, paper cohort, 101
    treated) any grade 93 %, grade >= 3 13 %, median onset 2 d (range 1-12); KarMMa (Munshi
    2021, paper cohort, 128 treated) 84 %, grade >= 3 5 %, median onset 1 d (1-23). The
    default patients get CRS (in-model ASTCT grade >= 1) by day 4 (lbcl) / day 3 (myeloma), of
    maximal grade 1-2, ICANS (if any) after the CRS onset, and it resolves by day 90."""
    o = _run(lbcl if name == "lbcl" else myeloma)
    g, ig = o["crs_grade_model"][0], o["icans_grade_model"][0]
    after = T > 0
    onset = T[after][np.argmax(g[after] >= 1)]
    assert 1 <= g[after].max() <= 2
    assert 0.0 < onset <= (4.0 if name == "lbcl" else 3.0)
    if ig.max() >= 1:
        assert T[after][np.argmax(ig[after] >= 1)] > onset
    assert _at(g, 90.0) == 0.0


def test_ode_only_species_are_declared():
    """Concentrations cannot be simulated cell by cell: the stochastic engines and the scenario
    loader refuse the species in meta["ode_only_species"] (toxicity block; myeloma serum)."""
    lb = get_model("lbcl").network()
    assert set(lb.meta["ode_only_species"]) == {s.name for s in lb.species if s.unit != "cell"}
    assert get_model("lbcl").network(toxicity=False).meta["ode_only_species"] == []
    my = get_model("myeloma").network(toxicity=False)
    assert set(my.meta["ode_only_species"]) == {"M_prot", "IgG_N", "sBCMA"}
