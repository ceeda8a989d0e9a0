r"""Cytokine release syndrome (CRS), neurotoxicity (ICANS), their management and the suicide switch.

:func:`toxicity_block` returns a :class:`~livingdrug.models.block.Block` that any disease model
merges into its network (B-ALL in :mod:`livingdrug.models.car_t`; lymphoma and myeloma in
``tumours.py``).  Its inputs are the model's *antigen-engaged, killing-capable* CAR cells
``E`` (cells, e.g. ``C_k · g(A)``), optionally the rate ``κ`` at which they kill
antigen-positive cells (cell/d; debris of pyroptotic targets activates macrophages, Liu Y et
al. 2020 Sci Immunol 5:eaax7969), the list of CAR species (on which the suicide switch and
steroids act) and the blood volume ``V`` (µL).  Time in days; cytokines in pg/mL.

Mechanism (Giavridis T et al. 2018 Nat Med 24:731; Norelli M et al. 2018 Nat Med 24:739):
CAR-T cells engaged on antigen release IFN-γ/GM-CSF; these activate the *host's* monocytes
and macrophages, which make the IL-6 and IL-1 that drive CRS (the CAR-T cells' own cytokines
do not drive it directly); IL-1 amplifies IL-6 release; cytokines activate the endothelium
(capillary leak → hypotension and hypoxia) and, more slowly, the brain (ICANS).

Equations
---------
Occupancies ``θ_X = C_X/(C_X + EC50_X)`` of tocilizumab (T), dexamethasone (D), anakinra (A),
rimiducid (R) — pharmacokinetics in :mod:`livingdrug.models.drugs`.  ``V_mL = V/1000``.
First-order rates come from half-lives, ``k = ln 2/t½``; IL-6 clearance ``ln 2/t½`` splits
into a linear part ``k_6 = (1 − f_R) ln 2/t½`` and a receptor-mediated part
``k_6R = f_R ln 2/t½``.  Squared (Hill 2) drives make macrophage activation a threshold
response, so neither baseline IFN-γ nor the slow killing of newly made B cells during
B-cell aplasia keeps IL-6 up.

.. math::

   I' &= σ_I E (1 + a_{act} P_{act}) / V_{mL} − k_I I  && \text{CAR-T-derived IFN-γ (pg/mL; serum level } I_0 + I) \\
   P_{act}' &= −\frac{\ln 2}{t_{½,act}} P_{act},\quad P_{act} ← 1 \text{ at the infusion} && \text{ex vivo activation of the product} \\
   u &= (I/K_I)^2 + (κ/K_{lys})^2,\quad
   M' = k_M \frac{u}{1 + u}(1 − e_{mac} θ_D)(1 − M) − k_{M,off} M  && \text{activated macrophage fraction} \\
   S_1 &= L_1 (1 − θ_A)                                                && \text{IL-1 signalling (pg/mL)} \\
   L_1' &= k_1 L_{1,0} + σ_1 M − k_1 L_1                            && \text{IL-1 (pg/mL)} \\
   L_6' &= (k_{6} + k_{6R}) L_{6,0} + σ_6 M (1 + a_1 \frac{S_1}{S_1 + K_{1a}}) − (k_6 + k_{6R}(1 − θ_T)) L_6
                                                                      && \text{serum IL-6 (pg/mL)} \\
   S_6 &= L_6 (1 − θ_T)                                                && \text{IL-6 signalling (pg/mL)} \\
   D_E &= S_6/K_{6E} + S_1/K_{1E},\quad
   En' = k_{En} \frac{D_E}{1 + D_E}(1 − En) − k_{En,off} En          && \text{endothelial activation (0–1)} \\
   D_N &= En/K_{EnN} + S_1/K_{1N} + L_6/K_{6N},\quad
   Nx' = k_N \frac{D_N}{1 + D_N}(1 − e_{neuro} θ_D)(1 − Nx) − k_{N,off} Nx && \text{neuroinflammation (0–1)}

Tocilizumab blocks the IL-6 receptor, so it lowers IL-6 *signalling* ``S_6`` while the
receptor-mediated part ``k_6R`` of IL-6 clearance falls with the occupancy and serum IL-6
*rises* (Nishimoto N et al. 2008 Blood 112:3959).  Serum (not signalling) IL-6 enters the
neuroinflammatory drive: tocilizumab does not cross the blood–brain barrier and does not
prevent ICANS (Lee DW et al. 2019 BBMT 25:625).  Steroids also scale antigen-driven CAR
proliferation by :func:`expansion_factor` (the disease model multiplies its proliferation
rates by it).  Suicide switch: every CAR species ``X`` loses ``k_casp θ_R φ X`` per day
(:mod:`livingdrug.models.drugs`).

Clinical signs (observables; contract of issue 4)
-------------------------------------------------
* fever drive ``D_T = S_6/K_{6T} + S_1/K_{1T}``; ``temperature_c = T_0 + ΔT · D_T²/(1 + D_T²) ·
  (1 − e_mac θ_D)`` (°C).
* ``sbp_mmhg = SBP_0 − ΔSBP · En`` (mmHg): the systolic pressure the disease would give
  *without* vasopressors (the model has no haemodynamic feedback of treatment).
* ``vasopressors_n``: 0 if ``SBP ≥ SBP_v1`` (hypotension, if any, responds to fluids), 1 if
  ``SBP_v2 ≤ SBP < SBP_v1``, 2 below ``SBP_v2`` (vasopressin not counted).
* oxygen need ``F = F_max (En − θ_O2)/(1 − θ_O2)`` (L/min; negative = none needed):
  ``o2_flow_l_min = max(F, 0)``; ``o2_level`` 0 if ``F ≤ 0``, 1 if ``F ≤ 6`` (low-flow cannula),
  2 if ``F ≤ F_pp`` (high flow / facemask), 3 above (positive pressure).
* ``anticytokine_given`` = the flag species ``acyt_flag`` (set by tocilizumab, steroid and
  anakinra doses; no reaction changes it).
* neurological signs from ``Nx`` with thresholds ``n_lo < n_hi`` (ICE) and ``n_*``:
  ``ice_score = 10 − round(10 · clip((Nx − n_lo)/(n_hi − n_lo), 0, 1))``;
  ``consciousness_level`` = number of ``n_voice, n_touch, n_coma`` reached;
  ``seizure_level`` = number of ``n_seizure, n_status`` reached; ``motor_weakness`` =
  ``[Nx ≥ n_motor]``; ``cerebral_edema_level`` = number of ``n_edema, n_edema_diffuse`` reached.

In-model grades and management rules
------------------------------------
The rules read the ASTCT grades (Lee DW et al. 2019 Biol Blood Marrow Transplant 25:625) of
these signs through *continuous margins* (positive while the grade is at least ``k``), so the
ODE engine locates each rule's onset by root finding on a continuous function:

* fever ``f = max(T − 38, flag − ½)`` (fever is not required once anti-cytokine therapy was
  given);
* hypotension margins ``h_2 = SBP_hyp − SBP``, ``h_3 = SBP_v1 − SBP``, ``h_4 = SBP_v2 − SBP``;
  hypoxia margins ``o_2 = F``, ``o_3 = F − 6``, ``o_4 = F − F_pp``;
* CRS grade ≥ 1: ``max(T − 38, min(flag − ½, max(h_2, o_2)))``; grade ≥ k (k = 2, 3, 4):
  ``min(f, max(h_k, o_k))`` (the worse of hypotension and hypoxia);
* ICANS grade ≥ k: ``Nx − n_(k)`` where ``n_(k)`` is the lowest ``Nx`` at which any domain
  reaches grade k (ICE ≤ 9 / ≤ 6 / ≤ 2; consciousness; seizures; motor; oedema).

The observables ``crs_grade_model`` and ``icans_grade_model`` count the margins that are ≥ 0;
they are what the rules see (clinical grading of any signs, measured or simulated, is
:mod:`livingdrug.clinical.grading`).  Rules are parameters (unit 1; 1–4 = "at grade ≥ k";
any value above 4, e.g. the default 9, = never), so scenarios set them in ``[parameters]``:

============================  =================================================================
``tcz_at_crs_grade``          tocilizumab when CRS grade ≥ k; repeated after ``tcz_interval``
                              (8 h) while it holds, at most ``tcz_max_doses`` (4)
``steroids_at_crs_grade``     dexamethasone when CRS grade ≥ k …
``steroids_at_icans_grade``   … or ICANS grade ≥ k; every ``dex_interval`` (6 h) while either
                              holds, at most ``dex_max_doses`` (12)
``anakinra_at_crs_grade``     anakinra when CRS grade ≥ k; every 6 h, at most 8 doses
``switch_at_crs_grade``       rimiducid (suicide switch) once, when CRS grade ≥ k
``switch_at_icans_grade``     … or ICANS grade ≥ k (added here beyond the shared contract)
============================  =================================================================

Each tocilizumab, dexamethasone or anakinra dose sets ``anticytokine_given``.

Product activation: the CAR-T product is activated ex vivo (anti-CD3/CD28, IL-2) and arrives
secreting more IFN-γ/GM-CSF per engaged cell; the state ``P_act`` (set to 1 by the event
``product_activation`` at ``t_infusion``, default the parameter ``t_inf``) wanes with
half-life ``act_thalf`` (2.5 d) and multiplies secretion by ``1 + a_act P_act`` (``a_act`` = 30;
assumption, calibrated; product polyfunctionality goes with CRS, Rossi J et al. 2018 Blood
132:804).  It gives the early fever of the trials and makes severity rise with dose although
the cell models' CAR-T peak is set by the tumour: a bigger dose engages the tumour while the
product is still activated.  ``overrides`` lets a disease builder set its own defaults of
:data:`TOX_PARAMS` (``{name: (value, source)}``, e.g. myeloma's ``sigma_ifng``).

Calibration (``tests/unit/test_cytokines.py``, ``tests/unit/test_models_tumours.py``): the
default B-ALL patient (2.1e11 leukaemic cells, 1e8 CAR-T) has CRS from day 3.0 reaching grade 3
and ICANS from day 5.25, grade 2 (ELIANA median onset 3 d, range 1–22, 46 % grade 3–4; Maude
SL et al. 2018 NEJM 378:439); LBCL (``cd19-lbcl``) onset day 3.75, grade 2 (ZUMA-1 median 2 d,
13 % grade ≥ 3; Neelapu SS et al. 2017 NEJM 377:2531); myeloma (``bcma-myeloma``) onset day
2.5, grade 2 (KarMMa median 1 d, 5 % grade ≥ 3; Munshi NC et al. 2021 NEJM 384:705).  Peak
IL-6 rises with marrow burden (ordered as the CAR-T peak) and strictly with dose, and the
grade does not fall with either (Hay KA et al. 2017 Blood 130:2295); ICANS follows CRS.
Tables: docs/models.md.
This is a research model, not a clinical tool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import sympy as sp

from ..network import At, Event, Observable, Reaction, Species, When, sym
from ..params import Param
from . import drugs as dr
from .block import Block, combine, network_with_block
from .drugs import expansion_factor

__all__ = [
    "Block",
    "toxicity_block",
    "expansion_factor",
    "network_with_block",
    "combine",
    "TOX_PARAMS",
    "RULE_PARAMS",
    "CLINICAL_SIGNS",
]

_H = 1.0 / 24.0
_LN2 = math.log(2.0)

#: the observables of the issue-4 contract (name = role), in order
CLINICAL_SIGNS = (
    "temperature_c", "sbp_mmhg", "vasopressors_n", "o2_level", "o2_flow_l_min", "anticytokine_given",
    "ice_score", "consciousness_level", "seizure_level", "motor_weakness", "cerebral_edema_level",
)


def _p(name: str, value: float, unit: str, bounds: tuple[float, float], source: str, desc: str) -> Param:
    return Param(name, value, unit=unit, bounds=bounds, source=source, description=desc)


_TEACHEY = "Teachey DT et al. 2016 Cancer Discov 6:664 (cytokine peaks in severe CRS after CTL019)"

#: mechanism parameters (cytokines, endothelium, neuroinflammation, sign mapping)
TOX_PARAMS: tuple[Param, ...] = (
    # --- IFN-gamma from engaged CAR-T ------------------------------------------------------
    _p("ifng_0", 5.0, "pg/mL", (0.0, 1e3), "assumption: healthy serum IFN-gamma of a few pg/mL", "baseline IFN-gamma"),
    _p("sigma_ifng", 0.001, "pg/cell/d", (0.0, 1e3),
       f"assumption: calibrated so IFN-gamma peaks at hundreds of pg/mL in severe CRS ({_TEACHEY})",
       "IFN-gamma/GM-CSF secretion per engaged CAR cell"),
    _p("a_act", 30.0, "1", (0.0, 100.0),
       "assumption: calibrated; the product is activated ex vivo (anti-CD3/CD28, IL-2) and its cells and their "
       "progeny secrete several-fold more IFN-gamma/GM-CSF per engaged cell early after infusion (product "
       "polyfunctionality is associated with CRS: Rossi J et al. 2018 Blood 132:804)",
       "extra IFN-gamma secretion of freshly infused (ex vivo activated) CAR cells, relative"),
    _p("act_thalf", 2.5, "d", (1e-2, 100.0),
       "assumption: the ex vivo activation state of the product wanes over days in vivo",
       "half-life of the product's ex vivo activation state"),
    _p("ifng_thalf", 2.0 * _H, "d", (1e-3, 10.0), "assumption: serum IFN-gamma half-life of hours",
       "IFN-gamma half-life"),
    # --- macrophages --------------------------------------------------------------------------
    _p("K_ifng", 1000.0, "pg/mL", (1e-3, 1e6), "assumption: calibrated; IFN-gamma of ~1000 pg/mL activates macrophages half-maximally",
       "IFN-gamma at half-maximal macrophage activation"),
    _p("K_lysis", 1.2e11, "cell/d", (1.0, 1e15),
       "assumption: calibrated; pyroptotic target cells release DAMPs that activate macrophages (Liu Y et al. 2020 "
       "Sci Immunol 5:eaax7969)",
       "killing rate giving unit macrophage-activating drive"),
    _p("k_mac", 2.0, "1/d", (0.0, 100.0), "assumption: monocytes/macrophages activate within a day",
       "macrophage activation rate"),
    _p("k_mac_off", 1.0, "1/d", (0.0, 100.0), "assumption: activation decays over ~1 d without stimulus",
       "macrophage deactivation rate"),
    # --- IL-6 ---------------------------------------------------------------------------------
    _p("il6_0", 3.0, "pg/mL", (0.0, 1e3), "assumption: healthy serum IL-6 < 5 pg/mL", "baseline serum IL-6"),
    _p("sigma_il6", 8000.0, "pg/mL/d", (0.0, 1e8),
       f"assumption: calibrated so IL-6 peaks at thousands of pg/mL in severe CRS ({_TEACHEY}); "
       "source: recipient macrophages (Giavridis T et al. 2018 Nat Med 24:731)",
       "IL-6 release by fully activated macrophages"),
    _p("il6_thalf", 4.0 * _H, "d", (1e-3, 10.0), "assumption: serum IL-6 half-life of hours",
       "IL-6 half-life without tocilizumab"),
    _p("f_il6R", 0.8, "1", (0.0, 1.0),
       "assumption: most IL-6 clearance is receptor-mediated, so serum IL-6 rises several-fold after IL-6R blockade "
       "(Nishimoto N et al. 2008 Blood 112:3959)",
       "receptor-mediated fraction of IL-6 clearance"),
    _p("a_il1", 1.0, "1", (0.0, 100.0),
       "assumption: IL-1 signalling up to doubles macrophage IL-6 release (Giavridis T et al. 2018 Nat Med 24:731; "
       "Norelli M et al. 2018 Nat Med 24:739: IL-1 blockade also lowers IL-6)",
       "maximal IL-1 amplification of IL-6 release"),
    _p("K_il1_amp", 10.0, "pg/mL", (1e-3, 1e6), "assumption", "IL-1 signalling at half-maximal IL-6 amplification"),
    # --- IL-1 ---------------------------------------------------------------------------------
    _p("il1_0", 1.0, "pg/mL", (0.0, 1e3), "assumption: serum IL-1beta near detection limits", "baseline IL-1"),
    _p("sigma_il1", 250.0, "pg/mL/d", (0.0, 1e6),
       "assumption: calibrated to serum IL-1 of tens of pg/mL in severe CRS", "IL-1 release by fully activated macrophages"),
    _p("il1_thalf", 2.0 * _H, "d", (1e-3, 10.0), "assumption: IL-1beta half-life of hours", "IL-1 half-life"),
    # --- endothelium ------------------------------------------------------------------------
    _p("K_il6_endo", 6000.0, "pg/mL", (1e-3, 1e8),
       "assumption: calibrated so a high marrow burden gives grade 3 CRS and a lower one grade 2 (Hay KA et al. 2017 Blood 130:2295)", "IL-6 signalling scale of endothelial drive"),
    _p("K_il1_endo", 120.0, "pg/mL", (1e-3, 1e8), "assumption", "IL-1 signalling scale of endothelial drive"),
    _p("k_endo", 2.0, "1/d", (0.0, 100.0), "assumption: capillary leak develops over ~1 d", "endothelial activation rate"),
    _p("k_endo_off", 0.35, "1/d", (0.0, 100.0),
       "assumption: endothelial activation (angiopoietin-2, vWF) resolves over days", "endothelial recovery rate"),
    # --- neuroinflammation ------------------------------------------------------------------
    _p("K_endo_neuro", 0.8, "1", (1e-3, 100.0),
       "assumption: blood-brain-barrier disruption follows endothelial activation (Gust J et al. 2017 Cancer Discov 7:1404)",
       "endothelial activation scale of the neuroinflammatory drive"),
    _p("K_il1_neuro", 50.0, "pg/mL", (1e-3, 1e8), "assumption: IL-1 drives neuroinflammation (Norelli M et al. 2018 Nat Med 24:739)",
       "IL-1 signalling scale of the neuroinflammatory drive"),
    _p("K_il6_neuro", 20000.0, "pg/mL", (1e-3, 1e9), "assumption: serum IL-6 reaches the CSF", "serum IL-6 scale of the neuroinflammatory drive"),
    _p("k_neuro", 0.6, "1/d", (0.0, 100.0),
       "assumption: ICANS follows CRS by days (Lee DW et al. 2019 BBMT 25:625; Gust J et al. 2017 Cancer Discov 7:1404)",
       "neuroinflammation rate"),
    _p("k_neuro_off", 0.25, "1/d", (0.0, 100.0), "assumption: ICANS resolves over days to weeks", "neuroinflammation recovery rate"),
    # --- sign mapping -----------------------------------------------------------------------
    _p("temp_0", 37.0, "degC", (35.0, 38.0), "normal body temperature", "baseline temperature"),
    _p("temp_rise", 3.5, "degC", (0.0, 6.0), "assumption: CRS fevers reach 40-41 degC", "maximal fever"),
    _p("K_il6_fever", 100.0, "pg/mL", (1e-3, 1e8), "assumption: fever with IL-6 signalling of tens of pg/mL", "IL-6 signalling scale of fever"),
    _p("K_il1_fever", 15.0, "pg/mL", (1e-3, 1e8), "assumption: IL-1 is pyrogenic", "IL-1 signalling scale of fever"),
    _p("sbp_0", 120.0, "mmHg", (60.0, 200.0), "normal adult systolic blood pressure", "baseline systolic pressure"),
    _p("sbp_drop", 70.0, "mmHg", (0.0, 150.0), "assumption: full capillary leak gives SBP ~50 mmHg untreated", "maximal fall of systolic pressure"),
    _p("sbp_hypo", 90.0, "mmHg", (40.0, 150.0), "Lee DW et al. 2019 BBMT 25:625 (adult hypotension: SBP < 90 mmHg)",
       "hypotension threshold"),
    _p("sbp_vaso1", 80.0, "mmHg", (30.0, 150.0), "assumption: below ~80 mmHg fluids do not suffice, one vasopressor",
       "systolic pressure below which one vasopressor is needed"),
    _p("sbp_vaso2", 70.0, "mmHg", (20.0, 150.0), "assumption: below ~70 mmHg a second vasopressor is needed",
       "systolic pressure below which two vasopressors are needed"),
    _p("endo_o2", 0.45, "1", (0.0, 1.0), "assumption: oxygen need starts at moderate capillary leak",
       "endothelial activation at which oxygen is needed"),
    _p("o2_max", 60.0, "L/min", (1.0, 200.0), "assumption: full capillary leak needs maximal high-flow oxygen",
       "oxygen flow needed at full endothelial activation"),
    _p("o2_pp", 40.0, "L/min", (6.0, 200.0), "assumption: needs beyond ~40 L/min high flow call for positive pressure",
       "oxygen need above which positive pressure is used"),
    _p("n_ice_lo", 0.2, "1", (0.0, 1.0), "assumption: ICE score starts falling", "neuroinflammation where the ICE score starts to fall"),
    _p("n_ice_hi", 0.8, "1", (0.0, 1.0), "assumption", "neuroinflammation at ICE score 0"),
    _p("n_voice", 0.45, "1", (0.0, 1.0), "assumption", "neuroinflammation: awakens only to voice"),
    _p("n_touch", 0.7, "1", (0.0, 1.0), "assumption", "neuroinflammation: awakens only to touch"),
    _p("n_coma", 0.9, "1", (0.0, 1.0), "assumption", "neuroinflammation: unarousable"),
    _p("n_seizure", 0.75, "1", (0.0, 1.0), "assumption", "neuroinflammation: brief seizure"),
    _p("n_status", 0.92, "1", (0.0, 1.0), "assumption", "neuroinflammation: prolonged/repetitive seizures"),
    _p("n_motor", 0.95, "1", (0.0, 1.0), "assumption", "neuroinflammation: deep focal motor weakness"),
    _p("n_edema", 0.85, "1", (0.0, 1.0), "assumption", "neuroinflammation: focal cerebral oedema"),
    _p("n_edema_diffuse", 0.95, "1", (0.0, 1.0), "assumption", "neuroinflammation: diffuse cerebral oedema"),
)

#: management rules (unit 1): 1-4 = at grade >= k, above 4 (default 9) = never
RULE_PARAMS: tuple[Param, ...] = tuple(
    _p(name, 9.0, "1", (1.0, 9.0),
       "assumption: management rule (ASTCT grades, Lee DW et al. 2019 BBMT 25:625); 9 = never", desc)
    for name, desc in (
        ("tcz_at_crs_grade", "give tocilizumab at CRS grade >= this (9 = never)"),
        ("steroids_at_crs_grade", "give dexamethasone at CRS grade >= this (9 = never)"),
        ("steroids_at_icans_grade", "give dexamethasone at ICANS grade >= this (9 = never)"),
        ("anakinra_at_crs_grade", "give anakinra at CRS grade >= this (9 = never)"),
        ("switch_at_crs_grade", "trigger the suicide switch (rimiducid) at CRS grade >= this (9 = never)"),
        ("switch_at_icans_grade", "trigger the suicide switch (rimiducid) at ICANS grade >= this (9 = never)"),
    )
)

_SPECIES: tuple[Species, ...] = (
    Species("IFNg", "pg/mL", 0.0, "serum IFN-gamma (and GM-CSF) released by engaged CAR-T cells (above baseline)"),
    Species("Mact", "1", 0.0, "activated fraction of host monocytes/macrophages"),
    Species("IL6", "pg/mL", 3.0, "serum IL-6"),
    Species("IL1", "pg/mL", 1.0, "serum IL-1"),
    Species("Endo", "1", 0.0, "endothelial activation (capillary leak)"),
    Species("Neuro", "1", 0.0, "neuroinflammation (ICANS state)"),
    Species("Pact", "1", 0.0, "ex vivo activation state of the CAR-T product (1 at infusion, wanes)"),
    Species("acyt_flag", "1", 0.0, "1 once antipyretic/anti-cytokine therapy was given"),
)


def _s(name: str) -> sp.Symbol:
    return sym(name)


def _count(x: sp.Expr, *thresholds: sp.Expr) -> sp.Expr:
    """Number of ``thresholds`` that ``x`` has reached (integer-valued)."""
    return sp.Add(*(sp.Piecewise((1, x >= th), (0, True)) for th in thresholds))


def _by_rule(k: sp.Expr, margins: Sequence[sp.Expr]) -> sp.Expr:
    """The margin for "grade ≥ k" (``margins[i]`` is grade ≥ i+1); −1 (never) for k > 4."""
    pieces = [(m, k <= i + 1.5) for i, m in enumerate(margins)]
    return sp.Piecewise(*pieces, (-1, True))


def _with_overrides(overrides: Mapping[str, tuple[float, str]] | None) -> tuple[Param, ...]:
    """:data:`TOX_PARAMS` with a disease model's own defaults ``{name: (value, source)}``."""
    own = dict(overrides or {})
    unknown = sorted(set(own) - {p.name for p in TOX_PARAMS})
    if unknown:
        raise ValueError(f"toxicity_block overrides {unknown}: not parameters of the toxicity block; "
                         f"expected names from TOX_PARAMS (e.g. sigma_ifng, K_lysis)")
    out = []
    for p in TOX_PARAMS:
        if p.name in own:
            value, source = own[p.name]
            p = replace(p, value=float(value), source=source)
        out.append(p)
    return tuple(out)


