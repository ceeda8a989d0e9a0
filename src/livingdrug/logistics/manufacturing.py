r"""Manufacturing of a CAR cell product, as pure functions of a frozen :class:`Process`.

A product is made in seven steps, each with a duration (d) and an out-of-specification
(OOS) failure probability:

=====================  ===========================================================
step                   what happens
=====================  ===========================================================
``apheresis``          leukapheresis (or healthy-donor collection) and transport
``activation``         T/NK-cell selection and activation (e.g. anti-CD3/CD28)
``transduction``       viral transduction: efficiency ``eta`` and vector copy number
``expansion``          culture for ``culture_days``: fold expansion, phenotype drift
``cryopreservation``   formulation and freezing
``release``            release testing of the frozen product (sterility, identity, potency,
                       VCN; sterility cultures take 7–14 d)
``shipping``           shipping to the treating centre
=====================  ===========================================================

Maths (time in days, cells in cells):

* **Failure.**  Step ``i`` fails independently with probability ``p_i``; the product is
  made with probability :math:`P(\text{success}) = \prod_i (1 - p_i)` and otherwise fails
  at the first failing step.  Manufacturing failure is about 1 % in KarMMa-3 and 0 % in
  CARTITUDE-4 (Rodriguez-Otero P et al. 2023 NEJM 388:1002; San-Miguel J et al. 2023 NEJM
  389:335).  The expansion step also fails when too few CAR+ cells grow
  (``available < min_dose``).
* **Step durations** are gamma-distributed with mean ``days`` and coefficient of variation
  ``duration_cv`` (assumption; a zero CV gives fixed durations).
* **Transduction.**  The number of vector integrations per cell is Poisson with mean ``m``
  (the multiplicity-of-infection law; assumption), so the transduced fraction is
  :math:`\eta = 1 - e^{-m}` and the product's vector copy number (copies per cell of the
  whole product, as assayed) is :math:`\mathrm{VCN} = m = -\ln(1-\eta)`.  ``eta`` is drawn
  from a Beta law with mean ``transduction_efficiency`` and concentration
  ``transduction_concentration``; the national tisagenlecleucel median is 17.4 %
  (the ``one-cell-kills`` scenario's source).
* **Expansion.**  After a lag ``lag_days`` cells double every ``doubling_days``:
  :math:`F(t) = 2^{\max(0, t - t_{lag})/t_d}` (fold, dimensionless), times a lognormal
  donor factor with log-sd ``expansion_log_sd``.  CAR+ cells available:
  ``seeded_cells · collection_factor · F · eta``; the dose is ``min(target_dose, available)``.
* **Phenotype drift.**  In culture, cells differentiate along stem/central-memory →
  memory → effector at rate ``k_diff`` (1/d), a linear chain with the closed form
  :math:`f_S(t) = s_0 e^{-kt}`, :math:`f_M(t) = (m_0 + s_0 k t) e^{-kt}`,
  :math:`f_E = 1 - f_S - f_M`; :math:`f_S` falls and :math:`f_E` rises monotonically with
  culture time (longer culture gives more differentiated, effector/exhausted products:
  Ghassemi S et al. 2018 Cancer Immunol Res 6:1100 — CAR-T cells made in one day without
  expansion were more potent per cell in vivo).
* **In-vivo fitness.**  :math:`\phi = e^{-k_{fit}(t - t_{ref})}` (dimensionless) relative to a
  reference culture of ``reference_culture_days``; it multiplies the car_t model's
  antigen-driven expansion rate ``k_exp`` (assumption for the size of the effect; direction
  from Ghassemi 2018).
* **Contamination.**  A fraction ``f_contam`` of the collected cells is leukaemic
  (patient-specific; 0 for a healthy donor).  The product holds ``dose/eta`` cells, so the
  number of leukaemic cells in it is Poisson with mean ``f_contam · dose/eta`` and, each
  transduced with probability ``eta``, the number of CAR+ leukaemic cells is Poisson with
  mean ``f_contam · dose`` (Poisson thinning) — the car_t model's ``one-cell-kills`` law
  (Ruella M et al. 2018 Nat Med 24:1499).

:func:`product_parameters` maps a :class:`Product` onto the car_t scenario parameters, so the
product it makes is the product the patient model receives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "STEPS",
    "LogisticsInputError",
    "Process",
    "Patient",
    "Product",
    "fold_expansion",
    "phenotype",
    "fitness",
    "success_probability",
    "make_product",
    "product_parameters",
    "K_EXP_REFERENCE",
]

STEPS = ("apheresis", "activation", "transduction", "expansion", "cryopreservation", "release", "shipping")

#: car_t model's default antigen-driven expansion rate (1/d); the product's fitness scales it
K_EXP_REFERENCE = 1.0


class LogisticsInputError(ValueError):
    """A manufacturing or programme setting is wrong.

    Attributes ``field`` (dotted name), ``value``, ``expected`` and ``hint`` (how to fix it);
    the scenario loader turns it into a ``ScenarioError`` naming the file.
    """

    def __init__(self, field: str, value: Any, expected: str, hint: str = "") -> None:
        self.field = field
        self.value = value
        self.expected = expected
        self.hint = hint
        msg = f"{field} = {value!r}: expected {expected}"
        super().__init__(msg + (f"; {hint}" if hint else ""))


def _check(cond: bool, field_name: str, value: Any, expected: str, hint: str = "") -> None:
    if not cond:
        raise LogisticsInputError(field_name, value, expected, hint)


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Process:
    """A manufacturing process.  Times in d, cells in cell, probabilities dimensionless.

    ``step_days`` and ``p_fail`` map each name in :data:`STEPS` to a mean duration (d) and an
    OOS probability; ``culture_days`` is the expansion step's duration.  Defaults describe a
    ~2-week autologous process (assumptions unless a source is given in the module docstring).
    """

    name: str = "autologous"
    allogeneic: bool = False
    step_days: dict[str, float] = field(
        default_factory=lambda: {
            "apheresis": 1.0, "activation": 1.0, "transduction": 1.0,
            "release": 7.0, "cryopreservation": 1.0, "shipping": 2.0,
        }
    )
    culture_days: float = 7.0
    p_fail: dict[str, float] = field(default_factory=lambda: {s: 0.0015 for s in STEPS})
    duration_cv: float = 0.15
    seeded_cells: float = 1.0e8
    target_dose: float = 1.0e8
    min_dose: float = 1.0e7
    transduction_efficiency: float = 0.3
    transduction_concentration: float = 20.0
    doubling_days: float = 1.2
    lag_days: float = 1.0
    expansion_log_sd: float = 0.3
    s0: float = 0.5
    m0: float = 0.3
    k_diff: float = 0.08
    k_fit: float = 0.03
    reference_culture_days: float = 7.0

    def __post_init__(self) -> None:
        for k in self.step_days:
            _check(k in STEPS and k != "expansion", f"process.step_days.{k}", k,
                   f"one of {', '.join(s for s in STEPS if s != 'expansion')}",
                   "the expansion step's length is culture_days")
        for k, v in self.step_days.items():
            _check(_finite(v) and v >= 0, f"process.{k}_days", v, "a duration ≥ 0 d", 'write e.g. "2 d"')
        for k, v in self.p_fail.items():
            _check(k in STEPS, f"process.p_fail.{k}", k, f"one of {', '.join(STEPS)}")
            _check(_finite(v) and 0 <= v < 1, f"process.p_fail.{k}", v, "a probability in [0, 1)",
                   "OOS rates are around 0.01")
        _check(_finite(self.culture_days) and 0 <= self.culture_days <= 60, "process.culture_days",
               self.culture_days, "a culture time in [0, 60] d", "rapid processes use 1–2 d, classic ones 7–14 d")
        _check(_finite(self.duration_cv) and 0 <= self.duration_cv <= 2, "process.duration_cv",
               self.duration_cv, "a coefficient of variation in [0, 2]")
        for name in ("seeded_cells", "target_dose", "min_dose"):
            v = getattr(self, name)
            _check(_finite(v) and v > 0, f"process.{name}", v, "a positive number of cells", 'write e.g. "1e8 cell"')
        _check(self.min_dose <= self.target_dose, "process.min_dose", self.min_dose,
               f"at most target_dose ({self.target_dose:g} cell)", "lower min_dose or raise target_dose")
        _check(_finite(self.transduction_efficiency) and 0 < self.transduction_efficiency < 1,
               "process.transduction_efficiency", self.transduction_efficiency, "a fraction in (0, 1)",
               "typical values are 0.15–0.6")
        _check(_finite(self.transduction_concentration) and self.transduction_concentration > 0,
               "process.transduction_concentration", self.transduction_concentration, "a positive number")
        _check(_finite(self.doubling_days) and self.doubling_days > 0, "process.doubling_days",
               self.doubling_days, "a positive doubling time in d")
        for name in ("lag_days", "expansion_log_sd", "k_diff", "k_fit", "reference_culture_days"):
            v = getattr(self, name)
            _check(_finite(v) and v >= 0, f"process.{name}", v, "a number ≥ 0")
        for name in ("s0", "m0"):
            v = getattr(self, name)
            _check(_finite(v) and 0 <= v <= 1, f"process.{name}", v, "a fraction in [0, 1]")
        _check(self.s0 + self.m0 <= 1, "process.m0", self.m0, f"at most 1 - s0 = {1 - self.s0:g}",
               "s0 + m0 is the less-differentiated share at the start of culture")

    def days(self, step: str) -> float:
        """Mean duration (d) of ``step``."""
        if step == "expansion":
            return float(self.culture_days)
        return float(self.step_days.get(step, 0.0))

    @property
    def turnaround_days(self) -> float:
        """Mean time (d) from apheresis to the product's arrival at the centre."""
        return float(sum(self.days(s) for s in STEPS))

    @property
    def suite_days(self) -> float:
        """Mean time (d) a product occupies a manufacturing suite (activation → cryopreservation,
        release testing excluded: it runs in the QC laboratory)."""
        return float(sum(self.days(s) for s in ("activation", "transduction", "expansion", "cryopreservation")))


