r"""Drugs that manage CAR-T toxicity, with their own pharmacokinetics, and the suicide switch.

Each drug is a one-compartment concentration ``C`` (IV bolus: a dose event adds
``dose / V``; first-order elimination ``C' = −k_e C`` with ``k_e = ln 2 / t½``) acting
through a receptor occupancy (or effect) ``θ = C / (C + EC50)`` (0 without drug, → 1 in
excess).  Doses are given by the rule events of :mod:`livingdrug.models.cytokines`
(:func:`dose_event`).  Time in days; body weight ``W`` in kg (the model's ``weight``).

=================  ===========  =========================================================
drug               species      what it does in the model
=================  ===========  =========================================================
tocilizumab        ``Tcz``      anti-IL-6R antibody (µg/mL): IL-6 *signalling* is
                                ``IL6 · (1 − θ_T)``; receptor-mediated IL-6 clearance
                                falls by the same factor, so serum IL-6 rises.
                                Dose ``min(8 mg/kg · W, 800 mg)`` IV (Actemra label, CRS)
dexamethasone      ``Dex``      glucocorticoid (ng/mL): scales antigen-driven CAR-T
                                proliferation by :func:`expansion_factor`
                                ``= 1 − e_exp θ_D`` and damps macrophage activation,
                                fever and neuroinflammation.  10 mg IV (Lee DW et al. 2019
                                BBMT 25:625 / common CRS-ICANS practice)
anakinra           ``Ana``      IL-1 receptor antagonist (µg/mL): IL-1 signalling is
                                ``IL1 · (1 − θ_A)``.  100 mg (Kineret label dose)
rimiducid (AP1903) ``Rim``      dimerises inducible caspase 9 (iCasp9): each CAR species
                                ``X`` loses ``k_casp θ_R φ X`` per day, ``φ`` the fraction
                                of CAR cells that still carry a functional switch
=================  ===========  =========================================================

Suicide switch and the switch-carrying fraction
------------------------------------------------
A fraction ``f_sw`` of the product's CAR cells carries a working iCasp9 switch.  Carriers and
non-carriers have the same biology except that rimiducid kills carriers at
``k_casp θ_R`` per day.  Writing ``z`` for the survival of carriers relative to an untreated
carrier (``z' = −k_casp θ_R z``, ``z(0) = 1``, species ``sw_surv``), the carrier fraction of
every CAR species is

.. math:: φ = f_{sw} z / (f_{sw} z + 1 − f_{sw}),

(if ``X_c`` and ``X_n`` share the per-capita net growth ``r``, then
``φ' = −k_casp θ_R φ(1 − φ)``, solved by the expression above; phenotype transitions are
the same for both, so ``φ`` is common to every CAR species), and the elimination reaction
on ``X`` is ``X → ∅`` at ``k_casp θ_R φ X``.  Di Stasi A et al. 2011 NEJM 365:1673: one dose
of AP1903 (0.4 mg/kg) eliminated > 90 % of iCasp9 T cells within 30 min, so
``k_casp = ln 10 / 0.5 h ≈ 110 /d`` at full occupancy.

Sources of the PK values are in the parameter table (:data:`DRUG_PARAMS`).
"""

from __future__ import annotations

import math

import sympy as sp

from ..network import Event, Species, T, When, sym
from ..params import Param

__all__ = [
    "DRUG_PARAMS",
    "DRUG_SPECIES",
    "occupancy",
    "expansion_factor",
    "switch_fraction",
    "dose_event",
    "tcz_dose_conc",
    "dex_dose_conc",
    "ana_dose_conc",
    "rim_dose_conc",
]

_LN2 = math.log(2.0)
_H = 1.0 / 24.0  # one hour in days


def _p(name: str, value: float, unit: str, bounds: tuple[float, float], source: str, desc: str) -> Param:
    return Param(name, value, unit=unit, bounds=bounds, source=source, description=desc)


