# ruff: noqa: E741
# mypy: ignore-errors
"""Numba kernels of the deterministic engine (see :mod:`livingdrug.engines.ode`).

Compiled once for all models
----------------------------
The kernels do not know any model: they receive the model's functions as an argument
``fns = (rhs, jac, event_time, event_condition, event_apply, event_conditions, derive, lu,
lusolve)``, the numba ``cfunc`` s of :attr:`livingdrug.network.CompiledNetwork.cfuncs` and the
model's LU, and call them with raw pointers (``ptr(arr)``) to contiguous float64 arrays::

    derive(p, q)                     q = [p, d]: parameters, then their derived values
    rhs(t, y, q, dy)                 jac(t, y, q, J)            (J: n×n, C order)
    event_time(k, q) -> float        event_condition(k, t, y, q) -> float
    event_apply(k, t, y, q)          event_conditions(t, y, q, g)   (every g[k] at once)

``derive`` runs once per patient: the parameter-only subexpressions of the right-hand side
and Jacobian (``k_kill/K_m``, ``ln2/t_half`` …) are computed there, not at every evaluation
(:func:`livingdrug.network.hoist_parameters`; ~8 % of a ``car_t`` trial patient).  The event
functions read only ``q[:m]``, the parameters themselves.

Each accepted step evaluates all condition events with one ``event_conditions`` call (the
same expressions as ``event_condition``, so the same bits; ~6 % of a ``car_t`` solve saved
against one call per event); root finding and restarts call ``event_condition`` for one event.

numba types a cfunc by its signature alone (a first-class ``FunctionType``), so every model
has the same argument types and the kernels are compiled once, then cached on disk
(``cache=True``, under :func:`livingdrug.network.cache_dir`) and loaded by later processes;
a new model only compiles its own small functions.  (Before, this file was appended as source
text to every generated model module and the whole solver was compiled per model, ~20 s
each.)  The price is an indirect call per model evaluation and loops over the runtime number of
species instead of a compile-time constant: measured ~6 % slower on the ``car_t`` model
(2000 patients, serial and parallel; results bitwise identical to the former design).

Everything here is ``fastmath=False``: the result of one patient is bitwise identical whatever
batch, chunk or thread solves it.  No allocation happens inside the step loop; each patient
allocates one work buffer, and its work arrays are *borrowed* views of it
(:func:`livingdrug.engines._pointers.borrowed`, no reference count) while model functions get
raw data pointers (:func:`~livingdrug.engines._pointers.ptr`): with owned arrays and
``arr.ctypes``, numba's atomic reference-count updates at every call and inlined step took
~40 % of perf's samples of a ``car_t`` solve (``NRT_incref``/``NRT_decref``); without them
the solve is ~27 % faster, bitwise the same.  All arrays whose pointers
are passed to model functions are C-contiguous.

Both methods interpolate output times inside a step (DOPRI5: Shampine's order-4 extension;
Rodas4: Hairer & Wanner's order-3 extension of rodas.f); only ``fixed_step`` lands on them.
Rodas's matrix ``W = I/(hγ) − J`` is factored on the structural pattern prepared by
:func:`livingdrug.engines.ode._lu_plan` (the ``plan`` argument of the drivers: diagonal
pivots in Markowitz order under a scaled threshold-pivoting test), by the model's own
straight-line factorisation and solve, generated from that plan
(:func:`livingdrug.engines.ode._lu_cfuncs`, the last two of ``fns``), falling back to dense
LU with partial pivoting (:func:`_ode_lu`) for a step whose pivots fail the test.

Method codes: 0 = auto (DP5 with stiffness detection, switching to Rodas4), 1 = Rodas4,
2 = DOPRI5.  Status codes are those of :mod:`livingdrug.engines.common`.
Stats columns: 0 accepted steps, 1 rejected steps, 2 rhs evaluations, 3 Jacobian evaluations,
4 LU decompositions, 5 events fired, 6 stiffness switches.
"""

import math

import numpy as np
from numba import njit, prange

from ..network import use_cache_dir_for_numba
from . import _pointers
from ._pointers import borrowed, keep, ptr

use_cache_dir_for_numba(__file__, depends_on=(_pointers.__file__,))  # before the decorators below

# ---- DOPRI5 (Dormand & Prince 1980; Hairer, Nørsett & Wanner, Solving ODE I, Table II.5.2)
_DP_C2 = 1.0 / 5.0
_DP_C3 = 3.0 / 10.0
_DP_C4 = 4.0 / 5.0
_DP_C5 = 8.0 / 9.0
_DP_A21 = 1.0 / 5.0
_DP_A31 = 3.0 / 40.0
_DP_A32 = 9.0 / 40.0
_DP_A41 = 44.0 / 45.0
_DP_A42 = -56.0 / 15.0
_DP_A43 = 32.0 / 9.0
_DP_A51 = 19372.0 / 6561.0
_DP_A52 = -25360.0 / 2187.0
_DP_A53 = 64448.0 / 6561.0
_DP_A54 = -212.0 / 729.0
_DP_A61 = 9017.0 / 3168.0
_DP_A62 = -355.0 / 33.0
_DP_A63 = 46732.0 / 5247.0
_DP_A64 = 49.0 / 176.0
_DP_A65 = -5103.0 / 18656.0
_DP_A71 = 35.0 / 384.0
_DP_A73 = 500.0 / 1113.0
_DP_A74 = 125.0 / 192.0
_DP_A75 = -2187.0 / 6784.0
_DP_A76 = 11.0 / 84.0
_DP_E1 = 71.0 / 57600.0
_DP_E3 = -71.0 / 16695.0
_DP_E4 = 71.0 / 1920.0
_DP_E5 = -17253.0 / 339200.0
_DP_E6 = 22.0 / 525.0
_DP_E7 = -1.0 / 40.0
# dense output (continuous extension of order 4, Shampine 1986; Hairer's CONTD5)
_DP_D1 = -12715105075.0 / 11282082432.0
_DP_D3 = 87487479700.0 / 32700410799.0
_DP_D4 = -10690763975.0 / 1880347072.0
_DP_D5 = 701980252875.0 / 199316789632.0
_DP_D6 = -1453857185.0 / 822651844.0
_DP_D7 = 69997945.0 / 29380423.0

