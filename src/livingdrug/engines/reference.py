"""Reference solver: a plain loop over patients with :func:`scipy.integrate.solve_ivp`.

Slow and simple on purpose: it is the yardstick the batched engine and the SBML export are
checked against (tight tolerances, scipy's Radau by default).

Event semantics (the same as the batched engine's):

* a timed event ``k`` (``compiled.event_time(k, p)`` finite) fires when ``t0 <= time <= t_end``
  (``t_end`` the last output time); integration stops exactly at it, the event is applied with
  ``compiled.event_apply`` and integration restarts.  Several events at one time fire in index
  order; an event exactly at ``t0`` fires before anything else;
* a condition event fires when ``compiled.event_condition(k, t, y, p)`` crosses zero in the
  direction ``compiled.event_direction[k]`` (−1 downward, +1 upward, 0 either); the crossing is
  located by ``solve_ivp`` (terminal event), the event is applied and integration restarts.
  A condition that already holds at ``t0`` does not fire (it must cross).  A jump caused by
  another event that carries a condition across zero (e.g. lymphodepletion pushing the tumour
  below the extinction threshold) fires it at that time, after the event that caused it —
  the SBML semantics of a trigger becoming true.  ``compiled.event_once[k]`` events fire at most
  once;
* an output at an event time records the state *after* the event.

To keep the reference accurate the integration is restarted at every output time (no dense
output interpolation); the last step size is reused as the first step of the next segment.

Failures are data: a patient whose solve fails gets a status code and a message, NaN after
the failure, and the loop goes on.
"""

from __future__ import annotations

import math
import time as _time
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from ..network import CompiledNetwork, Network, compile_network
from .common import (
    STATUS_MESSAGES,
    STATUS_NONFINITE,
    STATUS_OK,
    STATUS_SINGULAR,
    STATUS_STEP_TOO_SMALL,
    OdeSolution,
)

__all__ = ["solve_reference", "reference_trajectory"]

_IMPLICIT = {"Radau", "BDF", "LSODA"}
_MAX_CASCADE = 100


