"""ODE engine mechanics: failure isolation, bitwise batch/chunk/thread invariance, argument
validation, provenance settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ode_models import logistic_network, robertson_network

from livingdrug.engines.common import (
    STATUS_MAX_STEPS,
    STATUS_NONFINITE,
    STATUS_OK,
    STATUS_STEP_TOO_SMALL,
)
from livingdrug.engines.ode import KERNEL_HASH, solve
from livingdrug.network import At, Event, Network, Reaction, Species, When, compile_network, sym
from livingdrug.params import Param


@pytest.fixture(scope="module")
def logi():
    return compile_network(logistic_network())


@pytest.fixture(scope="module")
def rob():
    return compile_network(robertson_network())


def _pop(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n logistic patients with random rates, capacities, doses, thresholds."""
    rng = np.random.default_rng(seed)
    P = np.empty((n, 6))
    P[:, 0] = rng.uniform(-0.5, 1.5, n)  # r
    P[:, 1] = 10 ** rng.uniform(2, 8, n)  # K
    P[:, 2] = rng.uniform(0, 10, n)  # t_dose
    P[:, 3] = rng.uniform(0, 50, n)  # dose
    P[:, 4] = rng.choice([-1.0, 0.5], n)  # thr
    P[:, 5] = 1e9
    y0 = np.column_stack([rng.uniform(0.5, 5, n), np.full(n, -1.0)])
    return y0, P


T_EVAL = np.linspace(0.0, 12.0, 49)


# ---------------------------------------------------------------------------------------
# 5. failures are data
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["auto", "rodas", "dopri5"])
def test_failure_isolation(logi, method):
    """Patient 1 blows up in finite time (K = −1: y' = y(1 + y), y → ∞ at t = ln 2) and
    patient 3 has K = 0, so the compiled rate law divides by zero (generated code uses numpy's
    error model: the rate becomes infinite); both get a non-zero status,
    NaN outputs after the failure and a message with the time; the others match their solo
    solves bitwise."""
    y0, P = _pop(5, seed=1)
    P[1, :2] = (1.0, -1.0)
    y0[1, 0] = 1.0
    P[3, 1] = 0.0
    sol = solve(logi, y0, P, T_EVAL, method=method)
    assert sol.status[1] in (STATUS_NONFINITE, STATUS_STEP_TOO_SMALL)
    assert sol.status[3] == STATUS_NONFINITE
    assert "t = " in sol.message[1] and "patient 1" in sol.message[1]
    t_blow = np.log(2.0)
    assert np.isnan(sol.y[1, T_EVAL > t_blow]).all()
    np.testing.assert_allclose(sol.y[1, T_EVAL < t_blow - 0.05, 0],
                               1 / (2 * np.exp(-T_EVAL[T_EVAL < t_blow - 0.05]) - 1), rtol=1e-4)
    assert np.isnan(sol.y[3, 1:]).all()
    assert "NaN or infinite" in sol.message[3] and "t = " in sol.message[3]
    for i in (0, 2, 4):
        assert sol.status[i] == STATUS_OK
        assert sol.message[i] == "ok"
        solo = solve(logi, y0[i], P[i], T_EVAL, method=method)
        np.testing.assert_array_equal(sol.y[i], solo.y[0])


def test_max_steps_status(logi):
    sol = solve(logi, [1.0, 0.0], [1.0, 1e6, 1e9, 0.0, -1.0, 1e9], T_EVAL, max_steps=5)
    assert sol.status[0] == STATUS_MAX_STEPS
    assert "max_steps = 5" in sol.message[0]
    assert np.isnan(sol.y[0, -1]).all()
    assert sol.y[0, 0, 0] == 1.0  # the initial output was recorded before failing


