r"""Virtual populations: inter-individual variability (IIV) of parameters and state covariates.

Each varying quantity :math:`θ` is drawn per patient from a truncated distribution around its
typical value :math:`θ_{typ}` (the model's value unless a median is given):

* ``lognormal`` (default; the NONMEM convention for positive quantities):
  :math:`θ_i = θ_{typ} e^{η_i}`, :math:`η_i \sim N(0, ω^2)` with
  :math:`ω^2 = \ln(1 + CV^2)` so that ``cv`` is the coefficient of variation of
  :math:`θ` (Beal SL, Sheiner LB et al., NONMEM Users Guides, 1989–2009);
* ``normal``: :math:`θ_i = θ_{typ}(1 + CV\, z_i)`, :math:`z_i \sim N(0, 1)`;

truncated to ``[lower, upper]`` by inverse-CDF sampling (no piling up at the bounds):
:math:`z = Φ^{-1}(Φ(a) + u (Φ(b) − Φ(a)))`, :math:`u \sim U(0, 1)`, with :math:`a, b` the bounds
on the standard-normal scale.

Randomness: patient *i* of a population seeded with ``seed`` draws one uniform per varying
quantity, in the order the quantities are listed, from its own stream
(``seed``, spawn key ``(i, stream)``) — the same patient whatever the chunking, and the same
patient in every arm of a comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["Variability", "Population", "PopulationInputError", "sample_population", "DISTRIBUTIONS",
           "MAX_PATIENTS"]

DISTRIBUTIONS = ("lognormal", "normal")
#: spawn-key stream of the population draws (see :func:`sample_population`)
POPULATION_STREAM = 1
#: most patients of one population
MAX_PATIENTS = 10_000_000


class PopulationInputError(ValueError):
    """A population is wrong: ``field``, ``value``, what was ``expected`` and a ``hint``."""

    def __init__(self, field: str, value: Any, expected: str, hint: str = "") -> None:
        self.field, self.value, self.expected, self.hint = field, value, expected, hint
        text = f"{field} = {value!r}: expected {expected}"
        super().__init__(text + (f"; {hint}" if hint else ""))


def _num(x: Any) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Variability:
    """One quantity that varies between patients (canonical units; see the module docstring).

    ``median``: typical value, ``None`` = the model's value; ``cv``: coefficient of variation
    (0 = no variability); ``lower``/``upper``: truncation bounds.
    """

    name: str
    cv: float
    median: float | None = None
    distribution: str = "lognormal"
    lower: float = -math.inf
    upper: float = math.inf

    def __post_init__(self) -> None:
        f = self.name
        if self.distribution not in DISTRIBUTIONS:
            raise PopulationInputError(f"{f}.distribution", self.distribution, " or ".join(map(repr, DISTRIBUTIONS)))
        if not _num(self.cv) or not 0 <= self.cv <= 10:
            raise PopulationInputError(f"{f}.cv", self.cv, "a coefficient of variation in [0, 10]",
                                       "e.g. cv = 0.3 for 30 %")
        if self.median is not None and not _num(self.median):
            raise PopulationInputError(f"{f}.median", self.median, "a finite number")
        if self.distribution == "lognormal" and self.median is not None and self.median <= 0:
            raise PopulationInputError(f"{f}.median", self.median, "a positive value for a log-normal quantity",
                                       'use distribution = "normal" for quantities that can be ≤ 0')
        for b in ("lower", "upper"):
            v = getattr(self, b)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
                raise PopulationInputError(f"{f}.{b}", v, "a number")
        if not self.lower < self.upper:
            raise PopulationInputError(f"{f}.lower", self.lower, f"below upper = {self.upper:g}")
        if self.median is not None and not self.lower <= self.median <= self.upper:
            raise PopulationInputError(f"{f}.median", self.median,
                                       f"within [lower, upper] = [{self.lower:g}, {self.upper:g}]")

    def typical(self, model_value: float) -> float:
        """The typical value: ``median`` or the model's."""
        return float(model_value if self.median is None else self.median)

    def quantile(self, u: np.ndarray, model_value: float) -> np.ndarray:
        """Values at uniform draws ``u`` (inverse CDF of the truncated distribution)."""
        typ = self.typical(model_value)
        if self.distribution == "lognormal":
            if typ <= 0:
                raise PopulationInputError(f"{self.name}.median", typ, "a positive typical value for a log-normal quantity",
                                           "give a median or use distribution = \"normal\"")
            omega = math.sqrt(math.log1p(self.cv**2))

            def to_z(v: float) -> float:
                if v <= 0:
                    return -math.inf
                return math.log(v / typ) / omega if omega > 0 else math.copysign(math.inf, v - typ)

            def from_z(z: np.ndarray) -> np.ndarray:
                return typ * np.exp(omega * z)
        else:
            sd = abs(typ) * self.cv

            def to_z(v: float) -> float:
                return (v - typ) / sd if sd > 0 else math.copysign(math.inf, v - typ)

            def from_z(z: np.ndarray) -> np.ndarray:
                return typ + sd * z
        if self.cv == 0:
            return np.full(np.shape(u), typ)
        if not self.lower <= typ <= self.upper:
            raise PopulationInputError(f"{self.name}.median", typ, f"within [lower, upper] = [{self.lower:g}, {self.upper:g}]")
        lo, hi = float(ndtr(to_z(self.lower))), float(ndtr(to_z(self.upper)))
        z = ndtri(lo + np.asarray(u, dtype=float) * (hi - lo))
        return np.clip(from_z(z), self.lower, self.upper)


