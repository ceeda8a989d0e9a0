r"""The hybrid engine: large populations deterministic, small ones exact.

Front door (same conventions as :func:`~livingdrug.engines.ssa.solve_ssa`)::

    sol = solve_hybrid(compiled, y0, P, t_eval, seed=1, replicates=1000, threshold=100)
    sol.y[n, T, k], sol.status[n], sol.message[n], sol.stats, sol.settings

Why
---
A patient starts with 10¹⁰–10¹² leukaemic cells and receives 10⁸ CAR-T cells: an exact
simulation would fire ~10¹⁴ reactions.  Yet whether the *last* leukaemic cells die out is a
matter of chance (Kimmel GJ, Locke FL, Altrock PM 2021 Proc R Soc B 288:20210229, who treat the
tumour stochastically below about 100 cells).  This engine integrates every large population as
an ODE and simulates every small one cell by cell, switching automatically.

Method (dynamic partitioning with an integrated stochastic clock)
-----------------------------------------------------------------
Species are counts and rate laws propensities, as in the SSA.  At any time each species is
*continuous* or *discrete*:

* a continuous species falling below ``threshold`` becomes discrete; its (real) value is
  rounded stochastically, ``⌊x⌋ + Bernoulli(x − ⌊x⌋)``, which keeps its mean;
* a discrete species reaching ``2 × threshold`` becomes continuous again (hysteresis, so that
  a population hovering near the threshold does not switch back and forth);
* a species that no reaction changes is left as it is.
* a species the model declares ODE-only (``network.meta["ode_only_species"]``: the cytokine
  and drug concentrations of :mod:`livingdrug.models.cytokines`) is always continuous,
  whatever its value (a concentration in pg/mL is not a number of cells; the exact and
  tau-leaping engines refuse such models).

A reaction is *stochastic* if it changes at least one discrete species, otherwise
*deterministic*.  Between two stochastic firings the continuous species follow

.. math::  \dot y = \sum_{r\ \text{deterministic}} \nu_r\, a_r(t, y), \qquad
           \dot\Lambda = \sum_{r\ \text{stochastic}} a_r(t, y)

(discrete species are constant), integrated with the Dormand–Prince 5(4) pair under the
usual error control (``rtol``, ``atol`` on the continuous species; an absolute ``rtol`` on Λ).
The next stochastic firing happens when the integrated hazard Λ reaches ``ξ ~ Exp(1)``: the
step in which Λ crosses ξ is located on the cubic Hermite interpolant of Λ and re-taken to
that time, where reaction ``r`` fires with probability ``a_r / Σ_stochastic a_s``; then
Λ ← 0 and a fresh ξ is drawn.  This is the random-time-change representation of a
time-inhomogeneous Poisson process (the "next reaction" hybrid of Haseltine EL & Rawlings JB
2002 J Chem Phys 117:6959 and Salis H & Kaizu Y 2005 J Chem Phys 122:054103).  Hence:

* ``threshold = 0``: nothing is discrete and the engine is a deterministic ODE solver;
* ``threshold = inf``: everything is discrete, no species moves continuously, the
  propensities are constant between firings and the waiting time ``(ξ − Λ)/a_s`` is exact:
  the engine is Gillespie's direct method.

Continuous species never go negative (a step that would push one below zero is rejected and
halved).

Events and outputs
------------------
Timed events fire exactly at their time (steps stop there).  A condition event is checked
after every step and firing; a crossing by the continuous state inside a step is located by
bisection on the step length (to ~1e-16 of the step), a crossing caused by a firing or event
fires at once (all conditions evaluated before any assignment, as in the SSA).  Discrete
values that an event makes non-integer are rounded stochastically.  Outputs are
right-continuous, the state after every firing and event at that time.

Randomness, failures
--------------------
The streams, the bitwise chunk/thread invariance and the per-row statuses are those of
:func:`~livingdrug.engines.ssa.solve_ssa`.  ``max_events`` bounds stochastic firings and
``max_steps`` accepted plus rejected ODE steps per row.  Stats: ``reactions`` fired
stochastically, ``events``, ``steps`` and ``rejected`` ODE steps and ``switches`` of the
partition, summed over rows.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..network import CompiledNetwork
from . import _hybrid_kernel
from .common import OdeSolution
from .ssa import _KERNEL_SOURCE, _is_int, _prepare, base_settings, run_batch

__all__ = ["solve_hybrid", "KERNEL_HASH", "DEFAULT_THRESHOLD"]

_STATS_NAMES = ("reactions", "events", "steps", "rejected", "switches")

#: below this many cells a population is simulated cell by cell (Kimmel et al. 2021)
DEFAULT_THRESHOLD = 100.0

#: SHA-256 (first 16 hex digits) of the hybrid and SSA kernel sources
KERNEL_HASH = hashlib.sha256(
    (_KERNEL_SOURCE + Path(_hybrid_kernel.__file__).read_text(encoding="utf-8")).encode()
).hexdigest()[:16]


def _csr(ST: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compressed rows of the transposed stoichiometry ``ST[r, i]``."""
    ptr = np.zeros(ST.shape[0] + 1, dtype=np.int64)
    idx: list[int] = []
    val: list[float] = []
    for r in range(ST.shape[0]):
        nz = np.flatnonzero(ST[r])
        idx.extend(int(i) for i in nz)
        val.extend(float(ST[r, i]) for i in nz)
        ptr[r + 1] = len(idx)
    return ptr, np.array(idx, dtype=np.int64), np.array(val, dtype=np.float64)


