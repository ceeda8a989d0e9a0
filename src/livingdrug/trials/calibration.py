r"""Calibrating a virtual population to published trial results.

A virtual trial simulates *plausible patients*: parameter sets drawn from broad
inter-individual variability whose outputs are physiologically possible.  A published trial
reports a handful of numbers (a response rate, a CRS rate, a median time, a distribution of a
biomarker).  Two ways to make the simulated cohort reproduce them are provided, both pure
functions on arrays (no files, no printing):

Selection (Allen, Rieger & Musante 2016) — :func:`select_allen2016`
-------------------------------------------------------------------
Allen RJ, Rieger TR, Musante CJ 2016, CPT Pharmacometrics Syst Pharmacol 5:140, "Efficient
generation and selection of virtual populations in quantitative systems pharmacology models".
Each plausible patient *i* with outputs :math:`x_i \in \mathbb{R}^d` is kept with probability

.. math::

   P(\text{keep } i) = \min\bigl(1,\; s\, p_i\bigr),\qquad
   p_i = \frac{\rho_{target}(x_i)}{\rho_{plaus}(x_i)},

where :math:`\rho_{target}` is the density of the observed outputs (a multivariate normal
fitted to the trial, or a kernel density of observed patients) and :math:`\rho_{plaus}` the
density of the plausible population, estimated by a Gaussian kernel density
(:class:`scipy.stats.gaussian_kde`, Scott's bandwidth by default).  For
:math:`s \le 1/\max_i p_i` this is exact rejection sampling: the kept patients are a sample
of :math:`\rho_{target}` (up to the kernel-density error) and no patient is weighted.  A larger
:math:`s` keeps more patients at the cost of under-representing the densest region of the
target (where :math:`s p_i` is clipped at 1).  As in the paper, :math:`s` is chosen to
maximise a goodness of fit: here the mean over outputs of the one-dimensional
Kolmogorov–Smirnov p-value of the kept patients against the target marginal
(:func:`scipy.stats.kstest` against the marginal CDF, or :func:`scipy.stats.ks_2samp` against
observed patients), averaged over ``repeats`` independent selections.  Allen et al. searched
:math:`\log_{10} s` by simulated annealing from :math:`1/\max p_i` up to :math:`1000/\max p_i`;
here the same interval is scanned on a fixed logarithmic grid with *common random numbers*
(the same uniforms for every :math:`s`), which makes the search deterministic for a given
seed.  The returned population is a fresh selection at the chosen :math:`s` (the paper kept
the best of 100 re-draws; choosing the best-looking draw would make its K-S p-value
optimistic, so it is not done here).

Weighting (maximum entropy) — :func:`maxent_weights`
----------------------------------------------------
For binary or categorical targets (response rate 81 %, CRS grade ≥ 3 in 46 % of the infused)
a selection is wasteful; instead each simulated patient gets a weight :math:`w_i`
(:math:`\sum w_i = 1`) that reproduces the targets *exactly* while staying as close as possible
to uniform weights :math:`u_i = 1/n` in Kullback–Leibler divergence:

.. math::

   \min_w \sum_i w_i \ln\frac{w_i}{u_i}\quad\text{s.t.}\quad
   \sum_i w_i g_{ij} = t_j\;(j = 1..q),\quad \sum_i w_i = 1,\; w_i \ge 0 .

The solution is the exponential tilt :math:`w_i \propto \exp(\lambda^\top (g_i - t))`
(Jaynes ET 1957, Phys Rev 106:620; Csiszár I 1975, Ann Probab 3:146), with :math:`\lambda`
the minimiser of the convex dual :math:`\ln \sum_i \exp(\lambda^\top (g_i - t))`, found by
:func:`scipy.optimize.minimize` (``trust-exact``, exact gradient and Hessian).  It exists with
all :math:`w_i > 0` iff :math:`t` lies in the relative interior of the convex hull of the
:math:`g_i`.  A target *on* a coordinate boundary (e.g. "no CRS": 0 %) is honoured by giving
zero weight to the patients that contradict it; a target *outside* the hull (a 90 % response
rate when no simulated patient responds) cannot be reached by any weighting, and
:class:`CalibrationInputError` names it.  The price of weighting is precision: Kish's effective
sample size :math:`n_{eff} = (\sum w_i)^2 / \sum w_i^2` (Kish L 1965, *Survey Sampling*)
(:func:`effective_sample_size`) is what the weighted estimates are worth.

Targets — :class:`Target`
-------------------------
A published figure with its source, computed from one column of the per-patient endpoint table
(``dict`` of equal-length arrays) among the patients meeting ``among`` (conditions
``(column, op, value)``, e.g. ``("outcome", "==", "infused")``).  Each target is a set of
*linear* moment conditions :math:`\sum_i w_i m_i (f(x_i) - t) = 0` (:math:`m_i` membership),
so conditional rates and means are weighted exactly (:func:`target_moments`):

* ``proportion``: :math:`f = 1[\text{column op threshold}]` (or the boolean column);
* ``mean``: :math:`f = x`;
* ``quantiles``: :math:`f_k = 1[x \le q_k]`, target :math:`p_k` for each quantile
  :math:`q_k` at probability :math:`p_k`;
* ``distribution``: a normal :math:`N(\mu, \sigma^2)` of :math:`y = x` (or :math:`\ln x`):
  :math:`f_1 = y - \mu`, :math:`f_2 = (y-\mu)^2 - \sigma^2` (mean and SD; for weighting) or
  the full density (for :func:`select_allen2016`, via :func:`allen2016_inputs`).

:func:`calibration_table` compares the weighted (or selected) cohort with each target: the
published value and 95 % interval (given, or Wilson's from the trial's ``n`` for a
proportion), the simulated value and its 95 % interval with :math:`n = n_{eff}` — Wilson's
score interval for a proportion (Wilson EB 1927, J Am Stat Assoc 22:209), a normal interval
for a mean, Woodruff's interval for a quantile (Woodruff RS 1952, J Am Stat Assoc 47:635:
the quantiles at the ends of the Wilson interval of its probability) — and ``within``: the
simulated value lies inside the published interval (DESIGN.md: "virtual cohorts land inside
published trial ranges"); where no published interval exists, the published value must lie in
the simulated interval; a ``distribution`` is within when the K-S test (:math:`n = n_{eff}`)
does not reject at 5 %.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ..rng import as_generator

__all__ = [
    "KINDS",
    "OPS",
    "CalibrationInputError",
    "Target",
    "TargetDistribution",
    "Selection",
    "normal_target",
    "sample_target",
    "plausible",
    "select_allen2016",
    "maxent_weights",
    "effective_sample_size",
    "target_moments",
    "calibrate_weights",
    "allen2016_inputs",
    "calibration_table",
]

#: kinds of published target
KINDS = ("proportion", "mean", "quantiles", "distribution")
#: comparison operators allowed in a target's event and ``among`` conditions (data, never code)
OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": np.greater_equal,
    ">": np.greater,
    "<=": np.less_equal,
    "<": np.less,
    "==": np.equal,
    "!=": np.not_equal,
}
#: default scan of the relative scaling s·max(p) (Allen 2016: from 1 to 1000)
DEFAULT_SCALINGS = tuple(float(x) for x in np.logspace(0.0, 3.0, 31))


class CalibrationInputError(ValueError):
    """Calibration input is wrong: ``field``, ``value``, what was ``expected`` and a ``hint``."""

    def __init__(self, field: str, value: Any, expected: str, hint: str = "") -> None:
        self.field, self.value, self.expected, self.hint = field, value, expected, hint
        v = repr(value)
        if len(v) > 120:
            v = v[:117] + "..."
        text = f"{field} = {v}: expected {expected}"
        super().__init__(text + (f"; {hint}" if hint else ""))


def _num(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------------------------------------
# targets


@dataclass(frozen=True)
class Target:
    """A published figure and how to compute it from the per-patient endpoint table.

    ``kind`` and ``value``:

    * ``"proportion"``: ``value`` in [0, 1], the share of patients (meeting ``among``) with
      ``column op threshold`` (``op=None``: the boolean ``column`` itself);
    * ``"mean"``: ``value`` in ``unit``, the mean of ``column``;
    * ``"quantiles"``: ``value`` a tuple of quantiles (``unit``) at ``probabilities``
      (e.g. ``(0.5,)`` for a median);
    * ``"distribution"``: ``value = (mean, sd)`` of a normal distribution of ``column``
      (``log=True``: of ``ln(column)``, ``column`` in ``unit``).

    ``interval``: the published 95 % interval of ``value`` (for quantiles: one ``(low, high)``
    per probability, or ``None``); ``n``: patients in the published cohort, from which a
    proportion's Wilson interval is derived when ``interval`` is not given.  ``source``: paper
    and year (and which cohort).  ``among``: conditions ``(column, op, value)`` that define the
    denominator, e.g. ``(("outcome", "==", "infused"), ("status", "==", 0))``.  Patients with a
    non-finite ``column`` are not in the denominator of a mean, quantile or distribution.
    """

    name: str
    kind: str
    column: str
    value: float | tuple[float, ...]
    source: str
    interval: tuple[float, float] | tuple[tuple[float, float], ...] | None = None
    n: int | None = None
    unit: str = "1"
    op: str | None = None
    threshold: float | str | bool | None = None
    among: tuple[tuple[str, str, Any], ...] = ()
    probabilities: tuple[float, ...] = ()
    log: bool = False

    def __post_init__(self) -> None:
        f = f"target {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise CalibrationInputError("target.name", self.name, "a non-empty string")
        if self.kind not in KINDS:
            raise CalibrationInputError(f"{f}.kind", self.kind, " or ".join(map(repr, KINDS)))
        if not isinstance(self.column, str) or not self.column:
            raise CalibrationInputError(f"{f}.column", self.column, "the name of a per-patient column")
        if not isinstance(self.source, str) or not self.source.strip():
            raise CalibrationInputError(f"{f}.source", self.source, "the paper and year the figure comes from",
                                        'e.g. "Maude SL et al. 2018 NEJM (ELIANA, 75 infused)"')
        if self.op is not None and self.op not in OPS:
            raise CalibrationInputError(f"{f}.op", self.op, " or ".join(map(repr, OPS)) + " or None")
        if self.op is not None and self.kind != "proportion":
            raise CalibrationInputError(f"{f}.op", self.op, "None for a target that is not a proportion")
        if self.op is not None and self.threshold is None:
            raise CalibrationInputError(f"{f}.threshold", None, f"a value to compare {self.column} {self.op} with")
        for c in self.among:
            if not (isinstance(c, tuple) and len(c) == 3 and isinstance(c[0], str) and c[1] in OPS):
                raise CalibrationInputError(f"{f}.among", c, "(column, op, value) with op in " + ", ".join(OPS),
                                            'e.g. ("outcome", "==", "infused")')
        if self.n is not None and (isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1):
            raise CalibrationInputError(f"{f}.n", self.n, "a whole number of published patients ≥ 1")
        v = self.value
        if self.kind == "proportion":
            if not _num(v) or not 0.0 <= float(v) <= 1.0:  # type: ignore[arg-type]
                raise CalibrationInputError(f"{f}.value", v, "a proportion in [0, 1]", "e.g. 0.81 for 81 %")
        elif self.kind == "mean":
            if not _num(v):
                raise CalibrationInputError(f"{f}.value", v, f"a finite mean in {self.unit}")
        elif self.kind == "quantiles":
            p, q = self.probabilities, v
            if not isinstance(q, tuple) or not q or not all(_num(x) for x in q):
                raise CalibrationInputError(f"{f}.value", q, f"a tuple of quantiles in {self.unit}", "e.g. (30.4,)")
            if len(p) != len(q) or not all(_num(x) and 0 < x < 1 for x in p) or list(p) != sorted(set(p)):
                raise CalibrationInputError(f"{f}.probabilities", p,
                                            f"{len(q)} increasing probabilities in (0, 1), one per quantile",
                                            "e.g. (0.5,) for a median")
            if list(q) != sorted(q):
                raise CalibrationInputError(f"{f}.value", q, "quantiles that do not decrease with probability")
        else:  # distribution
            if not (isinstance(v, tuple) and len(v) == 2 and all(_num(x) for x in v) and v[1] > 0):
                raise CalibrationInputError(f"{f}.value", v, "(mean, sd) of a normal distribution with sd > 0",
                                            "with log=True, of ln(column)")
        if self.kind != "quantiles" and self.probabilities:
            raise CalibrationInputError(f"{f}.probabilities", self.probabilities, "() unless kind is 'quantiles'")
        self._check_interval(f)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Target:
        """A target from plain data (e.g. a TOML table): lists become tuples; ``among`` is a
        list of ``[column, op, value]``; ``interval`` of a quantiles target a list of pairs.
        Unknown keys are an error naming them."""
        import dataclasses

        known = [f.name for f in dataclasses.fields(cls)]
        name = d.get("name", "?") if isinstance(d, Mapping) else "?"
        if not isinstance(d, Mapping):
            raise CalibrationInputError("target", d, "a table of target fields", f"fields: {', '.join(known)}")
        extra = sorted(set(d) - set(known))
        if extra:
            raise CalibrationInputError(f"target {name!r}.{extra[0]}", d[extra[0]], "a known target field",
                                        f"known: {', '.join(known)}")
        missing = [k for k in ("name", "kind", "column", "value", "source") if k not in d]
        if missing:
            raise CalibrationInputError(f"target {name!r}.{missing[0]}", None, "a value (required field)")

        def tup(v: Any) -> Any:
            return tuple(tup(x) for x in v) if isinstance(v, (list, tuple)) else v

        kw = {k: tup(v) for k, v in d.items()}
        return cls(**kw)

    def _check_interval(self, f: str) -> None:
        iv: Any = self.interval
        if iv is None:
            return
        pairs: Sequence[Any]
        if self.kind == "quantiles":
            pairs = iv if isinstance(iv, tuple) and len(iv) == len(self.probabilities) else (None,)
        elif self.kind == "distribution":
            raise CalibrationInputError(f"{f}.interval", iv, "None for a distribution (it is tested by K-S)")
        else:
            pairs = (iv,)
        for pr in pairs:
            if not (isinstance(pr, tuple) and len(pr) == 2 and all(_num(x) for x in pr) and pr[0] <= pr[1]):
                want = ("one (low, high) per probability" if self.kind == "quantiles" else "(low, high) with low ≤ high")
                raise CalibrationInputError(f"{f}.interval", iv, want)

    def published_rows(self) -> list[tuple[str, float, tuple[float, float] | None]]:
        """``(label, published value, published 95 % interval or None)`` per reported row."""
        if self.kind == "quantiles":
            ivs: Any = self.interval or (None,) * len(self.probabilities)
            return [(f"{self.name} (q{100 * p:g} %)", float(q), None if iv is None else (float(iv[0]), float(iv[1])))
                    for p, q, iv in zip(self.probabilities, self.value, ivs, strict=True)]  # type: ignore[arg-type]
        if self.kind == "distribution":
            return [(self.name, math.nan, None)]
        v = float(self.value)  # type: ignore[arg-type]
        if self.interval is not None:
            lo, hi = cast(tuple[float, float], self.interval)
            return [(self.name, v, (float(lo), float(hi)))]
        if self.kind == "proportion" and self.n is not None:
            from ..clinical.probability import proportion

            p = proportion(int(round(v * self.n)), int(self.n))
            return [(self.name, v, (p.low, p.high))]
        return [(self.name, v, None)]


def _column(table: Mapping[str, Any], name: str, target: str) -> np.ndarray:
    if name not in table:
        raise CalibrationInputError(f"target {target!r}.column", name, "a column of the per-patient table",
                                    f"known columns: {', '.join(sorted(table))[:300]}")
    return np.asarray(table[name])


def _n_rows(table: Mapping[str, Any]) -> int:
    if not table:
        raise CalibrationInputError("table", "{}", "a per-patient table with at least one column")
    sizes = {k: np.asarray(v).reshape(-1).size for k, v in table.items()}
    if len(set(sizes.values())) != 1:
        raise CalibrationInputError("table", sizes, "columns of equal length (one row per patient)")
    return next(iter(sizes.values()))


def _compare(x: np.ndarray, op: str, value: Any) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.asarray(OPS[op](x, value), dtype=bool)


def _members(table: Mapping[str, Any], t: Target) -> np.ndarray:
    """Patients in ``t``'s denominator (``among`` conditions; finite values for numeric kinds)."""
    n = _n_rows(table)
    m = np.ones(n, dtype=bool)
    for col, op, val in t.among:
        m &= _compare(_column(table, col, t.name), op, val)
    if t.kind != "proportion":
        x = _values(table, t)
        m &= np.isfinite(x)
    return m


