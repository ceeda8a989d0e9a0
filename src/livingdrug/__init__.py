"""livingdrug: simulate CAR-T and CAR-NK cell therapy, from one engineered cell to a
virtual clinical trial.  For research and education only; not medical advice.

The flat public API (imported lazily, so ``import livingdrug`` stays fast)::

    load_scenario, list_scenarios, simulate, sweep, save_run, rerun_manifest, load_manifest,
    Scenario, ScenarioError, SimulationResult, EnsembleResult, SweepResult, parse_sweep,
    Network, Species, Reaction, Observable, Event, At, When, Param, compile_network,
    get_model, solve, solve_ssa, solve_tau, solve_hybrid,
    crs_grade, icans_grade, grade_course, grade_signs, read_monitoring
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# numba's OpenMP workers otherwise spin for a while after every parallel region, taking a
# core from the thread that scores a trial while the next block is solved (measured: 0.2 ms
# of CPU per virtual patient, a fifth of the solve).  Read once, when OpenMP starts; a
# value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_LAZY = {
    "load_scenario": "livingdrug.scenarios",
    "list_scenarios": "livingdrug.scenarios",
    "validate_scenario": "livingdrug.scenarios",
    "Scenario": "livingdrug.scenarios",
    "ScenarioError": "livingdrug.scenarios",
    "simulate": "livingdrug.api",
    "save_run": "livingdrug.api",
    "rerun_manifest": "livingdrug.api",
    "load_manifest": "livingdrug.api",
    "sweep": "livingdrug.api",
    "SimulationResult": "livingdrug.api",
    "EnsembleResult": "livingdrug.ensemble",
    "SweepResult": "livingdrug.ensemble",
    "parse_sweep": "livingdrug.ensemble",
    "Network": "livingdrug.network",
    "Species": "livingdrug.network",
    "Reaction": "livingdrug.network",
    "Observable": "livingdrug.network",
    "Event": "livingdrug.network",
    "At": "livingdrug.network",
    "When": "livingdrug.network",
    "compile_network": "livingdrug.network",
    "Param": "livingdrug.params",
    "get_model": "livingdrug.models",
    "solve": "livingdrug.engines.ode",
    "solve_ssa": "livingdrug.engines.ssa",
    "solve_tau": "livingdrug.engines.tau",
    "solve_hybrid": "livingdrug.engines.hybrid",
    "crs_grade": "livingdrug.clinical.grading",
    "icans_grade": "livingdrug.clinical.grading",
    "grade_course": "livingdrug.clinical.grading",
    "grade_signs": "livingdrug.clinical.grading",
    "read_monitoring": "livingdrug.io.monitoring",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'livingdrug' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
