r"""Disease breadth: CD19 CAR-T in large B-cell lymphoma and BCMA CAR-T in multiple myeloma.

Two registered models (``models.MODELS``) beside the B-ALL default (:mod:`.car_t`), built from
the same CAR-T phenotype reactions (``car_t._car_t_reactions``: stem-like ``C_S``, effector
``C_E``, memory ``C_M``, exhausted ``C_X``; the same per-cell rates, see :mod:`.car_t`) and
the motifs of :mod:`.motifs`.  Time in days, cells in a compartment, blood volume
``V_b = v_b·W`` (µL: ``10⁶ V_b``).  Shared pieces:

* **Antigen density** (Singh AP et al. 2020 mAbs 12:1688616: killing and expansion are
  driven by CAR–antigen complexes per cell, so by the target's antigen density): a relative
  density ``ρ`` (1 = the typical tumour) enters as the saturating factor
  ``q(ρ) = ρ (1 + K_ρ)/(ρ + K_ρ)`` (1 at ``ρ = 1``, ∝ ρ at low density), which multiplies a
  tumour cell's contribution to the antigen signal and its per-target killing rate.
* **Normal tissue expressing the target** (:func:`normal_tissue`; on-target off-tumour
  toxicity): ``X' = d·X_ref·σ − d·X − κ(X)`` — production ``d·X_ref`` scaled by a supply
  factor ``σ`` (1, or the normal marrow share for marrow-derived cells), turnover ``d``,
  CAR-T killing ``κ``; without CAR-T and with ``σ = 1`` the steady state is ``X_ref``.  Any
  antigen can use it (CD19: normal B cells → B-cell aplasia; BCMA: normal plasma cells →
  hypogammaglobulinaemia).
* Lymphodepletion (Flu/Cy on days ``t_ld … t_ld+2``) and the infusion split by ``f_S : f_E :
  f_M`` exactly as in :mod:`.car_t`; mean-field extinction events (below
  ``extinction_threshold`` → 0) for each tumour clone and for all CAR-T together.

Toxicity (option ``toxicity``, default on)
-----------------------------------------
The CRS/ICANS mechanism, management drugs and suicide switch of
:func:`livingdrug.models.cytokines.toxicity_block` are merged into both models, with the
block's *engaged* cells = killing-capable CAR-T times their antigen signal (lbcl: body
``C_k g(B_N)`` + lesions ``w_cyt_lesion · C_k,tu g(A_tu)``, the lesion-engaged cells weighted
6.5-fold because they meet tumour-associated macrophages at a higher local IFN-γ than blood
carries — an assumption calibrated to the ZUMA-1 median CRS onset of 2 d; myeloma:
``C_k φ g(A)``, with its own ``sigma_ifng`` default of ``MYELOMA_TOX_DEFAULTS``, half the
B-ALL value, calibrated to KarMMa's 5 % grade ≥ 3), its *killing* rate =
the CAR-T kill reactions on tumour and normal target cells (cell/d), every CAR species for
the switch and steroids, and the blood volume ``10⁶ V_b`` µL; antigen-driven CAR-T
proliferation is multiplied by :func:`~livingdrug.models.cytokines.expansion_factor`
(steroids; exactly 1 without drug, so the cell dynamics are those of ``toxicity = false``
until a management rule fires).  Its species are concentrations, listed in
``meta["ode_only_species"]`` (with myeloma's M-protein, IgG and sBCMA, so the myeloma model
is for the ODE engine): use ``toxicity = false`` with the stochastic engines.

``lbcl`` — CD19 CAR-T in relapsed/refractory large B-cell lymphoma
-----------------------------------------------------------------
Species (cell): body CAR-T ``C_S, C_E, C_M, C_X`` (blood and lymphoid tissue) and
tumour-infiltrating CAR-T ``C_S_tu, C_E_tu, C_M_tu, C_X_tu``; normal T cells ``N_T``; normal
B cells ``B_N``; CD19+ lymphoma ``T_pos`` and its CD19-negative subclone ``T_neg`` (antigen
loss is a known LBCL relapse mode after CD19 CAR-T).

With the tumour antigen ``A_tu = q(ρ) T_pos``, the body antigen ``A_b = B_N``, the niche
factor ``h = K_T/(K_T + N_T + C)`` over all eight CAR-T species ``C``, killing-capable
``C_k = C_E + w_m(C_S + C_M)`` per compartment:

.. math::

   \text{body lineage:}\ &\text{the 12 CAR-T reactions of car\_t with } g(A_b), x(A_b), h \\
   \text{tumour lineage:}\ &\text{the same 12 reactions with } g(A_{tu}), x(A_{tu}), h \\
   C_p \rightleftharpoons C_{p,tu}:\ &k_{inf} C_p \text{ (into lesions)},\ k_{egr} C_{p,tu} \text{ (out)},\ p ∈ \{S,E,M,X\} \\
   T_{pos}' &= r_T T_{pos}(1 − T/K_{tum}) − q(ρ) κ_{tu}(T_{pos}) \\
   T_{neg}' &= r_T T_{neg}(1 − T/K_{tum}) \\
   B_N' &= d_B B_{ref} − d_B B_N − κ_b(B_N)

with ``T = T_pos + T_neg``, killing ``κ(X) = k_kill C_k X/(K_kill + A + C_k/s_ET)`` (tumour
lineage in the lesions, body lineage on B cells), logistic growth written as birth
``(r_T + d_T) X``, death ``d_T X`` and crowding ``r_T X T/K_tum``.  Delivery of CAR-T cells to
solid lesions is limited (Brown LV et al. 2021 J R Soc Interface 18:20201013; Singh 2020):
``k_inf < k_egr`` so without local antigen only ``k_inf/(k_inf + k_egr) = 25 %`` of the cells
are in the lesions; expansion on tumour antigen there, and egress to blood, make the
blood peak.

Lesion burden: ``V = T/δ`` (cm³; cell density ``δ = 10⁹ cells/cm³``, the 1 mL ≈ 10⁹ cells of
Kimmel et al. 2021; Del Monte U 2009 Cell Cycle 8:505 argues it is nearer 10⁸ — an
assumption) split into ``n_les`` equal spherical target lesions (Lugano: up to 6 measured),
each of diameter ``D = (6V/(π n_les))^{1/3}``; the sum of the products of the perpendicular
diameters is ``SPD = n_les D² = n_les^{1/3} (6V/π)^{2/3}`` (cm²).  The default 5×10¹⁰
cells give 38 cm², the order of ZUMA-1's median baseline SPD (~37 cm², Locke FL et al. 2020
Blood Adv 4:4898: uncertain).  Since ``SPD ∝ V^{2/3}``, Lugano PR (−50 % SPD) is a 65 %
fall in tumour cells.

Default product: axicabtagene ciloleucel, 2×10⁶ CAR+ cells/kg (Neelapu SS et al. 2017 NEJM
377:2531), 1.4×10⁸ cells for 70 kg, after Flu/Cy.

``myeloma`` — BCMA CAR-T in relapsed/refractory multiple myeloma
---------------------------------------------------------------
Species: CAR-T ``C_S, C_E, C_M, C_X`` and ``N_T`` (cell); BCMA+ myeloma cells ``My_pos`` and
a BCMA-negative subclone ``My_neg`` (marrow, cell; biallelic BCMA loss at relapse: Samur MK
et al. 2021 Nat Commun 12:868); normal BCMA+ plasma cells ``P_N`` (cell, generic normal
tissue); normal marrow ``H_M`` (cell); serum M-protein ``M_prot`` (g/dL); polyclonal
(uninvolved) IgG ``IgG_N`` (g/dL); soluble BCMA ``sBCMA`` (ng/mL).

.. math::

   φ &= 1/(1 + sBCMA/K_{sB}) \quad\text{(sink: fraction of CAR binders not occupied by sBCMA)} \\
   A &= q(ρ) My_{pos} + P_N, \quad g = φ\, A/(A + K_A), \quad C_k^{eff} = φ\, C_k \\
   My_{pos}' &= r_{My} My_{pos}(1 − My/K_{mar}) − q(ρ) κ(My_{pos}) \quad (κ \text{ with } C_k^{eff}) \\
   My_{neg}' &= r_{My} My_{neg}(1 − My/K_{mar}) \\
   P_N' &= d_P P_{ref} H_M/K_{mar} − d_P P_N − κ(P_N) \\
   H_M' &= r_H H_M (1 − (H_M + c_{MH} My)/K_{mar}) \\
   M_{prot}' &= π_M My/(10 V_{Ig}) − k_{Ig} M_{prot} \\
   IgG_N' &= π_M P_N/(10 V_{Ig}) − k_{Ig} IgG_N \\
   sBCMA' &= σ_B (My + P_N)/(1000 V_{pl}) − k_{sB}\, sBCMA

with ``My = My_pos + My_neg``, ``k_Ig = ln 2/21 d`` (IgG half-life ~3 weeks), ``V_Ig`` the IgG
distribution volume (L; ``10 V_Ig`` in dL) and ``V_pl`` the plasma volume (L; ``1000 V_pl``
mL).  Soluble BCMA, cleaved from the plasma-cell surface by γ-secretase, binds anti-BCMA CARs
and lowers recognition of BCMA+ cells (Pont MJ et al. 2019 Blood 134:1585; raised serum
sBCMA in myeloma, Sanchez E et al. 2012 Br J Haematol 158:727): a CAR occupied by sBCMA
cannot engage membrane BCMA, so the free fraction ``φ`` multiplies both the activation signal
``g`` (antigen-driven proliferation and differentiation) and the engaged killers, and more
shedding gives weaker CAR-T expansion and killing.  Binding does not deplete the sink (serum
holds ~10¹⁷ sBCMA molecules at 300 ng/mL, far more than CAR molecules on ~10¹⁰ cells), so
``φ`` is an occupancy at binding equilibrium.  The exhaustion signal ``x(A)`` is not blocked.
Normal plasma cells are BCMA+ (killed: hypogammaglobulinaemia);
their production is crowded out by myeloma (``H_M/K_mar``: immunoparesis).  Observation:
``marrow_plasma_pct = 100 (My + f_PM P_N)/(My + f_PM P_N + H_M)`` (percent of marrow
nucleated cells), ``myeloma_mrd = My/(My + f_PM P_N + H_M)``.

Default product: idecabtagene vicleucel, target dose 450×10⁶ CAR+ cells (Munshi NC et al. 2021
NEJM 384:705), after Flu/Cy.  Research model, not a clinical tool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import sympy as sp

from ..network import At, Event, Network, Observable, Reaction, Species, When, sym
from ..params import Param
from . import car_t
from . import motifs as m
from .block import Block, network_with_block
from .cytokines import expansion_factor, toxicity_block

__all__ = [
    "build_lbcl",
    "build_myeloma",
    "normal_tissue",
    "density_factor",
    "spd_from_cells",
    "LBCL_DEFAULTS",
    "MYELOMA_DEFAULTS",
    "MYELOMA_TOX_DEFAULTS",
]

Row = tuple[str, float, str, tuple[float, float], str, str]

#: CAR-T, T-cell, lymphodepletion and observation parameters shared with :mod:`.car_t`
_SHARED = (
    "t_inf", "weight", "v_b", "f_S", "f_E", "f_M", "t_ld", "ld_surv_T",
    "k_exp", "K_A", "k_S", "k_SE", "k_ME", "d_E", "k_EM", "k_X", "K_X", "d_X", "p_h", "d_M",
    "w_m", "k_kill", "K_kill", "s_ET", "f_C", "f_T", "K_N", "r_N", "extinction_threshold",
    "VCN", "n_DNA", "W_o",
)
_CAR_T_ROWS: dict[str, Row] = {r[0]: r for r in car_t._PARAMS}

_DENSITY: tuple[Row, ...] = (
    ("antigen_density", 1.0, "1", (0.0, 100.0),
     "assumption: target antigen density relative to the typical tumour (Singh AP et al. 2020 mAbs "
     "12:1688616: CAR-antigen complexes per cell drive killing and expansion)",
     "relative antigen density of the tumour"),
    ("K_rho", 0.2, "1", (1e-6, 100.0),
     "assumption: relative density at which CAR engagement is half of its saturated value (Singh 2020 mAbs)",
     "antigen-density half-saturation"),
)

_LBCL_ROWS: tuple[Row, ...] = (
    ("dose", 1.4e8, "cell", (0.0, 1.0e11),
     "Neelapu SS et al. 2017 NEJM 377:2531 (axicabtagene ciloleucel 2e6 CAR+ cells/kg; 70 kg)",
     "infused CAR+ viable T cells"),
    ("ld_surv_B", 0.05, "1", (1e-6, 1.0), "assumption: Flu/Cy depletes B cells like T cells, somewhat less",
     "overall surviving fraction of normal B cells"),
    ("k_inf", 0.1, "1/d", (0.0, 10.0),
     "assumption: limited CAR-T delivery to solid lesions in humans (Brown LV et al. 2021 J R Soc "
     "Interface 18:20201013); 25 % of CAR-T in lesions without local antigen",
     "CAR-T infiltration rate into lymphoma lesions"),
    ("k_egr", 0.3, "1/d", (0.0, 100.0), "assumption: CAR-T leave lesions within ~3 d (lymphatic egress)",
     "CAR-T egress rate from lesions"),
    ("r_T", 0.03, "1/d", (0.0, 2.0),
     "assumption: relapsed LBCL net doubling ~3 weeks (Kimmel 2021 explores r_B 0.01-0.5 /d)",
     "lymphoma net growth rate"),
    ("d_T", 0.02, "1/d", (0.0, 2.0), "assumption: intrinsic lymphoma cell death (birth is r_T + d_T)",
     "lymphoma intrinsic death rate"),
    ("K_tum", 1.0e12, "cell", (1e9, 1e14), "assumption: ~1 kg of lymphoma as the carrying capacity",
     "lymphoma carrying capacity"),
    ("cell_density", 1.0e9, "cell/cm^3", (1e7, 1e10),
     "Kimmel GJ et al. 2021 Proc R Soc B 288:20210229 (1 mL ~ 1e9 cells); Del Monte U 2009 Cell Cycle 8:505 "
     "argues ~1e8: assumption",
     "lymphoma cells per cm^3 of lesion"),
    ("n_les", 6.0, "1", (1.0, 6.0),
     "Cheson BD et al. 2014 J Clin Oncol 32:3059 (Lugano: up to 6 target lesions measured); assumption: equal spheres",
     "number of measured target lesions"),
    ("w_cyt_lesion", 6.5, "1", (0.0, 100.0),
     "assumption: calibrated; CAR-T cells engaged in lymph-node/lesion tissue meet tumour-associated macrophages "
     "there at higher local IFN-gamma/GM-CSF than in blood (ZUMA-1 CRS median onset 2 d: Neelapu SS et al. 2017 "
     "NEJM 377:2531)",
     "weight of lesion-engaged CAR-T cells in the macrophage-activating IFN-gamma drive, relative to blood"),
    ("B_n", 200.0, "cell/uL", (1.0, 2000.0), "assumption: adult blood B-cell count 100-500 /uL",
     "normal blood B-cell count at steady state"),
    ("d_B", 0.02, "1/d", (1e-4, 1.0),
     "assumption: peripheral B-cell turnover 0.5-3 %/d (Macallan DC et al. 2005 Blood 105:3633)",
     "B-cell turnover rate"),
    ("f_B", 0.02, "1", (1e-4, 1.0), "Westermann J, Pabst R 1992 Clin Investig 70:539",
     "fraction of normal B cells in blood"),
)

_MYELOMA_ROWS: tuple[Row, ...] = (
    ("dose", 4.5e8, "cell", (0.0, 1.0e11),
     "Munshi NC et al. 2021 NEJM 384:705 (idecabtagene vicleucel target dose 450e6 CAR+ cells)",
     "infused CAR+ viable T cells"),
    ("r_My", 0.01, "1/d", (0.0, 2.0),
     "assumption: relapsed myeloma M-protein doubling ~2-3 months", "myeloma net growth rate"),
    ("d_My", 0.01, "1/d", (0.0, 2.0), "assumption: intrinsic myeloma cell death (birth is r_My + d_My)",
     "myeloma intrinsic death rate"),
    ("K_mar", 1.0e12, "cell", (1e9, 1e13), "assumption: order of adult marrow nucleated cellularity",
     "marrow capacity"),
    ("r_H", 0.1, "1/d", (0.0, 2.0), "assumption: normal haematopoietic regrowth over weeks",
     "normal marrow regrowth rate"),
    ("c_MH", 1.0, "1", (0.0, 100.0), "assumption: each myeloma cell displaces one normal marrow cell",
     "myeloma crowding weight on normal marrow"),
    ("pi_M", 3.0e-11, "g/cell/d", (1e-14, 1e-9),
     "assumption of the order of Salmon SE, Smith BA 1970 J Clin Invest 49:1114 (IgG synthesis per myeloma "
     "cell, tens of pg/cell/d): 30 pg/cell/d",
     "immunoglobulin secreted per plasma cell"),
    ("t_half_Ig", 21.0, "d", (1.0, 100.0),
     "IgG serum half-life ~3 weeks (Morell A et al. 1970 J Clin Invest 49:673)",
     "IgG half-life"),
    ("V_Ig", 6.0, "L", (1.0, 20.0),
     "assumption: IgG distribution volume ~ plasma (3 L) / intravascular fraction (~0.45)",
     "immunoglobulin distribution volume"),
    ("P_ref", 5.0e10, "cell", (1e6, 1e12),
     "assumption: IgG-secreting normal plasma cells (marrow and lymphoid), chosen so that healthy polyclonal "
     "IgG is ~0.76 g/dL (normal 7-16 g/L) at 30 pg/cell/d",
     "normal plasma cells at steady state with a healthy marrow"),
    ("d_P", 0.01, "1/d", (1e-4, 1.0),
     "assumption: plasma-cell pool turnover ~2 months (mix of short- and long-lived plasma cells)",
     "normal plasma-cell turnover"),
    ("f_PM", 0.2, "1", (0.0, 1.0), "assumption: share of normal plasma cells in the marrow",
     "marrow fraction of normal plasma cells"),
    ("ld_surv_P", 0.5, "1", (1e-6, 1.0),
     "assumption: Flu/Cy spares most non-dividing plasma cells", "overall surviving fraction of normal plasma cells"),
    ("sigma_B", 2.25e-6, "ng/cell/d", (0.0, 1e-3),
     "assumption: shedding calibrated so 2e11 myeloma cells hold serum sBCMA ~300 ng/mL (myeloma sBCMA is "
     "several-fold above healthy donors: Sanchez E et al. 2012 Br J Haematol 158:727)",
     "soluble BCMA shed per plasma cell"),
    ("k_sB", 0.5, "1/d", (0.01, 20.0), "assumption: sBCMA serum half-life ~1.4 d (renal clearance)",
     "sBCMA clearance rate"),
    ("V_pl", 3.0, "L", (1.0, 10.0), "assumption: adult plasma volume ~40 mL/kg", "plasma volume"),
    ("K_sB", 1000.0, "ng/mL", (1e-3, 1e6),
     "assumption: sBCMA that occupies half of the CAR binders (Pont MJ et al. 2019 Blood 134:1585: sBCMA "
     "inhibits BCMA CAR-T recognition)",
     "sBCMA half-inhibition concentration"),
)

#: myeloma's own defaults of toxicity-block parameters (value, source)
MYELOMA_TOX_DEFAULTS: Mapping[str, tuple[float, str]] = {
    "sigma_ifng": (5.0e-4,
                   "assumption: calibrated to KarMMa (Munshi NC et al. 2021 NEJM 384:705: CRS 84 %, grade >= 3 5 %, "
                   "median onset 1 d): BCMA CAR-T engaged on marrow plasma cells put half as much IFN-gamma/GM-CSF "
                   "into blood per cell as CD19 CAR-T on circulating B-ALL blasts"),
}

#: default lymphoma burden (cells) and CD19-negative fraction
LBCL_TUMOUR = 5.0e10
LBCL_NEG_FRACTION = 1.0e-5
#: default myeloma burden (cells) and BCMA-negative fraction
MYELOMA_CELLS = 2.0e11
MYELOMA_NEG_FRACTION = 1.0e-5


def _rows(own: tuple[Row, ...]) -> tuple[Row, ...]:
    names = {r[0] for r in own}
    return tuple(_CAR_T_ROWS[n] for n in _SHARED if n not in names) + _DENSITY + own


def _params(rows: tuple[Row, ...]) -> tuple[Param, ...]:
    return tuple(Param(n, v, unit=u, bounds=b, source=src, description=d) for n, v, u, b, src, d in rows)


LBCL_DEFAULTS: Mapping[str, float] = {r[0]: r[1] for r in _rows(_LBCL_ROWS)}
MYELOMA_DEFAULTS: Mapping[str, float] = {r[0]: r[1] for r in _rows(_MYELOMA_ROWS)}

S = sym
_flag = car_t._flag  # "model option NAME = VALUE: expected true or false …"


def density_factor(rho: m.ExprLike, half: m.ExprLike) -> sp.Expr:
    """``q(ρ) = ρ (1 + K)/(ρ + K)``: CAR engagement relative to the typical tumour (``q(1) = 1``),
    proportional to the density ``ρ`` when it is low (Singh AP et al. 2020 mAbs 12:1688616)."""
    r, k = m.as_expr(rho), m.as_expr(half)
    return r * (1 + k) / (r + k)


def spd_from_cells(cells: m.ExprLike, density: m.ExprLike, n_lesions: m.ExprLike) -> sp.Expr:
    """Sum of the products of perpendicular diameters (cm²) of ``n`` equal spherical lesions
    holding ``cells`` at ``density`` cells/cm³: ``n^{1/3} (6 V/π)^{2/3}`` with ``V = cells/density``."""
    v = m.as_expr(cells) / m.as_expr(density)
    return m.as_expr(n_lesions) ** sp.Rational(1, 3) * (6 * v / sp.pi) ** sp.Rational(2, 3)


def normal_tissue(
    species: str,
    *,
    description: str,
    initial: float,
    reference: m.ExprLike,
    turnover: m.ExprLike,
    effectors: m.ExprLike,
    targets_total: m.ExprLike,
    supply: m.ExprLike = 1,
    k_kill: m.ExprLike = "k_kill",
    K_kill: m.ExprLike = "K_kill",
    s_ET: m.ExprLike = "s_ET",
) -> tuple[Species, tuple[Reaction, ...]]:
    """A normal tissue that expresses the CAR target (on-target, off-tumour toxicity).

    ``X' = d·X_ref·σ − d·X − k·E·X/(K + A + E/s)`` (cell/d): production ``d·X_ref·σ``
    (``reference`` cells at steady state, ``supply`` factor ``σ``, e.g. the normal marrow
    share), turnover ``d`` (``turnover``, 1/d) and killing by the engaged effectors ``E``
    (``effectors``) among all targets ``A`` (``targets_total``), as :func:`.motifs.kill`.
    Returns the species (cell) and its three reactions ``{species}_prod``, ``{species}_death``,
    ``kill_{species}``.  Used for CD19+ B cells (B-cell aplasia) and BCMA+ plasma cells
    (hypogammaglobulinaemia); any antigen can use it.
    """
    d = m.as_expr(turnover)
    sp_ = Species(species, "cell", float(initial), description)
    rs = (
        m.source(f"{species}_prod", species, d * m.as_expr(reference) * m.as_expr(supply)),
        m.die(f"{species}_death", species, d),
        m.kill(f"kill_{species}", species, effectors, k_kill, K_kill, targets_total, s_ET),
    )
    return sp_, rs


def _car_species(sfx: str, where: str) -> tuple[Species, ...]:
    desc = {"S": "stem/central-memory-like", "E": "effector", "M": "memory", "X": "exhausted"}
    return tuple(Species(f"C_{p}{sfx}", "cell", 0.0, f"{desc[p]} CAR-T cells ({where})") for p in car_t.PHENOTYPES)


def _killers(sfx: str) -> sp.Expr:
    return S(f"C_E{sfx}") + S("w_m") * (S(f"C_S{sfx}") + S(f"C_M{sfx}"))


def _all_car(sfxs: tuple[str, ...]) -> sp.Expr:
    return sp.Add(*(S(f"C_{p}{x}") for x in sfxs for p in car_t.PHENOTYPES))


def _tumour_growth(name: str, x: str, r: str, d: str, occupied: sp.Expr, capacity: str) -> tuple[Reaction, ...]:
    """Birth ``(r + d) X``, intrinsic death ``d X``, crowding ``r X occupied/K``: net logistic."""
    return (
        m.logistic_growth(f"{name}_grow", x, S(r) + S(d)),
        m.die(f"{name}_death", x, d),
        m.crowding_death(f"{name}_crowd", x, r, occupied, capacity),
    )


def _lymphodepletion(survivors: Mapping[str, str]) -> list[Event]:
    """Flu/Cy on days ``t_ld … t_ld+2``: each day ``X ← X · s^{1/3}`` (``s`` overall survival)."""
    return [
        Event(f"lymphodepletion_{i + 1}", At(S("t_ld") + i),
              {x: S(x) * S(s) ** sp.Rational(1, 3) for x, s in survivors.items()},
              description=f"fludarabine/cyclophosphamide, day {i + 1} of 3")
        for i in range(3)
    ]


def _infusion() -> Event:
    wsum = S("f_S") + S("f_E") + S("f_M")
    return Event("infusion", At(S("t_inf")),
                 {f"C_{p}": S(f"C_{p}") + S("dose") * S(f"f_{p}") / wsum for p in ("S", "E", "M")},
                 description="CAR-T infusion split by product composition")


def _extinction(name: str, species: tuple[str, ...], what: str) -> Event:
    return Event(f"extinct_{name}", When(sp.Add(*(S(x) for x in species)) - S("extinction_threshold"), -1),
                 {x: 0.0 for x in species}, once=False,
                 description=f"{what} below the threshold is set to 0")


def _killing(reactions: tuple[Reaction, ...], names: tuple[str, ...]) -> sp.Expr:
    """Total CAR-T killing rate (cell/d): the sum of the named kill reactions' rates."""
    rates = {r.name: r.rate for r in reactions}
    return sp.Add(*(rates[n] for n in names))