def _values(table: Mapping[str, Any], t: Target) -> np.ndarray:
    x = _column(table, t.column, t.name)
    try:
        y = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise CalibrationInputError(f"target {t.name!r}.column", t.column, f"a numeric column for a {t.kind}") from None
    if t.log:
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(y > 0, np.log(np.where(y > 0, y, 1.0)), np.nan)
    return y


def _event(table: Mapping[str, Any], t: Target) -> np.ndarray:
    x = _column(table, t.column, t.name)
    if t.op is None:
        if x.dtype != bool and not np.isin(x[~_isnan(x)], (0, 1, True, False)).all():
            raise CalibrationInputError(f"target {t.name!r}.op", None,
                                        f"an op and threshold, since column {t.column!r} is not boolean",
                                        'e.g. op=">=", threshold=3')
        return np.asarray(np.nan_to_num(np.asarray(x, dtype=float)) != 0, dtype=bool)
    return _compare(x, t.op, t.threshold)


def _isnan(x: np.ndarray) -> np.ndarray:
    try:
        return np.isnan(np.asarray(x, dtype=float))
    except (TypeError, ValueError):
        return np.zeros(x.shape, dtype=bool)


def _moment_parts(table: Mapping[str, Any], t: Target) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """``(label, membership m, statistic f, target value)`` per moment condition of ``t``."""
    m = _members(table, t)
    if not m.any():
        conds = " and ".join(f"{c} {o} {v!r}" for c, o, v in t.among) or "(all patients)"
        raise CalibrationInputError(f"target {t.name!r}.among", t.among,
                                    "conditions that at least one simulated patient meets",
                                    f"no simulated patient has {conds}" + (f" and a finite {t.column}" if t.kind != "proportion" else ""))
    if t.kind == "proportion":
        return [(t.name, m, _event(table, t).astype(float), float(t.value))]  # type: ignore[arg-type]
    x = np.where(m, _values(table, t), 0.0)
    if t.kind == "mean":
        return [(t.name, m, x, float(t.value))]  # type: ignore[arg-type]
    if t.kind == "quantiles":
        return [(label, m, (x <= q).astype(float), float(p))
                for (label, q, _), p in zip(t.published_rows(), t.probabilities, strict=True)]
    mu, sd = t.value  # type: ignore[misc]
    return [(f"{t.name} (mean)", m, x - mu, 0.0), (f"{t.name} (SD)", m, (x - mu) ** 2, sd**2)]


