"""Approximate stochastic engine: explicit tau-leaping on a :class:`Network`.

Front door (same conventions as :func:`~livingdrug.engines.ssa.solve_ssa`)::

    sol = solve_tau(compiled, y0, P, t_eval, seed=1, replicates=1000, epsilon=0.03)
    sol.y[n, T, k], sol.status[n], sol.message[n], sol.stats, sol.settings

Species are counts and rate laws are propensities, exactly as in the SSA (including the
stochastic rounding of counts that an event leaves non-integer); the stoichiometry
must be integer-valued.  Tau-leaping fires many reactions per step, so it is much faster than
the SSA when populations are large, at the price of a bias controlled by ``epsilon``.

Algorithm
---------
Explicit tau-leaping with the step selection of Cao, Gillespie & Petzold, "Efficient step size
selection for the tau-leaping simulation method", J. Chem. Phys. 124 (2006) 044109, and the
negative-population guard of Cao, Gillespie & Petzold, "Avoiding negative populations in
explicit Poisson tau-leaping", J. Chem. Phys. 122 (2005) 054104.  At each step, with
propensities ``a_r`` and ``a0 = Σ a_r``:

1. A reaction with ``a_r > 0`` is *critical* if it can exhaust one of its reactants (species
   with a negative stoichiometric coefficient ``ν_ir``) within ``n_critical`` firings:
   ``min_i ⌊x_i / |ν_ir|⌋ < n_critical``.
2. Over the non-critical reactions ``μ_i = Σ ν_ir a_r`` and ``σ²_i = Σ ν_ir² a_r``;
   ``τ' = min_i min(max(ε|x_i|, 1)/|μ_i|, max(ε|x_i|, 1)²/σ²_i)`` over the species ``i``
   that occur in some rate law (the species that can move a propensity; a pure product is not
   bounded).  This is the rule with ``g_i = 1``: it bounds the relative change of each such
   species by ε, so a propensity of order ``g`` in one species changes by about ``g·ε``.
3. If ``τ' < 10/a0`` leaping is not worth it: the next 100 steps are exact Gillespie
   direct-method steps (the rule of Cao et al. 2006), after which step 1 is taken again.
4. Otherwise ``τ'' ~ Exp(Σ_critical a_r)``.  If ``τ' < τ''`` the leap is ``τ'`` and no critical
   reaction fires; else the leap is ``τ''`` and exactly one critical reaction fires, chosen with
   probability ``a_r / Σ_critical a_r``.  Every non-critical reaction fires
   ``Poisson(a_r τ)`` times.
5. If the leap would make a non-negative population negative it is rejected and ``τ'``
   halved (back to 4); if ``τ'`` falls below ``10/a0``, exact steps as in 3.

Poisson variates are drawn from the row's own uniform stream: inversion for means below 10,
Hörmann's PTRS transformed rejection (Insurance: Math. Econ. 12 (1993) 39–45) above.
Rate laws with an explicit ``t`` are held constant over a leap (as over an SSA waiting time).

Events and outputs
------------------
As in the SSA: a leap (or waiting time) that would cross an output or timed-event time is
truncated there (no critical reaction fires in a truncated leap; the non-critical ones fire
``Poisson(a_r τ)`` times over the truncated ``τ``), so timed events fire exactly at their time.
Condition events are checked after every leap and every exact step, so a crossing is detected
at the end of the leap in which it happened (with the state then, not at the crossing).

Randomness, failures
--------------------
The streams, the bitwise chunk/thread invariance and the per-row statuses are those of
:func:`~livingdrug.engines.ssa.solve_ssa`; ``max_steps`` bounds leaps plus exact steps per row.
Stats: ``reactions`` fired, ``events`` fired, ``leaps``, ``ssa_steps`` and ``rejected`` leaps,
summed over rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from ..network import CompiledNetwork
from . import _tau_kernel
from .common import OdeSolution
from .ssa import _KERNEL_SOURCE, _is_int, _prepare, base_settings, run_batch

__all__ = ["solve_tau", "KERNEL_HASH"]

_STATS_NAMES = ("reactions", "events", "leaps", "ssa_steps", "rejected")

#: SHA-256 (first 16 hex digits) of the tau and SSA kernel sources (the tau kernel reuses the
#: SSA's generator and event helpers)
KERNEL_HASH = hashlib.sha256(
    (
        _KERNEL_SOURCE
        + Path(_tau_kernel.__file__).read_text(encoding="utf-8")
    ).encode()
).hexdigest()[:16]


def _species_in_rates(compiled: CompiledNetwork) -> np.ndarray:
    """``bool[k]``: species k occurs in some reaction's rate law."""
    net = compiled.network
    free: set[Any] = set()
    for expr in net.rate_vector():
        free |= {str(s) for s in sp.sympify(expr).free_symbols}
    return np.array([name in free for name in net.species_names], dtype=np.bool_)


