r"""Figures of a virtual clinical trial, drawn from the per-patient endpoint table.

The table is a mapping of equal-length columns (a dict of numpy arrays or a pandas
DataFrame), one row per (arm, patient), as built by :mod:`livingdrug.comparison` (units in
:data:`livingdrug.report.comparison.COLUMN_UNITS`).  Each figure has a *writer*
(``waterfall(table, path)`` …, returning the PNG path, written atomically with the research-use
footer by :func:`livingdrug.report.html.save_png`) and a *drawer* (``draw_waterfall(table)`` …,
returning the matplotlib ``Figure`` for notebooks and tests).  matplotlib is imported only
when drawing, with the Agg backend.

* :func:`waterfall` — best change in tumour burden from baseline per patient,
  :math:`\Delta_i = 100\,(N_{nadir,i} - N_{0,i})/N_{0,i}` (%), bars sorted from the largest
  increase (left) to the deepest reduction (right), coloured by response, one panel per arm;
  increases above ``cap`` (+100 % by default) are drawn at the cap.  Columns
  ``tumour_baseline`` and ``tumour_nadir`` (cell) and ``responded``; patients without a
  finite positive baseline or a finite nadir (never infused) are left out.
* :func:`km_figure` — Kaplan–Meier curves per arm (Kaplan EL, Meier P 1958, J Am Stat Assoc
  53:457) with pointwise 95 % bands (Greenwood, log-log), computed by the shared
  :func:`livingdrug.clinical.probability.kaplan_meier`; censored times are marked ``+``;
  the number at risk :math:`n(\tau) = \#\{i : T_i \ge \tau\}` is printed under the axis at
  each tick :math:`\tau`.
* :func:`grade_bars` — distribution of the maximum ASTCT CRS and ICANS grade (Lee DW et al.
  2019, Biol Blood Marrow Transplant 25:625; grade 5 = death) per arm, stacked percentages of
  the patients with a grade (the infused; NaN rows are left out).
* :func:`exposure_response` — logistic regression of response on log exposure,
  :math:`\operatorname{logit} P(\text{response}) = \beta_0 + \beta_1 \log_{10} C_{max}`,
  by maximum likelihood (:func:`logistic_fit`, :func:`scipy.optimize.minimize`, exact
  gradient and Hessian), with its 95 % pointwise band (delta method on the logit scale,
  Wald), and observed response proportions in quantile bins of exposure with Wilson 95 %
  intervals (:func:`livingdrug.clinical.probability.proportion`).
* :func:`kinetics_bands` — median and 5/25/75/95th percentiles over patients of a time
  course ``values[n, T]`` at times ``t[T]`` (d), log scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..clinical.probability import kaplan_meier, proportion
from .html import save_png

__all__ = [
    "waterfall",
    "km_figure",
    "grade_bars",
    "exposure_response",
    "kinetics_bands",
    "draw_waterfall",
    "draw_km",
    "draw_grade_bars",
    "draw_exposure_response",
    "draw_kinetics_bands",
    "best_percent_change",
    "number_at_risk",
    "logistic_fit",
    "LogisticFit",
    "GRADE_COLOURS",
    "PERCENTILES",
]

_COLOURS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000")
#: colour of each maximum grade 0…5 in :func:`grade_bars`
GRADE_COLOURS = ("#dddddd", "#fee391", "#fdae61", "#e34a33", "#99000d", "#000000")
_RESPONSE_COLOURS = {True: "#228833", False: "#ee6677"}
_TIME_LABELS = {"efs_day": "days since referral", "os_day": "days since referral", "pfs_day": "days after infusion",
                "response_day": "days after infusion",
                "relapse_day": "days after infusion", "mrd_negative_day": "days after infusion"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _col(table: Mapping[str, Any], name: str, *, what: str) -> np.ndarray:
    if name not in table:
        raise ValueError(
            f"the trial table has no column {name!r} ({what}); its columns are {sorted(map(str, table))}"
        )
    return np.asarray(table[name])


def _groups(table: Mapping[str, Any], by: str | None, n: int) -> list[tuple[str, np.ndarray]]:
    """(label, row mask) per value of ``by`` in order of first appearance (all rows if None)."""
    if by is None:
        return [("all patients", np.ones(n, dtype=bool))]
    g = _col(table, by, what="the grouping column").astype(str)
    return [(str(v), g == v) for v in dict.fromkeys(g.tolist())]


def _n_rows(table: Mapping[str, Any], name: str, what: str) -> int:
    return int(_col(table, name, what=what).shape[0])


# ---------------------------------------------------------------------------------------------
# waterfall
# ---------------------------------------------------------------------------------------------


def best_percent_change(baseline: Any, nadir: Any) -> np.ndarray:
    """Best change from baseline, ``100 · (nadir − baseline) / baseline`` (%); NaN where the
    baseline is not finite and positive or the nadir is not finite."""
    b = np.asarray(baseline, dtype=float)
    m = np.asarray(nadir, dtype=float)
    if b.shape != m.shape:
        raise ValueError(f"baseline and nadir must have the same shape; got {b.shape} and {m.shape}")
    ok = np.isfinite(b) & (b > 0) & np.isfinite(m)
    out = np.full(b.shape, np.nan)
    out[ok] = 100.0 * (m[ok] - b[ok]) / b[ok]
    return out


#: above this many patients in a panel the waterfall's bars are drawn as two filled step
#: outlines (one per colour) instead of a patch per patient: the same picture, but 100,000
#: patients took ~2 min to draw as patches and 10⁶ would take ~20
MAX_BARS = 2000


def draw_waterfall(
    table: Mapping[str, Any],
    *,
    baseline: str = "tumour_baseline",
    nadir: str = "tumour_nadir",
    response: str = "responded",
    by: str | None = "arm",
    cap: float = 100.0,
    title: str = "Best change in tumour burden from baseline",
) -> Any:
    """The waterfall figure (see the module doc); bars of panel *a* carry ``gid`` ``"waterfall:a"``
    (above :data:`MAX_BARS` patients: two step patches, ``"waterfall:a:responded"`` and
    ``"waterfall:a:no response"``)."""
    if not (math.isfinite(cap) and cap > 0):
        raise ValueError(f"cap is {cap!r}; expected a finite percentage > 0 (e.g. 100)")
    change = best_percent_change(_col(table, baseline, what="tumour burden at baseline, cell"),
                                 _col(table, nadir, what="lowest tumour burden after infusion, cell"))
    resp = _col(table, response, what="responded, bool").astype(bool)
    groups = _groups(table, by, change.size)
    plt = _plt()
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 2.8 * len(groups) + 0.8), squeeze=False, sharey=True)
    for ax, (label, mask) in zip(axes[:, 0], groups, strict=True):
        sel = mask & np.isfinite(change)
        c, r = change[sel], resp[sel]
        order = np.argsort(-c, kind="stable")
        c, r = c[order], r[order]
        heights = np.minimum(c, cap)
        if c.size <= MAX_BARS:
            bars = ax.bar(np.arange(c.size), heights, width=1.0, color=[_RESPONSE_COLOURS[bool(x)] for x in r],
                          edgecolor="none")
            for b in bars:
                b.set_gid(f"waterfall:{label}")
        else:
            # the same unit-width bars as two filled step outlines, one per colour (the other
            # colour's patients at height 0): two artists instead of one per patient; runs of
            # equal bars are one step (the same outline), and the patches are added without
            # matplotlib's per-segment data limits (the axes' limits are set below)
            from matplotlib.patches import StepPatch

            edges = np.arange(c.size + 1) - 0.5
            for flag, name in ((True, "responded"), (False, "no response")):
                v = np.where(r == flag, heights, 0.0)
                new_step = np.r_[True, v[1:] != v[:-1]]
                st = StepPatch(v[new_step], np.r_[edges[:-1][new_step], edges[-1]], baseline=0.0, fill=True,
                               color=_RESPONSE_COLOURS[flag], linewidth=0)
                st.set_gid(f"waterfall:{label}:{name}")
                ax.add_artist(st)
        ax.axhline(0, color="0.3", lw=0.8)
        capped = int(np.sum(c > cap))
        note = f"; {capped} above +{cap:g} % drawn at the cap" if capped else ""
        ax.set_title(f"{label}: {c.size} patients, {int(r.sum())} responded{note}", fontsize=9)
        ax.set_xlim(-0.5, max(c.size, 1) - 0.5)
        ax.set_xticks([])
        ax.set_ylabel("best change (%)")
        ax.grid(axis="y", color="0.9")
        ax.set_axisbelow(True)
    axes[0, 0].set_ylim(-105, cap + 5)
    from matplotlib.patches import Patch

    axes[0, 0].legend(handles=[Patch(color=_RESPONSE_COLOURS[True], label="responded"),
                               Patch(color=_RESPONSE_COLOURS[False], label="no response")],
                      fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("patients, sorted by best change")
    fig.suptitle(f"{title}\n100·(nadir − baseline)/baseline of tumour cells; one bar per infused patient", fontsize=10)
    return fig


def waterfall(table: Mapping[str, Any], path: Path | str, **kwargs: Any) -> Path:
    """Write the waterfall PNG to ``path`` (options: :func:`draw_waterfall`)."""
    return save_png(draw_waterfall(table, **kwargs), Path(path))


# ---------------------------------------------------------------------------------------------
# Kaplan–Meier
# ---------------------------------------------------------------------------------------------


def number_at_risk(durations: Any, times: Any) -> np.ndarray:
    """Patients still at risk at each of ``times``: ``#{i : durations[i] ≥ τ}``."""
    d = np.sort(np.asarray(durations, dtype=float).reshape(-1))
    return (d.size - np.searchsorted(d, np.asarray(times, dtype=float), side="left")).astype(np.int64)