class _Failure(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def solve_reference(
    compiled: CompiledNetwork,
    y0: np.ndarray,
    P: np.ndarray,
    t_eval: np.ndarray,
    *,
    t0: float | None = None,
    method: str = "Radau",
    rtol: float = 1e-10,
    atol: float | np.ndarray = 1e-12,
) -> OdeSolution:
    """Solve every patient with ``scipy.integrate.solve_ivp`` (see the module docstring).

    ``y0[n, k]`` (or ``[k]``, shared), ``P[n, m]`` (or ``[m]``), ``t_eval[T]`` non-decreasing;
    ``t0`` defaults to ``t_eval[0]`` and must not be after it.  ``atol`` is a scalar or
    per-species array.  Returns ``OdeSolution`` with ``y[n, T, k]``.
    """
    net = compiled.network
    k_sp = len(net.species)
    m_par = len(net.params)
    t_eval = np.asarray(t_eval, dtype=float).reshape(-1)
    if t_eval.size == 0:
        raise ValueError("t_eval is empty")
    if np.any(np.diff(t_eval) < 0) or not np.all(np.isfinite(t_eval)):
        raise ValueError("t_eval must be finite and non-decreasing")
    y0 = np.atleast_2d(np.asarray(y0, dtype=float))
    P = np.atleast_2d(np.asarray(P, dtype=float))
    n = max(y0.shape[0], P.shape[0])
    if y0.shape[0] == 1 and n > 1:
        y0 = np.repeat(y0, n, axis=0)
    if P.shape[0] == 1 and n > 1:
        P = np.repeat(P, n, axis=0)
    if y0.shape != (n, k_sp):
        raise ValueError(f"y0 has shape {y0.shape}; expected ({n}, {k_sp})")
    if P.shape != (n, m_par):
        raise ValueError(f"P has shape {P.shape}; expected ({n}, {m_par})")
    start = float(t_eval[0]) if t0 is None else float(t0)
    if start > t_eval[0]:
        raise ValueError(f"t0 = {start} is after the first output time {t_eval[0]}")
    atol_arr = np.broadcast_to(np.asarray(atol, dtype=float), (k_sp,)).copy()

    Y = np.full((n, t_eval.size, k_sp), np.nan)
    status = np.zeros(n, dtype=np.int64)
    messages: list[str] = []
    stats: dict[str, Any] = {"nfev": 0, "njev": 0, "nlu": 0, "events": 0, "segments": 0}
    wall = _time.perf_counter()
    for i in range(n):
        try:
            _solve_one(compiled, y0[i].copy(), np.ascontiguousarray(P[i]), t_eval, start, method,
                       rtol, atol_arr, Y[i], stats)
            messages.append(STATUS_MESSAGES[STATUS_OK])
        except _Failure as f:
            status[i] = f.status
            messages.append(f.message)
        except np.linalg.LinAlgError as exc:
            status[i] = STATUS_SINGULAR
            messages.append(f"{STATUS_MESSAGES[STATUS_SINGULAR]}: {exc}")
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            status[i] = STATUS_NONFINITE
            messages.append(f"{STATUS_MESSAGES[STATUS_NONFINITE]}: {type(exc).__name__}: {exc}")
    stats["wall_s"] = _time.perf_counter() - wall
    settings = {"engine": "reference", "method": method, "rtol": float(rtol),
                "atol": atol_arr.tolist(), "t0": start}
    return OdeSolution(t=t_eval.copy(), y=Y, status=status, message=tuple(messages), stats=stats,
                       settings=settings)


def _solve_one(
    compiled: CompiledNetwork,
    y: np.ndarray,
    p: np.ndarray,
    t_eval: np.ndarray,
    t0: float,
    method: str,
    rtol: float,
    atol: np.ndarray,
    out: np.ndarray,
    stats: dict[str, Any],
) -> None:
    net = compiled.network
    k_sp = len(net.species)
    n_ev = len(net.events)
    t_end = float(t_eval[-1])
    rhs_c, jac_c = compiled.rhs, compiled.jac

    def f(t: float, yy: np.ndarray) -> np.ndarray:
        dy = np.empty(k_sp)
        rhs_c(t, yy, p, dy)
        return dy

    def jac(t: float, yy: np.ndarray) -> np.ndarray:
        J = np.empty((k_sp, k_sp))
        jac_c(t, yy, p, J)
        return J

    timed = sorted(
        (float(compiled.event_time(k, p)), k)
        for k in range(n_ev)
        if compiled.event_is_timed[k]
    )
    timed = [(tk, k) for tk, k in timed if math.isfinite(tk) and t0 <= tk <= t_end]
    cond_ids = [k for k in range(n_ev) if not compiled.event_is_timed[k]]
    fired_once: set[int] = set()

    def g(k: int, t: float, yy: np.ndarray) -> float:
        return float(compiled.event_condition(k, t, yy, p))

    def apply(k: int, t: float) -> None:
        before = {c: g(c, t, y) for c in cond_ids if c not in fired_once and c != k}
        compiled.event_apply(k, t, y, p)
        stats["events"] += 1
        if compiled.event_once[k]:
            fired_once.add(k)
        cascade(t, before, 0)

    def crossed(c: int, a: float, b: float) -> bool:
        d = int(compiled.event_direction[c])
        down = a >= 0.0 > b
        up = a <= 0.0 < b
        return down if d < 0 else up if d > 0 else (down or up)

    def cascade(t: float, before: dict[int, float], depth: int) -> None:
        """Fire condition events whose condition the last jump carried across zero."""
        if depth > _MAX_CASCADE:
            raise _Failure(STATUS_NONFINITE, f"events keep triggering each other at t={t}")
        for c in sorted(before):
            if c in fired_once:
                continue
            if crossed(c, before[c], g(c, t, y)):
                nxt = {c2: g(c2, t, y) for c2 in cond_ids if c2 not in fired_once and c2 != c}
                compiled.event_apply(c, t, y, p)
                stats["events"] += 1
                if compiled.event_once[c]:
                    fired_once.add(c)
                cascade(t, nxt, depth + 1)

    t = t0
    ti = 0  # next timed event
    oi = 0  # next output
    # events at the start time, then outputs at the start time
    while ti < len(timed) and timed[ti][0] <= t:
        apply(timed[ti][1], t)
        ti += 1
    while oi < t_eval.size and t_eval[oi] <= t:
        out[oi] = y
        oi += 1
    h_last: float | None = None
    muted: set[int] = set()  # condition events sitting exactly on zero at a restart
    while oi < t_eval.size:
        stop = float(t_eval[oi])
        if ti < len(timed):
            stop = min(stop, timed[ti][0])
        if stop > t:
            active = [c for c in cond_ids if c not in fired_once and c not in muted]
            evs = []
            for c in active:
                fn = _make_event(g, c, int(compiled.event_direction[c]))
                evs.append(fn)
            kwargs: dict[str, Any] = {}
            if method in _IMPLICIT:
                kwargs["jac"] = jac
            if h_last is not None:
                kwargs["first_step"] = min(h_last, stop - t)
            sol = solve_ivp(f, (t, stop), y, method=method, rtol=rtol, atol=atol,
                            events=evs or None, **kwargs)
            stats["nfev"] += int(sol.nfev)
            stats["njev"] += int(sol.njev)
            stats["nlu"] += int(sol.nlu)
            stats["segments"] += 1
            if sol.status == -1:
                tt = float(sol.t[-1]) if sol.t.size else t
                bad = sol.y.size and not np.all(np.isfinite(sol.y[:, -1]))
                code = STATUS_NONFINITE if bad else STATUS_STEP_TOO_SMALL
                raise _Failure(code, f"{STATUS_MESSAGES[code]} at t={tt:g} (scipy: {sol.message})")
            if sol.t.size > 1:
                h_last = float(sol.t[-1] - sol.t[-2]) or h_last
            y[:] = sol.y[:, -1]
            if not np.all(np.isfinite(y)):
                raise _Failure(STATUS_NONFINITE, f"{STATUS_MESSAGES[STATUS_NONFINITE]} at t={sol.t[-1]:g}")
            muted = set()
            if sol.status == 1:  # a condition event ended the segment
                t = float(sol.t[-1])
                hits = [c for c, te in zip(active, sol.t_events, strict=True) if te.size and te[-1] == t]
                for c in sorted(hits):
                    if c in fired_once:
                        continue
                    apply(c, t)
                for c in cond_ids:
                    if c not in fired_once and g(c, t, y) == 0.0:
                        muted.add(c)
                # outputs exactly at this time see the state after the event
                while oi < t_eval.size and t_eval[oi] <= t:
                    out[oi] = y
                    oi += 1
                continue
            t = stop
        while ti < len(timed) and timed[ti][0] <= t:
            apply(timed[ti][1], t)
            ti += 1
        while oi < t_eval.size and t_eval[oi] <= t:
            out[oi] = y
            oi += 1


def _make_event(g: Any, c: int, direction: int) -> Any:
    def fn(t: float, yy: np.ndarray) -> float:
        return g(c, t, yy)

    fn.terminal = True  # type: ignore[attr-defined]
    fn.direction = float(direction)  # type: ignore[attr-defined]
    return fn


def reference_trajectory(
    net: Network,
    t_span: tuple[float, float],
    t_eval: np.ndarray,
    *,
    params: np.ndarray | None = None,
    y0: np.ndarray | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-6,
) -> np.ndarray:
    """``Y[len(t_eval), n_species]`` of one patient of ``net`` from ``t_span[0]`` (defaults:
    the network's parameters and initial state), by :func:`solve_reference`.  For tests and
    checks that want an engine-independent answer; raises if the solve fails."""
    p = net.parameter_vector() if params is None else np.asarray(params, dtype=float)
    y = net.initial_state() if y0 is None else np.asarray(y0, dtype=float)
    sol = solve_reference(compile_network(net), y, p, np.asarray(t_eval, dtype=float),
                          t0=float(t_span[0]), rtol=rtol, atol=atol)
    if int(sol.status[0]) != 0:
        raise RuntimeError(f"reference solve failed: {sol.message[0]}")
    return sol.y[0]
