# mypy: ignore-errors
"""Numba kernels of the explicit tau-leaping engine (see :mod:`livingdrug.engines.tau`).

Model-agnostic like :mod:`livingdrug.engines._ssa_kernel`, whose generator (xoshiro256**),
uniform draw and event helpers are reused, so one replicate's draws come from one stream and
its result is bitwise identical whatever thread or chunk simulates it.  Nothing is
``fastmath``.

Status codes are those of :mod:`livingdrug.engines.common`; 5 (internal) means the model code
raised.  Stats columns: 0 reactions fired, 1 events fired, 2 leaps, 3 exact SSA steps,
4 rejected leaps.
"""

import math

import numpy as np
from numba import njit, prange

from ..network import use_cache_dir_for_numba
from ._ssa_kernel import __file__ as _ssa_kernel_file
from ._ssa_kernel import (
    _all_finite,
    _conditions,
    _next_stop,
    _round_counts,
    _start_events,
    _timed_at,
    choose_reaction,
    choose_reaction_where,
    total_propensity,
    uniform_open,
)

# before the decorators below; the SSA helpers it calls are part of its cache key
use_cache_dir_for_numba(__file__, depends_on=(_ssa_kernel_file,))

_ST_OK = 0
_ST_MAX_STEPS = 1
_ST_NONFINITE = 3
_ST_EXCEPTION = 5
_ST_BAD_PROPENSITY = 6

#: below this mean a Poisson variate is drawn by inversion, at or above it by PTRS
POISSON_INVERSION_MAX = 10.0
#: a leap shorter than SSA_SWITCH / a0 is not worth it: take SSA_BURST exact steps instead
SSA_SWITCH = 10.0
SSA_BURST = 100


@njit(cache=True, nogil=True)
def poisson(s, mu):
    """A Poisson(``mu``) variate (as a float) from the xoshiro256** stream ``s``.

    ``mu < 10``: inversion by sequential search of the cumulative distribution (one uniform).
    ``mu ≥ 10``: Hörmann's transformed rejection with squeeze, PTRS (W. Hörmann, "The
    transformed rejection method for generating Poisson random variables", Insurance:
    Mathematics and Economics 12 (1993) 39–45), two uniforms per trial, acceptance > 0.89 for
    every mean."""
    if not (mu > 0.0):
        return 0.0
    if mu < POISSON_INVERSION_MAX:
        u = uniform_open(s)
        pk = math.exp(-mu)
        cdf = pk
        k = 0
        while u > cdf:
            k += 1
            pk *= mu / k
            if pk == 0.0:  # rounding left the cdf just below u: the far tail is empty
                break
            cdf += pk
        return float(k)
    smu = math.sqrt(mu)
    log_mu = math.log(mu)
    b = 0.931 + 2.53 * smu
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    log_inv_alpha = math.log(inv_alpha)
    while True:
        u = uniform_open(s) - 0.5
        v = uniform_open(s)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + mu + 0.43)
        if us >= 0.07 and v <= v_r:  # the squeeze: accept without evaluating the density
            return k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        lhs = math.log(v) + log_inv_alpha - math.log(a / (us * us) + b)
        if lhs <= -mu + k * log_mu - math.lgamma(k + 1.0):
            return k


@njit(cache=True, nogil=True)
def poisson_draws(state, mu, n):
    """``n`` Poisson(``mu``) variates from a copy of ``state`` (for tests)."""
    s = state.copy()
    out = np.empty(n)
    for i in range(n):
        out[i] = poisson(s, mu)
    return out


