"""Figures of a run (matplotlib, imported lazily, Agg backend: no display needed).

One PNG per plotting group declared by the model (``Network.meta["groups"]``: e.g. CAR-T
cells by phenotype, leukaemia, normal B cells), each on a log scale with its unit, the
infusion marked, and clinical thresholds where they apply; plus one PNG of the CAR-T
observables (cells/µL blood and transgene copies/µg DNA) when the model has them.

:func:`clone_composition_figure` draws clone shares over time as stacked areas (a
Muller-style plot; Muller HJ 1932 Am Nat 66:118 drew clonal interference this way) from clone
sizes such as :func:`livingdrug.clinical.clonality.clone_sizes` returns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write_with

__all__ = ["write_figures", "figure_groups", "clone_composition_figure", "toxicity_figure", "toxicity_window",
           "TOXICITY_FIGURE"]

#: file name of the toxicity figure in a run folder
TOXICITY_FIGURE = "crs_and_icans_grade.png"

from .html import FIGURE_FOOTER as _DISCLAIMER  # noqa: E402


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "figure"


def figure_groups(net: Any, ds: Any) -> dict[str, list[str]]:
    """Plot groups: the model's ``meta["groups"]`` or, without one, one group of all species."""
    groups = dict(net.meta.get("groups") or {})
    if not groups:
        groups = {"States": [s.name for s in net.species]}
    return {title: [n for n in names if n in ds] for title, names in groups.items() if any(n in ds for n in names)}


def _plot_lines(ax: Any, t: np.ndarray, ds: Any, names: list[str], i: int) -> str:
    units = set()
    for name in names:
        y = np.asarray(ds[name].values[i], dtype=float)
        label = ds[name].attrs.get("long_name") or name
        if label != name:
            label = f"{name}: {label}"
        ax.plot(t, np.where(y > 0, y, np.nan), label=label, lw=1.8)
        units.add(str(ds[name].attrs.get("units", "")))
    ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("time since infusion (d)")
    return ", ".join(sorted(u for u in units if u))


def _response_thresholds(net: Any) -> list[tuple[str, tuple[float, str]]]:
    """(observable, (value, label)) lines for the lymphoma and myeloma response read-outs
    (:mod:`livingdrug.clinical.response`)."""
    from ..clinical.endpoints import BCELL_APLASIA_THRESHOLD
    from ..clinical.response import CR_SPD_CM2, HYPOGAMMA_G_DL, M_DETECT_G_DL

    out = []
    for role, value, label in (
        ("tumour_spd", CR_SPD_CM2, f"{CR_SPD_CM2:g} cm² (Lugano CR, operational)"),
        ("m_protein", M_DETECT_G_DL, f"{M_DETECT_G_DL:g} g/dL (immunofixation limit)"),
        ("marrow_plasma_pct", 5.0, "5 % plasma cells (IMWG CR)"),
        ("normal_igg", HYPOGAMMA_G_DL, f"IgG {HYPOGAMMA_G_DL:g} g/dL (hypogammaglobulinaemia)"),
    ):
        o = net.observable_by_role(role)
        if o is not None:
            out.append((o.name, (value, label)))
    if net.observable_by_role("tumour_spd") is not None:  # B-cell aplasia beside the lymphoma response
        b = net.observable_by_role("bcells_blood")
        if b is not None:
            out.append((b.name, (BCELL_APLASIA_THRESHOLD, f"{BCELL_APLASIA_THRESHOLD:g} cells/µL (B-cell aplasia)")))
    return out