def _positive(name: str, value: Any, allow_zero: bool, allow_inf: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"{name} must be a number; got {value!r}")
    v = float(value)
    if math.isnan(v) or v < 0 or (v == 0 and not allow_zero) or (math.isinf(v) and not allow_inf):
        what = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {what} number; got {value!r}")
    return v


def solve_hybrid(
    compiled: CompiledNetwork,
    y0: np.ndarray,
    P: np.ndarray,
    t_eval: np.ndarray,
    *,
    seed: int,
    replicates: int | None = None,
    replicate_offset: int = 0,
    t0: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_events: int = 10**8,
    max_steps: int = 10**7,
    parallel: bool = True,
) -> OdeSolution:
    """Simulate n independent hybrid realisations and report the counts at ``t_eval``.

    Parameters are those of :func:`~livingdrug.engines.ssa.solve_ssa`, plus

    threshold:
        Populations (counts) below it are simulated cell by cell; they become continuous again
        at twice the threshold.  ``0`` gives a deterministic ODE solve, ``inf`` the exact SSA.
    rtol, atol:
        Relative and absolute (counts) error tolerances of the continuous part.
    max_steps:
        Maximum number of ODE steps (accepted + rejected) per row.

    Returns
    -------
    OdeSolution
        As the SSA's, with stats ``reactions``, ``events``, ``steps``, ``rejected`` and
        ``switches`` (summed over rows).

    Raises
    ------
    ValueError
        For malformed arguments.  A row's failure is never raised: see ``status``.
    """
    theta = _positive("threshold", threshold, allow_zero=True, allow_inf=True)
    rt = _positive("rtol", rtol, allow_zero=False)
    at = _positive("atol", atol, allow_zero=False)
    for name, v in (("max_events", max_events), ("max_steps", max_steps)):
        if not _is_int(v) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    Y0, PP, te, t_start, ST, n = _prepare(
        compiled, y0, P, t_eval, seed, replicates, replicate_offset, t0, engine="hybrid engine",
        counts_only=False,
    )
    k = len(compiled.network.species)
    rptr, ridx, rval = _csr(ST)
    # 0: never changes, 1: reclassified at the threshold, 2: always continuous (ODE-only)
    movable = np.array(np.any(ST != 0, axis=0), dtype=np.int8) if ST.size else np.zeros(k, np.int8)
    for name in (compiled.network.meta or {}).get("ode_only_species", ()):
        i = compiled.network.species_names.index(name)
        movable[i] = 2 * movable[i]
    settings = base_settings(
        compiled, engine="livingdrug.engines.hybrid",
        method="dynamic partitioning: Dormand-Prince 5(4) for continuous species, exact "
        "firings on the integrated hazard for discrete ones (Haseltine & Rawlings 2002; "
        "Salis & Kaizu 2005)",
        kernel_sha256=KERNEL_HASH, seed=seed, replicate_offset=replicate_offset, n=n,
        t_start=t_start, parallel=parallel,
    )
    settings.update({
        "threshold": theta if math.isfinite(theta) else "inf",
        "hysteresis": _hybrid_kernel.HYSTERESIS,
        "rtol": rt,
        "atol": at,
        "max_events": int(max_events),
        "max_steps": int(max_steps),
    })
    return run_batch(
        compiled, (_hybrid_kernel.hybrid_batch_parallel, _hybrid_kernel.hybrid_batch_serial),
        parallel=parallel, t_start=t_start, Y0=Y0, P=PP, t_eval=te,
        model_arrays=(rptr, ridx, rval, movable),
        options=(theta, rt, at, int(max_events), int(max_steps)), seed=seed,
        replicate_offset=replicate_offset, stats_names=_STATS_NAMES,
        limit=("maximum number of firings or ODE steps reached",
               f"max_events = {int(max_events)}, max_steps = {int(max_steps)}"),
        settings=settings,
    )
