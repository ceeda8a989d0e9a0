"""Reusable mechanism motifs: small functions that return :class:`~livingdrug.network.Reaction` s.

Each motif is one biological statement with a non-negative rate law (so the same reaction is a
valid propensity for the stochastic engines).  Arguments are sympy expressions (use
:func:`livingdrug.network.sym`) or species names (``str``), which are turned into symbols.

=====================  ==============================================  =========================
motif                  rate law (firings per day)                      stoichiometry
=====================  ==============================================  =========================
``expand``             k · f · X                                        X → 2X
``die`` / ``clear``    k · X                                            X → ∅
``differentiate``      k · f · X                                        X → Y
``kill``               k · E · X / (K + A + E/s)                        X → ∅
``logistic_growth``    r · X                                            X → 2X
``crowding_death``     r · X · occupied / K                             X → ∅
``traffic``            k · X                                            X (here) → X (there)
``source``             k (constant or expression)                       ∅ → X
=====================  ==============================================  =========================

``saturating(A, K) = A / (A + K)`` is the Michaelis–Menten factor used for antigen-driven
expansion; ``homeostatic(K, total) = K / (K + total)`` the competition factor for homeostatic
space (a smooth, non-negative stand-in for the Gompertz term of Kimmel et al. 2021).
"""

from __future__ import annotations

from typing import TypeAlias

import sympy as sp

from ..network import Reaction, sym

__all__ = [
    "as_expr",
    "saturating",
    "homeostatic",
    "expand",
    "die",
    "clear",
    "differentiate",
    "kill",
    "logistic_growth",
    "crowding_death",
    "traffic",
    "source",
]

ExprLike: TypeAlias = "sp.Expr | str | float"


def as_expr(x: ExprLike) -> sp.Expr:
    """A species/parameter name becomes its symbol; numbers and expressions pass through."""
    if isinstance(x, str):
        return sym(x)
    return sp.sympify(x)


def saturating(amount: ExprLike, half: ExprLike) -> sp.Expr:
    """``A / (A + K)``: 0 without antigen, 1/2 at ``A = K``, → 1 in excess."""
    a = as_expr(amount)
    return a / (a + as_expr(half))


def homeostatic(capacity: ExprLike, total: ExprLike) -> sp.Expr:
    """``K / (K + total)``: 1 in an empty niche, 1/2 when the niche holds ``K`` cells."""
    k = as_expr(capacity)
    return k / (k + as_expr(total))


def expand(name: str, x: str, k: ExprLike, factor: ExprLike = 1) -> Reaction:
    """Proliferation ``X → 2X`` at ``k · factor · X``."""
    return Reaction(name, {x: 1}, as_expr(k) * as_expr(factor) * sym(x), f"proliferation of {x}")


def die(name: str, x: str, k: ExprLike, factor: ExprLike = 1) -> Reaction:
    """First-order loss ``X → ∅`` at ``k · factor · X`` (death, contraction)."""
    return Reaction(name, {x: -1}, as_expr(k) * as_expr(factor) * sym(x), f"loss of {x}")


clear = die


def differentiate(name: str, src: str, dst: str, k: ExprLike, factor: ExprLike = 1) -> Reaction:
    """Phenotype change ``src → dst`` at ``k · factor · src`` (cell number conserved)."""
    return Reaction(
        name, {src: -1, dst: 1}, as_expr(k) * as_expr(factor) * sym(src), f"{src} becomes {dst}"
    )


def kill(
    name: str,
    target: str,
    effectors: ExprLike,
    k: ExprLike,
    half: ExprLike,
    targets_total: ExprLike,
    per_target_cap: ExprLike,
) -> Reaction:
    """Contact killing with effector:target saturation (Beddington–DeAngelis form)::

        rate = k · E · X / (K + A + E / s)

    ``E`` killing-capable effectors, ``X`` this target, ``A`` all targets competing for the
    same effectors, ``K`` half-saturation (cells), ``s`` effectors per target at which
    killing saturates.  Target-rich (``A ≫ K, E/s``): each effector kills ``k`` targets per
    day, shared among targets in proportion.  Effector-rich (``E/s ≫ K + A``): each target
    dies at ``k · s`` per day.
    """
    e = as_expr(effectors)
    rate = as_expr(k) * e * sym(target) / (as_expr(half) + as_expr(targets_total) + e / as_expr(per_target_cap))
    return Reaction(name, {target: -1}, rate, f"killing of {target}")


def logistic_growth(name: str, x: str, r: ExprLike) -> Reaction:
    """Birth part of logistic growth, ``X → 2X`` at ``r · X`` (density independent).

    Pair it with :func:`crowding_death`: the net rate is then ``r · X · (1 − occupied/K)``,
    while both propensities stay non-negative (valid for stochastic engines) even above
    capacity."""
    return Reaction(name, {x: 1}, as_expr(r) * sym(x), f"growth of {x}")


def crowding_death(name: str, x: str, r: ExprLike, occupied: ExprLike, capacity: ExprLike) -> Reaction:
    """Crowding loss ``X → ∅`` at ``r · X · occupied / K`` (with :func:`logistic_growth` the
    net rate is the logistic ``r · X · (1 − occupied/K)``; both propensities are ≥ 0)."""
    rate = as_expr(r) * sym(x) * as_expr(occupied) / as_expr(capacity)
    return Reaction(name, {x: -1}, rate, f"crowding loss of {x}")


def traffic(name: str, src: str, dst: str, k: ExprLike) -> Reaction:
    """Migration of cells between compartments (amounts in cells): ``k · src``."""
    return Reaction(name, {src: -1, dst: 1}, as_expr(k) * sym(src), f"{src} moves to {dst}")


def source(name: str, x: str, k: ExprLike) -> Reaction:
    """Zero-order production ``∅ → X`` at ``k`` (cells per day)."""
    return Reaction(name, {x: 1}, as_expr(k), f"production of {x}")

