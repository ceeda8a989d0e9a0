"""The public front door: load a scenario, simulate it, summarise and save the result.

The CLI, a notebook and (later) the web page call these same functions::

    import livingdrug as ld
    s = ld.load_scenario("cd19-ball")
    r = ld.simulate(s, days=180)
    r.summary["exposure"]["cmax"], r.dataset["cart_blood"]
    ld.save_run(r, "runs/cd19")

    e = ld.simulate(s, engine="hybrid", replicates=1000)   # EnsembleResult
    e.summary["probabilities"]["cure"]                      # estimate with its Wilson 95 % CI
    w = ld.sweep(s, "dose=1e6:1e9:log:7", engine="hybrid")  # SweepResult: P(cure) vs dose

Data flow (DESIGN.md): Scenario → (build) Network → (solve) trajectories → (score) endpoints
→ (render) files.  Each step returns new immutable values.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from . import __version__
from .clinical.endpoints import ball_response, exposure
from .clinical.grading import CRS_SIGNS, ICANS_SIGNS, grade_signs, toxicity_summary
from .engines.common import STATUS_OK
from .io.atomic import sha256_file
from .network import Network, compile_network

__all__ = ["SimulationResult", "simulate", "sweep", "with_overrides", "save_run", "load_manifest", "rerun_manifest", "summarise", "with_grades", "grades_of", "sign_observables"]


@dataclass(frozen=True)
class SimulationResult:
    """One run: the scenario it came from, the model, trajectories, endpoints, provenance.

    ``dataset`` has dimensions ``(patient, time)``; one variable per species and observable
    (``attrs["units"]`` gives the unit), plus ``status``/``message`` per patient.
    ``summary`` holds the endpoints (first patient; ``per_patient`` for all);
    ``manifest`` is everything needed to re-run it exactly.
    """

    scenario: Any
    network: Network
    dataset: xr.Dataset
    summary: dict
    manifest: dict
    stats: dict = field(default_factory=dict)


def with_overrides(
    scenario: Any,
    days: float | None = None,
    seed: int | None = None,
    engine: str | None = None,
    replicates: int | None = None,
) -> Any:
    """The scenario (object, built-in name or path) with the given overrides written into it,
    so its manifest, hash and ``--from`` re-run see them; ``None`` leaves a field alone."""
    from .scenarios import load_scenario, with_days, with_engine, with_replicates, with_seed

    s = scenario if not isinstance(scenario, (str, Path)) else load_scenario(scenario)
    if days is not None:
        s = with_days(s, float(days))
    if seed is not None:
        s = with_seed(s, int(seed))
    if engine is not None and engine != s.simulation.engine:
        s = with_engine(s, engine)
    if replicates is not None and replicates != s.simulation.replicates:
        s = with_replicates(s, replicates)
    return s


def simulate(
    scenario: Any,
    *,
    days: float | None = None,
    seed: int | None = None,
    engine: str | None = None,
    replicates: int | None = None,
    chunk_size: int | None = None,
    on_chunk: Any = None,
    max_exact_firings: float | None = None,
) -> Any:
    """Simulate a scenario (a :class:`~livingdrug.scenarios.Scenario`, a built-in name or a
    TOML path) and score its endpoints.

    The engine is ``engine`` or the scenario's ``simulation.engine``.  ``"ode"`` returns a
    :class:`SimulationResult` (deterministic, one patient); ``"ssa"``, ``"tau"`` and
    ``"hybrid"`` return an :class:`~livingdrug.ensemble.EnsembleResult` of ``replicates``
    random replicates (default: the scenario's, else 1000) simulated in chunks of
    ``chunk_size``; ``on_chunk(ChunkReport)`` is called after each chunk and
    ``max_exact_firings`` overrides the guard against hopeless exact runs (see
    :mod:`livingdrug.ensemble`).  Overrides are written into the scenario, so the manifest
    re-runs exactly what ran.
    """
    from .scenarios import STOCHASTIC_ENGINES, resolve

    s = with_overrides(scenario, days, seed, engine, replicates)
    if s.simulation.engine in STOCHASTIC_ENGINES:
        from .ensemble import run_ensemble

        return run_ensemble(s, chunk_size=chunk_size, on_chunk=on_chunk, max_exact_firings=max_exact_firings)
    return _simulate_ode(s, resolve(s))


def sweep(
    scenario: Any,
    spec: Any,
    *,
    days: float | None = None,
    seed: int | None = None,
    engine: str | None = None,
    replicates: int | None = None,
    chunk_size: int | None = None,
    on_chunk: Any = None,
    max_exact_firings: float | None = None,
) -> Any:
    """Run a stochastic ensemble at each value of one parameter or initial amount and return
    a :class:`~livingdrug.ensemble.SweepResult` (P(cure) and the other probabilities with
    their CIs against the value).  ``spec`` is ``"NAME=LO:HI:log|lin:N"`` (e.g.
    ``"dose=1e6:1e9:log:7"``; canonical units) or a :class:`~livingdrug.ensemble.SweepSpec`.
    Every value uses the same seed (common random numbers)."""
    from .ensemble import run_sweep

    s = with_overrides(scenario, days, seed, engine, replicates)
    return run_sweep(s, spec, chunk_size=chunk_size, on_chunk=on_chunk, max_exact_firings=max_exact_firings)


def _simulate_ode(s: Any, rs: Any) -> SimulationResult:
    """The deterministic path (unchanged: one patient, the ODE engine)."""
    from .engines.ode import solve

    net: Network = rs.network
    compiled = compile_network(net)
    P = np.atleast_2d(np.asarray(rs.P, dtype=float))
    y0 = np.atleast_2d(np.asarray(rs.y0, dtype=float))
    t_eval = np.asarray(rs.t_out, dtype=float)
    sol = solve(compiled, y0, P, t_eval, t0=float(rs.t_start), rtol=rs.rtol, atol=rs.atol)
    obs = compiled.observables_batch(sol.t, np.nan_to_num(sol.y, nan=0.0), P)
    obs[~np.isfinite(sol.y).all(axis=2)] = np.nan
    ds = with_grades(_dataset(net, sol.t, sol.y, obs, sol.status, sol.message), net)
    settings = dict(sol.settings)
    settings.update(engine="ode")
    manifest = _manifest(s, rs, settings)
    ds.attrs.update(
        scenario=str(getattr(s, "name", "")),
        scenario_hash=manifest["scenario"]["hash"],
        seed=int(rs.seed),
        livingdrug_version=__version__,
        model=net.name,
        model_reference=net.reference,
        engine_settings=json.dumps(settings),
    )
    # models without a dose (e.g. Stein 2019, parameterised by Cmax) count time from day 0
    t_dose = 0.0 if rs.dose_time is None else float(rs.dose_time)
    summary = summarise(ds, net, t_dose=t_dose)
    return SimulationResult(s, net, ds, summary, manifest, dict(sol.stats))


def _dataset(net: Network, t: np.ndarray, y: np.ndarray, obs: np.ndarray, status, message) -> xr.Dataset:
    n = y.shape[0]
    coords = {"patient": np.arange(n), "time": ("time", t, {"units": "d", "long_name": "time since infusion"})}
    data: dict[str, Any] = {}
    for k, s in enumerate(net.species):
        data[s.name] = (("patient", "time"), y[:, :, k], {"units": s.unit, "long_name": s.description, "kind": "species"})
    for j, o in enumerate(net.observables):
        data[o.name] = (("patient", "time"), obs[:, :, j], {"units": o.unit, "long_name": o.description, "kind": "observable", "role": o.role})
    data["status"] = (("patient",), np.asarray(status, dtype=np.int64))
    data["message"] = (("patient",), np.asarray(message, dtype=object))
    return xr.Dataset(data, coords=coords)


#: the grade time series added to a result dataset (:func:`with_grades`)
GRADE_VARIABLES = {
    "crs_grade": ("CRS grade (ASTCT, Lee 2019)", CRS_SIGNS),
    "icans_grade": ("ICANS grade (ASTCT, Lee 2019)", ICANS_SIGNS),
}


def sign_observables(net: Network) -> dict[str, str]:
    """``{role: observable name}`` of the clinical-sign observables the network exposes (the
    contract roles of :mod:`livingdrug.clinical.grading`, plus ``vasopressin``)."""
    out = {}
    for r in (*CRS_SIGNS, *ICANS_SIGNS, "vasopressin"):
        o = net.observable_by_role(r)
        if o is not None:
            out[r] = o.name
    return out


def grades_of(ds: xr.Dataset, net: Network) -> dict[str, np.ndarray]:
    """``crs_grade`` and/or ``icans_grade`` arrays ``[patient, time]`` of a result dataset:
    its grade variables if it has them, else graded from the network's clinical-sign
    observables (:func:`livingdrug.clinical.grading.grade_signs`); a grade is present only
    when the network exposes at least one sign of its syndrome; ``{}`` for a model without
    toxicity."""
    if any(k in ds for k in GRADE_VARIABLES):
        return {k: np.asarray(ds[k].values) for k in GRADE_VARIABLES if k in ds}
    names = sign_observables(net)
    if not names:
        return {}
    g = grade_signs({r: ds[n].values for r, n in names.items() if n in ds})
    return {k: g[k] for k, (_, roles) in GRADE_VARIABLES.items() if any(r in names for r in roles)}


def with_grades(ds: xr.Dataset, net: Network) -> xr.Dataset:
    """``ds`` with ``crs_grade``/``icans_grade`` (patient, time; unit 1, ``kind = "grade"``)
    added when the network exposes clinical-sign observables (unchanged otherwise)."""
    grades = grades_of(ds, net)
    new = {
        k: (("patient", "time"), np.asarray(v, dtype=float), {"units": "1", "long_name": GRADE_VARIABLES[k][0], "kind": "grade"})
        for k, v in grades.items()
        if k not in ds
    }
    return ds.assign(new) if new else ds


def summarise(ds: xr.Dataset, net: Network, *, t_dose: float = 0.0) -> dict:
    """Endpoints of every patient (see :mod:`livingdrug.clinical.endpoints`); with
    clinical-sign observables also ``toxicity`` — the ASTCT CRS and ICANS grade courses
    (:func:`livingdrug.clinical.grading.toxicity_summary`; days after ``t_dose``)."""
    t = ds["time"].values
    per: list[dict] = []
    grades = grades_of(ds, net)

    def role(r: str) -> str | None:
        o = net.observable_by_role(r)
        return o.name if o is not None else None

    for i in range(ds.sizes["patient"]):
        d: dict[str, Any] = {"patient": i, "status": int(ds["status"].values[i]), "message": str(ds["message"].values[i])}
        for key, r in (("exposure", "cart_blood"), ("exposure_transgene", "transgene")):
            name = role(r)
            if name:
                d[key] = exposure(t, ds[name].values[i], t_dose=t_dose, unit=ds[name].attrs["units"]).as_dict()
        if role("blasts_pct") and role("mrd"):
            neg = masked = None
            tot, an, mk = role("tumour_total"), role("tumour_antigen_neg"), role("tumour_car_masked")
            if tot:
                total = ds[tot].values[i]
                with np.errstate(invalid="ignore", divide="ignore"):
                    if an:
                        neg = np.where(total > 0, ds[an].values[i] / total, 0.0)
                    if mk:
                        masked = np.where(total > 0, ds[mk].values[i] / total, 0.0)
            b = role("bcells_blood")
            d["response"] = ball_response(
                t,
                blasts_pct=ds[role("blasts_pct")].values[i],
                mrd=ds[role("mrd")].values[i],
                antigen_neg_fraction=neg,
                masked_fraction=masked,
                bcells=ds[b].values[i] if b else None,
                t_dose=t_dose,
            ).as_dict()
        d.update(disease_responses(ds, net, i, t_dose=t_dose))
        if grades:
            d["toxicity"] = toxicity_summary(t, {k: v[i] for k, v in grades.items()}, t_dose=t_dose)
        per.append(d)
    out = dict(per[0]) if per else {}
    out["patients"] = len(per)
    out["failed"] = int(sum(p["status"] != STATUS_OK for p in per))
    if len(per) > 1:
        out["per_patient"] = per
    return out


def disease_responses(ds: xr.Dataset, net: Network, i: int, *, t_dose: float = 0.0) -> dict:
    """Lymphoma and myeloma response of patient ``i`` by observable roles
    (:mod:`livingdrug.clinical.response`):

    * role ``tumour_spd`` (cm²) → ``"response_lugano"``: Lugano 2014 category at days 28 and
      90, best response, SPD at baseline/nadir; with role ``bcells_blood`` also B-cell aplasia
      (< 20 cells/µL, as for B-ALL);
    * role ``m_protein`` (g/dL), with ``marrow_plasma_pct`` and ``myeloma_mrd`` if present →
      ``"response_imwg"``: IMWG 2016 category at days 28 and 90, best response, M-protein at
      baseline/nadir; with role ``normal_igg`` also hypogammaglobulinaemia (IgG < 0.4 g/dL).
    """
    from .clinical.endpoints import BCELL_APLASIA_THRESHOLD
    from .clinical.response import (
        HYPOGAMMA_G_DL,
        depletion_episode,
        episode_dict,
        imwg_response,
        lugano_response,
    )

    t = ds["time"].values

    def values(role: str) -> np.ndarray | None:
        o = net.observable_by_role(role)
        return ds[o.name].values[i] if o is not None else None

    out: dict[str, Any] = {}
    spd = values("tumour_spd")
    if spd is not None:
        block = lugano_response(t, spd, t_dose=t_dose).as_dict()
        b = values("bcells_blood")
        if b is not None:
            block.update(episode_dict("bcell_aplasia", depletion_episode(t, b, BCELL_APLASIA_THRESHOLD, t_dose=t_dose)))
        out["response_lugano"] = block
    mp = values("m_protein")
    if mp is not None:
        block = imwg_response(t, mp, marrow_plasma_pct=values("marrow_plasma_pct"),
                              myeloma_mrd=values("myeloma_mrd"), t_dose=t_dose).as_dict()
        g = values("normal_igg")
        if g is not None:
            block.update(episode_dict("hypogamma", depletion_episode(t, g, HYPOGAMMA_G_DL, t_dose=t_dose)))
        out["response_imwg"] = block
    return out


def _manifest(s: Any, rs: Any, settings: dict) -> dict:
    import numba
    import scipy

    from .scenarios import dump_scenario, scenario_hash

    return {
        "livingdrug_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "scenario": {
            "name": str(getattr(s, "name", "")),
            "hash": scenario_hash(s),
            "source": str(getattr(s, "source", "") or ""),
            "toml": dump_scenario(s),
        },
        "seed": int(rs.seed),
        "engine": settings,
        "time": {"start": float(rs.t_start), "end": float(rs.t_end), "points": int(len(rs.t_out))},
        "platform": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "numba": numba.__version__,
            "machine": platform.machine(),
        },
    }


def load_manifest(path: str | Path, *, models: Any = None) -> tuple[Any, dict]:
    """``(scenario, manifest)`` of a run's ``manifest.json``: the embedded scenario, checked
    against the recorded hash.  Every problem raises :class:`~livingdrug.scenarios.ScenarioError`."""
    from .scenarios import ScenarioError, scenario_from_toml, scenario_hash

    path = Path(path)
    try:
        m = json.loads(path.read_text())
        if isinstance(m, dict) and m.get("kind") in ("comparison", "trial", "logistics"):
            cmd = {"comparison": "compare", "trial": "trial", "logistics": "logistics"}[m["kind"]]
            raise ScenarioError(file=str(path), field="kind", value=m["kind"],
                                expected="the manifest.json of a 'livingdrug run'",
                                hint=f"this is a {m['kind']} run; re-run it with 'livingdrug {cmd}' and the "
                                     "name, --patients and --seed shown in its report")
        toml_text = m["scenario"]["toml"]
        int(m["seed"])  # present and a whole number
    except FileNotFoundError:
        raise ScenarioError(
            file=str(path), expected="the manifest.json of a finished run", hint="file not found"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScenarioError(
            file=str(path),
            expected="a manifest.json written by 'livingdrug run'",
            hint=f"could not read it ({type(exc).__name__}: {exc})",
        ) from None
    s = scenario_from_toml(toml_text, source=str(path), models=models)
    if scenario_hash(s) != m["scenario"].get("hash"):
        raise ScenarioError(
            file=str(path),
            field="scenario.hash",
            value=m["scenario"].get("hash"),
            expected="the hash of the embedded scenario",
            hint="the manifest was edited or written by an incompatible livingdrug version; "
            "re-run from the scenario file instead",
        )
    return s, m


def rerun_manifest(path: str | Path, *, models: Any = None, on_chunk: Any = None) -> Any:
    """Re-run exactly the run described by ``manifest.json`` (scenario text, seed, engine,
    replicates and, for a sweep, the swept values); stochastic runs are bitwise identical.
    ``models`` replaces the model library for a user model."""
    from .scenarios import ScenarioError

    s, m = load_manifest(path, models=models)
    seed = int(m["seed"])
    chunk = (m.get("engine") or {}).get("chunk_size") if isinstance(m.get("engine"), dict) else None
    if m.get("sweep"):
        from .ensemble import parse_sweep

        try:
            spec = parse_sweep(str(m["sweep"]["text"]))
        except (KeyError, TypeError):
            raise ScenarioError(
                file=str(path), field="sweep", expected="the sweep of a run written by 'livingdrug run'",
                hint="the manifest was edited; re-run from the scenario file instead",
            ) from None
        return sweep(s, spec, seed=seed, chunk_size=chunk, on_chunk=on_chunk)
    if s.simulation.stochastic:
        return simulate(s, seed=seed, chunk_size=chunk, on_chunk=on_chunk)
    return simulate(s, seed=seed)




def save_run(result: Any, out: str | Path, *, figures: bool = True) -> Path:
    """Write the run folder: trajectories.parquet, summary.json, figures, report.html and,
    last, manifest.json (its presence marks a complete run).  Every file is atomic.

    A stochastic :class:`~livingdrug.ensemble.EnsembleResult` or
    :class:`~livingdrug.ensemble.SweepResult` gets its own files (replicates.parquet,
    bands.parquet, Kaplan–Meier and fan-chart figures, sweep.parquet …; see
    :func:`livingdrug.io.ensemble.save_ensemble_run`)."""
    from .io import ensure_writable_dir, write_json, write_trajectories

    if not isinstance(result, SimulationResult):
        from .io.ensemble import save_ensemble_run

        return save_ensemble_run(result, Path(out), figures=figures)

    out = ensure_writable_dir(Path(out))
    stale = out / "manifest.json"
    if stale.exists():
        stale.unlink()  # the folder is being rewritten: it is incomplete until the new manifest lands
    files: list[Path] = [write_trajectories(result.dataset, out / "trajectories.parquet", manifest=result.manifest)]
    files.append(write_json(out / "summary.json", result.summary))
    if figures:
        from .report import write_figures, write_report

        figs = write_figures(result, out)
        files += figs
        files.append(write_report(result, out, figs))
    manifest = dict(result.manifest)
    manifest["outputs"] = {p.name: sha256_file(p) for p in files}
    write_json(out / "manifest.json", manifest)
    return out