@dataclass(frozen=True)
class Patient:
    """The patient (or donor) giving the cells: ``weight_kg`` (kg), ``collection_factor``
    (dimensionless yield relative to a typical collection; lymphopenia lowers it) and
    ``f_contam`` (dimensionless leukaemic fraction of the collected cells)."""

    weight_kg: float = 70.0
    collection_factor: float = 1.0
    f_contam: float = 0.0

    def __post_init__(self) -> None:
        _check(_finite(self.weight_kg) and self.weight_kg > 0, "patient.weight_kg", self.weight_kg, "a weight > 0 kg")
        _check(_finite(self.collection_factor) and self.collection_factor > 0, "patient.collection_factor",
               self.collection_factor, "a positive factor")
        _check(_finite(self.f_contam) and 0 <= self.f_contam <= 0.5, "patient.f_contam", self.f_contam,
               "a fraction in [0, 0.5]")


@dataclass(frozen=True)
class Product:
    """A manufactured product.  ``dose`` counts CAR+ cells (cell); ``f_S, f_E, f_M`` its
    composition (sum 1); ``fitness`` (dimensionless); ``eta`` transduction efficiency; ``vcn``
    (copies/cell); ``leukaemic_cells``/``car_leukaemic_cells`` (cell); ``turnaround_days`` (d,
    apheresis → arrival, or → failure); ``step_days`` the drawn durations; ``failed_step``
    the step that went out of specification, or ``None``."""

    dose: float
    f_S: float
    f_E: float
    f_M: float
    fitness: float
    eta: float
    vcn: float
    fold_expansion: float
    f_contam: float
    leukaemic_cells: int
    car_leukaemic_cells: int
    turnaround_days: float
    step_days: dict[str, float]
    failed_step: str | None

    @property
    def ok(self) -> bool:
        return self.failed_step is None


