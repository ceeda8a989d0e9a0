r"""Tisagenlecleucel cellular kinetics (Stein et al. 2019).

Reference: Stein AM, Grupp SA, Levine JE, et al. Tisagenlecleucel model-based cellular
kinetic analysis of chimeric antigen receptor-T cells. *CPT Pharmacometrics Syst Pharmacol*
2019; 8(5):285-295. doi:10.1002/psp4.12388.  Parameter values from Table 1 (typical values,
log-normal IIV ω² on each), cross-checked against the nlmixr2lib model file
``inst/modeldb/specificDrugs/Stein_2019_Tisagenlecleucel.R``.

Observation: CAR transgene copies per µg genomic DNA (qPCR) in blood; the model is written
directly in that unit.  The paper's piecewise model

* ``0 ≤ t < Tmax``:  ``C(t) = (Cmax/foldx) · e^{ρ t}``, ``ρ = ln(foldx)/Tmax`` (so ``C(Tmax) = Cmax``)
* ``t ≥ Tmax``:  ``C(t) = (1−FB)·Cmax·e^{−α(t−Tmax)} + FB·Cmax·e^{−β(t−Tmax)}``

is written as a network of three pools (copies/µg) with first-order rate laws

.. math::

   C_{exp}' = ρ C_{exp}, \qquad C_{fast}' = −α C_{fast}, \qquad C_{slow}' = −β C_{slow}

and two timed events: at ``t = 0`` ``C_exp ← Cmax/foldx`` (so a sampled patient starts at their
own baseline), and at ``t = Tmax`` ``C_fast ← (1−FB)·C_exp``, ``C_slow ← FB·C_exp``,
``C_exp ← 0`` (the switch from expansion to biphasic decline; no Piecewise in any rate law).
The observable is ``C = C_exp + C_fast + C_slow``.

Tocilizumab and corticosteroids had no significant effect on expansion in the paper and are
not modelled (the paper's Ftoci = 1.2, Fster = 1.0).  The residual error (additive on the log
scale, 0.56) is stored in ``meta["residual_sd_log"]``.
"""

from __future__ import annotations

import math

import sympy as sp

from ...network import At, Event, Network, Observable, Reaction, Species, sym
from ...params import Param

__all__ = ["build", "REFERENCE", "analytic"]

REFERENCE = (
    "Stein AM et al. 2019 CPT Pharmacometrics Syst Pharmacol 8:285 "
    "(tisagenlecleucel model-based cellular kinetic analysis)"
)
_SRC = "Stein AM et al. 2019 CPT:PSP 8:285, Table 1"


def build() -> Network:
    """The Stein 2019 model at the paper's typical values."""
    params = (
        Param("foldx", 3900.0, "1", (1.0, 1e8), _SRC, "fold expansion from baseline to Cmax", iiv=2.4),
        Param("Tmax", 9.3, "d", (0.5, 100.0), _SRC, "time of maximal expansion", iiv=0.38),
        Param("Cmax", 24000.0, "copies/ug", (1.0, 1e7), _SRC, "maximal transgene level", iiv=0.65),
        Param("alpha", 0.16, "1/d", (1e-4, 10.0), _SRC, "fast (contraction) decline rate", iiv=0.91),
        Param("FB", 0.0079, "1", (0.0, 1.0), _SRC, "fraction of Cmax entering the slow phase", iiv=0.80),
        Param("beta", 0.0032, "1/d", (0.0, 1.0), _SRC, "slow (persistence) decline rate", iiv=0.86),
    )
    S = sym
    rho = sp.log(S("foldx")) / S("Tmax")
    c0 = S("Cmax") / S("foldx")
    species = (
        Species("C_exp", "copies/ug", 24000.0 / 3900.0, "expanding pool (t < Tmax)"),
        Species("C_fast", "copies/ug", 0.0, "fast-declining (effector) pool after Tmax"),
        Species("C_slow", "copies/ug", 0.0, "slow-declining (memory) pool after Tmax"),
    )
    reactions = (
        Reaction("expansion", {"C_exp": 1}, rho * S("C_exp"), "exponential expansion at ln(foldx)/Tmax"),
        Reaction("contraction", {"C_fast": -1}, S("alpha") * S("C_fast"), "fast decline at alpha"),
        Reaction("persistence_decline", {"C_slow": -1}, S("beta") * S("C_slow"), "slow decline at beta"),
    )
    events = (
        Event("baseline", At(0), {"C_exp": c0}, description="C(0) = Cmax/foldx"),
        Event(
            "peak",
            At(S("Tmax")),
            {"C_exp": 0, "C_fast": (1 - S("FB")) * S("C_exp"), "C_slow": S("FB") * S("C_exp")},
            description="switch to biphasic decline at Tmax",
        ),
    )
    obs = (
        Observable("transgene", S("C_exp") + S("C_fast") + S("C_slow"), "copies/ug",
                   "CAR transgene copies per µg genomic DNA", role="transgene"),
    )
    return Network(
        name="stein2019",
        species=species,
        params=params,
        reactions=reactions,
        observables=obs,
        events=events,
        reference=REFERENCE,
        description="piecewise exponential expansion then biphasic decline of tisagenlecleucel",
        meta={
            "time_start": 0.0,
            "groups": {"CAR transgene": ["transgene", "C_exp", "C_fast", "C_slow"]},
            "residual_sd_log": 0.56,
        },
    )


def analytic(t: float, foldx: float = 3900.0, Tmax: float = 9.3, Cmax: float = 24000.0,
             alpha: float = 0.16, FB: float = 0.0079, beta: float = 0.0032) -> float:
    """The paper's closed form ``C(t)`` (copies/µg), for tests and comparisons."""
    if t < Tmax:
        return Cmax / foldx * math.exp(math.log(foldx) / Tmax * t)
    dt = t - Tmax
    return (1 - FB) * Cmax * math.exp(-alpha * dt) + FB * Cmax * math.exp(-beta * dt)
