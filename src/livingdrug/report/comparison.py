"""Run folder of a comparison (``livingdrug compare``): table, figures, report.

Files, each written atomically and ``manifest.json`` last (a folder without it is unfinished):

* ``patients.parquet`` — one row per (arm, virtual patient); units in the column metadata;
* ``summary.json`` — endpoints per arm with Wilson 95 % intervals and the paired differences
  (:func:`livingdrug.comparison.run_comparison`);
* ``endpoints.png`` (endpoints per arm with intervals), ``efs_from_referral.png``,
  ``os_from_referral.png`` and ``pfs_from_infusion.png`` (Kaplan–Meier with numbers at risk), ``referral_to_infusion.png``, ``time_courses.png`` (median and 10–90th
  percentile of the tumour and of product cells in blood); ``report.html`` embedding them;
* ``manifest.json`` — livingdrug version, comparison text and hash, patients, seed, arms.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write_text, ensure_writable_dir
from ..io.results import write_columns, write_json
from .html import figure_html, page_html, save_png, scenario_html

__all__ = ["save_comparison_run", "write_comparison_report", "comparison_rows", "column_units", "ENDPOINTS",
           "COLUMN_UNITS"]

#: summary key → label of the proportion endpoints shown per arm
ENDPOINTS = {
    "infused_share": "infused (of referred)",
    "response_itt": "response, ITT (of referred)",
    "response_if_infused": "response (of infused)",
    "complete_response_itt": "complete response, ITT (of referred)",
    "relapse_among_responders": "relapse (of responders)",
    "crs_grade_ge_1": "CRS grade ≥ 1 (of infused)",
    "crs_grade_ge_3": "CRS grade ≥ 3 (of infused)",
    "icans_grade_ge_1": "ICANS grade ≥ 1 (of infused)",
    "icans_grade_ge_3": "ICANS grade ≥ 3 (of infused)",
}
#: unit of the fixed columns of patients.parquet (varying parameters: their model unit)
COLUMN_UNITS = {
    "arm": "", "patient": "1", "outcome": "", "status": "1", "referral_to_infusion": "d", "dropout_day": "d",
    "untreated_days": "d", "bridged": "", "dose": "cell", "tumour_at_infusion": "cell", "responded": "", "complete_response": "",
    "response_day": "d", "mrd_negative_day": "d", "relapse_day": "d", "crs_max_grade": "1",
    "icans_max_grade": "1", "car_cmax": "cell/uL", "efs_day": "d", "efs_event": "",
    "death_day": "d", "os_day": "d", "os_event": "", "pfs_day": "d", "pfs_event": "",
    "car_tmax": "d", "car_auc28": "cell/uL*d", "tumour_nadir": "cell",
    "product_f_S": "1", "product_f_E": "1", "product_f_M": "1", "product_vcn": "copies/cell", "product_fitness": "1",
}
_COLOURS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000")


def _pct(p: dict | None) -> str:
    if not p or p.get("estimate") is None:
        return "—"
    return f"{100 * p['estimate']:.1f} % ({100 * p['low']:.1f}–{100 * p['high']:.1f}) [{p['successes']}/{p['trials']}]"


def _q(d: dict | None, fmt: str = "{:.1f}") -> str:
    if not d or d.get("median") is None:
        return "—"
    return f"{fmt.format(d['median'])} ({fmt.format(d['q1'])}–{fmt.format(d['q3'])})"


def _median(k: dict) -> str:
    """KM median (d) with its 95 % interval; "not reached" (NR) where it is not."""
    def f(x: float | None) -> str:
        return "NR" if x is None else f"{x:.0f}"
    return f"{f(k['median_days'])} ({f(k['median_low_days'])}–{f(k['median_high_days'])})"


def _at(p: dict | None) -> str:
    if not p:
        return "— (follow-up too short)"
    return f"{100 * p['estimate']:.1f} % ({100 * p['low']:.1f}–{100 * p['high']:.1f})"


def comparison_rows(summary: dict) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """``(arm names, [(label, value per arm)])`` of the endpoint table (CLI and report)."""
    arms = list(summary["arms"])
    A = summary["arms"]
    rows: list[tuple[str, list[str]]] = [("referred", [str(A[a]["referred"]) for a in arms])]
    rows.append(("referral → infusion, d: median (IQR)", [_q(A[a]["referral_to_infusion_days"]) for a in arms]))
    rows.append(("untreated days before lymphodepletion: median (IQR)", [_q(A[a]["untreated_days"]) for a in arms]))
    rows.append(("leukaemia at infusion, cells: median (IQR)", [_q(A[a]["tumour_at_infusion"], "{:.2g}") for a in arms]))
    rows.append(("drop-outs: progression / death / ineligible / manufacturing",
                 [" / ".join(str(A[a]["outcomes"][k]) for k in ("progression", "death", "ineligible", "manufacturing failure"))
                  for a in arms]))
    for key, label in ENDPOINTS.items():
        rows.append((label, [_pct(A[a][key]) for a in arms]))
    rows.append(("event-free survival from referral at 6 / 12 months",
                 [" / ".join(f"{100 * v:.1f} %" if v is not None else "— (follow-up too short)"
                             for v in (A[a]["efs"]["at_6_months"], A[a]["efs"]["at_12_months"])) for a in arms]))
    for key, label, origin in (("os", "overall survival", "referral"), ("pfs", "progression-free survival", "infusion")):
        if all(key in A[a] for a in arms):
            rows.append((f"{label} from {origin}: median, d (95 % CI)", [_median(A[a][key]) for a in arms]))
            rows.append((f"{label} at 6 / 12 months (95 % CI)",
                         [f"{_at(A[a][key]['at_6_months'])} / {_at(A[a][key]['at_12_months'])}" for a in arms]))
    rows.append(("peak product cells in blood, cells/µL: median (IQR)", [_q(A[a]["car_cmax"], "{:.3g}") for a in arms]))
    return arms, rows


def _figures(result: Any, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    s = result.summary
    arms = list(s["arms"])
    paths: list[Path] = []

    def save(fig: Any, name: str) -> None:
        paths.append(save_png(fig, out / name))

    keys = list(ENDPOINTS)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(keys) * len(arms) + 1.5))
    for j, a in enumerate(arms):
        for k, key in enumerate(keys):
            p = s["arms"][a][key]
            if p.get("estimate") is None:
                continue
            y = k + (j - (len(arms) - 1) / 2) * 0.25
            ax.errorbar(100 * p["estimate"], y, xerr=[[100 * (p["estimate"] - p["low"])], [100 * (p["high"] - p["estimate"])]],
                        fmt="o", color=_COLOURS[j % len(_COLOURS)], capsize=3, label=a if k == 0 else None)
    ax.set_yticks(range(len(keys)), [ENDPOINTS[k] for k in keys])
    ax.invert_yaxis()
    ax.set_xlim(-2, 102)
    ax.set_xlabel("% of patients (Wilson 95 % interval)")
    ax.set_title(f"{result.comparison.title}\n{s['patients']} virtual patients, seed {s['seed']}", fontsize=10)
    ax.grid(axis="x", color="0.9")
    ax.legend(loc="lower right", fontsize=8)
    save(fig, "endpoints.png")

    from ..clinical.streaming import column_scan
    from . import trial_figures as tf

    # every figure reads the table a batch at a time (a trial's endpoints.parquet is never held
    # whole); arm names label legends and the number-at-risk rows: drawn short enough to leave
    # room, mapped when drawing (no relabelled column is built)
    short = {a: a if len(a) <= 32 else a[:31] + "…" for a in arms}
    pt = tf.Rows(result.patients, labels=short)
    paths.append(tf.km_figure(pt, out / "efs_from_referral.png", time_col="efs_day", event_col="efs_event", by="arm",
                              xlabel="days since referral",
                              title="Event-free survival from referral\n(drop-out, no response, relapse, death)"))
    if "os_day" in pt:
        paths.append(tf.km_figure(pt, out / "os_from_referral.png", time_col="os_day", event_col="os_event", by="arm",
                                  xlabel="days since referral",
                                  title="Overall survival from referral\n(event: death)"))
        inf = tf.Rows(pt, where={"outcome": "infused"})
        paths.append(tf.km_figure(inf, out / "pfs_from_infusion.png", time_col="pfs_day", event_col="pfs_event",
                                  by="arm", xlabel="days since infusion",
                                  title="Progression-free survival from infusion\n(events: progression, death)"))
    treated = tf.Rows(pt, where={"outcome": "infused", "status": 0})
    n_treated, finite_cmax, positive_cmax = 0, False, True
    for b in treated(["car_cmax"]):
        c = np.asarray(b["car_cmax"], dtype=float)
        n_treated += c.size
        fin = np.isfinite(c)
        finite_cmax = finite_cmax or bool(fin.any())
        positive_cmax = positive_cmax and bool(np.all(c[fin] > 0))
    if n_treated:
        paths.append(tf.grade_bars(treated, out / "grade_bars.png"))
        paths.append(tf.waterfall(treated, out / "waterfall.png", baseline="tumour_at_infusion", nadir="tumour_nadir"))
        if finite_cmax and positive_cmax:
            paths.append(tf.exposure_response(treated, out / "exposure_response.png"))
    if any(a.logistics is not None for a in result.comparison.arms):  # waits need a programme
        w_max, any_w = -np.inf, False
        for b in pt(["referral_to_infusion"]):
            w = np.asarray(b["referral_to_infusion"], dtype=float)
            w = w[np.isfinite(w)]
            if w.size:
                any_w, w_max = True, max(w_max, float(w.max()))
        if any_w:
            fig, ax = plt.subplots(figsize=(7, 4))
            bins = np.linspace(0, max(w_max, 1.0) * 1.02, 40)
            for j, a in enumerate(arms):
                waits = column_scan(pt.select("arm", a), "referral_to_infusion")
                counts = np.zeros(bins.size - 1, dtype=np.int64)
                for w, _ in waits():
                    counts += np.histogram(w, bins=bins)[0]
                if counts.sum():
                    med = s["arms"][a]["referral_to_infusion_days"]["median"]  # the summary's
                    # the histogram of the arm's waits, drawn from its counts per bin
                    ax.hist(bins[:-1], bins=list(bins), weights=counts, alpha=0.6, color=_COLOURS[j % len(_COLOURS)],
                            label=f"{a}: median {med:.1f} d")
            ax.set_xlabel("referral → infusion, d")
            ax.set_ylabel("patients infused")
            ax.set_title("Time from referral to infusion")
            ax.legend(fontsize=8)
            save(fig, "referral_to_infusion.png")

    panels = [k for k in ("tumour", "car_blood") if any(k in result.curves[a] for a in arms)]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
        for ax, key in zip(axes[0], panels, strict=True):
            label = ""
            for j, a in enumerate(arms):
                c = result.curves[a]
                if key not in c:
                    continue
                b = c[key]
                col = _COLOURS[j % len(_COLOURS)]
                pos = np.where(b["median"] > 0, b["median"], np.nan)
                ax.plot(c["t"], pos, color=col, label=a)
                ax.fill_between(c["t"], np.where(b["p10"] > 0, b["p10"], np.nan), np.where(b["p90"] > 0, b["p90"], np.nan),
                                color=col, alpha=0.15, lw=0)
                label = f"{b['label']} ({b['unit']})"
            ax.set_yscale("log")
            ax.set_xlabel("days since infusion")
            ax.set_ylabel(label)
            ax.set_title("median and 10th–90th percentile of the infused", fontsize=10)
            ax.legend(fontsize=8)
        save(fig, "time_courses.png")
    return paths


def column_units(c: Any) -> dict[str, str]:
    """Unit of every column of a comparison's or trial's patient table: the fixed columns
    (:data:`COLUMN_UNITS`) and each varied quantity's own unit."""
    return {**COLUMN_UNITS, **{v.name: v.unit for v in (*c.population.variables, *(p for a in c.arms for p in a.parameters))}}


