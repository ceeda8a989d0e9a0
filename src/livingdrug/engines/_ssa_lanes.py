# mypy: ignore-errors
"""Numba driver of the lane-parallel exact SSA (see :mod:`livingdrug.engines.ssa`).

Gillespie's direct method (D. T. Gillespie, J. Phys. Chem. 81 (1977) 2340–2361) for ``L``
replicates at once.  Lane ``ln`` holds one replicate: its counts ``Y[i·L + ln]``, parameters
``P[j·L + ln]``, xoshiro256** state ``S[w·L + ln]``, time ``T[ln]`` (days), next output time
``TS[ln]`` and firing count ``NRX[ln]`` (lane-minor flat arrays, so a loop over ``ln`` reads
contiguous memory).  Each step calls the model's generated ``lane_step`` cfunc
(:mod:`livingdrug.engines.ssa_lanes`), which, branch-free over all lanes, computes the
propensities, draws ``U₁, U₂``, and commits the firing ``t += −ln U₁/a0``, reaction = first
``r`` with ``U₂·a0 < Σ_{s≤r} a_s`` in every lane where that is the whole story: the
propensities are valid, ``a0 > 0``, the firing comes before the lane's next output time, the
lane is under ``max_events`` and the running sum picks a reaction.  Every other lane (flag
``FF[ln] = 0``, typically once per output time) is left untouched and then advanced here by one
iteration of the scalar kernel's loop (:func:`livingdrug.engines._ssa_kernel._ssa_one`, same
draws from the same state, same arithmetic): record an output, fail with a status, or fire a
reaction.  A lane whose replicate has finished is refilled with the next replicate of its
block, so lanes stay busy until the block runs out.

A replicate's result depends only on its own inputs and stream, and the lane step performs
exactly the scalar kernel's operations (same propensity code, same sums, same logarithm
:func:`~livingdrug.engines._ssa_kernel.log_open`), so every replicate is bitwise identical to
the scalar kernel's result, whatever lane, block, chunk or thread simulates it.

Status codes are those of :mod:`livingdrug.engines.common`; stats columns: 0 reactions fired,
1 events fired (always 0: networks with events use the scalar kernel).
"""

import math

import numpy as np
from numba import njit, prange

from ..network import use_cache_dir_for_numba
from ._ssa_kernel import __file__ as _ssa_kernel_file

use_cache_dir_for_numba(__file__, depends_on=(_ssa_kernel_file,))  # before the decorators

from ._ssa_kernel import (  # noqa: E402 (after the cache setup, like the other kernels)
    choose_reaction,
    log_open,
    total_propensity,
    uniform_open,
)

_ST_OK = 0
_ST_MAX_STEPS = 1
_ST_BAD_PROPENSITY = 6


@njit(cache=True, nogil=True)
def _record(ln, L, t_eval, Y, T, TS, J, row, Yout):
    """Right-continuous output: if lane ``ln`` stands at its next output time, store its counts
    there.  Returns True when the replicate has no output left (it is finished)."""
    j = J[ln]
    nT = t_eval.shape[0]
    if j < nT and t_eval[j] == T[ln]:
        for i in range(Yout.shape[2]):
            Yout[row, j, i] = Y[i * L + ln]
        j += 1
        J[ln] = j
    if j < nT:
        TS[ln] = t_eval[j]
        return False
    return True


@njit(cache=True, nogil=True)
def _finish(ln, st, T, NRX, J, ROW, Yout, status, t_fail, stats):
    """End lane ``ln``'s replicate with status ``st`` (outputs not reached become NaN)."""
    row = ROW[ln]
    for jj in range(J[ln], Yout.shape[1]):
        for i in range(Yout.shape[2]):
            Yout[row, jj, i] = math.nan
    status[row] = st
    t_fail[row] = T[ln]
    stats[row, 0] = NRX[ln]
    stats[row, 1] = 0
    ROW[ln] = -1


@njit(cache=True, nogil=True)
def _fill(ln, nxt, hi, L, t0, Y0, P, t_eval, states, Y, Pl, S, T, TS, NRX, J, ROW, Yout,
          status, t_fail, stats):
    """Load the next replicate ``nxt`` (< ``hi``) into lane ``ln`` (recording an output at
    ``t0``); a replicate with nothing to simulate is finished at once and the next one loaded.
    With none left the lane goes idle (``TS = −∞``: the lane step never fires it).  Returns
    the next replicate to load."""
    while nxt < hi:
        row = nxt
        nxt += 1
        for i in range(Y0.shape[1]):
            Y[i * L + ln] = Y0[row, i]
        for i in range(P.shape[1]):
            Pl[i * L + ln] = P[row, i]
        for w in range(4):
            S[w * L + ln] = states[row, w]
        T[ln] = t0
        NRX[ln] = 0
        J[ln] = 0
        ROW[ln] = row
        if not _record(ln, L, t_eval, Y, T, TS, J, row, Yout):
            return nxt
        _finish(ln, _ST_OK, T, NRX, J, ROW, Yout, status, t_fail, stats)
    ROW[ln] = -1
    TS[ln] = -math.inf
    return nxt