# ---------------------------------------------------------------------------------------
# 6. bitwise invariance: alone, batches, chunks, serial/parallel
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["auto", "rodas", "dopri5"])
def test_bitwise_chunk_and_thread_invariance(logi, method):
    y0, P = _pop(23, seed=2)
    full = solve(logi, y0, P, T_EVAL, method=method)
    assert np.all(full.status == STATUS_OK), full.message
    assert full.stats["events"] > 0
    serial = solve(logi, y0, P, T_EVAL, method=method, parallel=False)
    np.testing.assert_array_equal(full.y, serial.y)
    assert full.stats == serial.stats
    chunks = [solve(logi, y0[a:b], P[a:b], T_EVAL, method=method) for a, b in
              ((0, 1), (1, 8), (8, 23))]
    np.testing.assert_array_equal(full.y, np.concatenate([c.y for c in chunks]))
    perm = np.random.default_rng(0).permutation(23)
    shuffled = solve(logi, y0[perm], P[perm], T_EVAL, method=method)
    np.testing.assert_array_equal(full.y[perm], shuffled.y)
    alone = solve(logi, y0[7], P[7], T_EVAL, method=method)
    np.testing.assert_array_equal(full.y[7], alone.y[0])


def test_bitwise_invariance_stiff_switching(rob):
    """Robertson patients with different rate constants (auto switches to Rodas): same bits
    alone, serial, parallel and chunked."""
    rng = np.random.default_rng(3)
    P = rob.network.parameter_vector() * rng.lognormal(0, 0.3, size=(9, 3))
    t = np.array([0.0, 0.01, 1.0, 100.0, 1e4])
    full = solve(rob, [1.0, 0.0, 0.0], P, t)
    assert np.all(full.status == STATUS_OK)
    assert full.stats["stiff_switches"] >= 9
    serial = solve(rob, [1.0, 0.0, 0.0], P, t, parallel=False)
    np.testing.assert_array_equal(full.y, serial.y)
    parts = np.concatenate([solve(rob, [1.0, 0.0, 0.0], P[a:b], t).y for a, b in ((0, 4), (4, 9))])
    np.testing.assert_array_equal(full.y, parts)


def test_broadcasting_and_empty(logi):
    y0, P = _pop(4, seed=4)
    a = solve(logi, y0[0], P, T_EVAL)
    b = solve(logi, np.tile(y0[0], (4, 1)), P, T_EVAL)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.y.shape == (4, T_EVAL.size, 2)
    c = solve(logi, y0, P[0], T_EVAL)
    assert c.y.shape == (4, T_EVAL.size, 2)
    e = solve(logi, np.empty((0, 2)), np.empty((0, 6)), T_EVAL)
    assert e.y.shape == (0, T_EVAL.size, 2) and e.status.shape == (0,)


def test_settings_and_stats_are_provenance(logi):
    y0, P = _pop(3, seed=5)
    sol = solve(logi, y0, P, T_EVAL, rtol=1e-7, atol=1e-10, method="rodas")
    s = json.loads(json.dumps(sol.settings))
    assert s["method"] == "rodas" and s["rtol"] == 1e-7 and s["atol"] == 1e-10
    assert s["kernel_sha256"] == KERNEL_HASH
    assert s["fixed_step"] is None and s["t0"] == 0.0
    json.dumps(sol.stats)
    assert sol.stats["steps"] > 0 and sol.stats["jac_evals"] >= sol.stats["steps"]
    assert sol.stats["lu_decompositions"] >= sol.stats["steps"]


