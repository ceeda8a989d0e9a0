r"""T-cell competition and CAR-T kinetics in large B-cell lymphoma (Kimmel et al. 2021).

Reference: Kimmel GJ, Locke FL, Altrock PM. The roles of T cell competition and stochastic
extinction events in chimeric antigen receptor T cell therapy. *Proc R Soc B* 2021;
288:20210229. doi:10.1098/rspb.2021.0229.  BioModels BIOMD0000001041.  Parameters as
collected in ``shared/reference/PUBLISHED.md`` §2 (per-µL form).

State: normal T cells ``N`` and CAR-T cells ``C`` (cell/µL blood), tumour ``B`` (mL;
1 mL ≈ 10⁹ cells).  With ``T = N + C``:

.. math::

   N' &= −r_N N \ln(T/K_N) \\
   C' &= −r_C(T)\, C \ln(T/K_C), \quad r_C(T) = ρ_C + \frac{b (T−K_N)^2}{a T^2 + (T−K_N)^2} \\
   B' &= r_B B − γ_B B \frac{C}{k_B + C}

(units: r_N, ρ_C, b, r_B, γ_B in 1/d; K_N, K_C, k_B in cell/µL; a dimensionless).  The
Gompertz terms change sign at the carrying capacity, so the two competition "reactions"
have signed rates: the network is meant for the deterministic engine (``meta["ode_only"]``);
the paper itself treats small tumours stochastically (cure ≈ extinction from ~100 cells).

Derived facts used in the tests: without CAR-T, ``ln(N/K_N)`` decays as ``e^{−r_N t}``
(closed-form Gompertz); without CAR-T the tumour grows as ``e^{r_B t}``; ``C`` is maximal when
``N + C = K_C``; the tumour shrinks exactly while ``C > r_B k_B/(γ_B − r_B)``.
"""

from __future__ import annotations

import sympy as sp

from ...network import Network, Observable, Reaction, Species, sym
from ...params import Param

__all__ = ["build", "REFERENCE"]

REFERENCE = "Kimmel GJ, Locke FL, Altrock PM 2021 Proc R Soc B 288:20210229"
_SRC = "Kimmel GJ, Locke FL, Altrock PM 2021 Proc R Soc B 288:20210229"


def build() -> Network:
    """The Kimmel 2021 model with the published parameters and initial values."""
    params = (
        Param("K_N", 500.0, "cell/uL", (1.0, 1e5), _SRC, "normal T-cell carrying capacity"),
        Param("K_C", 139.0, "cell/uL", (1.0, 1e5), _SRC, "CAR-T carrying capacity"),
        Param("r_N", 0.17, "1/d", (0.0, 10.0), _SRC, "normal T-cell Gompertz rate"),
        Param("rho_C", 0.0251, "1/d", (0.0, 10.0), _SRC, "baseline CAR-T Gompertz rate"),
        Param("a", 0.423, "1", (0.0, 100.0), _SRC, "shape of the CAR-T rate r_C(T)"),
        Param("b", 0.525, "1/d", (0.0, 10.0), _SRC, "amplitude of the CAR-T rate r_C(T)"),
        Param("r_B", 0.01, "1/d", (0.0, 1.0), _SRC + " (paper explores 0.01-0.5)", "tumour growth rate"),
        Param("gamma_B", 1.15, "1/d", (0.0, 100.0), _SRC, "maximal tumour kill rate"),
        Param("k_B", 4.05, "cell/uL", (1e-6, 1e5), _SRC, "CAR-T level for half-maximal killing"),
    )
    S = sym
    N, C, B = S("N"), S("C"), S("B")
    Ttot = N + C
    rC = S("rho_C") + S("b") * (Ttot - S("K_N")) ** 2 / (S("a") * Ttot**2 + (Ttot - S("K_N")) ** 2)
    species = (
        Species("N", "cell/uL", 6.0, "normal T cells in blood (after lymphodepletion)"),
        Species("C", "cell/uL", 0.36, "CAR-T cells in blood"),
        Species("B", "mL", 94.86, "tumour volume (1 mL ≈ 1e9 cells)"),
    )
    reactions = (
        Reaction("N_competition", {"N": 1}, -S("r_N") * N * sp.log(Ttot / S("K_N")),
                 "Gompertz homeostasis of normal T cells (signed rate)"),
        Reaction("C_competition", {"C": 1}, -rC * C * sp.log(Ttot / S("K_C")),
                 "Gompertz homeostasis of CAR-T cells (signed rate)"),
        Reaction("B_growth", {"B": 1}, S("r_B") * B, "tumour growth"),
        Reaction("B_kill", {"B": -1}, S("gamma_B") * B * C / (S("k_B") + C), "CAR-T killing"),
    )
    obs = (
        Observable("car_t_blood", C, "cell/uL", "CAR-T cells per µL blood", role="cart_blood"),
        Observable("tumour_cells", B * 1e9, "cell", "tumour cells (1 mL ≈ 1e9 cells)", role="tumour_total"),
        Observable("t_cells_blood", N, "cell/uL", "normal T cells per µL blood"),
    )
    return Network(
        name="kimmel2021",
        species=species,
        params=params,
        reactions=reactions,
        observables=obs,
        reference=REFERENCE,
        description="normal T-cell / CAR-T competition for homeostatic space and tumour killing",
        meta={
            "time_start": 0.0,
            "ode_only": True,
            "groups": {"T cells": ["car_t_blood", "t_cells_blood"], "Tumour": ["B"]},
        },
    )
