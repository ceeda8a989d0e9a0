"""Clinical read-outs: pure functions on trajectories and observations."""

from . import clonality
from .endpoints import Exposure, Response, ball_response, exposure
from .grading import GradeCourse, crs_grade, grade_course, grade_signs, icans_grade
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
    "GradeCourse",
    "crs_grade",
    "icans_grade",
    "grade_course",
    "grade_signs",
    "KaplanMeier",
    "Proportion",
    "kaplan_meier",
    "proportion",
    "replicate_endpoints",
    "ensemble_summary",
]
