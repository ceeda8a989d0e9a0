"""Every registered model obeys the model-library contract (see livingdrug.models)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from livingdrug.engines.reference import reference_trajectory
from livingdrug.models import MODELS, ModelSpec, get_model
from livingdrug.models.cytokines import CLINICAL_SIGNS
from livingdrug.network import Network

ROLES = {"cart_blood", "transgene", "blasts_pct", "mrd", "bcells_blood", "tumour_total",
         "tumour_antigen_neg", "tumour_car_masked", ""}
# toxicity (models.cytokines): the clinical signs of the issue-4 contract, cytokines, in-model grades
ROLES |= set(CLINICAL_SIGNS) | {"il6", "il6_signalling", "il1", "ifng", "car_engaged", "crs_grade_model",
                                "icans_grade_model"}
#: roles only present with a model option (car_t: car_leukaemia)
OPTIONAL_ROLES = {"tumour_car_masked"}
#: lymphoma and myeloma read-outs (lbcl, myeloma; scored by livingdrug.clinical.response)
DISEASE_ROLES = {"tumour_spd", "m_protein", "marrow_plasma_pct", "myeloma_mrd", "normal_igg"}
#: toxicity read-outs (models.cytokines: the issue-4 clinical signs and the cytokines)
TOXICITY_ROLES = set(CLINICAL_SIGNS) | {"il6", "il6_signalling", "il1", "ifng", "car_engaged", "crs_grade_model",
                                       "icans_grade_model"}
ROLES |= DISEASE_ROLES

CAR_T_ALL_OPTIONS = {"tracked_clones": 3, "advantaged_clone": True, "car_leukaemia": True}
CAR_NK_BARE = {"il15": False, "toxicity": False}
CASES = [(name, {}) for name in MODELS] + [("cartmath", {"variant": "raji"}), ("car_nk", CAR_NK_BARE),
                                           ("car_t", CAR_T_ALL_OPTIONS)]
IDS = [f"{n}-{o.get('variant', 'default')}" for n, o in CASES[:-2]] + ["car_nk-bare", "car_t-clones-car_leukaemia"]


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def net(request) -> Network:
    name, opts = request.param
    return get_model(name).network(**opts)


def test_registry_api():
    assert set(MODELS) >= {"car_t", "stein2019", "kimmel2021", "cartmath"}
    for name, spec in MODELS.items():
        assert isinstance(spec, ModelSpec) and spec.name == name
        assert spec.title and spec.reference
        assert isinstance(spec.build(**spec.options), Network)
    assert get_model("cartmath").options["variant"] == "hdlm2"
    with pytest.raises(KeyError, match="car_t"):
        get_model("no_such_model")


def test_params_have_unit_bounds_source(net):
    for p in net.params:
        assert p.unit, p.name
        lo, hi = p.bounds
        assert lo <= p.value <= hi, p.name
        assert p.source.strip(), p.name


def test_observables_and_meta(net):
    for o in net.observables:
        assert o.role in ROLES, (o.name, o.role)
        assert o.unit
    roles = [o.role for o in net.observables if o.role]
    assert len(roles) == len(set(roles))
    meta = net.meta
    assert isinstance(meta.get("time_start", 0.0), float)
    known = set(net.species_names) | set(net.observable_names)
    for title, names in meta.get("groups", {}).items():
        assert title and names and set(names) <= known, title
    if "dose" in meta:
        assert net.param(meta["dose"]["param"]).unit == "cell"
        assert net.param(meta["dose"]["time_param"]).unit == "d"
    if "weight_param" in meta:
        assert net.param(meta["weight_param"]).unit == "kg"


def test_disease_models_roles_complete():
    """lbcl exposes the Lugano read-out (SPD) and B cells; myeloma the IMWG read-outs; both the
    CAR-T and toxicity read-outs (with the default option toxicity = true)."""
    common = {"cart_blood", "transgene", "tumour_total", "tumour_antigen_neg"} | TOXICITY_ROLES
    for name, own in (("lbcl", {"tumour_spd", "bcells_blood"}),
                      ("myeloma", {"m_protein", "marrow_plasma_pct", "myeloma_mrd", "normal_igg"})):
        net = get_model(name).network()
        for role in common | own:
            assert net.observable_by_role(role) is not None, (name, role)
        assert net.observable_by_role("blasts_pct") is None  # no B-ALL response for these
        assert net.meta["dose"] == {"param": "dose", "time_param": "t_inf"}
        assert not any(s.name.startswith("IL6") for s in get_model(name).network(toxicity=False).species)


def test_car_t_roles_complete():
    net = get_model("car_t").network()
    for role in ROLES - {""} - OPTIONAL_ROLES - DISEASE_ROLES:
        assert net.observable_by_role(role) is not None, role
    full = get_model("car_t").network(**CAR_T_ALL_OPTIONS)
    for role in ROLES - {""} - DISEASE_ROLES:
        assert full.observable_by_role(role) is not None, role
    assert net.meta["dose"] == {"param": "dose", "time_param": "t_inf"}
    assert net.meta["weight_param"] == "weight"
    assert 10 <= len(get_model("car_t").network(toxicity=False).species) <= 16  # 11 species: compact by design


def test_car_nk_roles_complete():
    """car_nk exposes the car_t read-outs (CAR cells in blood as role cart_blood, so the exposure
    endpoints work; B-ALL response roles, so ball_response scores it) and the toxicity roles."""
    net = get_model("car_nk").network()
    for role in ROLES - {""} - OPTIONAL_ROLES - DISEASE_ROLES:
        assert net.observable_by_role(role) is not None, role
    assert net.meta["dose"] == {"param": "dose", "time_param": "t_inf"}
    assert net.meta["weight_param"] == "weight"
    bare = get_model("car_nk").network(**CAR_NK_BARE)
    assert not set(TOXICITY_ROLES) & {o.role for o in bare.observables}
    assert bare.observable_by_role("cart_blood") is not None


def test_jacobian_matches_finite_differences(net):
    c = net.compile()
    rng = np.random.default_rng(12345)
    y0 = net.initial_state()
    scale = np.where(y0 > 0, y0, 1e3)
    y = scale * rng.uniform(0.5, 1.5, size=len(y0))
    p = net.parameter_vector()
    n = len(y)
    J = np.empty((n, n))
    c.jac(1.0, y, p, J)
    F = np.empty((n, n))
    dp, dm = np.empty(n), np.empty(n)
    for j in range(n):
        h = 1e-6 * abs(y[j])
        yp, ym = y.copy(), y.copy()
        yp[j] += h
        ym[j] -= h
        c.rhs(1.0, yp, p, dp)
        c.rhs(1.0, ym, p, dm)
        F[:, j] = (dp - dm) / (2 * h)
    # compare column-scaled: ∂f/∂y_j · y_j is in rate units of f
    Js, Fs = J * y, F * y
    tol = 1e-5 * np.maximum(np.abs(Fs).max(axis=1, keepdims=True), 1e-30)
    assert np.all(np.abs(Js - Fs) <= tol + 1e-12)


def test_ninety_day_default_solve_is_finite_and_nonnegative(net):
    t0 = float(net.meta.get("time_start", 0.0))
    t = np.linspace(t0, 90.0, 50)
    Y = reference_trajectory(net, (t0, 90.0), t)
    assert np.all(np.isfinite(Y))
    floor = -1e-6 * np.maximum(np.abs(Y).max(axis=0), 1.0)
    signed = np.array([not s.nonnegative for s in net.species])  # e.g. times of the last dose
    assert np.all((Y >= floor) | signed)
    c = net.compile()
    p = net.parameter_vector()
    obs_arr = c.observables_batch(t, Y[None], p[None])[0]
    assert np.all(np.isfinite(obs_arr))


def test_events_are_valid(net):
    c = net.compile()
    p = net.parameter_vector()
    for k, e in enumerate(net.events):
        if c.event_is_timed[k]:
            assert math.isfinite(c.event_time(k, p)), e.name