def solve_tau(
    compiled: CompiledNetwork,
    y0: np.ndarray,
    P: np.ndarray,
    t_eval: np.ndarray,
    *,
    seed: int,
    replicates: int | None = None,
    replicate_offset: int = 0,
    t0: float | None = None,
    epsilon: float = 0.03,
    n_critical: int = 10,
    max_steps: int = 10**7,
    parallel: bool = True,
) -> OdeSolution:
    """Simulate n independent tau-leaping realisations and report the counts at ``t_eval``.

    Parameters are those of :func:`~livingdrug.engines.ssa.solve_ssa`, plus

    epsilon:
        Relative-change bound ε of the step selection, in (0, 1); smaller is more accurate
        and slower (ε → 0 approaches the exact SSA).
    n_critical:
        A reaction that can exhaust a reactant within this many firings is critical (fires
        at most once per leap, with exact timing); a non-negative integer.
    max_steps:
        Maximum number of leaps plus exact steps per row.

    Returns
    -------
    OdeSolution
        As the SSA's, with stats ``reactions``, ``events``, ``leaps``, ``ssa_steps`` and
        ``rejected`` (summed over rows).

    Raises
    ------
    ValueError
        For malformed arguments.  A row's failure is never raised: see ``status``.
    """
    if not _is_int(max_steps) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer; got {max_steps!r}")
    if not _is_int(n_critical) or n_critical < 0:
        raise ValueError(f"n_critical must be a non-negative integer; got {n_critical!r}")
    if isinstance(epsilon, (bool, np.bool_)) or not isinstance(
        epsilon, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"epsilon must be a number in (0, 1); got {epsilon!r}")
    if not (0.0 < float(epsilon) < 1.0):
        raise ValueError(f"epsilon must be in (0, 1); got {epsilon!r}")
    Y0, PP, te, t_start, ST, n = _prepare(
        compiled, y0, P, t_eval, seed, replicates, replicate_offset, t0,
        engine="tau-leaping engine",
    )
    settings = base_settings(
        compiled, engine="livingdrug.engines.tau",
        method="explicit tau-leaping (Cao, Gillespie & Petzold 2005, 2006)",
        kernel_sha256=KERNEL_HASH, seed=seed, replicate_offset=replicate_offset, n=n,
        t_start=t_start, parallel=parallel,
    )
    settings.update({
        "poisson": "inversion below mean 10, PTRS (Hörmann 1993) above",
        "epsilon": float(epsilon),
        "n_critical": int(n_critical),
        "ssa_switch": f"{_tau_kernel.SSA_BURST} exact steps when tau' < "
        f"{_tau_kernel.SSA_SWITCH:g}/a0",
        "max_steps": int(max_steps),
    })
    return run_batch(
        compiled, (_tau_kernel.tau_batch_parallel, _tau_kernel.tau_batch_serial),
        parallel=parallel, t_start=t_start, Y0=Y0, P=PP, t_eval=te,
        model_arrays=(ST, _species_in_rates(compiled)),
        options=(float(epsilon), float(n_critical), int(max_steps)), seed=seed,
        replicate_offset=replicate_offset, stats_names=_STATS_NAMES,
        limit=("maximum number of steps reached", f"max_steps = {int(max_steps)}"),
        settings=settings,
    )