# ---------------------------------------------------------------------------------------
# 7. argument validation
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"t_eval": np.array([0.0, 2.0, 1.0])}, "strictly increasing"),
        ({"t_eval": np.array([0.0, 1.0, 1.0])}, "strictly increasing"),
        ({"t_eval": np.zeros((2, 2))}, "1-D"),
        ({"t_eval": np.array([])}, "non-empty"),
        ({"t_eval": np.array([0.0, np.nan])}, "finite"),
        ({"t0": 0.5}, "t0"),
        ({"rtol": 0.0}, "rtol"),
        ({"rtol": -1e-6}, "rtol"),
        ({"atol": 0.0}, "atol"),
        ({"atol": np.nan}, "atol"),
        ({"method": "euler"}, "method"),
        ({"max_steps": 0}, "max_steps"),
        ({"first_step": -1.0}, "first_step"),
        ({"fixed_step": 0.0}, "fixed_step"),
        ({"y0": np.ones(3)}, "y0"),
        ({"y0": np.ones((2, 2, 2))}, "y0"),
        ({"P": np.ones(5)}, "P"),
        ({"y0": np.ones((3, 2)), "P": np.ones((2, 6))}, "patients"),
        ({"y0": np.array([np.inf, 0.0])}, "y0 must be finite"),
        ({"P": np.array([1.0, np.nan, 1e9, 0.0, -1.0, 1e9])}, "P must be finite"),
    ],
)
def test_argument_validation(logi, kwargs, match):
    args = {"y0": np.array([1.0, 0.0]), "P": np.array([1.0, 10.0, 1e9, 0.0, -1.0, 1e9]),
            "t_eval": np.linspace(0.0, 1.0, 3)}
    for key in ("y0", "P", "t_eval"):
        if key in kwargs:
            args[key] = kwargs.pop(key)
    with pytest.raises(ValueError, match=match):
        solve(logi, args["y0"], args["P"], args["t_eval"], **kwargs)


def test_a_jump_that_carries_a_condition_across_zero_fires_it_like_the_reference_and_sbml():
    """Lymphodepletion-like jump at t=1 (L → 1e-3·L) takes L from 500 to 0.5 cells, below the
    extinction threshold of 1 cell: the condition event must fire at t=1 (set L to 0), as the
    scipy reference engine and SBML event semantics do; without it L would decay from 0.5."""
    import sympy as sp

    from livingdrug.engines.ode import solve
    from livingdrug.engines.reference import solve_reference
    from livingdrug.network import compile_network

    L = sym("L")
    net = Network(
        "jump_condition",
        (Species("L", initial=500.0),),
        (Param("r", 0.1, "1/d"),),
        (Reaction("grow", {"L": 1}, sym("r") * L),),
        events=(
            Event("deplete", At(sp.Float(1.0)), {"L": L * 1e-3}),
            Event("extinct", When(L - 1, -1), {"L": 0}),
        ),
    )
    c = compile_network(net)
    t = np.array([0.0, 0.5, 1.0, 2.0, 5.0])
    a = solve(c, net.initial_state(), net.parameter_vector(), t)
    b = solve_reference(c, net.initial_state(), net.parameter_vector(), t)
    assert a.status[0] == 0 and b.status[0] == 0
    assert a.y[0, 2:, 0].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(a.y[0, :, 0], b.y[0, :, 0], rtol=1e-6, atol=1e-12)


# ---------------------------------------------------------------------------------------
# sparse linear algebra of the Rosenbrock steps
# ---------------------------------------------------------------------------------------


def _dense_w(J: np.ndarray, fac: float) -> np.ndarray:
    return fac * np.eye(J.shape[0]) - J


