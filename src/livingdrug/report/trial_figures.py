r"""Figures of a virtual clinical trial, drawn from the per-patient endpoint table in bounded memory.

The table is one row per (arm, patient), as built by :mod:`livingdrug.comparison` (units in
:data:`livingdrug.report.comparison.COLUMN_UNITS`): a mapping of equal-length columns (a dict
of numpy arrays or a pandas DataFrame), a :class:`~livingdrug.io.results.Batches` (a Parquet
file read a batch of rows at a time) or a :class:`Rows` view of either (rows where some
columns equal given values, display labels of the groups).  Every figure is a *reduction*
read batch by batch (through the scans of :mod:`livingdrug.clinical.streaming`) into data of a
size fixed whatever the number of patients N, then a *drawing* of those data; no figure holds
a whole column, so a trial of 10⁶–10⁷ patients is drawn in the memory of one batch plus a
fixed amount.  A mapping is read the same way (in slices), so the same table draws the same
figure whether it is in memory or in a file.  Each figure has a *writer* (``waterfall(table,
path)`` …, returning the PNG path, written atomically with the research-use footer by
:func:`livingdrug.report.html.save_png`) and a *drawer* (``draw_waterfall(table)`` …, returning
the matplotlib ``Figure`` for notebooks and tests).  matplotlib is imported only when drawing,
with the Agg backend.

* :func:`waterfall` — best change in tumour burden from baseline per patient,
  :math:`\Delta_i = 100\,(N_{nadir,i} - N_{0,i})/N_{0,i}` (%), bars sorted from the largest
  increase (left) to the deepest reduction (right), coloured by response, one panel per arm;
  increases above ``cap`` (+100 % by default) are drawn at the cap.  Columns
  ``tumour_baseline`` and ``tumour_nadir`` (cell) and ``responded``; patients without a
  finite positive baseline or a finite nadir (never infused) are left out.  Up to
  :data:`MAX_BARS` patients in a panel: one bar per patient (ties in row order).  Above it,
  two filled step outlines (responders, the others) over the patients in rank order (equal
  changes: responders first), from :func:`~livingdrug.clinical.streaming.ascending_runs`:
  up to :data:`WATERFALL_BINS` patients one step per patient (the same bars); beyond, the
  ranks are cut into :data:`WATERFALL_BINS` or fewer bins of ``w = ⌈n/WATERFALL_BINS⌉``
  consecutive patients, each drawn at the change of its first patient (the largest change in
  the bin, an exact order statistic) over the bin's width, its responders first (the
  responders' share of the width is exact), then its other patients.  The title's counts
  (patients, responders, increases above the cap) are exact.
* :func:`km_figure` — Kaplan–Meier curves per arm (Kaplan EL, Meier P 1958, J Am Stat Assoc
  53:457) with pointwise 95 % bands (Greenwood, log-log), computed by
  :func:`~livingdrug.clinical.streaming.kaplan_meier_scan` (the same numbers, bit for bit, as
  the shared :func:`livingdrug.clinical.probability.kaplan_meier`; every step up to
  :data:`~livingdrug.clinical.streaming.CURVE_POINTS` distinct times, beyond that exact points
  of the curve within 1/CURVE_POINTS of it in time and probability); censored times are marked
  ``+`` (at most CURVE_POINTS marks, evenly chosen); the number at risk
  :math:`n(\tau) = \#\{i : T_i \ge \tau\}` (exact, :func:`~livingdrug.clinical.streaming.at_risk_scan`)
  is printed under the axis at each tick :math:`\tau`.
* :func:`grade_bars` — distribution of the maximum ASTCT CRS and ICANS grade (Lee DW et al.
  2019, Biol Blood Marrow Transplant 25:625; grade 5 = death) per arm, stacked percentages of
  the patients with a grade (the infused; NaN rows are left out); exact counts, summed batch by
  batch.
* :func:`exposure_response` — logistic regression of response on log exposure,
  :math:`\operatorname{logit} P(\text{response}) = \beta_0 + \beta_1 \log_{10} C_{max}`,
  by maximum likelihood (:func:`logistic_fit_scan`: Newton–Raphson whose gradient and Hessian
  are sums over batches), with its 95 % pointwise band (delta method on the logit scale,
  Wald), and observed response proportions in quantile bins of exposure (edges: exact
  quantiles, :func:`~livingdrug.clinical.streaming.percentiles`; each bin drawn at the exact
  median exposure of its patients) with Wilson 95 % intervals
  (:func:`livingdrug.clinical.probability.proportion`).  Each patient's outcome is a tick at
  the top (responders) or bottom; above :data:`RUG_POINTS` patients, RUG_POINTS ticks at
  evenly spaced ranks of the exposure within each outcome, in proportion to the outcome's
  patients.
* :func:`kinetics_bands` — median and 5/25/75/95th percentiles over patients of a time
  course ``values[n, T]`` at times ``t[T]`` (d), log scale (in memory: a simulation's array).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..clinical.probability import proportion
from ..clinical.streaming import (
    Scan,
    ascending_runs,
    at_risk_scan,
    column_scan,
    kaplan_meier_scan,
    order_statistics,
    percentiles,
)
from ..io.results import Batches
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
    "logistic_fit_scan",
    "LogisticFit",
    "Rows",
    "GRADE_COLOURS",
    "PERCENTILES",
    "MAX_BARS",
    "WATERFALL_BINS",
    "RUG_POINTS",
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


# ---------------------------------------------------------------------------------------------
# reading the table a batch at a time
# ---------------------------------------------------------------------------------------------


class Rows(Batches):
    """A :class:`~livingdrug.io.results.Batches` (rows read a batch at a time, only those whose
    columns equal every value of ``where``) that also carries ``labels``: the label drawn for
    a value of the grouping column (a short arm name), so that no relabelled column is built."""

    def __init__(self, source: Any, *, where: Mapping[str, Any] | None = None,
                 labels: Mapping[Any, str] | None = None, rows: int | None = None) -> None:
        super().__init__(source, where=where, rows=rows)
        self.labels: dict[Any, str] = {**getattr(source, "labels", {}), **(labels or {})}


def _rows(table: Any) -> Rows:
    return table if isinstance(table, Rows) else Rows(table)


def _need(rows: Rows, name: str, *, what: str) -> None:
    if name not in rows:
        raise ValueError(
            f"the trial table has no column {name!r} ({what}); its columns are {sorted(map(str, rows.names))}"
        )


def _groups(rows: Rows, by: str | None) -> list[tuple[str, Rows]]:
    """(label, rows) per value of ``by`` in order of first appearance (all rows if None); one
    pass over the column ``by``, holding its distinct values."""
    if by is None:
        return [("all patients", rows)]
    _need(rows, by, what="the grouping column")
    seen: dict[str, Any] = {}
    for batch in rows([by]):
        g = np.asarray(batch[by])
        s = g.astype(str)
        u, first = np.unique(s, return_index=True)
        for i in np.sort(first):
            seen.setdefault(str(s[i]), g[i])
    return [(rows.labels.get(v, rows.labels.get(k, k)), rows.select(by, v)) for k, v in seen.items()]


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
#: most steps (bins of consecutive patients) of a waterfall panel drawn as step outlines: up to
#: this many patients one step per patient, beyond it bins of ⌈n/WATERFALL_BINS⌉ patients
WATERFALL_BINS = 4096


@dataclass
class _WaterfallPanel:
    """A waterfall panel reduced to a fixed size: exact counts; ``change``/``responded`` of
    every patient in rank order when there are at most :data:`MAX_BARS`, else per bin of
    consecutive ranks ``bounds[j]…bounds[j+1]`` the change of its first patient and its number
    of responders."""

    n: int
    responders: int
    capped: int
    change: np.ndarray | None = None
    responded: np.ndarray | None = None
    bounds: np.ndarray | None = None
    first: np.ndarray | None = None
    bin_responders: np.ndarray | None = None


def _waterfall_panel(rows: Rows, baseline: str, nadir: str, response: str, cap: float) -> _WaterfallPanel:
    def changes() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b in rows([baseline, nadir, response]):
            c = best_percent_change(b[baseline], b[nadir])
            ok = np.isfinite(c)
            yield c[ok], np.asarray(b[response]).astype(bool)[ok]

    n = k = capped = 0
    held: list[tuple[np.ndarray, np.ndarray]] | None = []
    for c, r in changes():
        n += c.size
        k += int(r.sum())
        capped += int(np.sum(c > cap))
        if held is not None:
            held = held + [(c, r)] if n <= MAX_BARS else None
    panel = _WaterfallPanel(n, k, capped)
    if held is not None:  # at most MAX_BARS patients: every bar, ties in row order
        c = np.concatenate([x for x, _ in held]) if held else np.zeros(0)
        r = np.concatenate([y for _, y in held]) if held else np.zeros(0, dtype=bool)
        order = np.argsort(-c, kind="stable")
        panel.change, panel.responded = c[order], r[order]
        return panel

    # ascending runs of −change (descending change), with their numbers of responders; within
    # a run of equal changes the responders come first.  R(b) = responders among the first b
    # ranks, read off at the bins' bounds
    def negated() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for c, r in changes():
            yield -c, r[None, :].astype(float)

    width = -(-n // WATERFALL_BINS)
    nb = -(-n // width)
    bounds = np.minimum(np.arange(nb + 1, dtype=np.int64) * width, n)
    first = np.full(nb, np.nan)
    R = np.zeros(nb + 1, dtype=np.int64)
    seen = r_seen = 0
    scan: Scan = negated
    for v, cnt, w in ascending_runs(scan):
        r = np.rint(w[0]).astype(np.int64)
        starts = seen + np.concatenate(([0], np.cumsum(cnt)[:-1]))
        r_before = r_seen + np.concatenate(([0], np.cumsum(r)[:-1]))
        end = seen + int(cnt.sum())
        lo, hi = int(np.searchsorted(bounds, seen, side="left")), int(np.searchsorted(bounds, end, side="left"))
        at = bounds[lo:hi]
        idx = np.searchsorted(starts, at, side="right") - 1
        R[lo:hi] = r_before[idx] + np.minimum(at - starts[idx], r[idx])
        first[lo:hi] = np.negative(v[idx]) + 0.0
        seen, r_seen = end, r_seen + int(r.sum())
    R[nb] = r_seen
    panel.bounds, panel.first, panel.bin_responders = bounds, first, np.diff(R)
    return panel


def _draw_steps(ax: Any, panel: _WaterfallPanel, label: str, cap: float) -> None:
    """The panel's bins as two filled step outlines: bin j spans ranks bounds[j]…bounds[j+1],
    its responders' share first (green), then the others (red), both at the bin's capped
    height; the other colour is at 0 there.  Equal adjacent steps are one step, and the
    patches are added without matplotlib's per-segment data limits (set by the caller)."""
    from matplotlib.patches import StepPatch

    assert panel.bounds is not None and panel.first is not None and panel.bin_responders is not None
    lo, hi = panel.bounds[:-1], panel.bounds[1:]
    mid = lo + panel.bin_responders
    h = np.minimum(panel.first, cap)
    starts = np.column_stack([lo, mid]).reshape(-1)
    ends = np.column_stack([mid, hi]).reshape(-1)
    keep = ends > starts
    for flag, name in ((True, "responded"), (False, "no response")):
        zero = np.zeros_like(h)
        v = (np.column_stack([h, zero]) if flag else np.column_stack([zero, h])).reshape(-1)[keep]
        s = starts[keep]
        new_step = np.r_[True, v[1:] != v[:-1]]
        st = StepPatch(v[new_step], np.r_[s[new_step], panel.n] - 0.5, baseline=0.0, fill=True,
                       color=_RESPONSE_COLOURS[flag], linewidth=0)
        st.set_gid(f"waterfall:{label}:{name}")
        ax.add_artist(st)


