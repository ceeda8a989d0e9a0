"""The HTML report of a stochastic run or sweep, and the rows the terminal prints.

Sections: probabilities with 95 % CIs (Wilson), time to cure, relapse-free survival
(Kaplan–Meier median with its CI), count parameters (P(≥ 1) and the conditioning), failed
replicates, the sweep table, figures (Kaplan–Meier, fan chart, sweep, clone composition) and
provenance, under the research-use disclaimer.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write_text
from .html import figure_html, page_html, scenario_html

__all__ = ["probability_rows", "detail_rows", "sweep_rows", "write_ensemble_report"]

_LABELS = {
    "cure": "P(cure): every tumour cell extinct at the end",
    "remission": "P(remission): marrow blasts < 5 %",
    "mrd_negative": "P(MRD-negative remission): < 10⁻⁴",
    "relapse": "P(relapse by the end of the run)",
    "relapse_given_remission": "P(relapse by the end | remission)",
    "crs_grade_ge_1": "P(CRS, any grade; ASTCT)",
    "crs_grade_ge_3": "P(CRS grade ≥ 3; ASTCT)",
    "icans_grade_ge_1": "P(ICANS, any grade; ASTCT)",
    "icans_grade_ge_3": "P(ICANS grade ≥ 3; ASTCT)",
}


def _p(x: Any) -> str:
    return "—" if x is None else f"{x:.3f}"


def _v(x: Any, unit: str = "") -> str:
    if x is None:
        return "not reached"
    return f"{x:.4g}" + (f" {unit}" if unit else "")


def probability_rows(summary: dict) -> list[tuple[str, str, str, str]]:
    """``(what, estimate, 95 % CI, k/n)`` rows of an ensemble summary."""
    rows = []
    for key, p in (summary.get("probabilities") or {}).items():
        label = _LABELS.get(key, f"P({key})")
        ci = f"[{_p(p['low'])}, {_p(p['high'])}]" if p["trials"] else "—"
        rows.append((label, _p(p["estimate"]), ci, f"{p['successes']}/{p['trials']}"))
    clone_labels = {
        "clone_dominates": "P(a clone reaches 90 % of CAR-T)",
        "clone_dominates_at_peak": "P(a clone is ≥ 90 % of CAR-T at the peak)",
        "adv_dominates": "P(the advantaged clone reaches 90 % of CAR-T)",
        "adv_alive_end": "P(the advantaged clone is alive at the end)",
    }
    for key, p in ((summary.get("clonality") or {}).get("probabilities") or {}).items():
        ci = f"[{_p(p['low'])}, {_p(p['high'])}]" if p["trials"] else "—"
        rows.append((clone_labels.get(key, f"P({key})"), _p(p["estimate"]), ci,
                     f"{p['successes']}/{p['trials']}"))
    for kind, p in (summary.get("relapse_types") or {}).items():
        ci = f"[{_p(p['low'])}, {_p(p['high'])}]" if p["trials"] else "—"
        rows.append((f"P(relapse of type {kind})", _p(p["estimate"]), ci, f"{p['successes']}/{p['trials']}"))
    return rows


def detail_rows(summary: dict) -> list[tuple[str, str]]:
    """``(what, value)`` rows: time to cure, relapse-free survival, count parameters, failures."""
    rows: list[tuple[str, str]] = []
    ttc = summary.get("time_to_cure")
    if ttc and ttc.get("n"):
        q = ttc["quantiles"]
        rows.append(
            (
                "time to cure (d after infusion), median [5 %, 95 %]",
                f"{_v(q.get('50%'))} [{_v(q.get('5%'))}, {_v(q.get('95%'))}] (n = {ttc['n']})",
            )
        )
    km = summary.get("relapse_free_survival")
    if km and km.get("n"):
        rows.append(
            (
                "median relapse time (d, Kaplan–Meier) [95 % CI]",
                f"{_v(km['median'])} [{_v(km['median_low'])}, {_v(km['median_high'])}] "
                f"({km['events']} relapses in {km['n']} remissions)",
            )
        )
    for name, c in (summary.get("count_params") or {}).items():
        rows.append(
            (
                f"{name}: expected count λ, P(≥ 1) = 1 − e^(−λ)",
                f"λ = {c['mean']:.4g} {c.get('unit', '')}, P(≥ 1) = {c['p_at_least_one']:.4g}"
                + (" (probabilities above are conditional on ≥ 1)" if c["condition"] == "at_least_one" else ""),
            )
        )
    n = summary.get("replicates")
    rows.append(("replicates (ok / failed)", f"{n} ({summary.get('ok')} / {summary.get('failed')})"))
    if summary.get("partial"):
        rows.append(("PARTIAL", f"{n} of {summary.get('replicates_requested')} replicates finished"))
    return rows


def sweep_rows(result: Any) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a sweep table for the terminal and the report."""
    tab = result.table
    keys = [k for k in ("cure", "remission", "mrd_negative", "relapse", "adv_dominates") if f"p_{k}" in tab]
    unit = f" ({result.unit})" if result.unit and result.unit != "1" else ""
    header = [f"{result.spec.name}{unit}"] + [f"P({k.replace('_', '-')}) [95 % CI]" for k in keys] + ["ok/failed"]
    rows = []
    for _, r in tab.iterrows():
        row = [f"{r['value']:.4g}"]
        for k in keys:
            row.append(f"{_p(r[f'p_{k}'])} [{_p(r[f'p_{k}_low'])}, {_p(r[f'p_{k}_high'])}]")
        row.append(f"{int(r['ok'])}/{int(r['failed'])}")
        rows.append(row)
    return header, rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "\n".join(
        "<tr>" + "".join(f"<td{' class=num' if i else ''}>{html.escape(str(c))}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{h}</tr>\n{body}\n</table>"


def write_ensemble_report(result: Any, out: Path, figures: list[Path]) -> Path:
    """Write ``report.html`` of a stochastic run or sweep (figures embedded)."""
    from ..ensemble import SweepResult

    m = result.manifest
    title = str(getattr(result.scenario, "title", "") or m["scenario"]["name"])
    eng = m.get("engine", {})
    parts: list[str] = []
    if isinstance(result, SweepResult):
        header, rows = sweep_rows(result)
        parts.append(
            f"<h2>Sweep of {html.escape(result.spec.name)}</h2>"
            f"<p>{result.summary['replicates_per_value']} replicates at each of {len(result.values)} values "
            f"({html.escape(result.spec.scale)} spacing, {html.escape(result.kind)}). Every value uses the same "
            "seed, so replicate <i>i</i> draws the same random stream at each value (common random numbers). "
            "Intervals: 95 % Wilson score.</p>"
        )
        parts.append(_table(header, rows))
        failed = int(result.summary.get("failed", 0))
    else:
        s = result.summary
        parts.append("<h2>Probabilities</h2>")
        parts.append(
            f"<p>Out of {s['ok']} successful replicates (of {s['replicates']}); 95 % confidence intervals by the "
            "Wilson score method. Cure means that no tumour cell is left at the end of the run "
            f"({s.get('follow_up_days', 0):g} d after infusion).</p>"
        )
        parts.append(_table(["", "estimate", "95 % CI", "k/n"], probability_rows(s)))
        parts.append("<h2>Times and counts</h2>")
        parts.append(_table(["", "value"], detail_rows(s)))
        km = s.get("relapse_free_survival")
        if km and km.get("n"):
            parts.append(
                f"<p>Relapse-free survival: {html.escape(km['population'])}; time from infusion; "
                f"event: {html.escape(km['event'])}; censoring {html.escape(km['censoring'])}. "
                "Kaplan–Meier estimate (scipy.stats.ecdf), pointwise band from Greenwood's variance on the "
                "log-log scale, median CI by Brookmeyer–Crowley.</p>"
            )
        if s.get("warnings"):
            items = "".join(f"<li>{html.escape(w)}</li>" for w in s["warnings"])
            parts.append(f"<h2>Warnings</h2><ul>{items}</ul>")
        failed = int(s.get("failed", 0))
        if failed:
            items = "".join(
                f"<li>replicate {f['replicate']}: status {f['status']}: {html.escape(f['message'])}</li>"
                for f in s.get("failed_replicates", [])
            )
            parts.append(f"<h2>Failed replicates ({failed})</h2><ul>{items}</ul>")
    status = "all replicates solved" if not failed else f"{failed} replicate(s) failed: see summary.json"
    imgs = "\n".join(figure_html(p) for p in figures)
    prov = {
        "livingdrug": m.get("livingdrug_version"),
        "scenario": m["scenario"]["name"],
        "scenario hash": m["scenario"]["hash"],
        "seed": m.get("seed"),
        "engine": json.dumps(eng),
        "created": m.get("created"),
        "model": f"{result.network.name} — {result.network.reference}",
    }
    body = f"""<p>Stochastic run: engine <code>{html.escape(str(eng.get("engine", "")))}</code>,
{html.escape(str(eng.get("replicates", "")))} replicates{" per value" if isinstance(result, SweepResult) else ""}, seed {html.escape(str(m.get("seed")))}.
Status: {html.escape(status)}.</p>
{scenario_html(result.scenario)}
{"".join(parts)}
<h2>Figures</h2>
{imgs}"""
    page = page_html(title, body, prov, "Re-run exactly (bitwise) with <code>livingdrug run --from manifest.json</code>.")
    return atomic_write_text(Path(out) / "report.html", page)