def target_moments(table: Mapping[str, Any], targets: Sequence[Target]) -> tuple[np.ndarray, list[str]]:
    r"""Linear moment conditions of ``targets`` on the per-patient ``table``.

    Returns ``G[n, q]`` and the condition labels; weights ``w`` reproduce every target iff
    :math:`\sum_i w_i G_{ij} = 0` for every *j*, with :math:`G_{ij} = m_i (f_j(x_i) - t_j)`
    (see the module doc).  Raises :class:`CalibrationInputError` naming a target whose value is
    outside what the simulated patients of its denominator can reach (e.g. a 90 % rate when none
    of them has the event) — no weighting can then reproduce it.
    """
    if not targets:
        raise CalibrationInputError("targets", list(targets), "at least one Target")
    names = [t.name for t in targets]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise CalibrationInputError("targets", dup[0], "each target name once")
    cols, labels = [], []
    for t in targets:
        for label, m, f, v in _moment_parts(table, t):
            fm = f[m]
            lo, hi = float(fm.min()), float(fm.max())
            if v < lo - 1e-12 * max(1.0, abs(v)) or v > hi + 1e-12 * max(1.0, abs(v)):
                what = "proportion" if t.kind in ("proportion", "quantiles") else "value"
                raise CalibrationInputError(
                    f"target {label!r}", v,
                    f"a {what} the simulated patients can reach: among the {int(m.sum())} in its denominator "
                    f"it ranges from {lo:.6g} to {hi:.6g}",
                    "no weighting or selection can create what the simulation lacks; widen the population's "
                    "variability or check the model")
            cols.append(np.where(m, f - v, 0.0))
            labels.append(label)
    return np.column_stack(cols), labels