def draw_waterfall(
    table: Any,
    *,
    baseline: str = "tumour_baseline",
    nadir: str = "tumour_nadir",
    response: str = "responded",
    by: str | None = "arm",
    cap: float = 100.0,
    title: str = "Best change in tumour burden from baseline",
) -> Any:
    """The waterfall figure (see the module doc), read a batch at a time from ``table`` (a
    mapping of columns, a :class:`~livingdrug.io.results.Batches` or :class:`Rows`).  Bars of
    panel *a* carry ``gid`` ``"waterfall:a"``; above :data:`MAX_BARS` patients the panel is two
    step patches, ``"waterfall:a:responded"`` and ``"waterfall:a:no response"``: one step per
    patient up to :data:`WATERFALL_BINS` patients, else one per bin of ⌈n/WATERFALL_BINS⌉
    consecutive ranks, at the change of the bin's first (largest) patient, responders first
    within the bin (and within equal changes).  Memory: a batch plus WATERFALL_BINS numbers."""
    if not (math.isfinite(cap) and cap > 0):
        raise ValueError(f"cap is {cap!r}; expected a finite percentage > 0 (e.g. 100)")
    rows = _rows(table)
    _need(rows, baseline, what="tumour burden at baseline, cell")
    _need(rows, nadir, what="lowest tumour burden after infusion, cell")
    _need(rows, response, what="responded, bool")
    groups = _groups(rows, by)
    panels = [(label, _waterfall_panel(g, baseline, nadir, response, cap)) for label, g in groups]
    plt = _plt()
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 2.8 * len(groups) + 0.8), squeeze=False, sharey=True)
    binned = False
    for ax, (label, panel) in zip(axes[:, 0], panels, strict=True):
        if panel.change is not None:
            assert panel.responded is not None
            heights = np.minimum(panel.change, cap)
            bars = ax.bar(np.arange(panel.n), heights, width=1.0,
                          color=[_RESPONSE_COLOURS[bool(x)] for x in panel.responded], edgecolor="none")
            for b in bars:
                b.set_gid(f"waterfall:{label}")
        else:
            _draw_steps(ax, panel, label, cap)
            binned = binned or panel.n > WATERFALL_BINS
        ax.axhline(0, color="0.3", lw=0.8)
        note = f"; {panel.capped} above +{cap:g} % drawn at the cap" if panel.capped else ""
        ax.set_title(f"{label}: {panel.n} patients, {panel.responders} responded{note}", fontsize=9)
        ax.set_xlim(-0.5, max(panel.n, 1) - 0.5)
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
    how = ("; one bar per infused patient" if not binned else
           f"\nbars: ≤ {WATERFALL_BINS} bins of consecutive patients a panel, each at its largest change, responders first")
    fig.suptitle(f"{title}\n100·(nadir − baseline)/baseline of tumour cells{how}", fontsize=10)
    return fig


