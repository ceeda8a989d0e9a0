r"""Virtual populations: inter-individual variability (IIV) of parameters and state covariates.

Each varying quantity :math:`θ` is drawn per patient from a truncated distribution around its
typical value :math:`θ_{typ}` (the model's value unless a median is given):

* ``lognormal`` (default; the NONMEM convention for positive quantities):
  :math:`θ_i = θ_{typ} e^{η_i}`, :math:`η_i \sim N(0, ω^2)` with
  :math:`ω^2 = \ln(1 + CV^2)` so that ``cv`` is the coefficient of variation of
  :math:`θ` (Beal SL, Sheiner LB et al., NONMEM Users Guides, 1989–2009);
* ``normal``: :math:`θ_i = θ_{typ}(1 + CV\, z_i)`, :math:`z_i \sim N(0, 1)`;

* ``uniform``: :math:`θ_i \sim U(\text{lower}, \text{upper})` (both bounds finite);
* ``discrete``: one of ``values`` with ``probabilities`` (e.g. prior lines of therapy 1–4);

log-normal and normal laws are truncated to ``[lower, upper]`` by inverse-CDF sampling (no
piling up at the bounds): :math:`z = Φ^{-1}(Φ(a) + u (Φ(b) − Φ(a)))`, :math:`u \sim U(0, 1)`,
with :math:`a, b` the bounds on the standard-normal scale.

**Correlations** (``correlations``: pairs with a coefficient ρ) act through a Gaussian copula:
the uniforms :math:`u` of one patient become normal scores :math:`z = Φ^{-1}(u)`, then
:math:`z' = L z` with :math:`L L^T = R` (Cholesky factor of the correlation matrix of the
scores), then :math:`u' = Φ(z')`; each quantity keeps its own law and the *scores* have
correlation ρ (for two log-normal quantities ρ is the correlation of their logarithms).

**Patient characteristics** (``characteristics``: age, prior lines, LDH, platelets …) vary like
the rest but are not model quantities; they act on the model through **covariate effects**
(:class:`Effect`), applied after the random draws to a parameter :math:`θ` (its drawn value,
else the model's):

* ``power``: :math:`θ_i · (c_i / c_{ref})^{β}` (e.g. allometric weight effects);
* ``exponential``: :math:`θ_i · e^{β (c_i − c_{ref})}`;
* ``linear``: :math:`θ_i · (1 + β (c_i − c_{ref}))` (must stay positive).

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

from ..rng import patient_draws

__all__ = ["Variability", "Effect", "Population", "PopulationInputError", "sample_population", "apply_effects",
           "DISTRIBUTIONS", "EFFECT_MODELS", "MAX_PATIENTS"]

DISTRIBUTIONS = ("lognormal", "normal", "uniform", "discrete")
#: forms of a covariate effect (:class:`Effect`)
EFFECT_MODELS = ("power", "exponential", "linear")
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
    (0 = no variability); ``lower``/``upper``: truncation bounds; ``unit``: the unit of every
    value (the model's canonical unit, or the one a patient characteristic names).
    """

    name: str
    cv: float = 0.0
    median: float | None = None
    distribution: str = "lognormal"
    lower: float = -math.inf
    upper: float = math.inf
    values: tuple[float, ...] = ()
    probabilities: tuple[float, ...] = ()
    unit: str = ""

    def __post_init__(self) -> None:
        f = self.name
        if self.distribution not in DISTRIBUTIONS:
            raise PopulationInputError(f"{f}.distribution", self.distribution, " or ".join(map(repr, DISTRIBUTIONS)))
        if self.distribution == "discrete":
            if not self.values or len(self.values) != len(self.probabilities) or not all(map(_num, self.values)):
                raise PopulationInputError(f"{f}.values", list(self.values),
                                           "numbers with one probability each in probabilities = […]",
                                           "e.g. values = [1, 2, 3], probabilities = [0.5, 0.3, 0.2]")
            pr = np.asarray(self.probabilities, dtype=float)
            if not all(map(_num, self.probabilities)) or np.any(pr < 0) or abs(pr.sum() - 1) > 1e-9:
                raise PopulationInputError(f"{f}.probabilities", list(self.probabilities),
                                           "probabilities ≥ 0 that add up to 1")
            return
        if self.distribution == "uniform":
            if not (_num(self.lower) and _num(self.upper) and self.lower < self.upper):
                raise PopulationInputError(f"{f}.lower", self.lower, "finite bounds lower < upper for a uniform law",
                                           "give lower and upper")
            return
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
        u = np.asarray(u, dtype=float)
        if self.distribution == "uniform":
            return self.lower + u * (self.upper - self.lower)
        if self.distribution == "discrete":
            cdf = np.cumsum(self.probabilities)
            k = np.minimum(np.searchsorted(cdf, u, side="right"), len(self.values) - 1)
            return np.asarray(self.values, dtype=float)[k]
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
class Effect:
    """Covariate effect on ``parameter``: ``model`` (one of :data:`EFFECT_MODELS`) of the
    patient's ``covariate`` around ``reference`` with coefficient ``coefficient`` (module
    docstring)."""

    parameter: str
    covariate: str
    model: str
    reference: float
    coefficient: float

    def __post_init__(self) -> None:
        f = f"effects.{self.parameter}"
        if self.model not in EFFECT_MODELS:
            raise PopulationInputError(f"{f}.model", self.model, " or ".join(map(repr, EFFECT_MODELS)))
        if not _num(self.reference) or (self.model == "power" and self.reference <= 0):
            raise PopulationInputError(f"{f}.reference", self.reference,
                                       "a finite reference value" + (" > 0 for a power effect" if self.model == "power" else ""))
        if not _num(self.coefficient):
            raise PopulationInputError(f"{f}.coefficient", self.coefficient, "a finite number")

    def factor(self, c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, dtype=float)
        if self.model == "power":
            return (c / self.reference) ** self.coefficient
        if self.model == "exponential":
            return np.exp(self.coefficient * (c - self.reference))
        return 1.0 + self.coefficient * (c - self.reference)


