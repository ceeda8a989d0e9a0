"""A self-contained HTML report: summary table, figures embedded as PNG, provenance."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write_text

__all__ = ["write_report", "summary_rows", "figure_html", "scenario_html", "page_html", "save_png", "PAGE_STYLE",
           "DISCLAIMER_HTML"]

#: the report's style sheet (shared by the deterministic and the stochastic report)
PAGE_STYLE = """<style>
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } img { max-width: 100%; }
.note { background: #fff6e0; border-left: 4px solid #e0a000; padding: 0.6em 1em; }
</style>"""
#: the research-use disclaimer every report carries
DISCLAIMER_HTML = """<p class="note">Simulated result for research and education only. It is not medical advice and must
not be used to treat a patient.</p>"""

#: the footer every PNG figure carries
FIGURE_FOOTER = "livingdrug — simulated, for research and education only; not medical advice"


def save_png(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure as PNG (110 dpi) atomically, with the research-use footer,
    and close it."""
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_write_with

    fig.text(0.99, 0.01, FIGURE_FOOTER, ha="right", va="bottom", fontsize=7, color="0.5")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


_LABELS = {
    "cmax": ("Cmax", "{unit}"),
    "tmax": ("Tmax", "d after infusion"),
    "auc_0_28": ("AUC 0–28 d", "{unit}·d"),
    "clast": ("Last value", "{unit}"),
    "time_to_remission": ("Time to remission (< 5 % blasts)", "d"),
    "time_to_mrd_negative": ("Time to MRD negativity (< 10⁻⁴)", "d"),
    "relapse_time": ("Relapse (blasts ≥ 5 % again)", "d"),
    "relapse_type": ("Relapse type", ""),
    "bcell_aplasia_start": ("B-cell aplasia from", "d"),
    "bcell_aplasia_duration": ("B-cell aplasia duration", "d"),
    "bcell_aplasia_ongoing": ("B-cell aplasia ongoing at end", ""),
    "min_blasts_pct": ("Lowest marrow blasts", "%"),
    "min_mrd": ("Lowest MRD", "fraction"),
    # lymphoma (Lugano 2014) and myeloma (IMWG 2016) response, clinical/response.py
    "day_28": ("Response at day 28", ""),
    "day_90": ("Response at day 90", ""),
    "best_response": ("Best response", ""),
    "time_to_response": ("Time to first response (PR or better)", "d"),
    "progression_time": ("Progression (PD) first seen", "d"),
    "baseline_spd": ("SPD at infusion", "cm²"),
    "nadir_spd": ("Lowest SPD", "cm²"),
    "spd_change_day_28_pct": ("SPD change at day 28", "%"),
    "spd_change_day_90_pct": ("SPD change at day 90", "%"),
    "baseline_m_protein": ("Serum M-protein at infusion", "g/dL"),
    "nadir_m_protein": ("Lowest serum M-protein", "g/dL"),
    "hypogamma_start": ("Hypogammaglobulinaemia from", "d (IgG < 0.4 g/dL)"),
    "hypogamma_duration": ("Hypogammaglobulinaemia duration", "d"),
    "hypogamma_ongoing": ("Hypogammaglobulinaemia ongoing at end", ""),
}

_SECTIONS = {
    "exposure": "CAR-T cells in blood",
    "exposure_transgene": "CAR transgene in blood",
    "response": "Leukaemia response",
    "response_lugano": "Lymphoma response (Lugano 2014, CT)",
    "response_imwg": "Myeloma response (IMWG 2016)",
}


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


_TOXICITY_LABELS = (
    ("max_grade", "Maximum grade", "0–4"),
    ("onset_day", "Onset (grade ≥ 1)", "d after infusion"),
    ("peak_day", "Maximum grade first reached", "d after infusion"),
    ("duration_days", "Time at grade ≥ 1", "d"),
    ("resolved", "Resolved by the end", ""),
)


def summary_rows(summary: dict) -> list[tuple[str, str, str, str]]:
    """(section, label, value, unit) rows of a run summary, for the report and the terminal;
    the ASTCT CRS and ICANS grades (``summary["toxicity"]``) come first when present."""
    rows = []
    tox = summary.get("toxicity")
    if isinstance(tox, dict):
        for key, name in (("crs", "CRS (ASTCT grade)"), ("icans", "ICANS (ASTCT grade)")):
            block = tox.get(key)
            if isinstance(block, dict):
                for k, label, unit in _TOXICITY_LABELS:
                    if k == "resolved" and block.get("resolved") is None:
                        continue
                    rows.append((name, label, _fmt(block.get(k)), unit))
    for key, section in _SECTIONS.items():
        block = summary.get(key)
        if not isinstance(block, dict):
            continue
        unit = block.get("unit", "")
        for k, v in block.items():
            if k == "unit" or k not in _LABELS:
                continue
            label, u = _LABELS[k]
            rows.append((section, label, _fmt(v), u.format(unit=unit)))
    return rows


def scenario_html(scenario: Any, heading: str = "Scenario") -> str:
    """The scenario's own description (what it models and its sources) under ``heading``, one
    paragraph per blank-line-separated block; empty when it has none."""
    text = str(getattr(scenario, "description", "") or "").strip()
    if not text:
        return ""
    paras = [" ".join(b.split()) for b in text.split("\n\n") if b.strip()]
    return f"<h2>{html.escape(heading)}</h2>" + "".join(f"<p>{html.escape(p)}</p>" for p in paras)


def page_html(title: str, body: str, provenance: dict[str, Any], rerun: str) -> str:
    """A whole report page: head and style, the title, the research-use notice, ``body`` (HTML),
    then the provenance table and the re-run line (``rerun`` is HTML)."""
    t = html.escape(title)
    prov_rows = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in provenance.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>livingdrug — {t}</title>
{PAGE_STYLE}</head><body>
<h1>{t}</h1>
{DISCLAIMER_HTML}
{body}
<h2>Provenance</h2>
<table>{prov_rows}</table>
<p>{rerun}</p>
</body></html>
"""


def figure_html(p: Path) -> str:
    """A PNG embedded as a figure; each figure carries its own title, the file name is the
    alt text and the caption."""
    data = base64.b64encode(Path(p).read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(p.name)}" src="data:image/png;base64,{data}">'
        f"<figcaption><code>{html.escape(p.name)}</code></figcaption></figure>"
    )


def write_report(result: Any, out: Path, figures: list[Path]) -> Path:
    ds = result.dataset
    m = result.manifest
    rows = "\n".join(
        f"<tr><td>{html.escape(s)}</td><td>{html.escape(label)}</td><td class=num>{html.escape(v)}</td><td>{html.escape(u)}</td></tr>"
        for s, label, v, u in summary_rows(result.summary)
    )
    imgs = "\n".join(figure_html(p) for p in figures)
    failed = int(result.summary.get("failed", 0))
    status = "all patients solved" if not failed else f"{failed} patient(s) failed: see summary.json"
    prov = {
        "livingdrug": m.get("livingdrug_version"),
        "scenario": m["scenario"]["name"],
        "scenario hash": m["scenario"]["hash"],
        "seed": m.get("seed"),
        "engine": json.dumps(m.get("engine", {})),
        "created": m.get("created"),
        "model": f"{result.network.name} — {result.network.reference}",
    }
    title = str(getattr(result.scenario, "title", "") or ds.attrs.get("scenario", ""))
    body = f"""<p>Status: {html.escape(status)}.</p>
{scenario_html(result.scenario)}
<h2>Summary</h2>
<table><tr><th>section</th><th>endpoint</th><th>value</th><th>unit</th></tr>
{rows}
</table>
<h2>Figures</h2>
{imgs}"""
    page = page_html(title, body, prov, "Re-run exactly with <code>livingdrug run --from manifest.json</code>.")
    return atomic_write_text(Path(out) / "report.html", page)