def test_static_sparse_lu_solves_the_rosenbrock_system_of_the_car_t_model():
    """The static-pattern LU (Markowitz order, threshold pivot test) of W = I/(hγ) − J on the
    default CAR-T model (31 species; Jacobian at three states up to one day after the
    infusion; h from 0.01 to 100 days) solves W x = b like numpy's LAPACK solve to 1e-10
    relative (the condition number times machine precision is far below); where its pivot
    test refuses (species at exactly zero make the error-norm scaling extreme), the dense LU
    with partial pivoting that the Rodas step falls back to does.  The static factors hold
    far fewer entries than the dense n², and are accepted in most of the 9 cases."""
    from livingdrug.engines import _ode_kernel as K
    from livingdrug.engines.ode import _lu_plan, lu_source
    from livingdrug.models import car_t
    from livingdrug.network import _load_generated

    c = compile_network(car_t.build())
    gen = _load_generated(lu_source(c))  # the model's generated LU and solve
    net = c.network
    P = net.parameter_vector()
    y0 = net.initial_state()
    n = y0.size
    plan = _lu_plan(c)
    assert plan[2].size + plan[6].size < n * n / 4
    rng = np.random.default_rng(7)
    t = np.linspace(float(net.meta.get("time_start", 0.0)), 1.0, 3)
    states = solve(c, y0, P, t).y[0]
    accepted = 0
    for y in states:
        J = np.zeros((n, n))
        c.jac(1.0, y.copy(), P.copy(), J)
        for h in (0.01, 1.0, 100.0):
            fac = 1.0 / (0.25 * h)
            W = np.zeros((n, n))
            K._ode_w_static(J, fac, W, plan[0])
            b = rng.normal(size=n) * (1.0 + np.abs(y))
            x = b.copy()
            if gen.lu(W, y, 1e-6, 1e-9):
                accepted += 1
                gen.lusolve(W, x)
            else:  # what the Rodas step does then: dense LU with partial pivoting
                W = _dense_w(J, fac)
                iw = np.zeros(4 * n + 2 + n * (n - 1), dtype=np.int64)
                assert K._ode_lu(W, iw)
                K._ode_lu_solve(W, iw, x)
            ref = np.linalg.solve(_dense_w(J, fac), b)
            np.testing.assert_allclose(x, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    print("static LU accepted", accepted)
    assert accepted >= 5


def test_static_lu_refuses_a_small_pivot_and_the_dense_lu_pivots():
    """A diagonal pivot smaller than τ = 0.1 times an entry below it (error-norm scaled) is
    refused by the static LU; the dense LU with partial pivoting (used instead) solves the
    system like numpy to 1e-12, and so does it on random sparse matrices that need row
    exchanges."""
    from livingdrug.engines import _ode_kernel as K
    from livingdrug.engines.ode import lu_source
    from livingdrug.network import _load_generated

    c = compile_network(robertson_network())
    gen = _load_generated(lu_source(c))
    A = np.array([[1e-12, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.5]])
    W = A.copy()
    assert not gen.lu(W, np.ones(3), 1e-6, 1e-9)
    W = np.array([[2.0, 1.0, 1.0], [1.0, 3.0, 1.0], [0.0, 1.0, 1.5]])  # diagonally dominant: accepted
    x = np.array([1.0, -2.0, 0.5])
    assert gen.lu(W, np.ones(3), 1e-6, 1e-9)
    gen.lusolve(W, x)
    np.testing.assert_allclose(x, np.linalg.solve([[2.0, 1.0, 1.0], [1.0, 3.0, 1.0], [0.0, 1.0, 1.5]],
                                                  [1.0, -2.0, 0.5]), rtol=1e-12)
    rng = np.random.default_rng(3)
    for n, M in [(3, A)] + [(m, None) for m in (5, 12, 31)] * 3:
        if M is None:
            M = rng.normal(size=(n, n)) * (rng.random((n, n)) < 0.3)
            M[np.arange(n), rng.permutation(n)] += rng.normal(size=n) * 3.0  # non-singular
        W = M.copy()
        iw = np.zeros(4 * n + 2 + n * (n - 1), dtype=np.int64)
        assert K._ode_lu(W, iw)
        b = rng.normal(size=n)
        x = b.copy()
        K._ode_lu_solve(W, iw, x)
        np.testing.assert_allclose(M @ x, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())
        np.testing.assert_allclose(x, np.linalg.solve(M, b), rtol=1e-9, atol=1e-12)


def test_borrowed_views_and_raw_pointers_reach_the_arrays_own_memory():
    """The kernel's work arrays are borrowed views of one buffer and model functions get raw
    data pointers (no reference counting, livingdrug.engines._pointers): a write through
    either lands in the owning array, element for element, 1-D and 2-D."""
    from numba import carray, njit

    from livingdrug.engines._pointers import borrowed, keep, ptr

    @njit
    def fill(mem, n):
        a = borrowed(mem[2:2 + n])
        M = borrowed(mem[2 + n:2 + n + 4].reshape((2, 2)))
        for i in range(n):
            a[i] = i + 1.0
        M[1, 0] = -7.0
        raw = carray(ptr(a), (n,))
        raw[0] += 100.0
        keep(mem)
        return a.sum()

    mem = np.zeros(12)
    total = fill(mem, 3)
    np.testing.assert_array_equal(mem, [0, 0, 101, 2, 3, 0, 0, -7, 0, 0, 0, 0])
    assert total == 106.0