def fold_expansion(process: Process, culture_days: float | None = None) -> float:
    """Median fold expansion :math:`2^{\\max(0, t - t_{lag})/t_d}` (dimensionless) after
    ``culture_days`` (d; default the process's)."""
    t = process.culture_days if culture_days is None else float(culture_days)
    return float(2.0 ** (max(0.0, t - process.lag_days) / process.doubling_days))


def phenotype(process: Process, culture_days: float | None = None) -> tuple[float, float, float]:
    """Product composition ``(f_S, f_E, f_M)`` after ``culture_days`` (d) of the S → M → E
    chain at rate ``k_diff`` (closed form in the module docstring)."""
    t = process.culture_days if culture_days is None else float(culture_days)
    k = process.k_diff
    e = math.exp(-k * t)
    f_s = process.s0 * e
    f_m = (process.m0 + process.s0 * k * t) * e
    return f_s, max(0.0, 1.0 - f_s - f_m), f_m


def fitness(process: Process, culture_days: float | None = None) -> float:
    """In-vivo fitness :math:`e^{-k_{fit}(t - t_{ref})}` (dimensionless; 1 at the reference)."""
    t = process.culture_days if culture_days is None else float(culture_days)
    return float(math.exp(-process.k_fit * (t - process.reference_culture_days)))