def waterfall(table: Any, path: Path | str, **kwargs: Any) -> Path:
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
    table: Any,
    *,
    time_col: str = "efs_day",
    event_col: str = "efs_event",
    by: str | None = "arm",
    xlabel: str | None = None,
    title: str | None = None,
    confidence: float = 0.95,
) -> Any:
    """Kaplan–Meier figure (see the module doc), read a batch at a time from ``table`` (a
    mapping of columns, a :class:`~livingdrug.io.results.Batches` or :class:`Rows`; groups:
    the values of ``by``).  Each curve is :func:`~livingdrug.clinical.streaming.kaplan_meier_scan`
    (exact, every step, up to its ``CURVE_POINTS`` distinct times; beyond, exact points of
    the curve within 1/CURVE_POINTS of it), its censor marks those of the scan (at most
    CURVE_POINTS), the numbers at risk exact.  The curve of group *a* has ``gid`` ``"km:a"``;
    each number-at-risk label has ``gid`` ``"at_risk:a:τ"``.  Rows with a non-finite time are
    left out."""
    rows = _rows(table)
    _need(rows, time_col, what="time to event or censoring, d")
    _need(rows, event_col, what="event observed, bool")
    groups = _groups(rows, by)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.6 + 0.25 * len(groups)))
    t_max = 0.0
    data = []
    for j, (label, g) in enumerate(groups):
        scan = column_scan(g, time_col, weight=event_col)
        km = kaplan_meier_scan(scan, confidence=confidence)
        col = _COLOURS[j % len(_COLOURS)]
        t = np.concatenate(([0.0], km.time))
        s = np.concatenate(([1.0], km.survival))
        med = f"median {km.median:.0f} d" if math.isfinite(km.median) else "median not reached"
        (line,) = ax.step(t, s, where="post", color=col, lw=1.8,
                          label=f"{label}: n = {km.n}, {km.n_events} events, {med}")
        line.set_gid(f"km:{label}")
        ax.fill_between(t, np.concatenate(([1.0], km.low)), np.concatenate(([1.0], km.high)),
                        step="post", color=col, alpha=0.15, lw=0)
        if km.censored.size:
            ax.plot(km.censored, km.censored_survival, "+", color=col, ms=6, mew=1)
        t_max = max(t_max, float(km.last_time) if km.n else 0.0)
        data.append((label, scan, col))
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
    for j, (label, scan, col) in enumerate(data):
        y = -48 - 11 * j
        ax.annotate(label, xy=(0, 0), xycoords="axes fraction", xytext=(-16, y), textcoords="offset points",
                    ha="right", va="top", fontsize=8, color=col, annotation_clip=False)
        for tau, k in zip(ticks, at_risk_scan(scan, ticks), strict=True):
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


