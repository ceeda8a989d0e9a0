# mypy: ignore-errors
"""Numba kernels of the exact stochastic engine (see :mod:`livingdrug.engines.ssa`).

Like the ODE kernels these know no model: they take ``fns = (propensities, event_time,
event_condition, event_apply)``, the ``cfunc`` s of
:attr:`livingdrug.network.CompiledNetwork.ssa_cfuncs`, and call them with raw pointers to
contiguous float64 arrays, so they are compiled once for every model and cached on disk under
:func:`livingdrug.network.cache_dir`.

Random numbers: each replicate owns a xoshiro256** generator (Blackman & Vigna, "Scrambled
linear pseudorandom number generators", ACM Trans. Math. Softw. 47(4), 36 (2021)), state four
uint64 words seeded by the caller from ``numpy.random.SeedSequence(seed, spawn_key=(i,))``.
A draw is turned into a double in the open interval (0, 1) as ``((x >> 11) + 0.5) · 2⁻⁵³``.
Nothing here is ``fastmath``; a replicate's result depends only on its own stream, so it is
bitwise identical whatever thread or chunk simulates it.

Status codes are those of :mod:`livingdrug.engines.common`; 5 (internal) means the model code
raised.  Stats columns: 0 reactions fired, 1 events fired.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ..network import use_cache_dir_for_numba

use_cache_dir_for_numba(__file__)  # before the decorators below

_ST_OK = 0
_ST_MAX_STEPS = 1
_ST_NONFINITE = 3
_ST_EXCEPTION = 5
_ST_BAD_PROPENSITY = 6

_U5 = np.uint64(5)
_U7 = np.uint64(7)
_U9 = np.uint64(9)
_U11 = np.uint64(11)
_U17 = np.uint64(17)
_U45 = np.uint64(45)
_U64 = np.uint64(64)
_TWO_M53 = 1.0 / 9007199254740992.0


@njit(cache=True, nogil=True, inline="always")
def _rotl(x, k):
    return (x << k) | (x >> (_U64 - k))


@njit(cache=True, nogil=True, inline="always")
def xoshiro_next(s):
    """Advance the xoshiro256** state ``s`` (uint64[4], in place); return the next uint64."""
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    result = _rotl(s1 * _U5, _U7) * _U9
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, _U45)
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return result


@intrinsic
def f64_bits(typingctx, x):
    """The IEEE-754 bits of a float64 as a uint64 (a bit cast: no conversion, vectorisable)."""
    if not isinstance(x, types.Float) or x.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@intrinsic
def bits_f64(typingctx, x):
    """The float64 whose IEEE-754 bits are the uint64 ``x`` (inverse of :func:`f64_bits`)."""
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(x), codegen


# log(x) = e·ln2 + log(m), m ∈ [√2/2, √2): the polynomial and the split of ln 2 of fdlibm's
# e_log.c (Sun Microsystems 1993, as in FreeBSD's msun and musl): error < 1 ulp
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_U52 = np.uint64(52)
_MANT = np.uint64(0x000FFFFFFFFFFFFF)
_SQRT2_MANT = np.uint64(0x6A09E667F3BCD)  # mantissa bits of √2
_ONE_BITS = np.uint64(0x3FF0000000000000)
_HALF_BITS = np.uint64(0x3FE0000000000000)


@njit(cache=True, nogil=True, inline="always")
def log_open(u):
    """Natural logarithm of a normal positive double ``u`` (here a uniform of
    :func:`uniform_open`, ``u ≥ 2⁻⁵⁴``), error < 1 ulp.

    Written without a library call and without branches (bit operations, one division, a
    degree-7 polynomial in ``s²``), so that LLVM vectorises it when it is called in a loop over
    simulation lanes (:mod:`livingdrug.engines._ssa_lanes`); every direct-method kernel of the
    exact engine uses it, so the scalar and the lane kernels draw identical waiting times.
    Method (fdlibm ``e_log.c``, Sun Microsystems 1993): ``u = 2ᵉ·m`` with ``m ∈ [√2/2, √2)``,
    ``f = m − 1``, ``s = f/(2 + f)``, ``log(1 + f) = f − f²/2 + s·(f²/2 + R(s²))`` with the
    minimax polynomial ``R``, and ``e·ln 2`` split into a high and a low part.  No NaN, zero,
    negative or subnormal argument is handled (none is ever passed)."""
    bits = f64_bits(u)
    mant = bits & _MANT
    big = mant >= _SQRT2_MANT
    e = np.int64(bits >> _U52) - 1023 + np.int64(big)
    m = bits_f64(mant | (_HALF_BITS if big else _ONE_BITS))
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    dk = float(e)
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)


@njit(cache=True, nogil=True, inline="always")
def uniform_open(s):
    """A uniform double in the open interval (0, 1) (53 random bits, offset by half an ulp)."""
    return (float(xoshiro_next(s) >> _U11) + 0.5) * _TWO_M53


@njit(cache=True, nogil=True, inline="always")
def round_count(x, s):
    """Unbiased stochastic rounding ``⌊x⌋ + Bernoulli(x − ⌊x⌋)`` (draws only if x is not an
    integer), so an event that leaves a fraction of a cell keeps the mean count."""
    fl = math.floor(x)
    if x == fl:
        return x
    if uniform_open(s) < x - fl:
        return fl + 1.0
    return fl


@njit(cache=True, nogil=True)
def _round_counts(y, ST, s):
    """After an event: round every species some reaction changes (a count) to a whole number,
    stochastically.  Species no reaction changes (e.g. a recorded time) are left alone."""
    for i in range(y.shape[0]):
        if y[i] != math.floor(y[i]):
            for r in range(ST.shape[0]):
                if ST[r, i] != 0.0:
                    y[i] = round_count(y[i], s)
                    break


@njit(cache=True, nogil=True)
def xoshiro_draws(state, n):
    """``n`` raw outputs and then ``n`` uniforms from a copy of ``state`` (for tests)."""
    s = state.copy()
    raw = np.empty(n, dtype=np.uint64)
    for i in range(n):
        raw[i] = xoshiro_next(s)
    u = np.empty(n)
    for i in range(n):
        u[i] = uniform_open(s)
    return raw, u


@njit(cache=True, nogil=True, inline="always")
def _crossed(g0, g, direction):
    """Has the condition crossed zero (in the declared direction) from g0 to g?"""
    if direction < 0:
        return g0 > 0.0 and g <= 0.0
    if direction > 0:
        return g0 < 0.0 and g >= 0.0
    return (g0 > 0.0 and g <= 0.0) or (g0 < 0.0 and g >= 0.0)


@njit(cache=True, nogil=True)
def _conditions(event_condition, event_apply, t, y, p, ev_timed, ev_dir, ev_once, fired, gprev,
                gval, flag):
    """Fire every condition event whose function crossed zero since ``gprev`` (index order, all
    conditions evaluated before any assignment), then refresh ``gprev``.  Returns the count."""
    nev = ev_timed.shape[0]
    nf = 0
    for k in range(nev):
        flag[k] = False
        if ev_timed[k]:
            continue
        g = event_condition(k, t, y.ctypes, p.ctypes)
        gval[k] = g
        if not (ev_once[k] and fired[k]) and _crossed(gprev[k], g, ev_dir[k]):
            flag[k] = True
            nf += 1
    if nf == 0:
        for k in range(nev):
            if not ev_timed[k]:
                gprev[k] = gval[k]
        return 0
    for k in range(nev):
        if flag[k]:
            event_apply(k, t, y.ctypes, p.ctypes)
            fired[k] = True
    for k in range(nev):
        if not ev_timed[k]:
            gprev[k] = event_condition(k, t, y.ctypes, p.ctypes)
    return nf


@njit(cache=True, nogil=True)
def _timed_at(event_apply, t, y, p, ev_timed, te, fired):
    """Fire the timed events scheduled at exactly ``t`` (index order); returns the count."""
    nf = 0
    for k in range(ev_timed.shape[0]):
        if ev_timed[k] and (not fired[k]) and te[k] == t:
            event_apply(k, t, y.ctypes, p.ctypes)
            fired[k] = True
            nf += 1
    return nf


@njit(cache=True, nogil=True)
def _start_events(event_time, event_condition, event_apply, t, y, p, ev_timed, ev_dir, ev_once,
                  te, fired, gprev, gval, flag):
    """Start of a run at ``t``: evaluate the timed events' times into ``te`` and the conditions
    into ``gprev``, then fire the timed events scheduled at ``t`` (and any condition they make
    cross).  Returns the number of events fired.  Shared by every stochastic kernel."""
    nev = ev_timed.shape[0]
    for k in range(nev):
        if ev_timed[k]:
            te[k] = event_time(k, p.ctypes)
    for k in range(nev):
        if not ev_timed[k]:
            gprev[k] = event_condition(k, t, y.ctypes, p.ctypes)
    nf = _timed_at(event_apply, t, y, p, ev_timed, te, fired)
    if nf > 0:
        nf += _conditions(event_condition, event_apply, t, y, p, ev_timed, ev_dir, ev_once,
                          fired, gprev, gval, flag)
    return nf


@njit(cache=True, nogil=True, inline="always")
def _next_stop(t, t_out, ev_timed, fired, te):
    """The next hard stop after ``t``: the output time ``t_out`` or an earlier pending timed
    event."""
    t_stop = t_out
    for k in range(ev_timed.shape[0]):
        if ev_timed[k] and (not fired[k]) and te[k] > t and te[k] < t_stop:
            t_stop = te[k]
    return t_stop


@njit(cache=True, nogil=True, inline="always")
def total_propensity(a, nr):
    """``(a0, valid)``: ``a0 = Σ_{r<nr} a_r``; ``valid`` is False if some propensity is
    negative, NaN or infinite — tested without a branch per reaction (a negative value lowers
    the running minimum, a NaN or infinite one makes the sum non-finite)."""
    a0 = 0.0
    amin = 0.0
    for r in range(nr):
        ar = a[r]
        amin = min(amin, ar)
        a0 += ar
    return a0, amin >= 0.0 and a0 < math.inf


@njit(cache=True, nogil=True, inline="always")
def choose_reaction(a, nr, target):
    """Gillespie's choice: the first r with ``target < Σ_{s≤r} a_s`` (``target = U·a0``);
    rounding in the running sum can leave none, then the last reaction with ``a_r > 0``
    (−1 if there is none)."""
    acc = 0.0
    last = -1
    for r in range(nr):
        if a[r] > 0.0:
            last = r
            acc += a[r]
            if target < acc:
                return r
    return last


@njit(cache=True, nogil=True, inline="always")
def choose_reaction_where(a, nr, target, mask, member):
    """:func:`choose_reaction` among the reactions with ``mask[r] == member`` only."""
    acc = 0.0
    last = -1
    for r in range(nr):
        if mask[r] == member and a[r] > 0.0:
            last = r
            acc += a[r]
            if target < acc:
                return r
    return last


@njit(cache=True, nogil=True)
def _all_finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@njit(cache=True, nogil=True)
def _ssa_one(fns, t0, y0, p, t_eval, ST, ev_timed, ev_dir, ev_once, state, max_events, yout,
             stats, tprog):
    """Gillespie's direct method for one replicate; returns (status, time reached).

    ``ST[r, i]`` is the change of species i when reaction r fires (the transposed
    stoichiometry, so one firing reads one contiguous row).  ``tprog[0]`` tracks the time
    reached (for reports on exceptions)."""
    propensities, event_time, event_condition, event_apply = fns
    n = y0.shape[0]
    nr = ST.shape[0]
    nev = ev_timed.shape[0]
    nT = t_eval.shape[0]
    y = y0.copy()
    a = np.zeros(max(nr, 1))
    s = state.copy()
    te = np.full(max(nev, 1), math.inf)
    fired = np.zeros(max(nev, 1), dtype=np.bool_)
    gprev = np.ones(max(nev, 1))
    gval = np.ones(max(nev, 1))
    flag = np.zeros(max(nev, 1), dtype=np.bool_)
    t = t0
    tprog[0] = t0
    n_rx = 0
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
        # the next hard stop: an output time or a pending timed event
        t_stop = _next_stop(t, t_eval[j], ev_timed, fired, te)
        propensities(t, y.ctypes, p.ctypes, a.ctypes)
        a0, valid = total_propensity(a, nr)
        if not valid:
            status = _ST_BAD_PROPENSITY
            break
        tau = math.inf
        if a0 > 0.0:
            tau = -log_open(uniform_open(s)) / a0
        if t + tau < t_stop:
            if n_rx >= max_events:
                status = _ST_MAX_STEPS
                break
            t = t + tau
            chosen = choose_reaction(a, nr, uniform_open(s) * a0)
            for i in range(n):
                y[i] += ST[chosen, i]
            n_rx += 1
            if nev > 0:
                nf = _conditions(event_condition, event_apply, t, y, p, ev_timed, ev_dir, ev_once,
                                 fired, gprev, gval, flag)
                if nf > 0:
                    n_ev += nf
                    _round_counts(y, ST, s)
                    if not _all_finite(y):
                        status = _ST_NONFINITE
        else:
            # no firing before the stop: memorylessness lets us discard the truncated waiting
            # time and draw afresh after the stop
            t = t_stop
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
    return status, t


@njit(cache=True, nogil=True)
def _ssa_guarded(fns, i, t0, Y0, P, t_eval, ST, ev_timed, ev_dir, ev_once, states, max_events,
                 Yout, status, t_fail, stats):
    """Replicate i; an exception raised by model code becomes status 5 for it alone."""
    try:
        st, tf = _ssa_one(fns, t0, Y0[i], P[i], t_eval, ST, ev_timed, ev_dir, ev_once, states[i],
                          max_events, Yout[i], stats[i], t_fail[i:i + 1])
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
def ssa_batch_parallel(fns, t0, Y0, P, t_eval, ST, ev_timed, ev_dir, ev_once, states, max_events,
                       Yout, status, t_fail, stats):
    """All replicates in a prange loop (each from its own random stream)."""
    for i in prange(Y0.shape[0]):
        _ssa_guarded(fns, i, t0, Y0, P, t_eval, ST, ev_timed, ev_dir, ev_once, states, max_events,
                     Yout, status, t_fail, stats)


@njit(cache=True, nogil=True)
def ssa_batch_serial(fns, t0, Y0, P, t_eval, ST, ev_timed, ev_dir, ev_once, states, max_events,
                     Yout, status, t_fail, stats):
    """All replicates one after the other (same per-replicate kernel)."""
    for i in range(Y0.shape[0]):
        _ssa_guarded(fns, i, t0, Y0, P, t_eval, ST, ev_timed, ev_dir, ev_once, states, max_events,
                     Yout, status, t_fail, stats)
