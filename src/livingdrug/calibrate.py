r"""Calibrated virtual populations: a scenario's plausible patients reweighted to a published trial.

A model scenario with a ``[population]`` (broad inter-individual variability: *plausible
patients*) and ``[[targets]]`` (published figures with their sources, read as
:class:`~livingdrug.trials.calibration.Target`) is calibrated in three steps:

1. **Simulate the plausible patients.**  The scenario's population is run as a one-arm trial
   (:func:`livingdrug.trial.trial_design`; chunks of consecutive patients through
   :func:`livingdrug.comparison.plan_arm` / :func:`~livingdrug.comparison.arm_chunk`, batched
   ODE engine, ASTCT grades, the response criteria of the disease), giving the per-patient
   endpoint table (one row per virtual patient; patient *i* is the same whatever the
   chunking).  A table computed elsewhere (e.g. :func:`livingdrug.trial.read_endpoints` of a
   big ``livingdrug trial`` run of the same scenario) can be passed instead.
2. **Weight or select.**  ``method="weights"``: maximum-entropy weights
   :math:`w_i \propto \exp(\lambda^\top(g_i - t))` that reproduce every target exactly and
   are otherwise the closest to equal weights in Kullback–Leibler divergence (Jaynes ET 1957,
   Phys Rev 106:620; Csiszár I 1975, Ann Probab 3:146;
   :func:`~livingdrug.trials.calibration.calibrate_weights`).  ``method="selection"``:
   acceptance–rejection selection of the patients whose ``distribution`` targets' outputs
   follow the published distribution (Allen RJ, Rieger TR, Musante CJ 2016, CPT
   Pharmacometrics Syst Pharmacol 5:140; :func:`~livingdrug.trials.calibration.select_allen2016`);
   a kept patient has weight :math:`1/n_{kept}`.  Patients whose solve failed
   (``status`` ≠ 0) get weight 0 and are counted in ``n_failed``.
3. **Compare.**  The calibration table (:func:`~livingdrug.trials.calibration.calibration_table`)
   gives, per published figure, the published value and 95 % interval (as published, or
   Wilson's from the trial's n), the simulated value of the unweighted plausible patients,
   the calibrated value with its 95 % interval at :math:`n = n_{eff}`, and ``within``.  Kish's
   effective sample size :math:`n_{eff} = (\sum w_i)^2/\sum w_i^2` (Kish L 1965, *Survey
   Sampling*) says what the calibrated cohort is worth.

:func:`calibrated_sample` then draws a calibrated virtual cohort: patient indices resampled
with probabilities :math:`w_i` (multinomial resampling), which a later trial can simulate as
unweighted patients.  :func:`save_calibration` writes ``calibration.json``,
``weights.parquet`` (patient, weight), ``calibration.md`` and ``calibration.png``.

Limitations (docs/calibration.md): weighting cannot create outcomes the model never
produces (a target out of reach is an error naming it), and it calibrates the population,
not the model — the mechanism and its typical parameters stay as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__

__all__ = ["CalibrationResult", "calibrate_population", "simulate_plausible", "save_calibration", "calibrated_sample",
           "calibration_markdown", "METHODS", "CALIBRATION_FORMAT"]

#: calibration methods: maximum-entropy weights or Allen 2016 selection
METHODS = ("weights", "selection")
#: version of the calibration folder layout (calibration.json)
CALIBRATION_FORMAT = 1
#: patients simulated per chunk
_CHUNK = 256


@dataclass(frozen=True)
class CalibrationResult:
    """A calibrated virtual population.

    ``patients``: the per-patient endpoint table of the plausible patients (column → array,
    one row per virtual patient, ``patient`` the index in the population); ``weights[n]``:
    calibrated weight of each row (sum 1; 0 for a failed solve or a patient not selected);
    ``n_effective``: Kish's effective sample size of ``weights``; ``table``: one row per
    published figure (keys of :func:`~livingdrug.trials.calibration.calibration_table` plus
    ``unweighted``, ``unweighted_interval`` and ``unweighted_within``: the same figure in
    the plausible patients with equal weights); ``selection``: the Allen 2016
    :class:`~livingdrug.trials.calibration.Selection` (method ``"selection"``) or ``None``;
    ``n_failed``: patients whose solve failed; ``manifest``: provenance (version, scenario
    hash, seed, patients, method)."""

    scenario: str
    title: str
    method: str
    seed: int
    targets: tuple[Any, ...]
    patients: dict[str, np.ndarray]
    weights: np.ndarray
    n_effective: float
    table: list[dict[str, Any]]
    selection: Any
    n_failed: int
    manifest: dict[str, Any]

    @property
    def n(self) -> int:
        """Plausible patients simulated."""
        return int(self.weights.size)

    @property
    def all_within(self) -> bool:
        """Every calibrated figure lies within its published range."""
        return all(bool(r["within"]) for r in self.table)


# ---------------------------------------------------------------------------------------
# simulating the plausible patients
# ---------------------------------------------------------------------------------------


def _scenario(scenario: Any) -> Any:
    from .scenarios import Scenario, load_scenario

    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def _design(s: Any, patients: int | None, seed: int | None) -> Any:
    from .scenarios import ScenarioError
    from .trial import trial_design
    from .trials.population import Population

    c = trial_design(s)
    if patients is not None:
        if isinstance(patients, bool) or not isinstance(patients, (int, np.integer)) or patients < 1:
            raise ScenarioError(file=str(s.source), field="population.patients", value=patients,
                                expected="a whole number ≥ 1", hint="e.g. patients=500")
        c = dataclasses.replace(c, population=dataclasses.replace(c.population, size=int(patients)))
        Population.__post_init__(c.population)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ScenarioError(file=str(s.source), field="population.seed", value=seed,
                                expected="a whole number ≥ 0", hint="e.g. seed=0")
        c = dataclasses.replace(c, seed=int(seed))
    return c


def simulate_plausible(design: Any, *, chunk: int = _CHUNK) -> dict[str, np.ndarray]:
    """Per-patient endpoint table of every patient of the one-arm ``design`` (see
    :func:`livingdrug.trial.trial_design`), simulated ``chunk`` patients at a time."""
    from .comparison import arm_chunk, plan_arm

    n = int(design.population.size)
    plan = plan_arm(design, 0, n)
    parts = [arm_chunk(design, plan, np.arange(lo, min(lo + chunk, n), dtype=np.int64), with_dataset=False)[0]
             for lo in range(0, n, chunk)]
    keys = list(dict.fromkeys(k for p in parts for k in p))
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in keys}


# ---------------------------------------------------------------------------------------
# calibrating
# ---------------------------------------------------------------------------------------


def _check_table(table: Mapping[str, Any]) -> dict[str, np.ndarray]:
    from .trials.calibration import CalibrationInputError

    if not isinstance(table, Mapping) or "patient" not in table:
        raise CalibrationInputError("endpoints", type(table).__name__,
                                    "a per-patient endpoint table (column → array) with a 'patient' column",
                                    "e.g. livingdrug.trial.read_endpoints(folder)")
    cols = {str(k): np.asarray(v) for k, v in table.items()}
    sizes = {v.shape[0] if v.ndim else 1 for v in cols.values()}
    if len(sizes) != 1:
        raise CalibrationInputError("endpoints", {k: v.shape for k, v in cols.items()},
                                    "columns of equal length (one row per patient)")
    if "arm" in cols and len(set(cols["arm"].tolist())) > 1:
        raise CalibrationInputError("endpoints", sorted(set(cols["arm"].tolist())),
                                    "the endpoints of one arm", "calibrate a model scenario (one arm)")
    return cols


def calibrate_population(scenario: Any, *, patients: int | None = None, seed: int | None = None,
                         method: str = "weights", targets: Sequence[Any] | None = None,
                         endpoints: Mapping[str, Any] | None = None) -> CalibrationResult:
    """Calibrate the virtual population of ``scenario`` (built-in name, path or
    :class:`~livingdrug.scenarios.Scenario` with ``[population]`` and ``[[targets]]``) to its
    published targets (module doc).

    ``patients``/``seed``: override the ``[population]`` size and seed.  ``method``:
    ``"weights"`` (maximum entropy, every target reproduced exactly) or ``"selection"``
    (Allen 2016, from the ``distribution`` targets; the others are only compared).
    ``targets``: use these :class:`~livingdrug.trials.calibration.Target` instead of the
    scenario's.  ``endpoints``: a per-patient table already simulated from this scenario
    (then nothing is simulated; ``patients`` and ``seed`` must not be given).

    Raises :class:`~livingdrug.trials.calibration.CalibrationInputError` naming a target no
    weighting reaches (widen the population's variability), and
    :class:`~livingdrug.scenarios.ScenarioError` for a scenario without population or targets.
    """
    from .rng import as_generator
    from .scenarios import ScenarioError, scenario_hash
    from .trials.calibration import (
        CalibrationInputError,
        Target,
        allen2016_inputs,
        calibrate_weights,
        calibration_table,
        effective_sample_size,
        select_allen2016,
    )

    if method not in METHODS:
        raise CalibrationInputError("method", method, " or ".join(map(repr, METHODS)),
                                    "weights for rates and summary figures; selection for distributions")
    s = _scenario(scenario)
    tg = tuple(s.targets if targets is None else targets)
    if not tg:
        raise ScenarioError(file=str(s.source), field="targets", expected="at least one [[targets]] table",
                            hint="add the published figures to calibrate to (see docs/calibration.md), "
                                 "e.g. the built-in eliana")
    for k, t in enumerate(tg):
        if not isinstance(t, Target):
            raise CalibrationInputError(f"targets[{k}]", t, "a livingdrug.trials.calibration.Target")
    if endpoints is not None:
        if patients is not None or seed is not None:
            raise CalibrationInputError("patients" if patients is not None else "seed",
                                        patients if patients is not None else seed,
                                        "not given together with endpoints (they were simulated already)")
        table = _check_table(endpoints)
        design = None
        run_seed = s.population_seed
    else:
        design = _design(s, patients, seed)
        table = simulate_plausible(design)
        run_seed = int(design.seed)
    n = table["patient"].size
    solved = np.asarray(table.get("status", np.zeros(n)), dtype=float) == 0
    if not solved.any():
        raise CalibrationInputError("endpoints", f"{n} patients", "at least one patient whose solve succeeded",
                                    "check the scenario runs (livingdrug run) and its tolerances")
    sub = {k: v[solved] for k, v in table.items()}
    weights = np.zeros(n)
    selection = None
    if method == "weights":
        weights[solved] = calibrate_weights(sub, tg)
    else:
        outputs, target, rows = allen2016_inputs(sub, tg)
        selection = select_allen2016(outputs, target, rng=as_generator(run_seed))
        w_sub = np.zeros(int(solved.sum()))
        np.add.at(w_sub, rows[selection.indices], 1.0)
        weights[solved] = w_sub / w_sub.sum()
    uniform = solved / solved.sum()
    rows_u = calibration_table(table, tg, weights=uniform)
    rows_c = calibration_table(table, tg, weights=weights)
    out = []
    for u, c in zip(rows_u, rows_c, strict=True):
        out.append({**c, "unweighted": u["simulated"], "unweighted_interval": u["simulated_interval"],
                    "unweighted_within": u["within"]})
    manifest = {
        "livingdrug_version": __version__,
        "format": CALIBRATION_FORMAT,
        "scenario": {"name": s.name, "title": s.title, "hash": scenario_hash(s), "source": str(s.source)},
        "patients": int(n),
        "seed": int(run_seed),
        "method": method,
        "simulated": endpoints is None,
        "endpoints_hash": _table_hash(table),
    }
    return CalibrationResult(
        scenario=s.name, title=s.title, method=method, seed=int(run_seed), targets=tg, patients=table,
        weights=weights, n_effective=effective_sample_size(weights), table=out, selection=selection,
        n_failed=int((~solved).sum()), manifest=manifest)


def _table_hash(table: Mapping[str, np.ndarray]) -> str:
    """sha256 of the endpoint columns (names, dtypes and bytes; text columns as UTF-8)."""
    h = hashlib.sha256()
    for k in sorted(table):
        v = np.asarray(table[k])
        h.update(k.encode())
        if v.dtype == object:
            h.update("\x1f".join(map(str, v.tolist())).encode())
        else:
            h.update(str(v.dtype).encode())
            h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


def calibrated_sample(result: CalibrationResult, n: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """``n`` patient indices (the ``patient`` column) drawn with replacement with probability
    equal to their calibrated weight (multinomial resampling): a calibrated virtual cohort of
    unweighted patients.  Its rates converge to the targets as ``n`` grows (each is a mean of
    ``n`` independent draws from the weighted cohort)."""
    from .rng import as_generator
    from .trials.calibration import CalibrationInputError

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise CalibrationInputError("n", n, "a whole number of virtual patients ≥ 1", "e.g. 1000")
    rng = as_generator(seed)
    w = np.asarray(result.weights, dtype=float)
    rows = rng.choice(w.size, size=int(n), replace=True, p=w / w.sum())
    return np.asarray(result.patients["patient"], dtype=np.int64)[rows]


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------


def _fmt(x: Any, unit: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if unit == "1":
        return f"{100 * float(x):.1f} %"
    return f"{float(x):.4g} {unit}"


def _interval(iv: Any, unit: str) -> str:
    if iv is None:
        return "–"
    lo, hi = iv
    if unit == "1":
        return f"{100 * lo:.1f}–{100 * hi:.1f} %"
    return f"{lo:.4g}–{hi:.4g} {unit}"


def calibration_cells(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """Text of one calibration-table row in its unit: (published with interval, plausible
    unweighted, calibrated with interval); a distribution target's published value is N(mean, sd²)."""
    u = row["unit"]
    pub = row["published"]
    pub_txt = (f"N({pub[0]:.4g}, {pub[1]:.4g}²) {u}" if isinstance(pub, (tuple, list)) else
               f"{_fmt(pub, u)} ({_interval(row['published_interval'], u)})")
    return (pub_txt, _fmt(row.get("unweighted"), u),
            f"{_fmt(row['simulated'], u)} ({_interval(row['simulated_interval'], u)})")


def calibration_markdown(result: CalibrationResult) -> str:
    """The calibration table as Markdown (published, unweighted, calibrated, within)."""
    lines = [f"# Calibration of {result.title} ({result.scenario})", "",
             f"{result.n} plausible virtual patients (seed {result.seed}, {result.n_failed} failed solves), "
             f"method `{result.method}`, effective sample size {result.n_effective:.1f} "
             f"({100 * result.n_effective / max(result.n, 1):.0f} % of n).", "",
             "| target | published (95 % CI) | plausible, unweighted | calibrated (95 % CI, n = n_eff) | within | source |",
             "|---|---|---|---|---|---|"]
    for r in result.table:
        pub_txt, unweighted, calibrated = calibration_cells(r)
        lines.append(f"| {r['target']} | {pub_txt} | {unweighted} | {calibrated} | "
                     f"{'yes' if r['within'] else 'NO'} | {r['source']} |")
    lines += ["", "Research use only: simulated patients, not a prediction for a real patient."]
    return "\n".join(lines) + "\n"


def _figure(result: CalibrationResult, path: Path) -> Path:
    """Forest plot: published interval, unweighted and calibrated value of each proportion or
    mean target (distribution targets are listed in the Markdown table only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io.atomic import atomic_write_with

    rows = [r for r in result.table if not isinstance(r["published"], tuple)]
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * max(len(rows), 1) + 1.4))
    for y, r in enumerate(reversed(rows)):
        scale = 100.0 if r["unit"] == "1" else 1.0
        if r["published_interval"] is not None:
            lo, hi = r["published_interval"]
            ax.plot([lo * scale, hi * scale], [y, y], color="0.6", lw=6, solid_capstyle="butt",
                    label="published 95 % CI" if y == 0 else None)
        ax.plot([r["published"] * scale], [y], "|", color="k", ms=14, label="published" if y == 0 else None)
        ax.plot([r["unweighted"] * scale], [y + 0.15], "o", mfc="none", color="tab:red",
                label="plausible (unweighted)" if y == 0 else None)
        if r["simulated_interval"] is not None:
            lo, hi = r["simulated_interval"]
            ax.plot([lo * scale, hi * scale], [y - 0.15, y - 0.15], color="tab:blue", lw=1.5)
        ax.plot([r["simulated"] * scale], [y - 0.15], "o", color="tab:blue",
                label="calibrated (95 % CI, n = n_eff)" if y == 0 else None)
    ax.set_yticks(range(len(rows)), [f"{r['target']} ({'%' if r['unit'] == '1' else r['unit']})"
                                     for r in reversed(rows)])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_title(f"{result.scenario}: {result.n} plausible patients, n_eff = {result.n_effective:.0f} "
                 f"({result.method})", fontsize=10)
    ax.set_xlabel("value (unit on each row)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08 - 0.4 / max(len(rows), 1)), ncol=2, fontsize=8,
              frameon=False)
    fig.tight_layout()
    try:
        return atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)


def save_calibration(result: CalibrationResult, folder: str | Path, *, figures: bool = True) -> Path:
    """Write ``calibration.json`` (manifest, n_eff, targets, table), ``weights.parquet``
    (``patient``, ``weight``), ``calibration.md`` and (``figures``) ``calibration.png`` into
    ``folder`` (created); every file atomically.  Returns the folder."""
    from .io.atomic import atomic_write_text, ensure_writable_dir
    from .io.results import write_columns, write_json
    from .scenarios.load import _target_json

    out = ensure_writable_dir(Path(folder))
    write_columns({"patient": np.asarray(result.patients["patient"], dtype=np.int64),
                   "weight": np.asarray(result.weights, dtype=float)},
                  out / "weights.parquet", {"patient": "1", "weight": "1"})
    atomic_write_text(out / "calibration.md", calibration_markdown(result))
    if figures:
        _figure(result, out / "calibration.png")
    write_json(out / "calibration.json", {
        **result.manifest,
        "n_effective": result.n_effective,
        "n_failed": result.n_failed,
        "all_within": result.all_within,
        "selection": None if result.selection is None else {
            "kept": int(result.selection.indices.size), "relative_scaling": result.selection.relative_scaling,
            "gof": result.selection.gof},
        "targets": [_target_json(t) for t in result.targets],
        "table": result.table,
        "note": "research use only: simulated patients, not a prediction for a real patient",
    })
    return out