def km_figure(table: Any, path: Path | str, time_col: str = "efs_day",
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
    table: Any,
    *,
    columns: tuple[str, ...] = ("crs_max_grade", "icans_max_grade"),
    by: str | None = "arm",
) -> Any:
    """Stacked percentage bars of the maximum grade per arm, one panel per column (see the
    module doc); counts per grade summed batch by batch (exact).  The segment of grade *g* in
    arm *a* of column *c* has ``gid`` ``"c:a:g"``."""
    rows = _rows(table)
    for colname in columns:
        _need(rows, colname, what="maximum ASTCT grade 0–5, NaN if not infused")
    groups = _groups(rows, by)
    counts = []
    for _, g in groups:
        acc = {c: np.zeros(6, dtype=np.int64) for c in columns}
        for b in g(list(columns)):
            for c in columns:
                acc[c] += _grade_counts(np.asarray(b[c], dtype=float), c)
        counts.append(acc)
    plt = _plt()
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns) + 1.5, 4.2), squeeze=False, sharey=True)
    names = {"crs_max_grade": "CRS", "icans_max_grade": "ICANS"}
    for ax, colname in zip(axes[0], columns, strict=True):
        for j, (label, _) in enumerate(groups):
            cnt = counts[j][colname]
            total = int(cnt.sum())
            pct = 100.0 * cnt / total if total else np.zeros(6)
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


