"""Figures of stochastic runs (matplotlib, imported lazily, Agg backend).

* ``relapse_free_survival.png`` — Kaplan–Meier relapse-free survival of the replicates in
  remission, with its pointwise 95 % band (Greenwood, log-log) and the median marked;
* ``fan_chart.png`` — CAR-T in blood and the tumour over time: median, 25–75 % and 5–95 %
  bands over replicates (log scale), and the fraction of replicates whose tumour is extinct;
* ``sweep_probabilities.png`` — P(cure) (and the other probabilities) against the swept
  value, with 95 % Wilson intervals;
* ``clone_composition.png`` — when the model tracks clones (``network.meta["clones"]``),
  drawn by :func:`_clone_outputs` with ``report.figures.clone_composition_figure``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write_with

__all__ = [
    "km_figure",
    "fan_chart_figure",
    "sweep_figure",
    "write_ensemble_figures",
    "_clone_outputs",
]

from .html import FIGURE_FOOTER as _DISCLAIMER  # noqa: E402


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _plt()
    fig.text(0.99, 0.01, _DISCLAIMER, ha="right", va="bottom", fontsize=6, color="grey")
    fig.tight_layout()

    def _w(tmp: str) -> None:
        fig.savefig(tmp, format="png")

    atomic_write_with(path, _w)
    plt.close(fig)
    return path


def _steps(time: list[float], values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Right-continuous step curve starting at (0, 1)."""
    t = np.concatenate(([0.0], np.asarray(time, dtype=float)))
    v = np.concatenate(([1.0], np.array([np.nan if x is None else x for x in values], dtype=float)))
    return t, v


