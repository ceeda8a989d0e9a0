r"""A treatment programme over months: a SimPy discrete-event simulation.

Autologous products (time in days, d)::

    referral ─screening─▶ eligible? ─wait for an apheresis slot─▶ apheresis (vein)
       ─collection/transport─▶ wait for a suite ─activation … cryopreservation (suite held)─▶
       release testing ─▶ released ─scheduling─▶ lymphodepletion start ─LD lead─▶ infusion (vein)

Off-the-shelf (allogeneic) products replace apheresis and manufacturing by an inventory::

    referral ─screening─▶ eligible? ─reserve a dose (wait while the stock is empty)─▶
       lymphodepletion start ─LD lead─▶ infusion

* **Referrals** are a Poisson process of ``referrals_per_week`` (1/week) for ``months``
  (1 month = 30.4375 d).  Screening takes a gamma-distributed time (mean ``screening_days``,
  CV 0.3); a fraction ``p_ineligible`` is found ineligible.
* **Apheresis slots**: ``apheresis_slots_per_week`` slots each week (unused slots are lost at
  the end of the week).  **Manufacturing suites**: ``suites`` parallel suites, each holding a
  product from activation to cryopreservation (:attr:`Process.suite_days`); release testing
  runs in the QC laboratory.  A patient who drops out while their product is in a suite does
  not free it (the product is finished and discarded).
* **Drop-out while waiting.**  Each patient has a drop-out (progression or death) hazard
  that rises with time since referral, a Gompertz law
  :math:`h(t) = h_0 e^{b t}` (1/d), so :math:`P(\text{still eligible at } t) =
  \exp(-h_0 (e^{bt} - 1)/b)`; a drop-out is a death with probability
  ``p_death_given_dropout``, otherwise progression to ineligibility.  Bridging therapy (given
  to a fraction ``bridging_fraction``) multiplies :math:`h_0` by ``bridging_hazard_ratio``.
  Calibration (assumption): with the defaults about 85–89 % of referred patients are infused
  at a 4–7-week wait, the share of randomised patients infused in KarMMa-3 and CARTITUDE-4
  (Rodriguez-Otero 2023; San-Miguel 2023; shared/reference section 8).
* **A second manufacturing attempt.**  A product that goes out of specification (or grows
  too few CAR+ cells) is found at the end of the step that failed; if the patient is still
  waiting and fewer than ``max_attempts`` attempts (default 2) have been made, another attempt
  starts at once.  With ``remanufacture_from = "apheresis"`` (the default) it needs a new
  apheresis slot and a new collection first; with ``"retained"`` cells kept back from the
  first collection go straight into the suite queue (no slot, no collection/transport time,
  no collection failure) — unless the collection itself failed (``failed_step =
  "apheresis"``), when nothing usable was kept and a new apheresis is needed.  Attempts are
  independent, so with per-attempt failure probability
  :math:`q = 1 - \prod_i (1 - p_i)` and no drop-out a patient ends in "manufacturing
  failure" with probability :math:`q^{K}` for ``K`` attempts; for a retained second attempt
  :math:`p_a q + (q - p_a) q_r`, with :math:`p_a` the collection failure probability and
  :math:`q_r = 1 - \prod_{i \ne a} (1 - p_i)` the failure probability without it.  The
  shared reference gives manufacturing failure of about 1 % (KarMMa-3) and 0 % (CARTITUDE-4)
  but says nothing on re-manufacture: two attempts and a new apheresis are assumptions (a new collection is
  always possible, whereas keeping cells back depends on the process, and it gives the
  longer, conservative delay).  Vein-to-vein time keeps its definition, the *first*
  apheresis to infusion, so a second attempt lengthens it.
* **Lymphodepletion** starts ``lymphodepletion_days`` before infusion (median 6 d, CIBMTR),
  once the product is released and the centre has scheduled the patient
  (``scheduling_days``); infusion waits for the product's arrival.
* **Response and intention to treat.**  While waiting the tumour burden grows,
  :math:`B(w)/B_0 = 2^{w_{eff}/T_d}` with ``w`` the referral-to-infusion time and
  :math:`w_{eff} = w` (times ``bridging_growth_factor`` when bridged); the odds of response at
  infusion fall as :math:`(B/B_0)^{-\gamma}`:
  :math:`p(w) = p_0 / (p_0 + (1 - p_0)(B/B_0)^{\gamma})`.  Higher tumour burden at infusion
  predicts worse response to axi-cel (Locke FL et al. 2020 Blood Adv 4:4898); ``p_0`` is the
  response probability without waiting (ZUMA-1 objective response 82 %, Neelapu 2017 NEJM
  377:2531) and :math:`T_d, \gamma` are assumptions.  The intention-to-treat outcome counts
  from referral: ``P(infused and responding) = Σ_infused p(w_i) / n_referred``.

One seed gives one programme: referral times come from one stream and patient *i* draws
everything (screening, eligibility, drop-out time, bridging, response, then the products of
all ``max_attempts`` attempts in order) from its own stream
(:func:`livingdrug.rng.patient_generators`) at referral, so the output does not depend on the
order in which SimPy interleaves events.  The first product is the first draw after the
others, so it is the same whatever ``max_attempts`` is: ``max_attempts = 1`` reproduces the
single-attempt programme exactly, and programmes that differ only in ``max_attempts``
compare the same patients (common random numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..rng import patient_seed_sequence
from .manufacturing import (
    STEPS,
    LogisticsInputError,
    Patient,
    Process,
    Product,
    _check,
    _finite,
    make_product,
)

__all__ = ["Inventory", "Programme", "ProgrammeResult", "simulate_programme", "response_probability",
           "OUTCOMES", "DAYS_PER_MONTH", "REMANUFACTURE_FROM"]

DAYS_PER_MONTH = 30.4375
#: where the cells of a second or later manufacturing attempt come from
REMANUFACTURE_FROM = ("apheresis", "retained")
OUTCOMES = ("infused", "ineligible", "progression", "death", "manufacturing failure", "waiting")
#: spawn keys of the shared streams (patients use 0, 1, 2, …)
_ARRIVAL_KEY = 2**31
_INVENTORY_KEY = 2**31 + 1


@dataclass(frozen=True)
class Inventory:
    """Off-the-shelf stock: batches of ``doses_per_batch`` doses, ``initial_batches`` at the
    start, a batch ordered whenever usable stock plus doses on order falls to
    ``reorder_point`` (doses), arriving after ``lead_days`` (d), failing release with
    probability ``p_batch_fail``, expiring ``shelf_life_days`` (d) after it is made."""

    doses_per_batch: int = 20
    initial_batches: int = 2
    reorder_point: int = 10
    lead_days: float = 60.0
    shelf_life_days: float = 365.0
    p_batch_fail: float = 0.05

    def __post_init__(self) -> None:
        for name in ("doses_per_batch", "initial_batches", "reorder_point"):
            v = getattr(self, name)
            ok = isinstance(v, int) and not isinstance(v, bool)
            _check(ok and v >= (1 if name == "doses_per_batch" else 0), f"inventory.{name}", v,
                   "a whole number ≥ 1" if name == "doses_per_batch" else "a whole number ≥ 0")
        _check(_finite(self.lead_days) and self.lead_days > 0, "inventory.lead_days", self.lead_days,
               "a replenishment lead time > 0 d")
        _check(_finite(self.shelf_life_days) and self.shelf_life_days > 0, "inventory.shelf_life_days",
               self.shelf_life_days, "a shelf life > 0 d")
        _check(self.shelf_life_days > self.lead_days, "inventory.shelf_life_days", self.shelf_life_days,
               f"longer than the replenishment lead time lead_days = {self.lead_days:g} d",
               "doses would expire before the next batch arrives; lengthen the shelf life or shorten lead_days")
        _check(_finite(self.p_batch_fail) and 0 <= self.p_batch_fail < 1, "inventory.p_batch_fail",
               self.p_batch_fail, "a probability in [0, 1)")


@dataclass(frozen=True)
class Programme:
    """A treatment programme (see the module docstring for the maths; times in d, rates per
    week or per day as named).

    ``max_attempts`` (whole number in [1, 10], TOML ``[capacity] max_manufacturing_attempts``)
    is the number of manufacturing attempts a patient may have; ``remanufacture_from``
    (``"apheresis"`` or ``"retained"``, TOML ``[capacity] remanufacture_from``) says where the
    cells of a second or later attempt come from.  Defaults 2 and ``"apheresis"`` are
    assumptions (shared/reference section 8 gives failure rates, not re-manufacture policy):
    a new collection is always possible, retained cells depend on the process, and the new
    apheresis is the longer, conservative delay.
    """

    kind: str = "autologous"
    months: float = 12.0
    follow_days: float = 365.0
    referrals_per_week: float = 2.0
    screening_days: float = 7.0
    p_ineligible: float = 0.05
    apheresis_slots_per_week: int = 4
    suites: int = 4
    process: Process = field(default_factory=Process)
    inventory: Inventory | None = None
    scheduling_days: float = 4.0
    scheduling_cv: float = 0.5
    lymphodepletion_days: float = 6.0
    infusion_window_days: float = 14.0
    hazard0_per_day: float = 0.002
    hazard_growth_per_day: float = 0.02
    p_death_given_dropout: float = 0.3
    bridging_fraction: float = 0.6
    bridging_hazard_ratio: float = 0.6
    bridging_growth_factor: float = 0.5
    p_response0: float = 0.82
    burden_doubling_days: float = 30.0
    response_burden_exponent: float = 0.5
    f_contam: float = 0.0
    max_attempts: int = 2
    remanufacture_from: str = "apheresis"

    def __post_init__(self) -> None:
        _check(self.kind in ("autologous", "off-the-shelf"), "programme.kind", self.kind,
               '"autologous" or "off-the-shelf"')
        _check(_finite(self.months) and 0 < self.months <= 120, "programme.months", self.months,
               "a referral period in (0, 120] months")
        _check(_finite(self.follow_days) and 0 < self.follow_days <= 3650, "programme.follow_days",
               self.follow_days, "a follow-up in (0, 3650] d")
        _check(_finite(self.referrals_per_week) and 0 < self.referrals_per_week <= 1000,
               "programme.referrals_per_week", self.referrals_per_week, "a referral rate in (0, 1000] per week",
               "a rate must be positive")
        for name in ("screening_days", "scheduling_days", "lymphodepletion_days"):
            v = getattr(self, name)
            _check(_finite(v) and 0 <= v <= 365, f"programme.{name}", v, "a duration in [0, 365] d")
        _check(_finite(self.infusion_window_days) and self.infusion_window_days > 0,
               "programme.infusion_window_days", self.infusion_window_days, "a window > 0 d")
        _check(self.lymphodepletion_days <= self.infusion_window_days, "programme.lymphodepletion_days",
               self.lymphodepletion_days,
               f"at most the infusion window infusion_window_days = {self.infusion_window_days:g} d",
               "lymphodepletion cannot start earlier than the protocol allows before infusion; "
               "shorten lymphodepletion_days or widen infusion_window_days")
        _check(_finite(self.scheduling_cv) and 0 <= self.scheduling_cv <= 3, "programme.scheduling_cv",
               self.scheduling_cv, "a coefficient of variation in [0, 3]")
        for name in ("p_ineligible", "p_death_given_dropout", "bridging_fraction"):
            v = getattr(self, name)
            _check(_finite(v) and 0 <= v <= 1, f"programme.{name}", v, "a probability in [0, 1]")
        _check(self.p_ineligible < 1, "programme.p_ineligible", self.p_ineligible, "a probability below 1",
               "with 1 nobody is ever treated")
        for name in ("hazard0_per_day", "hazard_growth_per_day"):
            v = getattr(self, name)
            _check(_finite(v) and 0 <= v <= 1, f"programme.{name}", v, "a rate in [0, 1] per day",
                   "a rate cannot be negative")
        for name in ("bridging_hazard_ratio", "bridging_growth_factor", "response_burden_exponent"):
            v = getattr(self, name)
            _check(_finite(v) and 0 <= v <= 10, f"programme.{name}", v, "a factor in [0, 10]")
        _check(_finite(self.p_response0) and 0 < self.p_response0 < 1, "programme.p_response0",
               self.p_response0, "a probability in (0, 1)")
        _check(_finite(self.burden_doubling_days) and self.burden_doubling_days > 0,
               "programme.burden_doubling_days", self.burden_doubling_days, "a doubling time > 0 d")
        _check(_finite(self.f_contam) and 0 <= self.f_contam <= 0.5, "programme.f_contam", self.f_contam,
               "a fraction in [0, 0.5]")
        ok = isinstance(self.max_attempts, (int, np.integer)) and not isinstance(self.max_attempts, bool)
        _check(ok and 1 <= self.max_attempts <= 10, "programme.max_attempts", self.max_attempts,
               "a whole number of manufacturing attempts in [1, 10]",
               "1 means no second attempt after a failed product; programmes rarely try more than 2-3")
        _check(self.remanufacture_from in REMANUFACTURE_FROM, "programme.remanufacture_from",
               self.remanufacture_from, '"apheresis" or "retained"',
               '"apheresis": a new collection for each later attempt; "retained": cells kept back '
               "from the first collection")
        if self.kind == "autologous":
            for name in ("apheresis_slots_per_week", "suites"):
                v = getattr(self, name)
                ok = isinstance(v, int) and not isinstance(v, bool)
                _check(ok and v >= 1, f"capacity.{name}", v, "a whole number ≥ 1",
                       "zero capacity treats nobody; give at least one")
        else:
            _check(self.inventory is not None, "inventory", None,
                   "an [inventory] table for an off-the-shelf programme",
                   "add [inventory] with doses_per_batch, lead_days, shelf_life_days …")

    @property
    def horizon_days(self) -> float:
        """Referral period (d)."""
        return self.months * DAYS_PER_MONTH


def response_probability(prog: Programme, wait_days: float | np.ndarray, bridged: bool | np.ndarray = False) -> Any:
    """Response probability at infusion after ``wait_days`` (d) from referral (module docstring)."""
    w = np.asarray(wait_days, dtype=float)
    w_eff = w * np.where(np.asarray(bridged), prog.bridging_growth_factor, 1.0)
    ratio = 2.0 ** (w_eff / prog.burden_doubling_days)
    p0 = prog.p_response0
    out = p0 / (p0 + (1 - p0) * ratio**prog.response_burden_exponent)
    return out if out.ndim else float(out)


@dataclass(frozen=True)
class ProgrammeResult:
    """Per-patient columns (``patients``: name → array, times in d from the programme start,
    NaN when not reached), ``summary`` (JSON-ready), ``suite_use`` and ``stock`` (``(t, level)``
    step series) and the ``seed``."""

    programme: Programme
    seed: int
    patients: dict[str, np.ndarray]
    summary: dict
    suite_use: tuple[np.ndarray, np.ndarray]
    stock: tuple[np.ndarray, np.ndarray]


def _gamma(rng: np.random.Generator, mean: float, cv: float) -> float:
    if mean <= 0 or cv <= 0:
        return float(max(mean, 0.0))
    k = 1.0 / cv**2
    return float(rng.gamma(k, mean / k))


def _drop_time(rng: np.random.Generator, h0: float, b: float) -> float:
    """Gompertz time with hazard ``h0 e^{bt}``: ``H(T) = E``, ``E ~ Exp(1)``."""
    e = float(rng.exponential(1.0))
    if h0 <= 0:
        return math.inf
    if b <= 0:
        return e / h0
    return math.log1p(b * e / h0) / b


class _Stock:
    """Lots of doses ``[expiry, count]``, oldest first, with a change event."""

    def __init__(self, env: Any, inv: Inventory, rng: np.random.Generator) -> None:
        self.env, self.inv, self.rng = env, inv, rng
        self.lots: list[list[float]] = []
        self.on_order = 0
        self.changed = env.event()
        self.series: list[tuple[float, int]] = []
        self.expired = 0
        self.batches_ordered = 0
        self.batches_failed = 0
        for _ in range(inv.initial_batches):
            self.lots.append([inv.shelf_life_days, inv.doses_per_batch])
        self._record()

    def level(self) -> int:
        return int(sum(n for e, n in self.lots if e > self.env.now))

    def _record(self) -> None:
        self.series.append((float(self.env.now), self.level()))

    def _notify(self) -> None:
        ev, self.changed = self.changed, self.env.event()
        ev.succeed()
        self._record()
        self.review()

    def review(self) -> None:
        inv = self.inv
        while self.level() + self.on_order * inv.doses_per_batch <= inv.reorder_point:
            self.on_order += 1
            self.batches_ordered += 1
            self.env.process(self._deliver())

    def _deliver(self):  # noqa: ANN202
        yield self.env.timeout(self.inv.lead_days)
        self.on_order -= 1
        if self.rng.random() < self.inv.p_batch_fail:
            self.batches_failed += 1
            self.review()
            return
        expiry = self.env.now + self.inv.shelf_life_days
        self.lots.append([expiry, self.inv.doses_per_batch])
        self.lots.sort()
        self.env.process(self._expire(expiry))
        self._notify()

    def _expire(self, expiry: float):  # noqa: ANN202
        yield self.env.timeout(expiry - self.env.now)
        self._purge()

    def _purge(self) -> None:
        now = self.env.now
        kept = []
        for lot in self.lots:
            if lot[0] <= now:
                self.expired += int(lot[1])
            else:
                kept.append(lot)
        if len(kept) != len(self.lots):
            self.lots = kept
            self._record()
            self.review()

    def take(self, until: float) -> bool:
        """Reserve one dose still in date at ``until``; False if none."""
        self._purge()
        for lot in self.lots:
            if lot[0] > until and lot[1] > 0:
                lot[1] -= 1
                self.lots = [x for x in self.lots if x[1] > 0]
                self._record()
                self.review()
                return True
        return False


def simulate_programme(prog: Programme, seed: int = 0) -> ProgrammeResult:
    """Simulate ``prog`` with random seed ``seed`` (a non-negative integer) and summarise it."""
    import simpy

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise LogisticsInputError("seed", seed, "a non-negative whole number", "e.g. --seed 0")
    seed = int(seed)
    env = simpy.Environment()
    horizon = prog.horizon_days
    t_end = horizon + prog.follow_days
    arr_rng = np.random.default_rng(patient_seed_sequence(seed, _ARRIVAL_KEY))
    times: list[float] = []
    t = 0.0
    rate = prog.referrals_per_week / 7.0
    while True:
        t += float(arr_rng.exponential(1.0 / rate))
        if t >= horizon:
            break
        times.append(t)
    n = len(times)
    cols: dict[str, np.ndarray] = {k: np.full(n, np.nan) for k in (
        "referral", "eligible", "apheresis", "suite_start", "release", "arrival", "ld_start",
        "infusion", "end", "drop_time", "p_response", "dose", "f_S", "f_E", "f_M", "eta_tx",
        "vcn", "fitness")}
    outcome = ["waiting"] * n
    bridged = np.zeros(n, dtype=bool)
    responded = np.zeros(n, dtype=bool)
    leuk = np.zeros(n, dtype=np.int64)
    failed_step = [""] * n
    attempts = np.zeros(n, dtype=np.int64)
    failures_by_attempt = [0] * prog.max_attempts
    cols["referral"][:] = times
    # a later attempt from retained cells: no new collection, so no collection/transport time
    # and no collection failure (module docstring)
    retained_process = replace(prog.process, step_days={**prog.process.step_days, "apheresis": 0.0},
                               p_fail={**prog.process.p_fail, "apheresis": 0.0})

    def new_collection(k: int, previous: Product | None) -> bool:
        """Does attempt ``k`` (0-based) need a new apheresis?"""
        return (k == 0 or prog.remanufacture_from == "apheresis"
                or (previous is not None and previous.failed_step == "apheresis"))

    use_series: list[tuple[float, int]] = [(0.0, 0)]
    busy = {"in_use": 0, "time": 0.0, "last": 0.0}
    slots_used = {"n": 0}

    def suite_change(delta: int) -> None:
        now = float(env.now)
        lo, hi = min(busy["last"], horizon), min(now, horizon)
        busy["time"] += busy["in_use"] * max(0.0, hi - lo)
        busy["last"] = now
        busy["in_use"] += delta
        use_series.append((now, int(busy["in_use"])))

    slots = suites = stock = None
    if prog.kind == "autologous":
        cap = prog.apheresis_slots_per_week
        slots = simpy.Container(env, capacity=cap, init=cap)
        suites = simpy.Resource(env, capacity=prog.suites)

        def refill():  # noqa: ANN202
            while True:
                yield env.timeout(7.0)
                if slots.level < cap:
                    yield slots.put(cap - slots.level)

        env.process(refill())
    else:
        assert prog.inventory is not None
        stock = _Stock(env, prog.inventory, np.random.default_rng(patient_seed_sequence(seed, _INVENTORY_KEY)))
        stock.review()

    def finish(i: int, what: str, when: float) -> None:
        outcome[i] = what
        cols["end"][i] = when

    def hold_suite(req: Any, days: float):  # noqa: ANN202
        yield env.timeout(days)
        suites.release(req)  # type: ignore[union-attr]
        suite_change(-1)

    def patient(i: int, rng: np.random.Generator):  # noqa: ANN202
        yield env.timeout(times[i])
        t_ref = env.now
        # every draw up front, in a fixed order: independent of event interleaving
        screen = _gamma(rng, prog.screening_days, 0.3)
        inelig = rng.random() < prog.p_ineligible
        bridged[i] = rng.random() < prog.bridging_fraction
        h0 = prog.hazard0_per_day * (prog.bridging_hazard_ratio if bridged[i] else 1.0)
        t_drop = t_ref + _drop_time(rng, h0, prog.hazard_growth_per_day)
        death = rng.random() < prog.p_death_given_dropout
        sched = _gamma(rng, prog.scheduling_days, prog.scheduling_cv)
        u_resp = rng.random()
        # the products of every attempt, in order, after all other draws: the first product
        # is the same whatever max_attempts is
        products: list[Product] = []
        collect: list[bool] = []
        if prog.kind == "autologous":
            donor = Patient(f_contam=prog.f_contam)
            for k in range(prog.max_attempts):
                prev = products[-1] if products else None
                collect.append(new_collection(k, prev))
                products.append(make_product(prog.process if collect[-1] else retained_process, donor, rng))
        cols["drop_time"][i] = t_drop
        drop_ev = env.timeout(max(0.0, t_drop - t_ref))
        cause = "death" if death else "progression"

        def dropped() -> bool:
            return env.now >= t_drop

        def wait(days: float):  # noqa: ANN202
            yield env.timeout(min(days, max(0.0, t_drop - env.now)))

        yield from wait(screen)
        if dropped():
            finish(i, cause, t_drop)
            return
        if inelig:
            finish(i, "ineligible", env.now)
            return
        cols["eligible"][i] = env.now
        if prog.kind == "autologous":
            assert slots is not None and suites is not None
            for k, product in enumerate(products):
                if collect[k]:
                    get = slots.get(1)
                    res = yield get | drop_ev
                    if get not in res:
                        get.cancel()
                        finish(i, cause, t_drop)
                        return
                    slots_used["n"] += 1
                    if k == 0:
                        cols["apheresis"][i] = env.now  # vein-to-vein counts from the first
                        attempts[i] = 1
                d = product.step_days
                yield from wait(d["apheresis"])
                if dropped():
                    finish(i, cause, t_drop)
                    return
                req = suites.request()
                res = yield req | drop_ev
                if req not in res:
                    req.cancel()
                    finish(i, cause, t_drop)
                    return
                suite_change(+1)
                cols["suite_start"][i] = env.now
                in_suite = [s for s in ("activation", "transduction", "expansion", "cryopreservation") if s in d]
                env.process(hold_suite(req, sum(d[s] for s in in_suite)))
                rest = [s for s in STEPS if s in d and s != "apheresis"]
                if product.failed_step is None:
                    break
                failed_step[i] = product.failed_step
                yield from wait(sum(d[s] for s in rest))  # the failure is found when its step ends
                if dropped():
                    finish(i, cause, t_drop)
                    return
                failures_by_attempt[k] += 1
                if k + 1 == len(products):
                    finish(i, "manufacturing failure", env.now)
                    return
                attempts[i] = k + 2  # the next attempt starts now
            yield from wait(sum(d[s] for s in rest if s != "shipping"))
            if dropped():
                finish(i, cause, t_drop)
                return
            cols["release"][i] = env.now
            cols["arrival"][i] = env.now + d["shipping"]
            cols["dose"][i] = product.dose
            cols["f_S"][i], cols["f_E"][i], cols["f_M"][i] = product.f_S, product.f_E, product.f_M
            cols["eta_tx"][i], cols["vcn"][i], cols["fitness"][i] = product.eta, product.vcn, product.fitness
            leuk[i] = product.car_leukaemic_cells
            yield from wait(sched)
            if dropped():
                finish(i, cause, t_drop)
                return
            cols["ld_start"][i] = env.now
            t_inf = max(env.now + prog.lymphodepletion_days, cols["arrival"][i])
        else:
            assert stock is not None
            while True:
                if stock.take(env.now + prog.lymphodepletion_days):
                    break
                res = yield stock.changed | drop_ev
                if drop_ev in res:
                    finish(i, cause, t_drop)
                    return
            cols["release"][i] = env.now
            cols["arrival"][i] = env.now
            cols["ld_start"][i] = env.now
            t_inf = env.now + prog.lymphodepletion_days
        yield from wait(t_inf - env.now)
        if dropped():
            finish(i, cause, t_drop)
            return
        cols["infusion"][i] = env.now
        p = response_probability(prog, env.now - t_ref, bool(bridged[i]))
        cols["p_response"][i] = p
        responded[i] = u_resp < p
        finish(i, "infused", env.now)

    for i in range(n):
        env.process(patient(i, np.random.default_rng(patient_seed_sequence(seed, i))))
    env.run(until=t_end)
    suite_change(0)
    if stock is not None:
        stock._purge()
        stock._record()  # the stock series runs to the end of the simulation

    cols["vein_to_vein"] = cols["infusion"] - cols["apheresis"]
    cols["referral_to_infusion"] = cols["infusion"] - cols["referral"]
    patients: dict[str, np.ndarray] = {"patient": np.arange(n, dtype=np.int64)}
    patients.update(cols)
    patients["outcome"] = np.array(outcome, dtype=object)
    patients["failed_step"] = np.array(failed_step, dtype=object)
    patients["bridged"] = bridged
    patients["responded"] = responded
    patients["car_leukaemic_cells"] = leuk
    patients["attempts"] = attempts
    su = np.array(use_series, dtype=float).reshape(-1, 2)
    st = np.array(stock.series if stock is not None else [], dtype=float).reshape(-1, 2)
    summary = _summarise(prog, seed, patients, busy["time"], slots_used["n"], stock, failures_by_attempt)
    return ProgrammeResult(prog, seed, patients, summary, (su[:, 0], su[:, 1]), (st[:, 0], st[:, 1]))


def _quartiles(x: np.ndarray) -> dict[str, float | None]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"median": None, "q1": None, "q3": None, "n": 0}
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(x.size)}


def _summarise(prog: Programme, seed: int, pt: dict[str, np.ndarray], suite_busy: float, slots_used: int,
               stock: _Stock | None, failures_by_attempt: list[int]) -> dict:
    n = int(pt["patient"].size)
    out = pt["outcome"]
    infused = out == "infused"
    n_inf = int(infused.sum())
    horizon = prog.horizon_days
    s: dict[str, Any] = {
        "kind": prog.kind,
        "seed": seed,
        "months": prog.months,
        "referred": n,
        "infused": n_inf,
        "infused_share": n_inf / n if n else None,
        "outcomes": {k: int((out == k).sum()) for k in OUTCOMES},
        "vein_to_vein_days": _quartiles(pt["vein_to_vein"]),
        "referral_to_infusion_days": _quartiles(pt["referral_to_infusion"]),
        "itt_response": float(np.nansum(pt["p_response"][infused]) / n) if n else None,
        "itt_response_observed": float(pt["responded"].sum() / n) if n else None,
        "response_if_infused": float(np.nanmean(pt["p_response"][infused])) if n_inf else None,
        "bridged_share": float(pt["bridged"].mean()) if n else None,
    }
    if prog.kind == "autologous":
        s["suite_utilisation"] = suite_busy / (prog.suites * horizon)
        weeks = horizon / 7.0
        s["apheresis_slot_use"] = min(1.0, slots_used / (prog.apheresis_slots_per_week * weeks))
        # patients whose every attempt failed; patients who needed more than one attempt;
        # patients who began attempt k and failures found at attempt k (k = 1, 2, …)
        s["manufacturing_failures"] = int((out == "manufacturing failure").sum())
        s["second_attempts"] = int((pt["attempts"] >= 2).sum())
        s["max_attempts"] = int(prog.max_attempts)
        s["remanufacture_from"] = prog.remanufacture_from
        s["attempts_by_number"] = [int((pt["attempts"] >= k).sum()) for k in range(1, prog.max_attempts + 1)]
        s["failures_by_attempt"] = [int(x) for x in failures_by_attempt]
    elif stock is not None:
        s["doses_expired"] = stock.expired
        s["batches_ordered"] = stock.batches_ordered
        s["batches_failed"] = stock.batches_failed
        levels = np.array([v for _, v in stock.series], dtype=float)
        s["stock_min"] = float(levels.min()) if levels.size else None
        s["stockout_waits"] = int(np.sum((pt["release"] - pt["eligible"]) > 1e-9))
    return s
