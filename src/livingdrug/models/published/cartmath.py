r"""CARTmath: effector and memory CAR-T cells against a tumour in mice (Barros, Paixão et al. 2021).

Reference: Barros LRC, Paixão EA, Valli AMP, Naozuka GT, Fassoni AC, Almeida RC. CARTmath —
a mathematical model of CAR-T immunotherapy in preclinical studies of hematological cancers.
*Cancers* 2021; 13(12):2941. doi:10.3390/cancers13122941.  BioModels BIOMD0000001019
(HDLM-2 + CAR-T123) and BIOMD0000001020 (Raji + CAR-T19).  Parameters as collected in
``shared/reference/PUBLISHED.md`` §3.

State (cells): effector CAR-T ``C_T``, memory CAR-T ``C_M``, tumour ``T``:

.. math::

   C_T' &= (φ − ρ) C_T + θ T C_M − α T C_T \\
   C_M' &= ε C_T − θ T C_M − μ C_M \\
   T'   &= r T (1 − b T) − γ T C_T

(φ, ρ, ε, μ, r in 1/d; θ, α, γ in 1/(cell·d); b in 1/cell).  As reactions: effector
proliferation ``φ C_T`` and death ``ρ C_T``; memory activation ``θ T C_M`` (C_M → C_T);
effector inactivation by tumour ``α T C_T``; memory generation ``ε C_T`` (∅ → C_M, the
effector is not consumed, as in the paper's equations); memory death ``μ C_M``; tumour
growth ``r T``, crowding ``r b T²`` and killing ``γ T C_T``.  CAR-T cells are injected into
the effector pool at ``t_inf``.  Populations falling below 10⁻⁶ cells are set to 0
(condition events), as in the paper; effector and memory CAR-T are treated as one population
for this rule (``C_T + C_M`` < 10⁻⁶ sets both to 0), because the two pools feed each other and
a per-pool rule leaves a sub-threshold pair that never crosses the threshold again.
"""

from __future__ import annotations

from ...network import At, Event, Network, Observable, Reaction, Species, When, sym
from ...params import Param

__all__ = ["build", "REFERENCE", "VARIANTS"]

REFERENCE = "Barros LRC, Paixão EA et al. 2021 Cancers 13:2941 (CARTmath)"
_SRC = "Barros LRC, Paixão EA et al. 2021 Cancers 13:2941"

#: parameter values and protocol by variant
VARIANTS: dict[str, dict[str, float]] = {
    "hdlm2": dict(phi=0.265, rho=0.35, eps=0.15, theta=6.0e-6, alpha=4.5e-8, mu=5.0e-3,
                  r=0.05650026, b=1.404029e-12, gamma=3.715843e-6,
                  T0=2.0e6, dose=1.5e6, t_inf=42.0),
    "raji": dict(phi=0.83, rho=0.8300536, eps=1.59795, theta=2.3e-4, alpha=1.248506e-8,
                 mu=6.89e-7, r=0.5071721, b=0.0, gamma=3.365388e-8,
                 T0=3.0e6, dose=1.0e7, t_inf=7.0),
}

_UNITS = dict(phi="1/d", rho="1/d", eps="1/d", theta="1/(cell*d)", alpha="1/(cell*d)", mu="1/d",
              r="1/d", b="1/cell", gamma="1/(cell*d)")
_DESC = dict(phi="effector proliferation", rho="effector death", eps="memory generation",
             theta="memory activation by tumour", alpha="effector inactivation by tumour",
             mu="memory death", r="tumour growth", b="inverse tumour carrying capacity",
             gamma="tumour killing by effectors")


def build(variant: str = "hdlm2") -> Network:
    """CARTmath for ``variant`` "hdlm2" (HDLM-2 + CAR-T123) or "raji" (Raji + CAR-T19)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown CARTmath variant {variant!r}; choose one of {sorted(VARIANTS)}")
    v = VARIANTS[variant]
    src = f"{_SRC} ({'HDLM-2 + CAR-T123' if variant == 'hdlm2' else 'Raji + CAR-T19'})"
    params = [
        Param(n, v[n], _UNITS[n], (0.0, max(10.0 * v[n], 1.0)), src, _DESC[n]) for n in _UNITS
    ]
    params += [
        Param("dose", v["dose"], "cell", (0.0, 1e10), src + ", protocol", "CAR-T cells injected"),
        Param("t_inf", v["t_inf"], "d", (0.0, 365.0), src + ", protocol", "injection day"),
        Param("extinction_threshold", 1e-6, "cell", (0.0, 1.0), _SRC, "populations below are set to 0"),
    ]
    S = sym
    CT, CM, Tu = S("C_T"), S("C_M"), S("T")
    species = (
        Species("C_T", "cell", 0.0, "effector CAR-T cells"),
        Species("C_M", "cell", 0.0, "memory CAR-T cells"),
        Species("T", "cell", v["T0"], "tumour cells"),
    )
    reactions = (
        Reaction("CT_prolif", {"C_T": 1}, S("phi") * CT),
        Reaction("CT_death", {"C_T": -1}, S("rho") * CT),
        Reaction("CM_activation", {"C_M": -1, "C_T": 1}, S("theta") * Tu * CM),
        Reaction("CT_inactivation", {"C_T": -1}, S("alpha") * Tu * CT),
        Reaction("CM_generation", {"C_M": 1}, S("eps") * CT),
        Reaction("CM_death", {"C_M": -1}, S("mu") * CM),
        Reaction("T_growth", {"T": 1}, S("r") * Tu),
        Reaction("T_crowding", {"T": -1}, S("r") * S("b") * Tu**2),
        Reaction("T_kill", {"T": -1}, S("gamma") * Tu * CT),
    )
    events = [
        Event("injection", At(S("t_inf")), {"C_T": CT + S("dose")}, description="CAR-T injection"),
    ]
    events.append(Event("extinct_car_t", When(CT + CM - S("extinction_threshold"), -1),
                        {"C_T": 0.0, "C_M": 0.0}, once=False,
                        description="CAR-T (effector + memory) below 1e-6 cells are set to 0"))
    events.append(Event("extinct_tumour", When(Tu - S("extinction_threshold"), -1), {"T": 0.0},
                        once=False, description="tumour below 1e-6 cells is set to 0"))
    obs = (
        Observable("tumour_cells", Tu, "cell", "tumour cells", role="tumour_total"),
        Observable("car_t_total", CT + CM, "cell", "all CAR-T cells"),
    )
    return Network(
        name=f"cartmath_{variant}",
        species=species,
        params=tuple(params),
        reactions=reactions,
        observables=obs,
        events=tuple(events),
        reference=REFERENCE,
        description=f"CARTmath ({variant})",
        meta={
            "dose": {"param": "dose", "time_param": "t_inf"},
            "time_start": 0.0,
            "variant": variant,
            "groups": {"CAR-T cells": ["C_T", "C_M"], "Tumour": ["T"]},
        },
    )