@njit(cache=True, nogil=True)
def _tau_one(fns, t0, y0, p, t_eval, ST, in_rate, ev_timed, ev_dir, ev_once, state, epsilon,
             n_critical, max_steps, yout, stats, tprog):
    """Explicit tau-leaping for one replicate; returns (status, time reached).

    ``ST[r, i]``: change of species i when reaction r fires; ``in_rate[i]``: species i occurs
    in some rate law (only those bound the leap)."""
    propensities, event_time, event_condition, event_apply = fns
    n = y0.shape[0]
    nr = ST.shape[0]
    nev = ev_timed.shape[0]
    nT = t_eval.shape[0]
    y = y0.copy()
    ynew = y0.copy()
    a = np.zeros(max(nr, 1))
    crit = np.zeros(max(nr, 1), dtype=np.bool_)
    mu = np.zeros(max(n, 1))
    s2 = np.zeros(max(n, 1))
    s = state.copy()
    te = np.full(max(nev, 1), math.inf)
    fired = np.zeros(max(nev, 1), dtype=np.bool_)
    gprev = np.ones(max(nev, 1))
    gval = np.ones(max(nev, 1))
    flag = np.zeros(max(nev, 1), dtype=np.bool_)
    t = t0
    tprog[0] = t0
    n_rx = 0
    n_leap = 0
    n_ssa = 0
    n_rej = 0
    ssa_left = 0
    a0c = 0.0
    tau1 = math.inf
    status = _ST_OK
    j = 0
    n_ev = _start_events(event_time, event_condition, event_apply, t, y, p, ev_timed, ev_dir,
                         ev_once, te, fired, gprev, gval, flag)
    if n_ev > 0:
        _round_counts(y, ST, s)
    if not _all_finite(y):
        status = _ST_NONFINITE
    while status == _ST_OK and j < nT:
        if t_eval[j] == t:  # right-continuous: after every event at t
            for i in range(n):
                yout[j, i] = y[i]
            j += 1
            continue
        t_stop = _next_stop(t, t_eval[j], ev_timed, fired, te)
        propensities(t, y.ctypes, p.ctypes, a.ctypes)
        a0, valid = total_propensity(a, nr)
        if not valid:
            status = _ST_BAD_PROPENSITY
            break
        landed = False  # reached t_stop (timed events due)
        changed = False  # the state moved (conditions due)
        if a0 == 0.0:
            t = t_stop
            landed = True
        else:
            if ssa_left == 0:
                # critical reactions: can exhaust a reactant within n_critical firings
                a0c = 0.0
                for r in range(nr):
                    crit[r] = False
                    if a[r] > 0.0:
                        lmin = math.inf
                        for i in range(n):
                            if ST[r, i] < 0.0:
                                lmin = min(lmin, math.floor(y[i] / -ST[r, i]))
                        if lmin < n_critical:
                            crit[r] = True
                            a0c += a[r]
                # Cao, Gillespie & Petzold (2006): bound the expected change and the standard
                # deviation of each rate-law species by max(ε·|x_i|, 1) over the non-critical
                # reactions
                for i in range(n):
                    mu[i] = 0.0
                    s2[i] = 0.0
                for r in range(nr):
                    if a[r] > 0.0 and not crit[r]:
                        for i in range(n):
                            v = ST[r, i]
                            if v != 0.0:
                                mu[i] += v * a[r]
                                s2[i] += v * v * a[r]
                tau1 = math.inf
                for i in range(n):
                    if in_rate[i]:
                        bound = max(epsilon * abs(y[i]), 1.0)
                        if mu[i] != 0.0:
                            tau1 = min(tau1, bound / abs(mu[i]))
                        if s2[i] > 0.0:
                            tau1 = min(tau1, bound * bound / s2[i])
                if tau1 < SSA_SWITCH / a0:
                    ssa_left = SSA_BURST
            if ssa_left == 0:
                # a leap; rejected (τ' halved) if it would make a population negative
                while True:
                    tau2 = math.inf
                    if a0c > 0.0:
                        tau2 = -math.log(uniform_open(s)) / a0c
                    fire_crit = tau2 <= tau1
                    tau = tau2 if fire_crit else tau1
                    if t + tau >= t_stop:
                        tau = t_stop - t
                        fire_crit = False
                        landed = True
                    fires = 0.0
                    for i in range(n):
                        ynew[i] = y[i]
                    for r in range(nr):
                        if a[r] > 0.0 and not crit[r]:
                            kf = poisson(s, a[r] * tau)
                            if kf > 0.0:
                                fires += kf
                                for i in range(n):
                                    ynew[i] += kf * ST[r, i]
                    if fire_crit:
                        chosen = choose_reaction_where(a, nr, uniform_open(s) * a0c, crit,
                                                       True)
                        for i in range(n):
                            ynew[i] += ST[chosen, i]
                        fires += 1.0
                    negative = False
                    for i in range(n):
                        if ynew[i] < 0.0 and y[i] >= 0.0:
                            negative = True
                    if not negative:
                        break
                    n_rej += 1
                    landed = False
                    tau1 = 0.5 * tau
                    if tau1 < SSA_SWITCH / a0:
                        ssa_left = SSA_BURST
                        break
                if ssa_left == 0:
                    if n_leap + n_ssa >= max_steps:
                        status = _ST_MAX_STEPS
                        break
                    n_leap += 1
                    n_rx += int(fires)
                    t = t_stop if landed else t + tau
                    for i in range(n):
                        y[i] = ynew[i]
                    changed = fires > 0.0
            if ssa_left > 0:
                # one step of Gillespie's direct method
                ssa_left -= 1
                tau = -math.log(uniform_open(s)) / a0
                if t + tau < t_stop:
                    if n_leap + n_ssa >= max_steps:
                        status = _ST_MAX_STEPS
                        break
                    t = t + tau
                    chosen = choose_reaction(a, nr, uniform_open(s) * a0)
                    for i in range(n):
                        y[i] += ST[chosen, i]
                    n_rx += 1
                    n_ssa += 1
                    changed = True
                else:
                    t = t_stop
                    landed = True
        if changed and nev > 0:
            nf = _conditions(event_condition, event_apply, t, y, p, ev_timed, ev_dir, ev_once,
                             fired, gprev, gval, flag)
            if nf > 0:
                n_ev += nf
                _round_counts(y, ST, s)
                if not _all_finite(y):
                    status = _ST_NONFINITE
        if landed and status == _ST_OK:
            nf = _timed_at(event_apply, t, y, p, ev_timed, te, fired)
            if nf > 0:
                n_ev += nf
                n_ev += _conditions(event_condition, event_apply, t, y, p, ev_timed, ev_dir,
                                    ev_once, fired, gprev, gval, flag)
                _round_counts(y, ST, s)
                if not _all_finite(y):
                    status = _ST_NONFINITE
        tprog[0] = t
    for jj in range(j, nT):
        for i in range(n):
            yout[jj, i] = math.nan
    stats[0] = n_rx
    stats[1] = n_ev
    stats[2] = n_leap
    stats[3] = n_ssa
    stats[4] = n_rej
    return status, t


