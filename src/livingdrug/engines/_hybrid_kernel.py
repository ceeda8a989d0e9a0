# mypy: ignore-errors
"""Numba kernel of the hybrid engine (see :mod:`livingdrug.engines.hybrid`).

Model-agnostic like the SSA and tau kernels, whose generator, uniform draw and event helpers it
reuses: it takes the model's ``ssa_cfuncs`` (propensities and events) and the stoichiometry in
compressed-row form (``rptr``, ``ridx``, ``rval``: reaction r changes species ``ridx[j]`` by
``rval[j]`` for ``rptr[r] ≤ j < rptr[r+1]``).  Nothing is ``fastmath``; a replicate's result
depends only on its own stream.

Stats columns: 0 reactions fired (stochastically), 1 events fired, 2 accepted ODE steps,
3 rejected ODE steps, 4 partition changes.
"""

import math

import numpy as np
from numba import njit, prange

from ..network import use_cache_dir_for_numba
from ._ssa_kernel import __file__ as _ssa_kernel_file
from ._ssa_kernel import (
    _all_finite,
    _conditions,
    _crossed,
    _next_stop,
    _start_events,
    _timed_at,
    choose_reaction_where,
    round_count,
    uniform_open,
)

# before the decorators below; the SSA helpers it calls are part of its cache key
use_cache_dir_for_numba(__file__, depends_on=(_ssa_kernel_file,))

_ST_OK = 0
_ST_MAX_STEPS = 1
_ST_STEP_TOO_SMALL = 2
_ST_NONFINITE = 3
_ST_EXCEPTION = 5
_ST_BAD_PROPENSITY = 6

#: a discrete species becomes continuous again only at HYSTERESIS × threshold (no chattering)
HYSTERESIS = 2.0
#: bisection steps when locating a firing or a condition crossing inside an ODE step
_BISECT = 60

# Dormand–Prince 5(4) tableau (Dormand & Prince, J. Comput. Appl. Math. 6 (1980) 19–26)
_C2, _C3, _C4, _C5 = 0.2, 0.3, 0.8, 8.0 / 9.0
_A21 = 0.2
_A31, _A32 = 3.0 / 40.0, 9.0 / 40.0
_A41, _A42, _A43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0
_A51, _A52, _A53, _A54 = 19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0
_A61, _A62, _A63, _A64, _A65 = (9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0,
                                -5103.0 / 18656.0)
_B1, _B3, _B4, _B5, _B6 = 35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0
_E1, _E3, _E4, _E5, _E6, _E7 = (71.0 / 57600.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0,
                                22.0 / 525.0, -1.0 / 40.0)


@njit(cache=True, nogil=True)
def _field(propensities, t, y, p, a, det, rptr, ridx, rval, f):
    """Propensities ``a`` at (t, y); ``f = Σ_{r deterministic} ν_r a_r`` (the continuous part's
    right-hand side).  Returns (total stochastic propensity, number of deterministic reactions
    with a_r > 0, all propensities valid)."""
    propensities(t, y.ctypes, p.ctypes, a.ctypes)
    for i in range(f.shape[0]):
        f[i] = 0.0
    a_s = 0.0
    n_active = 0
    ok = True
    for r in range(a.shape[0]):
        ar = a[r]
        if not (ar >= 0.0 and ar < math.inf):
            ok = False
        if det[r]:
            if ar > 0.0:
                n_active += 1
                for j in range(rptr[r], rptr[r + 1]):
                    f[ridx[j]] += rval[j] * ar
        else:
            a_s += ar
    return a_s, n_active, ok


