"""Scenario values: frozen records holding canonical floats plus what the user wrote.

A :class:`Scenario` is what a scenario file says, validated against its model and converted to
canonical units (days, cells, kg, and each parameter's / species' own unit).  It keeps the
text the user wrote (``raw``) so :func:`~livingdrug.scenarios.dump_scenario` can write it back
as it was, and the built :class:`~livingdrug.network.Network` it was validated against.

A :class:`ResolvedScenario` is a scenario turned into arrays an engine takes: the parameter
vector ``P[m]``, the initial state ``y0[k]``, start and end time, output times and the engine
settings, with the dose (cells/kg × weight) written into the model's dose parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ..network import Network

__all__ = [
    "ScenarioError",
    "FrozenDict",
    "Dosing",
    "Simulation",
    "Scenario",
    "ResolvedScenario",
    "ENGINES",
    "MAX_FILE_BYTES",
    "MAX_DAYS",
    "MAX_OUTPUT_POINTS",
    "STOCHASTIC_ENGINES",
    "DEFAULT_REPLICATES",
    "MAX_REPLICATES",
    "DEFAULT_HYBRID_THRESHOLD",
    "DEFAULT_TAU_EPSILON",
]

#: scenario files are data; anything larger is refused before it is parsed
MAX_FILE_BYTES = 1_000_000
#: longest simulation accepted (days): 100 years
MAX_DAYS = 36_500.0
#: most output time points a scenario may ask for
MAX_OUTPUT_POINTS = 1_000_000
#: engine names a scenario may name
ENGINES: tuple[str, ...] = ("ode", "ssa", "tau", "hybrid")
#: the engines that simulate an ensemble of random replicates
STOCHASTIC_ENGINES: tuple[str, ...] = ("ssa", "tau", "hybrid")
#: replicates of a stochastic run when the scenario does not say
DEFAULT_REPLICATES = 1000
#: most replicates a scenario may ask for (one stochastic run)
MAX_REPLICATES = 10_000_000
#: population (cells) below which the hybrid engine simulates a species exactly
DEFAULT_HYBRID_THRESHOLD = 100.0
#: relative-change bound ε of the tau-leaping step selection (Cao et al. 2006)
DEFAULT_TAU_EPSILON = 0.03

_MISSING: Any = object()


def show_value(value: Any) -> str:
    """A value the way a TOML file would spell it, shortened to stay readable."""
    if value is _MISSING:
        return "(missing)"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k} = {show_value(v)}" for k, v in list(value.items())[:4])
        text += ", …}" if len(value) > 4 else "}"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


class ScenarioError(Exception):
    """A scenario file or dict is wrong.  ``str(e)`` is one readable line for the user.

    Attributes: ``file`` (path or ``"<dict>"``), ``field`` (dotted path such as
    ``"parameters.rho_max"``, ``""`` for the whole file), ``value`` (what was written, or
    ``None`` when missing), ``expected`` (what is accepted), ``hint`` (how to fix it), and
    ``line``/``column`` for TOML syntax errors.
    """

    def __init__(
        self,
        *,
        file: str = "<dict>",
        field: str = "",
        value: Any = _MISSING,
        expected: str = "",
        hint: str = "",
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.missing = value is _MISSING
        self.value = None if value is _MISSING else value
        self.expected = expected
        self.hint = hint
        self.line = line
        self.column = column
        super().__init__(self._message(value))

    def _message(self, value: Any) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = where
        if self.field:
            text += f": {self.field}"
            if value is not _MISSING:
                text += f" = {show_value(value)}"
        parts = []
        if self.expected:
            parts.append(f"expected {self.expected}")
        if self.hint:
            parts.append(self.hint)
        if parts:
            text += ": " + "; ".join(parts)
        return text

    def __reduce__(self) -> tuple[Any, ...]:  # keep it picklable across processes
        return (_rebuild_error, (self.__dict__.copy(),))


def _rebuild_error(state: dict[str, Any]) -> ScenarioError:
    value = _MISSING if state.get("missing") else state.get("value")
    return ScenarioError(
        file=state["file"],
        field=state["field"],
        value=value,
        expected=state["expected"],
        hint=state["hint"],
        line=state.get("line"),
        column=state.get("column"),
    )


K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(Mapping[K, V]):
    """A read-only, hashable mapping (so frozen records holding one stay hashable)."""

    __slots__ = ("_d", "_h")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._d: dict[K, V] = dict(*args, **kwargs)
        self._h: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._d[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._h is None:
            self._h = hash(frozenset(self._d.items()))
        return self._h

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._d) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._d!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (self._d,))


def freeze(value: Any) -> Any:
    """Deep-freeze plain TOML data (dicts → FrozenDict, lists → tuples)."""
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Inverse of :func:`freeze`: plain dicts and lists again."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Dosing:
    """The infusion: ``dose`` in cells (or cells/kg when ``per_kg``) at ``time`` (days)."""

    dose: float
    per_kg: bool
    time: float

    def cells(self, weight_kg: float | None) -> float:
        """Total CAR+ cells infused (cells/kg × weight when the dose is per kg)."""
        if not self.per_kg:
            return self.dose
        if weight_kg is None:
            raise ValueError("a per-kg dose needs the patient's weight")
        return self.dose * weight_kg


@dataclass(frozen=True)
class Simulation:
    """Time span (days), output spacing (days) and engine settings.

    ``output_after`` coarsens (or refines) the output grid part-way: ``(time, interval)``
    pairs (days, times increasing) — from ``time`` on, outputs every ``interval`` (see
    :func:`~livingdrug.scenarios.output_times`).

    Stochastic settings (used only by the engines in :data:`STOCHASTIC_ENGINES`):
    ``replicates`` (independent random realisations; ``None`` means
    :data:`DEFAULT_REPLICATES`), ``hybrid_threshold`` (cells; below it the hybrid engine
    treats a population exactly, one cell at a time) and ``tau_epsilon`` (dimensionless
    step-size bound of tau-leaping).
    """

    days: float
    start: float
    output_interval: float
    engine: str = "ode"
    rtol: float = 1e-6
    atol: float = 1e-9
    seed: int = 0
    replicates: int | None = None
    hybrid_threshold: float = DEFAULT_HYBRID_THRESHOLD
    tau_epsilon: float = DEFAULT_TAU_EPSILON
    output_after: tuple[tuple[float, float], ...] = ()

    @property
    def stochastic(self) -> bool:
        """True for the ensemble engines (ssa, tau, hybrid)."""
        return self.engine in STOCHASTIC_ENGINES

    @property
    def n_replicates(self) -> int:
        """Replicates to simulate: the written value, else the default for the engine
        (:data:`DEFAULT_REPLICATES` for a stochastic engine, 1 for the ODE)."""
        if self.replicates is not None:
            return int(self.replicates)
        return DEFAULT_REPLICATES if self.stochastic else 1


@dataclass(frozen=True)
class Scenario:
    """A validated scenario.  Values are canonical floats:

    * ``weight_kg``: patient body weight (kg) or ``None``;
    * ``dosing``: :class:`Dosing` or ``None`` (model without a dose);
    * ``parameters``: overrides by parameter name, in each parameter's own unit;
    * ``initial``: overrides of species initial values, in each species' own unit;
    * ``simulation``: :class:`Simulation` (``start`` already defaulted from the model);
    * ``population``: the scenario's virtual population
      (:class:`~livingdrug.trials.population.Population`, used by ``livingdrug trial``) or
      ``None``; its seed is ``population_seed``.
    * ``targets``: published figures the population is calibrated to (``[[targets]]``,
      :class:`~livingdrug.trials.calibration.Target`, used by :mod:`livingdrug.calibrate`);
      ``()`` when the file has none.
    * ``survival``: the hazard-of-death model of its virtual patients (``[survival]``,
      :class:`~livingdrug.trials.survival.SurvivalModel`, the disease default with the
      fields the file gives) or ``None`` (the disease default applies).

    ``raw`` is the document as written (validated, unknown keys impossible), used to dump it
    back; ``source`` says where it came from; ``network`` is the model it was validated
    against (not compared, not hashed).  Make variants with the ``with_*`` functions.
    """

    name: str
    title: str
    description: str
    model: str
    model_options: FrozenDict[str, Any]
    weight_kg: float | None
    dosing: Dosing | None
    parameters: FrozenDict[str, float]
    initial: FrozenDict[str, float]
    simulation: Simulation
    raw: FrozenDict[str, Any] = field(repr=False)
    source: str = field(default="<dict>", compare=False)
    network: Network | None = field(default=None, compare=False, hash=False, repr=False)
    population: Any = None
    targets: tuple[Any, ...] = ()
    survival: Any = None

    @property
    def population_seed(self) -> int:
        """Seed of the virtual population (``[population] seed``, default 0)."""
        pop = self.raw.get("population") if self.raw else None
        return int(pop.get("seed", 0)) if pop else 0

    @property
    def dose_cells(self) -> float | None:
        """Total CAR+ cells infused, or ``None`` when the scenario has no dose."""
        if self.dosing is None:
            return None
        return self.dosing.cells(self.weight_kg)


@dataclass(frozen=True, eq=False)
class ResolvedScenario:
    """A scenario as arrays for an engine (all canonical, arrays read-only).

    ``P[m]`` in the order of ``network.params``, ``y0[k]`` in the order of
    ``network.species``; ``t_out`` runs from ``t_start`` to ``t_end`` (both included) every
    ``simulation.output_interval`` days, then as ``simulation.output_after`` says.
    """

    scenario: Scenario
    network: Network
    P: np.ndarray
    y0: np.ndarray
    t_start: float
    t_end: float
    t_out: np.ndarray
    engine: str
    rtol: float
    atol: float
    seed: int
    dose_cells: float | None
    dose_time: float | None
    replicates: int = 1
    hybrid_threshold: float = DEFAULT_HYBRID_THRESHOLD
    tau_epsilon: float = DEFAULT_TAU_EPSILON

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.network.param_names

    @property
    def species_names(self) -> tuple[str, ...]:
        return self.network.species_names

    def engine_settings(self) -> dict[str, Any]:
        """The settings an engine call and a result manifest need (for a stochastic engine
        also the replicates and that engine's own setting)."""
        out: dict[str, Any] = {"engine": self.engine, "rtol": self.rtol, "atol": self.atol, "seed": self.seed}
        if self.engine in STOCHASTIC_ENGINES:
            out["replicates"] = self.replicates
        if self.engine == "hybrid":
            out["hybrid_threshold"] = self.hybrid_threshold
        if self.engine == "tau":
            out["tau_epsilon"] = self.tau_epsilon
        return out