# ---- Rodas4 (Hairer & Wanner, Solving ODE II, 2nd ed. 1996, Sect. VI.7, method "RODAS";
# the coefficients of their code rodas.f, METH=1, in the transformed form (7.4'))
_RO_GAMMA = 0.25
_RO_C2 = 0.386
_RO_C3 = 0.21
_RO_C4 = 0.63
_RO_D1 = 0.25
_RO_D2 = -0.1043
_RO_D3 = 0.1035
_RO_D4 = -0.3620000000000023e-01
_RO_A21 = 0.1544000000000000e01
_RO_A31 = 0.9466785280815826e00
_RO_A32 = 0.2557011698983284e00
_RO_A41 = 0.3314825187068521e01
_RO_A42 = 0.2896124015972201e01
_RO_A43 = 0.9986419139977817e00
_RO_A51 = 0.1221224509226641e01
_RO_A52 = 0.6019134481288629e01
_RO_A53 = 0.1253708332932087e02
_RO_A54 = -0.6878860361058950e00
_RO_C21 = -0.5668800000000000e01
_RO_C31 = -0.2430093356833875e01
_RO_C32 = -0.2063599157091915e00
_RO_C41 = -0.1073529058151375e00
_RO_C42 = -0.9594562251023355e01
_RO_C43 = -0.2047028614809616e02
_RO_C51 = 0.7496443313967647e01
_RO_C52 = -0.1024680431464352e02
_RO_C53 = -0.3399990352819905e02
_RO_C54 = 0.1170890893206160e02
_RO_C61 = 0.8083246795921522e01
_RO_C62 = -0.7981132988064893e01
_RO_C63 = -0.3152159432874371e02
_RO_C64 = 0.1631930543123136e02
_RO_C65 = -0.6058818238834054e01
# dense output of order 3 (rodas.f, D21..D35; named H here, D being the time derivatives)
_RO_H21 = 0.1012623508344586e02
_RO_H22 = -0.7487995877610167e01
_RO_H23 = -0.3480091861555747e02
_RO_H24 = -0.7992771707568823e01
_RO_H25 = 0.1025137723295662e01
_RO_H31 = -0.6762803392801253e00
_RO_H32 = 0.6087714651680015e01
_RO_H33 = 0.1643084320892478e02
_RO_H34 = 0.2476722511418386e02
_RO_H35 = -0.6594389125716872e01

# ---- controller and stiffness-detection constants
_SAFE = 0.9
_FAC_MIN = 0.2  # smallest step ratio
_DP_FAC_MAX = 10.0  # largest step ratio (Hairer's DOPRI5)
_RO_FAC_MAX = 6.0  # largest step ratio (Hairer's RODAS)
_DP_BETA = 0.04  # PI stabilisation (Hairer's DOPRI5 default)
_STIFF_HLAMB = 2.8  # h*|lambda| near DOPRI5's real stability boundary (~3.3): stability-limited
_STIFF_COUNT = 15  # consecutive stiff indications before switching to Rodas
_NONSTIFF_RESET = 6
_NONSTIFF_HRHO = 2.0  # h*rho(J) below this for _NONSTIFF_COUNT Rodas steps -> back to DP5
_NONSTIFF_COUNT = 25


_ST_OK = 0
_ST_MAX_STEPS = 1
_ST_SMALL = 2
_ST_NONFINITE = 3
_ST_SINGULAR = 4
_ST_EXCEPTION = 5  # reported as STATUS_NONFINITE with its own message


@njit(cache=True, nogil=True, inline="always")
def _ode_all_finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@njit(cache=True, nogil=True)
def _ode_lu(A, iw):
    """In-place LU with partial pivoting (Doolittle, full row swaps).  False if singular.

    The diagonal of the result holds the reciprocals of U's pivots.  Loops run to the
    number of species.

    Sparsity: the Jacobians of reaction networks are mostly zeros (the default CAR-T model:
    ~104 non-zeros of 31×31, with inert counters and flags whose rows and columns are empty).
    The pivot sequence is the dense one (partial pivoting over the whole column), but the
    elimination of row ``i`` by pivot row ``k`` only visits the columns where row ``k`` is
    non-zero, and the factors' non-zero pattern is recorded for :func:`_ode_lu_solve`.  A
    skipped term is ``f·0``, so the factors equal the dense algorithm's (up to the sign of
    exact zeros); the pattern is the patient's own data, so results stay bitwise identical
    whatever batch solves the patient.

    ``iw`` (int64, length ``4n + 2 + n(n−1)``) receives: ``[0, n)`` the pivots; ``[n, 2n+1)`` and
    ``[2n+1, 3n+2)`` the column pointers of L's and U's strict triangles; ``[3n+2, 4n+2)``
    scratch; from ``4n+2`` the row indices of L's columns, then (from ``4n+2+n(n−1)/2``)
    those of U's."""
    n = A.shape[0]
    rb = 3 * n + 2
    for k in range(n):
        p = k
        amax = abs(A[k, k])
        for i in range(k + 1, n):
            v = abs(A[i, k])
            if v > amax:
                amax = v
                p = i
        iw[k] = p
        if amax == 0.0 or not math.isfinite(amax):
            return False
        if p != k:
            for j in range(n):
                tmp = A[k, j]
                A[k, j] = A[p, j]
                A[p, j] = tmp
        inv = 1.0 / A[k, k]
        A[k, k] = inv  # the factor keeps reciprocal pivots: the solves multiply
        m = 0
        for j in range(k + 1, n):
            if A[k, j] != 0.0:
                iw[rb + m] = j
                m += 1
        for i in range(k + 1, n):
            f = A[i, k] * inv
            A[i, k] = f
            if f != 0.0:
                for q in range(rb, rb + m):
                    jj = iw[q]
                    A[i, jj] -= f * A[k, jj]
    # non-zero pattern of the factors, column by column, for the triangular solves
    lp = n
    up = 2 * n + 1
    lb = 4 * n + 2
    ub = lb + (n * (n - 1)) // 2
    c = 0
    for j in range(n):
        iw[lp + j] = c
        for i in range(j + 1, n):
            if A[i, j] != 0.0:
                iw[lb + c] = i
                c += 1
    iw[lp + n] = c
    c = 0
    for j in range(n):
        iw[up + j] = c
        for i in range(j):
            if A[i, j] != 0.0:
                iw[ub + c] = i
                c += 1
    iw[up + n] = c
    return True