def _fraction(name: str, value: object) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0.0 <= float(value) <= 1.0:  # type: ignore[arg-type]
        raise ValueError(f"model option {name} = {value!r}: expected a fraction from 0 to 1; write e.g. {name} = 1e-5")
    return float(value)  # type: ignore[arg-type]


def _cells(name: str, value: object, example: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 1.0 <= float(value) <= 1.0e13:  # type: ignore[arg-type]
        raise ValueError(f"model option {name} = {value!r}: expected a number of cells from 1 to 1e13; "
                         f"write e.g. {name} = {example}")
    return float(value)  # type: ignore[arg-type]


def build_lbcl(*, lymphodepletion: bool = True, tumour: float = LBCL_TUMOUR,
               neg_fraction: float = LBCL_NEG_FRACTION, toxicity: bool = True) -> Network:
    """CD19 CAR-T in relapsed/refractory large B-cell lymphoma (module docstring, ``lbcl``).

    ``tumour``: lymphoma cells at the start (cell; default 5e10 ≈ 50 cm³, SPD ≈ 38 cm²).
    ``neg_fraction``: initial CD19-negative fraction of the lymphoma.  ``lymphodepletion``:
    include the Flu/Cy events.  ``toxicity``: merge the CRS/ICANS block (see "Toxicity" in the
    module docstring).
    """
    _flag("lymphodepletion", lymphodepletion)
    tox = _flag("toxicity", toxicity)
    t0 = _cells("tumour", tumour, "5e10")
    nf = _fraction("neg_fraction", neg_fraction)
    d = LBCL_DEFAULTS
    params = _params(_rows(_LBCL_ROWS))
    Vul = S("v_b") * S("weight") * 10**6
    q = density_factor("antigen_density", "K_rho")
    A_tu = q * S("T_pos")
    A_b = S("B_N")
    C = _all_car(("", "_tu"))
    K_T = S("K_N") * Vul / S("f_T")
    h = m.homeostatic(K_T, S("N_T") + C)
    T_all = S("T_pos") + S("T_neg")
    B_ref = S("B_n") * Vul / S("f_B")
    Ck_b, Ck_tu = _killers(""), _killers("_tu")

    ag = expansion_factor() if tox else sp.Integer(1)
    g_b, g_tu = m.saturating(A_b, "K_A"), m.saturating(A_tu, "K_A")
    body = car_t._car_t_reactions("", g_b, m.saturating(A_b, "K_X"), h, antigen_factor=ag)
    tum = car_t._car_t_reactions("_tu", g_tu, m.saturating(A_tu, "K_X"), h, antigen_factor=ag)
    traffic: list[Reaction] = []
    for p in car_t.PHENOTYPES:
        traffic += [m.traffic(f"C_{p}_infiltrate", f"C_{p}", f"C_{p}_tu", "k_inf"),
                    m.traffic(f"C_{p}_egress", f"C_{p}_tu", f"C_{p}", "k_egr")]
    vul0 = d["v_b"] * d["weight"] * 1e6
    b_species, b_reactions = normal_tissue(
        "B_N", description="normal CD19+ B cells (body)", initial=d["B_n"] * vul0 / d["f_B"],
        reference=B_ref, turnover="d_B", effectors=Ck_b, targets_total=A_b)
    reactions = (
        *body, *tum, *traffic,
        m.expand("N_homeo", "N_T", 2 * S("r_N"), h),
        m.die("N_death", "N_T", "r_N"),
        *b_reactions,
        *_tumour_growth("T", "T_pos", "r_T", "d_T", T_all, "K_tum"),
        m.kill("kill_T_pos", "T_pos", Ck_tu, S("k_kill") * q, "K_kill", S("T_pos"), "s_ET"),
        *_tumour_growth("Tneg", "T_neg", "r_T", "d_T", T_all, "K_tum"),
    )
    species = (
        *_car_species("", "blood and lymphoid tissue"),
        *_car_species("_tu", "in lymphoma lesions"),
        Species("N_T", "cell", d["K_N"] * vul0 / d["f_T"], "normal T cells (body)"),
        b_species,
        Species("T_pos", "cell", t0 * (1 - nf), "CD19+ lymphoma cells"),
        Species("T_neg", "cell", t0 * nf, "CD19-negative lymphoma cells"),
    )
    cb = S("f_C") * _all_car(("",)) / Vul
    tb = S("f_T") * S("N_T") / Vul
    bb = S("f_B") * S("B_N") / Vul
    wbc = cb + tb + bb + S("W_o")
    observables = (
        Observable("car_t_blood", cb, "cell/uL", "CAR-T cells per µL blood", role="cart_blood"),
        Observable("transgene", S("VCN") * S("n_DNA") * cb / wbc, "copies/ug",
                   "CAR transgene copies per µg genomic DNA of blood", role="transgene"),
        Observable("tumour_spd", spd_from_cells(T_all, "cell_density", "n_les"), "cm^2",
                   "sum of the products of perpendicular lesion diameters (CT)", role="tumour_spd"),
        Observable("lymphoma_total", T_all, "cell", "all lymphoma cells", role="tumour_total"),
        Observable("lymphoma_cd19neg", S("T_neg"), "cell", "CD19-negative lymphoma cells",
                   role="tumour_antigen_neg"),
        Observable("b_cells_blood", bb, "cell/uL", "normal B cells per µL blood", role="bcells_blood"),
        Observable("t_cells_blood", tb, "cell/uL", "normal T cells per µL blood"),
        Observable("car_t_total", C, "cell", "all CAR-T cells in the body"),
        Observable("car_t_tumour", _all_car(("_tu",)), "cell", "CAR-T cells in lymphoma lesions"),
    )
    events: list[Event] = []
    if lymphodepletion:
        events += _lymphodepletion({"N_T": "ld_surv_T", "B_N": "ld_surv_B"})
    events.append(_infusion())
    events.append(_extinction("cd19pos", ("T_pos",), "CD19+ lymphoma"))
    events.append(_extinction("cd19neg", ("T_neg",), "CD19-negative lymphoma"))
    events.append(_extinction("car_t", tuple(f"C_{p}{x}" for x in ("", "_tu") for p in car_t.PHENOTYPES),
                              "all CAR-T (loss of the product)"))
    groups = {
        "CAR-T cells by phenotype": [f"C_{p}" for p in car_t.PHENOTYPES],
        "CAR-T cells in lesions": [f"C_{p}_tu" for p in car_t.PHENOTYPES],
        "CAR-T in blood": ["car_t_blood"],
        "CAR transgene": ["transgene"],
        "Lymphoma": ["T_pos", "T_neg"],
        "Lesion burden (SPD)": ["tumour_spd"],
        "Normal B cells": ["b_cells_blood"],
        "Normal T cells": ["t_cells_blood"],
    }
    car_names = [f"C_{p}{x}" for x in ("", "_tu") for p in car_t.PHENOTYPES]
    block = toxicity_block(engaged=Ck_b * g_b + S("w_cyt_lesion") * Ck_tu * g_tu, car_species=car_names, volume_ul=Vul,
                           killing=_killing(reactions, ("kill_T_pos", "kill_B_N"))) if tox else Block()
    return network_with_block(
        block, name="lbcl", species=species, params=params, reactions=reactions,
        observables=observables, events=tuple(events),
        reference="livingdrug LBCL model: car_t CAR-T phenotypes; trafficking after Brown 2021 and Singh 2020; "
                  "product after Neelapu 2017 (ZUMA-1)",
        description="CD19 CAR-T (blood/lymphoid and lesion compartments) in relapsed/refractory large B-cell "
                    "lymphoma with a CD19-negative subclone and B-cell aplasia",
        meta={"dose": {"param": "dose", "time_param": "t_inf"}, "weight_param": "weight",
              "time_start": -6.0, "groups": groups, "clones": {"bulk": [f"C_{p}" for p in car_t.PHENOTYPES]},
              "ode_only_species": []},
    )


def build_myeloma(*, lymphodepletion: bool = True, myeloma: float = MYELOMA_CELLS,
                  neg_fraction: float = MYELOMA_NEG_FRACTION, toxicity: bool = True) -> Network:
    """BCMA CAR-T in relapsed/refractory multiple myeloma (module docstring, ``myeloma``).

    ``myeloma``: myeloma cells at the start (cell; default 2e11).  ``neg_fraction``: initial
    BCMA-negative fraction.  ``lymphodepletion``: include the Flu/Cy events.  The initial
    M-protein, polyclonal IgG and sBCMA are the steady states of the initial cells with the
    default parameters; the event ``serum_baseline`` (half a day before lymphodepletion) resets
    them to the steady states of the patient's own cells and parameters.  ``toxicity``: merge
    the CRS/ICANS block (see "Toxicity" in the module docstring).
    """
    _flag("lymphodepletion", lymphodepletion)
    tox = _flag("toxicity", toxicity)
    my0 = _cells("myeloma", myeloma, "2e11")
    nf = _fraction("neg_fraction", neg_fraction)
    d = MYELOMA_DEFAULTS
    params = _params(_rows(_MYELOMA_ROWS))
    Vul = S("v_b") * S("weight") * 10**6
    q = density_factor("antigen_density", "K_rho")
    phi = 1 / (1 + S("sBCMA") / S("K_sB"))
    My = S("My_pos") + S("My_neg")
    A = q * S("My_pos") + S("P_N")
    C = _all_car(("",))
    K_T = S("K_N") * Vul / S("f_T")
    h = m.homeostatic(K_T, S("N_T") + C)
    Ck = phi * _killers("")
    g = phi * m.saturating(A, "K_A")  # activation signal of the CARs left free by sBCMA
    targets = A
    k_ig = sp.log(2) / S("t_half_Ig")

    vul0 = d["v_b"] * d["weight"] * 1e6
    H0 = max(d["K_mar"] - d["c_MH"] * my0, 0.02 * d["K_mar"])
    P0 = d["P_ref"] * H0 / d["K_mar"]
    k_ig0 = math.log(2) / d["t_half_Ig"]
    p_species, p_reactions = normal_tissue(
        "P_N", description="normal BCMA+ plasma cells", initial=P0, reference="P_ref", turnover="d_P",
        supply=S("H_M") / S("K_mar"), effectors=Ck, targets_total=targets)
    reactions = (
        *car_t._car_t_reactions("", g, m.saturating(A, "K_X"), h,
                                antigen_factor=expansion_factor() if tox else 1),
        m.expand("N_homeo", "N_T", 2 * S("r_N"), h),
        m.die("N_death", "N_T", "r_N"),
        *_tumour_growth("My", "My_pos", "r_My", "d_My", My, "K_mar"),
        m.kill("kill_My_pos", "My_pos", Ck, S("k_kill") * q, "K_kill", targets, "s_ET"),
        *_tumour_growth("Myneg", "My_neg", "r_My", "d_My", My, "K_mar"),
        *p_reactions,
        m.logistic_growth("H_grow", "H_M", "r_H"),
        m.crowding_death("H_crowd", "H_M", "r_H", S("H_M") + S("c_MH") * My, "K_mar"),
        Reaction("M_secrete", {"M_prot": 1}, S("pi_M") * My / (10 * S("V_Ig")), "M-protein secretion (g/dL/d)"),
        m.clear("M_clear", "M_prot", k_ig),
        Reaction("IgG_secrete", {"IgG_N": 1}, S("pi_M") * S("P_N") / (10 * S("V_Ig")),
                 "polyclonal IgG secretion by normal plasma cells (g/dL/d)"),
        m.clear("IgG_clear", "IgG_N", k_ig),
        Reaction("sBCMA_shed", {"sBCMA": 1}, S("sigma_B") * (My + S("P_N")) / (1000 * S("V_pl")),
                 "BCMA shedding by plasma cells (ng/mL/d)"),
        m.clear("sBCMA_clear", "sBCMA", "k_sB"),
    )
    m0 = d["pi_M"] * my0 / (10 * d["V_Ig"] * k_ig0)
    g0 = d["pi_M"] * P0 / (10 * d["V_Ig"] * k_ig0)
    s0 = d["sigma_B"] * (my0 + P0) / (1000 * d["V_pl"] * d["k_sB"])
    species = (
        *_car_species("", "body"),
        Species("N_T", "cell", d["K_N"] * vul0 / d["f_T"], "normal T cells (body)"),
        Species("My_pos", "cell", my0 * (1 - nf), "BCMA+ myeloma cells (marrow)"),
        Species("My_neg", "cell", my0 * nf, "BCMA-negative myeloma cells (marrow)"),
        p_species,
        Species("H_M", "cell", H0, "normal nucleated marrow cells"),
        Species("M_prot", "g/dL", m0, "serum M-protein (monoclonal immunoglobulin)"),
        Species("IgG_N", "g/dL", g0, "polyclonal (uninvolved) IgG"),
        Species("sBCMA", "ng/mL", s0, "soluble BCMA in serum (antigen sink)"),
    )
    marrow = My + S("f_PM") * S("P_N") + S("H_M")
    cb = S("f_C") * C / Vul
    tb = S("f_T") * S("N_T") / Vul
    wbc = cb + tb + S("W_o")
    observables = (
        Observable("car_t_blood", cb, "cell/uL", "CAR-T cells per µL blood", role="cart_blood"),
        Observable("transgene", S("VCN") * S("n_DNA") * cb / wbc, "copies/ug",
                   "CAR transgene copies per µg genomic DNA of blood", role="transgene"),
        Observable("m_protein", S("M_prot"), "g/dL", "serum M-protein", role="m_protein"),
        Observable("marrow_plasma_pct", 100 * (My + S("f_PM") * S("P_N")) / marrow, "percent",
                   "plasma cells (myeloma + normal) in marrow nucleated cells", role="marrow_plasma_pct"),
        Observable("myeloma_mrd", My / marrow, "1", "myeloma fraction of marrow nucleated cells",
                   role="myeloma_mrd"),
        Observable("polyclonal_igg", S("IgG_N"), "g/dL", "uninvolved polyclonal IgG", role="normal_igg"),
        Observable("soluble_bcma", S("sBCMA"), "ng/mL", "serum soluble BCMA"),
        Observable("myeloma_total", My, "cell", "all myeloma cells", role="tumour_total"),
        Observable("myeloma_bcma_neg", S("My_neg"), "cell", "BCMA-negative myeloma cells",
                   role="tumour_antigen_neg"),
        Observable("t_cells_blood", tb, "cell/uL", "normal T cells per µL blood"),
        Observable("car_t_total", C, "cell", "all CAR-T cells in the body"),
    )
    # serum markers at the steady state of the current cells and parameters half a day before
    # lymphodepletion (so a scenario that changes pi_M, sigma_B … starts from its own baseline)
    events: list[Event] = [Event(
        "serum_baseline", At(S("t_ld") - sp.Rational(1, 2)),
        {"M_prot": S("pi_M") * My / (10 * S("V_Ig") * k_ig),
         "IgG_N": S("pi_M") * S("P_N") / (10 * S("V_Ig") * k_ig),
         "sBCMA": S("sigma_B") * (My + S("P_N")) / (1000 * S("V_pl") * S("k_sB"))},
        description="serum M-protein, polyclonal IgG and sBCMA at their steady states (baseline)")]
    if lymphodepletion:
        events += _lymphodepletion({"N_T": "ld_surv_T", "P_N": "ld_surv_P"})
    events.append(_infusion())
    events.append(_extinction("bcma_pos", ("My_pos",), "BCMA+ myeloma"))
    events.append(_extinction("bcma_neg", ("My_neg",), "BCMA-negative myeloma"))
    events.append(_extinction("car_t", tuple(f"C_{p}" for p in car_t.PHENOTYPES), "all CAR-T (loss of the product)"))
    groups = {
        "CAR-T cells by phenotype": [f"C_{p}" for p in car_t.PHENOTYPES],
        "CAR-T in blood": ["car_t_blood"],
        "CAR transgene": ["transgene"],
        "Myeloma": ["My_pos", "My_neg"],
        "Serum M-protein": ["m_protein"],
        "Marrow plasma cells": ["marrow_plasma_pct"],
        "Normal plasma cells": ["P_N"],
        "Polyclonal IgG": ["polyclonal_igg"],
        "Soluble BCMA": ["soluble_bcma"],
    }
    block = toxicity_block(engaged=_killers("") * g, car_species=[f"C_{p}" for p in car_t.PHENOTYPES],
                           volume_ul=Vul, killing=_killing(reactions, ("kill_My_pos", "kill_P_N")),
                           overrides=MYELOMA_TOX_DEFAULTS) if tox else Block()
    return network_with_block(
        block, name="myeloma", species=species, params=params, reactions=reactions,
        observables=observables, events=tuple(events),
        reference="livingdrug myeloma model: car_t CAR-T phenotypes; sBCMA sink after Pont 2019; "
                  "product after Munshi 2021 (KarMMa)",
        description="BCMA CAR-T in relapsed/refractory multiple myeloma with serum M-protein, a soluble-BCMA "
                    "antigen sink, a BCMA-negative subclone and normal plasma cells",
        meta={"dose": {"param": "dose", "time_param": "t_inf"}, "weight_param": "weight",
              "time_start": -6.0, "groups": groups, "clones": {"bulk": [f"C_{p}" for p in car_t.PHENOTYPES]},
              "ode_only_species": ["M_prot", "IgG_N", "sBCMA"]},
    )