def km_figure(km: dict[str, Any], *, title: str = "Relapse-free survival", follow_up: float | None = None) -> Any:
    """Kaplan–Meier curve (``summary["relapse_free_survival"]``) with its band and median."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.6), dpi=110)
    c = km["curve"]
    t, s = _steps(c["time"], c["survival"])
    _, lo = _steps(c["time"], c["low"])
    _, hi = _steps(c["time"], c["high"])
    if follow_up is not None and t[-1] < follow_up:
        t = np.append(t, follow_up)
        s, lo, hi = (np.append(a, a[-1]) for a in (s, lo, hi))
    ax.step(t, s, where="post", color="C0", lw=2, label=f"Kaplan–Meier (n = {km['n']}, {km['events']} relapses)")
    ax.fill_between(t, lo, hi, step="post", color="C0", alpha=0.2, label=f"{100 * km['confidence']:g} % CI (log-log)")
    if km.get("median") is not None:
        ax.axvline(km["median"], color="grey", ls="--", lw=1)
        ax.text(km["median"], 0.52, f" median {km['median']:.4g} d", fontsize=8, color="grey")
    ax.axhline(0.5, color="grey", ls=":", lw=0.8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time since infusion (d)")
    ax.set_ylabel("P(relapse-free)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def _band_panel(ax: Any, t: np.ndarray, bands: Any, name: str) -> None:
    q = list(np.round(bands["quantile"].values, 6))
    x = np.asarray(bands[name].values, dtype=float)

    def row(p: float) -> np.ndarray:
        y = x[q.index(p)]
        return np.where(y > 0, y, np.nan)

    unit = bands[name].attrs.get("units", "")
    ax.fill_between(t, row(0.05), row(0.95), color="C0", alpha=0.15, label="5–95 %")
    ax.fill_between(t, row(0.25), row(0.75), color="C0", alpha=0.3, label="25–75 %")
    ax.plot(t, row(0.5), color="C0", lw=2, label="median")
    mean = np.asarray(bands[f"{name}_mean"].values, dtype=float)
    ax.plot(t, np.where(mean > 0, mean, np.nan), color="C1", lw=1, ls="--", label="mean")
    ax.set_yscale("log")
    ax.set_ylabel(unit or "value")
    ax.set_title(bands[name].attrs.get("long_name") or name, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def fan_chart_figure(result: Any) -> Any | None:
    """Fan chart of the CAR-T (role ``cart_blood``) and tumour (role ``tumour_total``)
    observables over replicates, plus the fraction of replicates with the tumour extinct;
    ``None`` when the model has neither role."""
    net, bands = result.network, result.bands
    names = [o.name for r in ("cart_blood", "tumour_total") if (o := net.observable_by_role(r)) is not None]
    if not names:
        return None
    has_p = "p_extinct" in bands
    plt = _plt()
    rows = len(names) + (1 if has_p else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(8, 3.2 * rows), dpi=110, sharex=True, squeeze=False)
    t = bands["time"].values
    for ax, name in zip(axes[:, 0], names, strict=False):
        _band_panel(ax, t, bands, name)
        ax.axvline(result.summary.get("t_dose", 0.0), color="k", lw=0.8, ls=":")
    if has_p:
        ax = axes[-1, 0]
        ax.plot(t, bands["p_extinct"].values, color="C2", lw=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("fraction")
        ax.set_title("replicates with the tumour extinct", fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("time (d; infusion at the dotted line)")
    kept = result.summary.get("trajectories_kept")
    fig.suptitle(
        f"{result.dataset.attrs.get('scenario', '')}: {result.summary.get('replicates')} replicates"
        + (f" (bands from {kept})" if kept is not None and kept != result.summary.get("replicates") else ""),
        fontsize=11,
    )
    return fig


_P_KEYS = ("cure", "remission", "mrd_negative", "relapse", "adv_dominates")


def sweep_figure(result: Any) -> Any:
    """Probabilities (with 95 % CIs) against the swept value."""
    plt = _plt()
    tab = result.table
    fig, ax = plt.subplots(figsize=(8, 4.6), dpi=110)
    x = tab["value"].to_numpy(dtype=float)
    for i, key in enumerate(_P_KEYS):
        col = f"p_{key}"
        if col not in tab:
            continue
        y = tab[col].to_numpy(dtype=float)
        lo = tab[f"{col}_low"].to_numpy(dtype=float)
        hi = tab[f"{col}_high"].to_numpy(dtype=float)
        ax.plot(x, y, "o-", color=f"C{i}", lw=2 if key == "cure" else 1.2, label=f"P({key.replace('_', '-')})")
        ax.fill_between(x, lo, hi, color=f"C{i}", alpha=0.15)
    if result.spec.scale == "log":
        ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    unit = f" ({result.unit})" if result.unit and result.unit != "1" else ""
    ax.set_xlabel(f"{result.spec.name}{unit}")
    ax.set_ylabel("probability (95 % Wilson CI)")
    n = result.summary.get("replicates_per_value")
    ax.set_title(f"{result.manifest['scenario']['name']}: sweep of {result.spec.name}, {n} replicates per value", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def _clone_outputs(result: Any, out: Path | None = None) -> dict[str, Path]:
    """Clone-composition outputs of a run whose model tracks clones.

    Returns ``{}`` when ``network.meta["clones"]`` is absent (or the figure function of
    :mod:`livingdrug.report.figures` is not available).  Otherwise the mean size over the kept
    replicates of each clone's total observable (``clone_<name>``, cells) is drawn as a
    stacked area of clone shares (``report.figures.clone_composition_figure``) into
    ``clone_composition.png``; returns ``{"clone_composition.png": path}``.
    """
    clones = (result.network.meta or {}).get("clones")
    if not clones or out is None:
        return {}
    from . import figures

    fn = getattr(figures, "clone_composition_figure", None)
    ds = result.dataset
    names = [str(c) for c in clones if f"clone_{c}" in ds]
    if fn is None or not names:
        return {}
    sizes = np.stack([np.nanmean(np.asarray(ds[f"clone_{c}"].values, dtype=float), axis=0) for c in names], axis=-1)
    # shares of ALL CAR-T cells (the untracked rest of the product fills the remainder), as an
    # integration-site study reports them, on the mean clone sizes over the replicates
    total = (np.nanmean(np.asarray(ds["car_t_total"].values, dtype=float), axis=0)
             if "car_t_total" in ds else None)
    fig = fn(ds["time"].values, sizes, names, total=total,
             title=f"CAR-T clone composition (mean over {ds.sizes.get('replicate', 1)} replicates)",
             t_dose=float(result.summary.get("t_dose", 0.0)))
    return {"clone_composition.png": _save(fig, Path(out) / "clone_composition.png")}


def write_ensemble_figures(result: Any, out: Path) -> list[Path]:
    """Write the figures of a stochastic run (or sweep) into ``out``; returns their paths."""
    from ..ensemble import SweepResult

    out = Path(out)
    paths: list[Path] = []
    if isinstance(result, SweepResult):
        paths.append(_save(sweep_figure(result), out / "sweep_probabilities.png"))
        return paths
    km = result.summary.get("relapse_free_survival")
    if km and km.get("n"):
        paths.append(
            _save(
                km_figure(km, title=f"Relapse-free survival — {result.dataset.attrs.get('scenario', '')}",
                          follow_up=result.summary.get("follow_up_days")),
                out / "relapse_free_survival.png",
            )
        )
    fig = fan_chart_figure(result)
    if fig is not None:
        paths.append(_save(fig, out / "fan_chart.png"))
    paths.extend(_clone_outputs(result, out).values())
    return paths
