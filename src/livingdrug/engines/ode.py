"""The deterministic engine: batched, adaptive, stiff-safe ODE solves of a :class:`Network`.

Front door::

    sol = solve(compiled, y0, P, t_eval)            # y0[n, k], P[n, m], t_eval[T] in days
    sol.y[n, T, k], sol.status[n], sol.message[n], sol.stats, sol.settings

Every patient (row of ``y0``/``P``) is an independent initial-value problem
``dy/dt = f(t, y; p)`` with its own adaptive step size; patients are solved in a numba
``prange`` loop.  The per-patient kernel is the same compiled function whether it runs alone,
in a batch, in a chunk or serially, and everything is compiled with ``fastmath=False``, so the
result of patient *i* is bitwise identical however the work is split.

Units: time in days (the canonical unit); states and parameters in the model's canonical units.

Methods
-------
``"dopri5"``
    Dormand–Prince 5(4), explicit, 7 stages with FSAL (6 right-hand sides per step).
    Coefficients: Dormand & Prince, J. Comput. Appl. Math. 6 (1980) 19–26; Hairer, Nørsett &
    Wanner, *Solving Ordinary Differential Equations I*, 2nd ed. (1993), Table II.5.2.
``"rodas"``
    Rodas4 of Hairer & Wanner, *Solving Ordinary Differential Equations II*, 2nd ed. (1996),
    Sect. VI.7 (coefficients of their code ``rodas.f``, METH=1): a 6-stage, L-stable,
    stiffly accurate Rosenbrock method of order 4 with an embedded order-3 error estimate, using
    the exact analytic Jacobian ``J = ∂f/∂y`` of :func:`~livingdrug.network.compile_network`.
    In the transformed form (their eq. 7.4') each stage solves one linear system with the same
    matrix ``W = I/(hγ) − J`` (γ = 1/4, one LU decomposition per step)::

        W k_i = f(t + c_i h, y + Σ_{j<i} a_ij k_j) + Σ_{j<i} (c_ij / h) k_j + h d_i ∂f/∂t

    ``y_{n+1} = y + Σ_j a_5j k_j + k_5 + k_6`` and ``k_6`` is the local error estimate.
    ``∂f/∂t`` is only used when a rate law depends on ``t`` explicitly (forward difference).
    LU and the triangular solves are written inline (no ``np.linalg``).  The factorisation
    uses the Jacobian's *structural* pattern, read off the rate laws once per model
    (:func:`_lu_plan`): diagonal pivots in the order of Markowitz's rule (Markowitz 1957; Duff,
    Erisman & Reid, *Direct Methods for Sparse Matrices*, 1986, Sect. 7.2), work and storage
    only on the pattern and its fill-in (default CAR-T model: 89 factor entries instead of
    961), accepted only if every pivot passes the threshold-pivoting test
    ``|w_kk|·d_i ≥ τ·|w_ik|·d_k`` (τ = 0.1, Duff, Erisman & Reid Sect. 7.8; ``d`` the
    error-norm scales ``atol + rtol·|y|``, which makes the test independent of the species'
    units); otherwise that step factors W densely with partial pivoting (full row exchanges,
    zero multipliers and zero entries of the pivot row skipped).
``"auto"`` (default)
    Starts with DOPRI5 and applies Hairer's stiffness test (DOPRI5, Solving ODE I,
    Sect. IV.2): after each accepted step ``h·‖f(y₁) − f(ŷ₆)‖ / ‖y₁ − ŷ₆‖`` (ŷ₆ the argument
    of the last stage, both at t + h) estimates ``h·|λ|``.  The norm is weighted by the error
    scales ``atol + rtol·max(|y|, |y₁|)`` (Hairer's code uses the plain Euclidean norm, in
    which 10⁹ cells decaying at 0.01/d hide a cytokine decaying at 8/d: the estimate then
    reflects the slow cells and the explicit method stays held at its stability boundary,
    ≈ 1200 steps per patient-year on the CAR-T model).  It is evaluated on every 10th
    accepted DOPRI5 step, and on every step while a stiff indication is pending (Hairer's
    ``NSTIFF``; the weighted norm costs 3n divisions).  When it exceeds 2.8 (DOPRI5's real
    stability boundary is ≈ 3.3; a step held there by the controller hovers around 3) on 15
    accepted steps without 6 consecutive non-stiff steps in between, the solver switches to
    Rodas4.  While on Rodas, one power-iteration step per accepted step (``v ← Jv/‖Jv‖``, the
    vector kept across steps, J's structural non-zeros only) estimates the spectral radius
    ρ(J); after 25 consecutive Rodas steps with ``h·ρ < 2`` (an explicit step of that size
    would be stable) it switches back to DOPRI5.  Switches are counted in
    ``stats["stiff_switches"]``.

Error control
-------------
Scaled RMS norm ``err = sqrt(mean_i (e_i / sc_i)²)`` with
``sc_i = atol + rtol·max(|y_i|, |y_new_i|)``; a step is accepted when ``err ≤ 1``.
DOPRI5 uses Hairer's PI controller ``h_new = h / clip(err^{0.2−0.75β} / err_old^β / 0.9,
1/10, 5)`` with β = 0.04; Rodas uses the I controller ``h_new = h·clip(0.9·err^{−1/4}, 0.2,
6)``.  After a rejection the next accepted step may not grow.  The initial step is Hairer's
HINIT algorithm (Solving ODE I, Sect. II.4) unless ``first_step`` is given.  ``fixed_step``
takes steps of exactly that size (the last one of a segment shortened to land on a stop) with
no error control — used to measure the order of convergence.

Outputs
-------
* DOPRI5 steps freely and evaluates output times inside a step with its continuous extension
  of order 4 (Shampine 1986; Hairer, Nørsett & Wanner I, Sect. II.6, ``CONTD5``), which costs
  no extra right-hand side; its error is of the size of the local error estimate (≈ rtol per
  step), so outputs are accurate to the integration tolerance.  An output that coincides with
  the end of a step, a timed event or ``t_eval[-1]`` is the step value itself.  Daily outputs
  over a year would otherwise force ≥ 365 steps on a model that needs fewer (measured: 578 →
  365 steps per patient on the ``car_t`` model).
* Rodas evaluates output times inside a step with its continuous extension of order 3
  (Hairer & Wanner II, Sect. VI.7; the coefficients of ``rodas.f``'s dense output,
  ``CONTRO``): ``y(t + θh) = y₀ + θ((y₁ − y₀) + (1 − θ)(Σ_j d_2j k_j + θ Σ_j d_3j k_j))``,
  no extra right-hand side or solve; its error at an output inside a step is O(h⁴)
  (tested).  Before, Rodas landed on every output time, which on a 6-hourly grid forced
  ≥ 4 steps a day where ~0.5 suffice.
* ``fixed_step`` steps *exactly* onto every output time (a step that would overshoot is
  shortened; the step-size proposal is not reduced by that shortening).

Events
------
* Timed events (``At``) fire at ``event_time(k, p)`` if ``t0 ≤ time ≤ t_eval[-1]``: the solver
  integrates exactly to that time, applies the assignment and restarts the step-size selection
  (new initial step, FSAL and controller memory reset).  An event exactly at ``t0`` fires before
  integrating; several at the same time fire in index order.
* Condition events (``When``) are checked after every accepted step: a crossing of zero in the
  declared direction (−1: from > 0 to ≤ 0; +1: from < 0 to ≥ 0; 0: either) between the two step
  ends is located by the Illinois method on ``s ↦ g(t+s, Φ_s(y))`` where ``Φ_s`` is a genuine
  step of size ``s`` of the current method (so the root is exact for the discrete solution, to
  ~1e-13 relative in time), then the solver takes that step, applies the event and restarts.
  The located point is on the crossed side of zero, so the same root cannot re-trigger; the
  event can fire again only after ``g`` has returned to the other side (unless ``once``).
  Every condition event that has crossed by the located (earliest) root fires there, in
  index order, its condition evaluated on the state before any assignment; conditions that
  cross later in the step are found again on the following steps.
* Convention: outputs are right-continuous — the value reported at an event time is the state
  AFTER the event.

Failures are data
-----------------
A patient whose state becomes NaN/inf (``STATUS_NONFINITE``), whose step falls below
``1e-14·|t|`` (``STATUS_STEP_TOO_SMALL``), who exhausts ``max_steps`` attempted steps
(``STATUS_MAX_STEPS``) or whose Rosenbrock matrix stays singular after repeated step
reductions (``STATUS_SINGULAR``) gets that status, a message with the time of failure, and NaN
outputs from there on; other patients are unaffected.

Compilation and caching
-----------------------
The kernels (:mod:`livingdrug.engines._ode_kernel`) are ordinary ``@njit(cache=True)``
functions that take the model's functions as an argument: the C-callable wrappers
:attr:`~livingdrug.network.CompiledNetwork.cfuncs` (``rhs``, ``jac`` and the event functions
over raw float64 pointers).  numba types a ``cfunc`` by its signature only, so the solver is
compiled ONCE for all models (≈ 33 s cold since the sparse Rodas kernels, ≈ 20 s before) and cached on disk under
:func:`~livingdrug.network.cache_dir`; each further model compiles only its own small
functions (≈ 1 s), and a later process loads everything from the cache.  The alternative —
the solver compiled together with each model so numba can inline ``rhs`` — cost ≈ 20 s per
distinct model for ≈ 6 % speed (measured on ``car_t``; indirect calls, runtime loop bounds).
numba keys its cache on the kernel file, so changing the kernels recompiles them.
``settings["kernel_sha256"]`` (:data:`KERNEL_HASH`) identifies the kernel source used.
"""

