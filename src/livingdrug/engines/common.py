"""What every engine returns: trajectories plus a status and message per patient."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["OdeSolution", "STATUS_OK", "STATUS_BAD_PROPENSITY", "STATUS_MESSAGES"]

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