@njit(cache=True, nogil=True)
def _dp5(propensities, t, y, p, h, f0, s0, a, det, rptr, ridx, rval, cont, k2, k3, k4, k5, k6,
         k7, ytmp, ynew, sv, lam, rtol, atol):
    """One Dormand–Prince step of size h of the continuous species and of the integrated
    stochastic hazard Λ(t) = ∫ Σ_stoch a_r dt, from (t, y) with f0, s0 the field and total
    stochastic propensity there.  Writes the new state into ``ynew`` and its field into ``k7``
    (first-same-as-last; ``a`` then holds the propensities at the new state) and the stages'
    stochastic propensities into ``sv[0..6]`` (for the dense output of Λ).  Returns (error
    norm, ΔΛ, stochastic propensity at the new state, ok)."""
    n = y.shape[0]
    for i in range(n):
        ytmp[i] = y[i] + h * _A21 * f0[i]
    s2, _, ok2 = _field(propensities, t + _C2 * h, ytmp, p, a, det, rptr, ridx, rval, k2)
    for i in range(n):
        ytmp[i] = y[i] + h * (_A31 * f0[i] + _A32 * k2[i])
    s3, _, ok3 = _field(propensities, t + _C3 * h, ytmp, p, a, det, rptr, ridx, rval, k3)
    for i in range(n):
        ytmp[i] = y[i] + h * (_A41 * f0[i] + _A42 * k2[i] + _A43 * k3[i])
    s4, _, ok4 = _field(propensities, t + _C4 * h, ytmp, p, a, det, rptr, ridx, rval, k4)
    for i in range(n):
        ytmp[i] = y[i] + h * (_A51 * f0[i] + _A52 * k2[i] + _A53 * k3[i] + _A54 * k4[i])
    s5, _, ok5 = _field(propensities, t + _C5 * h, ytmp, p, a, det, rptr, ridx, rval, k5)
    for i in range(n):
        ytmp[i] = y[i] + h * (_A61 * f0[i] + _A62 * k2[i] + _A63 * k3[i] + _A64 * k4[i]
                              + _A65 * k5[i])
    s6, _, ok6 = _field(propensities, t + h, ytmp, p, a, det, rptr, ridx, rval, k6)
    for i in range(n):
        ynew[i] = y[i] + h * (_B1 * f0[i] + _B3 * k3[i] + _B4 * k4[i] + _B5 * k5[i] + _B6 * k6[i])
    dlam = h * (_B1 * s0 + _B3 * s3 + _B4 * s4 + _B5 * s5 + _B6 * s6)
    s7, _, ok7 = _field(propensities, t + h, ynew, p, a, det, rptr, ridx, rval, k7)
    sv[0] = s0
    sv[1] = s2
    sv[2] = s3
    sv[3] = s4
    sv[4] = s5
    sv[5] = s6
    sv[6] = s7
    acc = 0.0
    cnt = 0
    for i in range(n):
        if cont[i]:
            e = h * (_E1 * f0[i] + _E3 * k3[i] + _E4 * k4[i] + _E5 * k5[i] + _E6 * k6[i]
                     + _E7 * k7[i])
            sc = atol + rtol * max(abs(y[i]), abs(ynew[i]))
            acc += (e / sc) * (e / sc)
            cnt += 1
    # Λ is compared with an Exp(1) threshold: an absolute accuracy of rtol on it
    e = h * (_E1 * s0 + _E3 * s3 + _E4 * s4 + _E5 * s5 + _E6 * s6 + _E7 * s7)
    sc = rtol * (1.0 + lam + abs(dlam))
    acc += (e / sc) * (e / sc)
    cnt += 1
    err = math.sqrt(acc / cnt)
    if not (math.isfinite(err) and math.isfinite(dlam)) or not (ok2 and ok3 and ok4 and ok5
                                                                 and ok6):
        # an intermediate stage left the domain (e.g. a negative count): too long a step
        err = math.inf
    return err, dlam, s7, ok7


# Dormand–Prince continuous extension of order 4 (Shampine 1986; Hairer, Nørsett & Wanner,
# Solving ODE I, Sect. II.6, CONTD5)
_D1 = -12715105075.0 / 11282082432.0
_D3 = 87487479700.0 / 32700410799.0
_D4 = -10690763975.0 / 1880347072.0
_D5 = 701980252875.0 / 199316789632.0
_D6 = -1453857185.0 / 822651844.0
_D7 = 69997945.0 / 29380423.0