def save_comparison_run(result: Any, out: str | Path, *, figures: bool = True) -> Path:
    """Write the run folder of ``result`` (a :class:`~livingdrug.comparison.ComparisonResult`)."""
    out = ensure_writable_dir(Path(out))
    stale = out / "manifest.json"
    if stale.exists():
        stale.unlink()
    write_columns(result.patients, out / "patients.parquet", column_units(result.comparison))
    write_json(out / "summary.json", result.summary)
    if figures:
        write_comparison_report(result, out)
    write_json(out / "manifest.json", result.manifest)
    return out


def _calibration_html(cal: dict | None) -> str:
    """The calibration section of a trial report (maximum-entropy weights to published figures)."""
    if not cal:
        return ""
    if "error" in cal:
        return f"<h2>Calibration to published figures</h2><p class=note>Not possible: {html.escape(cal['error'])}</p>"

    from ..calibrate import calibration_cells

    rows = "\n".join(
        f"<tr><td>{html.escape(str(r['target']))}</td>"
        + "".join(f"<td class=num>{html.escape(x)}</td>" for x in calibration_cells(r))
        + f"<td>{'yes' if r['within'] else 'NO'}</td><td>{html.escape(str(r.get('source', '')))}</td></tr>"
        for r in cal["table"])
    wtd = "".join(f"<tr><td>{html.escape(k)}</td><td class=num>{'—' if v is None else f'{100 * v:.1f} %'}</td></tr>"
                  for k, v in cal["weighted"].items())
    wtd += "".join(f"<tr><td>{html.escape(k)}</td><td class=num>{_at(v) if v.get('estimate') == v.get('estimate') else '—'}"
                   "</td></tr>" for k, v in (cal.get("weighted_survival") or {}).items())
    return f"""<h2>Calibration to published figures</h2>
<p>The virtual patients are weighted (maximum entropy: the weights closest to equal that reproduce
every published figure; effective sample size {cal['n_effective']:.0f}). Published intervals are
Wilson 95 % intervals from the trial's n; calibrated intervals use the effective sample size.</p>
<table><tr><th>target</th><th>published (95 % CI)</th><th>plausible, unweighted</th><th>calibrated (95 % CI)</th><th>within</th><th>source</th></tr>
{rows}
</table>
<p>Weighted endpoints of the calibrated population:</p>
<table>{wtd}</table>"""