@njit(cache=True, nogil=True)
def _slow(propensities, ln, L, ST, t_eval, max_events, Y, Pl, S, T, TS, NRX, J, ROW, Yout,
          status, t_fail, stats, y, p, a, s):
    """One iteration of the scalar kernel's loop for lane ``ln`` (whose lane step did not
    commit).  Returns True when its replicate has finished."""
    k = y.shape[0]
    nr = ST.shape[0]
    row = ROW[ln]
    for i in range(k):
        y[i] = Y[i * L + ln]
    for i in range(p.shape[0]):
        p[i] = Pl[i * L + ln]
    for w in range(4):
        s[w] = S[w * L + ln]
    t = T[ln]
    propensities(t, y.ctypes, p.ctypes, a.ctypes)
    a0, valid = total_propensity(a, nr)
    if not valid:
        _finish(ln, _ST_BAD_PROPENSITY, T, NRX, J, ROW, Yout, status, t_fail, stats)
        return True
    tau = math.inf
    if a0 > 0.0:
        tau = -log_open(uniform_open(s)) / a0
    t_stop = TS[ln]
    if t + tau < t_stop:
        if NRX[ln] >= max_events:
            _finish(ln, _ST_MAX_STEPS, T, NRX, J, ROW, Yout, status, t_fail, stats)
            return True
        t = t + tau
        chosen = choose_reaction(a, nr, uniform_open(s) * a0)
        for i in range(k):
            Y[i * L + ln] = y[i] + ST[chosen, i]
        NRX[ln] += 1
    else:
        t = t_stop  # no firing before the output time: draw afresh after it
    for w in range(4):
        S[w * L + ln] = s[w]
    T[ln] = t
    if t == t_stop and _record(ln, L, t_eval, Y, T, TS, J, row, Yout):
        _finish(ln, _ST_OK, T, NRX, J, ROW, Yout, status, t_fail, stats)
        return True
    return False


@njit(cache=True, nogil=True)
def _block(fns, L, lo, hi, t0, Y0, P, t_eval, ST, states, max_events, Yout, status, t_fail,
           stats):
    """Replicates ``lo … hi−1`` through ``L`` lanes until all have finished."""
    lane_step, propensities = fns
    k = Y0.shape[1]
    m = P.shape[1]
    Y = np.zeros(max(k, 1) * L)
    Pl = np.zeros(max(m, 1) * L)
    S = np.zeros(4 * L, dtype=np.uint64)
    T = np.zeros(L)
    TS = np.full(L, -math.inf)
    NRX = np.zeros(L, dtype=np.int64)
    FF = np.zeros(L, dtype=np.int64)
    J = np.zeros(L, dtype=np.int64)
    ROW = np.full(L, -1, dtype=np.int64)
    y = np.zeros(max(k, 1))
    p = np.zeros(max(m, 1))
    a = np.zeros(ST.shape[0])
    s = np.zeros(4, dtype=np.uint64)
    nxt = lo
    for ln in range(L):
        nxt = _fill(ln, nxt, hi, L, t0, Y0, P, t_eval, states, Y, Pl, S, T, TS, NRX, J, ROW,
                    Yout, status, t_fail, stats)
    active = 0
    for ln in range(L):
        if ROW[ln] >= 0:
            active += 1
    while active > 0:
        nslow = lane_step(Y.ctypes, Pl.ctypes, S.ctypes, T.ctypes, TS.ctypes, NRX.ctypes,
                          FF.ctypes, max_events)
        if nslow == 0:
            continue
        for ln in range(L):
            if FF[ln] != 0 or ROW[ln] < 0:
                continue
            if _slow(propensities, ln, L, ST, t_eval, max_events, Y, Pl, S, T, TS, NRX, J, ROW,
                     Yout, status, t_fail, stats, y, p, a, s):
                nxt = _fill(ln, nxt, hi, L, t0, Y0, P, t_eval, states, Y, Pl, S, T, TS, NRX, J,
                            ROW, Yout, status, t_fail, stats)
                if ROW[ln] < 0:
                    active -= 1


@njit(cache=True, nogil=True, parallel=True)
def ssa_lanes_parallel(fns, L, nblocks, t0, Y0, P, t_eval, ST, states, max_events, Yout, status,
                       t_fail, stats):
    """Replicates split into ``nblocks`` contiguous blocks, simulated in a prange loop."""
    n = Y0.shape[0]
    for b in prange(nblocks):
        _block(fns, L, b * n // nblocks, (b + 1) * n // nblocks, t0, Y0, P, t_eval, ST, states,
               max_events, Yout, status, t_fail, stats)


@njit(cache=True, nogil=True)
def ssa_lanes_serial(fns, L, nblocks, t0, Y0, P, t_eval, ST, states, max_events, Yout, status,
                     t_fail, stats):
    """All replicates through one set of lanes (``nblocks`` is ignored)."""
    _block(fns, L, 0, Y0.shape[0], t0, Y0, P, t_eval, ST, states, max_events, Yout, status,
           t_fail, stats)