def write_figures(result: Any, out: Path, *, patient: int = 0) -> list[Path]:
    """Write the figures of patient ``patient`` into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ds, net = result.dataset, result.network
    t = ds["time"].values
    title_prefix = f"{ds.attrs.get('scenario', '')} ({net.name})"
    blasts = net.observable_by_role("blasts_pct")
    mrd = net.observable_by_role("mrd")
    thresholds = _response_thresholds(net)
    groups = figure_groups(net, ds)
    if not net.meta.get("groups"):
        # no model-declared groups: add the observation models as panels of their own
        cart_obs = [o.name for o in net.observables if o.role in ("cart_blood", "transgene")]
        if cart_obs:
            groups["CAR-T in blood (observed)"] = cart_obs
        disease = [o.name for o in net.observables if o in (blasts, mrd)]
        if disease:
            groups["Disease burden (observed)"] = disease
    panels: list[tuple[str, list[str], list[tuple[float, str]]]] = []
    for title, names in groups.items():
        lines = []
        if blasts is not None and blasts.name in names:
            lines.append((5.0, "5 % blasts (remission threshold)"))
        if mrd is not None and mrd.name in names:
            lines.append((1e-4, "MRD 10^-4"))
        lines += [line for name, line in thresholds if name in names]
        panels.append((title, names, lines))
    paths: list[Path] = []
    for title, names, hlines in panels:
        fig, ax = plt.subplots(figsize=(8, 4.6), dpi=110)
        unit = _plot_lines(ax, t, ds, names, patient)
        for y, label in hlines:
            ax.axhline(y, color="grey", ls="--", lw=1)
            ax.text(t[0], y, f" {label}", va="bottom", fontsize=8, color="grey")
        ax.axvline(0.0, color="k", lw=0.8, ls=":")
        ax.set_ylabel(unit or "value")
        ax.set_title(f"{title} — {title_prefix}", fontsize=11)
        ax.legend(fontsize=8, loc="best")
        fig.text(0.99, 0.01, _DISCLAIMER, ha="right", va="bottom", fontsize=6, color="grey")
        fig.tight_layout()
        path = Path(out) / f"{_slug(title)}.png"
        def _save(tmp: str, f: Any = fig) -> None:
            f.savefig(tmp, format="png")

        atomic_write_with(path, _save)
        plt.close(fig)
        paths.append(path)
    grades = {k: np.asarray(ds[k].values[patient], dtype=float) for k in ("crs_grade", "icans_grade") if k in ds}
    if grades:
        signs = {}
        for role in ("temperature_c", "sbp_mmhg", "o2_level", "vasopressors_n"):
            o = net.observable_by_role(role)
            if o is not None and o.name in ds:
                signs[role] = np.asarray(ds[o.name].values[patient], dtype=float)
        dosing = getattr(result.scenario, "dosing", None)
        t_dose = float(getattr(dosing, "time", 0.0) or 0.0)
        tfig = toxicity_figure(t, grades, signs, title=f"CRS and ICANS grade over time — {title_prefix}", t_dose=t_dose)
        path = Path(out) / TOXICITY_FIGURE

        def _save_tox(tmp: str, f: Any = tfig) -> None:
            f.savefig(tmp, format="png")

        atomic_write_with(path, _save_tox)
        paths.append(path)
    return paths


def toxicity_window(
    t: np.ndarray,
    grades: dict[str, np.ndarray],
    *,
    t_dose: float | None = 0.0,
    min_days: float = 30.0,
    tail_days: float = 7.0,
) -> tuple[float, float]:
    """The time window (d) that shows a CRS/ICANS episode: from the first output time to
    ``max(t_dose + min_days, t_last + tail_days)``, where ``t_last`` is the last output time at
    which any grade in ``grades`` is ≥ 1, clipped to the run ``[t[0], t[-1]]``.  Without an
    infusion time (``t_dose=None``) the window counts ``min_days`` from ``t[0]``."""
    t = np.asarray(t, dtype=float)
    if t.size == 0:
        raise ValueError("toxicity_window: t is empty; expected at least one output time (d)")
    start = float(t[0])
    end = (start if t_dose is None else float(t_dose)) + min_days
    for g in grades.values():
        on = np.flatnonzero(np.asarray(g, dtype=float) >= 1)
        if on.size:
            end = max(end, float(t[on[-1]]) + tail_days)
    return start, float(min(end, t[-1]))


def toxicity_figure(
    t: np.ndarray,
    grades: dict[str, np.ndarray],
    signs: dict[str, np.ndarray] | None = None,
    *,
    title: str = "CRS and ICANS grade over time",
    t_dose: float | None = 0.0,
    zoom: bool = True,
) -> Any:
    """"CRS and ICANS grade over time": a step plot of ``grades["crs_grade"]`` and
    ``grades["icans_grade"]`` (ASTCT 0–4, Lee DW et al. 2019, Biol Blood Marrow Transplant
    25:625; each grade holds until the next output time), above the signs that drive CRS
    when given (``signs`` by contract role): body temperature (°C, fever line at 38 °C),
    systolic blood pressure (mmHg, hypotension line at 90 mmHg), oxygen support level and
    number of vasopressors.  ``t`` in days, the infusion at ``t_dose`` (dotted; ``None`` for
    none); returns a ``matplotlib.figure.Figure``.  With ``zoom`` (default) the x-axis shows
    only :func:`toxicity_window` (the episode, not a whole year's run) and its label says so.
    """
    from matplotlib.figure import Figure

    t = np.asarray(t, dtype=float)
    signs = {k: v for k, v in (signs or {}).items() if v is not None}
    panels = 1 + int("temperature_c" in signs or "sbp_mmhg" in signs) + int("o2_level" in signs or "vasopressors_n" in signs)
    fig = Figure(figsize=(8, 2.2 + 1.9 * panels), dpi=110)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    for key, label, colour in (("crs_grade", "CRS", "tab:red"), ("icans_grade", "ICANS", "tab:purple")):
        if key in grades:
            ax.step(t, np.asarray(grades[key], dtype=float), where="post", label=f"{label} grade", color=colour, lw=1.8)
    ax.set_ylim(-0.2, 4.4)
    ax.set_yticks(range(5))
    ax.set_ylabel("ASTCT grade (0–4)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title, fontsize=11)
    k = 1
    if "temperature_c" in signs or "sbp_mmhg" in signs:
        a = axes[k]
        k += 1
        if "temperature_c" in signs:
            a.plot(t, signs["temperature_c"], color="tab:orange", lw=1.5, label="temperature (°C)")
            a.axhline(38.0, color="tab:orange", ls="--", lw=0.8)
            a.set_ylabel("temperature (°C)")
        if "sbp_mmhg" in signs:
            b = a.twinx() if "temperature_c" in signs else a
            b.plot(t, signs["sbp_mmhg"], color="tab:blue", lw=1.5, label="systolic BP (mmHg)")
            b.axhline(90.0, color="tab:blue", ls="--", lw=0.8)
            b.set_ylabel("systolic BP (mmHg)")
        a.grid(True, alpha=0.3)
        a.text(0.01, 0.95, "dashed: fever 38 °C, hypotension 90 mmHg", transform=a.transAxes, fontsize=7, va="top", color="grey")
    if "o2_level" in signs or "vasopressors_n" in signs:
        a = axes[k]
        for key, label, colour in (("o2_level", "oxygen support level (0–3)", "tab:green"), ("vasopressors_n", "vasopressors (n)", "tab:brown")):
            if key in signs:
                a.step(t, signs[key], where="post", label=label, color=colour, lw=1.5)
        a.set_ylabel("level / count (1)")
        a.set_ylim(-0.2, 3.4)
        a.grid(True, alpha=0.3)
        a.legend(fontsize=8, loc="upper right")
    if t_dose is not None:
        for a in axes:
            a.axvline(t_dose, color="k", lw=0.8, ls=":")
        axes[0].text(t_dose, 4.3, " infusion", fontsize=7, va="top")
    if zoom and t.size:
        lo, hi = toxicity_window(t, grades, t_dose=t_dose)
        if hi > lo:
            axes[-1].set_xlim(lo, hi)
        zoomed = hi < float(t[-1])
        axes[-1].set_xlabel(f"time (d) — zoomed to the toxicity window, days {lo:g} to {hi:g} of the run"
                            if zoomed else "time (d)")
    else:
        axes[-1].set_xlabel("time (d)")
    fig.text(0.99, 0.005, _DISCLAIMER, ha="right", va="bottom", fontsize=6, color="grey")
    fig.tight_layout()
    return fig


def clone_composition_figure(
    t: np.ndarray,
    sizes: np.ndarray,
    names: list[str] | tuple[str, ...],
    *,
    total: np.ndarray | None = None,
    title: str = "CAR-T clone composition",
    threshold: float | None = 0.9,
    t_dose: float | None = 0.0,
) -> Any:
    """Stacked-area (Muller-style) plot of clone shares over time; returns the Figure.

    ``t[T]`` (days), ``sizes[T, c]`` clone sizes (cells) named ``names[c]``.  Shares are
    ``sizes / total`` with ``total[T]`` defaulting to ``Σ_c sizes``; with a larger total (e.g.
    all CAR-T cells while only some clones are tracked) the rest is drawn as one grey band
    "other CAR-T".  Times where the total is 0 (no CAR-T cells) are left blank.  A dashed
    line marks ``threshold`` (e.g. the 90 % dominance of Fraietta JA et al. 2018 Nature
    558:307; ``None`` for none) and a dotted one the infusion at ``t_dose``.  Uses
    ``matplotlib.figure.Figure`` directly (no pyplot state, no display needed); save it with
    ``fig.savefig(path)``.
    """
    from matplotlib.figure import Figure

    t = np.asarray(t, dtype=float)
    n = np.asarray(sizes, dtype=float)
    if n.ndim != 2 or n.shape[0] != t.shape[0] or n.shape[1] != len(names):
        raise ValueError(
            f"sizes has shape {n.shape}; expected (len(t), len(names)) = ({t.shape[0]}, {len(names)}): "
            "one row per output time, one column per named clone"
        )
    own = n.sum(axis=1)
    tot = own if total is None else np.asarray(total, dtype=float).reshape(-1)
    if tot.shape != own.shape:
        raise ValueError(f"total has shape {tot.shape}; expected ({t.shape[0]},), one value per output time")
    ok = tot > 0
    share = np.divide(n, tot[:, None], out=np.full(n.shape, np.nan), where=ok[:, None])
    layers = [share[:, j] for j in range(n.shape[1])]
    labels = [str(x) for x in names]
    if total is not None:
        layers.append(np.clip(1.0 - np.nansum(share, axis=1), 0.0, None) * np.where(ok, 1.0, np.nan))
        labels.append("other CAR-T")
    fig = Figure(figsize=(8, 4.6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    # tab20 keeps up to 20 clones apart (the default cycle repeats after 10)
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n.shape[1] > 10 else "tab10"]
    colours = [cmap(j % cmap.N) for j in range(n.shape[1])] + (["0.8"] if total is not None else [])
    if layers:
        ax.stackplot(t, *[np.where(ok, y, np.nan) for y in layers], labels=labels, colors=colours, alpha=0.9)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.8)
        ax.text(t[0], threshold, f" {threshold:.0%} of CAR-T", va="bottom", fontsize=8)
    if t_dose is not None:
        ax.axvline(t_dose, color="k", lw=0.8, ls=":")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlim(t[0], t[-1])
    ax.set_xlabel("time since infusion (d)")
    ax.set_ylabel("share of CAR-T cells (1)")
    ax.set_title(title, fontsize=11)
    if len(labels) <= 12:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.text(0.99, 0.01, _DISCLAIMER, ha="right", va="bottom", fontsize=6, color="grey")
    fig.tight_layout()
    return fig