#: pharmacokinetic and effect parameters of the management drugs and the switch
DRUG_PARAMS: tuple[Param, ...] = (
    # --- tocilizumab ------------------------------------------------------------------------
    _p("tcz_dose_mg_kg", 8.0, "mg/kg", (0.0, 20.0),
       "Actemra (tocilizumab) label, CRS: 8 mg/kg IV for patients >= 30 kg, at most 800 mg per infusion",
       "tocilizumab dose per kg"),
    _p("tcz_max_mg", 800.0, "mg", (0.0, 2000.0), "Actemra label, CRS: maximum 800 mg per infusion",
       "tocilizumab maximum dose per infusion"),
    _p("tcz_V", 6.4, "L", (1.0, 20.0),
       "Actemra label (population PK): central 3.5 L + peripheral 2.9 L (one compartment at the steady-state volume)",
       "tocilizumab volume of distribution"),
    _p("tcz_thalf", 11.0, "d", (1.0, 30.0),
       "Actemra label: concentration-dependent half-life up to 11 d after 8 mg/kg (RA)",
       "tocilizumab elimination half-life"),
    _p("tcz_ec50", 0.1, "ug/mL", (1e-4, 100.0),
       "assumption: soluble IL-6R saturated at serum tocilizumab >= 1 ug/mL (Nishimoto N et al. 2008 Blood 112:3959), "
       "so half-occupancy near 0.1 ug/mL",
       "tocilizumab concentration at half IL-6R occupancy"),
    _p("tcz_interval", 8.0 * _H, "d", (0.0, 30.0),
       "Actemra label, CRS: repeat doses at least 8 h apart if no clinical improvement",
       "minimum time between tocilizumab doses"),
    _p("tcz_max_doses", 4.0, "1", (0.0, 20.0),
       "Actemra label, CRS: up to 3 additional doses (4 in all)", "maximum number of tocilizumab doses"),
    # --- dexamethasone ----------------------------------------------------------------------
    _p("dex_dose_mg", 10.0, "mg", (0.0, 100.0),
       "Lee DW et al. 2019 Biol Blood Marrow Transplant 25:625 (ASTCT) and common practice: dexamethasone 10 mg IV q6h",
       "dexamethasone dose"),
    _p("dex_V_kg", 0.8, "L/kg", (0.1, 5.0),
       "Czock D et al. 2005 Clin Pharmacokinet 44:61 (dexamethasone volume of distribution ~0.8-1 L/kg)",
       "dexamethasone volume of distribution per kg"),
    _p("dex_thalf", 4.0 * _H, "d", (0.01, 5.0),
       "Czock D et al. 2005 Clin Pharmacokinet 44:61 (dexamethasone plasma half-life ~4 h)",
       "dexamethasone elimination half-life"),
    _p("dex_ec50", 2.0, "ng/mL", (1e-3, 1e4),
       "assumption: half-maximal glucocorticoid effect at low nanomolar dexamethasone (~5 nM)",
       "dexamethasone concentration at half effect"),
    _p("dex_interval", 6.0 * _H, "d", (0.0, 30.0), "common practice: dexamethasone 10 mg every 6 h",
       "minimum time between dexamethasone doses"),
    _p("dex_max_doses", 12.0, "1", (0.0, 100.0),
       "assumption: dexamethasone q6h for up to 3 days, then taper (not modelled)",
       "maximum number of dexamethasone doses"),
    _p("dex_e_exp", 0.7, "1", (0.0, 1.0),
       "assumption: glucocorticoids partly suppress antigen-driven T-cell proliferation (Stein AM et al. 2019 CPT:PSP "
       "8:285 found no significant effect of the steroids actually given on expansion; set 0 for none)",
       "maximal fractional reduction of antigen-driven CAR-T proliferation"),
    _p("dex_e_mac", 0.8, "1", (0.0, 1.0),
       "assumption: glucocorticoids suppress monocyte/macrophage activation and cytokine release",
       "maximal fractional reduction of macrophage activation"),
    _p("dex_e_neuro", 0.8, "1", (0.0, 1.0),
       "assumption: dexamethasone (CNS-penetrant) is the first-line ICANS treatment (Lee DW et al. 2019 BBMT 25:625)",
       "maximal fractional reduction of the neuroinflammatory drive"),
    # --- anakinra ---------------------------------------------------------------------------
    _p("ana_dose_mg", 100.0, "mg", (0.0, 1000.0), "Kineret (anakinra) label: 100 mg", "anakinra dose"),
    _p("ana_V", 18.0, "L", (1.0, 100.0),
       "assumption: anakinra distributes in extracellular water (~0.25 L/kg at 70 kg)", "anakinra volume of distribution"),
    _p("ana_thalf", 5.0 * _H, "d", (0.01, 5.0), "Kineret label: terminal half-life 4-6 h",
       "anakinra elimination half-life"),
    _p("ana_ec50", 0.5, "ug/mL", (1e-4, 100.0),
       "assumption: IL-1Ra needs a large molar excess over IL-1 (pg/mL in serum) to block IL-1R",
       "anakinra concentration at half IL-1R blockade"),
    _p("ana_interval", 6.0 * _H, "d", (0.0, 30.0), "assumption: anakinra for CRS given every 6 h",
       "minimum time between anakinra doses"),
    _p("ana_max_doses", 8.0, "1", (0.0, 100.0), "assumption: anakinra for up to 2 days",
       "maximum number of anakinra doses"),
    # --- rimiducid / iCasp9 -----------------------------------------------------------------
    _p("rim_dose_mg_kg", 0.4, "mg/kg", (0.0, 5.0),
       "Di Stasi A et al. 2011 NEJM 365:1673 (AP1903 0.4 mg/kg over 2 h)", "rimiducid (AP1903) dose per kg"),
    _p("rim_V_kg", 0.78, "L/kg", (0.05, 10.0),
       "Iuliucci JD et al. 2001 J Clin Pharmacol 41:870 (Cmax ~1275 ng/mL after 1 mg/kg IV, dose-proportional)",
       "rimiducid apparent volume"),
    _p("rim_thalf", 2.9 / 24.0, "d", (0.001, 5.0),
       "Iuliucci JD et al. 2001 J Clin Pharmacol 41:870 (plasma 7 % of Cmax at 2 h and 1 % at 10 h: t1/2 ~2.9 h)",
       "rimiducid elimination half-life"),
    _p("rim_ec50", 1.0, "ng/mL", (1e-4, 1e4),
       "assumption: iCasp9 dimerisation is maximal at ~10 nM AP1903 in vitro (Straathof KC et al. 2005 Blood 105:4247)",
       "rimiducid concentration at half-maximal caspase activation"),
    _p("k_casp", math.log(10.0) / (0.5 * _H), "1/d", (0.0, 1e4),
       "Di Stasi A et al. 2011 NEJM 365:1673 (> 90 % of iCasp9 T cells eliminated within 30 min)",
       "maximal elimination rate of switch-carrying CAR cells"),
    _p("f_switch", 0.95, "1", (0.0, 1.0),
       "assumption: ~90-95 % of iCasp9-transduced cells die after AP1903 (Di Stasi A et al. 2011 NEJM 365:1673; "
       "Zhou X et al. 2014 Blood 123:3895)",
       "fraction of CAR cells carrying a functional suicide switch"),
)