@dataclass(frozen=True)
class Population:
    """``size`` virtual patients; ``parameters`` vary model parameters by name, ``covariates``
    vary the state covariates of the model's ``patient_state`` (e.g. B-ALL ``leukaemia``)."""

    size: int
    parameters: tuple[Variability, ...] = ()
    covariates: tuple[Variability, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.size, (int, np.integer)) or isinstance(self.size, bool) or not 1 <= self.size <= MAX_PATIENTS:
            raise PopulationInputError("population.patients", self.size, f"a whole number from 1 to {MAX_PATIENTS:,}")
        names = [v.name for v in (*self.parameters, *self.covariates)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PopulationInputError(f"population.{dup[0]}", dup[0], "each quantity listed once")

    @property
    def variables(self) -> tuple[Variability, ...]:
        return (*self.parameters, *self.covariates)


def sample_population(variables: Sequence[Variability], typical: Mapping[str, float], seed: int,
                      patients: range | Sequence[int] | np.ndarray, *, stream: int = POPULATION_STREAM) -> dict[str, np.ndarray]:
    """``{name: values[len(patients)]}`` for ``variables`` (module docstring), typical values
    from ``typical`` (the model's values, by name) where a variable gives no median.

    Patient *i* draws from ``SeedSequence(seed, spawn_key=(i, stream))``: a stream of its own,
    independent of the one :func:`livingdrug.rng.patient_seed_sequence` gives the same patient
    for other purposes (logistics, stochastic engines); other ``stream`` numbers give further
    independent draws of the same patient (e.g. one per treatment arm)."""
    idx = list(patients)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PopulationInputError("seed", seed, "a non-negative whole number")
    u = np.empty((len(idx), len(variables)))
    for row, i in enumerate(idx):
        ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(i), int(stream)))
        u[row] = np.random.default_rng(ss).random(len(variables))
    out = {}
    for j, v in enumerate(variables):
        if v.median is None and v.name not in typical:
            raise PopulationInputError(f"population.{v.name}", v.name, "a parameter or covariate of the model",
                                       f"known: {', '.join(sorted(typical))[:300]}")
        out[v.name] = v.quantile(u[:, j], typical.get(v.name, math.nan))
    return out