def draw_km(
    table: Mapping[str, Any],
    *,
    time_col: str = "efs_day",
    event_col: str = "efs_event",
    by: str | None = "arm",
    xlabel: str | None = None,
    title: str | None = None,
    confidence: float = 0.95,
) -> Any:
    """Kaplan–Meier figure (see the module doc).  The curve of group *a* has ``gid``
    ``"km:a"``; each number-at-risk label has ``gid`` ``"at_risk:a:τ"``."""
    d_all = _col(table, time_col, what="time to event or censoring, d").astype(float)
    e_all = _col(table, event_col, what="event observed, bool").astype(bool)
    groups = _groups(table, by, d_all.size)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.6 + 0.25 * len(groups)))
    t_max = 0.0
    data = []
    for j, (label, mask) in enumerate(groups):
        sel = mask & np.isfinite(d_all)
        d, e = d_all[sel], e_all[sel]
        km = kaplan_meier(d, e, confidence=confidence)
        col = _COLOURS[j % len(_COLOURS)]
        t = np.concatenate(([0.0], km.time))
        s = np.concatenate(([1.0], km.survival))
        med = f"median {km.median:.0f} d" if math.isfinite(km.median) else "median not reached"
        (line,) = ax.step(t, s, where="post", color=col, lw=1.8,
                          label=f"{label}: n = {km.n}, {km.n_events} events, {med}")
        line.set_gid(f"km:{label}")
        ax.fill_between(t, np.concatenate(([1.0], km.low)), np.concatenate(([1.0], km.high)),
                        step="post", color=col, alpha=0.15, lw=0)
        cens = np.unique(d[~e])
        if cens.size:
            ax.plot(cens, km.at(cens), "+", color=col, ms=6, mew=1)
        t_max = max(t_max, float(d.max()) if d.size else 0.0)
        data.append((label, d, col))
    t_max = max(t_max, 1.0)
    ticks = [float(x) for x in ax.xaxis.get_major_locator().tick_values(0.0, t_max) if 0.0 <= x <= t_max]
    ax.set_xticks(ticks)
    ax.set_xlim(0.0, t_max * 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.set_ylabel("probability event-free" if time_col == "efs_day" else "survival probability")
    ax.set_xlabel(xlabel or _TIME_LABELS.get(time_col, f"{time_col} (d)"))
    ax.grid(color="0.93")
    ax.legend(fontsize=8, loc="lower left")
    ax.annotate("number at risk", xy=(0, 0), xycoords="axes fraction", xytext=(0, -36),
                textcoords="offset points", ha="left", va="top", fontsize=8, fontweight="bold")
    for j, (label, d, col) in enumerate(data):
        y = -48 - 11 * j
        ax.annotate(label, xy=(0, 0), xycoords="axes fraction", xytext=(-16, y), textcoords="offset points",
                    ha="right", va="top", fontsize=8, color=col, annotation_clip=False)
        for tau, k in zip(ticks, number_at_risk(d, ticks), strict=True):
            a = ax.annotate(str(int(k)), xy=(tau, 0), xycoords=("data", "axes fraction"), xytext=(0, y),
                            textcoords="offset points", ha="center", va="top", fontsize=8, color=col,
                            annotation_clip=False)
            a.set_gid(f"at_risk:{label}:{tau:g}")
    default = ("Event-free survival (Kaplan–Meier)" if time_col == "efs_day" else f"Kaplan–Meier: {time_col}")
    band = f"{100 * confidence:g} % pointwise band (Greenwood, log-log); + censored"
    head = title or default
    # the band note goes on its own line when the title's last line would not leave it room
    sep = ", " if len(head.splitlines()[-1]) + len(band) <= 60 else "\n"
    ax.set_title(f"{head}{sep}{band}", fontsize=10)
    return fig


def km_figure(table: Mapping[str, Any], path: Path | str, time_col: str = "efs_day",
              event_col: str = "efs_event", by: str | None = "arm", **kwargs: Any) -> Path:
    """Write the Kaplan–Meier PNG to ``path`` (options: :func:`draw_km`)."""
    return save_png(draw_km(table, time_col=time_col, event_col=event_col, by=by, **kwargs), Path(path))


# ---------------------------------------------------------------------------------------------
# CRS / ICANS grades
# ---------------------------------------------------------------------------------------------


def _grade_counts(g: np.ndarray, name: str) -> np.ndarray:
    g = g[np.isfinite(g)]
    bad = g[(g != np.round(g)) | (g < 0) | (g > 5)]
    if bad.size:
        raise ValueError(f"column {name!r} holds {bad[0]!r}; expected whole grades 0–5 (NaN if not infused)")
    return np.bincount(g.astype(np.int64), minlength=6)


def draw_grade_bars(
    table: Mapping[str, Any],
    *,
    columns: tuple[str, ...] = ("crs_max_grade", "icans_max_grade"),
    by: str | None = "arm",
) -> Any:
    """Stacked percentage bars of the maximum grade per arm, one panel per column (see the
    module doc); the segment of grade *g* in arm *a* of column *c* has ``gid`` ``"c:a:g"``."""
    n = _n_rows(table, columns[0], "maximum grade, 0–5")
    groups = _groups(table, by, n)
    plt = _plt()
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns) + 1.5, 4.2), squeeze=False, sharey=True)
    names = {"crs_max_grade": "CRS", "icans_max_grade": "ICANS"}
    for ax, colname in zip(axes[0], columns, strict=True):
        g = _col(table, colname, what="maximum ASTCT grade 0–5, NaN if not infused").astype(float)
        for j, (label, mask) in enumerate(groups):
            counts = _grade_counts(g[mask], colname)
            total = int(counts.sum())
            pct = 100.0 * counts / total if total else np.zeros(6)
            bottom = 0.0
            for grade in range(6):
                if pct[grade] <= 0:
                    continue
                (bar,) = ax.bar(j, pct[grade], bottom=bottom, color=GRADE_COLOURS[grade], width=0.6,
                                edgecolor="white", lw=0.5,
                                label=("grade 5 (death)" if grade == 5 else f"grade {grade}"))
                bar.set_gid(f"{colname}:{label}:{grade}")
                if pct[grade] >= 6:
                    ax.text(j, bottom + pct[grade] / 2, f"{pct[grade]:.0f} %", ha="center", va="center", fontsize=7,
                            color="white" if grade >= 3 else "black")
                bottom += pct[grade]
            ax.text(j, 101, f"n = {total}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(groups)), [lab for lab, _ in groups], fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_title(f"{names.get(colname, colname)}: maximum ASTCT grade", fontsize=10)
    axes[0, 0].set_ylabel("% of infused patients")
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    order = np.argsort(labels)
    axes[0, -1].legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8,
                       loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("Cytokine release syndrome and neurotoxicity (ASTCT consensus grading, Lee 2019)", fontsize=10)
    return fig


def grade_bars(table: Mapping[str, Any], path: Path | str, **kwargs: Any) -> Path:
    """Write the CRS/ICANS grade PNG to ``path`` (options: :func:`draw_grade_bars`)."""
    return save_png(draw_grade_bars(table, **kwargs), Path(path))


# ---------------------------------------------------------------------------------------------
# exposure–response
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogisticFit:
    r"""Maximum-likelihood logistic regression ``logit P = intercept + slope · log10(x)``.

    ``slope`` is per tenfold increase of the exposure ``x``; ``cov`` the 2×2 covariance of
    (intercept, slope) from the inverse observed information; ``ec50`` the exposure with
    P = ½, :math:`10^{-\beta_0/\beta_1}` (NaN for a zero slope).  ``estimable`` is false
    when the maximum-likelihood estimate does not exist (all or no responders, or the two
    outcomes completely separated by exposure); the coefficients are then NaN.
    """

    intercept: float
    slope: float
    cov: np.ndarray
    n: int
    responders: int
    estimable: bool
    converged: bool
    method: str = "maximum likelihood (scipy.optimize.minimize, trust-exact), Wald covariance"

    @property
    def se(self) -> tuple[float, float]:
        """Standard errors of (intercept, slope)."""
        return float(np.sqrt(self.cov[0, 0])), float(np.sqrt(self.cov[1, 1]))

    @property
    def ec50(self) -> float:
        if not self.estimable or self.slope == 0:
            return math.nan
        return float(10.0 ** (-self.intercept / self.slope))

    def predict(self, x: Any) -> np.ndarray:
        """P(response) at exposures ``x``."""
        from scipy.special import expit

        return np.asarray(expit(self.intercept + self.slope * np.log10(np.asarray(x, dtype=float))))

    def band(self, x: Any, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise Wald band of P at ``x``: ``expit(η̂ ± z·se(η̂))``, ``se² = aᵀ cov a``,
        ``a = (1, log10 x)``."""
        from scipy.special import expit
        from scipy.stats import norm

        lx = np.log10(np.asarray(x, dtype=float))
        eta = self.intercept + self.slope * lx
        var = self.cov[0, 0] + 2 * self.cov[0, 1] * lx + self.cov[1, 1] * lx**2
        z = float(norm.ppf(0.5 + confidence / 2))
        half = z * np.sqrt(np.maximum(var, 0.0))
        return np.asarray(expit(eta - half)), np.asarray(expit(eta + half))


def logistic_fit(exposure: Any, response: Any) -> LogisticFit:
    """Fit ``logit P(response) = β0 + β1 log10(exposure)`` by maximum likelihood.

    Rows with a non-finite or non-positive exposure are left out (no logarithm).  The
    log-likelihood ``Σ yᵢηᵢ − log(1 + e^{ηᵢ})`` is maximised in the centred predictor with
    its exact gradient ``Xᵀ(y − p)`` and Hessian ``−XᵀWX``, ``W = diag(p(1 − p))``, then
    mapped back; the covariance is the inverse of ``XᵀWX`` at the optimum.  Returns a
    :class:`LogisticFit`.
    """
    from scipy.optimize import minimize
    from scipy.special import expit

    x = np.asarray(exposure, dtype=float).reshape(-1)
    y = np.asarray(response, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"exposure and response must have the same length; got {x.size} and {y.size}")
    ok = np.isfinite(x) & (x > 0) & np.isfinite(y)
    lx, y = np.log10(x[ok]), y[ok]
    if np.any((y != 0) & (y != 1)):
        raise ValueError("response must be 0/1 (or bool)")
    n, k = int(y.size), int(y.sum())
    nan2 = np.full((2, 2), np.nan)
    if n == 0 or k in (0, n) or np.ptp(lx) == 0:
        return LogisticFit(math.nan, math.nan, nan2, n, k, False, False)
    # complete (or quasi-complete) separation by a single predictor: no finite MLE
    if lx[y == 0].max() <= lx[y == 1].min() or lx[y == 1].max() <= lx[y == 0].min():
        return LogisticFit(math.nan, math.nan, nan2, n, k, False, False)
    mean = float(lx.mean())
    X = np.column_stack([np.ones(n), lx - mean])

    # mean negative log-likelihood per patient, so that the tolerance does not scale with n
    def nll(b: np.ndarray) -> float:
        eta = X @ b
        return float(np.mean(np.logaddexp(0.0, eta) - y * eta))

    def grad(b: np.ndarray) -> np.ndarray:
        return np.asarray(X.T @ (expit(X @ b) - y)) / n

    def hess(b: np.ndarray) -> np.ndarray:
        p = expit(X @ b)
        return np.asarray((X * (p * (1 - p))[:, None]).T @ X) / n

    b0 = np.array([math.log(k / (n - k)), 0.0])
    res = minimize(nll, b0, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-9})
    a, b = (float(v) for v in res.x)
    cov_c = np.linalg.inv(n * hess(res.x))
    J = np.array([[1.0, -mean], [0.0, 1.0]])  # (β0, β1) = J (a, b)
    return LogisticFit(a - b * mean, b, J @ cov_c @ J.T, n, k, True, bool(res.success))


def draw_exposure_response(
    table: Mapping[str, Any],
    *,
    exposure: str = "car_cmax",
    response: str = "responded",
    unit: str = "cells/µL",
    bins: int = 5,
    confidence: float = 0.95,
    title: str | None = None,
) -> Any:
    """Exposure–response figure (see the module doc).  The fitted curve has ``gid``
    ``"logistic"``; the binned proportions ``"binned"``.  ``bins`` quantile bins of the
    exposure (fewer when values tie)."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins is {bins!r}; expected a whole number ≥ 1 (e.g. 5)")
    x = _col(table, exposure, what=f"exposure, {unit}").astype(float)
    y = _col(table, response, what="responded, bool").astype(float)
    fit = logistic_fit(x, y)
    ok = np.isfinite(x) & (x > 0) & np.isfinite(y)
    x, y = x[ok], y[ok]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    if x.size:
        edges = np.unique(np.quantile(np.log10(x), np.linspace(0, 1, bins + 1)))
        idx = np.clip(np.searchsorted(edges, np.log10(x), side="right") - 1, 0, max(edges.size - 2, 0))
        xs, ps, lo, hi = [], [], [], []
        for b in range(max(edges.size - 1, 1)):
            m = idx == b
            if not m.any():
                continue
            p = proportion(int(y[m].sum()), int(m.sum()), confidence=confidence)
            xs.append(float(np.median(x[m])))
            ps.append(p.estimate)
            lo.append(p.estimate - p.low)
            hi.append(p.high - p.estimate)
            ax.annotate(f"n={int(m.sum())}", (xs[-1], p.high), xytext=(0, 4), textcoords="offset points",
                        ha="center", fontsize=7, color="0.3")
        cont = ax.errorbar(xs, ps, yerr=[lo, hi], fmt="o", color="#4477aa", capsize=3,
                           label=f"observed, quantile bins (Wilson {100 * confidence:g} %)")
        cont.lines[0].set_gid("binned")
        jitter = np.random.default_rng(0).uniform(-0.02, 0.02, y.size)  # display only
        ax.plot(x, np.where(y == 1, 1.04, -0.04) + jitter, "|", color="0.5", ms=6, alpha=0.5)
    if fit.estimable:
        grid = np.geomspace(x.min(), x.max(), 200)
        (line,) = ax.plot(grid, fit.predict(grid), color="#ee6677", lw=2,
                          label=(f"logistic fit: logit P = {fit.intercept:.2f} + {fit.slope:.2f}·log10(x)"
                                 + (f"; EC50 {fit.ec50:.3g} {unit}" if math.isfinite(fit.ec50) else "")))
        line.set_gid("logistic")
        blo, bhi = fit.band(grid, confidence=confidence)
        ax.fill_between(grid, blo, bhi, color="#ee6677", alpha=0.15, lw=0, label=f"{100 * confidence:g} % band (Wald)")
    else:
        ax.text(0.5, 0.5, "logistic fit not estimable\n(all or no responders, or complete separation)",
                transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.3")
    ax.set_xscale("log")
    ax.set_ylim(-0.08, 1.1)
    ax.set_xlabel(f"{exposure} ({unit}, log scale)")
    ax.set_ylabel(f"P({response})")
    ax.grid(color="0.93")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or f"Exposure–response: {response} vs {exposure} ({fit.n} patients, {fit.responders} responders)",
                 fontsize=10)
    return fig


def exposure_response(table: Mapping[str, Any], path: Path | str, exposure: str = "car_cmax",
                      response: str = "responded", **kwargs: Any) -> Path:
    """Write the exposure–response PNG to ``path`` (options: :func:`draw_exposure_response`)."""
    return save_png(draw_exposure_response(table, exposure=exposure, response=response, **kwargs), Path(path))


# ---------------------------------------------------------------------------------------------
# kinetics
# ---------------------------------------------------------------------------------------------

#: percentiles drawn by :func:`kinetics_bands` (%)
PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)