#: drug concentration species (with their dose bookkeeping: dose count and last dose time)
DRUG_SPECIES: tuple[Species, ...] = (
    Species("Tcz", "ug/mL", 0.0, "serum tocilizumab"),
    Species("Dex", "ng/mL", 0.0, "plasma dexamethasone"),
    Species("Ana", "ug/mL", 0.0, "serum anakinra"),
    Species("Rim", "ng/mL", 0.0, "plasma rimiducid (AP1903)"),
    Species("sw_surv", "1", 1.0, "survival of switch-carrying CAR cells relative to non-carriers (z)"),
    Species("tcz_n", "1", 0.0, "tocilizumab doses given"),
    Species("tcz_tlast", "d", 0.0, "time of the last tocilizumab dose (0 before the first)", nonnegative=False),
    Species("dex_n", "1", 0.0, "dexamethasone doses given"),
    Species("dex_tlast", "d", 0.0, "time of the last dexamethasone dose (0 before the first)", nonnegative=False),
    Species("ana_n", "1", 0.0, "anakinra doses given"),
    Species("ana_tlast", "d", 0.0, "time of the last anakinra dose (0 before the first)", nonnegative=False),
    Species("switch_n", "1", 0.0, "rimiducid doses given (0 or 1)"),
)


def _s(name: str) -> sp.Symbol:
    return sym(name)