from __future__ import annotations

import hashlib
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ..network import CompiledNetwork, T
from . import _ode_kernel
from .common import (
    STATUS_MAX_STEPS,
    STATUS_MESSAGES,
    STATUS_NONFINITE,
    STATUS_OK,
    STATUS_SINGULAR,
    STATUS_STEP_TOO_SMALL,
    OdeSolution,
    as_2d,
    check_times,
    event_arrays,
)

__all__ = ["solve", "METHODS", "KERNEL_HASH"]

#: accepted values of ``method``
METHODS = {"auto": 0, "rodas": 1, "dopri5": 2}

#: kernel-internal status: model code raised (reported as STATUS_NONFINITE)
_KERNEL_EXCEPTION = 5

_STATS_NAMES = (
    "steps",
    "rejected",
    "rhs_evals",
    "jac_evals",
    "lu_decompositions",
    "events",
    "stiff_switches",
)

_KERNEL_SOURCE = (Path(__file__).with_name("_ode_kernel.py")).read_text(encoding="utf-8")
#: SHA-256 (first 16 hex digits) of the kernel source, reported in ``settings``
KERNEL_HASH = hashlib.sha256(_KERNEL_SOURCE.encode()).hexdigest()[:16]

_NONAUTO: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _is_nonautonomous(compiled: CompiledNetwork) -> bool:
    """Does any right-hand side depend on ``t`` explicitly (needs ∂f/∂t in Rodas)?"""
    hit = _NONAUTO.get(compiled)
    if hit is None:
        hit = any(T in expr.free_symbols for expr in compiled.network.ode_expressions())
        _NONAUTO[compiled] = hit
    return hit


