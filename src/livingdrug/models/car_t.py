r"""The platform's default model: CD19 CAR-T cells in relapsed/refractory B-ALL.

Registry name ``"car_t"``.  Amounts are cells in a compartment (body, marrow, blood);
volumes are parameters.  Time in days.  Eleven species:

=============  ==============================================================  ======
species        meaning                                                          unit
=============  ==============================================================  ======
``C_S``        stem/central-memory-like CAR-T cells (body)                      cell
``C_E``        effector CAR-T cells (body)                                      cell
``C_M``        memory CAR-T cells (body)                                        cell
``C_X``        exhausted CAR-T cells (body)                                     cell
``N_T``        normal (non-CAR) T cells (body)                                  cell
``B_N``        normal CD19+ B cells (body)                                      cell
``L_M``        CD19+ leukaemic blasts in marrow                                 cell
``L_B``        CD19+ leukaemic blasts in blood                                  cell
``Lneg_M``     CD19-negative leukaemic subclone in marrow                      cell
``Lneg_B``     CD19-negative leukaemic subclone in blood                       cell
``H_M``        normal haematopoietic nucleated marrow cells                     cell
=============  ==============================================================  ======

Auxiliary quantities
--------------------
* blood volume  ``V_b = v_b · W``  (L; ``v_b`` L/kg, ``W`` kg); in µL: ``10⁶ V_b``.
* CD19+ antigen load ``A = L_M + L_B + B_N`` (cell).
* antigen signal ``g(A) = A/(A + K_A)`` (dimensionless, saturating in antigen).
* exhaustion signal ``x(A) = A/(A + K_X)``.
* all CAR-T ``C = C_S + C_E + C_M + C_X``; killing-capable ``C_k = C_E + w_m (C_S + C_M)``.
* homeostatic niche factor ``h = K_T/(K_T + N_T + C)`` with the body T-cell capacity
  ``K_T = K_N · 10⁶ V_b / f_T`` (cell; ``K_N`` cell/µL, ``f_T`` blood fraction of T cells) —
  normal and CAR-T cells compete for the same homeostatic space (Kimmel et al. 2021).
* killing ``κ(X) = k_kill · C_k · X / (K_kill + A + C_k/s_ET)`` (cell/d): target-rich, each
  effector kills ``k_kill`` targets/d; effector-rich, each target dies at ``k_kill·s_ET`` /d.
* normal B-cell production ``s_B = d_B · B_ref · H_M/K_mar`` with ``B_ref = B_n · 10⁶ V_b/f_B``.

Rate laws (all cell/d)
----------------------
.. math::

   C_S' &= k_S g C_S + p_h h C_S − k_{SE} g C_S − d_M C_S \\
   C_E' &= k_{exp} g C_E + k_{SE} g C_S + k_{ME} g C_M − d_E C_E − k_{EM} C_E − k_X x C_E \\
   C_M' &= k_{EM} C_E + p_h h C_M − k_{ME} g C_M − d_M C_M \\
   C_X' &= k_X x C_E − d_X C_X \\
   N_T' &= 2 r_N h N_T − r_N N_T \\
   B_N' &= s_B − d_B B_N − κ(B_N) \\
   L_M' &= r_L L_M (1 − (L_M + Lneg_M)/K_{mar}) − k_{out} L_M + k_{in} L_B − κ(L_M) \\
   L_B' &= k_{out} L_M − k_{in} L_B − κ(L_B) \\
   Lneg_M' &= r_{L-} Lneg_M (1 − (L_M + Lneg_M)/K_{mar}) − k_{out} Lneg_M + k_{in} Lneg_B \\
   Lneg_B' &= k_{out} Lneg_M − k_{in} Lneg_B \\
   H_M' &= r_H H_M (1 − (H_M + c_{LH}(L_M + Lneg_M))/K_{mar})

Every logistic term is written as a birth reaction ``r X`` plus a crowding-death reaction
``r X · occupied/K`` so that every propensity is non-negative.  The normal-T-cell law has its
equilibrium at ``N_T = K_T`` (blood ``K_N``) without CAR-T; after lymphodepletion ``h → 1`` and
both normal T and CAR-T memory cells expand homeostatically (the mechanism by which
lymphodepletion helps in Kimmel et al. 2021), slowing as normal T cells refill the niche.

Observation models
------------------
* CAR-T in blood ``c_b = f_C · C / (10⁶ V_b)`` (cell/µL; ``f_C`` fraction of CAR-T in blood).
* Blood nucleated cells ``w = c_b + f_T N_T/10⁶V_b + f_B B_N/10⁶V_b + (L_B+Lneg_B)/10⁶V_b + W_o``
  (cell/µL; ``W_o`` other leukocytes).
* transgene ``q = VCN · (c_b / w) · n_DNA`` (copies/µg).  Derivation: a diploid human cell
  holds ≈ 6.6 pg genomic DNA, so 1 µg DNA ≈ 10⁶ pg / 6.6 pg ≈ 1.5×10⁵ cells (``n_DNA``);
  the fraction of those cells that are CAR-T is ``c_b/w``; each carries ``VCN`` vector copies.
* ``blasts_pct = 100 (L_M + Lneg_M)/(L_M + Lneg_M + H_M)``; ``mrd`` the same without 100.
* B cells in blood ``f_B B_N / 10⁶V_b`` (cell/µL); normal T cells likewise.

Events
------
* lymphodepletion (fludarabine/cyclophosphamide) on days ``t_ld, t_ld+1, t_ld+2``: each day
  ``N_T ← N_T · s_T^{1/3}``, ``B_N ← B_N · s_B^{1/3}`` (``s_T``, ``s_B`` overall survival).
* infusion at ``t_inf``: the dose is split into ``C_S, C_E, C_M`` by the product composition
  weights ``f_S, f_E, f_M`` (normalised to sum 1).
* mean-field extinction: when a leukaemic clone (CD19+ or CD19-negative, marrow + blood)
  falls below ``extinction_threshold`` it is set to 0; likewise all CAR-T together (loss of
  the product: otherwise a vanishing mean-field CAR-T population would re-expand on
  recovering B cells) (the stochastic engines treat small numbers exactly).

Default patient: adult (70 kg), ~2.5×10¹¹ leukaemic cells, ~80 % marrow blasts, 1×10⁸ CAR+
cells after lymphodepletion at days −5…−3.  Expected course (see
``tests/unit/test_models_car_t.py``): blood CAR-T peak near day 10, peak transgene of order
10⁴ copies/µg, MRD-negative remission before day 28, slow persistence with B-cell aplasia.
This is a research model, not a clinical tool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import sympy as sp

from ..network import At, Event, Network, Observable, Reaction, Species, When, sym
from ..params import Param
from . import motifs as m

__all__ = ["build", "DEFAULTS"]

INF = math.inf

# (name, value, unit, bounds, source, description)
_PARAMS: tuple[tuple[str, float, str, tuple[float, float], str, str], ...] = (
    # --- patient and product -------------------------------------------------------------
    ("dose", 1.0e8, "cell", (0.0, 1.0e11),
     "Stein AM et al. 2019 CPT:PSP 8:285 (median 1.0e8 CAR+ cells for patients >50 kg)",
     "infused CAR+ viable T cells"),
    ("t_inf", 0.0, "d", (-60.0, 365.0), "assumption: infusion defines day 0", "infusion time"),
    ("weight", 70.0, "kg", (3.0, 250.0), "assumption: adult reference body weight", "body weight"),
    ("v_b", 0.07, "L/kg", (0.04, 0.1),
     "assumption: adult blood volume ~65-75 mL/kg (Nadler SB et al. 1962 Surgery 51:224)",
     "blood volume per kg"),
    ("f_S", 0.3, "1", (0.0, 1.0),
     "assumption: product composition; memory-like CAR-T fraction associated with response (Fraietta JA et al. 2018 Nat Med 24:563)",
     "product weight of stem/central-memory-like cells"),
    ("f_E", 0.5, "1", (0.0, 1.0), "assumption: product composition (effector/effector-memory majority)",
     "product weight of effector cells"),
    ("f_M", 0.2, "1", (0.0, 1.0), "assumption: product composition", "product weight of memory cells"),
    # --- lymphodepletion -----------------------------------------------------------------
    ("t_ld", -5.0, "d", (-30.0, 0.0),
     "assumption: Flu/Cy on days -5..-3 (CIBMTR: lymphodepletion starts a median 6 d before infusion)",
     "first lymphodepletion day"),
    ("ld_surv_T", 0.012, "1", (1e-6, 1.0),
     "Kimmel GJ et al. 2021 Proc R Soc B 288:20210229 (N: 500 -> 6 cells/uL after lymphodepletion)",
     "overall surviving fraction of normal T cells"),
    ("ld_surv_B", 0.05, "1", (1e-6, 1.0), "assumption: Flu/Cy depletes B cells like T cells, somewhat less",
     "overall surviving fraction of normal B cells"),
    # --- CAR-T kinetics ------------------------------------------------------------------
    ("k_exp", 1.0, "1/d", (0.0, 5.0),
     "assumption: maximal antigen-driven proliferation (doubling ~17 h), calibrated to Tmax 9.3 d and foldx 3900 (Stein 2019)",
     "antigen-driven effector proliferation rate"),
    ("K_A", 1.0e10, "cell", (1.0, 1.0e13), "assumption: half-saturating CD19+ antigen load (body)",
     "antigen half-saturation"),
    ("k_S", 0.4, "1/d", (0.0, 5.0), "assumption: antigen-driven self-renewal of stem-like cells",
     "stem-like proliferation on antigen"),
    ("k_SE", 0.4, "1/d", (0.0, 5.0), "assumption: antigen-driven differentiation stem -> effector",
     "stem -> effector rate"),
    ("k_ME", 0.05, "1/d", (0.0, 5.0), "assumption: recall of memory cells on antigen", "memory -> effector rate"),
    ("d_E", 0.15, "1/d", (0.0, 5.0), "Stein AM et al. 2019 CPT:PSP 8:285 (contraction alpha 0.16 /d)",
     "effector contraction (death) rate"),
    ("k_EM", 0.003, "1/d", (0.0, 1.0),
     "assumption: calibrated so ~1% of the peak enters memory (Stein 2019 FB 0.0079)",
     "effector -> memory rate"),
    ("k_X", 0.15, "1/d", (0.0, 5.0), "assumption: exhaustion under chronic high antigen load",
     "maximal exhaustion rate"),
    ("K_X", 1.0e11, "cell", (1.0, 1.0e13), "assumption: antigen load at half-maximal exhaustion",
     "exhaustion half-saturation"),
    ("d_X", 0.2, "1/d", (0.0, 5.0), "assumption: exhausted cells are short-lived", "exhausted death rate"),
    ("p_h", 0.02, "1/d", (0.0, 1.0),
     "assumption: homeostatic proliferation in an empty niche; with d_M gives Stein 2019 beta ~0.003 /d at a full niche",
     "homeostatic proliferation of memory-like CAR-T"),
    ("d_M", 0.013, "1/d", (0.0, 1.0),
     "assumption: p_h/2 - d_M = -0.003 /d ~ -beta (Stein 2019 beta 0.0032 /d)",
     "memory/stem-like death rate"),
    ("w_m", 0.2, "1", (0.0, 1.0), "assumption: memory-like CAR-T kill with lower potency than effectors",
     "relative cytotoxicity of stem/memory CAR-T"),
    ("k_kill", 12.0, "1/d", (0.0, 50.0),
     "assumption: serial killing (several targets per effector per day); calibrated so the default peak matches Stein 2019 Tmax 9.3 d, Cmax 24,000 copies/ug",
     "maximal targets killed per effector per day"),
    ("K_kill", 1.0e8, "cell", (1.0, 1.0e13), "assumption: half-saturation of killing (body-wide encounter)",
     "killing half-saturation"),
    ("s_ET", 0.2, "1", (1e-6, 100.0), "assumption: per-target death saturates at k_kill*s_ET = 2.4 /d",
     "effectors per target at saturation"),
    ("f_C", 0.02, "1", (1e-4, 1.0),
     "Westermann J, Pabst R 1992 Clin Investig 70:539 (~2% of lymphocytes are in blood)",
     "fraction of CAR-T cells in blood"),
    ("f_T", 0.02, "1", (1e-4, 1.0), "Westermann J, Pabst R 1992 Clin Investig 70:539",
     "fraction of normal T cells in blood"),
    ("f_B", 0.02, "1", (1e-4, 1.0), "Westermann J, Pabst R 1992 Clin Investig 70:539",
     "fraction of normal B cells in blood"),
    ("K_N", 500.0, "cell/uL", (1.0, 1.0e4), "Kimmel GJ et al. 2021 Proc R Soc B 288:20210229 (K_N)",
     "homeostatic T-cell capacity (blood)"),
    ("r_N", 0.1, "1/d", (0.0, 2.0),
     "assumption: T-cell recovery after Flu/Cy over ~1-2 months (cf. Kimmel 2021 r_N 0.17 /d, Gompertz)",
     "normal T-cell turnover"),
    # --- normal B cells and marrow ---------------------------------------------------------
    ("B_n", 200.0, "cell/uL", (1.0, 2000.0), "assumption: adult blood B-cell count 100-500 /uL",
     "normal blood B-cell count with a healthy marrow"),
    ("d_B", 0.02, "1/d", (1e-4, 1.0),
     "assumption: peripheral B-cell turnover 0.5-3 %/d (Macallan DC et al. 2005 Blood 105:3633)",
     "B-cell death rate"),
    ("K_mar", 1.0e12, "cell", (1e9, 1e13), "assumption: order of adult marrow nucleated cellularity",
     "marrow capacity"),
    ("r_H", 0.1, "1/d", (0.0, 2.0), "assumption: normal haematopoietic regrowth over weeks",
     "normal marrow regrowth rate"),
    ("c_LH", 4.5, "1", (0.0, 100.0),
     "assumption: leukaemic blasts suppress normal haematopoiesis more than proportionally (niche takeover)",
     "leukaemic suppression weight"),
    # --- leukaemia -------------------------------------------------------------------------
    ("r_L", 0.05, "1/d", (0.0, 2.0), "assumption: relapsed B-ALL blast doubling ~2 weeks", "leukaemia growth rate"),
    ("r_Lneg", 0.05, "1/d", (0.0, 2.0), "assumption: CD19-negative subclone without fitness cost",
     "CD19-negative growth rate"),
    ("k_out", 0.01, "1/d", (0.0, 10.0), "assumption: ~1% of blasts circulate (blood blasts ~ hundreds /uL)",
     "marrow -> blood egress"),
    ("k_in", 1.0, "1/d", (0.0, 100.0), "assumption: circulating blasts home back within ~1 d",
     "blood -> marrow homing"),
    ("extinction_threshold", 1.0, "cell", (0.0, 1e6),
     "assumption: a population below one cell is extinct (mean-field)", "extinction threshold"),
    # --- observation -----------------------------------------------------------------------
    ("VCN", 1.0, "copies/cell", (0.1, 20.0),
     "assumption: ~1-2 lentiviral copies per transduced (CAR+) cell", "vector copies per CAR-T cell"),
    ("n_DNA", 1.5e5, "cell/ug", (1e5, 2e5),
     "derived: 1 ug / 6.6 pg diploid genomic DNA per cell = 1.5e5 cells/ug", "cells per ug genomic DNA"),
    ("W_o", 1000.0, "cell/uL", (0.0, 2e4),
     "assumption: other blood leukocytes (mostly myeloid) after lymphodepletion", "other blood nucleated cells"),
)

#: default values by name (canonical units)
DEFAULTS: Mapping[str, float] = {p[0]: p[1] for p in _PARAMS}

#: default initial leukaemic burden (marrow, CD19+ and CD19-) and CD19- fraction
L0_MARROW = 2.1e11
NEG_FRACTION = 1.0e-8


def _s(name: str) -> sp.Symbol:
    return sym(name)


def build(*, lymphodepletion: bool = True, leukaemia: float = L0_MARROW,
          neg_fraction: float = NEG_FRACTION) -> Network:
    """Build the default CD19 CAR-T / B-ALL network.

    ``lymphodepletion``: include the Flu/Cy events.  ``leukaemia``: marrow leukaemic cells at
    the start (cells).  ``neg_fraction``: initial CD19-negative fraction of the leukaemia.
    """
    d = DEFAULTS
    params = tuple(
        Param(n, v, unit=u, bounds=b, source=src, description=desc)
        for n, v, u, b, src, desc in _PARAMS
    )
    S = _s
    Vul = S("v_b") * S("weight") * 10**6  # blood volume in µL
    A = S("L_M") + S("L_B") + S("B_N")
    g = m.saturating(A, "K_A")
    x = m.saturating(A, "K_X")
    C = S("C_S") + S("C_E") + S("C_M") + S("C_X")
    Ck = S("C_E") + S("w_m") * (S("C_S") + S("C_M"))
    K_T = S("K_N") * Vul / S("f_T")
    h = m.homeostatic(K_T, S("N_T") + C)
    Lm = S("L_M") + S("Lneg_M")
    B_ref = S("B_n") * Vul / S("f_B")

    def kill(target: str) -> Reaction:
        return m.kill(f"kill_{target}", target, Ck, "k_kill", "K_kill", A, "s_ET")

    reactions = (
        # CAR-T
        m.expand("S_self", "C_S", "k_S", g),
        m.expand("S_homeo", "C_S", "p_h", h),
        m.differentiate("S_to_E", "C_S", "C_E", "k_SE", g),
        m.die("S_death", "C_S", "d_M"),
        m.expand("E_expand", "C_E", "k_exp", g),
        m.die("E_contract", "C_E", "d_E"),
        m.differentiate("E_to_M", "C_E", "C_M", "k_EM"),
        m.differentiate("E_exhaust", "C_E", "C_X", "k_X", x),
        m.expand("M_homeo", "C_M", "p_h", h),
        m.differentiate("M_recall", "C_M", "C_E", "k_ME", g),
        m.die("M_death", "C_M", "d_M"),
        m.die("X_death", "C_X", "d_X"),
        # normal T cells: 2 r_N h N - r_N N, equilibrium at K_T without CAR-T
        m.expand("N_homeo", "N_T", 2 * S("r_N"), h),
        m.die("N_death", "N_T", "r_N"),
        # normal B cells
        m.source("B_prod", "B_N", S("d_B") * B_ref * S("H_M") / S("K_mar")),
        m.die("B_death", "B_N", "d_B"),
        kill("B_N"),
        # leukaemia
        m.logistic_growth("L_grow", "L_M", "r_L"),
        m.crowding_death("L_crowd", "L_M", "r_L", Lm, "K_mar"),
        m.traffic("L_egress", "L_M", "L_B", "k_out"),
        m.traffic("L_home", "L_B", "L_M", "k_in"),
        kill("L_M"),
        kill("L_B"),
        m.logistic_growth("Lneg_grow", "Lneg_M", "r_Lneg"),
        m.crowding_death("Lneg_crowd", "Lneg_M", "r_Lneg", Lm, "K_mar"),
        m.traffic("Lneg_egress", "Lneg_M", "Lneg_B", "k_out"),
        m.traffic("Lneg_home", "Lneg_B", "Lneg_M", "k_in"),
        # normal haematopoiesis
        m.logistic_growth("H_grow", "H_M", "r_H"),
        m.crowding_death("H_crowd", "H_M", "r_H", S("H_M") + S("c_LH") * Lm, "K_mar"),
    )

    # default initial state: leukaemia at its marrow/blood balance, normal marrow at its
    # crowded equilibrium, normal T at capacity, B cells at the production equilibrium
    vul0 = d["v_b"] * d["weight"] * 1e6
    lm0 = float(leukaemia)
    H0 = max(d["K_mar"] - d["c_LH"] * lm0, 0.02 * d["K_mar"])
    ratio = d["k_out"] / d["k_in"]
    N0 = d["K_N"] * vul0 / d["f_T"]
    B0 = d["B_n"] * vul0 / d["f_B"] * H0 / d["K_mar"]
    nf = float(neg_fraction)
    species = (
        Species("C_S", "cell", 0.0, "stem/central-memory-like CAR-T cells"),
        Species("C_E", "cell", 0.0, "effector CAR-T cells"),
        Species("C_M", "cell", 0.0, "memory CAR-T cells"),
        Species("C_X", "cell", 0.0, "exhausted CAR-T cells"),
        Species("N_T", "cell", N0, "normal T cells (body)"),
        Species("B_N", "cell", B0, "normal CD19+ B cells (body)"),
        Species("L_M", "cell", lm0 * (1 - nf), "CD19+ leukaemia, marrow"),
        Species("L_B", "cell", lm0 * (1 - nf) * ratio, "CD19+ leukaemia, blood"),
        Species("Lneg_M", "cell", lm0 * nf, "CD19-negative leukaemia, marrow"),
        Species("Lneg_B", "cell", lm0 * nf * ratio, "CD19-negative leukaemia, blood"),
        Species("H_M", "cell", H0, "normal nucleated marrow cells"),
    )

    cb = S("f_C") * C / Vul
    tb = S("f_T") * S("N_T") / Vul
    bb = S("f_B") * S("B_N") / Vul
    lb = (S("L_B") + S("Lneg_B")) / Vul
    wbc = cb + tb + bb + lb + S("W_o")
    observables = (
        Observable("car_t_blood", cb, "cell/uL", "CAR-T cells per µL blood", role="cart_blood"),
        Observable("transgene", S("VCN") * S("n_DNA") * cb / wbc, "copies/ug",
                   "CAR transgene copies per µg genomic DNA of blood", role="transgene"),
        Observable("blasts_pct", 100 * Lm / (Lm + S("H_M")), "percent", "marrow blasts",
                   role="blasts_pct"),
        Observable("mrd", Lm / (Lm + S("H_M")), "1", "leukaemic fraction of marrow nucleated cells",
                   role="mrd"),
        Observable("b_cells_blood", bb, "cell/uL", "normal B cells per µL blood", role="bcells_blood"),
        Observable("t_cells_blood", tb, "cell/uL", "normal T cells per µL blood"),
        Observable("leukaemia_total", S("L_M") + S("L_B") + S("Lneg_M") + S("Lneg_B"), "cell",
                   "all leukaemic cells", role="tumour_total"),
        Observable("leukaemia_cd19neg", S("Lneg_M") + S("Lneg_B"), "cell",
                   "CD19-negative leukaemic cells", role="tumour_antigen_neg"),
        Observable("car_t_total", C, "cell", "all CAR-T cells in the body"),
    )

    events: list[Event] = []
    if lymphodepletion:
        for i in range(3):
            events.append(Event(
                f"lymphodepletion_{i + 1}", At(S("t_ld") + i),
                {"N_T": S("N_T") * S("ld_surv_T") ** sp.Rational(1, 3),
                 "B_N": S("B_N") * S("ld_surv_B") ** sp.Rational(1, 3)},
                description=f"fludarabine/cyclophosphamide, day {i + 1} of 3"))
    wsum = S("f_S") + S("f_E") + S("f_M")
    events.append(Event(
        "infusion", At(S("t_inf")),
        {"C_S": S("C_S") + S("dose") * S("f_S") / wsum,
         "C_E": S("C_E") + S("dose") * S("f_E") / wsum,
         "C_M": S("C_M") + S("dose") * S("f_M") / wsum},
        description="CAR-T infusion split by product composition"))
    for clone, (mar, bl) in {"cd19pos": ("L_M", "L_B"), "cd19neg": ("Lneg_M", "Lneg_B")}.items():
        events.append(Event(
            f"extinct_{clone}", When(S(mar) + S(bl) - S("extinction_threshold"), -1),
            {mar: 0.0, bl: 0.0}, once=False,
            description=f"{clone} leukaemia (marrow + blood) below the threshold is set to 0"))

    events.append(Event(
        "extinct_car_t", When(C - S("extinction_threshold"), -1),
        {"C_S": 0.0, "C_E": 0.0, "C_M": 0.0, "C_X": 0.0}, once=False,
        description="all CAR-T below the threshold are set to 0 (loss of the product)"))

    return Network(
        name="car_t",
        species=species,
        params=params,
        reactions=reactions,
        observables=observables,
        events=tuple(events),
        reference="livingdrug default CD19 CAR-T model; mechanisms after Stein 2019, Kimmel 2021",
        description="CD19 CAR-T cells (4 phenotypes) in relapsed B-ALL with a CD19-negative subclone",
        meta={
            "dose": {"param": "dose", "time_param": "t_inf"},
            "weight_param": "weight",
            "time_start": -6.0,
            "groups": {
                "CAR-T cells by phenotype": ["C_S", "C_E", "C_M", "C_X"],
                "CAR-T in blood": ["car_t_blood"],
                "CAR transgene": ["transgene"],
                "Leukaemia": ["L_M", "L_B", "Lneg_M", "Lneg_B"],
                "Marrow blasts": ["blasts_pct"],
                "Normal B cells": ["b_cells_blood"],
                "Normal T cells": ["t_cells_blood"],
            },
        },
    )
