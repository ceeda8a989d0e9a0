"""Clones and lineages, intrinsic blast death and CAR+ CD19-masked leukaemia in ``car_t``.

Analytic truths used (see the ``car_t`` module docstring):

* neutral tracked clones have the bulk's per-cell rates, so given the aggregates the CAR-T
  system is linear and each clone is a fixed fraction of its founding phenotype's cohort;
  summing the lineages gives back the model without clones exactly;
* the advantaged clone with ``adv_prolif = adv_persist = 1`` is a neutral clone founded in
  the stem/central-memory compartment (Fraietta JA et al. 2018 Nature 558:307 for the trait);
* birth ``r + d_L`` and death ``d_L`` leave the net rate ``r`` of the ODE unchanged;
* CAR+ masked blasts (Ruella M et al. 2018 Nat Med 24:1499) are not killed and not CD19
  antigen: with negligible crowding they grow as ``n·e^{r_L t}`` whatever the dose;
* Poisson thinning: ``dose/eta_tx`` product cells, a fraction ``f_contam`` leukaemic, each
  transduced with probability ``eta_tx`` → mean ``f_contam · dose`` CAR+ leukaemic cells.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from livingdrug.clinical.endpoints import ball_response
from livingdrug.engines.ode import solve
from livingdrug.models import car_t, get_model
from livingdrug.network import sym

T_OUT = np.concatenate([[-6.0, -0.5], np.arange(0.0, 30.0, 0.5), np.arange(30.0, 366.0, 5.0)])
TIGHT = {"rtol": 1e-10, "atol": 1e-6}


def _run(net, P=None, y0=None, t=T_OUT, **kw):
    c = net.compile()
    P = net.parameter_vector() if P is None else P
    y0 = net.initial_state() if y0 is None else y0
    opts = {**TIGHT, **kw}
    sol = solve(c, y0, P, t, t0=-6.0, **opts)
    assert np.all(sol.status == 0), sol.message
    return sol


def _col(net, name):
    return net.species_names.index(name)


def _rel_err(a, b):
    """max |a − b| / (|b| + 1e-3 max|b|): relative, with a floor for values near zero."""
    scale = np.abs(b) + 1e-3 * np.max(np.abs(b)) + 1e-12
    return float(np.max(np.abs(a - b) / scale))


@pytest.fixture(scope="module")
def default_run():
    net = get_model("car_t").network(toxicity=False)
    return net, _run(net)


@pytest.fixture(scope="module")
def clone_run():
    net = get_model("car_t").network(tracked_clones=10, advantaged_clone=True, toxicity=False)
    return net, _run(net)


# --- structure and contracts -------------------------------------------------------------

def test_defaults_leave_the_eleven_species_model():
    net = car_t.build(toxicity=False)  # the toxicity block (default on) is tested in test_cytokines.py
    assert len(net.species) == 11
    assert net.meta["clones"] == {"bulk": ["C_S", "C_E", "C_M", "C_X"]}
    assert "count_params" not in net.meta and "CAR-T clones" not in net.meta["groups"]
    assert not {"clone_cells", "adv_prolif", "f_contam"} & set(net.param_names)


def test_clone_meta_species_observables_and_groups():
    net = car_t.build(tracked_clones=3, advantaged_clone=True)
    clones = net.meta["clones"]
    assert list(clones) == ["bulk", "c1", "c2", "c3", "adv"]
    assert clones["c2"] == ["C_S_c2", "C_E_c2", "C_M_c2", "C_X_c2"]
    assert clones["adv"] == ["C_S_adv", "C_E_adv", "C_M_adv", "C_X_adv"]
    assert set(n for v in clones.values() for n in v) <= set(net.species_names)
    assert net.meta["groups"]["CAR-T clones"] == ["clone_c1", "clone_c2", "clone_c3", "clone_adv"]
    for o in ("clone_c1", "clone_adv"):
        assert net.observable_names.count(o) == 1
    # 12 CAR-T reactions per lineage, every one also moves the phenotype counters
    s_self = [r for r in net.reactions if r.name.startswith("S_self")]
    assert len(s_self) == 5
    r = next(r for r in net.reactions if r.name == "S_to_E_c2")
    assert dict(r.stoich) == {"C_S_c2": -1, "C_E_c2": 1, "C_S_all": -1, "C_E_all": 1}
    # the counters are the sum of the lineages' stoichiometry, reaction by reaction
    S = net.stoichiometry()
    for p in car_t.PHENOTYPES:
        rows = [_col(net, f"C_{p}{s}") for s in ("", "_c1", "_c2", "_c3", "_adv")]
        assert np.array_equal(S[_col(net, f"C_{p}_all")], S[rows].sum(axis=0))


def test_option_errors_name_the_option_and_the_fix():
    for bad in (-1, 2.5, 1000, "3", True):
        with pytest.raises(ValueError, match=r"tracked_clones = .*whole number.*tracked_clones = 20"):
            car_t.build(tracked_clones=bad)
    with pytest.raises(ValueError, match=r"advantaged_clone = 1: expected true or false"):
        car_t.build(advantaged_clone=1)
    with pytest.raises(ValueError, match=r"car_leukaemia = 'yes'"):
        car_t.build(car_leukaemia="yes")
    assert len(car_t.build(tracked_clones=2.0).meta["clones"]) == 3  # a whole float is fine


@pytest.mark.parametrize(("n", "f", "expected"), [
    (10, (0.3, 0.5, 0.2), "SSSEEEEEMM"),
    (10, (0.6, 0.2, 0.2), "SSSSSSEEMM"),
    (4, (1.0, 1.0, 2.0), "SEMM"),
    (3, (0.0, 0.0, 1.0), "MMM"),
])
def test_founder_phenotypes_follow_the_product_composition(n, f, expected):
    """Systematic apportionment: clone i at quantile (i − ½)/n of the product."""
    assert "".join(car_t.clone_founder_phenotypes(n, *f)) == expected
    if n != 10:
        return
    # ... and the model's infusion event puts the founders exactly there (per patient)
    net = get_model("car_t").network(tracked_clones=10, advantaged_clone=True)
    P = net.parameter_vector({"f_S": f[0], "f_E": f[1], "f_M": f[2], "clone_cells": 7.0, "adv_cells": 2.0})
    sol = _run(net, P=P, t=np.array([-6.0, 0.0]))
    y = sol.y[0, -1]
    for i, ph in enumerate(expected, start=1):
        for p in car_t.PHENOTYPES:
            assert y[_col(net, f"C_{p}_c{i}")] == (7.0 if p == ph else 0.0)
    assert y[_col(net, "C_S_adv")] == 2.0
    # per-phenotype totals are the dose split, the bulk holds the rest
    w = sum(f)
    for p, fp in zip("SEM", f, strict=True):
        founders = 7.0 * expected.count(p) + (2.0 if p == "S" else 0.0)
        assert y[_col(net, f"C_{p}_all")] == pytest.approx(1e8 * fp / w, rel=1e-12)
        assert y[_col(net, f"C_{p}")] == pytest.approx(1e8 * fp / w - founders, rel=1e-12)


# --- (i) neutral clones: exact decomposition of the model without clones ------------------

def test_total_car_t_equals_the_model_without_clones(default_run, clone_run):
    net0, sol0 = default_run
    net, sol = clone_run
    for p in car_t.PHENOTYPES:
        ref = sol0.y[0, :, _col(net0, f"C_{p}")]
        lineages = sum(sol.y[0, :, _col(net, n)] for n in (f"C_{p}", *(f"C_{p}_c{i}" for i in range(1, 11)), f"C_{p}_adv"))
        counter = sol.y[0, :, _col(net, f"C_{p}_all")]
        assert _rel_err(lineages, ref) < 1e-6, p
        # the counter is the sum of the lineages (a linear invariant: round-off only)
        assert _rel_err(counter, lineages) < 1e-9, p
    # and everything else (leukaemia, B cells, normal T) follows the same course
    for name in net0.species_names[4:]:
        assert _rel_err(sol.y[0, :, _col(net, name)], sol0.y[0, :, _col(net0, name)]) < 1e-6, name


def test_each_clone_keeps_its_share_of_its_phenotype_cohort(default_run, clone_run):
    """Linearity: the model without clones is Σ_p n_p · u_p(t), n_p = dose·f_p/w the cells
    infused in phenotype p and u_p(t) = clone(t)/clone_cells the per-founder course of any
    clone founded in p — i.e. every clone stays clone_cells/n_p of its cohort."""
    net0, sol0 = default_run
    net, sol = clone_run
    P = net.parameter_vector()
    d = dict(zip(net.param_names, P, strict=True))
    w = d["f_S"] + d["f_E"] + d["f_M"]
    founders = car_t.clone_founder_phenotypes(10, d["f_S"], d["f_E"], d["f_M"])
    first = {p: founders.index(p) + 1 for p in "SEM"}
    after = T_OUT >= 0.0
    for q in car_t.PHENOTYPES:
        ref = sol0.y[0, after, _col(net0, f"C_{q}")]
        rebuilt = sum(
            d["dose"] * d[f"f_{p}"] / w * sol.y[0, after, _col(net, f"C_{q}_c{first[p]}")] / d["clone_cells"]
            for p in "SEM"
        )
        assert _rel_err(rebuilt, ref) < 1e-6, q
    # clones founded in the same phenotype have identical courses
    for i, p in enumerate(founders, start=1):
        j = first[p]
        a = sol.y[0, after][:, [_col(net, n) for n in net.meta["clones"][f"c{i}"]]]
        b = sol.y[0, after][:, [_col(net, n) for n in net.meta["clones"][f"c{j}"]]]
        assert _rel_err(a, b) < 1e-9


# --- (ii) the advantaged clone -----------------------------------------------------------

def _adv_vs_stem_clone(**params):
    """clone_adv / clone_c1 over time; c1 (of 3 clones) is founded in C_S like adv."""
    net = car_t.build(tracked_clones=3, advantaged_clone=True)
    assert car_t.clone_founder_phenotypes(3, 0.3, 0.5, 0.2)[0] == "S"
    P = net.parameter_vector({"clone_cells": 1.0, "adv_cells": 1.0, **params})
    t = np.array([-6.0, 0.0, 2.0, 5.0, 10.0, 14.0, 28.0, 90.0, 180.0])
    sol = _run(net, P=P, t=t)
    obs = net.compile().observables_batch(t, sol.y, P[None])[0]
    col = {n: i for i, n in enumerate(net.observable_names)}
    return t, obs[:, col["clone_adv"]], obs[:, col["clone_c1"]], obs[:, col["car_t_total"]]


def test_neutral_advantaged_clone_is_a_stem_founded_clone():
    t, adv, c1, _ = _adv_vs_stem_clone()
    assert adv[1] == c1[1] == 1.0
    assert _rel_err(adv[1:], c1[1:]) < 1e-8


def test_proliferation_advantage_grows_the_clone_share():
    t, adv, c1, tot = _adv_vs_stem_clone(adv_prolif=1.5)
    ratio = adv[1:] / c1[1:]
    assert ratio[0] == 1.0
    assert np.all(np.diff(ratio) > 0)        # the advantage compounds at every step
    assert ratio[t[1:] == 28.0][0] > 10.0    # k_exp 1.0 → 1.5 /d over the expansion
    share = adv[1:] / tot[1:]
    assert share[-1] > 10 * share[0]


def test_persistence_advantage_slows_the_clone_decline():
    t, adv, c1, _ = _adv_vs_stem_clone(adv_persist=3.0)
    ratio = adv[1:] / c1[1:]
    assert np.all(np.diff(ratio) > 0)
    late = (t[1:] >= 90.0)
    assert ratio[late][-1] > ratio[late][0]  # still gaining during persistence


# --- (iv) intrinsic blast death leaves the ODE unchanged --------------------------------

def test_blast_death_rate_does_not_change_the_ode_solution():
    net = car_t.build(neg_fraction=1e-4)  # a CD19-negative relapse inside the year
    c = net.compile()
    P = np.stack([net.parameter_vector(), net.parameter_vector({"d_L": 0.0}),
                  net.parameter_vector({"d_L": 0.5})])
    assert P[0, net.param_names.index("d_L")] == 0.04
    sol = solve(c, net.initial_state(), P, T_OUT, t0=-6.0, **TIGHT)
    assert np.all(sol.status == 0)
    assert _rel_err(sol.y[0], sol.y[1]) < 1e-6
    assert _rel_err(sol.y[2], sol.y[1]) < 1e-6
    # while the propensities do differ: birth r + d_L, death d_L
    y = net.initial_state()
    a0, a1 = c.propensities_at(0.0, y, P[1]), c.propensities_at(0.0, y, P[0])
    names = [r.name for r in net.reactions]
    L = y[_col(net, "L_M")]
    assert a1[names.index("L_grow")] == pytest.approx((0.05 + 0.04) * L, rel=1e-12)
    assert a1[names.index("L_death")] == pytest.approx(0.04 * L, rel=1e-12)
    assert a0[names.index("L_death")] == 0.0


# --- (v) CAR+ CD19-masked leukaemia ------------------------------------------------------

def test_masked_blasts_are_not_targets_nor_antigen():
    net = car_t.build(car_leukaemia=True)
    lcar = sym("Lcar_M")
    for r in net.reactions:
        if r.name.startswith(("kill_", "S_", "E_", "M_", "X_")):
            assert "Lcar_M" not in r.stoich and lcar not in sp.sympify(r.rate).free_symbols, r.name
    assert {r.name for r in net.reactions if "Lcar_M" in r.stoich} == {"Lcar_grow", "Lcar_death", "Lcar_crowd"}
    o = net.observable_by_role("tumour_car_masked")
    assert o is not None and o.name == "leukaemia_car_masked" and o.unit == "cell"
    for role in ("tumour_total", "blasts_pct", "mrd"):
        assert lcar in net.observable_by_role(role).expr.free_symbols, role
    assert lcar not in net.observable_by_role("tumour_antigen_neg").expr.free_symbols


def test_masked_blasts_grow_at_r_L_whatever_the_dose():
    """Negligible crowding (1e3 other blasts; < 1e5 untreated by day 100, 1e-7 of K_mar):
    Lcar(t) = n · e^{r_L t} after the infusion, the same with no CAR-T or a 100-fold dose."""
    net = car_t.build(car_leukaemia=True, leukaemia=1e3)
    P = np.stack([net.parameter_vector({"dose": dose, "n_car_leuk": 3.0}) for dose in (0.0, 1e8, 1e10)])
    t = np.array([-6.0, -1.0, 0.0, 10.0, 50.0, 100.0])
    sol = solve(net.compile(), net.initial_state(), P, t, t0=-6.0, **TIGHT)
    assert np.all(sol.status == 0)
    lc = sol.y[:, :, _col(net, "Lcar_M")]
    assert np.all(lc[:, :2] == 0.0)
    exact = 3.0 * np.exp(0.05 * t[2:])
    for i in range(3):
        np.testing.assert_allclose(lc[i, 2:], exact, rtol=1e-6)
    # the CD19+ blasts, by contrast, are cleared by the CAR-T cells
    lm = sol.y[:, -1, _col(net, "L_M")]
    assert lm[0] > 1e3 and lm[1] == 0.0 and lm[2] == 0.0


def test_expected_car_leukaemic_cells_is_f_contam_times_dose():
    net = car_t.build(car_leukaemia=True)
    cp = net.meta["count_params"]
    assert set(cp) == {"n_car_leuk"} and cp["n_car_leuk"]["condition"] == "at_least_one"
    lam = cp["n_car_leuk"]["mean"]
    assert sp.simplify(lam - sym("f_contam") * sym("dose")) == 0
    assert lam.free_symbols <= {sym(n) for n in net.param_names}
    vals = dict(zip(net.param_names, net.parameter_vector({"f_contam": 2e-9, "dose": 3e8}), strict=True))
    v = float(lam.subs({sym(k): x for k, x in vals.items()}))
    assert v == pytest.approx(0.6, rel=1e-12)
    assert 1.0 - math.exp(-v) == pytest.approx(0.4512, abs=1e-4)  # P(at least one infused)
    assert net.param("eta_tx").value == 0.174  # PUBLISHED.md section 5 (median 17.4 %)
    assert net.param("n_car_leuk").value == 1.0


def test_masked_relapse_is_typed_as_such():
    """One CAR+ leukaemic cell (Ruella 2018) and no CD19-negative subclone: remission, then
    a relapse made of masked blasts, typed "CD19-masked (CAR+)" when the masked fraction is
    given, and as CD19+ by the old two-way rule without it."""
    net = car_t.build(car_leukaemia=True, neg_fraction=0.0)
    c = net.compile()
    t = np.concatenate([np.arange(-6.0, 60.0, 1.0), np.arange(60.0, 1000.0, 5.0)])
    P = net.parameter_vector()
    sol = _run(net, P=P, t=t)
    obs = c.observables_batch(t, sol.y, P[None])[0]
    col = {n: i for i, n in enumerate(net.observable_names)}
    total = obs[:, col["leukaemia_total"]]
    masked = np.divide(obs[:, col["leukaemia_car_masked"]], total, out=np.zeros_like(total), where=total > 0)
    neg = np.divide(obs[:, col["leukaemia_cd19neg"]], total, out=np.zeros_like(total), where=total > 0)
    kw = {"blasts_pct": obs[:, col["blasts_pct"]], "mrd": obs[:, col["mrd"]], "antigen_neg_fraction": neg}
    r = ball_response(t, masked_fraction=masked, **kw)
    assert r.time_to_remission < 28.0
    assert r.relapse_type == "CD19-masked (CAR+)"
    # 5 % blasts from one cell at r_L = 0.05 /d: ln(L*)/r_L with L* ≈ 4e10 is ≈ 490 d
    assert 400.0 < r.relapse_time < 600.0
    assert ball_response(t, **kw).relapse_type == "CD19+"


def test_sbml_export_of_all_options_matches_roadrunner():
    """Clone founders (piecewise on f_S/f_E/f_M), the bulk's max(·, 0) and the CAR+ leukaemia
    export to SBML; libroadrunner reproduces the reference solve to 1e-6 (the conformance
    suite's check of the default models, applied to the option-rich network)."""
    pytest.importorskip("libsbml")
    pytest.importorskip("roadrunner")
    from conformance.test_sbml_roadrunner import check_counts, compare

    net = car_t.build(tracked_clones=3, advantaged_clone=True, car_leukaemia=True)
    check_counts(net)
    errs = compare(net, 120.0, 127)
    assert max(errs.values()) <= 1e-6, errs