_LU_PLANS: weakref.WeakKeyDictionary[Any, tuple[np.ndarray, ...]] = weakref.WeakKeyDictionary()


def _lu_plan(compiled: CompiledNetwork) -> tuple[np.ndarray, ...]:
    """Symbolic analysis of the Rosenbrock matrix ``W = I/(hγ) − J`` for the static sparse LU.

    The structural pattern of ``J = ∂f/∂y`` is read off the model's right-hand sides
    (``J[i, j]`` can be non-zero only if species ``j`` occurs in ``dy_i/dt``; the generated
    ``jac`` writes exactly the non-zero derivatives and zeros elsewhere, so this is a
    superset).  The pivots are taken on the diagonal in the order given by Markowitz's rule
    on this structure; symbolic elimination in that order (a row with a non-zero in the
    pivot's column inherits the pivot row's pattern) gives the fill-in.  Returned as int64
    arrays: ``(wpos, lptr, lidx, uptr, uidx, ucptr, ucidx, jptr, jidx, lcols, ucols, dcols,
    order)`` — the flat positions of the pattern of L+U
    (J's pattern ∪ diagonal ∪ fill); L's off-diagonal entries by columns (rows eliminated
    after the column); U's by rows and by columns; J's pattern by rows (for the power
    iteration of the stiffness test); the columns with entries in L (elimination order), in
    U (reverse order) and without entries in U; the elimination order.  The kernel reads
    ``wpos`` (to build W) and ``jptr``/``jidx``; the factorisation and the solves are
    generated from the rest (:func:`lu_source`).  Computed once per compiled model (cached)."""
    hit = _LU_PLANS.get(compiled)
    if hit is not None:
        return hit
    net = compiled.network
    k = len(net.species)
    index = {sp_.symbol: j for j, sp_ in enumerate(net.species)}
    Jp = np.zeros((k, k), dtype=bool)
    for i, expr in enumerate(net.ode_expressions()):
        for sym in expr.free_symbols:
            j = index.get(sym)
            if j is not None:
                Jp[i, j] = True
    # elimination order: Markowitz's rule on the structure (Markowitz 1957; Duff, Erisman &
    # Reid 1986, Sect. 7.2) restricted to diagonal pivots — next the species whose row and
    # column have the fewest remaining off-diagonal entries (product), ties by index — which
    # keeps fill-in and work small (default CAR-T model: 75 multiply-adds and 89 factor
    # entries against 432 and 165 in the species order)
    S = Jp | np.eye(k, dtype=bool)
    alive = np.ones(k, dtype=bool)
    order = np.empty(k, dtype=np.int64)
    for step in range(k):
        r = (S & alive[None, :]).sum(axis=1) - 1
        c = (S & alive[:, None]).sum(axis=0) - 1
        cost = np.where(alive, r * c, np.iinfo(np.int64).max)
        v = int(np.argmin(cost))
        order[step] = v
        alive[v] = False
        rows = np.flatnonzero(S[:, v] & alive)
        cols = S[v] & alive
        S[rows] |= cols
    pos = np.empty(k, dtype=np.int64)
    pos[order] = np.arange(k)
    later = pos[None, :] > pos[:, None]  # later[i, j]: j is eliminated after i
    lower = S & later.T  # L: row eliminated after the column
    upper = S & later  # U: column eliminated after the row

    def csr(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ptr = np.zeros(k + 1, dtype=np.int64)
        ptr[1:] = np.cumsum(mask.sum(axis=1))
        idx = np.ascontiguousarray(np.nonzero(mask)[1], dtype=np.int64)
        return ptr, idx

    lptr, lidx = csr(lower.T)  # columns of L
    uptr, uidx = csr(upper)  # rows of U
    ucptr, ucidx = csr(upper.T)  # columns of U
    jptr, jidx = csr(Jp)
    wpos = np.ascontiguousarray(np.flatnonzero(S.ravel()), dtype=np.int64)
    has_l = np.asarray(lower.any(axis=0), dtype=bool)[order]
    has_u = np.asarray(upper.any(axis=0), dtype=bool)[order]
    lcols = np.ascontiguousarray(order[has_l], dtype=np.int64)
    ucols = np.ascontiguousarray(order[has_u][::-1], dtype=np.int64)
    dcols = np.ascontiguousarray(order[~has_u], dtype=np.int64)
    plan = (wpos, lptr, lidx, uptr, uidx, ucptr, ucidx, jptr, jidx, lcols, ucols, dcols, order)
    _LU_PLANS[compiled] = plan
    return plan


#: threshold τ of the static-pattern LU's pivot test (threshold partial pivoting)
LU_TAU = 0.1

_LU_FUNCS: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def lu_source(compiled: CompiledNetwork) -> str:
    """Python source of the model's sparse LU of ``W`` and its solve, unrolled from the
    static plan (:func:`_lu_plan`) into straight-line code with constant indices: no index
    arrays to read, and the compiler keeps the right-hand side in registers (≈ 5× faster
    than a loop over the plan, with the same operations in the same order, so the same
    bits).

    ``lu(A, y, rtol, atol) -> bool`` factors ``A`` (n×n, C order) in place without row
    exchanges, diagonal pivots in the plan's order, and accepts the factors only if every
    pivot passes the test of threshold partial pivoting, ``|a_kk| ≥ τ·max_i>k |a_ik|`` with
    τ = :data:`LU_TAU` = 0.1 (Duff, Erisman & Reid, *Direct Methods for Sparse Matrices*,
    1986, Sect. 7.8; the default of MA48/UMFPACK): the element growth is then bounded as for
    partial pivoting with a factor (1 + 1/τ) per step instead of 2.  The test is applied to
    the matrix scaled by the weights of the error norm, ``D⁻¹ A D`` with
    ``D = diag(atol + rtol·|y_i|)``, so that it does not depend on the units of the species
    (cells against pg/mL): ``τ·|a_ik|·d_k ≤ |a_kk|·d_i``.  False (A partly overwritten) if a
    pivot fails: the Rodas step then factors W afresh with dense partial pivoting.  The
    diagonal of the result holds the reciprocals of the pivots.

    ``lusolve(A, b)`` solves ``A x = b`` in place with those factors: forward down L's
    columns, backward up U's columns, structural non-zeros only."""
    (_, lptr, lidx, uptr, uidx, ucptr, ucidx, _, _, lcols, ucols, dcols, order) = _lu_plan(compiled)
    n = len(compiled.network.species)
    src = [
        "# generated by livingdrug.engines.ode.lu_source: the sparse LU of a model's Rosenbrock matrix",
        "import math",
        "from numba import carray, cfunc, njit, types",
        "",
        f"N = {n}",
        "_PTR = types.CPointer(types.float64)",
        "",
        "",
        '@njit(cache=True, nogil=True, error_model="numpy")',
        "def lu(A, y, rtol, atol):",
    ]
    for k in order:
        rows = lidx[lptr[k]:lptr[k + 1]]
        cols = uidx[uptr[k]:uptr[k + 1]]
        src += [f"    d = A[{k}, {k}]", "    ad = abs(d)", "    if ad == 0.0 or not math.isfinite(ad):",
                "        return False"]
        if rows.size:
            src.append(f"    sck = atol + rtol * abs(y[{k}])")
            for i in rows:
                src += [f"    if not ({LU_TAU!r} * abs(A[{i}, {k}]) * sck <= ad * (atol + rtol * abs(y[{i}]))):",
                        "        return False"]
        src += ["    inv = 1.0 / d", f"    A[{k}, {k}] = inv"]
        for i in rows:
            src += [f"    f = A[{i}, {k}] * inv", f"    A[{i}, {k}] = f"]
            if cols.size:
                src.append("    if f != 0.0:")
                src += [f"        A[{i}, {jj}] -= f * A[{k}, {jj}]" for jj in cols]
    src += ["    return True", "", "", '@njit(cache=True, nogil=True, error_model="numpy")', "def lusolve(A, b):"]
    for j in lcols:
        src.append(f"    bj = b[{j}]")
        src += [f"    b[{i}] -= A[{i}, {j}] * bj" for i in lidx[lptr[j]:lptr[j + 1]]]
    for j in ucols:
        src += [f"    bj = b[{j}] * A[{j}, {j}]", f"    b[{j}] = bj"]
        src += [f"    b[{i}] -= A[{i}, {j}] * bj" for i in ucidx[ucptr[j]:ucptr[j + 1]]]
    # columns of U without off-diagonal entries: nothing depends on them, scale last
    src += [f"    b[{j}] = b[{j}] * A[{j}, {j}]" for j in dcols]
    src += ["    return", "", "",
            '@cfunc(types.boolean(_PTR, _PTR, types.float64, types.float64), cache=True, nogil=True, error_model="numpy")',
            "def lu_c(a, y, rtol, atol):",
            "    return lu(carray(a, (N, N)), carray(y, (N,)), rtol, atol)",
            "",
            "",
            '@cfunc(types.void(_PTR, _PTR), cache=True, nogil=True, error_model="numpy")',
            "def lusolve_c(a, b):",
            "    lusolve(carray(a, (N, N)), carray(b, (N,)))",
            ""]
    return "\n".join(src)


def _lu_cfuncs(compiled: CompiledNetwork) -> tuple[Any, Any]:
    """``(lu, lusolve)`` cfuncs of the model's generated sparse LU (:func:`lu_source`),
    compiled once per model structure and cached on disk like the model's own functions."""
    hit = _LU_FUNCS.get(compiled)
    if hit is None:
        from ..network import _load_generated

        mod = _load_generated(lu_source(compiled))
        hit = (mod.lu_c, mod.lusolve_c)
        _LU_FUNCS[compiled] = hit
    return hit


def solve(
    compiled: CompiledNetwork,
    y0: np.ndarray,
    P: np.ndarray,
    t_eval: np.ndarray,
    *,
    t0: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    method: str = "auto",
    max_steps: int = 200_000,
    first_step: float | None = None,
    fixed_step: float | None = None,
    parallel: bool = True,
) -> OdeSolution:
    """Solve the model for n independent patients and report the states at ``t_eval``.

    Parameters
    ----------
    compiled:
        :func:`~livingdrug.network.compile_network` of the model.
    y0:
        Initial states ``[n, k]`` (or ``[k]``, shared by all patients), canonical units.
    P:
        Parameters ``[n, m]`` (or ``[m]``).  One of ``y0``/``P`` may have one row and is then
        broadcast to the other's number of patients.
    t_eval:
        Strictly increasing output times (days), 1-D.
    t0:
        Start time (days), ``t0 ≤ t_eval[0]``; defaults to ``t_eval[0]``.
    rtol, atol:
        Relative and absolute tolerances of the scaled RMS error norm (both > 0).
    method:
        ``"auto"`` (DOPRI5 with stiffness detection → Rodas4), ``"rodas"`` or ``"dopri5"``.
    max_steps:
        Maximum number of attempted steps per patient (accepted + rejected).
    first_step:
        Initial step size (days); default Hairer's automatic choice.
    fixed_step:
        Take exact steps of this size without error control (order-of-convergence studies).
    parallel:
        Solve patients in a numba ``prange`` loop (results are bitwise identical either way).

    Returns
    -------
    OdeSolution
        ``y[n, T, k]`` (right-continuous at events), ``status[n]`` (codes of
        :mod:`livingdrug.engines.common`), ``message[n]``, summed ``stats`` and the
        ``settings`` used (JSON-serialisable).

    Raises
    ------
    ValueError
        For malformed arguments (shapes, non-finite inputs, tolerances, unknown method,
        non-increasing ``t_eval``, ``t0 > t_eval[0]``).  A patient's numerical failure is
        never raised: it is reported in ``status``/``message``.
    """
    net = compiled.network
    k = len(net.species)
    m = len(net.params)
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}; got {method!r}")
    te, t_start = check_times(t_eval, t0)
    Y0 = as_2d(y0, k, "y0", f"species {list(net.species_names)}")
    PP = as_2d(P, m, "P", f"parameters {list(net.param_names)}")
    if Y0.shape[0] != PP.shape[0]:
        if Y0.shape[0] == 1:
            Y0 = np.repeat(Y0, PP.shape[0], axis=0)
        elif PP.shape[0] == 1:
            PP = np.repeat(PP, Y0.shape[0], axis=0)
        else:
            raise ValueError(
                f"y0 has {Y0.shape[0]} patients but P has {PP.shape[0]}; they must match "
                "(or one of them must have a single row)"
            )
    if not np.all(np.isfinite(Y0)):
        bad = int(np.argwhere(~np.isfinite(Y0))[0, 0])
        raise ValueError(f"y0 must be finite (patient {bad} is not)")
    if not np.all(np.isfinite(PP)):
        bad = int(np.argwhere(~np.isfinite(PP))[0, 0])
        raise ValueError(f"P must be finite (patient {bad} is not)")
    for name, val in (("rtol", rtol), ("atol", atol)):
        if not (np.isfinite(val) and val > 0):
            raise ValueError(f"{name} must be a positive finite number; got {val!r}")
    if rtol < 1e-14:
        raise ValueError(f"rtol = {rtol} is below what double precision can deliver (1e-14)")
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer; got {max_steps!r}")
    for opt_name, opt in (("first_step", first_step), ("fixed_step", fixed_step)):
        if opt is not None and not (np.isfinite(opt) and opt > 0):
            raise ValueError(f"{opt_name} must be a positive finite number or None; got {opt!r}")

    n = Y0.shape[0]
    T_n = te.size
    # fresh writable C-contiguous copies: the kernels take pointers to rows, and one set of
    # argument types (no read-only variants) keeps to a single compiled, cached kernel
    Y0 = np.array(Y0, dtype=np.float64, order="C")
    PP = np.array(PP, dtype=np.float64, order="C")
    te = np.array(te, dtype=np.float64, order="C")
    # every element is written by the kernel (outputs, or NaN after a failure): no pre-fill,
    # which for 10⁴ patients × 365 days would touch ~0.3 GB twice
    Yout = np.empty((n, T_n, k))
    status = np.zeros(n, dtype=np.int64)
    t_fail = np.zeros(n)
    stats = np.zeros((n, len(_STATS_NAMES)), dtype=np.int64)
    settings: dict[str, Any] = {
        "engine": "livingdrug.engines.ode",
        "kernel_sha256": KERNEL_HASH,
        "method": method,
        "rtol": float(rtol),
        "atol": float(atol),
        "t0": t_start,
        "max_steps": int(max_steps),
        "first_step": None if first_step is None else float(first_step),
        "fixed_step": None if fixed_step is None else float(fixed_step),
        "parallel": bool(parallel),
        "output": "dense output inside steps (fixed_step: steps land on t_eval); "
        "right-continuous at events",
    }
    if n > 0:
        driver = (
            _ode_kernel.ode_solve_batch_parallel if parallel else _ode_kernel.ode_solve_batch_serial
        )
        ev_timed, ev_dir, ev_once = event_arrays(compiled)
        driver(
            compiled.cfuncs + _lu_cfuncs(compiled),
            _lu_plan(compiled),
            t_start,
            Y0,
            PP,
            te,
            float(rtol),
            float(atol),
            METHODS[method],
            int(max_steps),
            0.0 if first_step is None else float(first_step),
            0.0 if fixed_step is None else float(fixed_step),
            bool(_is_nonautonomous(compiled)),
            int(compiled.module.N_PARAMS + compiled.module.N_DERIVED),
            ev_timed,
            ev_dir,
            ev_once,
            Yout,
            status,
            t_fail,
            stats,
        )
    messages = []
    exc = status == _KERNEL_EXCEPTION
    for i in range(n):
        st = int(status[i])
        if exc[i]:
            st = STATUS_NONFINITE
            messages.append(
                f"patient {i}: the model raised an arithmetic error (e.g. a division by zero "
                f"in a rate law) after t = {t_fail[i]:.10g} d"
            )
            continue
        if st == STATUS_OK:
            messages.append("ok")
        else:
            extra = {
                STATUS_MAX_STEPS: f" (max_steps = {int(max_steps)})",
                STATUS_STEP_TOO_SMALL: "",
                STATUS_NONFINITE: "",
                STATUS_SINGULAR: "",
            }.get(st, "")
            messages.append(
                f"patient {i}: {STATUS_MESSAGES.get(st, 'unknown failure')}{extra} "
                f"at t = {t_fail[i]:.10g} d"
            )
    status[exc] = STATUS_NONFINITE
    summed = stats.sum(axis=0)
    return OdeSolution(
        t=te.copy(),
        y=Yout,
        status=status,
        message=tuple(messages),
        stats={name: int(v) for name, v in zip(_STATS_NAMES, summed, strict=True)},
        settings=settings,
    )
