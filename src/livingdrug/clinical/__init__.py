"""Clinical read-outs: pure functions on trajectories and observations."""

from . import clonality
from .endpoints import Exposure, Response, ball_response, exposure
from .probability import (
    KaplanMeier,
    Proportion,
    ensemble_summary,
    kaplan_meier,
    proportion,
    replicate_endpoints,
)

__all__ = [
    "clonality",
    "Exposure",
    "Response",
    "ball_response",
    "exposure",
    "KaplanMeier",
    "Proportion",
    "kaplan_meier",
    "proportion",
    "replicate_endpoints",
    "ensemble_summary",
]