@njit(cache=True, nogil=True)
def _ode_lu_solve(A, iw, b):
    """Solve ``A x = b`` in place (``b`` becomes ``x``) with the factors of :func:`_ode_lu`.

    Column-oriented (axpy) sweeps over the recorded non-zeros only: for each ``b[i]`` the
    subtractions happen in the same order as in the dense row-oriented dot products (columns
    ascending, then descending), less the terms ``0·b[j]``."""
    n = A.shape[0]
    for k in range(n):
        p = iw[k]
        if p != k:
            tmp = b[k]
            b[k] = b[p]
            b[p] = tmp
    lp = n
    up = 2 * n + 1
    lb = 4 * n + 2
    ub = lb + (n * (n - 1)) // 2
    for j in range(n):
        bj = b[j]
        for q in range(lb + iw[lp + j], lb + iw[lp + j + 1]):
            i = iw[q]
            b[i] -= A[i, j] * bj
    for j in range(n - 1, -1, -1):
        bj = b[j] * A[j, j]
        b[j] = bj
        for q in range(ub + iw[up + j], ub + iw[up + j + 1]):
            i = iw[q]
            b[i] -= A[i, j] * bj


@njit(cache=True, nogil=True, inline="always")
def _ode_w_static(J, fac, W, wpos):
    """``W = I·fac − J`` on the structural pattern of the static plan only (the entries the
    static factorisation reads: J's structural non-zeros, the diagonal and the fill-in)."""
    n = J.shape[0]
    Wf = W.reshape(n * n)
    Jf = J.reshape(n * n)
    for q in range(wpos.shape[0]):
        Wf[wpos[q]] = -Jf[wpos[q]]
    for i in range(n):
        W[i, i] += fac


@njit(cache=True, nogil=True, inline="always")
def _ode_wsolve(W, iw, lusolve, static, b):
    if static:
        lusolve(ptr(W), ptr(b))
    else:
        _ode_lu_solve(W, iw, b)


@njit(cache=True, nogil=True, inline="always")
def _ode_err_norm(e, scale_h, y, ynew, rtol, atol):
    """RMS of ``scale_h*e_i / (atol + rtol*max(|y_i|, |ynew_i|))``; inf if anything non-finite."""
    n = e.shape[0]
    s = 0.0
    for i in range(n):
        yn = ynew[i]
        if not math.isfinite(yn):
            return math.inf
        sc = atol + rtol * max(abs(y[i]), abs(yn))
        r = scale_h * e[i] / sc
        s += r * r
    s = math.sqrt(s / n)
    if not math.isfinite(s):
        return math.inf
    return s


@njit(cache=True, nogil=True, inline="always")
def _ode_dp5_step(rhs, t, y, p, h, f0, ynew, fnew, k2, k3, k4, k5, k6, ytmp, y6, err, rtol, atol,
                  stiff):
    """One DOPRI5 step of size h from (t, y) with f0 = f(t, y).

    Writes ynew (5th order), fnew = f(t+h, ynew) (FSAL).  Returns (error norm, stnum, stden)
    where h*sqrt(stnum/stden) estimates h*|lambda| (Hairer's stiffness test; computed only if
    ``stiff``, else both are 0)."""
    n = y.shape[0]
    for i in range(n):
        ytmp[i] = y[i] + h * _DP_A21 * f0[i]
    rhs(t + _DP_C2 * h, ptr(ytmp), ptr(p), ptr(k2))
    for i in range(n):
        ytmp[i] = y[i] + h * (_DP_A31 * f0[i] + _DP_A32 * k2[i])
    rhs(t + _DP_C3 * h, ptr(ytmp), ptr(p), ptr(k3))
    for i in range(n):
        ytmp[i] = y[i] + h * (_DP_A41 * f0[i] + _DP_A42 * k2[i] + _DP_A43 * k3[i])
    rhs(t + _DP_C4 * h, ptr(ytmp), ptr(p), ptr(k4))
    for i in range(n):
        ytmp[i] = y[i] + h * (_DP_A51 * f0[i] + _DP_A52 * k2[i] + _DP_A53 * k3[i]
                              + _DP_A54 * k4[i])
    rhs(t + _DP_C5 * h, ptr(ytmp), ptr(p), ptr(k5))
    for i in range(n):
        y6[i] = y[i] + h * (_DP_A61 * f0[i] + _DP_A62 * k2[i] + _DP_A63 * k3[i]
                            + _DP_A64 * k4[i] + _DP_A65 * k5[i])
    rhs(t + h, ptr(y6), ptr(p), ptr(k6))
    for i in range(n):
        ynew[i] = y[i] + h * (_DP_A71 * f0[i] + _DP_A73 * k3[i] + _DP_A74 * k4[i]
                              + _DP_A75 * k5[i] + _DP_A76 * k6[i])
    rhs(t + h, ptr(ynew), ptr(p), ptr(fnew))
    stnum = 0.0
    stden = 0.0
    for i in range(n):
        err[i] = (_DP_E1 * f0[i] + _DP_E3 * k3[i] + _DP_E4 * k4[i] + _DP_E5 * k5[i]
                  + _DP_E6 * k6[i] + _DP_E7 * fnew[i])
    if stiff:
        for i in range(n):
            # weighted by the error-norm scales: in absolute units the cell counts (~1e9)
            # would hide the fast, small species (cytokines) that limit the step
            w = 1.0 / (atol + rtol * max(abs(y[i]), abs(ynew[i])))
            d = (fnew[i] - k6[i]) * w
            stnum += d * d
            d = (ynew[i] - y6[i]) * w
            stden += d * d
    en = _ode_err_norm(err, h, y, ynew, rtol, atol)
    if not _ode_all_finite(fnew):
        en = math.inf
    return en, stnum, stden


