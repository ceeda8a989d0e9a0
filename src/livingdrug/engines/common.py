"""What every engine returns: trajectories plus a status and message per patient."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba.core.errors import NumbaExperimentalFeatureWarning

__all__ = ["OdeSolution", "STATUS_OK", "STATUS_BAD_PROPENSITY", "STATUS_MESSAGES", "require_count_species"]

# numba calls passing functions as arguments (first-class function types) "experimental";
# the engines pass cfuncs, its documented, stable use.  Silenced once, for the process and
# this message only: a warnings.catch_warnings() around each call is not thread-safe (two
# trial chunks solving at once restored each other's filters, and the warning leaked).
warnings.filterwarnings("ignore", message="First-class function type feature is experimental",
                        category=NumbaExperimentalFeatureWarning)

#: per-patient status codes (failures are data, never an exception for one bad patient)
STATUS_OK = 0
STATUS_MAX_STEPS = 1
STATUS_STEP_TOO_SMALL = 2
STATUS_NONFINITE = 3
STATUS_SINGULAR = 4
#: a stochastic engine met a negative, NaN or infinite propensity (5 is kept for the ODE
#: kernel's internal "model code raised" code)
STATUS_BAD_PROPENSITY = 6
STATUS_MESSAGES = {
    STATUS_OK: "ok",
    STATUS_MAX_STEPS: "maximum number of steps reached",
    STATUS_STEP_TOO_SMALL: "step size fell below the minimum (stalled)",
    STATUS_NONFINITE: "state became NaN or infinite",
    STATUS_SINGULAR: "singular iteration matrix",
    STATUS_BAD_PROPENSITY: "a propensity was negative, NaN or infinite",
}


def require_count_species(network: Any, engine: str) -> None:
    """Raise ``ValueError`` naming the first species the model declares ODE-only
    (``network.meta["ode_only_species"]``, e.g. the cytokine and drug concentrations of
    :func:`livingdrug.models.cytokines.toxicity_block`): stochastic engines move whole numbers
    of cells, and a concentration in pg/mL is not one."""
    names = list((network.meta or {}).get("ode_only_species", ()))
    if names:
        s = network.species_by_name(names[0])
        raise ValueError(
            f"species {s.name} of model {network.name} has unit {s.unit}: the {engine} simulates whole "
            f"numbers of cells, not concentrations; use the ode or hybrid engine (the hybrid integrates "
            f"them deterministically), or build the model without them (set toxicity = false in "
            f"[model_options], which removes cytokines and drugs)"
        )


@dataclass(frozen=True)
class OdeSolution:
    """``y[n, T, k]`` at ``t[T]`` for n patients; ``status[n]`` (0 = ok) and ``message[n]``.

    Rows of failed patients hold the trajectory up to the failure and NaN after it.
    ``stats`` holds engine counters (steps, rejected steps, rhs/jacobian evaluations, events,
    stiff switches) summed over patients.
    """

    t: np.ndarray
    y: np.ndarray
    status: np.ndarray
    message: tuple[str, ...]
    stats: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def as_2d(a: Any, n_cols: int, name: str, what: str) -> np.ndarray:
    """``a`` as a float array ``[n, n_cols]`` (a 1-D ``[n_cols]`` becomes one row)."""
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n_cols:
        raise ValueError(
            f"{name} must have shape [n, {n_cols}] or [{n_cols}] ({what}); got {np.shape(a)}"
        )
    return arr


def check_times(t_eval: Any, t0: float | None) -> tuple[np.ndarray, float]:
    """Validated output times (finite, strictly increasing) and start time (≤ t_eval[0])."""
    te = np.asarray(t_eval, dtype=float)
    if te.ndim != 1 or te.size == 0:
        raise ValueError(f"t_eval must be a non-empty 1-D array; got shape {te.shape}")
    if not np.all(np.isfinite(te)):
        raise ValueError("t_eval must be finite")
    if te.size > 1 and not np.all(np.diff(te) > 0):
        raise ValueError("t_eval must be strictly increasing")
    t_start = float(te[0]) if t0 is None else float(t0)
    if not np.isfinite(t_start):
        raise ValueError(f"t0 must be finite; got {t0!r}")
    if t_start > te[0]:
        raise ValueError(f"t0 = {t_start} must not be later than t_eval[0] = {te[0]}")
    return te, t_start


def event_arrays(compiled: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The event description arrays (timed?, direction, once?) as compiled kernels take them."""
    return (
        np.array(compiled.event_is_timed, dtype=np.bool_, order="C"),
        np.array(compiled.event_direction, dtype=np.int64, order="C"),
        np.array(compiled.event_once, dtype=np.bool_, order="C"),
    )
