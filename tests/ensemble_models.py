"""Small models for the ensemble tests, registered through the ``models=`` argument of the
scenario loader (or monkeypatched into ``livingdrug.models.MODELS`` for the CLI)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livingdrug.network import At, Event, Network, Observable, Reaction, Species, sym
from livingdrug.params import Param


def birth_death(n0: float = 2.0) -> Network:
    """Linear birth–death "tumour": n → 2n at rate λ·n, n → ∅ at rate μ·n (1/d)."""
    n, lam, mu = sym("n"), sym("lam"), sym("mu")
    return Network(
        "bd_tumour",
        species=(Species("n", "cell", float(n0), "tumour cells"),),
        params=(Param("lam", 1.0, "1/d", (0.0, 100.0)), Param("mu", 0.5, "1/d", (0.0, 100.0))),
        reactions=(Reaction("birth", {"n": 1}, lam * n), Reaction("death", {"n": -1}, mu * n)),
        observables=(Observable("tumour", n, "cell", "tumour cells", role="tumour_total"),),
        reference="linear birth-death process (Kendall DG 1948, Ann Math Stat 19:1)",
    )


def seeded_clone() -> Network:
    """A birth–death clone founded at t = 1 d by ``n_seed`` cells, where ``n_seed`` is a count
    parameter ~ Poisson(f · N), conditioned on at least one (like CAR+ leukaemic cells in a
    product: N product cells, each leukaemic with probability f)."""
    x, lam, mu, ns = sym("x"), sym("lam"), sym("mu"), sym("n_seed")
    return Network(
        "seeded_clone",
        species=(Species("x", "cell", 0.0, "clone cells"),),
        params=(
            Param("lam", 0.6, "1/d", (0.0, 100.0)),
            Param("mu", 0.3, "1/d", (0.0, 100.0)),
            Param("f", 2e-7, "1", (0.0, 1.0)),
            Param("N", 1e6, "cell", (0.0, 1e12)),
            Param("n_seed", 0.0, "cell", (0.0, 1e9)),
        ),
        reactions=(Reaction("birth", {"x": 1}, lam * x), Reaction("death", {"x": -1}, mu * x)),
        observables=(Observable("clone", x, "cell", "clone cells", role="tumour_total"),),
        events=(Event("seed", At(1.0), {"x": x + ns}),),
        meta={"count_params": {"n_seed": {"mean": sym("f") * sym("N"), "condition": "at_least_one"}}},
    )


def extinction_probability(lam: float, mu: float, t: float, n0: int) -> float:
    """P(n(t) = 0) of the linear birth–death process from n0 cells (Kendall 1948):
    p₀(t) = [μ(e^{(λ−μ)t} − 1) / (λ e^{(λ−μ)t} − μ)]^{n0}; → (μ/λ)^{n0} as t → ∞ when λ > μ."""
    e = math.exp((lam - mu) * t)
    return (mu * (e - 1.0) / (lam * e - mu)) ** n0


@dataclass(frozen=True)
class Spec:
    name: str
    build: Callable[..., Network]
    title: str = "test model"
    reference: str = "test"
    options: dict[str, Any] = field(default_factory=dict)


MODELS = {"bd_tumour": Spec("bd_tumour", birth_death), "seeded_clone": Spec("seeded_clone", seeded_clone)}

BD_TOML = """name = "bd"
model = "bd_tumour"

[simulation]
days = {days}
output_interval = "1 d"
engine = "{engine}"
replicates = {replicates}
seed = {seed}
"""


def bd_toml(*, days: float = 12, engine: str = "ssa", replicates: int = 200, seed: int = 1) -> str:
    return BD_TOML.format(days=days, engine=engine, replicates=replicates, seed=seed)
