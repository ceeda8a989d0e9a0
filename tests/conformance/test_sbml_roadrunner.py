"""SBML export conformance: libroadrunner on the exported SBML reproduces the reference solve."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import sympy as sp

from livingdrug.engines.reference import solve_reference
from livingdrug.network import At, Event, Network, Observable, Reaction, Species, T, When, sym
from livingdrug.params import Param

libsbml = pytest.importorskip("libsbml")
roadrunner = pytest.importorskip("roadrunner")

E, L, C, M = sym("E"), sym("L"), sym("C"), sym("M")


def logistic_kill() -> Network:
    """Logistic tumour growth, killing by effectors, a dose at t=0 and two doses at day 5
    (same time: they must add), an extinction threshold event (fires)."""
    r, K, k, d, dose, thr = (sym(n) for n in ("r", "K", "k", "d", "dose", "thr"))
    return Network(
        "logistic_kill",
        species=(Species("E", initial=0.0), Species("L", initial=1e9)),
        params=(
            Param("r", 0.3, "1/d"),
            Param("K", 1e12, "cell"),
            Param("k", 2e-8, "1/(cell*d)"),
            Param("d", 0.15, "1/d"),
            Param("p_exp", 0.8, "1/d"),
            Param("dose", 1e6, "cell"),
            Param("t_dose2", 5.0, "d"),
            Param("thr", 1e3, "cell"),
        ),
        reactions=(
            Reaction("grow", {"L": 1}, r * L * (1 - L / K)),
            Reaction("kill", {"L": -1}, k * E * L),
            Reaction("expand", {"E": 1}, sym("p_exp") * E * L / (L + 1e8)),
            Reaction("die", {"E": -1}, d * E),
        ),
        observables=(Observable("total", E + L, "cell", role="total"),),
        events=(
            Event("dose0", At(0.0), {"E": E + dose}),
            Event("dose2a", At(sym("t_dose2")), {"E": E + dose}),
            Event("dose2b", At(sym("t_dose2")), {"E": E + 2 * dose}),
            Event("extinct", When(L - thr, -1), {"L": 0}),
        ),
    )


def log_exp_division() -> Network:
    """Gompertz growth (log), saturating killing (division), exponential waning secretion,
    powers, min/max/piecewise, an upward threshold event and a lymphodepletion that drops the
    tumour below its extinction threshold (a jump-triggered condition event)."""
    r, K, k, h, tau = (sym(n) for n in ("r", "K", "k", "h", "tau"))
    return Network(
        "log_exp_div",
        species=(
            Species("E", initial=1e7),
            Species("L", initial=1e10),
            Species("C", unit="pg/mL", initial=1.0),
            Species("M", initial=1e3),
        ),
        params=(
            Param("r", 0.05, "1/d"),
            Param("K", 1e12, "cell"),
            Param("k", 0.9, "1/d"),
            Param("h", 1e8, "cell"),
            Param("tau", 20.0, "d"),
            Param("kc", 1e-6, "pg/mL/cell/d"),
            Param("cl", 2.0, "1/d"),
            Param("toci", 0.2, "1"),
            Param("c_max", 500.0, "pg/mL"),
            Param("f_ld", 1e-6, "1"),
            Param("t_ld", 40.0, "d"),
        ),
        reactions=(
            Reaction("gompertz", {"L": 1}, r * L * sp.log(K / (L + 1))),
            Reaction("kill", {"L": -1}, k * E * L / (h + L) * sp.Min(1, (E / 1e7) ** sp.Rational(1, 2))),
            Reaction("contract", {"E": -1}, 0.1 * E * (1 + sp.exp(-T / tau))),
            Reaction("expand", {"E": 1}, 0.3 * E * L**2 / (h**2 + L**2)),
            Reaction("secrete", {"C": 1}, sym("kc") * E * sp.exp(-T / tau) + sp.Max(0, 1e-3 * sp.sqrt(M))),
            Reaction("clear", {"C": -1}, sym("cl") * C),
            Reaction("mem", {"M": 1, "E": 0}, 0.01 * E * sp.Piecewise((1, T < 30), (0.5, True))),
        ),
        observables=(Observable("log10_L", sp.log(L + 1) / sp.log(10), "1"),),
        events=(
            Event("tocilizumab", When(C - sym("c_max"), +1), {"C": C * sym("toci")}),
            Event("ld", At(sym("t_ld")), {"L": L * sym("f_ld")}),
            Event("extinct", When(L - 1e5, -1), {"L": 0}),
        ),
    )


def _registered_networks() -> list[tuple[str, Network]]:
    if importlib.util.find_spec("livingdrug.models") is None:
        return []
    import livingdrug.models as models

    get = getattr(models, "get_model", None)
    if get is None:
        return []
    out = []
    names = getattr(models, "MODELS", None) or getattr(models, "REGISTRY", None)
    names = list(names) if names else ["car_t", "stein2019", "kimmel2021", "cartmath"]
    for name in names:
        try:
            out.append((name, get(name).build()))
        except KeyError:
            continue
    return out


def _models_available() -> bool:
    try:
        return bool(_registered_networks())
    except Exception:
        return False


def compare(net: Network, t_end: float, n_out: int) -> dict[str, float]:
    sbml = net.to_sbml()
    compiled = net.compile()
    t0 = float(net.meta.get("time_start", 0.0))
    t_eval = np.linspace(t0, t_end, n_out)
    ref = solve_reference(compiled, net.initial_state(), net.parameter_vector(), t_eval,
                          rtol=1e-10, atol=1e-12)
    assert ref.status[0] == 0, ref.message[0]
    rr = roadrunner.RoadRunner(sbml)
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-16
    rr.integrator.setValue("maximum_num_steps", 1_000_000)
    sel = ["time", *net.species_names, *net.observable_names]
    res = np.array(rr.simulate(0.0, t_end - t0, n_out, sel))
    res[:, 0] += t0  # SBML time 0 is model time t0
    np.testing.assert_allclose(res[:, 0], t_eval, rtol=1e-12)
    obs = compiled.observables_batch(t_eval, ref.y, net.parameter_vector()[None, :])[0]
    want = np.concatenate([ref.y[0], obs], axis=1)
    got = res[:, 1:]
    errs = {}
    for j, name in enumerate(sel[1:]):
        w, g = want[:, j], got[:, j]
        scale = np.max(np.abs(w))
        mask = np.abs(w) > 1e-6 * scale
        rel = np.abs(g[mask] - w[mask]) / np.abs(w[mask])
        errs[name] = float(rel.max()) if rel.size else 0.0
        # components that are tiny in the reference must be tiny in roadrunner too
        assert np.all(np.abs(g[~mask]) <= 1e-5 * max(scale, 1e-300) + 1e-9), name
    return errs


def check_counts(net: Network) -> None:
    doc = libsbml.readSBMLFromString(net.to_sbml())
    m = doc.getModel()
    assert m.getNumSpecies() == len(net.species)
    const = [m.getParameter(i) for i in range(m.getNumParameters()) if m.getParameter(i).getConstant()]
    assert [p.getId() for p in const] == list(net.param_names)
    assert m.getNumEvents() == len(net.events)
    assert m.getNumReactions() == len(net.reactions)
    assert m.getNumRules() == len(net.observables)
    for i in range(m.getNumRules()):
        assert m.getRule(i).isAssignment()
    doc.checkConsistency()
    log = doc.getErrorLog()
    severe = [log.getError(i).getMessage() for i in range(log.getNumErrors())
              if log.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    assert not severe


@pytest.mark.parametrize("make", [logistic_kill, log_exp_division])
def test_counts_and_validity(make):
    check_counts(make())


def test_logistic_kill_matches_roadrunner():
    net = logistic_kill()
    errs = compare(net, 120.0, 241)
    assert max(errs.values()) <= 1e-6, errs
    # the extinction event fired in the reference (L becomes exactly 0)
    ref = solve_reference(net.compile(), net.initial_state(), net.parameter_vector(), [0.0, 120.0])
    assert ref.y[0, -1, 1] == 0.0


def test_simultaneous_doses_add():
    net = logistic_kill()
    rr = roadrunner.RoadRunner(net.to_sbml())
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-16
    before = np.array(rr.simulate(0.0, 5.0 - 1e-9, 2, ["E"]))[-1, 0]
    after = np.array(rr.simulate(5.0 - 1e-9, 5.0 + 1e-9, 2, ["E"]))[-1, 0]
    assert after - before == pytest.approx(3e6, rel=1e-6)


def test_log_exp_division_matches_roadrunner():
    net = log_exp_division()
    errs = compare(net, 100.0, 101)
    assert max(errs.values()) <= 1e-6, errs
    ref = solve_reference(net.compile(), net.initial_state(), net.parameter_vector(), [0.0, 50.0])
    assert ref.stats["events"] >= 2 and ref.y[0, -1, 1] == 0.0


def test_log_is_natural_log():
    from livingdrug.sbml import sympy_to_l3_formula

    text = sympy_to_l3_formula(sp.log(L) * T + L ** 2.5 - sp.exp(-E / 3))
    assert "ln(" in text and "time" in text and "^" in text
    ast = libsbml.parseL3Formula(text)
    assert ast is not None
    back = libsbml.formulaToL3String(ast)
    assert back == text


@pytest.mark.skipif(not _models_available(), reason="livingdrug.models.get_model does not exist yet")
@pytest.mark.parametrize("name", ["car_t", "stein2019", "kimmel2021", "cartmath", "lbcl", "myeloma"])
def test_registered_models(name):
    nets = dict(_registered_networks())
    if name not in nets:
        pytest.skip(f"model {name!r} is not registered in livingdrug.models")
    net = nets[name]
    check_counts(net)
    errs = compare(net, 365.0, 372)
    assert max(errs.values()) <= 1e-6, errs