@njit(cache=True, nogil=True)
def _tau_guarded(fns, i, t0, Y0, P, t_eval, ST, in_rate, ev_timed, ev_dir, ev_once, states,
                 epsilon, n_critical, max_steps, Yout, status, t_fail, stats):
    """Replicate i; an exception raised by model code becomes status 5 for it alone."""
    try:
        st, tf = _tau_one(fns, t0, Y0[i], P[i], t_eval, ST, in_rate, ev_timed, ev_dir, ev_once,
                          states[i], epsilon, n_critical, max_steps, Yout[i], stats[i],
                          t_fail[i:i + 1])
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
def tau_batch_parallel(fns, t0, Y0, P, t_eval, ST, in_rate, ev_timed, ev_dir, ev_once, states,
                       epsilon, n_critical, max_steps, Yout, status, t_fail, stats):
    """All replicates in a prange loop (each from its own random stream)."""
    for i in prange(Y0.shape[0]):
        _tau_guarded(fns, i, t0, Y0, P, t_eval, ST, in_rate, ev_timed, ev_dir, ev_once, states,
                     epsilon, n_critical, max_steps, Yout, status, t_fail, stats)


@njit(cache=True, nogil=True)
def tau_batch_serial(fns, t0, Y0, P, t_eval, ST, in_rate, ev_timed, ev_dir, ev_once, states,
                     epsilon, n_critical, max_steps, Yout, status, t_fail, stats):
    """All replicates one after the other (same per-replicate kernel)."""
    for i in range(Y0.shape[0]):
        _tau_guarded(fns, i, t0, Y0, P, t_eval, ST, in_rate, ev_timed, ev_dir, ev_once, states,
                     epsilon, n_critical, max_steps, Yout, status, t_fail, stats)