def grade_bars(table: Any, path: Path | str, **kwargs: Any) -> Path:
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
    method: str = "maximum likelihood (Newton–Raphson, sums over batches), Wald covariance"

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




def _logistic_batches(scan: Scan) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(log10 exposure, response)`` of the usable rows of a scan of ``(exposure, [response])``."""
    for x, w in scan():
        x = np.asarray(x, dtype=float).reshape(-1)
        y = np.asarray(w, dtype=float)[0].reshape(-1)
        ok = np.isfinite(x) & (x > 0) & np.isfinite(y)
        y = y[ok]
        if np.any((y != 0) & (y != 1)):
            raise ValueError("response must be 0/1 (or bool)")
        yield np.log10(x[ok]), y


def logistic_fit_scan(scan: Scan, *, max_iter: int = 100) -> LogisticFit:
    """Fit ``logit P(response) = β0 + β1 log10(exposure)`` by maximum likelihood from a scan of
    ``(exposure, [response])`` batches (:data:`~livingdrug.clinical.streaming.Scan`; the
    exposure may here be non-finite), in bounded memory.

    Rows with a non-finite or non-positive exposure (no logarithm) or a non-finite response
    are left out.  One pass gives n, the responders, the mean log exposure and the extremes of
    each outcome (a fit exists unless all or no patients responded or the outcomes are
    completely separated by exposure); then Newton–Raphson in the centred predictor
    ``a + b (log10 x − mean)``, each iteration one pass summing the log-likelihood
    ``Σ yᵢηᵢ − log(1 + e^{ηᵢ})``, its gradient ``Xᵀ(y − p)`` and Hessian ``−XᵀWX``,
    ``W = diag(p(1 − p))`` (steps halved while the likelihood would fall), until a step is
    below 10⁻¹³ of the coefficients; the covariance is ``(XᵀWX)⁻¹`` at the optimum, mapped
    back to (β0, β1).  The same data in other batches give the same fit to rounding (≈10⁻¹³).
    """
    n = k = 0
    total = 0.0
    lo0 = lo1 = math.inf
    hi0 = hi1 = -math.inf
    for lx, y in _logistic_batches(scan):
        n += lx.size
        k += int(y.sum())
        total += float(lx.sum())
        for flag, sel in ((0, y == 0), (1, y == 1)):
            if sel.any():
                a, b = float(lx[sel].min()), float(lx[sel].max())
                if flag:
                    lo1, hi1 = min(lo1, a), max(hi1, b)
                else:
                    lo0, hi0 = min(lo0, a), max(hi0, b)
    nan2 = np.full((2, 2), np.nan)
    if n == 0 or k in (0, n) or min(lo0, lo1) == max(hi0, hi1):
        return LogisticFit(math.nan, math.nan, nan2, n, k, False, False)
    # complete (or quasi-complete) separation by a single predictor: no finite MLE
    if hi0 <= lo1 or hi1 <= lo0:
        return LogisticFit(math.nan, math.nan, nan2, n, k, False, False)
    mean = total / n

    def sums(coef: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Negative log-likelihood, its gradient and Hessian at ``coef`` (one pass)."""
        from scipy.special import expit

        f, g, h = 0.0, np.zeros(2), np.zeros((2, 2))
        for lx, y in _logistic_batches(scan):
            xc = lx - mean
            eta = coef[0] + coef[1] * xc
            p = expit(eta)
            f += float(np.sum(np.logaddexp(0.0, eta) - y * eta))
            r = p - y
            w = p * (1 - p)
            g += [float(r.sum()), float((r * xc).sum())]
            s1 = float((w * xc).sum())
            h += [[float(w.sum()), s1], [s1, float((w * xc * xc).sum())]]
        return f, g, h

    coef = np.array([math.log(k / (n - k)), 0.0])
    f, g, h = sums(coef)
    converged = False
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while True:
            new = coef - t * step
            f_new, g_new, h_new = sums(new)
            if (math.isfinite(f_new) and f_new <= f + 1e-12 * max(1.0, abs(f))) or t < 1e-8:
                break
            t /= 2
        coef, f, g, h = new, f_new, g_new, h_new
        if np.max(np.abs(t * step)) <= 1e-13 * max(1.0, float(np.max(np.abs(coef)))):
            converged = True
            break
    a, b = (float(v) for v in coef)
    try:
        cov_c = np.linalg.inv(h)
    except np.linalg.LinAlgError:
        cov_c = nan2
    J = np.array([[1.0, -mean], [0.0, 1.0]])  # (β0, β1) = J (a, b)
    return LogisticFit(a - b * mean, b, J @ cov_c @ J.T, n, k, True, converged)


