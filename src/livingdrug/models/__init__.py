"""The model library: a registry of named model builders.

>>> from livingdrug.models import get_model
>>> net = get_model("car_t").build()            # doctest: +SKIP

``MODELS`` maps a name to a :class:`ModelSpec` whose ``build(**options)`` returns a
:class:`~livingdrug.network.Network`; ``options`` holds the default options.
:func:`reference_solve` is a small scipy (Radau) integrator with event handling, used by the
model tests as an engine-independent reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ..network import Network, compile_network
from . import car_t
from .published import cartmath, kimmel2021, stein2019

__all__ = ["ModelSpec", "MODELS", "get_model", "reference_solve"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``build(**options) -> Network`` with default ``options``."""

    name: str
    title: str
    reference: str
    build: Callable[..., Network]
    options: Mapping[str, Any] = field(default_factory=dict)

    def network(self, **options: Any) -> Network:
        """``build`` with the default options updated by ``options``."""
        return self.build(**{**self.options, **options})


MODELS: dict[str, ModelSpec] = {
    "car_t": ModelSpec(
        "car_t",
        "CD19 CAR-T in relapsed B-ALL (livingdrug default)",
        "livingdrug default model; mechanisms after Stein et al. 2019 and Kimmel et al. 2021",
        car_t.build,
        MappingProxyType({"lymphodepletion": True}),
    ),
    "stein2019": ModelSpec(
        "stein2019",
        "Tisagenlecleucel cellular kinetics",
        stein2019.REFERENCE,
        stein2019.build,
        MappingProxyType({}),
    ),
    "kimmel2021": ModelSpec(
        "kimmel2021",
        "T-cell competition and CAR-T in large B-cell lymphoma",
        kimmel2021.REFERENCE,
        kimmel2021.build,
        MappingProxyType({}),
    ),
    "cartmath": ModelSpec(
        "cartmath",
        "CARTmath effector/memory CAR-T against a tumour (mouse)",
        cartmath.REFERENCE,
        cartmath.build,
        MappingProxyType({"variant": "hdlm2"}),
    ),
}


def get_model(name: str) -> ModelSpec:
    """The registered model called ``name``; ``KeyError`` listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {sorted(MODELS)}") from None


def reference_solve(
    net: Network,
    t_span: tuple[float, float],
    t_eval: np.ndarray,
    *,
    params: np.ndarray | None = None,
    y0: np.ndarray | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-6,
    clip_negative: bool = False,
) -> np.ndarray:
    """Integrate ``net`` with scipy's Radau, applying timed and condition events.

    Returns ``Y[len(t_eval), n_species]``.  Timed events split the interval (an event at
    ``t`` acts on the state at ``t`` before the output at ``t`` is taken; an event exactly at
    ``t_span[0]`` is applied to ``y0``).  Condition events stop the integrator at the zero
    crossing (scipy's root finding), are applied, and integration restarts.

    With ``clip_negative`` the right-hand side is evaluated at the positive part of
    non-negative species (off by default: the projection is non-smooth and can stall Radau's
    Newton iteration on very stiff states, e.g. CARTmath Raji after the tumour escapes).  Round-off
    in the implicit solve can push an exactly-zero population (e.g. no CAR-T yet) slightly
    negative; a proliferating species with a negative value would then "grow" exponentially
    negative (its per-cell rate is positive), which this projection prevents.  For tests and
    checks only: the real engine is :mod:`livingdrug.engines.ode`.
    """
    from scipy.integrate import solve_ivp

    c = compile_network(net)
    p = net.parameter_vector() if params is None else np.asarray(params, dtype=float)
    y = (net.initial_state() if y0 is None else np.asarray(y0, dtype=float)).copy()
    n_ev = len(net.events)
    t0, t1 = float(t_span[0]), float(t_span[1])
    t_eval = np.asarray(t_eval, dtype=float)
    out = np.full((len(t_eval), len(y)), np.nan)
    timed = sorted(
        (float(c.event_time(k, p)), k) for k in range(n_ev) if c.event_is_timed[k]
    )
    timed = [(te, k) for te, k in timed if t0 <= te <= t1]
    fired = np.zeros(n_ev, dtype=bool)
    cond = [k for k in range(n_ev) if not c.event_is_timed[k]]
    dy = np.empty(len(y))
    J = np.empty((len(y), len(y)))

    nonneg = np.array([s.nonnegative for s in net.species], dtype=bool)

    def pos(yy: np.ndarray) -> np.ndarray:
        if not clip_negative:
            return yy
        return np.where(nonneg & (yy < 0.0), 0.0, yy)

    def f(t: float, yy: np.ndarray) -> np.ndarray:
        c.rhs(t, pos(yy), p, dy)
        return dy.copy()

    def jac(t: float, yy: np.ndarray) -> np.ndarray:
        c.jac(t, pos(yy), p, J)
        return J.copy()

    def make_event(k: int) -> Callable[[float, np.ndarray], float]:
        def ev(t: float, yy: np.ndarray) -> float:
            return float(c.event_condition(k, t, yy, p))

        ev.terminal = True  # type: ignore[attr-defined]
        ev.direction = float(c.event_direction[k])  # type: ignore[attr-defined]
        return ev

    t = t0
    ti = 0
    while True:
        while ti < len(timed) and timed[ti][0] <= t:
            k = timed[ti][1]
            if not (c.event_once[k] and fired[k]):
                c.event_apply(k, t, y, p)
                fired[k] = True
            ti += 1
        t_next = timed[ti][0] if ti < len(timed) else t1
        mask = (t_eval >= t) & (t_eval < t_next) if t_next < t1 else (t_eval >= t) & (t_eval <= t1)
        if t_next <= t:
            continue
        evs = [make_event(k) for k in cond if not (c.event_once[k] and fired[k])]
        sol = solve_ivp(f, (t, t_next), y, method="Radau", jac=jac, rtol=rtol, atol=atol,
                        dense_output=True, events=evs or None)
        if not sol.success:
            raise RuntimeError(f"reference_solve failed at t={t}: {sol.message}")
        t_end = float(sol.t[-1])
        sel = mask & (t_eval <= t_end)
        if sel.any():
            out[sel] = sol.sol(t_eval[sel]).T
        y = sol.y[:, -1].copy()
        if sol.status == 1:  # a condition event
            live = [k for k in cond if not (c.event_once[k] and fired[k])]
            for j, k in enumerate(live):
                if len(sol.t_events[j]) and sol.t_events[j][-1] == t_end:
                    c.event_apply(k, t_end, y, p)
                    fired[k] = True
            t = t_end
            continue
        t = t_next
        if t >= t1:
            break
    return out