@njit(cache=True, nogil=True, inline="always")
def _ode_rodas_step(rhs, t, y, p, h, f0, J, ft, nonauto, W, piv, wpos, lu, lusolve, ynew, k1, k2, k3, k4, k5,
                    k6, ytmp, rtol, atol):
    """One Rodas4 step of size h from (t, y); f0 = f(t, y), J = ∂f/∂y(t, y), ft = ∂f/∂t.

    Stage i solves (I/(hγ) − J) k_i = f(t + c_i h, y + Σ_j a_ij k_j) + Σ_j (c_ij/h) k_j
    + h d_i f_t; the method is stiffly accurate: y1 = y + Σ a_5j k_j + k_5 + k_6 and k_6 is
    the embedded error estimate.  Returns (error norm, ok) — ok False if W is singular."""
    n = y.shape[0]
    fac = 1.0 / (h * _RO_GAMMA)
    _ode_w_static(J, fac, W, wpos)
    static = lu(ptr(W), ptr(y), rtol, atol)
    if not static:
        for i in range(n):
            for j in range(n):
                W[i, j] = -J[i, j]
            W[i, i] += fac
        if not _ode_lu(W, piv):
            return math.inf, False
    # stage 1
    for i in range(n):
        k1[i] = f0[i]
        if nonauto:
            k1[i] += h * _RO_D1 * ft[i]
    _ode_wsolve(W, piv, lusolve, static, k1)
    # stage 2
    for i in range(n):
        ytmp[i] = y[i] + _RO_A21 * k1[i]
    rhs(t + _RO_C2 * h, ptr(ytmp), ptr(p), ptr(k2))
    hc = 1.0 / h
    for i in range(n):
        k2[i] += hc * (_RO_C21 * k1[i])
        if nonauto:
            k2[i] += h * _RO_D2 * ft[i]
    _ode_wsolve(W, piv, lusolve, static, k2)
    # stage 3
    for i in range(n):
        ytmp[i] = y[i] + _RO_A31 * k1[i] + _RO_A32 * k2[i]
    rhs(t + _RO_C3 * h, ptr(ytmp), ptr(p), ptr(k3))
    for i in range(n):
        k3[i] += hc * (_RO_C31 * k1[i] + _RO_C32 * k2[i])
        if nonauto:
            k3[i] += h * _RO_D3 * ft[i]
    _ode_wsolve(W, piv, lusolve, static, k3)
    # stage 4
    for i in range(n):
        ytmp[i] = y[i] + _RO_A41 * k1[i] + _RO_A42 * k2[i] + _RO_A43 * k3[i]
    rhs(t + _RO_C4 * h, ptr(ytmp), ptr(p), ptr(k4))
    for i in range(n):
        k4[i] += hc * (_RO_C41 * k1[i] + _RO_C42 * k2[i] + _RO_C43 * k3[i])
        if nonauto:
            k4[i] += h * _RO_D4 * ft[i]
    _ode_wsolve(W, piv, lusolve, static, k4)
    # stage 5
    for i in range(n):
        ytmp[i] = y[i] + _RO_A51 * k1[i] + _RO_A52 * k2[i] + _RO_A53 * k3[i] + _RO_A54 * k4[i]
    rhs(t + h, ptr(ytmp), ptr(p), ptr(k5))
    for i in range(n):
        k5[i] += hc * (_RO_C51 * k1[i] + _RO_C52 * k2[i] + _RO_C53 * k3[i] + _RO_C54 * k4[i])
    _ode_wsolve(W, piv, lusolve, static, k5)
    # stage 6 (embedded error estimate)
    for i in range(n):
        ytmp[i] = ytmp[i] + k5[i]
    rhs(t + h, ptr(ytmp), ptr(p), ptr(k6))
    for i in range(n):
        k6[i] += hc * (_RO_C61 * k1[i] + _RO_C62 * k2[i] + _RO_C63 * k3[i] + _RO_C64 * k4[i]
                       + _RO_C65 * k5[i])
    _ode_wsolve(W, piv, lusolve, static, k6)
    for i in range(n):
        ynew[i] = ytmp[i] + k6[i]
    return _ode_err_norm(k6, 1.0, y, ynew, rtol, atol), True


@njit(cache=True, nogil=True)
def _ode_hinit(rhs, t, y, p, f0, order, hmax, rtol, atol, ytmp, f1):
    """Initial step size (Hairer, Nørsett & Wanner, Solving ODE I, Sect. II.4; HINIT of
    DOPRI5).  Returns (h, rhs evaluations)."""
    n = y.shape[0]
    dnf = 0.0
    dny = 0.0
    for i in range(n):
        sk = atol + rtol * abs(y[i])
        dnf += (f0[i] / sk) ** 2
        dny += (y[i] / sk) ** 2
    dnf = math.sqrt(dnf / n)
    dny = math.sqrt(dny / n)
    if dnf <= 1e-5 or dny <= 1e-5:
        h = 1e-6
    else:
        h = 0.01 * dny / dnf
    h = min(h, hmax)
    for i in range(n):
        ytmp[i] = y[i] + h * f0[i]
    rhs(t + h, ptr(ytmp), ptr(p), ptr(f1))
    der2 = 0.0
    for i in range(n):
        sk = atol + rtol * abs(y[i])
        der2 += ((f1[i] - f0[i]) / sk) ** 2
    der2 = math.sqrt(der2 / n) / h
    if not math.isfinite(der2):
        return min(h * 1e-3, hmax), 1
    der12 = max(der2, dnf)
    if der12 <= 1e-15:
        h1 = max(1e-6, h * 1e-3)
    else:
        h1 = (0.01 / der12) ** (1.0 / order)
    return min(100.0 * h, h1, hmax), 1