def logistic_fit(exposure: Any, response: Any) -> LogisticFit:
    """Fit ``logit P(response) = β0 + β1 log10(exposure)`` by maximum likelihood, in memory:
    :func:`logistic_fit_scan` of one batch (see there).  Rows with a non-finite or
    non-positive exposure are left out (no logarithm).  Returns a :class:`LogisticFit`."""
    x = np.asarray(exposure, dtype=float).reshape(-1)
    y = np.asarray(response, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"exposure and response must have the same length; got {x.size} and {y.size}")
    return logistic_fit_scan(lambda: [(x, y[None, :])])


#: most outcome ticks drawn by :func:`exposure_response` (above it, evenly spaced ranks)
RUG_POINTS = 5000


def _exposure_scan(rows: Rows, exposure: str, response: str) -> Scan:
    """Scan of ``(exposure, [response])`` of ``rows`` as floats (every row)."""
    def scan() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b in rows([exposure, response]):
            yield np.asarray(b[exposure], dtype=float), np.asarray(b[response], dtype=float)[None, :]
    return scan


def _usable(scan: Scan, *, outcome: float | None = None) -> Scan:
    """Scan of ``(exposure, [response])`` of the rows a fit uses (finite positive exposure,
    finite response), optionally only those with the given ``outcome``."""
    def usable() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for x, w in scan():
            y = w[0]
            ok = np.isfinite(x) & (x > 0) & np.isfinite(y)
            if outcome is not None:
                ok &= y == outcome
            yield x[ok], w[:, ok]
    return usable


def _log_scan(scan: Scan) -> Scan:
    def logs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for x, w in scan():
            yield np.log10(x), w
    return logs


def _spread_ranks(n: int, m: int) -> np.ndarray:
    """At most ``m`` ranks of ``n`` evenly spread, first and last included."""
    if m <= 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, min(m, n)).round().astype(np.int64))


