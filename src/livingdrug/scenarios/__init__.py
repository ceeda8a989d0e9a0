"""Scenario files: the user's main interface (TOML with units, validated, hashed).

>>> from livingdrug.scenarios import load_scenario, resolve
>>> s = load_scenario("cd19-ball")            # doctest: +SKIP
>>> r = resolve(s)                            # doctest: +SKIP
>>> r.P, r.y0, r.t_out                        # doctest: +SKIP
"""

from __future__ import annotations

from .load import (
    builtin_dir,
    default_scenario_name,
    dump_scenario,
    list_scenarios,
    load_scenario,
    output_times,
    resolve,
    scenario_from_dict,
    scenario_from_toml,
    scenario_hash,
    scenario_json,
    validate_scenario,
    with_days,
    with_dose,
    with_engine,
    with_initial,
    with_parameters,
    with_replicates,
    with_seed,
)
from .schema import (
    DEFAULT_HYBRID_THRESHOLD,
    DEFAULT_REPLICATES,
    DEFAULT_TAU_EPSILON,
    ENGINES,
    MAX_DAYS,
    MAX_FILE_BYTES,
    MAX_OUTPUT_POINTS,
    MAX_REPLICATES,
    STOCHASTIC_ENGINES,
    Dosing,
    FrozenDict,
    ResolvedScenario,
    Scenario,
    ScenarioError,
    Simulation,
)

__all__ = [
    "Scenario",
    "ResolvedScenario",
    "Dosing",
    "Simulation",
    "FrozenDict",
    "ScenarioError",
    "ENGINES",
    "STOCHASTIC_ENGINES",
    "DEFAULT_REPLICATES",
    "DEFAULT_HYBRID_THRESHOLD",
    "DEFAULT_TAU_EPSILON",
    "MAX_REPLICATES",
    "MAX_DAYS",
    "MAX_FILE_BYTES",
    "MAX_OUTPUT_POINTS",
    "load_scenario",
    "list_scenarios",
    "default_scenario_name",
    "scenario_from_dict",
    "scenario_from_toml",
    "validate_scenario",
    "dump_scenario",
    "scenario_hash",
    "scenario_json",
    "resolve",
    "output_times",
    "with_dose",
    "with_days",
    "with_seed",
    "with_parameters",
    "with_initial",
    "with_engine",
    "with_replicates",
    "builtin_dir",
]