def draw_kinetics_bands(
    t: Any,
    values: Any,
    label: str,
    unit: str,
    *,
    time_label: str = "days after infusion",
    floor: float | None = None,
    title: str | None = None,
) -> Any:
    """Median (``gid`` ``"median"``) and 5–95 % / 25–75 % bands over the patients (rows) of
    ``values[n, T]`` at ``t[T]`` (d), log scale.  Rows with a non-finite value (failed
    simulations) are left out and counted in the title.  Values below ``floor`` (default:
    10⁻⁶ × the largest 95th percentile) are drawn at the floor."""
    tt = np.asarray(t, dtype=float)
    v = np.asarray(values, dtype=float)
    if tt.ndim != 1 or v.ndim != 2 or v.shape[1] != tt.size:
        raise ValueError(f"values has shape {v.shape} and t {tt.shape}; expected values (n, {tt.size}) for t ({tt.size},)")
    ok = np.all(np.isfinite(v), axis=1)
    if not ok.any():
        raise ValueError(f"no patient has a finite time course of {label}; nothing to draw")
    q = np.percentile(v[ok], PERCENTILES, axis=0)
    top = float(np.max(q[-1]))
    if floor is None:
        floor = top * 1e-6 if top > 0 else 1.0
    elif not (math.isfinite(floor) and floor > 0):
        raise ValueError(f"floor is {floor!r}; expected a finite value > 0 in {unit}")
    qd = np.maximum(q, floor)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax.fill_between(tt, qd[0], qd[4], color="#4477aa", alpha=0.18, lw=0, label="5–95th percentile")
    ax.fill_between(tt, qd[1], qd[3], color="#4477aa", alpha=0.35, lw=0, label="25–75th percentile")
    (line,) = ax.plot(tt, qd[2], color="#4477aa", lw=2, label="median")
    line.set_gid("median")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_xlabel(f"{time_label} (d)" if "(d)" not in time_label else time_label)
    ax.set_ylabel(f"{label} ({unit})")
    ax.grid(color="0.93", which="major")
    ax.legend(fontsize=8)
    failed = int((~ok).sum())
    extra = f"; {failed} failed simulations left out" if failed else ""
    ax.set_title(title or f"{label}: median and percentiles over {int(ok.sum())} virtual patients{extra}", fontsize=10)
    return fig


def kinetics_bands(t: Any, values: Any, path: Path | str, label: str, unit: str, **kwargs: Any) -> Path:
    """Write the percentile-band PNG of ``values[n, T]`` to ``path`` (options:
    :func:`draw_kinetics_bands`)."""
    return save_png(draw_kinetics_bands(t, values, label, unit, **kwargs), Path(path))