@njit(cache=True, nogil=True, inline="always")
def _dense1(th, h, y0, y1, f0, f3, f4, f5, f6, f7):
    """Dense output at θ ∈ [0, 1] of one component over a step of size h."""
    th1 = 1.0 - th
    ydiff = y1 - y0
    bspl = h * f0 - ydiff
    r4 = ydiff - h * f7 - bspl
    r5 = h * (_D1 * f0 + _D3 * f3 + _D4 * f4 + _D5 * f5 + _D6 * f6 + _D7 * f7)
    return y0 + th * (ydiff + th1 * (bspl + th * (r4 + th1 * r5)))


@njit(cache=True, nogil=True)
def _dense(th, h, y, ynew, f0, k3, k4, k5, k6, k7, out):
    for i in range(y.shape[0]):
        out[i] = _dense1(th, h, y[i], ynew[i], f0[i], k3[i], k4[i], k5[i], k6[i], k7[i])


@njit(cache=True, nogil=True)
def _below(y, watch, theta):
    """Is some species in ``watch`` (continuous, not ODE-only) below the threshold?"""
    for i in range(y.shape[0]):
        if watch[i] and y[i] < theta:
            return True
    return False


@njit(cache=True, nogil=True)
def _below_at(th, h, y, ynew, f0, k3, k4, k5, k6, k7, out, watch, theta):
    """Is some watched species below the threshold at θ of the step (dense output)?"""
    _dense(th, h, y, ynew, f0, k3, k4, k5, k6, k7, out)
    return _below(out, watch, theta)


@njit(cache=True, nogil=True)
def _lam_root(lam, dlam, h, sv, xi):
    """Smallest θ ∈ (0, 1] at which the dense output of Λ reaches ξ (lam < ξ ≤ lam + dlam),
    by bisection."""
    lo = 0.0
    hi = 1.0
    for _ in range(_BISECT):
        th = 0.5 * (lo + hi)
        if _dense1(th, h, lam, lam + dlam, sv[0], sv[2], sv[3], sv[4], sv[5], sv[6]) >= xi:
            hi = th
        else:
            lo = th
    return hi



@njit(cache=True, nogil=True)
def _partition(y, disc, movable, theta, s):
    """Re-classify species: continuous → discrete below ``theta`` (rounded stochastically),
    discrete → continuous at ``HYSTERESIS·theta`` or more; discrete values made non-integer by
    an event are rounded stochastically.  Returns True if the partition changed.

    ``movable[i]``: 0 no reaction changes species i (never reclassified), 1 reclassified by
    the threshold, 2 always continuous (a concentration the model declares ODE-only)."""
    changed = False
    up = HYSTERESIS * theta
    for i in range(y.shape[0]):
        if movable[i] != 1:
            continue
        if disc[i]:
            if y[i] >= up:
                disc[i] = False
                changed = True
            else:
                y[i] = round_count(y[i], s)
        elif y[i] < theta:
            disc[i] = True
            changed = True
            y[i] = round_count(y[i], s)
    return changed


@njit(cache=True, nogil=True)
def _reactions(disc, rptr, ridx, det):
    """A reaction is deterministic iff it changes no discrete species."""
    for r in range(det.shape[0]):
        d = True
        for j in range(rptr[r], rptr[r + 1]):
            if disc[ridx[j]]:
                d = False
        det[r] = d


@njit(cache=True, nogil=True)
def _any_crossed(event_condition, t, y, p, ev_timed, ev_dir, ev_once, fired, gprev):
    for k in range(ev_timed.shape[0]):
        if ev_timed[k] or (ev_once[k] and fired[k]):
            continue
        if _crossed(gprev[k], event_condition(k, t, y.ctypes, p.ctypes), ev_dir[k]):
            return True
    return False