@njit(cache=True, nogil=True, inline="always")
def _ode_crossed(g0, g, direction):
    """Has the event function crossed zero (in the declared direction) from g0 to g?"""
    if direction < 0:
        return g0 > 0.0 and g <= 0.0
    if direction > 0:
        return g0 < 0.0 and g >= 0.0
    return (g0 > 0.0 and g <= 0.0) or (g0 < 0.0 and g >= 0.0)


@njit(cache=True, nogil=True)
def _ode_jump_conditions(event_condition, event_apply, t, y, p, ev_timed, ev_dir, ev_once, fired, gprev, gnew):
    """After a jump (timed events applied at t), fire every condition event whose function the
    jump carried across zero in its direction (index order, conditions evaluated before any
    of them is applied) — the rule of SBML and of the scipy reference engine, e.g.
    lymphodepletion pushing a population below its extinction threshold.  ``gprev`` holds
    the condition values just before the jump.  Returns the number fired."""
    nev = ev_timed.shape[0]
    nf = 0
    for k in range(nev):
        gnew[k] = 0.0
        if ev_timed[k] or (ev_once[k] and fired[k]):
            continue
        if _ode_crossed(gprev[k], event_condition(k, t, ptr(y), ptr(p)), ev_dir[k]):
            gnew[k] = 1.0
    for k in range(nev):
        if gnew[k] == 1.0:
            event_apply(k, t, ptr(y), ptr(p))
            fired[k] = True
            nf += 1
    return nf


@njit(cache=True, nogil=True)
def _ode_any_step(rhs, mode, t, y, p, h, f0, J, ft, nonauto, W, piv, wpos, lu, lusolve, ynew, fnew, k1, k2, k3,
                  k4, k5, k6, ytmp, y6, err, rtol, atol, stiff):
    """A step of the current method; returns (error norm, ok, stnum, stden)."""
    if mode == 0:
        en, stnum, stden = _ode_dp5_step(rhs, t, y, p, h, f0, ynew, fnew, k2, k3, k4, k5, k6, ytmp,
                                         y6, err, rtol, atol, stiff)
        return en, True, stnum, stden
    en, ok = _ode_rodas_step(rhs, t, y, p, h, f0, J, ft, nonauto, W, piv, wpos, lu, lusolve, ynew, k1, k2, k3,
                             k4, k5, k6, ytmp, rtol, atol)
    return en, ok, 0.0, 0.0


