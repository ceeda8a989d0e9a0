r"""The platform's default model: CD19 CAR-T cells in relapsed/refractory B-ALL.

Registry name ``"car_t"``.  Amounts are cells in a compartment (body, marrow, blood);
volumes are parameters.  Time in days.  Eleven species (more with the options of
"Clones and lineages" and "CAR+ CD19-masked leukaemia" below):

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
* all CAR-T ``C = C_S + C_E + C_M + C_X``; killing-capable ``C_k = C_E + w_m (C_S + C_M)``
  (summed over every lineage when clones are tracked).
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
   L_M' &= r_L L_M (1 − L_{mar}/K_{mar}) − k_{out} L_M + k_{in} L_B − κ(L_M) \\
   L_B' &= k_{out} L_M − k_{in} L_B − κ(L_B) \\
   Lneg_M' &= r_{L-} Lneg_M (1 − L_{mar}/K_{mar}) − k_{out} Lneg_M + k_{in} Lneg_B \\
   Lneg_B' &= k_{out} Lneg_M − k_{in} Lneg_B \\
   H_M' &= r_H H_M (1 − (H_M + c_{LH} L_{mar})/K_{mar})

with the marrow blasts ``L_mar = L_M + Lneg_M`` (``+ Lcar_M`` with ``car_leukaemia``).
Every logistic term is written as a birth reaction ``r X`` plus a crowding-death reaction
``r X · occupied/K`` so that every propensity is non-negative.

Intrinsic blast death
~~~~~~~~~~~~~~~~~~~~~
Marrow blasts (CD19+, CD19-negative and CAR+ masked) divide at ``r + d_L`` and die at
``d_L`` besides crowding (reactions ``*_grow``, ``*_death``, ``*_crowd``), so the net rate
``r X (1 − L_mar/K_mar)`` — the ODE right-hand side — is unchanged, while the stochastic
engines see a birth–death process for the last cells: one blast with negligible killing and
crowding leaves no descendants with probability ``d_L/(r + d_L)`` (Kendall DG 1948 Ann Math
Stat 19:1); 0.44 with the defaults.  ``d_L = 0.04 /d`` is the apoptosis rate measured in
untreated childhood precursor-B ALL (Br J Haematol 1997 98:999: birth ≈ 10–11 %/d, apoptosis
≈ 4 %/d), which with ``r_L = 0.05 /d`` gives a birth rate of 0.09 /d.  The normal-T-cell law has its
equilibrium at ``N_T = K_T`` (blood ``K_N``) without CAR-T; after lymphodepletion ``h → 1`` and
both normal T and CAR-T memory cells expand homeostatically (the mechanism by which
lymphodepletion helps in Kimmel et al. 2021), slowing as normal T cells refill the niche.

Clones and lineages (``tracked_clones``, ``advantaged_clone``)
-----------------------------------------------------------------
A *lineage* is a set of four CAR-T species, one per phenotype: the bulk ``C_S, C_E, C_M,
C_X`` (every untracked CAR-T cell), each neutral tracked clone ``i = 1 … tracked_clones``
(``C_S_c{i}, C_E_c{i}, C_M_c{i}, C_X_c{i}``) and, with ``advantaged_clone``, the clone ``adv``
(``C_S_adv`` …).  Every lineage has its own copy of the twelve CAR-T reactions above with the
bulk's per-cell rates; the aggregates they respond to — antigen signal ``g``, exhaustion
signal ``x``, the niche factor ``h`` (all CAR-T ``C``) and the killing capacity ``C_k`` — sum
over all lineages.  With any clone the model carries four *phenotype counters*
``C_S_all, C_E_all, C_M_all, C_X_all`` (cells): every CAR-T reaction changes its lineage's
species and, by the same stoichiometry, the counters, so ``C_p_all = C_p + Σ_i C_p_ci``
holds exactly on every engine (it is a linear invariant of the reaction system, kept by the
ODE solvers up to round-off and exactly by the stochastic ones), and ``C``, ``C_k``, ``h`` are
written with the counters.  This keeps the Jacobian sparse (a rate law of clone ``i`` depends
on its own species and the counters only), so 20 clones compile in seconds instead of
minutes; it adds no new biology.

* Founders.  Each tracked clone starts with ``clone_cells`` cells (parameter, default 10: an
  assumption about integration-site clone sizes in a product), all in ONE phenotype so that
  the counts stay integers for the stochastic engines; the phenotype follows
  :func:`clone_founder_phenotypes` (systematic apportionment in proportion to
  ``f_S : f_E : f_M``, evaluated on each patient's parameters).  The advantaged clone starts
  with ``adv_cells`` cells (default 1) in ``C_S_adv`` (the TET2-disrupted clone of Fraietta
  JA et al. 2018 Nature 558:307 had a central-memory phenotype).
* The bulk receives the rest of each phenotype's share of the dose:
  ``C_p ← C_p + max(dose · f_p/w − founders_p, 0)``, so the per-phenotype totals, and hence
  the whole course of the total CAR-T population, are those of the model without clones as
  long as the dose exceeds the founders (``1e8 ≫ 10 × 20``; the ``max`` only keeps a tiny
  dose from giving a negative bulk).
* Heritable traits of ``adv``: ``adv_prolif`` multiplies its antigen-driven (``k_S``,
  ``k_exp``) and homeostatic (``p_h``) proliferation; ``adv_persist`` divides its death,
  contraction and exhaustion rates (``d_M``, ``d_E``, ``k_X``, ``d_X``).  With both 1 it is
  a neutral clone founded in ``C_S``.
* Because the per-cell rates of a neutral clone are those of its phenotype cohort, in the
  ODE each clone stays a fixed fraction of the cells infused in its founding phenotype
  (``clone_cells / (dose · f_p/w)``) and its descendants: a neutral clone's ODE trajectory is
  its *expected* size (mean-field; it may fall below one cell), its fate is a matter for the
  stochastic engines.
* Outputs: observables ``clone_c{i}`` / ``clone_adv`` (cell, all four phenotypes of that clone),
  ``car_t_total`` (all CAR-T, every lineage), plot group ``"CAR-T clones"``;
  ``network.meta["clones"]`` is the ordered mapping ``{"bulk": [C_S, C_E, C_M, C_X],
  "c1": [...], …, "adv": [...]}`` of each lineage's species (always present; only ``bulk``
  without clones) — the input of :mod:`livingdrug.clinical.clonality`.

CAR+ CD19-masked leukaemia (``car_leukaemia``)
----------------------------------------------
Ruella M et al. 2018 Nat Med 24:1499: the CAR was transduced into a single leukaemic B cell
during manufacturing; the CAR bound CD19 on the same cell and masked it, and the patient
relapsed 9 months later with CAR+ CD19-negative-looking leukaemia.  Species ``Lcar_M``
(marrow, cell): it grows like the blasts (birth ``r_L + d_L``, death ``d_L``, the shared
marrow crowding ``L_mar``), is NOT killed by CAR-T cells and is NOT CD19 antigen (not in
``A``); it counts in ``blasts_pct``, ``mrd`` and ``leukaemia_total``, and is reported as the
observable ``leukaemia_car_masked`` (role ``"tumour_car_masked"``; relapse typing in
:func:`livingdrug.clinical.endpoints.ball_response`).  ``n_car_leuk`` cells are added at the
infusion.

Count parameters (``network.meta["count_params"]``).  With ``car_leukaemia`` the model
declares ``{"n_car_leuk": {"mean": λ, "condition": "at_least_one"}}`` where ``λ`` is a sympy
expression of parameters: the product holds ``dose/eta_tx`` cells (the dose counts the CAR+
ones, a fraction ``eta_tx``), a fraction ``f_contam`` of them leukaemic, each transduced with
probability ``eta_tx``, so by Poisson thinning the number of CAR+ leukaemic cells infused is
Poisson with mean ``λ = f_contam · (dose/eta_tx) · eta_tx = f_contam · dose``.  Contract for
a stochastic run pipeline: per replicate, draw the parameter named by the key from
Poisson(``λ`` evaluated on that replicate's parameters); ``"condition": "at_least_one"``
means draw from the zero-truncated Poisson (condition on at least one such cell) and report
``P(N ≥ 1) = 1 − e^{−λ}`` analytically alongside; a deterministic run simply uses the
parameter's value (default 1 cell).

Observation models
------------------
* CAR-T in blood ``c_b = f_C · C / (10⁶ V_b)`` (cell/µL; ``f_C`` fraction of CAR-T in blood).
* Blood nucleated cells ``w = c_b + f_T N_T/10⁶V_b + f_B B_N/10⁶V_b + (L_B+Lneg_B)/10⁶V_b + W_o``
  (cell/µL; ``W_o`` other leukocytes).
* transgene ``q = VCN · (c_b / w) · n_DNA`` (copies/µg).  Derivation: a diploid human cell
  holds ≈ 6.6 pg genomic DNA, so 1 µg DNA ≈ 10⁶ pg / 6.6 pg ≈ 1.5×10⁵ cells (``n_DNA``);
  the fraction of those cells that are CAR-T is ``c_b/w``; each carries ``VCN`` vector copies.
* ``blasts_pct = 100 L_mar/(L_mar + H_M)``; ``mrd`` the same without 100.
* B cells in blood ``f_B B_N / 10⁶V_b`` (cell/µL); normal T cells likewise.

Events
------
* lymphodepletion (fludarabine/cyclophosphamide) on days ``t_ld, t_ld+1, t_ld+2``: each day
  ``N_T ← N_T · s_T^{1/3}``, ``B_N ← B_N · s_B^{1/3}`` (``s_T``, ``s_B`` overall survival).
* infusion at ``t_inf``: the dose is split into ``C_S, C_E, C_M`` by the product composition
  weights ``f_S, f_E, f_M`` (normalised to sum 1); clone founders and ``n_car_leuk`` as
  described above.
* mean-field extinction: when a leukaemic clone (CD19+, CD19-negative or CAR+ masked)
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
from dataclasses import replace

import numpy as np
import sympy as sp

from ..network import At, Event, Network, Observable, Reaction, Species, When, sym
from ..params import Param
from . import motifs as m
from .block import Block, network_with_block
from .cytokines import expansion_factor, toxicity_block

__all__ = ["build", "DEFAULTS", "PHENOTYPES", "clone_founder_phenotypes", "MAX_TRACKED_CLONES"]

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
    ("d_L", 0.04, "1/d", (0.0, 2.0),
     "Br J Haematol 1997 98:999 (PMID 9326202): untreated childhood precursor-B ALL, cell birth ~10-11 %/d, apoptosis ~4 %/d",
     "intrinsic death rate of leukaemic blasts (birth is r + d_L)"),
    ("k_out", 0.01, "1/d", (0.0, 10.0), "assumption: ~1% of blasts circulate (blood blasts ~ hundreds /uL)",
     "marrow -> blood egress"),
    ("k_in", 1.0, "1/d", (0.0, 100.0), "assumption: circulating blasts home back within ~1 d",
     "blood -> marrow homing"),
    ("extinction_threshold", 0.5, "cell", (0.0, 1e6),
     "assumption: a population below half a cell is extinct (mean-field); for whole-cell counts "
     "(stochastic engines) the event fires only when the last cell is gone",
     "extinction threshold"),
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


# option-dependent parameters (added only when the option is on, so the default parameter
# vector is unchanged): (name, value, unit, bounds, source, description)
_CLONE_PARAMS: tuple[tuple[str, float, str, tuple[float, float], str, str], ...] = (
    ("clone_cells", 10.0, "cell", (1.0, 1.0e6),
     "assumption: cells per integration-site clone in a product (a product of ~1e8 CAR+ cells made from "
     "~1e7 transduced founders expanded ~10-fold ex vivo; each clone is one lentiviral integration site)",
     "founder cells of each tracked clone at infusion"),
)
_ADV_PARAMS: tuple[tuple[str, float, str, tuple[float, float], str, str], ...] = (
    ("adv_cells", 1.0, "cell", (1.0, 1.0e6),
     "assumption: a single founding cell (the TET2-disrupted clone of Fraietta JA et al. 2018 Nature 558:307 "
     "descended from one vector insertion)",
     "founder cells of the advantaged clone (stem/central-memory compartment)"),
    ("adv_prolif", 1.0, "1", (0.0, 10.0),
     "assumption (1 = neutral): TET2 disruption gave a central-memory clone that expanded to 94 % of CAR-T at the "
     "peak (Fraietta JA et al. 2018 Nature 558:307)",
     "multiplier of the advantaged clone's antigen-driven and homeostatic proliferation"),
    ("adv_persist", 1.0, "1", (0.01, 100.0),
     "assumption (1 = neutral): longer persistence of the TET2-disrupted clone (Fraietta JA et al. 2018 "
     "Nature 558:307)",
     "divisor of the advantaged clone's death, contraction and exhaustion rates"),
)
_CARL_PARAMS: tuple[tuple[str, float, str, tuple[float, float], str, str], ...] = (
    ("f_contam", 1.0e-9, "1", (0.0, 0.5),
     "assumption: leukaemic B cells left in a manufactured T-cell product (a rare event: a single "
     "transduced leukaemic cell in Ruella M et al. 2018 Nat Med 24:1499); 1e-9 gives 0.1 expected "
     "CAR+ leukaemic cells at the default dose",
     "leukaemic fraction of the manufactured product's cells"),
    ("eta_tx", 0.174, "1", (1e-3, 1.0),
     "median transduction efficiency 17.4 % (IQR 12-23.1 %) in a national tisagenlecleucel programme "
     "(shared/reference/PUBLISHED.md section 5)",
     "transduction efficiency (CAR+ fraction of the product's cells)"),
    ("n_car_leuk", 1.0, "cell", (0.0, 1.0e6),
     "Ruella M et al. 2018 Nat Med 24:1499 (the CAR was transduced into a single leukaemic B cell); stochastic "
     "runs draw it from Poisson(f_contam * dose) per replicate (meta['count_params'])",
     "CAR+ CD19-masked leukaemic cells infused with the product"),
)

#: the four CAR-T phenotype compartments, in species order
PHENOTYPES = ("S", "E", "M", "X")

#: upper limit of ``tracked_clones`` (each clone adds 4 species and 12 reactions)
MAX_TRACKED_CLONES = 200


def _s(name: str) -> sp.Symbol:
    return sym(name)


def _param_tuple(rows: tuple[tuple[str, float, str, tuple[float, float], str, str], ...]) -> tuple[Param, ...]:
    return tuple(Param(n, v, unit=u, bounds=b, source=src, description=desc) for n, v, u, b, src, desc in rows)


def clone_founder_phenotypes(n_clones: int, f_S: float, f_E: float, f_M: float) -> tuple[str, ...]:
    """Founding phenotype (``"S"``, ``"E"`` or ``"M"``) of tracked clones ``1 … n_clones``.

    Rule (deterministic, systematic apportionment in proportion to the product composition):
    clone ``i`` sits at the quantile ``u_i = (i − ½)/n`` of the product and is founded in

    * ``S`` if ``u_i · w < f_S``,
    * ``E`` if ``f_S ≤ u_i · w < f_S + f_E``,
    * ``M`` otherwise,

    with ``w = f_S + f_E + f_M``.  The number of clones in a phenotype is then
    ``n·F`` rounded to a nearest integer (``F = f/w``), and the counts add up to ``n``; e.g.
    10 clones of the default 0.3 : 0.5 : 0.2 product are 3 S, 5 E, 2 M.  The model's infusion
    event evaluates the same inequalities on each patient's parameters (as sympy
    ``Piecewise``), so this function tells where the model puts each clone.
    """
    n = _clone_count(n_clones)
    w = f_S + f_E + f_M
    out = []
    for i in range(1, n + 1):
        uw = (2 * i - 1) / (2 * n) * w
        out.append("S" if uw < f_S else ("E" if uw < f_S + f_E else "M"))
    return tuple(out)


def _clone_count(n: object) -> int:
    """``tracked_clones`` as an int, or a ``ValueError`` naming the option and what is expected."""
    ok = isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n) and float(n).is_integer()
    if not ok or not 0 <= int(n) <= MAX_TRACKED_CLONES:  # type: ignore[call-overload]
        raise ValueError(
            f"model option tracked_clones = {n!r}: expected a whole number of clones from 0 to "
            f"{MAX_TRACKED_CLONES}; write e.g. tracked_clones = 20"
        )
    return int(n)  # type: ignore[call-overload]


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"model option {name} = {value!r}: expected true or false; write e.g. {name} = true")
    return value


def fraction_option(name: str, value: object) -> float:
    """Model option ``name`` as a fraction in [0, 1], or a ``ValueError`` naming it and the fix."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0.0 <= float(value) <= 1.0:  # type: ignore[arg-type]
        raise ValueError(f"model option {name} = {value!r}: expected a fraction from 0 to 1; write e.g. {name} = 1e-8")
    return float(value)  # type: ignore[arg-type]