@njit(cache=True, nogil=True)
def _hybrid_one(fns, t0, y0, p, t_eval, rptr, ridx, rval, movable, ev_timed, ev_dir, ev_once,
                state, theta, rtol, atol, max_events, max_steps, yout, stats, tprog):
    """One replicate of the hybrid method; returns (status, time reached)."""
    propensities, event_time, event_condition, event_apply = fns
    n = y0.shape[0]
    nr = rptr.shape[0] - 1
    nev = ev_timed.shape[0]
    nT = t_eval.shape[0]
    y = y0.copy()
    ynew = y0.copy()
    ytmp = y0.copy()
    sv = np.zeros(7)
    f0 = np.zeros(n)
    k2 = np.zeros(n)
    k3 = np.zeros(n)
    k4 = np.zeros(n)
    k5 = np.zeros(n)
    k6 = np.zeros(n)
    k7 = np.zeros(n)
    a = np.zeros(max(nr, 1))
    disc = np.zeros(n, dtype=np.bool_)
    cont = np.zeros(n, dtype=np.bool_)
    watch = np.zeros(n, dtype=np.bool_)  # continuous and subject to the threshold
    det = np.zeros(max(nr, 1), dtype=np.bool_)
    s = state.copy()
    te = np.full(max(nev, 1), math.inf)
    fired = np.zeros(max(nev, 1), dtype=np.bool_)
    gprev = np.ones(max(nev, 1))
    gval = np.ones(max(nev, 1))
    flag = np.zeros(max(nev, 1), dtype=np.bool_)
    t = t0
    tprog[0] = t0
    n_rx = 0
    n_steps = 0
    n_rej = 0
    n_switch = 0
    status = _ST_OK
    j = 0
    # initial partition: everything at or above the threshold is continuous
    for i in range(n):
        disc[i] = False
    _partition(y, disc, movable, theta, s)
    n_ev = _start_events(event_time, event_condition, event_apply, t, y, p, ev_timed, ev_dir,
                         ev_once, te, fired, gprev, gval, flag)
    _partition(y, disc, movable, theta, s)
    for i in range(n):
        cont[i] = movable[i] != 0 and not disc[i]
        watch[i] = movable[i] == 1 and not disc[i]
    _reactions(disc, rptr, ridx, det)
    lam = 0.0
    xi = -math.log(uniform_open(s))
    h = 0.0
    fresh = True  # f0/s0 must be recomputed (start, or the state jumped)
    s0 = 0.0
    n_active = 0
    if not _all_finite(y):
        status = _ST_NONFINITE
    while status == _ST_OK and j < nT:
        if t_eval[j] == t:  # right-continuous: after every firing and event at t
            for i in range(n):
                yout[j, i] = y[i]
            j += 1
            continue
        if fresh:
            s0, n_active, ok = _field(propensities, t, y, p, a, det, rptr, ridx, rval, f0)
            if not ok:
                status = _ST_BAD_PROPENSITY
                break
            fresh = False
        fire = False
        jumped = False
        if n_active == 0:
            # nothing moves continuously: the stochastic propensities are constant until the
            # next firing, so the waiting time is exact, as in Gillespie's direct method
            t_stop = _next_stop(t, t_eval[j], ev_timed, fired, te)
            if s0 > 0.0 and t + (xi - lam) / s0 < t_stop:
                t = t + (xi - lam) / s0
                fire = True
            else:
                lam += s0 * (t_stop - t)
                t = t_stop
        else:
            # outputs inside a step come from the dense output; only timed events and the
            # last output time stop a step
            t_stop = _next_stop(t, t_eval[nT - 1], ev_timed, fired, te)
            if h <= 0.0:
                # initial step (Hairer, Nørsett & Wanner, Solving ODE I, II.4: 1 % of the
                # scale over the rate of change)
                d0 = 0.0
                d1 = 0.0
                for i in range(n):
                    if cont[i]:
                        sc = atol + rtol * abs(y[i])
                        d0 = max(d0, abs(y[i]) / sc)
                        d1 = max(d1, abs(f0[i]) / sc)
                h = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * max(d0, 1.0) / d1
            if n_steps + n_rej >= max_steps:
                status = _ST_MAX_STEPS
                break
            if h < 1e-14 * max(1.0, abs(t)):
                status = _ST_STEP_TOO_SMALL
                break
            to_stop = h >= t_stop - t
            hh = t_stop - t if to_stop else h
            err, dlam, s1, ok = _dp5(propensities, t, y, p, hh, f0, s0, a, det, rptr, ridx, rval,
                                     cont, k2, k3, k4, k5, k6, k7, ytmp, ynew, sv, lam, rtol, atol)
            neg = False
            for i in range(n):
                if cont[i] and ynew[i] < 0.0 <= y[i]:
                    neg = True
            if err > 1.0 or neg or not ok:
                n_rej += 1
                if neg or not ok or not math.isfinite(err):
                    h = 0.5 * hh
                else:
                    h = hh * max(0.2, 0.9 * err ** -0.2)
                continue
            n_steps += 1
            h_next = hh * min(10.0, max(0.2, 0.9 * max(err, 1e-10) ** -0.2))
            if to_stop:
                h_next = max(h_next, h)  # a step shortened by a stop says nothing of the scale
            th_end = 1.0
            if lam + dlam >= xi:
                # the next stochastic firing falls inside the step: locate it on the dense
                # output of Λ
                th_end = _lam_root(lam, dlam, hh, sv, xi)
                fire = True
            if _below(ynew, watch, theta) or (th_end < 1.0 and _below_at(
                    th_end, hh, y, ynew, f0, k3, k4, k5, k6, k7, ytmp, watch, theta)):
                # a continuous species falls below the threshold inside the step: stop where it
                # does (dense output), so that it is handed to the exact part right there
                lo = 0.0
                hi = th_end
                for _ in range(_BISECT):
                    mid = 0.5 * (lo + hi)
                    if mid <= lo or mid >= hi:
                        break
                    if _below_at(mid, hh, y, ynew, f0, k3, k4, k5, k6, k7, ytmp, watch, theta):
                        hi = mid
                    else:
                        lo = mid
                if hi < th_end:
                    th_end = hi
                    fire = False  # the switch comes first; Λ carries on towards ξ
            if nev > 0:
                if th_end < 1.0:
                    _dense(th_end, hh, y, ynew, f0, k3, k4, k5, k6, k7, ytmp)
                else:
                    for i in range(n):
                        ytmp[i] = ynew[i]
                if _any_crossed(event_condition, t + th_end * hh, ytmp, p, ev_timed, ev_dir,
                                ev_once, fired, gprev):
                    # a condition of the continuous state crossed zero first: bisect for the
                    # crossing on the dense output
                    lo = 0.0
                    hi = th_end
                    for _ in range(_BISECT):
                        mid = 0.5 * (lo + hi)
                        if mid <= lo or mid >= hi:
                            break
                        _dense(mid, hh, y, ynew, f0, k3, k4, k5, k6, k7, ytmp)
                        if _any_crossed(event_condition, t + mid * hh, ytmp, p, ev_timed,
                                        ev_dir, ev_once, fired, gprev):
                            hi = mid
                        else:
                            lo = mid
                    th_end = hi
                    fire = False  # the crossing comes first; the firing is re-drawn after it
                    jumped = True
            t_new = t_stop if (to_stop and th_end == 1.0) else t + th_end * hh
            while j < nT and t_eval[j] < t_new:
                th = (t_eval[j] - t) / hh
                for i in range(n):
                    yout[j, i] = _dense1(th, hh, y[i], ynew[i], f0[i], k3[i], k4[i], k5[i],
                                         k6[i], k7[i])
                j += 1
            if th_end < 1.0:
                lam = _dense1(th_end, hh, lam, lam + dlam, sv[0], sv[2], sv[3], sv[4], sv[5],
                              sv[6])
                _dense(th_end, hh, y, ynew, f0, k3, k4, k5, k6, k7, ytmp)
                for i in range(n):
                    y[i] = ytmp[i]
                fresh = True
            else:
                lam += dlam
                for i in range(n):
                    y[i] = ynew[i]
                    f0[i] = k7[i]
                s0 = s1
            t = t_new
            h = h_next
        if fire:
            if n_rx >= max_events:
                status = _ST_MAX_STEPS
                break
            if fresh:  # located inside a step: the propensities at the firing point
                propensities(t, y.ctypes, p.ctypes, a.ctypes)
            # otherwise ``a`` already holds them (end of the step, or nothing moved)
            tot = 0.0
            for r in range(nr):
                if not det[r]:
                    tot += a[r]
            chosen = choose_reaction_where(a, nr, uniform_open(s) * tot, det, False)
            if chosen >= 0:
                for jj in range(rptr[chosen], rptr[chosen + 1]):
                    y[ridx[jj]] += rval[jj]
                n_rx += 1
            lam = 0.0
            xi = -math.log(uniform_open(s))
            jumped = True
        if t == t_stop:
            nf = _timed_at(event_apply, t, y, p, ev_timed, te, fired)
            if nf > 0:
                n_ev += nf
                jumped = True
        if jumped and nev > 0:
            n_ev += _conditions(event_condition, event_apply, t, y, p, ev_timed, ev_dir, ev_once,
                                fired, gprev, gval, flag)
        elif nev > 0 and n_active > 0:
            for k in range(nev):  # no crossing in the step: remember where the conditions are
                if not ev_timed[k]:
                    gprev[k] = event_condition(k, t, y.ctypes, p.ctypes)
        if jumped:
            fresh = True
            if not _all_finite(y):
                status = _ST_NONFINITE
                break
        if _partition(y, disc, movable, theta, s):
            n_switch += 1
            for i in range(n):
                cont[i] = movable[i] != 0 and not disc[i]
                watch[i] = movable[i] == 1 and not disc[i]
            _reactions(disc, rptr, ridx, det)
            fresh = True
            if nev > 0:  # rounding a newly discrete species may cross a condition
                n_ev += _conditions(event_condition, event_apply, t, y, p, ev_timed, ev_dir,
                                    ev_once, fired, gprev, gval, flag)
        tprog[0] = t
    for jj in range(j, nT):
        for i in range(n):
            yout[jj, i] = math.nan
    stats[0] = n_rx
    stats[1] = n_ev
    stats[2] = n_steps
    stats[3] = n_rej
    stats[4] = n_switch
    return status, t