@njit(cache=True, nogil=True)
def _ode_solve_one(fns, plan, t0, y0, p, t_eval, rtol, atol, method, max_steps, first_step, fixed_step,
                   nonauto, nq, ev_timed, ev_dir, ev_once, yout, stats, tprog):
    """Integrate one patient from t0 over t_eval; returns (status, time of failure).
    ``tprog[0]`` is kept equal to the time reached (for reports on exceptions)."""
    rhs, jac, event_time, event_condition, event_apply, event_conditions, derive, lu, lusolve = fns
    # the plan's arrays used in the step loop, taken out of the tuple once: passing the tuple
    # on costs an atomic reference-count increment and decrement per array and call
    wpos = plan[0]
    jptr = plan[7]
    jidx = plan[8]
    n = y0.shape[0]
    nev = ev_timed.shape[0]
    nT = t_eval.shape[0]
    # the work arrays are borrowed views (no reference count) of buffers kept alive to the end
    # (``keep`` below): an owned array passed to an inlined step function costs an atomic
    # increment and decrement of its reference count per call (perf: ~25 % of a solve)
    q_mem = np.empty(nq)
    work = np.zeros((16, n))
    jw = np.zeros((2, n, n))
    piv_mem = np.zeros(4 * n + 2 + n * (n - 1), dtype=np.int64)
    # every model function gets q = [p, d]: the parameters, then the parameter-only parts of
    # the right-hand side and Jacobian, computed once here (the event functions read q[:m])
    q = borrowed(q_mem)
    derive(ptr(p), ptr(q))
    p = q
    y = borrowed(work[0])
    for i in range(n):
        y[i] = y0[i]
    ynew = borrowed(work[1])
    f0 = borrowed(work[2])
    fnew = borrowed(work[3])
    k1 = borrowed(work[4])
    k2 = borrowed(work[5])
    k3 = borrowed(work[6])
    k4 = borrowed(work[7])
    k5 = borrowed(work[8])
    k6 = borrowed(work[9])
    ytmp = borrowed(work[10])
    yr = borrowed(work[11])
    y6 = borrowed(work[12])
    err = borrowed(work[13])
    ft = borrowed(work[14])
    pvec = borrowed(work[15])
    J = borrowed(jw[0])
    W = borrowed(jw[1])
    piv = borrowed(piv_mem)
    te = np.full(max(nev, 1), math.inf)
    fired = np.zeros(max(nev, 1), dtype=np.bool_)
    gprev = np.ones(max(nev, 1))
    gnew = np.ones(max(nev, 1))
    gall = np.ones(max(nev, 1))  # every condition at the step's end (one call)
    ncond = 0
    for k in range(nev):
        if ev_timed[k]:
            te[k] = event_time(k, ptr(p))
        else:
            ncond += 1
    fixed = fixed_step > 0.0
    t_end = t_eval[nT - 1]
    mode = 1 if method == 1 else 0
    n_acc = 0
    n_rej = 0
    n_fev = 0
    n_jev = 0
    n_lu = 0
    n_ev = 0
    n_sw = 0
    status = _ST_OK
    t = t0
    tprog[0] = t0
    j = 0
    # timed events exactly at t0 fire before integrating (in index order)
    for k in range(nev):
        if not ev_timed[k]:
            gprev[k] = event_condition(k, t, ptr(y), ptr(p))
    fired_t0 = False
    for k in range(nev):
        if ev_timed[k] and te[k] == t0:
            event_apply(k, t, ptr(y), ptr(p))
            fired[k] = True
            n_ev += 1
            fired_t0 = True
    if fired_t0:
        n_ev += _ode_jump_conditions(event_condition, event_apply, t, y, p, ev_timed, ev_dir, ev_once, fired, gprev, gnew)
    if not _ode_all_finite(y):
        status = _ST_NONFINITE
    if status == _ST_OK and t_eval[0] == t0:
        for i in range(n):
            yout[0, i] = y[i]
        j = 1
    for k in range(nev):
        if not ev_timed[k]:
            gprev[k] = event_condition(k, t, ptr(y), ptr(p))
    restart = True
    h = 0.0
    facold = 1e-4
    last_rejected = False
    have_jac = False
    for i in range(n):
        pvec[i] = 1.0 / math.sqrt(n)
    iasti = 0
    nonsti = 0
    nonstiff_ro = 0
    n_bad = 0
    attempts = 0
    while status == _ST_OK and j < nT:
        # hard stop of this step: the next timed event or the end; fixed steps also land on
        # every output time, DOPRI5 and Rodas interpolate outputs (dense output)
        t_stop = t_end
        for k in range(nev):
            if ev_timed[k] and (not fired[k]) and te[k] > t and te[k] < t_stop:
                t_stop = te[k]
        if fixed and t_eval[j] < t_stop:
            t_stop = t_eval[j]
        if restart:
            rhs(t, ptr(y), ptr(p), ptr(f0))
            n_fev += 1
            if not _ode_all_finite(f0):
                status = _ST_NONFINITE
                break
            if fixed:
                h = fixed_step
            elif first_step > 0.0:
                h = first_step
            else:
                h, nf = _ode_hinit(rhs, t, y, p, f0, 5 if mode == 0 else 4, t_end - t, rtol,
                                   atol, ytmp, fnew)
                n_fev += nf
            facold = 1e-4
            last_rejected = False
            have_jac = False
            restart = False
        if attempts >= max_steps:
            status = _ST_MAX_STEPS
            break
        last = False
        h_try = h
        if fixed:
            if t + h_try * (1.0 + 1e-9) >= t_stop:
                h_try = t_stop - t
                last = True
        elif t + 1.01 * h_try >= t_stop:
            h_try = t_stop - t
            last = True
        if (not last) and h_try < 1e-14 * abs(t):
            status = _ST_SMALL
            break
        if mode == 1 and not have_jac:
            jac(t, ptr(y), ptr(p), ptr(J))
            n_jev += 1
            if nonauto:
                dt = 1.4901161193847656e-08 * max(abs(t), 1.0)
                rhs(t + dt, ptr(y), ptr(p), ptr(ft))
                n_fev += 1
                for i in range(n):
                    ft[i] = (ft[i] - f0[i]) / dt
            have_jac = True
        step_mode = mode
        # Hairer's DOPRI5 tests stiffness on every NSTIFF-th accepted step and on every step
        # once a stiff indication is pending; here every 10th (the weighted estimate costs
        # 3n divisions, ~15 % of a step of the CAR-T model)
        chk = method == 0 and mode == 0 and (not fixed) and (iasti > 0 or n_acc % 10 == 0)
        if mode == 0:
            # DOPRI5 inlined here: a call passing the ~30 work arrays costs ~10 % of its step
            en, stnum, stden = _ode_dp5_step(rhs, t, y, p, h_try, f0, ynew, fnew, k2, k3, k4, k5,
                                             k6, ytmp, y6, err, rtol, atol, chk)
            ok = True
        else:
            en, ok = _ode_rodas_step(rhs, t, y, p, h_try, f0, J, ft, nonauto, W, piv, wpos, lu, lusolve,
                                     ynew, k1, k2, k3, k4, k5, k6, ytmp, rtol, atol)
            stnum = 0.0
            stden = 0.0
        attempts += 1
        if mode == 0:
            n_fev += 6
        else:
            n_fev += 5
            n_lu += 1
        if not ok:
            n_rej += 1
            n_bad += 1
            if n_bad > 20 or fixed:
                status = _ST_SINGULAR
                break
            h = 0.25 * h_try
            last_rejected = True
            continue
        if not math.isfinite(en):
            n_rej += 1
            n_bad += 1
            if n_bad > 30 or fixed:
                status = _ST_NONFINITE
                break
            h = 0.2 * h_try
            last_rejected = True
            continue
        q = 5.0 if mode == 0 else 4.0
        if (not fixed) and en > 1.0:
            # rejected: shrink, no growth on the next accepted step
            n_rej += 1
            h = h_try * max(_FAC_MIN, _SAFE * en ** (-1.0 / q))
            last_rejected = True
            continue
        n_bad = 0
        # ---- accepted: propose the next step size
        if not fixed:
            if mode == 0:
                # PI controller of DOPRI5 (Hairer, Solving ODE I, Sect. IV.2)
                fac11 = en ** (0.2 - _DP_BETA * 0.75)
                fac = fac11 / facold ** _DP_BETA
                fac = max(1.0 / _DP_FAC_MAX, min(1.0 / _FAC_MIN, fac / _SAFE))
                h_new = h_try / fac
                facold = max(en, 1e-4)
            else:
                # I controller
                fac = min(_RO_FAC_MAX, max(_FAC_MIN, _SAFE * max(en, 1e-10) ** (-0.25)))
                h_new = h_try * fac
            if last_rejected:
                h_new = min(h_new, h_try)
            if last and h_new < h:
                # the step was shortened to hit a stop: do not let that shrink h
                h_new = h
        else:
            h_new = fixed_step
        last_rejected = False
        t_new = t_stop if last else t + h_try
        # ---- condition events: earliest sign change in the declared direction
        kev = -1
        s_best = h_try
        if ncond > 0:
            event_conditions(t_new, ptr(ynew), ptr(p), ptr(gall))
            for k in range(nev):
                if ev_timed[k] or (ev_once[k] and fired[k]):
                    continue
                g1 = gall[k]
                gnew[k] = g1
                if _ode_crossed(gprev[k], g1, ev_dir[k]):
                    # Illinois on s -> g(t+s, Φ_s(y)): each trial is a real step of size s,
                    # so the located state is exactly what the method produces there.
                    a = 0.0
                    ga = gprev[k]
                    b = h_try
                    gb = g1
                    side = 0
                    for _it in range(80):
                        if b - a <= 1e-13 * max(abs(t) + b, 1e-3):
                            break
                        s = b - gb * (b - a) / (gb - ga)
                        if not (s > a and s < b):
                            s = 0.5 * (a + b)
                        _ode_any_step(rhs, mode, t, y, p, s, f0, J, ft, nonauto, W, piv, wpos, lu, lusolve, yr,
                                      fnew, k1, k2, k3, k4, k5, k6, ytmp, y6, err, rtol,
                                      atol, False)
                        n_fev += 6 if mode == 0 else 5
                        n_lu += 0 if mode == 0 else 1
                        gs = event_condition(k, t + s, ptr(yr), ptr(p))
                        if gs == 0.0 or _ode_crossed(gprev[k], gs, ev_dir[k]):
                            b = s
                            gb = gs
                            if side == -1:
                                ga *= 0.5
                            side = -1
                            if gs == 0.0:
                                break
                        else:
                            a = s
                            ga = gs
                            if side == 1:
                                gb *= 0.5
                            side = 1
                    if kev < 0 or b < s_best:
                        kev = k
                        s_best = b
        if kev >= 0:
            # redo the step exactly to the root (also when the root is the step's end: the
            # trials overwrote the stages that the dense output needs)
            _ode_any_step(rhs, mode, t, y, p, s_best, f0, J, ft, nonauto, W, piv, wpos, lu, lusolve, ynew, fnew, k1,
                          k2, k3, k4, k5, k6, ytmp, y6, err, rtol, atol, False)
            n_fev += 6 if mode == 0 else 5
            n_lu += 0 if mode == 0 else 1
            t_new = t + s_best
        # ---- stiffness detection / switching (auto only)
        if method == 0 and not fixed:
            if mode == 0:
                if stden > 0.0:
                    hlamb = h_try * math.sqrt(stnum / stden)
                    if hlamb > _STIFF_HLAMB:
                        nonsti = 0
                        iasti += 1
                        if iasti >= _STIFF_COUNT:
                            mode = 1
                            n_sw += 1
                            iasti = 0
                            nonstiff_ro = 0
                    else:
                        nonsti += 1
                        if nonsti >= _NONSTIFF_RESET:
                            iasti = 0
            else:
                # one power-iteration step per Rodas step on the current Jacobian (the
                # vector persists across steps): rho -> spectral radius of J
                rho = 0.0
                for i in range(n):
                    s = 0.0
                    for q in range(jptr[i], jptr[i + 1]):
                        s += J[i, jidx[q]] * pvec[jidx[q]]
                    ytmp[i] = s
                    rho += s * s
                rho = math.sqrt(rho)
                if rho > 0.0 and math.isfinite(rho):
                    for i in range(n):
                        pvec[i] = ytmp[i] / rho
                else:
                    for i in range(n):
                        pvec[i] = 1.0 / math.sqrt(n)
                    rho = 0.0 if rho == 0.0 else math.inf
                if h_try * rho < _NONSTIFF_HRHO:
                    nonstiff_ro += 1
                    if nonstiff_ro >= _NONSTIFF_COUNT:
                        mode = 0
                        n_sw += 1
                        nonstiff_ro = 0
                        iasti = 0
                        nonsti = 0
                        facold = 1e-4
                else:
                    nonstiff_ro = 0
        # ---- DOPRI5 dense output for output times strictly inside the step: Hairer's
        # continuous extension of order 4 (Shampine 1986; Hairer, Nørsett & Wanner I,
        # Sect. II.6, CONTD5).  Outputs at the step end are the step value itself.
        if step_mode == 0 and not fixed:
            hs = t_new - t
            while j < nT and t_eval[j] < t_new:
                th = (t_eval[j] - t) / hs
                th1 = 1.0 - th
                for i in range(n):
                    ydiff = ynew[i] - y[i]
                    bspl = hs * f0[i] - ydiff
                    r4 = ydiff - hs * fnew[i] - bspl
                    r5 = hs * (_DP_D1 * f0[i] + _DP_D3 * k3[i] + _DP_D4 * k4[i]
                               + _DP_D5 * k5[i] + _DP_D6 * k6[i] + _DP_D7 * fnew[i])
                    yout[j, i] = y[i] + th * (ydiff + th1 * (bspl + th * (r4 + th1 * r5)))
                j += 1
        # ---- Rodas4 dense output (continuous extension of order 3, Hairer & Wanner II,
        # Sect. VI.7; the coefficients D2j, D3j of their rodas.f, CONTRO):
        # y(t + θh) = (1−θ) y0 + θ (y1 + (1−θ)(Σ_j d2j k_j + θ Σ_j d3j k_j)), evaluated as
        # y0 + θ((y1 − y0) + …) so that a species that does not change stays exactly constant
        if step_mode == 1 and not fixed and j < nT and t_eval[j] < t_new:
            for i in range(n):
                y6[i] = (_RO_H21 * k1[i] + _RO_H22 * k2[i] + _RO_H23 * k3[i] + _RO_H24 * k4[i]
                         + _RO_H25 * k5[i])
                err[i] = (_RO_H31 * k1[i] + _RO_H32 * k2[i] + _RO_H33 * k3[i] + _RO_H34 * k4[i]
                          + _RO_H35 * k5[i])
            hs = t_new - t
            while j < nT and t_eval[j] < t_new:
                th = (t_eval[j] - t) / hs
                th1 = 1.0 - th
                for i in range(n):
                    yout[j, i] = y[i] + th * ((ynew[i] - y[i]) + th1 * (y6[i] + th * err[i]))
                j += 1
        # ---- commit
        for i in range(n):
            y[i] = ynew[i]
        t = t_new
        tprog[0] = t
        n_acc += 1
        h = h_new
        have_jac = False
        if not _ode_all_finite(y):
            status = _ST_NONFINITE
            break
        if kev >= 0:
            # every condition event that has crossed by the located point fires, in index
            # order (simultaneous crossings are not lost); conditions are evaluated on the
            # state before any of them is applied
            for k in range(nev):
                if ev_timed[k] or (ev_once[k] and fired[k]):
                    gnew[k] = 0.0
                    continue
                if k == kev:
                    gnew[k] = 1.0
                else:
                    g1 = event_condition(k, t, ptr(y), ptr(p))
                    gnew[k] = 1.0 if _ode_crossed(gprev[k], g1, ev_dir[k]) else 0.0
            for k in range(nev):
                if gnew[k] == 1.0:
                    event_apply(k, t, ptr(y), ptr(p))
                    fired[k] = True
                    n_ev += 1
            if not _ode_all_finite(y):
                status = _ST_NONFINITE
                break
            for k in range(nev):
                if not ev_timed[k]:
                    gprev[k] = event_condition(k, t, ptr(y), ptr(p))
            restart = True
        else:
            for k in range(nev):
                if not ev_timed[k] and not (ev_once[k] and fired[k]):
                    gprev[k] = gnew[k]
            # FSAL for DOPRI5; after a Rodas step f(t, y) is evaluated afresh
            if step_mode == 0:
                for i in range(n):
                    f0[i] = fnew[i]
            else:
                rhs(t, ptr(y), ptr(p), ptr(f0))
                n_fev += 1
        # ---- at a hard stop: timed events (index order); then the output, right-continuous
        if t == t_stop:
            fired_any = False
            for k in range(nev):
                if ev_timed[k] and (not fired[k]) and te[k] == t:
                    event_apply(k, t, ptr(y), ptr(p))
                    fired[k] = True
                    n_ev += 1
                    fired_any = True
            if fired_any:
                n_ev += _ode_jump_conditions(event_condition, event_apply, t, y, p, ev_timed, ev_dir, ev_once, fired, gprev,
                                             gnew)
                if not _ode_all_finite(y):
                    status = _ST_NONFINITE
                    break
                for k in range(nev):
                    if not ev_timed[k]:
                        gprev[k] = event_condition(k, t, ptr(y), ptr(p))
                restart = True
        if t == t_eval[j]:
            for i in range(n):
                yout[j, i] = y[i]
            j += 1
    for jj in range(j, nT):
        for i in range(n):
            yout[jj, i] = math.nan
    stats[0] = n_acc
    stats[1] = n_rej
    stats[2] = n_fev
    stats[3] = n_jev
    stats[4] = n_lu
    stats[5] = n_ev
    stats[6] = n_sw
    keep(q_mem)  # the borrowed views above end here
    keep(work)
    keep(jw)
    keep(piv_mem)
    return status, t