def draw_exposure_response(
    table: Any,
    *,
    exposure: str = "car_cmax",
    response: str = "responded",
    unit: str = "cells/µL",
    bins: int = 5,
    confidence: float = 0.95,
    title: str | None = None,
) -> Any:
    """Exposure–response figure (see the module doc), read a batch at a time from ``table`` (a
    mapping of columns, a :class:`~livingdrug.io.results.Batches` or :class:`Rows`).  The
    fitted curve (:func:`logistic_fit_scan`) has ``gid`` ``"logistic"``; the binned proportions
    ``"binned"``: ``bins`` quantile bins of the exposure (fewer when values tie; edges the exact
    quantiles of log10 exposure, :func:`~livingdrug.clinical.streaming.percentiles`), each at the
    exact median exposure of its patients.  Outcome ticks: every patient up to
    :data:`RUG_POINTS`, else RUG_POINTS at evenly spaced exposure ranks within each outcome."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins is {bins!r}; expected a whole number ≥ 1 (e.g. 5)")
    rows = _rows(table)
    _need(rows, exposure, what=f"exposure, {unit}")
    _need(rows, response, what="responded, bool")
    raw = _exposure_scan(rows, exposure, response)
    fit = logistic_fit_scan(raw)
    ok = _usable(raw)
    n = fit.n
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    x_lo = x_hi = math.nan
    if n:
        edges = np.unique(percentiles(_log_scan(ok), list(100.0 * np.linspace(0, 1, bins + 1)))[0])
        nb = max(edges.size - 1, 1)
        size = np.zeros(nb, dtype=np.int64)
        resp = np.zeros(nb, dtype=np.int64)
        for x, w in ok():
            idx = np.clip(np.searchsorted(edges, np.log10(x), side="right") - 1, 0, max(edges.size - 2, 0))
            size += np.bincount(idx, minlength=nb)
            resp += np.rint(np.bincount(idx, weights=w[0], minlength=nb)).astype(np.int64)
        # a bin is a run of consecutive exposure ranks: its median is one or two order statistics
        first = np.concatenate(([0], np.cumsum(size)[:-1]))
        lo_rank = first + (size - 1) // 2
        hi_rank = first + size // 2
        used = size > 0
        stats = order_statistics(ok, np.concatenate([lo_rank[used], hi_rank[used], [0, n - 1]]).tolist())
        m = int(used.sum())
        medians = (stats[:m] + stats[m:2 * m]) / 2
        x_lo, x_hi = float(stats[-2]), float(stats[-1])
        xs, ps, lo, hi = [], [], [], []
        for b, med in zip(np.flatnonzero(used), medians, strict=True):
            p = proportion(int(resp[b]), int(size[b]), confidence=confidence)
            xs.append(float(med))
            ps.append(p.estimate)
            lo.append(p.estimate - p.low)
            hi.append(p.high - p.estimate)
            ax.annotate(f"n={int(size[b])}", (xs[-1], p.high), xytext=(0, 4), textcoords="offset points",
                        ha="center", fontsize=7, color="0.3")
        cont = ax.errorbar(xs, ps, yerr=[lo, hi], fmt="o", color="#4477aa", capsize=3,
                           label=f"observed, quantile bins (Wilson {100 * confidence:g} %)")
        cont.lines[0].set_gid("binned")
        if n <= RUG_POINTS:  # every patient, in row order
            xr = np.concatenate([x for x, _ in ok()])
            yr = np.concatenate([w[0] for _, w in ok()])
        else:  # RUG_POINTS ticks at evenly spaced ranks of exposure within each outcome
            parts = []
            for outcome, count_ in ((1.0, fit.responders), (0.0, n - fit.responders)):
                ranks = _spread_ranks(count_, round(RUG_POINTS * count_ / n))
                if ranks.size:
                    parts.append((order_statistics(_usable(raw, outcome=outcome), ranks.tolist()), np.full(ranks.size, outcome)))
            xr = np.concatenate([p[0] for p in parts])
            yr = np.concatenate([p[1] for p in parts])
        jitter = np.random.default_rng(0).uniform(-0.02, 0.02, yr.size)  # display only
        ax.plot(xr, np.where(yr == 1, 1.04, -0.04) + jitter, "|", color="0.5", ms=6, alpha=0.5)
    if fit.estimable:
        grid = np.geomspace(x_lo, x_hi, 200)
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


def exposure_response(table: Any, path: Path | str, exposure: str = "car_cmax",
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