# ---------------------------------------------------------------------------------------------
# maximum-entropy weights


def effective_sample_size(weights: Any) -> float:
    r"""Kish's effective sample size :math:`(\sum w_i)^2 / \sum w_i^2` (Kish L 1965, *Survey
    Sampling*, Wiley): ``n`` for equal weights, 1 when one patient carries all the weight.
    Weights must be finite, non-negative and not all zero."""
    w = np.asarray(weights, dtype=float).reshape(-1)
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise CalibrationInputError("weights", f"array of {w.size} values",
                                    "finite, non-negative weights, not all zero")
    return float(w.sum() ** 2 / np.dot(w, w))


def _lp_feasible(G: np.ndarray) -> bool:
    """Whether some probability vector ``w`` has ``Gᵀw = 0`` (closed convex hull contains 0)."""
    from scipy.optimize import linprog

    n, q = G.shape
    A = np.vstack([G.T, np.ones((1, n))])
    b = np.concatenate([np.zeros(q), [1.0]])
    res = linprog(np.zeros(n), A_eq=A, b_eq=b, bounds=(0, None), method="highs")
    return bool(res.status == 0)


def maxent_weights(values: Any, targets: Any, *, names: Sequence[str] | None = None,
                   tol: float = 1e-10) -> np.ndarray:
    r"""Maximum-entropy weights reproducing target means exactly (module doc).

    ``values[n, q]``: per-patient indicators or values :math:`g_{ij}`; ``targets[q]``: the
    weighted means :math:`t_j` to reproduce.  Returns ``w[n]`` with :math:`\sum w = 1`,
    :math:`w \ge 0` and :math:`\sum_i w_i g_{ij} = t_j`, the one closest to uniform in KL
    divergence: :math:`w_i \propto \exp(\lambda^\top (g_i - t))`.  Patients that contradict a
    target on the boundary of what is reachable (a 0 % or 100 % rate, a mean equal to the
    smallest value) get weight 0.  ``names`` label the targets in errors.  ``tol``: the
    largest accepted residual :math:`|\sum_i w_i g_{ij} - t_j|` relative to the spread of
    column *j*.

    Raises :class:`CalibrationInputError` naming the target(s) that no weighting reaches.
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    g = np.asarray(values, dtype=float)
    if g.ndim == 1:
        g = g[:, None]
    t = np.atleast_1d(np.asarray(targets, dtype=float))
    if g.ndim != 2 or g.shape[0] == 0 or t.shape != (g.shape[1],):
        raise CalibrationInputError("values", f"shape {np.shape(values)}",
                                    f"an [n, q] array with n ≥ 1 and q = len(targets) = {t.size}")
    n, q = g.shape
    labels = list(names) if names is not None else [f"target {j}" for j in range(q)]
    if len(labels) != q:
        raise CalibrationInputError("names", labels, f"{q} names, one per target")
    if not np.all(np.isfinite(g)):
        bad = sorted({labels[j] for j in np.nonzero(~np.isfinite(g).all(axis=0))[0]})
        raise CalibrationInputError("values", f"non-finite entries for {', '.join(bad)}",
                                    "finite values", "drop the failed patients or set their indicator to 0")
    if not np.all(np.isfinite(t)):
        raise CalibrationInputError("targets", t.tolist(), "finite values")
    G = g - t
    spread = np.where(np.ptp(g, axis=0) > 0, np.ptp(g, axis=0), 1.0)
    eps = 1e-12 * spread
    keep = np.ones(n, dtype=bool)
    active = np.ones(q, dtype=bool)
    changed = True
    while changed:  # coordinate boundaries: zero weight for patients contradicting them
        changed = False
        for j in np.nonzero(active)[0]:
            col = G[keep, j]
            lo, hi = float(col.min()), float(col.max())
            if lo > eps[j] or hi < -eps[j]:
                ctx = "" if keep.all() else " given the other targets on their boundaries"
                raise CalibrationInputError(
                    f"target {labels[j]!r}", float(t[j]),
                    f"a value within reach of the simulated patients{ctx}: they range from "
                    f"{lo + t[j]:.6g} to {hi + t[j]:.6g}",
                    "no weighting can create what the simulation lacks; widen the population's variability")
            if hi - lo <= eps[j]:
                active[j] = False  # every kept patient already meets it
                changed = True
            elif lo >= -eps[j]:
                keep &= ~(G[:, j] > eps[j])
                active[j] = False
                changed = True
            elif hi <= eps[j]:
                keep &= ~(G[:, j] < -eps[j])
                active[j] = False
                changed = True
    w = np.zeros(n)
    idx = np.nonzero(keep)[0]
    if not active.any():
        w[idx] = 1.0 / idx.size
        return w
    A = G[np.ix_(idx, np.nonzero(active)[0])] / spread[active]

    def dual(lam: np.ndarray) -> float:
        return float(logsumexp(A @ lam))

    def probs(lam: np.ndarray) -> np.ndarray:
        z = A @ lam
        p = np.exp(z - z.max())
        return np.asarray(p / p.sum())

    def grad(lam: np.ndarray) -> np.ndarray:
        return np.asarray(probs(lam) @ A)

    def hess(lam: np.ndarray) -> np.ndarray:
        p = probs(lam)
        m = p @ A
        return np.asarray((A * p[:, None]).T @ A - np.outer(m, m))

    res = minimize(dual, np.zeros(A.shape[1]), jac=grad, hess=hess, method="trust-exact",
                   options={"gtol": 1e-14, "maxiter": 500})
    lam = res.x
    for _ in range(20):  # Newton polish (the dual is smooth and convex)
        r = grad(lam)
        if np.max(np.abs(r)) <= 1e-15:
            break
        step = np.linalg.lstsq(hess(lam), r, rcond=None)[0]
        lam = lam - step
    p = probs(lam)
    resid = np.abs(p @ A)
    if not np.all(np.isfinite(p)) or np.max(resid) > tol:
        act = [labels[j] for j in np.nonzero(active)[0]]
        if not _lp_feasible(G[idx][:, active]):
            culprits = [act[k] for k in range(len(act))
                        if _lp_feasible(np.delete(G[idx][:, active], k, axis=1))]
            who = ", ".join(culprits or act)
            raise CalibrationInputError(
                "targets", who,
                f"targets that some weighting of the simulated patients reproduces together; {', '.join(act)} "
                "are jointly out of reach" + (f" (dropping any one of {who} makes the rest reachable)" if culprits else ""),
                "widen the population's variability or revisit the targets")
        raise CalibrationInputError(
            "targets", ", ".join(act),
            "targets strictly inside the range the simulated patients span jointly; they lie on its "
            "boundary, so only a degenerate weighting reproduces them",
            "widen the population's variability or relax one of the targets")
    w[idx] = p
    return w


def calibrate_weights(table: Mapping[str, Any], targets: Sequence[Target]) -> np.ndarray:
    """Maximum-entropy weights (sum 1) of the patients of ``table`` reproducing every target
    exactly (:func:`target_moments` then :func:`maxent_weights`)."""
    G, labels = target_moments(table, targets)
    return maxent_weights(G, np.zeros(G.shape[1]), names=labels)


# ---------------------------------------------------------------------------------------------
# Allen 2016 selection


@dataclass(frozen=True)
class TargetDistribution:
    """The observed distribution of ``d`` outputs for :func:`select_allen2016`.

    ``pdf(x[n, d]) → density[n]``; goodness of fit uses ``samples[m, d]`` (two-sample K-S) when
    given, else the marginal CDFs ``cdfs[j](x) → F_j(x)`` (one-sample K-S).  Build it with
    :func:`normal_target` or :func:`sample_target`."""

    pdf: Callable[[np.ndarray], np.ndarray]
    dims: int
    source: str
    cdfs: tuple[Callable[[np.ndarray], np.ndarray], ...] | None = None
    samples: np.ndarray | None = field(default=None, repr=False)
    labels: tuple[str, ...] = ()


def normal_target(mean: Any, cov: Any, *, source: str, labels: Sequence[str] = ()) -> TargetDistribution:
    """A multivariate normal target ``N(mean, cov)`` (``cov`` a matrix, or a vector of
    variances for independent outputs)."""
    from scipy.stats import multivariate_normal, norm

    mu = np.atleast_1d(np.asarray(mean, dtype=float))
    c = np.asarray(cov, dtype=float)
    if c.ndim <= 1:
        c = np.diag(np.broadcast_to(c, mu.shape).astype(float))
    if c.shape != (mu.size, mu.size) or not np.all(np.isfinite(c)) or not np.all(np.isfinite(mu)):
        raise CalibrationInputError("cov", f"shape {c.shape}", f"a finite {mu.size}×{mu.size} covariance")
    if not np.allclose(c, c.T) or np.min(np.linalg.eigvalsh(c)) <= 0:
        raise CalibrationInputError("cov", c.tolist(), "a symmetric positive-definite covariance")
    mvn = multivariate_normal(mean=mu, cov=c)
    sd = np.sqrt(np.diag(c))

    def pdf(x: np.ndarray) -> np.ndarray:
        return np.atleast_1d(np.asarray(mvn.pdf(np.asarray(x, dtype=float).reshape(-1, mu.size)), dtype=float))

    cdfs = tuple(norm(loc=float(m), scale=float(s)).cdf for m, s in zip(mu, sd, strict=True))
    return TargetDistribution(pdf=pdf, dims=mu.size, source=source, cdfs=cdfs, labels=tuple(labels))


def sample_target(samples: Any, *, source: str, bandwidth: Any = None,
                  labels: Sequence[str] = ()) -> TargetDistribution:
    """A target given by observed patients ``samples[m, d]``: density by Gaussian kernel density
    (:class:`scipy.stats.gaussian_kde`, ``bandwidth`` its ``bw_method``), fit by two-sample K-S."""
    from scipy.stats import gaussian_kde

    s = np.asarray(samples, dtype=float)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2 or s.shape[0] < s.shape[1] + 2 or not np.all(np.isfinite(s)):
        raise CalibrationInputError("samples", f"shape {np.shape(samples)}",
                                    "finite observed outputs [m, d] with m > d + 1")
    kde = gaussian_kde(s.T, bw_method=bandwidth)

    def pdf(x: np.ndarray) -> np.ndarray:
        return np.asarray(kde(np.asarray(x, dtype=float).reshape(-1, s.shape[1]).T), dtype=float)

    return TargetDistribution(pdf=pdf, dims=s.shape[1], source=source, samples=s, labels=tuple(labels))


def plausible(outputs: Any, lower: Any, upper: Any) -> np.ndarray:
    """Plausible patients: every output finite and within ``[lower, upper]`` (per column)."""
    x = np.asarray(outputs, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    lo = np.broadcast_to(np.asarray(lower, dtype=float), (x.shape[1],))
    hi = np.broadcast_to(np.asarray(upper, dtype=float), (x.shape[1],))
    if np.any(lo > hi):
        raise CalibrationInputError("lower", lo.tolist(), f"bounds not above upper = {hi.tolist()}")
    return np.asarray(np.all(np.isfinite(x) & (x >= lo) & (x <= hi), axis=1))


@dataclass(frozen=True)
class Selection:
    r"""A virtual population selected from plausible patients (:func:`select_allen2016`).

    ``indices``: rows of the plausible outputs that were kept; ``p_inclusion[n]``: the density
    ratio :math:`p_i` (0 for non-finite rows); ``scaling``: :math:`s` (keep with probability
    :math:`\min(1, s p_i)`); ``relative_scaling``: :math:`s \max_i p_i` (1 = exact rejection
    sampling); ``ks_pvalues[d]`` and ``gof`` (their mean): K-S fit of the returned population;
    ``scan``: ``(relative scalings, mean GOF over repeats, mean number kept)``."""

    indices: np.ndarray
    p_inclusion: np.ndarray
    scaling: float
    relative_scaling: float
    ks_pvalues: np.ndarray
    gof: float
    scan: tuple[np.ndarray, np.ndarray, np.ndarray]
    n_plausible: int


def _ks(x: np.ndarray, target: TargetDistribution) -> np.ndarray:
    from scipy.stats import ks_2samp, kstest

    out = np.empty(target.dims)
    for j in range(target.dims):
        if target.samples is not None:
            out[j] = ks_2samp(x[:, j], target.samples[:, j]).pvalue
        else:
            assert target.cdfs is not None
            out[j] = kstest(x[:, j], target.cdfs[j]).pvalue
    return out


def select_allen2016(outputs: Any, target: TargetDistribution | Any, *, rng: Any,
                     plausible_density: Any = None, bandwidth: Any = None,
                     scalings: Sequence[float] = DEFAULT_SCALINGS, repeats: int = 10,
                     kde_points: int = 20_000, min_selected: int = 10) -> Selection:
    r"""Select a virtual population from plausible patients (Allen, Rieger & Musante 2016,
    CPT Pharmacometrics Syst Pharmacol 5:140; module doc).

    ``outputs[n, d]``: the plausible patients' outputs (rows with a non-finite output are never
    kept); ``target``: the observed distribution (:func:`normal_target`, :func:`sample_target`,
    or an array ``[m, d]`` of observed outputs, turned into :func:`sample_target`);
    ``rng``: seed or :class:`numpy.random.Generator`.  ``plausible_density[n]``: the plausible
    density at each row, if known (else a Gaussian KDE, ``bandwidth`` its ``bw_method``,
    built from at most ``kde_points`` random rows).  ``scalings``: relative scalings
    :math:`s \max p` scanned (default 1 … 1000, 31 log-spaced values), each scored by the mean
    K-S p-value over ``repeats`` selections (common random numbers); fewer than
    ``min_selected`` kept patients score 0.  Returns a :class:`Selection` (its ``indices`` are
    the virtual population).
    """
    from scipy.stats import gaussian_kde

    if not isinstance(target, TargetDistribution):
        target = sample_target(target, source="observed outputs given to select_allen2016")
    gen = as_generator(rng)
    x = np.asarray(outputs, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != target.dims:
        raise CalibrationInputError("outputs", f"shape {np.shape(outputs)}",
                                    f"[n, {target.dims}]: one column per output of the target")
    if not (isinstance(repeats, int) and repeats >= 1):
        raise CalibrationInputError("repeats", repeats, "a whole number ≥ 1")
    sc = np.asarray(scalings, dtype=float).reshape(-1)
    if sc.size == 0 or not np.all(np.isfinite(sc)) or np.any(sc <= 0):
        raise CalibrationInputError("scalings", list(scalings), "positive relative scalings s·max(p)",
                                    "1 = exact rejection sampling; the default scans 1 to 1000")
    n, d = x.shape
    ok = np.all(np.isfinite(x), axis=1)
    if ok.sum() < max(d + 2, min_selected):
        raise CalibrationInputError("outputs", f"{int(ok.sum())} finite rows",
                                    f"at least {max(d + 2, min_selected)} plausible patients with finite outputs")
    xo = x[ok]
    if plausible_density is None:
        pts = xo if xo.shape[0] <= kde_points else xo[gen.choice(xo.shape[0], kde_points, replace=False)]
        rho_p = np.asarray(gaussian_kde(pts.T, bw_method=bandwidth)(xo.T), dtype=float)
    else:
        rho_p = np.asarray(plausible_density, dtype=float).reshape(-1)
        if rho_p.size != n:
            raise CalibrationInputError("plausible_density", f"{rho_p.size} values", f"one per row of outputs ({n})")
        rho_p = rho_p[ok]
        if not np.all(np.isfinite(rho_p)) or np.any(rho_p <= 0):
            raise CalibrationInputError("plausible_density", "non-positive or non-finite values",
                                        "a positive density at every finite row")
    rho_t = np.asarray(target.pdf(xo), dtype=float).reshape(-1)
    if rho_t.size != xo.shape[0] or not np.all(np.isfinite(rho_t)) or np.any(rho_t < 0):
        raise CalibrationInputError("target.pdf", "invalid values", "a finite non-negative density per row")
    p = np.zeros(n)
    p[ok] = rho_t / np.maximum(rho_p, np.finfo(float).tiny)
    pmax = float(p.max())
    if pmax <= 0:
        raise CalibrationInputError("target", target.source,
                                    "a distribution with positive density where the plausible patients are",
                                    "the plausible outputs and the target do not overlap")

    def score(sel: np.ndarray) -> float:
        return float(np.mean(_ks(x[sel], target))) if sel.sum() >= min_selected else 0.0

    u = gen.random((repeats, n))
    mean_gof = np.empty(sc.size)
    mean_kept = np.empty(sc.size)
    for k, c in enumerate(sc):
        acc = np.minimum(1.0, (c / pmax) * p)
        sels = u < acc
        mean_gof[k] = np.mean([score(s) for s in sels])
        mean_kept[k] = sels.sum(axis=1).mean()
    best = int(np.argmax(mean_gof))
    s = float(sc[best] / pmax)
    final = gen.random(n) < np.minimum(1.0, s * p)
    idx = np.nonzero(final)[0].astype(np.int64)
    pv = _ks(x[idx], target) if idx.size >= 2 else np.zeros(d)
    return Selection(indices=idx, p_inclusion=p, scaling=s, relative_scaling=float(sc[best]),
                     ks_pvalues=pv, gof=float(pv.mean()), scan=(sc, mean_gof, mean_kept), n_plausible=int(ok.sum()))


def allen2016_inputs(table: Mapping[str, Any], targets: Sequence[Target]) -> tuple[np.ndarray, TargetDistribution, np.ndarray]:
    """``(outputs[n, d], target, rows)`` for :func:`select_allen2016` from the ``distribution``
    targets (independent normals, one output each, log-transformed where ``log``): ``rows``
    are the table rows (patients in every target's denominator with finite outputs) that
    ``outputs`` holds; a selection's ``indices`` index ``rows``."""
    dist = [t for t in targets if t.kind == "distribution"]
    if not dist:
        raise CalibrationInputError("targets", [t.name for t in targets], "at least one 'distribution' target")
    n = _n_rows(table)
    m = np.ones(n, dtype=bool)
    for t in dist:
        m &= _members(table, t)
    rows = np.nonzero(m)[0]
    outputs = np.column_stack([_values(table, t)[rows] for t in dist])
    mean = [t.value[0] for t in dist]  # type: ignore[index]
    var = [t.value[1] ** 2 for t in dist]  # type: ignore[index]
    src = "; ".join(sorted({t.source for t in dist}))
    return outputs, normal_target(mean, var, source=src, labels=[t.name for t in dist]), rows


# ---------------------------------------------------------------------------------------------
# comparison table


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion ``p`` out of ``n`` (not necessarily whole)."""
    if n <= 0 or not math.isfinite(p):
        return math.nan, math.nan
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _wquantile(x: np.ndarray, w: np.ndarray, p: float) -> float:
    """Smallest ``x`` at which the weighted ECDF reaches ``p``."""
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(w[order]) / w.sum()
    k = int(np.searchsorted(cw, min(max(p, 0.0), 1.0) - 1e-12, side="left"))
    return float(x[order][min(k, x.size - 1)])


def _row_weights(n: int, weights: Any, selected: Any) -> np.ndarray:
    if (weights is None) == (selected is None):
        raise CalibrationInputError("weights/selected", "both" if weights is not None else "neither",
                                    "exactly one of weights (from maxent_weights) or selected (indices or a Selection)")
    if weights is not None:
        w = np.asarray(weights, dtype=float).reshape(-1)
        if w.size != n:
            raise CalibrationInputError("weights", f"{w.size} values", f"one weight per patient of the table ({n})")
        effective_sample_size(w)  # validates
        return w
    idx = np.asarray(selected.indices if isinstance(selected, Selection) else selected).reshape(-1)
    if idx.dtype == bool:
        if idx.size != n:
            raise CalibrationInputError("selected", f"{idx.size} flags", f"one per patient of the table ({n})")
        idx = np.nonzero(idx)[0]
    if idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= n:
        raise CalibrationInputError("selected", f"{idx.size} indices", f"row indices in [0, {n}) (at least one)")
    w = np.zeros(n)
    np.add.at(w, idx, 1.0)
    return w


def calibration_table(table: Mapping[str, Any], targets: Sequence[Target], *, weights: Any = None,
                      selected: Any = None, confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per published figure: the target against the weighted (``weights[n]``) or
    selected (``selected``: row indices, a boolean mask or a :class:`Selection`) cohort.

    Row keys: ``target``, ``kind``, ``column``, ``unit``, ``source``, ``published``,
    ``published_interval`` (``(low, high)`` or ``None``), ``simulated``,
    ``simulated_interval`` (``confidence`` level, with n = the effective sample size of the
    denominator), ``n_effective``, ``within`` (bool) and ``criterion`` (how ``within`` was
    decided); ``distribution`` rows also carry ``simulated_sd`` and ``ks_pvalue``.  Intervals
    and criteria: module doc.
    """
    from scipy.stats import kstwo, norm

    if not 0 < confidence < 1:
        raise CalibrationInputError("confidence", confidence, "a level in (0, 1)", "e.g. 0.95")
    n = _n_rows(table)
    w_all = _row_weights(n, weights, selected)
    z = float(norm.ppf(0.5 + confidence / 2))
    rows: list[dict[str, Any]] = []
    for t in targets:
        m = _members(table, t) & (w_all > 0)
        w = w_all[m]
        neff = effective_sample_size(w) if w.size else 0.0
        base = {"kind": t.kind, "column": t.column, "unit": t.unit, "source": t.source, "n_effective": neff}
        published = t.published_rows()
        if t.kind == "distribution":
            mu, sd = t.value  # type: ignore[misc]
            row = {"target": t.name, **base, "published": (float(mu), float(sd)), "published_interval": None}
            if w.size == 0:
                rows.append({**row, "simulated": math.nan, "simulated_sd": math.nan, "simulated_interval": None,
                             "ks_pvalue": math.nan, "within": False, "criterion": "no simulated patient"})
                continue
            y = _values(table, t)[m]
            wn = w / w.sum()
            mean = float(wn @ y)
            sdv = float(math.sqrt(max(wn @ (y - mean) ** 2, 0.0)))
            order = np.argsort(y)
            F = np.cumsum(wn[order])
            Phi = norm.cdf(y[order], loc=mu, scale=sd)
            D = float(max(np.max(F - Phi), np.max(Phi - (F - wn[order]))))
            k = max(int(round(neff)), 1)
            pval = float(kstwo.sf(D, k))
            half = z * sdv / math.sqrt(neff)
            rows.append({**row, "simulated": mean, "simulated_sd": sdv,
                         "simulated_interval": (mean - half, mean + half), "ks_pvalue": pval,
                         "within": bool(pval >= 0.05),
                         "criterion": f"weighted K-S test against N({mu:g}, {sd:g}²) with n = n_eff does not reject at 5 %"})
            continue
        for r, (label, pub, piv) in enumerate(published):
            if w.size == 0:
                est, iv = math.nan, (math.nan, math.nan)
            elif t.kind == "proportion":
                est = float(w @ _event(table, t)[m] / w.sum())
                iv = _wilson(est, neff, z)
            elif t.kind == "mean":
                x = _values(table, t)[m]
                est = float(w @ x / w.sum())
                var = float((w / w.sum()) @ (x - est) ** 2)
                half = z * math.sqrt(var / neff)
                iv = (est - half, est + half)
            else:  # quantiles (Woodruff 1952)
                x = _values(table, t)[m]
                p = t.probabilities[r]
                est = _wquantile(x, w, p)
                plo, phi = _wilson(p, neff, z)
                iv = (_wquantile(x, w, plo), _wquantile(x, w, phi))
            if piv is not None:
                within = bool(piv[0] <= est <= piv[1])
                crit = "simulated value inside the published interval"
            else:
                within = bool(iv[0] <= pub <= iv[1])
                crit = "published value inside the simulated interval (no published interval)"
            rows.append({"target": label, **base, "published": pub, "published_interval": piv, "simulated": est,
                         "simulated_interval": iv, "within": within, "criterion": crit})
    return rows