@njit(cache=True, nogil=True)
def _ode_solve_guarded(fns, plan, i, t0, Y0, P, t_eval, rtol, atol, method, max_steps, first_step,
                       fixed_step, nonauto, nq, ev_timed, ev_dir, ev_once, Yout, status, t_fail,
                       stats):
    """Solve patient i; an exception raised by model code (e.g. a division by zero in a rate
    law) becomes status _ST_EXCEPTION for this patient only.  Yout need not be initialised:
    the kernel writes every output (NaN after a failure); t_fail[i] tracks the time reached,
    and every output before it has been written."""
    try:
        st, tf = _ode_solve_one(fns, plan, t0, Y0[i], P[i], t_eval, rtol, atol, method, max_steps,
                                first_step, fixed_step, nonauto, nq, ev_timed, ev_dir, ev_once,
                                Yout[i], stats[i], t_fail[i:i + 1])
    except Exception:  # noqa: BLE001 (numba can only catch Exception)
        st = _ST_EXCEPTION
        tf = t_fail[i]
        for jj in range(t_eval.shape[0]):
            if t_eval[jj] >= tf:
                for kk in range(Yout.shape[2]):
                    Yout[i, jj, kk] = math.nan
    status[i] = st
    t_fail[i] = tf


@njit(cache=True, nogil=True, parallel=True)
def ode_solve_batch_parallel(fns, plan, t0, Y0, P, t_eval, rtol, atol, method, max_steps, first_step,
                             fixed_step, nonauto, nq, ev_timed, ev_dir, ev_once, Yout, status,
                             t_fail, stats):
    """All patients, in a prange loop (one independent adaptive integration each)."""
    for i in prange(Y0.shape[0]):
        _ode_solve_guarded(fns, plan, i, t0, Y0, P, t_eval, rtol, atol, method, max_steps, first_step,
                           fixed_step, nonauto, nq, ev_timed, ev_dir, ev_once, Yout, status, t_fail,
                           stats)


@njit(cache=True, nogil=True)
def ode_solve_batch_serial(fns, plan, t0, Y0, P, t_eval, rtol, atol, method, max_steps, first_step,
                           fixed_step, nonauto, nq, ev_timed, ev_dir, ev_once, Yout, status,
                           t_fail, stats):
    """All patients, one after the other (same per-patient kernel as the parallel driver)."""
    for i in range(Y0.shape[0]):
        _ode_solve_guarded(fns, plan, i, t0, Y0, P, t_eval, rtol, atol, method, max_steps, first_step,
                           fixed_step, nonauto, nq, ev_timed, ev_dir, ev_once, Yout, status, t_fail,
                           stats)
