"""Run folder of a logistics simulation (``livingdrug logistics``): tables, figures, report.

Files, each written atomically (a file appears whole or not at all) and ``manifest.json``
last, so a folder without it is unfinished:

* ``patients.parquet`` — one row per referred patient (times in d from the programme start;
  the unit of every column is in the column metadata and in ``livingdrug.units``);
* ``summary.json`` — the summaries (:func:`livingdrug.logistics.simulate_programme`);
* ``vein_to_vein.png``, ``cumulative_referred_infused.png`` and ``suite_utilisation.png`` or
  ``inventory.png``; ``report.html`` embedding them;
* ``manifest.json`` — livingdrug version, scenario name, text and SHA-256 hash, seed.
"""

from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write_text
from ..io.results import write_columns, write_json
from .html import figure_html, page_html, save_png, scenario_html

__all__ = ["save_logistics_run", "logistics_rows", "write_patients", "PATIENT_UNITS"]

_TIMES = ("referral", "eligible", "apheresis", "suite_start", "release", "arrival", "ld_start", "infusion",
          "end", "drop_time", "vein_to_vein", "referral_to_infusion")
#: unit of every column of patients.parquet
PATIENT_UNITS = {
    **{k: "d" for k in _TIMES},
    "patient": "1", "outcome": "", "failed_step": "", "bridged": "", "responded": "",
    "p_response": "1", "dose": "cell", "f_S": "1", "f_E": "1", "f_M": "1", "eta_tx": "1",
    "vcn": "copies/cell", "fitness": "1", "car_leukaemic_cells": "cell", "attempts": "1",
}


def write_patients(patients: dict[str, np.ndarray], path: Path) -> Path:
    """Write the per-patient table to Parquet (deterministic bytes for the same input)."""
    return write_columns(patients, path, PATIENT_UNITS)


def _q(d: dict | None) -> str:
    if not d or d.get("median") is None:
        return "—"
    return f"{d['median']:.1f} ({d['q1']:.1f}–{d['q3']:.1f})"


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def logistics_rows(summary: dict) -> list[tuple[str, str]]:
    """``(label, value)`` rows of the summary table (CLI and report)."""
    s = summary
    o = s["outcomes"]
    rows = [
        ("patients referred", f"{s['referred']}"),
        ("infused (share of referred)", f"{s['infused']} ({_pct(s['infused_share'])})"),
        ("vein-to-vein, d: median (IQR)", _q(s["vein_to_vein_days"])),
        ("referral to infusion, d: median (IQR)", _q(s["referral_to_infusion_days"])),
        ("drop-outs: progression / death / ineligible",
         f"{o['progression']} / {o['death']} / {o['ineligible']}"),
        ("manufacturing failures (all attempts)", f"{o['manufacturing failure']}"),
        ("still waiting at the end", f"{o['waiting']}"),
        ("ITT: P(infused and responding) from referral", _pct(s["itt_response"])),
        ("response probability if infused (mean)", _pct(s["response_if_infused"])),
    ]
    if s["kind"] == "autologous":
        if "second_attempts" in s:
            by = s.get("failures_by_attempt") or []
            src = "a new apheresis" if s.get("remanufacture_from") == "apheresis" else "retained cells"
            rows += [("manufacturing attempts allowed", f"{s.get('max_attempts')} (later ones from {src})"),
                     ("patients with a second attempt", f"{s['second_attempts']}"),
                     ("failed products by attempt (1 / 2 / …)", " / ".join(str(x) for x in by))]
        rows += [("manufacturing suite utilisation", _pct(s.get("suite_utilisation"))),
                 ("apheresis slot use", _pct(s.get("apheresis_slot_use")))]
    else:
        rows += [("batches ordered / failed release", f"{s.get('batches_ordered')} / {s.get('batches_failed')}"),
                 ("doses expired", f"{s.get('doses_expired')}"),
                 ("patients who waited for stock", f"{s.get('stockout_waits')}")]
    return rows