def success_probability(process: Process) -> float:
    """:math:`\\prod_i (1 - p_i)` over the steps (OOS failures only, not a short expansion)."""
    return float(np.prod([1.0 - process.p_fail.get(s, 0.0) for s in STEPS]))


def _duration(process: Process, step: str, rng: np.random.Generator) -> float:
    mean = process.days(step)
    cv = process.duration_cv
    if mean <= 0 or cv == 0:
        return mean
    shape = 1.0 / cv**2
    return float(rng.gamma(shape, mean / shape))


def make_product(process: Process, patient: Patient, rng: np.random.Generator) -> Product:
    """Manufacture one product for ``patient`` with ``process`` (random draws from ``rng``).

    Returns a :class:`Product`; a failed one has ``failed_step`` set, ``dose = 0`` and
    ``turnaround_days`` the time from apheresis to the failure.
    """
    durations: dict[str, float] = {}
    failed: str | None = None
    eta = float(rng.beta(process.transduction_efficiency * process.transduction_concentration,
                         (1 - process.transduction_efficiency) * process.transduction_concentration))
    eta = min(max(eta, 1e-6), 1 - 1e-9)
    fold = fold_expansion(process) * float(rng.lognormal(0.0, process.expansion_log_sd))
    available = process.seeded_cells * patient.collection_factor * fold * eta
    for step in STEPS:
        durations[step] = _duration(process, step, rng)
        if rng.random() < process.p_fail.get(step, 0.0):
            failed = step
            break
        if step == "expansion" and available < process.min_dose:
            failed = step
            break
    f_s, f_e, f_m = phenotype(process)
    turnaround = float(sum(durations.values()))
    if failed is not None:
        return Product(0.0, f_s, f_e, f_m, fitness(process), eta, -math.log1p(-eta), fold,
                       patient.f_contam, 0, 0, turnaround, durations, failed)
    dose = min(process.target_dose, available)
    lam_all = patient.f_contam * dose / eta
    leuk = int(rng.poisson(lam_all)) if lam_all > 0 else 0
    car_leuk = int(rng.binomial(leuk, eta)) if leuk else 0
    return Product(float(dose), f_s, f_e, f_m, fitness(process), eta, -math.log1p(-eta), fold,
                   patient.f_contam, leuk, car_leuk, turnaround, durations, None)


def product_parameters(product: Product) -> dict[str, float]:
    """The car_t scenario parameters that describe ``product``: ``dose`` (cell), ``f_S``,
    ``f_E``, ``f_M``, ``eta_tx``, ``f_contam`` (dimensionless), ``VCN`` (copies/cell) and
    ``k_exp`` (1/d: the reference rate times the product's fitness)."""
    if product.failed_step is not None:
        raise LogisticsInputError("product.failed_step", product.failed_step, "a released product",
                                  "a product that failed manufacturing is never infused")
    return {
        "dose": product.dose,
        "f_S": product.f_S,
        "f_E": product.f_E,
        "f_M": product.f_M,
        "eta_tx": product.eta,
        "f_contam": product.f_contam,
        "VCN": product.vcn,
        "k_exp": K_EXP_REFERENCE * product.fitness,
    }
