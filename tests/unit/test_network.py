"""The network core: one definition, consistent derived forms, clear construction errors."""

import numpy as np
import pytest
import sympy as sp

from livingdrug.models import MODELS
from livingdrug.network import (
    At,
    Event,
    Network,
    Reaction,
    Species,
    When,
    compile_network,
    sym,
    with_values,
)
from livingdrug.params import Param


def _random_state(net, rng):
    y0 = net.initial_state()
    scale = np.where(y0 > 0, y0, 1e3)
    return scale * rng.uniform(0.1, 3.0, y0.size)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rhs_is_stoichiometry_times_propensities(name):
    """dy/dt = S · r(t, y, p): the ODE and the stochastic engines see the same reactions."""
    net = MODELS[name].network()
    c = compile_network(net)
    rng = np.random.default_rng(7)
    p = net.parameter_vector()
    for _ in range(5):
        y = _random_state(net, rng)
        dy = np.empty_like(y)
        c.rhs(3.0, y, p, dy)
        a = c.propensities_at(3.0, y, p)
        expect = net.stoichiometry() @ a
        np.testing.assert_allclose(dy, expect, rtol=1e-10, atol=1e-10 * np.abs(a).max())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_engine_rhs_and_jacobian_with_hoisted_parameters_agree_with_the_plain_ones(name):
    """The ODE engine's rhs_q/jac_q compute parameter-only parts once per patient
    (``derive``); with varied parameters and states they agree with rhs/jac to rounding, and
    the right-hand side no longer divides by a parameter."""
    net = MODELS[name].network()
    c = compile_network(net)
    m = c.module
    rng = np.random.default_rng(3)
    for _ in range(5):
        p = net.parameter_vector() * rng.uniform(0.5, 2.0, len(net.params))
        q = np.empty(m.N_PARAMS + m.N_DERIVED)
        m.derive(p, q)
        np.testing.assert_array_equal(q[:m.N_PARAMS], p)
        y = _random_state(net, rng)
        dy, dq = np.empty_like(y), np.empty_like(y)
        c.rhs(2.0, y, p, dy)
        m.rhs_q(2.0, y, q, dq)
        scale = np.abs(dy) + 1e-300
        assert np.all(np.abs(dq - dy) <= 1e-9 * scale + 1e-12 * np.abs(dy).max()), name
        J, Jq = np.zeros((y.size, y.size)), np.zeros((y.size, y.size))
        c.jac(2.0, y, p, J)
        m.jac_q(2.0, y, q, Jq)
        assert np.all(np.abs(Jq - J) <= 1e-9 * np.abs(J) + 1e-12 * np.abs(J).max()), name
    src = c.source[c.source.index("def rhs_q"):c.source.index("def jac_q")]
    assert "/p[" not in src and "1/p[" not in src


@pytest.mark.parametrize("name", sorted(MODELS))
def test_batched_observables_are_the_pointwise_ones_bit_for_bit(name):
    """observables_batch writes the observables' expressions out in its loop (no call per
    point); patient by patient and time by time it gives exactly what observables() gives."""
    net = MODELS[name].network()
    c = compile_network(net)
    rng = np.random.default_rng(11)
    t = np.array([0.0, 0.5, 3.0])
    Y = np.stack([[_random_state(net, rng) for _ in t] for _ in range(3)])
    P = np.stack([net.parameter_vector() * rng.uniform(0.5, 2.0, len(net.params)) for _ in range(3)])
    obs = c.observables_batch(t, Y, P)
    for i in range(3):
        for j in range(t.size):
            out = np.empty(len(net.observables))
            c.module.observables(t[j], Y[i, j].copy(), P[i].copy(), out)
            np.testing.assert_array_equal(obs[i, j], out)


@pytest.mark.parametrize("name", sorted(n for n in MODELS if not MODELS[n].network().meta.get("ode_only")))
def test_propensities_are_nonnegative_for_stochastic_use(name):
    """An exact stochastic engine needs every reaction rate ≥ 0 at non-negative states."""
    # the toxicity block (concentrations, ODE only) is off for stochastic engines
    net = MODELS[name].network(**({"toxicity": False} if name in ("car_t", "car_nk", "lbcl", "myeloma") else {}))
    c = compile_network(net)
    rng = np.random.default_rng(11)
    for _ in range(20):
        y = _random_state(net, rng)
        assert (c.propensities_at(0.0, y, net.parameter_vector()) >= 0).all()