@njit(cache=True, nogil=True)
def _hybrid_guarded(fns, i, t0, Y0, P, t_eval, rptr, ridx, rval, movable, ev_timed, ev_dir,
                    ev_once, states, theta, rtol, atol, max_events, max_steps, Yout, status,
                    t_fail, stats):
    """Replicate i; an exception raised by model code becomes status 5 for it alone."""
    try:
        st, tf = _hybrid_one(fns, t0, Y0[i], P[i], t_eval, rptr, ridx, rval, movable, ev_timed,
                             ev_dir, ev_once, states[i], theta, rtol, atol, max_events, max_steps,
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
def hybrid_batch_parallel(fns, t0, Y0, P, t_eval, rptr, ridx, rval, movable, ev_timed, ev_dir,
                          ev_once, states, theta, rtol, atol, max_events, max_steps, Yout, status,
                          t_fail, stats):
    """All replicates in a prange loop (each from its own random stream)."""
    for i in prange(Y0.shape[0]):
        _hybrid_guarded(fns, i, t0, Y0, P, t_eval, rptr, ridx, rval, movable, ev_timed, ev_dir,
                        ev_once, states, theta, rtol, atol, max_events, max_steps, Yout, status,
                        t_fail, stats)


@njit(cache=True, nogil=True)
def hybrid_batch_serial(fns, t0, Y0, P, t_eval, rptr, ridx, rval, movable, ev_timed, ev_dir,
                        ev_once, states, theta, rtol, atol, max_events, max_steps, Yout, status,
                        t_fail, stats):
    """All replicates one after the other (same per-replicate kernel)."""
    for i in range(Y0.shape[0]):
        _hybrid_guarded(fns, i, t0, Y0, P, t_eval, rptr, ridx, rval, movable, ev_timed, ev_dir,
                        ev_once, states, theta, rtol, atol, max_events, max_steps, Yout, status,
                        t_fail, stats)
