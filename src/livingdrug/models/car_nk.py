r"""CD19 CAR-NK cells (off-the-shelf, cord-blood derived) in the default B-ALL patient.

Registry name ``"car_nk"``.  The patient, the leukaemia and lymphodepletion are those of the
default CAR-T model (:mod:`.car_t`: same species, parameter names, values and motifs); the
product is an allogeneic CD19 CAR-NK product like that of Liu E et al. 2020 NEJM 382:545
(cord-blood NK cells transduced with CD19-CAR, IL-15 and an inducible caspase 9; 8/11
patients with CD19+ lymphoma/CLL responded, 7 complete remissions; no CRS, no neurotoxicity,
no GvHD; CAR-NK cells persisted at low levels for at least 12 months).  Amounts are cells
in the body, time in days, concentrations in pg/mL.

Species
-------
=============  ============================================================  ======
``K``          CAR-NK cells (body; killing-capable)                           cell
``NK_h``       host (recipient) NK cells (body)                               cell
``N_T``        host normal T cells (body)                                     cell
``B_N``        normal CD19+ B cells (body)                                    cell
``L_M, L_B``   CD19+ leukaemic blasts (marrow, blood)                         cell
``Lneg_M, Lneg_B``  CD19-negative leukaemic subclone (marrow, blood)          cell
``H_M``        normal nucleated marrow cells                                  cell
=============  ============================================================  ======

Auxiliary quantities (as in :mod:`.car_t`): blood volume ``V = 10⁶ v_b W`` (µL); CD19
antigen ``A = L_M + L_B + B_N``; antigen signal ``g = A/(A + K_A)``; all leukaemia
``L = L_M + L_B + Lneg_M + Lneg_B``; marrow blasts ``L_mar = L_M + Lneg_M``; host T-cell
capacity ``K_T = K_N V/f_T`` and niche ``h_T = K_T/(K_T + N_T)``; host NK capacity
``K_H = K_NK V/f_NK`` and NK niche ``h_K = K_H/(K_H + NK_h + K)`` (CAR-NK and host NK compete
for the same IL-15 niche).

Rate laws (cell/d)
------------------
.. math::

   K' &= k_{Kx}\, g\, ε_{ster} K + p_K h_K K + [\text{il15}]\, p_{15} K
         − d_K K − ρ K \\
   ρ &= k_{rT}\, m_T\, \frac{N_T}{K_T} + k_{rN}\, m_N\, \frac{NK_h}{K_H}
        \quad\text{(allogeneic rejection, 1/d)} \\
   m_T &= μ (1 − e),\qquad m_N = f_{KIR}\, μ (1 − e) + e (1 − π_E) \\
   NK_h' &= 2 r_K h_K NK_h − r_K NK_h \\
   N_T' &= 2 r_N h_T N_T − r_N N_T \\
   B_N' &= s_B − d_B B_N − κ_{car}(B_N) \\
   L_M' &= r_L L_M (1 − L_{mar}/K_{mar}) − k_{out} L_M + k_{in} L_B − κ_{car}(L_M) − κ_{inn}(L_M) \\
   L_B' &= k_{out} L_M − k_{in} L_B − κ_{car}(L_B) − κ_{inn}(L_B) \\
   Lneg_M' &= r_{L-} Lneg_M (1 − L_{mar}/K_{mar}) − k_{out} Lneg_M + k_{in} Lneg_B − κ_{inn}(Lneg_M) \\
   Lneg_B' &= k_{out} Lneg_M − k_{in} Lneg_B − κ_{inn}(Lneg_B) \\
   H_M' &= r_H H_M (1 − (H_M + c_{LH} L_{mar})/K_{mar})

with CAR killing ``κ_car(X) = k_{Kk} K X/(K_kill + A + K/s_ET)`` (CD19+ targets only) and innate
killing ``κ_inn(X) = k_{inn} K X/(K_kill + L + K/s_ET)`` (every leukaemic cell, CD19+ or not:
NKG2D ligands and missing self on blasts need no CAR antigen; normal B cells are spared —
an assumption: healthy cells carry self HLA and few stress ligands).  ``ε_ster`` is the
steroid factor :func:`livingdrug.models.cytokines.expansion_factor` (exactly 1 without drug).
Blast birth/death/crowding are written as in :mod:`.car_t` (birth ``r + d_L``, death ``d_L``,
crowding) so every propensity is non-negative.

Mechanisms
~~~~~~~~~~
* **Limited expansion, short persistence.**  Antigen-driven expansion ``k_Kx`` is a third of
  CAR-T's ``k_exp``; CAR-NK cells die at ``d_K = ln 2/10 d`` (NK half-life of about two weeks
  in vivo without cytokine support: Zhang Y et al. 2007 Immunology 121:258 measured ~10 d
  half-lives of human blood NK cells by deuterium labelling).  Host-IL-15-dependent
  homeostatic proliferation ``p_K h_K`` is strong only in the empty niche after
  lymphodepletion.
* **IL-15 armouring** (option ``il15``, default true as in Liu 2020): the transgene's
  autocrine IL-15 adds proliferation ``p_15`` per cell, independent of the niche
  (longer persistence).  Trade-off: the product also raises *systemic* IL-15,
  ``IL15 = σ_15 K/V_mL / k_15`` (pg/mL; quasi-steady state, serum half-life of hours), which
  activates host lymphocytes and monocytes: the cytokine block's engaged-cell drive is
  multiplied by ``1 + a_15 IL15/(IL15 + K_15)`` (more IFN-γ → more macrophage activation).
  With the defaults this stays far below CRS; larger doses or ``a_15`` show the trade-off.
* **Allogeneic rejection** (``ρ`` above): host T cells recovering after lymphodepletion
  reject the product in proportion to the HLA mismatch ``μ`` (parameter ``hla_mismatch``:
  fraction of the 6 HLA-A/-B/-DRB1 alleles mismatched, 0–1) and to their recovery
  ``N_T/K_T``; host NK cells reject through KIR-ligand mismatch (``f_KIR μ``).  An
  HLA-edited "universal" product (parameter ``hla_edited`` = the fraction of product cells
  without HLA class I, e.g. B2M knock-out) is invisible to host T cells (``m_T = μ(1 − e)``)
  but triggers *missing-self* rejection by host NK cells, reduced by HLA-E expression
  ``π_E`` (Gornalusse GG et al. 2017 Nat Biotechnol 35:765: B2M-null cells expressing HLA-E
  resist NK lysis).  Alloreactive T-cell priming (clonal expansion of the alloresponse) is not
  modelled: the rejection rate follows the host's T-cell and NK-cell recovery only.
* **No GvHD.**  NK cells do not cause graft-versus-host disease (Liu 2020: none in 11
  HLA-mismatched recipients; Ruggeri L et al. 2002 Science 295:2097), so the model has no
  GvHD mechanism.
* **Cytokines without an IL-6 storm.**  The CRS/ICANS block of
  :func:`livingdrug.models.cytokines.toxicity_block` (option ``toxicity``) is plugged in
  with the engaged CAR-NK ``K g`` (times the IL-15 factor) and its own defaults: a CAR-NK
  cell releases much less IFN-γ/GM-CSF than a CAR-T cell (``sigma_ifng`` 1/10 of CAR-T's;
  CAR-NK make little GM-CSF — assumption consistent with Liu 2020: no CRS, no rise in IL-6),
  and only a fraction ``f_pyro`` of its kills feeds the macrophage-activating debris term
  (NK cells kill mainly by apoptosis; the pyroptosis that drives macrophage IL-6 is the
  CAR-T granzyme-B / gasdermin-E route of Liu Y et al. 2020 Sci Immunol 5:eaax7969).  The
  product carries iCasp9 (Liu 2020), so the block's suicide switch acts on ``K``.
* **Repeated doses from one batch, viability after thaw.**  Infusions at
  ``t_inf + k·dose_interval`` for ``k = 0 … n_doses − 1`` (``n_doses`` 1–3; an event fires for
  each k < 3 and adds ``dose · viability · [n_doses > k − ½]``, so non-integer values round to
  the nearest whole dose count), each of ``dose`` thawed cells of which a fraction
  ``viability`` is alive.

Observables: ``car_nk_blood`` (cell/µL, role ``cart_blood``: ``f_NK K/V``), ``transgene``
(copies/µg, as in car_t), ``blasts_pct``, ``mrd``, ``b_cells_blood``, ``leukaemia_total``,
``leukaemia_cd19neg`` (roles as in car_t, so :func:`livingdrug.clinical.endpoints.ball_response`
scores it), host T and NK cells in blood, the rejection rate and serum IL-15.

Events: Flu/Cy on days ``t_ld … t_ld+2`` (T, B and host NK cells, ``s^{1/3}`` per day), the
infusions, and mean-field extinction (below ``extinction_threshold`` → 0) of each leukaemic
clone and of the CAR-NK cells.  Research model, not a clinical tool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import sympy as sp

from ..network import At, Event, Network, Observable, Reaction, Species, When, sym
from ..params import Param
from . import car_t
from . import motifs as m
from .block import Block, network_with_block
from .cytokines import expansion_factor, toxicity_block

__all__ = ["build", "DEFAULTS", "MAX_DOSES"]

Row = tuple[str, float, str, tuple[float, float], str, str]

#: the B-ALL patient, lymphodepletion and observation parameters shared with :mod:`.car_t`
_SHARED = (
    "t_inf", "weight", "v_b", "t_ld", "ld_surv_T", "ld_surv_B", "K_A", "K_kill", "s_ET",
    "f_T", "f_B", "K_N", "r_N", "B_n", "d_B", "K_mar", "r_H", "c_LH", "r_L", "r_Lneg", "d_L",
    "k_out", "k_in", "extinction_threshold", "VCN", "n_DNA", "W_o",
)
_CAR_T_ROWS: dict[str, Row] = {r[0]: r for r in car_t._PARAMS}

_LIU = "Liu E et al. 2020 NEJM 382:545"

_NK_ROWS: tuple[Row, ...] = (
    # --- product and dosing -----------------------------------------------------------------
    ("dose", 7.0e8, "cell", (0.0, 1.0e11),
     f"{_LIU} (dose levels 1e5, 1e6, 1e7 CAR-NK cells/kg; highest level, 70 kg)",
     "thawed CAR-NK cells per infusion"),
    ("viability", 0.85, "1", (0.0, 1.0),
     "assumption: post-thaw viability of cryopreserved NK products ~70-90 % (release criterion >= 70 %)",
     "viable fraction of the thawed cells"),
    ("n_doses", 1.0, "1", (1.0, 3.0), "assumption: one to three infusions from one batch (issue 5)",
     "number of infusions (rounded to a whole number)"),
    ("dose_interval", 7.0, "d", (1.0, 60.0), "assumption: weekly repeat infusions (days 0, 7, 14)",
     "interval between infusions"),
    # --- CAR-NK kinetics ------------------------------------------------------------------------
    ("k_nk_exp", 0.3, "1/d", (0.0, 5.0),
     "assumption: antigen-driven CAR-NK expansion about a third of CAR-T's k_exp (limited expansion; "
     f"{_LIU}: expansion within the first 2 weeks)",
     "antigen-driven CAR-NK proliferation rate"),
    ("d_nk", math.log(2.0) / 10.0, "1/d", (0.0, 5.0),
     "Zhang Y et al. 2007 Immunology 121:258 (deuterium-labelled human blood NK cells disappear at 6.9 %/d: half-life ~10 d)",
     "CAR-NK death rate"),
    ("p_nk", 0.02, "1/d", (0.0, 1.0),
     "assumption: IL-15-driven homeostatic NK proliferation in the lymphopenic niche after Flu/Cy",
     "host-cytokine-driven homeostatic CAR-NK proliferation (empty niche)"),
    ("k_kill_nk", 8.0, "1/d", (0.0, 50.0),
     "assumption: CAR-NK serial killing somewhat below CAR-T's k_kill (12 /d)",
     "maximal CD19+ targets killed per CAR-NK cell per day"),
    ("k_innate", 1.5, "1/d", (0.0, 50.0),
     "assumption: NKG2D/missing-self killing of leukaemic blasts without CAR antigen, weaker than CAR "
     "killing (B-ALL blasts are relatively NK-resistant)",
     "maximal leukaemic targets killed per CAR-NK cell per day without CD19"),
    ("f_NK", 0.02, "1", (1e-4, 1.0),
     "assumption: as for T cells (Westermann J, Pabst R 1992 Clin Investig 70:539: ~2 % of lymphocytes in blood)",
     "fraction of (CAR- and host) NK cells in blood"),
    # --- host NK cells ---------------------------------------------------------------------------
    ("K_NK", 200.0, "cell/uL", (1.0, 5000.0), "assumption: adult blood NK-cell count ~90-600 /uL",
     "homeostatic NK-cell capacity (blood)"),
    ("r_NK", 0.2, "1/d", (0.0, 2.0),
     "assumption: NK cells are the first lymphocytes to recover after chemotherapy (within ~2-4 weeks)",
     "host NK-cell turnover"),
    ("ld_surv_NK", 0.05, "1", (1e-6, 1.0), "assumption: Flu/Cy depletes NK cells somewhat less than T cells",
     "overall surviving fraction of host NK cells"),
    # --- allogeneic rejection ----------------------------------------------------------------------
    ("hla_mismatch", 1.0 / 3.0, "1", (0.0, 1.0),
     f"assumption: 2 of 6 HLA-A/-B/-DRB1 alleles mismatched (partially matched cord-blood units, {_LIU}: uncertain)",
     "HLA mismatch between product and patient (fraction of 6 alleles)"),
    ("hla_edited", 0.0, "1", (0.0, 1.0),
     "assumption: 0 = unedited product (Liu 2020); 1 = every cell HLA class I-null (e.g. B2M knock-out)",
     "fraction of product cells without HLA class I"),
    ("k_rej_T", 0.06, "1/d", (0.0, 10.0),
     "assumption: full mismatch rejects at 0.06 /d once host T cells have recovered; calibrated so a 4/6-matched "
     f"IL-15 product persists at low levels for a year ({_LIU})",
     "T-cell rejection rate at full mismatch and full T-cell recovery"),
    ("k_rej_NK", 0.02, "1/d", (0.0, 10.0),
     "assumption: host-NK rejection (missing self / KIR-ligand mismatch) at full NK recovery",
     "NK-cell rejection rate at full host-NK recovery"),
    ("f_kir", 0.5, "1", (0.0, 1.0),
     "assumption: about half of HLA class I mismatches are KIR-ligand mismatches",
     "share of the HLA mismatch seen by host NK cells"),
    ("hlae_protect", 0.5, "1", (0.0, 1.0),
     "Gornalusse GG et al. 2017 Nat Biotechnol 35:765 (HLA-E on B2M-null cells reduces NK lysis); value: assumption",
     "protection of HLA-edited cells from missing-self NK rejection"),
    # --- cytokine profile ---------------------------------------------------------------------------
    ("f_pyro", 0.1, "1", (0.0, 1.0),
     "assumption: NK kills are mostly apoptotic; the pyroptotic debris that activates macrophages follows the "
     "CAR-T granzyme-B / gasdermin-E route (Liu Y et al. 2020 Sci Immunol 5:eaax7969)",
     "macrophage-activating share of CAR-NK kills relative to CAR-T kills"),
)

_IL15_ROWS: tuple[Row, ...] = (
    ("p_15", 0.03, "1/d", (0.0, 1.0),
     f"assumption: autocrine IL-15 support lengthens persistence ({_LIU}: IL-15-armoured CAR-NK persisted "
     ">= 12 months at low levels)",
     "autocrine IL-15-driven CAR-NK proliferation"),
    ("sigma_15", 5.0e-5, "pg/cell/d", (0.0, 1.0),
     "assumption: IL-15 release per armoured CAR-NK cell; gives serum IL-15 of tens of pg/mL at the CAR-NK peak",
     "IL-15 secretion per CAR-NK cell"),
    ("il15_thalf", 0.1, "d", (1e-3, 10.0), "assumption: serum IL-15 half-life of a few hours", "IL-15 half-life"),
    ("K_15", 50.0, "pg/mL", (1e-3, 1e6), "assumption: systemic IL-15 at half-maximal bystander activation",
     "IL-15 half-activation concentration"),
    ("a_15", 2.0, "1", (0.0, 100.0),
     "assumption: systemic IL-15 can up to triple the IFN-gamma drive of engaged cells (toxicity trade-off)",
     "maximal IL-15 amplification of the cytokine drive"),
)

#: per-model defaults of the cytokine block's parameters (the block's own sources otherwise)
_TOX_OVERRIDES: Mapping[str, tuple[float, str]] = {
    "sigma_ifng": (1.0e-4,
                   f"assumption: CAR-NK release ~1/10 of CAR-T's IFN-gamma/GM-CSF per engaged cell ({_LIU}: no CRS, "
                   "no rise of inflammatory cytokines)"),
}

#: default values by name (canonical units), with il15
DEFAULTS: Mapping[str, float] = {
    **{_CAR_T_ROWS[n][0]: _CAR_T_ROWS[n][1] for n in _SHARED},
    **{r[0]: r[1] for r in _NK_ROWS + _IL15_ROWS},
}

#: infusion events built (``n_doses`` is at most this)
MAX_DOSES = 3

S = sym


def _params(rows: tuple[Row, ...]) -> tuple[Param, ...]:
    return tuple(Param(n, v, unit=u, bounds=b, source=src, description=d) for n, v, u, b, src, d in rows)


def _tox_params(params: tuple[Param, ...]) -> tuple[Param, ...]:
    out = []
    for p in params:
        if p.name in _TOX_OVERRIDES:
            v, src = _TOX_OVERRIDES[p.name]
            p = Param(p.name, v, unit=p.unit, bounds=p.bounds, source=src, description=p.description + " (CAR-NK)")
        out.append(p)
    return tuple(out)


def patient_state(p: Mapping[str, float], *, leukaemia: float = car_t.L0_MARROW,
                  neg_fraction: float = car_t.NEG_FRACTION) -> dict[str, float]:
    """The B-ALL patient before treatment (:func:`.car_t.ball_patient_state`) plus host NK
    cells at capacity, ``NK_h = K_NK V/f_NK`` (cell; ``V = 10⁶ v_b W`` µL)."""
    st = car_t.ball_patient_state(p, leukaemia=leukaemia, neg_fraction=neg_fraction)
    vul = p["v_b"] * p["weight"] * 1e6
    nk = p["K_NK"] * vul / p["f_NK"]
    st["NK_h"] = float(nk) if np.ndim(nk) == 0 else nk
    return st


def build(*, lymphodepletion: bool = True, leukaemia: float = car_t.L0_MARROW,
          neg_fraction: float = car_t.NEG_FRACTION, il15: bool = True, toxicity: bool = True) -> Network:
    """Build the CD19 CAR-NK / B-ALL network (equations in the module docstring).

    ``lymphodepletion``: include the Flu/Cy events.  ``leukaemia``: marrow leukaemic cells at
    the start (cell).  ``neg_fraction``: initial CD19-negative fraction.  ``il15``: IL-15
    armouring (autocrine support and systemic IL-15; default true as in Liu 2020).
    ``toxicity``: merge the CRS/ICANS block with CAR-NK defaults (concentrations: use
    ``toxicity = false`` with the exact and tau-leaping engines).
    """
    car_t._flag("lymphodepletion", lymphodepletion)
    arm = car_t._flag("il15", il15)
    tox = car_t._flag("toxicity", toxicity)
    lm0 = car_t.cells_option("leukaemia", leukaemia)
    nf = car_t.fraction_option("neg_fraction", neg_fraction)
    rows = tuple(_CAR_T_ROWS[n] for n in _SHARED) + _NK_ROWS + (_IL15_ROWS if arm else ())
    params = _params(rows)
    d = DEFAULTS

    Vul = S("v_b") * S("weight") * 10**6
    A = S("L_M") + S("L_B") + S("B_N")
    L_all = S("L_M") + S("L_B") + S("Lneg_M") + S("Lneg_B")
    Lm = S("L_M") + S("Lneg_M")
    g = m.saturating(A, "K_A")
    K = S("K")
    K_T = S("K_N") * Vul / S("f_T")
    K_H = S("K_NK") * Vul / S("f_NK")
    h_T = m.homeostatic(K_T, S("N_T"))
    h_K = m.homeostatic(K_H, S("NK_h") + K)
    B_ref = S("B_n") * Vul / S("f_B")
    mu, e = S("hla_mismatch"), S("hla_edited")
    m_T = mu * (1 - e)
    m_N = S("f_kir") * mu * (1 - e) + e * (1 - S("hlae_protect"))
    rej = S("k_rej_T") * m_T * S("N_T") / K_T + S("k_rej_NK") * m_N * S("NK_h") / K_H
    ag = expansion_factor() if tox else sp.Integer(1)

    def car_kill(x: str) -> Reaction:
        return m.kill(f"kill_{x}", x, K, "k_kill_nk", "K_kill", A, "s_ET")

    def innate_kill(x: str) -> Reaction:
        r = m.kill(f"innate_kill_{x}", x, K, "k_innate", "K_kill", L_all, "s_ET")
        return Reaction(r.name, r.stoich, r.rate, f"innate NK killing of {x} (NKG2D/missing self; no CD19 needed)")

    nk = [
        m.expand("K_expand", "K", "k_nk_exp", g * ag),
        m.expand("K_homeo", "K", "p_nk", h_K),
        m.die("K_death", "K", "d_nk"),
        Reaction("K_reject", {"K": -1}, rej * K, "allogeneic rejection by recovering host T and NK cells"),
    ]
    if arm:
        nk.append(m.expand("K_il15", "K", "p_15"))
    reactions = (
        *nk,
        m.expand("NKh_homeo", "NK_h", 2 * S("r_NK"), h_K),
        m.die("NKh_death", "NK_h", "r_NK"),
        m.expand("N_homeo", "N_T", 2 * S("r_N"), h_T),
        m.die("N_death", "N_T", "r_N"),
        m.source("B_prod", "B_N", S("d_B") * B_ref * S("H_M") / S("K_mar")),
        m.die("B_death", "B_N", "d_B"),
        car_kill("B_N"),
        *car_t._blast_reactions("L", "L_M", "r_L", Lm),
        m.traffic("L_egress", "L_M", "L_B", "k_out"),
        m.traffic("L_home", "L_B", "L_M", "k_in"),
        car_kill("L_M"),
        car_kill("L_B"),
        innate_kill("L_M"),
        innate_kill("L_B"),
        *car_t._blast_reactions("Lneg", "Lneg_M", "r_Lneg", Lm),
        m.traffic("Lneg_egress", "Lneg_M", "Lneg_B", "k_out"),
        m.traffic("Lneg_home", "Lneg_B", "Lneg_M", "k_in"),
        innate_kill("Lneg_M"),
        innate_kill("Lneg_B"),
        m.logistic_growth("H_grow", "H_M", "r_H"),
        m.crowding_death("H_crowd", "H_M", "r_H", S("H_M") + S("c_LH") * Lm, "K_mar"),
    )

    st = patient_state(d, leukaemia=lm0, neg_fraction=nf)
    species = (
        Species("K", "cell", 0.0, "CAR-NK cells (body)"),
        Species("NK_h", "cell", st["NK_h"], "host NK cells (body)"),
        *(Species(n, "cell", st[n], car_t.BALL_SPECIES[n].replace("normal T", "host normal T"))
          for n in car_t.BALL_SPECIES),
    )

    kb = S("f_NK") * K / Vul
    tb = S("f_T") * S("N_T") / Vul
    bb = S("f_B") * S("B_N") / Vul
    nb = S("f_NK") * S("NK_h") / Vul
    lb = (S("L_B") + S("Lneg_B")) / Vul
    wbc = kb + tb + bb + nb + lb + S("W_o")
    il15_conc = S("sigma_15") * K / (Vul / 1000) * S("il15_thalf") / sp.log(2) if arm else sp.Integer(0)
    observables = (
        Observable("car_nk_blood", kb, "cell/uL", "CAR-NK cells per µL blood", role="cart_blood"),
        Observable("transgene", S("VCN") * S("n_DNA") * kb / wbc, "copies/ug",
                   "CAR transgene copies per µg genomic DNA of blood", role="transgene"),
        Observable("blasts_pct", 100 * Lm / (Lm + S("H_M")), "percent", "marrow blasts", role="blasts_pct"),
        Observable("mrd", Lm / (Lm + S("H_M")), "1", "leukaemic fraction of marrow nucleated cells", role="mrd"),
        Observable("b_cells_blood", bb, "cell/uL", "normal B cells per µL blood", role="bcells_blood"),
        Observable("t_cells_blood", tb, "cell/uL", "host T cells per µL blood"),
        Observable("host_nk_blood", nb, "cell/uL", "host NK cells per µL blood"),
        Observable("leukaemia_total", L_all, "cell", "all leukaemic cells", role="tumour_total"),
        Observable("leukaemia_cd19neg", S("Lneg_M") + S("Lneg_B"), "cell", "CD19-negative leukaemic cells",
                   role="tumour_antigen_neg"),
        Observable("car_nk_total", K, "cell", "all CAR-NK cells in the body"),
        Observable("rejection_rate", rej, "1/d", "allogeneic rejection rate of CAR-NK cells"),
        *((Observable("il15_pg_ml", il15_conc, "pg/mL", "product-derived serum IL-15 (quasi-steady state)"),)
          if arm else ()),
    )

    events: list[Event] = []
    if lymphodepletion:
        for i in range(3):
            events.append(Event(
                f"lymphodepletion_{i + 1}", At(S("t_ld") + i),
                {x: S(x) * S(s) ** sp.Rational(1, 3)
                 for x, s in (("N_T", "ld_surv_T"), ("B_N", "ld_surv_B"), ("NK_h", "ld_surv_NK"))},
                description=f"fludarabine/cyclophosphamide, day {i + 1} of 3"))
    for k in range(MAX_DOSES):
        given = sp.Piecewise((1, S("n_doses") > k + sp.Rational(1, 2)), (0, True))
        events.append(Event(
            "infusion" if k == 0 else f"infusion_{k + 1}", At(S("t_inf") + k * S("dose_interval")),
            {"K": K + S("dose") * S("viability") * given},
            description=f"CAR-NK infusion {k + 1} of n_doses (viable cells = dose x viability)"))
    for clone, (mar, bl) in {"cd19pos": ("L_M", "L_B"), "cd19neg": ("Lneg_M", "Lneg_B")}.items():
        events.append(Event(
            f"extinct_{clone}", When(S(mar) + S(bl) - S("extinction_threshold"), -1),
            {mar: 0.0, bl: 0.0}, once=False,
            description=f"{clone} leukaemia (marrow + blood) below the threshold is set to 0"))
    events.append(Event("extinct_car_nk", When(K - S("extinction_threshold"), -1), {"K": 0.0}, once=False,
                        description="CAR-NK cells below the threshold are set to 0 (loss of the product)"))

    groups: dict[str, list[str]] = {
        "CAR-NK cells": ["K"],
        "CAR-NK in blood": ["car_nk_blood"],
        "CAR transgene": ["transgene"],
        "Leukaemia": ["L_M", "L_B", "Lneg_M", "Lneg_B"],
        "Marrow blasts": ["blasts_pct"],
        "Normal B cells": ["b_cells_blood"],
        "Host T and NK cells": ["t_cells_blood", "host_nk_blood"],
        "Allogeneic rejection": ["rejection_rate"],
    }
    if arm:
        groups["Product IL-15"] = ["il15_pg_ml"]
    meta: dict = {
        "dose": {"param": "dose", "time_param": "t_inf"},
        "weight_param": "weight",
        "time_start": -6.0,
        "groups": groups,
        "clones": {"bulk": ["K"]},
    }
    desc = ("allogeneic CD19 CAR-NK cells (CAR and innate killing, allogeneic rejection"
            + (", IL-15 armoured" if arm else "") + ") in relapsed B-ALL with a CD19-negative subclone")
    block = Block()
    if tox:
        desc += "; cytokines, CRS/ICANS, management drugs and iCasp9 suicide switch"
        il15_amp = 1 + S("a_15") * il15_conc / (il15_conc + S("K_15")) if arm else sp.Integer(1)
        rates = {r.name: r.rate for r in reactions}
        killing = S("f_pyro") * sp.Add(*(rates[n] for n in rates if n.startswith(("kill_", "innate_kill_"))))
        block = toxicity_block(engaged=K * g * il15_amp, car_species=["K"], volume_ul=Vul,
                               weight_kg=S("weight"), killing=killing)
        block = Block(species=block.species, params=_tox_params(block.params), reactions=block.reactions,
                      observables=block.observables, events=block.events, groups=block.groups)
    return network_with_block(
        block,
        name="car_nk",
        species=species,
        params=params,
        reactions=reactions,
        observables=observables,
        events=tuple(events),
        reference="livingdrug CD19 CAR-NK model: product after Liu E et al. 2020 NEJM 382:545; patient and "
                  "leukaemia of the car_t model" + ("; CRS after Giavridis 2018" if tox else ""),
        description=desc,
        meta=meta,
    )