def cells_option(name: str, value: object, low: float = 1.0) -> float:
    """Model option ``name`` as a number of cells from ``low`` to 1e13 (car_t allows 0: a patient
    whose only leukaemia is another species; at most a burden a living patient can
    carry), or a ``ValueError`` naming it and the fix."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not low <= float(value) <= 1.0e13:  # type: ignore[arg-type]
        raise ValueError(f"model option {name} = {value!r}: expected a number of cells from {low:g} to 1e13; "
                         f"write e.g. {name} = 2.1e11")
    return float(value)  # type: ignore[arg-type]


def _car_t_reactions(sfx: str, g: sp.Expr, x: sp.Expr, h: sp.Expr,
                     prolif: sp.Expr | float = 1, persist: sp.Expr | float = 1,
                     antigen_factor: sp.Expr | float = 1) -> tuple[Reaction, ...]:
    """The twelve CAR-T reactions of one lineage (bulk ``sfx = ""``, clone ``"_c3"``, ``"_adv"``).

    Per-cell rates are the bulk's; ``prolif`` multiplies antigen-driven and homeostatic
    proliferation, ``persist`` divides death, contraction and exhaustion (the heritable traits
    of the advantaged clone; both 1 for every other lineage).  ``antigen_factor`` multiplies
    antigen-driven proliferation only (steroids, :func:`livingdrug.models.cytokines.expansion_factor`)."""
    cs, ce, cm, cx = (f"C_{p}{sfx}" for p in PHENOTYPES)
    up = sp.sympify(prolif)
    down = 1 / sp.sympify(persist)
    ag = sp.sympify(antigen_factor)
    return (
        m.expand(f"S_self{sfx}", cs, "k_S", up * g * ag),
        m.expand(f"S_homeo{sfx}", cs, "p_h", up * h),
        m.differentiate(f"S_to_E{sfx}", cs, ce, "k_SE", g),
        m.die(f"S_death{sfx}", cs, "d_M", down),
        m.expand(f"E_expand{sfx}", ce, "k_exp", up * g * ag),
        m.die(f"E_contract{sfx}", ce, "d_E", down),
        m.differentiate(f"E_to_M{sfx}", ce, cm, "k_EM"),
        m.differentiate(f"E_exhaust{sfx}", ce, cx, "k_X", down * x),
        m.expand(f"M_homeo{sfx}", cm, "p_h", up * h),
        m.differentiate(f"M_recall{sfx}", cm, ce, "k_ME", g),
        m.die(f"M_death{sfx}", cm, "d_M", down),
        m.die(f"X_death{sfx}", cx, "d_X", down),
    )


#: the patient's B-ALL species shared by the CD19 models (car_t, car_nk), in network order
BALL_SPECIES: Mapping[str, str] = {
    "N_T": "normal T cells (body)",
    "B_N": "normal CD19+ B cells (body)",
    "L_M": "CD19+ leukaemia, marrow",
    "L_B": "CD19+ leukaemia, blood",
    "Lneg_M": "CD19-negative leukaemia, marrow",
    "Lneg_B": "CD19-negative leukaemia, blood",
    "H_M": "normal nucleated marrow cells",
}


#: state covariates of :func:`ball_patient_state` (name → canonical unit)
BALL_COVARIATES: Mapping[str, str] = {"leukaemia": "cell", "neg_fraction": "1"}


def ball_patient_state(p: Mapping[str, float], *, leukaemia: float = L0_MARROW,
                       neg_fraction: float = NEG_FRACTION) -> dict[str, float]:
    r"""The B-ALL patient before treatment (cells), from parameters ``p`` (:data:`DEFAULTS`
    or one virtual patient's values) and the marrow leukaemia ``leukaemia`` = :math:`L` (cell)
    with CD19-negative fraction ``neg_fraction`` = :math:`f`:

    * leukaemia at its marrow/blood balance: :math:`L_M = (1-f)L`, :math:`Lneg_M = fL`,
      blood :math:`= k_{out}/k_{in}` × marrow;
    * normal marrow at its crowded equilibrium :math:`H = \max(K_{mar} - c_{LH}L, 0.02 K_{mar})`;
    * normal T cells at capacity :math:`N_T = K_N V/f_T` with blood volume
      :math:`V = 10^6 v_b W` (µL);
    * B cells at the production equilibrium :math:`B_N = (B_n V/f_B)\, H/K_{mar}`.

    Shared by :mod:`.car_t` and :mod:`.car_nk` (the same patient receives either product) and
    used by virtual populations to set each patient's burden at referral.  Element-wise: ``p``
    values and the covariates may be arrays (one entry per patient), which gives each patient
    the same bits as a call with its own floats.
    """
    lm0 = np.asarray(leukaemia, dtype=float)  # one value, or one per patient
    nf = np.asarray(neg_fraction, dtype=float)
    vul = p["v_b"] * p["weight"] * 1e6
    H0 = np.maximum(p["K_mar"] - p["c_LH"] * lm0, 0.02 * p["K_mar"])
    ratio = p["k_out"] / p["k_in"]
    st = {
        "N_T": p["K_N"] * vul / p["f_T"],
        "B_N": p["B_n"] * vul / p["f_B"] * H0 / p["K_mar"],
        "L_M": lm0 * (1 - nf),
        "L_B": lm0 * (1 - nf) * ratio,
        "Lneg_M": lm0 * nf,
        "Lneg_B": lm0 * nf * ratio,
        "H_M": H0,
    }
    return {k: float(v) if np.ndim(v) == 0 else v for k, v in st.items()}


def _blast_reactions(name: str, x: str, r: str, occupied: sp.Expr) -> tuple[Reaction, ...]:
    """Marrow blasts as a birth–death process with crowding: birth ``(r + d_L) X``, intrinsic
    death ``d_L X``, crowding death ``r X · occupied/K_mar``; net ``r X (1 − occupied/K_mar)``."""
    return (
        m.logistic_growth(f"{name}_grow", x, _s(r) + _s("d_L")),
        m.die(f"{name}_death", x, "d_L"),
        m.crowding_death(f"{name}_crowd", x, r, occupied, "K_mar"),
    )


def build(*, lymphodepletion: bool = True, leukaemia: float = L0_MARROW,
          neg_fraction: float = NEG_FRACTION, tracked_clones: int = 0,
          advantaged_clone: bool = False, car_leukaemia: bool = False, toxicity: bool = True) -> Network:
    """Build the default CD19 CAR-T / B-ALL network.

    ``lymphodepletion``: include the Flu/Cy events.  ``leukaemia``: marrow leukaemic cells at
    the start (cells).  ``neg_fraction``: initial CD19-negative fraction of the leukaemia.

    ``tracked_clones``: number of neutral tracked CAR-T clones (0–200; see "Clones and
    lineages" in the module docstring).  ``advantaged_clone``: add the clone ``adv`` with
    heritable proliferation/persistence traits.  ``car_leukaemia``: add CAR+ CD19-masked
    leukaemic cells ``Lcar_M`` infused with the product.  All three default to off, which gives
    the eleven-species model.

    ``toxicity``: merge the CRS/ICANS mechanism, management drugs and suicide switch of
    :func:`livingdrug.models.cytokines.toxicity_block` (default on; see "Toxicity" in the module
    docstring).  Its species are concentrations, so stochastic engines need ``toxicity = false``.
    Without any drug it leaves the cell dynamics unchanged.
    """
    n_clones = _clone_count(tracked_clones)
    adv = _flag("advantaged_clone", advantaged_clone)
    carl = _flag("car_leukaemia", car_leukaemia)
    tox = _flag("toxicity", toxicity)
    _flag("lymphodepletion", lymphodepletion)
    d = DEFAULTS
    rows = _PARAMS + (_CLONE_PARAMS if n_clones else ()) + (_ADV_PARAMS if adv else ()) + (_CARL_PARAMS if carl else ())
    params = _param_tuple(rows)
    S = _s

    # lineages: bulk, c1 … cN, adv (ordered); each has the four phenotype species
    lineages: dict[str, str] = {"bulk": ""}
    for i in range(1, n_clones + 1):
        lineages[f"c{i}"] = f"_c{i}"
    if adv:
        lineages["adv"] = "_adv"
    clones_meta = {name: [f"C_{p}{sfx}" for p in PHENOTYPES] for name, sfx in lineages.items()}

    Vul = S("v_b") * S("weight") * 10**6  # blood volume in µL
    A = S("L_M") + S("L_B") + S("B_N")  # CD19 antigen: CAR+ masked blasts are invisible
    g = m.saturating(A, "K_A")
    x = m.saturating(A, "K_X")
    # all CAR-T cells by phenotype: the bulk species themselves, or with clones the phenotype
    # counters C_p_all (= bulk + every clone; see "Clones and lineages" in the module docstring)
    counted = len(lineages) > 1
    tot = {p: S(f"C_{p}_all") if counted else S(f"C_{p}") for p in PHENOTYPES}
    C = tot["S"] + tot["E"] + tot["M"] + tot["X"]
    Ck = tot["E"] + S("w_m") * (tot["S"] + tot["M"])
    K_T = S("K_N") * Vul / S("f_T")
    h = m.homeostatic(K_T, S("N_T") + C)
    Lm = S("L_M") + S("Lneg_M") + (S("Lcar_M") if carl else 0)
    B_ref = S("B_n") * Vul / S("f_B")

    def kill(target: str) -> Reaction:
        return m.kill(f"kill_{target}", target, Ck, "k_kill", "K_kill", A, "s_ET")

    ag = expansion_factor() if tox else sp.Integer(1)
    car_t: list[Reaction] = []
    for name, sfx in lineages.items():
        if name == "adv":
            rs = _car_t_reactions(sfx, g, x, h, S("adv_prolif"), S("adv_persist"), antigen_factor=ag)
        else:
            rs = _car_t_reactions(sfx, g, x, h, antigen_factor=ag)
        car_t += [_counted(r, sfx) for r in rs] if counted else rs
    reactions = (
        *car_t,
        # normal T cells: 2 r_N h N - r_N N, equilibrium at K_T without CAR-T
        m.expand("N_homeo", "N_T", 2 * S("r_N"), h),
        m.die("N_death", "N_T", "r_N"),
        # normal B cells
        m.source("B_prod", "B_N", S("d_B") * B_ref * S("H_M") / S("K_mar")),
        m.die("B_death", "B_N", "d_B"),
        kill("B_N"),
        # leukaemia (birth r + d_L, death d_L, crowding; see the module docstring)
        *_blast_reactions("L", "L_M", "r_L", Lm),
        m.traffic("L_egress", "L_M", "L_B", "k_out"),
        m.traffic("L_home", "L_B", "L_M", "k_in"),
        kill("L_M"),
        kill("L_B"),
        *_blast_reactions("Lneg", "Lneg_M", "r_Lneg", Lm),
        m.traffic("Lneg_egress", "Lneg_M", "Lneg_B", "k_out"),
        m.traffic("Lneg_home", "Lneg_B", "Lneg_M", "k_in"),
        *(_blast_reactions("Lcar", "Lcar_M", "r_L", Lm) if carl else ()),
        # normal haematopoiesis
        m.logistic_growth("H_grow", "H_M", "r_H"),
        m.crowding_death("H_crowd", "H_M", "r_H", S("H_M") + S("c_LH") * Lm, "K_mar"),
    )

    st = ball_patient_state(d, leukaemia=cells_option("leukaemia", leukaemia, low=0.0),
                            neg_fraction=fraction_option("neg_fraction", neg_fraction))
    phen_desc = {"S": "stem/central-memory-like", "E": "effector", "M": "memory", "X": "exhausted"}
    clone_species = tuple(
        Species(f"C_{p}{sfx}", "cell", 0.0, f"{phen_desc[p]} CAR-T cells of clone {name}")
        for name, sfx in lineages.items() if name != "bulk" for p in PHENOTYPES
    )
    species = (
        Species("C_S", "cell", 0.0, "stem/central-memory-like CAR-T cells"),
        Species("C_E", "cell", 0.0, "effector CAR-T cells"),
        Species("C_M", "cell", 0.0, "memory CAR-T cells"),
        Species("C_X", "cell", 0.0, "exhausted CAR-T cells"),
        *(Species(n, "cell", st[n], BALL_SPECIES[n]) for n in BALL_SPECIES),
        *clone_species,
        *(Species(f"C_{p}_all", "cell", 0.0, f"all {phen_desc[p]} CAR-T cells (bulk + tracked clones)")
          for p in (PHENOTYPES if counted else ())),
        *((Species("Lcar_M", "cell", 0.0, "CAR+ CD19-masked leukaemia, marrow"),) if carl else ()),
    )

    cb = S("f_C") * C / Vul
    tb = S("f_T") * S("N_T") / Vul
    bb = S("f_B") * S("B_N") / Vul
    lb = (S("L_B") + S("Lneg_B")) / Vul
    wbc = cb + tb + bb + lb + S("W_o")
    total_leuk = S("L_M") + S("L_B") + S("Lneg_M") + S("Lneg_B") + (S("Lcar_M") if carl else 0)
    clone_obs = tuple(
        Observable(f"clone_{name}", sp.Add(*(S(n) for n in names)), "cell",
                   f"all CAR-T cells of clone {name} (4 phenotypes)")
        for name, names in clones_meta.items() if name != "bulk"
    )
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
        Observable("leukaemia_total", total_leuk, "cell", "all leukaemic cells", role="tumour_total"),
        Observable("leukaemia_cd19neg", S("Lneg_M") + S("Lneg_B"), "cell",
                   "CD19-negative leukaemic cells", role="tumour_antigen_neg"),
        Observable("car_t_total", C, "cell", "all CAR-T cells in the body"),
        *clone_obs,
        *((Observable("leukaemia_car_masked", S("Lcar_M"), "cell",
                      "CAR+ CD19-masked leukaemic cells (invisible to CAR-T)", role="tumour_car_masked"),)
          if carl else ()),
    )

    events: list[Event] = []
    if lymphodepletion:
        for i in range(3):
            events.append(Event(
                f"lymphodepletion_{i + 1}", At(S("t_ld") + i),
                {"N_T": S("N_T") * S("ld_surv_T") ** sp.Rational(1, 3),
                 "B_N": S("B_N") * S("ld_surv_B") ** sp.Rational(1, 3)},
                description=f"fludarabine/cyclophosphamide, day {i + 1} of 3"))
    events.append(Event("infusion", At(S("t_inf")), _infusion(n_clones, adv, carl, counted),
                        description="CAR-T infusion split by product composition"))
    for clone, (mar, bl) in {"cd19pos": ("L_M", "L_B"), "cd19neg": ("Lneg_M", "Lneg_B")}.items():
        events.append(Event(
            f"extinct_{clone}", When(S(mar) + S(bl) - S("extinction_threshold"), -1),
            {mar: 0.0, bl: 0.0}, once=False,
            description=f"{clone} leukaemia (marrow + blood) below the threshold is set to 0"))
    if carl:
        events.append(Event(
            "extinct_car_masked", When(S("Lcar_M") - S("extinction_threshold"), -1),
            {"Lcar_M": 0.0}, once=False,
            description="CAR+ CD19-masked leukaemia below the threshold is set to 0"))

    events.append(Event(
        "extinct_car_t", When(C - S("extinction_threshold"), -1),
        {n: 0.0 for n in [*(x for names in clones_meta.values() for x in names),
                           *((f"C_{p}_all" for p in PHENOTYPES) if counted else ())]}, once=False,
        description="all CAR-T below the threshold are set to 0 (loss of the product)"))

    groups: dict[str, list[str]] = {
        "CAR-T cells by phenotype": [str(v) for v in tot.values()],
        "CAR-T in blood": ["car_t_blood"],
        "CAR transgene": ["transgene"],
        "Leukaemia": ["L_M", "L_B", "Lneg_M", "Lneg_B", *(["Lcar_M"] if carl else [])],
        "Marrow blasts": ["blasts_pct"],
        "Normal B cells": ["b_cells_blood"],
        "Normal T cells": ["t_cells_blood"],
    }
    if clone_obs:
        groups["CAR-T clones"] = [o.name for o in clone_obs]
    meta: dict = {
        "dose": {"param": "dose", "time_param": "t_inf"},
        "weight_param": "weight",
        "time_start": -6.0,
        "groups": groups,
        "clones": clones_meta,
    }
    if carl:
        # expected CAR+ leukaemic cells infused: dose/eta_tx product cells, a fraction f_contam
        # leukaemic, each transduced with probability eta_tx (Poisson thinning)
        lam = S("f_contam") * (S("dose") / S("eta_tx")) * S("eta_tx")
        meta["count_params"] = {"n_car_leuk": {"mean": lam, "condition": "at_least_one"}}
    desc = "CD19 CAR-T cells (4 phenotypes) in relapsed B-ALL with a CD19-negative subclone"
    if n_clones or adv:
        desc += f"; {n_clones} tracked CAR-T clone(s)" + (" and an advantaged clone" if adv else "")
    if carl:
        desc += "; CAR+ CD19-masked leukaemia from the product"
    block = Block()
    if tox:
        desc += "; cytokines, CRS/ICANS, management drugs and suicide switch"
        lineage_of = {n: sfx for name, sfx in lineages.items() for n in clones_meta[name]}
        killing = sp.Add(*(r.rate for r in reactions if r.name in ("kill_L_M", "kill_L_B", "kill_B_N")))
        block = toxicity_block(engaged=Ck * g, car_species=list(lineage_of), volume_ul=Vul, weight_kg=S("weight"),
                               killing=killing)
        if counted:  # the switch's elimination reactions also change the phenotype counters
            block = replace(block, reactions=tuple(
                _counted(r, lineage_of[r.name.removeprefix("switch_kill_")]) if r.name.startswith("switch_kill_")
                else r for r in block.reactions))
    return network_with_block(
        block,
        name="car_t",
        species=species,
        params=params,
        reactions=reactions,
        observables=observables,
        events=tuple(events),
        reference="livingdrug default CD19 CAR-T model; mechanisms after Stein 2019, Kimmel 2021; "
                  "clones after Fraietta 2018, CAR+ leukaemia after Ruella 2018"
                  + ("; CRS after Giavridis 2018" if tox else ""),
        description=desc,
        meta=meta,
    )


def _counted(r: Reaction, sfx: str) -> Reaction:
    """``r`` (a reaction of lineage ``sfx``) also changes the phenotype counters ``C_p_all``."""
    stoich = dict(r.stoich)
    for p in PHENOTYPES:
        v = r.stoich.get(f"C_{p}{sfx}", 0)
        if v:
            stoich[f"C_{p}_all"] = stoich.get(f"C_{p}_all", 0) + v
    return replace(r, stoich=stoich)


def _infusion(n_clones: int, adv: bool, carl: bool, counted: bool) -> dict[str, sp.Expr]:
    """Assignments of the infusion event (see "Clones and lineages" in the module docstring)."""
    S = _s
    wsum = S("f_S") + S("f_E") + S("f_M")
    share = {p: S("dose") * S(f"f_{p}") / wsum for p in ("S", "E", "M")}
    assign: dict[str, sp.Expr] = {}
    founders: dict[str, sp.Expr] = {"S": sp.Integer(0), "E": sp.Integer(0), "M": sp.Integer(0)}
    for i in range(1, n_clones + 1):
        uw = sp.Rational(2 * i - 1, 2 * n_clones) * wsum
        ind = {
            "S": sp.Piecewise((1, uw < S("f_S")), (0, True)),
            "E": sp.Piecewise((0, uw < S("f_S")), (1, uw < S("f_S") + S("f_E")), (0, True)),
            "M": sp.Piecewise((0, uw < S("f_S") + S("f_E")), (1, True)),
        }
        for p in ("S", "E", "M"):
            name = f"C_{p}_c{i}"
            assign[name] = S(name) + S("clone_cells") * ind[p]
            founders[p] += S("clone_cells") * ind[p]
    if adv:
        assign["C_S_adv"] = S("C_S_adv") + S("adv_cells")
        founders["S"] += S("adv_cells")
    for p in ("S", "E", "M"):
        if founders[p] == 0:
            bulk = share[p]
        else:  # the bulk makes up the rest of this phenotype's share of the dose
            bulk = sp.Max(share[p] - founders[p], 0)
        assign[f"C_{p}"] = S(f"C_{p}") + bulk
        if counted:
            assign[f"C_{p}_all"] = S(f"C_{p}_all") + bulk + founders[p]
    if carl:
        assign["Lcar_M"] = S("Lcar_M") + S("n_car_leuk")
    return assign