@dataclass(frozen=True)
class Population:
    """``size`` virtual patients; ``parameters`` vary model parameters by name, ``covariates``
    vary the state covariates of the model's ``patient_state`` (e.g. B-ALL ``leukaemia``),
    ``characteristics`` vary patient characteristics outside the model (age, prior lines …)
    that act through ``effects``; ``correlations`` are ``(name, name, ρ)`` between any of them
    (module docstring)."""

    size: int
    parameters: tuple[Variability, ...] = ()
    covariates: tuple[Variability, ...] = ()
    characteristics: tuple[Variability, ...] = ()
    effects: tuple[Effect, ...] = ()
    correlations: tuple[tuple[str, str, float], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.size, (int, np.integer)) or isinstance(self.size, bool) or not 1 <= self.size <= MAX_PATIENTS:
            raise PopulationInputError("population.patients", self.size, f"a whole number from 1 to {MAX_PATIENTS:,}")
        names = [v.name for v in self.variables]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PopulationInputError(f"population.{dup[0]}", dup[0], "each quantity listed once")
        for e in self.effects:
            if e.covariate not in names:
                raise PopulationInputError(f"population.effects.{e.parameter}.covariate", e.covariate,
                                           f"a varying quantity of the population ({', '.join(names) or 'none'})")
        self.correlation_matrix()  # validates

    @property
    def variables(self) -> tuple[Variability, ...]:
        return (*self.parameters, *self.covariates, *self.characteristics)

    def correlation_matrix(self) -> np.ndarray | None:
        """Correlation matrix of the normal scores, in the order of :attr:`variables`
        (``None`` without correlations)."""
        if not self.correlations:
            return None
        names = [v.name for v in self.variables]
        R = np.eye(len(names))
        for k, (a, b, rho) in enumerate(self.correlations):
            f = f"population.correlations[{k}]"
            for x in (a, b):
                if x not in names:
                    raise PopulationInputError(f"{f}.between", x, f"a varying quantity ({', '.join(names)})")
            if a == b or not _num(rho) or not -1 < rho < 1:
                raise PopulationInputError(f"{f}.rho", rho, "a correlation in (−1, 1) between two different quantities")
            i, j = names.index(a), names.index(b)
            R[i, j] = R[j, i] = rho
        try:
            np.linalg.cholesky(R)
        except np.linalg.LinAlgError:
            raise PopulationInputError("population.correlations", [list(c) for c in self.correlations],
                                       "a positive-definite set of correlations",
                                       "these correlations cannot hold together; weaken some of them") from None
        return R


def apply_effects(values: dict[str, np.ndarray], effects: Sequence[Effect], typical: Mapping[str, float]) -> dict[str, np.ndarray]:
    """``values`` with each covariate effect applied to its parameter (the drawn values, else
    the typical value from ``typical``); a linear effect that makes a parameter ≤ 0 is an error."""
    out = dict(values)
    for e in effects:
        n = len(out[e.covariate])
        base = out[e.parameter] if e.parameter in out else np.full(n, float(typical[e.parameter]))
        new = base * e.factor(out[e.covariate])
        if not np.all(np.isfinite(new)) or (e.model == "linear" and np.any(new <= 0)):
            raise PopulationInputError(f"population.effects.{e.parameter}", e.coefficient,
                                       "an effect that keeps the parameter positive and finite for every patient")
        out[e.parameter] = new
    return out


def sample_population(variables: Sequence[Variability], typical: Mapping[str, float], seed: int,
                      patients: range | Sequence[int] | np.ndarray, *, stream: int = POPULATION_STREAM,
                      correlation: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``{name: values[len(patients)]}`` for ``variables`` (module docstring), typical values
    from ``typical`` (the model's values, by name) where a variable gives no median.

    Patient *i* draws from ``SeedSequence(seed, spawn_key=(i, stream))``: a stream of its own,
    independent of the one :func:`livingdrug.rng.patient_seed_sequence` gives the same patient
    for other purposes (logistics, stochastic engines); other ``stream`` numbers give further
    independent draws of the same patient (e.g. one per treatment arm).  ``correlation``: the
    correlation matrix of the normal scores (Gaussian copula; :meth:`Population.correlation_matrix`)."""
    idx = list(patients)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PopulationInputError("seed", seed, "a non-negative whole number")
    m = len(variables)
    u = np.array(patient_draws(int(seed), np.asarray(idx, dtype=np.int64), (int(stream),), lambda g: g.random(m)),
                 dtype=float).reshape(len(idx), m)
    if correlation is not None and len(variables):
        L = np.linalg.cholesky(np.asarray(correlation, dtype=float))
        u = ndtr(ndtri(np.clip(u, 1e-300, 1 - 1e-16)) @ L.T)
    out = {}
    for j, v in enumerate(variables):
        if v.median is None and v.name not in typical and v.distribution in ("lognormal", "normal"):
            raise PopulationInputError(f"population.{v.name}", v.name, "a parameter or covariate of the model",
                                       f"known: {', '.join(sorted(typical))[:300]}")
        out[v.name] = v.quantile(u[:, j], typical.get(v.name, math.nan))
    return out
