"""A small synthetic toxicity model exposing the clinical-sign observables of the shared
contract (roles ``temperature_c``, ``sbp_mmhg``, ``vasopressors_n``, ``o2_level``,
``o2_flow_l_min``, ``anticytokine_given``, ``ice_score``, ``consciousness_level``, …),
driven by species with closed-form solutions, so the grade outputs of a simulation can be
checked against exact crossing times.

After an infusion of ``D`` CAR cells at ``t_inf`` (τ = t − t_inf, all rates 1/d):

* CAR cells ``C(τ) = D e^{−aτ}``;
* an inflammation index ``I`` (unit 1), ``dI/dt = k_u C − k_d I``:
  ``I(τ) = D k_u/(k_d − a) · (e^{−aτ} − e^{−k_d τ})``;
* a neuro-inflammation index ``N`` (unit 1), ``dN/dt = b I − c N``:
  ``N(τ) = b D k_u/(k_d − a) · [(e^{−aτ} − e^{−cτ})/(c − a) − (e^{−k_d τ} − e^{−cτ})/(c − k_d)]``.

Signs: temperature ``37 + 3 I/(I + 1)`` °C (fever from I = 0.5), SBP ``120 − 40 I/(I + 1)``
mmHg (below 90 from I = 3), one vasopressor while I > 4, low-flow oxygen (level 1, 2 L/min)
while I > 2; ICE score 10 while N < 1, 8 while N < 2, else 5; consciousness level 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from livingdrug.network import At, Event, Network, Observable, Reaction, Species, sym
from livingdrug.params import Param

#: default rates (1/d) and dose (cell)
RATES = {"a": 0.3, "ku": 1e-7, "kd": 1.0, "b": 0.3, "c": 0.5, "dose": 1e8}


def build(**_: Any) -> Network:
    C, I, N = sym("C"), sym("I"), sym("N")  # noqa: E741 (I: inflammation index)
    a, ku, kd, b, c = (sym(n) for n in ("a", "ku", "kd", "b", "c"))
    frac = I / (I + 1)
    o2 = sp.Piecewise((1, I > 2), (0, True))
    return Network(
        "toy_toxicity",
        species=(
            Species("C", "cell", 0.0, "CAR cells"),
            Species("I", "1", 0.0, "inflammation index"),
            Species("N", "1", 0.0, "neuro-inflammation index"),
        ),
        params=(
            Param("a", RATES["a"], "1/d", (0.0, 10.0)),
            Param("ku", RATES["ku"], "1/cell/d", (0.0, 1.0)),
            Param("kd", RATES["kd"], "1/d", (0.0, 10.0)),
            Param("b", RATES["b"], "1/d", (0.0, 10.0)),
            Param("c", RATES["c"], "1/d", (0.0, 10.0)),
            Param("dose", RATES["dose"], "cell", (0.0, 1e11)),
            Param("t_inf", 0.0, "d", (-100.0, 100.0)),
        ),
        reactions=(
            Reaction("car_death", {"C": -1}, a * C),
            Reaction("inflame", {"I": 1}, ku * C),
            Reaction("resolve", {"I": -1}, kd * I),
            Reaction("neuro", {"N": 1}, b * I),
            Reaction("neuro_clear", {"N": -1}, c * N),
        ),
        observables=(
            Observable("temperature_c", 37 + 3 * frac, "degC", "body temperature", role="temperature_c"),
            Observable("sbp_mmhg", 120 - 40 * frac, "mmHg", "systolic blood pressure", role="sbp_mmhg"),
            Observable("vasopressors_n", sp.Piecewise((1, I > 4), (0, True)), "1", "vasopressors", role="vasopressors_n"),
            Observable("o2_level", o2, "1", "oxygen support level", role="o2_level"),
            Observable("o2_flow_l_min", 2 * o2, "L/min", "oxygen flow", role="o2_flow_l_min"),
            Observable("anticytokine_given", sp.Integer(0) * I, "1", "therapy given", role="anticytokine_given"),
            Observable("ice_score", sp.Piecewise((10, N < 1), (8, N < 2), (5, True)), "1", "ICE score", role="ice_score"),
            Observable("consciousness_level", sp.Integer(0) * N, "1", "level of consciousness", role="consciousness_level"),
        ),
        events=(Event("infusion", At(sym("t_inf")), {"C": C + sym("dose")}),),
        reference="synthetic test model (closed form in tests/toxicity_models.py)",
        meta={"dose": {"param": "dose", "time_param": "t_inf"}},
    )


def inflammation(tau: float, r: dict[str, float] = RATES) -> float:
    """I(τ) in closed form (module doc); 0 before the infusion."""
    if tau < 0:
        return 0.0
    a, kd = r["a"], r["kd"]
    return r["dose"] * r["ku"] / (kd - a) * (math.exp(-a * tau) - math.exp(-kd * tau))


def neuro(tau: float, r: dict[str, float] = RATES) -> float:
    """N(τ) in closed form (module doc); 0 before the infusion."""
    if tau < 0:
        return 0.0
    a, kd, c = r["a"], r["kd"], r["c"]
    amp = r["b"] * r["dose"] * r["ku"] / (kd - a)
    return amp * ((math.exp(-a * tau) - math.exp(-c * tau)) / (c - a) - (math.exp(-kd * tau) - math.exp(-c * tau)) / (c - kd))


@dataclass(frozen=True)
class Spec:
    name: str
    build: Any
    title: str = "synthetic toxicity model"
    reference: str = "test"
    options: dict[str, Any] = field(default_factory=dict)


MODELS = {"toy_toxicity": Spec("toy_toxicity", build)}

TOML = """name = "toy-tox"
title = "Synthetic toxicity"
model = "toy_toxicity"

[dosing]
dose = "1e8 cell"
time = "{t_dose} d"

[simulation]
start = "{start} d"
days = {days}
output_interval = "{dt} d"
engine = "ode"
rtol = 1e-9
atol = 1e-12
"""