def occupancy(drug: str) -> sp.Expr:
    """``θ = C / (C + EC50)`` for ``drug`` in ``{"tcz", "dex", "ana", "rim"}`` (dimensionless;
    exactly 0 without drug)."""
    c = _s({"tcz": "Tcz", "dex": "Dex", "ana": "Ana", "rim": "Rim"}[drug])
    return c / (c + _s(f"{drug}_ec50"))


def expansion_factor() -> sp.Expr:
    """Multiplier in (0, 1] of antigen-driven CAR proliferation under steroids:
    ``1 − e_exp · Dex / (Dex + EC50)``; exactly 1 without dexamethasone."""
    return 1 - _s("dex_e_exp") * occupancy("dex")


def switch_fraction() -> sp.Expr:
    """Fraction ``φ = f_sw z / (f_sw z + 1 − f_sw)`` of CAR cells still carrying a switch."""
    f, z = _s("f_switch"), _s("sw_surv")
    return f * z / (f * z + 1 - f)


def tcz_dose_conc(weight_kg: sp.Expr) -> sp.Expr:
    """Concentration added by one tocilizumab infusion: ``min(8 mg/kg · W, 800 mg) / V`` (µg/mL = mg/L)."""
    return sp.Min(_s("tcz_dose_mg_kg") * weight_kg, _s("tcz_max_mg")) / _s("tcz_V")


def dex_dose_conc(weight_kg: sp.Expr) -> sp.Expr:
    """Concentration added by one dexamethasone dose: ``1000 · dose / (V_kg · W)`` (ng/mL)."""
    return 1000 * _s("dex_dose_mg") / (_s("dex_V_kg") * weight_kg)


def ana_dose_conc() -> sp.Expr:
    """Concentration added by one anakinra dose: ``dose / V`` (µg/mL = mg/L)."""
    return _s("ana_dose_mg") / _s("ana_V")


def rim_dose_conc() -> sp.Expr:
    """Concentration added by the rimiducid dose: ``1000 · dose_kg / V_kg`` (ng/mL)."""
    return 1000 * _s("rim_dose_mg_kg") / _s("rim_V_kg")


def elimination_rate(drug: str) -> sp.Expr:
    """``k_e = ln 2 / t½`` (1/d)."""
    return sp.log(2) / _s(f"{drug}_thalf")


def dose_event(drug: str, condition: sp.Expr, added: sp.Expr, *, sets_flag: bool,
               repeat: bool = True, description: str = "") -> Event:
    """Rule event: give one dose of ``drug`` (``"tcz"``, ``"dex"``, ``"ana"``) when
    ``condition`` (a continuous margin, > 0 while the rule holds) crosses zero upwards.

    With ``repeat`` the event may fire again: its condition is
    ``min(condition, max(t − t_last − interval, ½ − n), max_doses − ½ − n)`` so a further dose is
    given once the interval has passed while the rule still holds (or when it holds again
    later), up to ``max_doses``.  A dose adds ``added`` to the concentration, counts itself
    and, with ``sets_flag``, sets ``acyt_flag`` (anti-cytokine therapy given) to 1.
    """
    conc = {"tcz": "Tcz", "dex": "Dex", "ana": "Ana"}[drug]
    n, tl = _s(f"{drug}_n"), _s(f"{drug}_tlast")
    if repeat:
        half = sp.Rational(1, 2)
        since = sp.Max(T - tl - _s(f"{drug}_interval"), half - n)  # no wait before the first dose
        cond = sp.Min(condition, since, _s(f"{drug}_max_doses") - half - n)
    else:
        cond = condition
    assign: dict[str, sp.Expr | float] = {conc: _s(conc) + added, f"{drug}_n": n + 1, f"{drug}_tlast": T}
    if sets_flag:
        assign["acyt_flag"] = 1.0
    return Event(f"rule_{drug}", When(cond, +1), assign, once=not repeat, description=description)