def _figures(result: Any, title: str, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    pt = result.patients
    horizon = result.programme.horizon_days
    paths: list[Path] = []

    def save(fig: Any, name: str) -> None:
        paths.append(save_png(fig, out / name))

    fig, ax = plt.subplots(figsize=(7, 4))
    auto = result.programme.kind == "autologous"
    x = pt["vein_to_vein"] if auto else pt["referral_to_infusion"]
    x = x[np.isfinite(x)]
    label = "vein-to-vein time (apheresis → infusion), d" if auto else "referral → infusion, d"
    if x.size:
        ax.hist(x, bins=max(5, min(40, x.size // 5)), color="#4477aa", edgecolor="white")
        med = float(np.median(x))
        ax.axvline(med, color="k", ls="--", label=f"median {med:.1f} d")
        ax.legend()
    ax.set_xlabel(label)
    ax.set_ylabel("patients infused")
    ax.set_title(f"{title}: {'vein-to-vein' if auto else 'referral-to-infusion'} time")
    save(fig, "vein_to_vein.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    ref = np.sort(pt["referral"])
    inf = np.sort(pt["infusion"][np.isfinite(pt["infusion"])])
    ax.step(ref, np.arange(1, ref.size + 1), where="post", label="referred")
    ax.step(inf, np.arange(1, inf.size + 1), where="post", label="infused")
    ax.axvline(horizon, color="0.6", ls=":", label="end of referrals")
    ax.set_xlabel("time since the programme opened, d")
    ax.set_ylabel("patients (cumulative)")
    ax.set_title(f"{title}: referred and infused")
    ax.legend()
    save(fig, "cumulative_referred_infused.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    if auto:
        t, v = result.suite_use
        ax.step(t, v, where="post", color="#aa3377")
        ax.axhline(result.programme.suites, color="0.5", ls="--", label=f"capacity {result.programme.suites} suites")
        ax.set_ylabel("suites in use")
        ax.set_title(f"{title}: manufacturing suites in use")
        name = "suite_utilisation.png"
    else:
        t, v = result.stock
        ax.step(t, v, where="post", color="#228833")
        ax.axhline(result.programme.inventory.reorder_point, color="0.5", ls="--", label="reorder point")
        ax.set_ylabel("doses in stock (in date)")
        ax.set_title(f"{title}: inventory")
        name = "inventory.png"
    ax.axvline(horizon, color="0.6", ls=":", label="end of referrals")
    ax.set_xlabel("time since the programme opened, d")
    ax.legend()
    save(fig, name)
    return paths


def save_logistics_run(
    result: Any, scenario: Any, out: str | Path, *, figures: bool = True, overrides: dict | None = None
) -> Path:
    """Write the run folder of ``result`` (a ProgrammeResult) from ``scenario`` (a
    LogisticsScenario) into ``out``; ``manifest.json`` (with the command-line ``overrides``,
    e.g. ``{"months": 6}``) is written last."""
    from .. import __version__

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_patients(result.patients, out / "patients.parquet")
    write_json(out / "summary.json", result.summary)
    figs = _figures(result, scenario.name, out) if figures else []
    manifest = {
        "livingdrug_version": __version__,
        "kind": "logistics",
        "scenario": {"name": scenario.name, "source": scenario.source, "sha256": scenario.sha256,
                     "text": scenario.text},
        "seed": result.seed,
        "overrides": dict(overrides or {}),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if figures:
        rows = "\n".join(f"<tr><td>{html.escape(k)}</td><td class=num>{html.escape(v)}</td></tr>"
                         for k, v in logistics_rows(result.summary))
        prov = {"livingdrug": __version__, "scenario": scenario.name, "scenario hash": scenario.sha256,
                "seed": result.seed, "created": manifest["created"]}
        body = f"""{scenario_html(scenario)}
<h2>Summary</h2>
<table><tr><th>endpoint</th><th>value</th></tr>
{rows}
</table>
<p>Times in days. ITT: intention to treat, counted from referral (docs/logistics.md).</p>
<h2>Figures</h2>
{''.join(figure_html(p) for p in figs)}"""
        page = page_html(scenario.title, body, prov, f"Re-run with <code>livingdrug logistics {html.escape(scenario.source)} "
                                                     f"--seed {result.seed}</code>.")
        atomic_write_text(out / "report.html", page)
    write_json(out / "manifest.json", manifest)
    return out