def toxicity_block(*, engaged: sp.Expr, car_species: Sequence[str], volume_ul: sp.Expr,
                   weight_kg: sp.Expr | None = None, killing: sp.Expr | None = None,
                   t_infusion: sp.Expr | None = None,
                   overrides: Mapping[str, tuple[float, str]] | None = None) -> Block:
    """The CRS/ICANS mechanism, clinical signs, management drugs and suicide switch.

    ``engaged``: antigen-engaged, killing-capable CAR cells (cell), e.g. ``C_k · g(A)``.
    ``car_species``: every CAR cell species (the switch eliminates them; reactions named
    ``switch_kill_<species>``).  ``volume_ul``: blood volume (µL).  ``weight_kg``: body weight
    for weight-based doses (default: the model's parameter ``weight``, kg).  ``killing``:
    the rate at which CAR cells kill antigen-positive cells (cell/d; default none), whose
    debris (DAMPs of pyroptotic targets) also activates macrophages.  ``t_infusion``: the
    infusion time (d; default the parameter ``t_inf``), when the product's ex vivo activation
    state ``Pact`` is set to 1.  ``overrides``: the disease's own defaults of
    :data:`TOX_PARAMS`, ``{name: (value, source)}`` (an unknown name is a ``ValueError``).

    The disease model should also multiply its antigen-driven CAR proliferation by
    :func:`expansion_factor` (steroids), and build its network with
    :func:`~livingdrug.models.block.network_with_block`, which declares the block's species
    ODE-only (``meta["ode_only_species"]``: they are concentrations, so the exact and
    tau-leaping engines refuse the model by name and the hybrid integrates them instead of
    treating pg/mL as cells).  Equations, signs and rules: module docstring.
    """
    S = _s
    W = S("weight") if weight_kg is None else sp.sympify(weight_kg)
    vml = sp.sympify(volume_ul) / 1000
    E = sp.sympify(engaged)
    kill = sp.Integer(0) if killing is None else sp.sympify(killing)
    t_inf = S("t_inf") if t_infusion is None else sp.sympify(t_infusion)
    thT, thD, thA, thR = (dr.occupancy(d) for d in ("tcz", "dex", "ana", "rim"))

    def k(name: str) -> sp.Expr:  # first-order rate from a half-life parameter
        return sp.log(2) / S(name)

    S1 = S("IL1") * (1 - thA)
    S6 = S("IL6") * (1 - thT)
    k6 = k("il6_thalf")
    k6lin, k6R = k6 * (1 - S("f_il6R")), k6 * S("f_il6R")
    steroid_mac = 1 - S("dex_e_mac") * thD
    u_mac = (S("IFNg") / S("K_ifng")) ** 2 + (kill / S("K_lysis")) ** 2
    dE = S6 / S("K_il6_endo") + S1 / S("K_il1_endo")
    dN = S("Endo") / S("K_endo_neuro") + S1 / S("K_il1_neuro") + S("IL6") / S("K_il6_neuro")

    reactions = [
        Reaction("ifng_release", {"IFNg": 1}, S("sigma_ifng") * E * (1 + S("a_act") * S("Pact")) / vml,
                 "IFN-gamma/GM-CSF from engaged CAR-T cells (more while the product is still activated ex vivo)"),
        Reaction("product_rest", {"Pact": -1}, k("act_thalf") * S("Pact"),
                 "the product's ex vivo activation state wanes"),
        Reaction("ifng_clear", {"IFNg": -1}, k("ifng_thalf") * S("IFNg"), "IFN-gamma clearance"),
        Reaction("mac_on", {"Mact": 1}, S("k_mac") * u_mac / (1 + u_mac) * steroid_mac * (1 - S("Mact")),
                 "IFN-gamma/GM-CSF and target-cell debris activate host monocytes/macrophages"),
        Reaction("mac_off", {"Mact": -1}, S("k_mac_off") * S("Mact"), "macrophage deactivation"),
        Reaction("il1_basal", {"IL1": 1}, k("il1_thalf") * S("il1_0"), "basal IL-1"),
        Reaction("il1_release", {"IL1": 1}, S("sigma_il1") * S("Mact"), "IL-1 from activated macrophages"),
        Reaction("il1_clear", {"IL1": -1}, k("il1_thalf") * S("IL1"), "IL-1 clearance"),
        Reaction("il6_basal", {"IL6": 1}, k6 * S("il6_0"), "basal IL-6"),
        Reaction("il6_release", {"IL6": 1},
                 S("sigma_il6") * S("Mact") * (1 + S("a_il1") * S1 / (S1 + S("K_il1_amp"))),
                 "IL-6 from activated macrophages, amplified by IL-1"),
        Reaction("il6_clear", {"IL6": -1}, (k6lin + k6R * (1 - thT)) * S("IL6"),
                 "IL-6 clearance (receptor-mediated part blocked by tocilizumab)"),
        Reaction("endo_on", {"Endo": 1}, S("k_endo") * dE / (1 + dE) * (1 - S("Endo")),
                 "IL-6 and IL-1 signalling activate the endothelium"),
        Reaction("endo_off", {"Endo": -1}, S("k_endo_off") * S("Endo"), "endothelial recovery"),
        Reaction("neuro_on", {"Neuro": 1},
                 S("k_neuro") * dN / (1 + dN) * (1 - S("dex_e_neuro") * thD) * (1 - S("Neuro")),
                 "endothelial activation, IL-1 and serum IL-6 drive neuroinflammation"),
        Reaction("neuro_off", {"Neuro": -1}, S("k_neuro_off") * S("Neuro"), "neuroinflammation resolves"),
        # drug pharmacokinetics
        Reaction("tcz_elim", {"Tcz": -1}, dr.elimination_rate("tcz") * S("Tcz"), "tocilizumab elimination"),
        Reaction("dex_elim", {"Dex": -1}, dr.elimination_rate("dex") * S("Dex"), "dexamethasone elimination"),
        Reaction("ana_elim", {"Ana": -1}, dr.elimination_rate("ana") * S("Ana"), "anakinra elimination"),
        Reaction("rim_elim", {"Rim": -1}, dr.elimination_rate("rim") * S("Rim"), "rimiducid elimination"),
        Reaction("switch_carriers", {"sw_surv": -1}, S("k_casp") * thR * S("sw_surv"),
                 "relative survival of switch-carrying CAR cells under rimiducid"),
    ]
    phi = dr.switch_fraction()
    for x in car_species:
        reactions.append(Reaction(f"switch_kill_{x}", {x: -1}, S("k_casp") * thR * phi * S(x),
                                  f"iCasp9 suicide switch eliminates {x}"))

    # --- clinical signs ------------------------------------------------------------------
    dT = S6 / S("K_il6_fever") + S1 / S("K_il1_fever")
    temp = S("temp_0") + S("temp_rise") * dT**2 / (1 + dT**2) * steroid_mac
    sbp = S("sbp_0") - S("sbp_drop") * S("Endo")
    flow = S("o2_max") * (S("Endo") - S("endo_o2")) / (1 - S("endo_o2"))  # < 0: none needed
    vaso = sp.Piecewise((0, sbp >= S("sbp_vaso1")), (1, sbp >= S("sbp_vaso2")), (2, True))
    o2 = sp.Piecewise((0, flow <= 0), (1, flow <= 6), (2, flow <= S("o2_pp")), (3, True))
    nx = S("Neuro")
    lo, hi = S("n_ice_lo"), S("n_ice_hi")
    frac = sp.Min(sp.Max((nx - lo) / (hi - lo), 0), 1)
    ice = 10 - sp.floor(10 * frac + sp.Rational(1, 2))

    def ice_at(score: float) -> sp.Expr:  # lowest Nx with ICE <= score
        return lo + (hi - lo) * (sp.Rational(19, 2) - score) / 10  # round(10 f) >= 10 - score

    # --- in-model ASTCT grades as continuous margins -------------------------------------
    flag = S("acyt_flag")
    half = sp.Rational(1, 2)
    fever_ok = sp.Max(temp - 38, flag - half)
    hyp = [S("sbp_hypo") - sbp, S("sbp_vaso1") - sbp, S("sbp_vaso2") - sbp]
    oxy = [flow, flow - 6, flow - S("o2_pp")]
    crs_m = [sp.Max(temp - 38, sp.Min(flag - half, sp.Max(hyp[0], oxy[0])))]
    crs_m += [sp.Min(fever_ok, sp.Max(h, o)) for h, o in zip(hyp, oxy, strict=True)]
    icans_th = [
        ice_at(9),
        sp.Min(ice_at(6), S("n_voice")),
        sp.Min(ice_at(2), S("n_touch"), S("n_seizure"), S("n_edema")),
        sp.Min(S("n_coma"), S("n_status"), S("n_motor"), S("n_edema_diffuse")),
    ]
    icans_m = [nx - th for th in icans_th]
    crs_grade = sp.Add(*(sp.Piecewise((1, m >= 0), (0, True)) for m in crs_m))
    icans_grade = sp.Add(*(sp.Piecewise((1, m >= 0), (0, True)) for m in icans_m))

    def obs(name: str, expr: sp.Expr, unit: str, desc: str, role: str | None = None) -> Observable:
        return Observable(name, expr, unit, desc, role=name if role is None else role)

    observables = (
        obs("temperature_c", temp, "degC", "body temperature"),
        obs("sbp_mmhg", sbp, "mmHg", "systolic blood pressure the disease gives without vasopressors"),
        obs("vasopressors_n", vaso, "1", "vasopressors needed (vasopressin not counted)"),
        obs("o2_level", o2, "1", "oxygen support: 0 none, 1 low-flow, 2 high-flow/facemask, 3 positive pressure"),
        obs("o2_flow_l_min", sp.Max(flow, 0), "L/min", "oxygen flow needed"),
        obs("anticytokine_given", flag, "1", "1 once antipyretic/anti-cytokine therapy was given"),
        obs("ice_score", ice, "1", "ICE score (0-10)"),
        obs("consciousness_level", _count(nx, S("n_voice"), S("n_touch"), S("n_coma")), "1",
            "0 spontaneous, 1 voice, 2 touch, 3 unarousable"),
        obs("seizure_level", _count(nx, S("n_seizure"), S("n_status")), "1", "0 none, 1 brief, 2 prolonged/repeated"),
        obs("motor_weakness", _count(nx, S("n_motor")), "1", "deep focal motor weakness (0/1)"),
        obs("cerebral_edema_level", _count(nx, S("n_edema"), S("n_edema_diffuse")), "1", "0 none, 1 focal, 2 diffuse"),
        obs("il6_pg_ml", S("IL6"), "pg/mL", "serum IL-6", role="il6"),
        obs("il6_signalling", S6, "pg/mL", "IL-6 signalling (serum IL-6 not blocked by tocilizumab)", role="il6_signalling"),
        obs("il1_pg_ml", S("IL1"), "pg/mL", "serum IL-1", role="il1"),
        obs("car_engaged", E, "cell", "antigen-engaged killing-capable CAR cells (cytokine source)", role="car_engaged"),
        obs("ifng_pg_ml", S("ifng_0") + S("IFNg"), "pg/mL", "serum IFN-gamma (baseline + CAR-T derived)", role="ifng"),
        obs("tocilizumab_ug_ml", S("Tcz"), "ug/mL", "serum tocilizumab", role=""),
        obs("dexamethasone_ng_ml", S("Dex"), "ng/mL", "plasma dexamethasone", role=""),
        obs("anakinra_ug_ml", S("Ana"), "ug/mL", "serum anakinra", role=""),
        obs("rimiducid_ng_ml", S("Rim"), "ng/mL", "plasma rimiducid (AP1903)", role=""),
        obs("crs_grade_model", crs_grade, "1", "in-model ASTCT CRS grade that the management rules read",
            role="crs_grade_model"),
        obs("icans_grade_model", icans_grade, "1", "in-model ASTCT ICANS grade that the management rules read",
            role="icans_grade_model"),
    )

    ster = sp.Max(_by_rule(S("steroids_at_crs_grade"), crs_m), _by_rule(S("steroids_at_icans_grade"), icans_m))
    events = (
        Event("product_activation", At(t_inf), {"Pact": sp.Integer(1)},
              description="the infused CAR-T product arrives in its ex vivo activated state"),
        dr.dose_event("tcz", _by_rule(S("tcz_at_crs_grade"), crs_m), dr.tcz_dose_conc(W), sets_flag=True,
                      description="tocilizumab at the CRS grade of tcz_at_crs_grade (repeated every 8 h while it holds, <= 4 doses)"),
        dr.dose_event("dex", ster, dr.dex_dose_conc(W), sets_flag=True,
                      description="dexamethasone at steroids_at_crs_grade / steroids_at_icans_grade (every 6 h while either holds)"),
        dr.dose_event("ana", _by_rule(S("anakinra_at_crs_grade"), crs_m), dr.ana_dose_conc(), sets_flag=True,
                      description="anakinra at anakinra_at_crs_grade (every 6 h while it holds)"),
        Event("rule_switch",
              When(sp.Max(_by_rule(S("switch_at_crs_grade"), crs_m), _by_rule(S("switch_at_icans_grade"), icans_m)), +1),
              {"Rim": S("Rim") + dr.rim_dose_conc(), "switch_n": S("switch_n") + 1}, once=True,
              description="rimiducid (suicide switch) at switch_at_crs_grade / switch_at_icans_grade"),
    )
    groups = {
        "Cytokines": ["il6_pg_ml", "il6_signalling", "il1_pg_ml", "ifng_pg_ml"],
        "Clinical signs": ["temperature_c", "sbp_mmhg"],
        "Oxygen need": ["o2_flow_l_min"],
        "ICE score": ["ice_score"],
        "CRS and ICANS grade (in-model)": ["crs_grade_model", "icans_grade_model"],
        "Management drugs": ["tocilizumab_ug_ml", "dexamethasone_ng_ml", "anakinra_ug_ml", "rimiducid_ng_ml"],
    }
    mech = Block(species=_SPECIES + dr.DRUG_SPECIES, params=_with_overrides(overrides) + RULE_PARAMS + dr.DRUG_PARAMS,
                 reactions=tuple(reactions), observables=observables, events=events, groups=groups)
    return mech
