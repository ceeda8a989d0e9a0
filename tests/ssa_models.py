"""Test models of the stochastic-engine tests, built with the real Network API."""

from __future__ import annotations

from livingdrug.network import At, Event, Network, Reaction, Species, T, When, sym
from livingdrug.params import Param

WIDE = (-1e300, 1e300)


def birth_death_network() -> Network:
    """Linear birth–death: n → 2n at rate λ·n, n → ∅ at rate μ·n."""
    n, lam, mu = sym("n"), sym("lam"), sym("mu")
    return Network(
        "ssa_test_birth_death",
        species=(Species("n", initial=3.0),),
        params=(Param("lam", 1.0, "1/d", bounds=WIDE), Param("mu", 0.5, "1/d", bounds=WIDE)),
        reactions=(Reaction("birth", {"n": 1}, lam * n), Reaction("death", {"n": -1}, mu * n)),
    )


def immigration_death_network() -> Network:
    """∅ → n at rate k, n → ∅ at rate γ·n (stationary law Poisson(k/γ))."""
    n, k, g = sym("n"), sym("k"), sym("gamma")
    return Network(
        "ssa_test_immigration_death",
        species=(Species("n", initial=0.0),),
        params=(Param("k", 20.0, "1/d"), Param("gamma", 1.0, "1/d")),
        reactions=(Reaction("immigrate", {"n": 1}, k), Reaction("die", {"n": -1}, g * n)),
    )


def bimolecular_network() -> Network:
    """A + B → C at mass-action rate k·A·B (counts; k per molecule pair per day)."""
    A, B, kk = sym("A"), sym("B"), sym("k")
    return Network(
        "ssa_test_bimolecular",
        species=(Species("A", initial=2000.0), Species("B", initial=1500.0), Species("C")),
        params=(Param("k", 1e-3, "1/d"),),
        reactions=(Reaction("bind", {"A": -1, "B": -1, "C": 1}, kk * A * B),),
    )


def death_events_network() -> Network:
    """Pure death n → ∅ (rate μ·n) with a bolus (At t_dose: n += dose), an extinction record
    (When n − 1/2 falls through 0: tx := t) and a threshold (When n − thr falls through 0:
    n := 0)."""
    n, mu, td, dose, thr = (sym(s) for s in ("n", "mu", "t_dose", "dose", "thr"))
    return Network(
        "ssa_test_death_events",
        species=(Species("n", initial=0.0), Species("tx", unit="d", initial=-1.0, nonnegative=False)),
        params=(
            Param("mu", 1.0, "1/d"),
            Param("t_dose", 1e9, "d", bounds=WIDE),
            Param("dose", 0.0, "cell", bounds=WIDE),
            Param("thr", -1.0, "cell", bounds=WIDE),
        ),
        reactions=(Reaction("die", {"n": -1}, mu * n),),
        events=(
            Event("bolus", At(td), {"n": n + dose}),
            Event("extinct", When(n - 0.5, -1), {"tx": T}),
            Event("threshold", When(n - thr, -1), {"n": 0.0}),
        ),
    )


def driven_birth_death_network() -> Network:
    """Tumour cells n with birth λ·n and death (μ0 + κ·C/C0)·n, where CAR-T cells C decay
    as C → ∅ at δ·C (a large population: deterministic in the hybrid engine, so the tumour's
    death rate follows μ(t) = μ0 + κ e^{−δt} for C(0) = C0)."""
    n, C, lam, mu0, kap, C0, dl = (sym(s) for s in ("n", "C", "lam", "mu0", "kappa", "C0", "delta"))
    return Network(
        "ssa_test_driven_birth_death",
        species=(Species("n", initial=1.0), Species("C", initial=1e6)),
        params=(
            Param("lam", 0.5, "1/d"),
            Param("mu0", 0.1, "1/d"),
            Param("kappa", 2.0, "1/d"),
            Param("C0", 1e6, "cell", bounds=WIDE),
            Param("delta", 0.3, "1/d"),
        ),
        reactions=(
            Reaction("birth", {"n": 1}, lam * n),
            Reaction("death", {"n": -1}, (mu0 + kap * C / C0) * n),
            Reaction("car_t_decay", {"C": -1}, dl * C),
        ),
    )


def tumour_killing_network() -> Network:
    """Tumour T (birth b, death d) killed by CAR-T cells E at k·E·T/(K + E); E expands on
    antigen at ρ·E·T/(K_a + T) and dies at δ·E.  Small enough for the exact SSA, with a cure
    probability strictly between 0 and 1."""
    Tt, E = sym("T"), sym("E")
    b, d, k, K, rho, Ka, dl = (sym(s) for s in ("b", "d", "k", "K", "rho", "K_a", "delta"))
    return Network(
        "ssa_test_tumour_killing",
        species=(Species("T", initial=1000.0), Species("E", initial=1000.0)),
        params=(
            Param("b", 0.3, "1/d"),
            Param("d", 0.1, "1/d"),
            Param("k", 3.0, "1/d"),
            Param("K", 2000.0, "cell"),
            Param("rho", 0.5, "1/d"),
            Param("K_a", 500.0, "cell"),
            Param("delta", 0.2, "1/d"),
        ),
        reactions=(
            Reaction("T_birth", {"T": 1}, b * Tt),
            Reaction("T_death", {"T": -1}, d * Tt),
            Reaction("T_killed", {"T": -1}, k * E * Tt / (K + E)),
            Reaction("E_expand", {"E": 1}, rho * E * Tt / (Ka + Tt)),
            Reaction("E_death", {"E": -1}, dl * E),
        ),
    )