def test_batched_forms_match_single_patient_forms():
    net = MODELS["car_t"].network()
    c = compile_network(net)
    rng = np.random.default_rng(3)
    Y = np.stack([_random_state(net, rng) for _ in range(4)])
    P = np.tile(net.parameter_vector(), (4, 1)) * rng.uniform(0.8, 1.2, (4, len(net.params)))
    dY, J = c.rhs_batch(1.0, Y, P), c.jac_batch(1.0, Y, P)
    assert dY.shape == Y.shape and J.shape == (4, Y.shape[1], Y.shape[1])
    for i in range(4):
        dy = np.empty(Y.shape[1])
        c.rhs(1.0, Y[i], P[i], dy)
        np.testing.assert_array_equal(dY[i], dy)


def test_construction_errors_name_the_culprit():
    E = sym("E")
    sp_ = (Species("E", initial=1.0),)
    pr = (Param("k", 1.0, "1/d"),)
    with pytest.raises(ValueError, match="unknown species"):
        Network("n", sp_, pr, (Reaction("r", {"X": 1}, sym("k") * E),))
    with pytest.raises(ValueError, match="unknown symbols.*q"):
        Network("n", sp_, pr, (Reaction("r", {"E": 1}, sym("q") * E),))
    with pytest.raises(ValueError, match="names used twice"):
        Network("n", sp_, (Param("E", 1.0, "1/d"),), ())
    with pytest.raises(ValueError, match="unknown species"):
        Network("n", sp_, pr, (), events=(Event("e", At(sp.Float(1)), {"Z": 0}),))
    with pytest.raises(ValueError, match="outside its bounds"):
        Param("k", -1.0, "1/d")
    with pytest.raises(ValueError, match="unknown unit"):
        Species("E", unit="blorps")


def test_with_values_exports_one_patient():
    E = sym("E")
    net = Network(
        "grow", (Species("E", initial=1.0),), (Param("k", 0.5, "1/d"),),
        (Reaction("g", {"E": 1}, sym("k") * E),),
        events=(Event("cap", When(E - 10, 1), {"E": 10}),),
    )
    v = with_values(net, np.array([0.25]), np.array([4.0]))
    assert v.param("k").value == 0.25 and v.species_by_name("E").initial == 4.0
    assert net.param("k").value == 0.5  # the original is unchanged (frozen values)


def test_generated_code_is_reused_for_an_identical_network():
    a = MODELS["stein2019"].network()
    b = MODELS["stein2019"].network()
    assert a is not b
    assert compile_network(a).module is compile_network(b).module


def test_generated_source_is_cached_by_structure(tmp_path, monkeypatch):
    """The source of a network is generated once per structure: a rebuilt network with other
    parameter values and initial amounts reuses it; a changed rate law does not."""
    from dataclasses import replace

    import livingdrug.network as nw
    from livingdrug.models import get_model

    monkeypatch.setenv("LIVINGDRUG_CACHE_DIR", str(tmp_path))
    a = get_model("car_t").network()
    b = nw.with_values(a, a.parameter_vector() * 0.99, a.initial_state() + 1.0)
    assert nw.structure_key(a) == nw.structure_key(b)
    r0 = a.reactions[0]
    c = replace(a, reactions=(replace(r0, rate=2 * r0.rate), *a.reactions[1:]))
    assert nw.structure_key(c) != nw.structure_key(a)
    calls = []
    real = nw.generate_source
    monkeypatch.setattr(nw, "generate_source", lambda net: calls.append(net.name) or real(net))
    s1 = nw._cached_source(a)
    s2 = nw._cached_source(b)
    assert s1 == s2 == real(a) and calls == ["car_t"]
    assert nw._cached_source(c) != s1 and calls == ["car_t", "car_t"]