def write_comparison_report(result: Any, out: Path, *, kind: str = "comparison") -> list[Path]:
    """The figures and ``report.html`` of a comparison or trial (``kind``) result."""
    c = result.comparison
    figs = _figures(result, out)
    arms, rows = comparison_rows(result.summary)
    head = "".join(f"<th>{html.escape(a)}</th>" for a in arms)
    body = "\n".join(f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td class=num>{html.escape(v)}</td>" for v in vals)
                     + "</tr>" for k, vals in rows)
    paired = "\n".join(
        f"<tr><td>{html.escape(p['arm'])} vs {html.escape(p['reference'])}</td>"
        f"<td class=num>{100 * p['response_itt_difference']:+.1f} %</td>"
        f"<td class=num>{p['discordant_pairs']['only_arm']} / {p['discordant_pairs']['only_reference']}</td>"
        f"<td class=num>{p['mcnemar_p']:.2g}</td>"
        f"<td class=num>{'—' if p['crs_grade_ge_1_difference_both_infused'] is None else format(100 * p['crs_grade_ge_1_difference_both_infused'], '+.1f') + ' %'}</td></tr>"
        for p in result.summary.get("paired") or [])
    randomised = "\n".join(
        f"<tr><td>{html.escape(p['arm'])} vs {html.escape(p['reference'])}</td>"
        f"<td class=num>{100 * p['response_itt']['difference']:+.1f} % ({100 * p['response_itt']['low']:+.1f} to "
        f"{100 * p['response_itt']['high']:+.1f})</td><td class=num>{p['response_itt']['fisher_p']:.2g}</td>"
        f"<td class=num>{100 * p['crs_grade_ge_3']['difference']:+.1f} %</td>"
        f"<td class=num>{'—' if p['efs_logrank_p'] is None else format(p['efs_logrank_p'], '.2g')}</td>"
        f"<td class=num>{'—' if p.get('os_logrank_p') is None else format(p['os_logrank_p'], '.2g')}</td></tr>"
        for p in result.summary.get("randomised") or [])
    paired_html = ("<h2>Paired comparison (same patients)</h2>\n<table><tr><th>arms</th><th>ITT response difference</th>"
                   "<th>discordant pairs (only arm / only reference)</th><th>McNemar exact p</th>"
                   f"<th>CRS ≥ 1 difference (infused in both)</th></tr>\n{paired}\n</table>") if paired else ""
    randomised_html = ("<h2>Randomised comparison</h2>\n<table><tr><th>arms</th>"
                       "<th>ITT response difference (Newcombe 95 % CI)</th><th>Fisher exact p</th>"
                       f"<th>CRS ≥ 3 difference (infused)</th><th>EFS log-rank p</th><th>OS log-rank p</th></tr>\n{randomised}\n</table>"
                       ) if randomised else ""
    arms_html = "\n".join(
        f"<tr><td>{html.escape(a.name)}</td><td>{html.escape(a.scenario.name)}: {html.escape(a.scenario.title)}</td>"
        f"<td>{html.escape(a.logistics.name + ': ' + a.logistics.title) if a.logistics else 'none (infused at once)'}</td>"
        f"<td>{html.escape(a.product)}</td></tr>" for a in c.arms)
    m = result.manifest
    prov = {"livingdrug": m["livingdrug_version"], kind: c.name, f"{kind} hash": c.hash,
            "patients": m["patients"], "seed": m["seed"], "created": m["created"]}
    body = f"""{scenario_html(c, "Question")}
<h2>Arms</h2>
<table><tr><th>arm</th><th>model scenario</th><th>logistics</th><th>product</th></tr>
{arms_html}
</table>
<h2>Endpoints</h2>
<table><tr><th>endpoint</th>{head}</tr>
{body}
</table>
<p>Proportions: estimate (Wilson 95 % interval) [count/denominator]. ITT: every referred patient
counts; patients who drop out before infusion are non-responders. Response: B-ALL complete
remission by day 28 (lymphoma: Lugano CR/PR, myeloma: IMWG ≥ PR at day 90). Grades: ASTCT
(Lee 2019). Survival: Kaplan–Meier with Greenwood log-log 95 % intervals; deaths from the
tumour-burden hazard model (docs/trials.md).</p>
{paired_html}
{randomised_html}
{_calibration_html(result.summary.get("calibration"))}
<h2>Figures</h2>
{''.join(figure_html(p) for p in figs)}"""
    name = c.source if Path(c.source).is_file() else c.name
    page = page_html(c.title, body, prov, f"Re-run with <code>livingdrug {kind if kind == 'trial' else 'compare'} "
                                          f"{html.escape(name)} --patients {m['patients']} --seed {m['seed']}</code>.")
    atomic_write_text(out / "report.html", page)
    return figs
