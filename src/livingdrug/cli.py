"""The ``livingdrug`` command: a thin view over the public API.

Exit codes: 0 success; 2 bad input (scenario, unit, value, output folder, --sweep) with a
one-line message and no traceback; 130 interrupted (finished files are kept, nothing partial
is left; a stochastic run keeps the endpoints of every finished chunk and writes a partial
summary); 1 an internal error (set ``LIVINGDRUG_DEBUG=1`` for the traceback) or a run in
which some patients/replicates failed (its files are written).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

app = typer.Typer(
    name="livingdrug",
    help="Simulate CAR-T cell therapy in virtual patients (research and education use only).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _console(stderr: bool = False):  # noqa: ANN202
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    from rich.markup import escape

    _console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", markup=True)
    raise typer.Exit(code)


def _guard(fn):  # noqa: ANN001, ANN202
    """Map known errors to messages and exit codes; never show a traceback for bad input."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        from .io.atomic import OutputError
        from .io.monitoring import MonitoringError
        from .scenarios import ScenarioError
        from .units import UnitError

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except (ScenarioError, UnitError) as exc:
            _fail(str(exc))
        except (OutputError, MonitoringError) as exc:
            _fail(str(exc))
        except ValueError as exc:
            # input errors of the science layers (populations, designs, calibration, logistics)
            from .logistics import LogisticsInputError
            from .trials import CalibrationInputError, DesignInputError, PopulationInputError

            if isinstance(exc, (PopulationInputError, DesignInputError, CalibrationInputError, LogisticsInputError)):
                _fail(str(exc))
            raise
        except KeyboardInterrupt:
            _console(stderr=True).print(
                "interrupted: files already written are complete; a run folder without "
                "manifest.json is unfinished"
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if os.environ.get("LIVINGDRUG_DEBUG"):
                raise
            _fail(
                f"internal error: {type(exc).__name__}: {exc} (please report it; set LIVINGDRUG_DEBUG=1 to see the traceback)",
                code=1,
            )

    return wrapper


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"livingdrug {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
@_guard
def run(
    scenario: Annotated[
        str | None, typer.Argument(help="Built-in scenario name or path to a .toml file (default: cd19-ball).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: runs/<scenario>-<time>).")] = None,
    days: Annotated[float | None, typer.Option("--days", help="Simulate this many days after infusion.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed stored with the run.")] = None,
    from_manifest: Annotated[
        Path | None, typer.Option("--from", help="Re-run exactly from a run's manifest.json.")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="ode (deterministic), ssa (exact stochastic), tau (tau-leaping) or hybrid; default: the scenario's."),
    ] = None,
    replicates: Annotated[
        int | None, typer.Option("--replicates", "-R", help="Stochastic replicates (default: the scenario's, else 1000).")
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", help="Sweep one parameter or initial amount: NAME=LO:HI:log|lin:N, e.g. dose=1e6:1e9:log:7."),
    ] = None,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Replicates per chunk (results do not depend on it).")
    ] = None,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Write PNG figures and report.html.")] = True,
) -> None:
    """Simulate a scenario and write trajectories, summary, figures and report.

    With a stochastic engine (--engine ssa|tau|hybrid) it simulates --replicates random
    replicates and reports probabilities (cure, remission, MRD negativity, relapse) with 95 %
    confidence intervals and relapse-free survival (Kaplan–Meier); --sweep repeats that at each
    value of one parameter.
    """
    from . import api
    from .io.atomic import ensure_writable_dir
    from .scenarios import ENGINES, STOCHASTIC_ENGINES, default_scenario_name, load_scenario

    t0 = time.perf_counter()
    spec = None
    if from_manifest is not None:
        if any(x is not None for x in (scenario, days, seed, engine, replicates, sweep)):
            _fail(
                "--from re-runs a manifest exactly; do not combine it with a scenario, --days, --seed, "
                "--engine, --replicates or --sweep"
            )
        s, m = api.load_manifest(from_manifest)
        name = s.name
        if m.get("sweep"):
            spec = str(m["sweep"].get("text", ""))
    else:
        if days is not None and not (0 < days <= 36500):
            _fail(f"--days {days}: expected a number of days in (0, 36500]")
        if engine is not None and engine not in ENGINES:
            _fail(f"--engine {engine}: expected one of {', '.join(ENGINES)}")
        if seed is not None and seed < 0:
            _fail(f"--seed {seed}: expected a non-negative integer")
        if replicates is not None and not (1 <= replicates <= 10_000_000):
            _fail(f"--replicates {replicates}: expected a whole number from 1 to 10,000,000")
        if chunk_size is not None and chunk_size < 1:
            _fail(f"--chunk-size {chunk_size}: expected a positive whole number (e.g. 128)")
        if sweep is not None:
            from .ensemble import parse_sweep

            parse_sweep(sweep)  # a bad --sweep fails here, before any work
            spec = sweep
        if scenario is not None:
            from .scenarios.comparison import is_comparison

            if is_comparison(scenario):
                if any(x is not None for x in (days, engine, replicates, sweep, chunk_size)):
                    _fail(f"{scenario} is a comparison of treatments; it takes --out, --seed and --no-figures "
                          f"here (and --patients with 'livingdrug compare {scenario}')")
                _compare(scenario, out, None, seed, figures)
                return
        s = load_scenario(scenario or default_scenario_name())
        effective = engine or s.simulation.engine
        if effective not in STOCHASTIC_ENGINES and (replicates is not None or sweep is not None):
            flag = "--replicates" if replicates is not None else "--sweep"
            _fail(
                f"{flag} needs a stochastic engine, but the engine is {effective!r}; "
                "add --engine hybrid (or tau, or ssa for small populations)"
            )
        s = api.with_overrides(s, days, seed, engine, replicates)
        name = s.name
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{name}-{stamp}"
    ensure_writable_dir(out)  # fail before the work, not after it
    if s.simulation.stochastic:
        _run_stochastic(s, out, spec, chunk_size, figures, from_manifest, t0)
        return
    if from_manifest is not None:
        result = api.rerun_manifest(from_manifest)
    else:
        result = api.simulate(s)
    folder = api.save_run(result, out, figures=figures)
    _print_summary(result, folder, time.perf_counter() - t0)
    if result.summary.get("failed"):
        raise typer.Exit(1)


def _print_summary(result, folder: Path, seconds: float) -> None:  # noqa: ANN001
    from rich.table import Table

    from .report.html import summary_rows

    con = _console()
    title = getattr(result.scenario, "title", "") or result.manifest["scenario"]["name"]
    table = Table(title=f"{title}", title_justify="left")
    for col, justify in (("endpoint", "left"), ("value", "right"), ("unit", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    section = None
    for sec, label, value, unit in summary_rows(result.summary):
        if sec != section:
            if section is not None:
                table.add_section()
            table.add_row(f"[bold]{sec}[/]", "", "")
            section = sec
        table.add_row(f"  {label}", value, unit)
    con.print(table)
    failed = result.summary.get("failed", 0)
    if failed:
        con.print(f"[red]{failed} patient(s) failed:[/] {result.summary.get('message')}")
    main_files = ("report.html", "trajectories.parquet", "summary.json", "manifest.json")
    written = ", ".join(n for n in main_files if (folder / n).exists())
    con.print(f"wrote {folder}/ ({written}) in {seconds:.1f} s")
    con.print("[dim]Research and education use only; not medical advice.[/]")


def _run_stochastic(s, out: Path, spec, chunk_size, figures: bool, from_manifest, t0: float) -> None:  # noqa: ANN001
    """Ensemble or sweep with a progress bar; each finished chunk's endpoints go to
    ``out/parts/`` at once, and an interrupt writes a partial summary.json (exit 130)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from . import api
    from .ensemble import ChunkReport, partial_summary
    from .io import ensemble as ens_io
    from .io import write_json

    chunks: list[ChunkReport] = []
    reps = s.simulation.n_replicates
    n_values = int(spec.rsplit(":", 1)[1]) if spec else 1
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        transient=True,
    )
    what = f"{s.simulation.engine}: {reps} replicates" + (f" × {n_values} values" if spec else "")
    task = progress.add_task(what, total=reps * n_values)

    def on_chunk(c: ChunkReport) -> None:
        ens_io.write_part(out, c, c.units)
        chunks.append(c)
        progress.update(task, completed=c.done, total=c.total)

    try:
        with progress:
            if from_manifest is not None:
                result = api.rerun_manifest(from_manifest, on_chunk=on_chunk)
            elif spec:
                result = api.sweep(s, spec, chunk_size=chunk_size, on_chunk=on_chunk)
            else:
                result = api.simulate(s, chunk_size=chunk_size, on_chunk=on_chunk)
    except KeyboardInterrupt:
        summary = partial_summary(s, chunks, sweep=spec)
        write_json(out / "summary.json", summary)
        _console(stderr=True).print(
            f"interrupted after {summary['replicates']} replicate(s): their endpoints are in "
            f"{out / ens_io.PARTS}/ and the partial summary in {out / 'summary.json'}"
        )
        raise
    folder = api.save_run(result, out, figures=figures)
    _print_ensemble(result, folder, time.perf_counter() - t0)
    if result.summary.get("failed"):
        raise typer.Exit(1)


def _print_ensemble(result, folder: Path, seconds: float) -> None:  # noqa: ANN001
    from rich.markup import escape
    from rich.table import Table

    from .ensemble import SweepResult
    from .report.ensemble_html import detail_rows, probability_rows, sweep_rows

    con = _console()
    title = getattr(result.scenario, "title", "") or result.manifest["scenario"]["name"]
    eng = result.manifest.get("engine", {})
    if isinstance(result, SweepResult):
        header, rows = sweep_rows(result)
        table = Table(title=f"{title} — sweep of {result.spec.name} ({eng.get('engine')}, {eng.get('replicates')} replicates per value)", title_justify="left")
        for i, h in enumerate(header):
            table.add_column(escape(h), justify="left" if i == 0 else "right")
        for r in rows:
            table.add_row(*(escape(c) for c in r))
        con.print(table)
        con.print("[dim]95 % Wilson score intervals; the same seed at every value (common random numbers).[/]")
        files = ("report.html", "sweep.parquet", "sweep.json", "replicates.parquet", "summary.json", "manifest.json")
    else:
        table = Table(title=f"{title} — {eng.get('engine')}, {result.summary.get('replicates')} replicates", title_justify="left")
        for col, justify in (("", "left"), ("estimate", "right"), ("95 % CI (Wilson)", "right"), ("k/n", "right")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for prow in probability_rows(result.summary):
            table.add_row(*(escape(c) for c in prow))
        con.print(table)
        for label, value in detail_rows(result.summary):
            con.print(f"  {escape(label)}: {escape(value)}")
        files = ("report.html", "replicates.parquet", "trajectories.parquet", "bands.parquet", "summary.json", "manifest.json")
    failed = result.summary.get("failed", 0)
    for w in result.summary.get("warnings", []):
        con.print(f"[yellow]warning:[/] {escape(w)}")
    if failed:
        con.print(f"[red]{failed} replicate(s) failed[/] (listed in summary.json; excluded from the probabilities)")
    written = ", ".join(n for n in files if (folder / n).exists())
    con.print(f"wrote {folder}/ ({written}) in {seconds:.1f} s")
    con.print("[dim]Research and education use only; not medical advice.[/]")


@app.command()
@_guard
def scenarios() -> None:
    """List the built-in scenarios."""
    from rich.table import Table

    from .scenarios import default_scenario_name, list_scenarios

    table = Table(title="built-in scenarios", title_justify="left")
    table.add_column("name")
    table.add_column("title")
    default = default_scenario_name()
    for name, title in list_scenarios():
        table.add_row(name + (" (default)" if name == default else ""), title)
    from .scenarios.comparison import list_comparisons

    for name, title in list_comparisons():
        table.add_row(name + " (comparison)", title)
    _console().print(table)


@app.command()
@_guard
def validate(path: Annotated[Path, typer.Argument(help="Scenario .toml file to check.")]) -> None:
    """Check a scenario file: syntax, fields, units and value ranges."""
    from .scenarios import validate_scenario
    from .scenarios.comparison import is_comparison, load_comparison

    if is_comparison(path):
        c = load_comparison(path)
        arms = ", ".join(f"{a.name!r} ({a.scenario.name}{' + ' + a.logistics.name if a.logistics else ''})" for a in c.arms)
        _console().print(f"{path}: ok — comparison {c.name!r}, {c.population.size} patients, arms {arms}")
        return
    s = validate_scenario(path)
    _console().print(f"{path}: ok — scenario {s.name!r}, model {s.model!r}")


@app.command("export-sbml")
@_guard
def export_sbml(
    scenario: Annotated[str | None, typer.Argument(help="Built-in scenario name or .toml path.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="SBML file to write.")] = Path("model.xml"),
) -> None:
    """Write a scenario's model (with its parameters and initial state) as SBML Level 3."""
    from .io.atomic import atomic_write_text, ensure_writable_dir
    from .network import with_values
    from .scenarios import default_scenario_name, load_scenario, resolve

    rs = resolve(load_scenario(scenario or default_scenario_name()))
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    atomic_write_text(out, with_values(rs.network, rs.P, rs.y0).to_sbml())
    _console().print(f"wrote {out}")


@app.command()
@_guard
def grade(
    file: Annotated[Path, typer.Argument(help="Monitoring CSV: time plus any of the sign columns (see docs/grading.md).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the grade of every row to this CSV.")] = None,
    hypotension_sbp: Annotated[
        float, typer.Option("--hypotension-sbp", help="Systolic pressure (mmHg) below which a patient is hypotensive.")
    ] = 90.0,
) -> None:
    """Grade CRS and ICANS (ASTCT consensus, Lee 2019) at every row of a monitoring CSV.

    Prints the maximum CRS and ICANS grades with their onset and duration; --out writes the
    grade of every row with the domain sub-grades.  A bad row or column is an error naming
    the row (spreadsheet numbering: the header is row 1) and the column.
    """
    import numpy as np
    from rich.markup import escape
    from rich.table import Table

    from .clinical.grading import grade_course, grade_signs
    from .io.atomic import ensure_writable_dir
    from .io.monitoring import read_monitoring, write_graded_csv

    if not (30.0 <= hypotension_sbp <= 200.0):
        _fail(f"--hypotension-sbp {hypotension_sbp:g}: expected a systolic pressure from 30 to 200 mmHg (adults: 90)")
    data = read_monitoring(file)
    grades = grade_signs(data.signs, hypotension_sbp_mmhg=hypotension_sbp)
    if out is not None:
        ensure_writable_dir(out.parent if str(out.parent) else Path("."))
        write_graded_csv(data, grades, out)
    con = _console()

    def when(hours: float) -> str:
        if hours != hours:  # NaN: never
            return "—"
        i = int(np.searchsorted(data.hours, hours))
        return f"{data.time_text[i]} (+{hours:g} h)" if data.time_kind == "datetime" else f"{hours:g} h"

    courses = {k: grade_course(data.hours, grades[f"{k}_grade"]) for k in ("crs", "icans")}
    table = Table(title=f"ASTCT grades — {escape(str(file))} ({len(data.time_text)} rows)", title_justify="left")
    for col, justify in (("", "left"), ("CRS", "right"), ("ICANS", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    c, i = courses["crs"], courses["icans"]
    table.add_row("maximum grade", str(c.max_grade), str(i.max_grade))
    table.add_row("onset (grade ≥ 1)", escape(when(c.onset)), escape(when(i.onset)))
    table.add_row("maximum first reached", escape(when(c.peak_time)), escape(when(i.peak_time)))
    table.add_row("duration at grade ≥ 1 (h)", f"{c.duration:g}", f"{i.duration:g}")
    table.add_row("episodes", str(c.episodes), str(i.episodes))

    def res(x: bool | None) -> str:
        return "—" if x is None else ("yes" if x else "no (ongoing at the last row)")

    table.add_row("resolved by the last row", res(c.resolved), res(i.resolved))
    con.print(table)
    if data.time_kind == "datetime":
        con.print("times in brackets: hours from the first row")
    if "temperature_c" not in data.columns and "antipyretic_or_anticytokine" not in data.columns:
        con.print("[yellow]note:[/] no temperature recorded: ASTCT CRS needs fever (or prior therapy), so CRS is 0")
    if out is not None:
        con.print(f"wrote {escape(str(out))} (grade at every row)")
    con.print("[dim]ASTCT consensus grading (Lee DW et al. 2019, Biol Blood Marrow Transplant 25:625); "
              "duration: each row's grade holds until the next row. Research and education use only; not medical advice.[/]")


@app.command()
@_guard
def logistics(
    scenario: Annotated[
        str | None, typer.Argument(help="Built-in logistics scenario or a .toml path (default: autologous-centre).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: runs/<scenario>-<time>).")] = None,
    months: Annotated[float | None, typer.Option("--months", help="Months of referrals (default: the scenario's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default: the scenario's).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the built-in logistics scenarios and exit.")] = False,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Write PNG figures and report.html.")] = True,
    disease: Annotated[str | None, typer.Option("--disease", help="Also treat every infused patient with this model scenario (e.g. cd19-ball): disease progression while waiting and outcomes by the disease model.")] = None,
) -> None:
    """Simulate a treatment programme: referrals, apheresis, manufacturing, drop-out and infusion.

    A discrete-event simulation (SimPy) over months; prints the share of referred patients
    infused, the vein-to-vein time, drop-outs, the intention-to-treat outcome and capacity use,
    and writes patients.parquet, summary.json, figures, report.html and manifest.json.
    """
    import dataclasses

    from rich.markup import escape
    from rich.table import Table

    from .io.atomic import ensure_writable_dir
    from .logistics import LogisticsInputError, simulate_programme
    from .report.logistics import logistics_rows, save_logistics_run
    from .scenarios.logistics import list_logistics, load_logistics

    con = _console()
    if list_:
        table = Table(title="built-in logistics scenarios", title_justify="left")
        table.add_column("name")
        table.add_column("title")
        for name, title in list_logistics():
            table.add_row(name, title)
        con.print(table)
        return
    t0 = time.perf_counter()
    if months is not None and not (0 < months <= 120):
        _fail(f"--months {months:g}: expected a referral period in (0, 120] months, e.g. --months 12")
    if seed is not None and seed < 0:
        _fail(f"--seed {seed}: expected a non-negative integer")
    sc = load_logistics(scenario or "autologous-centre")
    prog = sc.programme
    overrides: dict[str, Any] = {}
    if months is not None:
        try:
            prog = dataclasses.replace(prog, months=float(months))
        except LogisticsInputError as exc:
            _fail(f"--months: {exc}")
        overrides["months"] = float(months)
    run_seed = sc.seed if seed is None else seed
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{sc.name}-{stamp}"
    ensure_writable_dir(out)
    result = simulate_programme(prog, run_seed)
    if disease is not None:
        from .comparison import programme_outcomes

        arm = programme_outcomes(dataclasses.replace(sc, programme=prog), disease, seed=run_seed,
                                 referred=result.summary["referred"])
        result.summary["disease_model"] = {"scenario": disease, **arm}
        overrides["disease"] = disease
    folder = save_logistics_run(result, sc, out, figures=figures, overrides=overrides)
    table = Table(title=f"{sc.title} — {prog.months:g} months, seed {run_seed}", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    for label, value in logistics_rows(result.summary):
        table.add_row(escape(label), escape(value))
    con.print(table)
    dm = result.summary.get("disease_model")
    if dm:
        def pct(p: dict) -> str:
            return f"{100 * p['estimate']:.1f} % ({100 * p['low']:.1f}–{100 * p['high']:.1f})" if p["estimate"] is not None else "—"

        con.print(f"by the disease model ({escape(str(dm['scenario']))}; the leukaemia grows while patients wait): "
                  f"ITT response {pct(dm['response_itt'])}, response if infused {pct(dm['response_if_infused'])}, "
                  f"CRS ≥ 3 {pct(dm['crs_grade_ge_3'])}, EFS at 12 months "
                  + (f"{100 * dm['efs']['at_12_months']:.1f} %" if dm["efs"]["at_12_months"] is not None
                     else "— (follow-up too short)"))
    files = ("report.html", "patients.parquet", "summary.json", "manifest.json")
    written = ", ".join(n for n in files if (folder / n).exists())
    con.print(f"wrote {escape(str(folder))}/ ({written}) in {time.perf_counter() - t0:.1f} s")
    con.print("[dim]Research and education use only; not medical advice.[/]")


@app.command()
@_guard
def compare(
    scenario: Annotated[
        str | None, typer.Argument(help="Built-in comparison or a .toml path (default: cart-vs-carnk).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: runs/<comparison>-<time>).")] = None,
    patients: Annotated[int | None, typer.Option("--patients", "-n", help="Virtual patients (default: the file's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default: the file's).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the built-in comparisons and exit.")] = False,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Write PNG figures and report.html.")] = True,
) -> None:
    """Compare treatments in the same virtual patients, counted from referral.

    Each arm is a model scenario plus a logistics programme (referral to infusion, drop-out
    while waiting); the disease grows by the model while the patient waits.  Prints response
    (intention to treat and if infused), CRS and ICANS, relapse, event-free survival and the
    referral-to-infusion time per arm, the paired difference, and writes patients.parquet,
    summary.json, figures, report.html and manifest.json.
    """
    from rich.table import Table

    from .scenarios.comparison import list_comparisons

    if list_:
        table = Table(title="built-in comparisons", title_justify="left")
        table.add_column("name")
        table.add_column("title")
        for name, title in list_comparisons():
            table.add_row(name, title)
        _console().print(table)
        return
    _compare(scenario or "cart-vs-carnk", out, patients, seed, figures)


def _print_differences(con, s: dict) -> None:  # noqa: ANN001
    """Print the between-arm differences: paired (same patients) or randomised."""
    from rich.markup import escape

    for p in s.get("paired") or []:
        con.print(f"paired, {escape(p['arm'])} vs {escape(p['reference'])}: ITT response "
                  f"{100 * p['response_itt_difference']:+.1f} % (McNemar exact p = {p['mcnemar_p']:.2g}; "
                  f"discordant {p['discordant_pairs']['only_arm']}/{p['discordant_pairs']['only_reference']})")
    for p in s.get("randomised") or []:
        r = p["response_itt"]
        lr = "—" if p["efs_logrank_p"] is None else f"{p['efs_logrank_p']:.2g}"
        con.print(f"randomised, {escape(p['arm'])} vs {escape(p['reference'])}: ITT response "
                  f"{100 * r['difference']:+.1f} % (95 % CI {100 * r['low']:+.1f} to {100 * r['high']:+.1f}; "
                  f"Fisher exact p = {r['fisher_p']:.2g}); EFS log-rank p = {lr}")


def _print_endpoints(con, title: str, s: dict) -> list[str]:  # noqa: ANN001
    """Print the endpoint table of a comparison or trial summary; return the arm names."""
    from rich.markup import escape
    from rich.table import Table

    from .report.comparison import comparison_rows

    arms, rows = comparison_rows(s)
    table = Table(title=f"{title} — {s['patients']} virtual patients, seed {s['seed']}", title_justify="left")
    table.add_column("")
    for a in arms:
        table.add_column(escape(a), justify="right")
    for label, vals in rows:
        table.add_row(escape(label), *(escape(v) for v in vals))
    con.print(table)
    return arms


def _compare(scenario: str, out: Path | None, patients: int | None, seed: int | None, figures: bool) -> None:
    from rich.markup import escape

    from .comparison import run_comparison
    from .io.atomic import ensure_writable_dir
    from .report.comparison import save_comparison_run
    from .scenarios.comparison import load_comparison

    t0 = time.perf_counter()
    if patients is not None and not (1 <= patients <= 10_000_000):
        _fail(f"--patients {patients}: expected a whole number from 1 to 10,000,000, e.g. --patients 200")
    if seed is not None and seed < 0:
        _fail(f"--seed {seed}: expected a non-negative integer")
    c = load_comparison(scenario)
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{c.name}-{stamp}"
    ensure_writable_dir(out)  # fail before the work, not after it
    con = _console()
    result = run_comparison(c, patients=patients, seed=seed,
                            on_arm=lambda name, s: con.print(f"  arm {escape(name)}: {s['referred']} referred, "
                                                             f"{s['infused']} infused ({time.perf_counter() - t0:.1f} s)"))
    folder = save_comparison_run(result, out, figures=figures)
    s = result.summary
    arms = _print_endpoints(con, c.title, s)
    _print_differences(con, s)
    files = ("report.html", "patients.parquet", "summary.json", "manifest.json")
    written = ", ".join(n for n in files if (folder / n).exists())
    con.print(f"wrote {escape(str(folder))}/ ({written}) in {time.perf_counter() - t0:.1f} s")
    con.print("[dim]Research and education use only; not medical advice.[/]")
    if any(s["arms"][a]["failed_solves"] for a in arms):
        raise typer.Exit(1)


@app.command()
@_guard
def trial(
    scenario: Annotated[
        str | None,
        typer.Argument(help="Model scenario with a \\[population] or a comparison (default: the default scenario)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Trial folder (default: runs/<name>-trial-<time>).")] = None,
    patients: Annotated[int | None, typer.Option("--patients", "-n", help="Virtual patients (default: the population's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Population seed (default: the file's).")] = None,
    chunk_size: Annotated[int | None, typer.Option("--chunk-size", help="Patients per part (results do not depend on it).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Finish an interrupted trial in --out (finished parts are kept).")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (this process, all cores) or dask.")] = "local",
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (default: a new local cluster).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes of a new local Dask cluster (default 2).")] = None,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Write PNG figures and report.html.")] = True,
    trajectories: Annotated[float | None, typer.Option("--trajectories", help="Also keep every patient's clinical observables and grades every DAYS days (trajectories/*.parquet).")] = None,
) -> None:
    """Run a virtual clinical trial: N virtual patients in chunks, resumable, optionally on Dask.

    Writes parts/ (one Parquet part per chunk, checksummed), endpoints.parquet (one row per
    arm and patient; query it with DuckDB), summary.json, figures, report.html and, last,
    manifest.json.  Ctrl-C or a crash keeps every finished part: re-run with --resume.
    """
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .scenarios import default_scenario_name
    from .trial import run_trial, trial_design

    t0 = time.perf_counter()
    if patients is not None and not (1 <= patients <= 10_000_000):
        _fail(f"--patients {patients}: expected a whole number from 1 to 10,000,000, e.g. --patients 10000")
    if seed is not None and seed < 0:
        _fail(f"--seed {seed}: expected a non-negative integer")
    if chunk_size is not None and chunk_size < 1:
        _fail(f"--chunk-size {chunk_size}: expected a positive whole number (e.g. 1024)")
    if executor not in ("local", "dask"):
        _fail(f"--executor {executor}: expected local or dask")
    if (scheduler or workers) and executor != "dask":
        _fail("--scheduler and --workers need --executor dask")
    if resume and out is None:
        _fail("--resume needs --out, the folder of the interrupted trial")
    design = trial_design(scenario or default_scenario_name())
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{design.name}-trial-{stamp}"
    con = _console()
    n = patients or design.population.size
    with Progress(TextColumn("trial"), BarColumn(), MofNCompleteColumn(), TextColumn("patients"),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task("trial", total=n, rate="")

        def report(r):  # noqa: ANN001, ANN202
            rate = r.patients_done / r.seconds if r.seconds > 0 else 0.0
            bar.update(task, completed=r.patients_done, rate=f"{rate:,.0f}/s")

        result = run_trial(design, out, patients=patients, seed=seed, chunk_size=chunk_size, resume=resume,
                           executor=executor, scheduler=scheduler, workers=workers, figures=figures,
                           trajectories=trajectories, on_chunk=report)
    s = result.summary
    arms = _print_endpoints(con, design.title, s)
    _print_differences(con, s)
    cal = s.get("calibration")
    if cal and "error" in cal:
        con.print(f"[yellow]calibration to the published targets failed:[/] {escape(cal['error'])}")
    elif cal:
        wtd = ", ".join(f"{k} {100 * v:.1f} %" for k, v in cal["weighted"].items() if v is not None)
        con.print(f"calibrated to the published targets (effective sample size {cal['n_effective']:.0f} of "
                  f"{s['patients']}; every target within its interval: {'yes' if cal['all_within'] else 'NO'}): {wtd}")
    secs = time.perf_counter() - t0
    con.print(f"wrote {escape(str(result.folder))}/ (endpoints.parquet, parts/, summary.json, "
              f"{'report.html, ' if figures else ''}manifest.json) in {secs:.1f} s ({s['patients'] / secs:,.0f} patients/s)")
    con.print("[dim]Research and education use only; not medical advice.[/]")
    if any(s["arms"][a]["failed_solves"] for a in arms):
        raise typer.Exit(1)


@app.command()
@_guard
def escalate(
    scenario: Annotated[
        str | None, typer.Argument(help="Model scenario with a \\[population] (default: the default scenario).")
    ] = None,
    doses: Annotated[str, typer.Option("--doses", help="Dose levels in cells, increasing, comma-separated.")] = "1e7,3e7,1e8,3e8",
    design: Annotated[str, typer.Option("--design", help="3+3 or boin.")] = "boin",
    target: Annotated[float, typer.Option("--target", help="BOIN target DLT rate.")] = 0.3,
    cohorts: Annotated[int, typer.Option("--cohorts", help="BOIN: cohorts of 3 (the sample size).")] = 10,
    trials: Annotated[int, typer.Option("--trials", help="Simulated escalation trials.")] = 2000,
    patients: Annotated[int | None, typer.Option("--patients", "-n", help="Virtual patients per dose level (default: the population's).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the enrolment draws.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for escalation.json.")] = None,
) -> None:
    """Dose escalation in silico: the virtual population at every dose level gives the true DLT
    rates (DLT: ASTCT CRS or ICANS grade ≥ 3); 3+3 or BOIN trials enrol virtual patients and
    select an MTD.  Prints the dose–toxicity table and the operating characteristics."""
    from rich.markup import escape
    from rich.table import Table

    from .escalation import dose_toxicity, simulate_escalation
    from .io.atomic import ensure_writable_dir
    from .io.results import write_json
    from .scenarios import default_scenario_name
    from .trials.designs import DesignInputError

    t0 = time.perf_counter()
    try:
        levels = [float(x) for x in doses.split(",") if x.strip()]
    except ValueError:
        _fail(f"--doses {doses}: expected numbers of cells separated by commas, e.g. --doses 1e7,3e7,1e8")
    if design.lower() not in ("3+3", "boin"):
        _fail(f"--design {design}: expected 3+3 or boin")
    if trials < 1 or cohorts < 1 or not (0 < target < 1):
        _fail("--trials and --cohorts must be ≥ 1 and --target in (0, 1), e.g. --target 0.3")
    if out is not None:
        ensure_writable_dir(out)
    dt = dose_toxicity(scenario or default_scenario_name(), levels, patients=patients)
    opts = {"target": target, "n_cohorts": cohorts} if design.lower() == "boin" else {}
    try:
        oc = simulate_escalation(dt, design=design, n_trials=trials, seed=seed, **opts)
    except DesignInputError as exc:
        _fail(str(exc))
    con = _console()
    table = Table(title=f"dose–toxicity in {dt.dlt.shape[0]} virtual patients; {oc['design']} over {trials} trials",
                  title_justify="left")
    for col in ("level", "dose (cells)", "DLT rate (95 % CI)", "response", "P(selected as MTD)", "mean patients"):
        table.add_column(col, justify="right")
    for j, row in enumerate(dt.summary):
        d = row["dlt"]
        table.add_row(str(j), f"{row['dose_cells']:.3g}", f"{100 * d['estimate']:.1f} % ({100 * d['low']:.1f}–{100 * d['high']:.1f})",
                      f"{100 * row['response']['estimate']:.1f} %", f"{100 * oc['p_select'][j]:.1f} %",
                      f"{oc['mean_patients'][j]:.1f}")
    con.print(table)
    con.print(f"no MTD selected: {100 * oc['p_no_mtd']:.1f} %; mean patients per trial "
              f"{oc['mean_total_patients']:.1f}; DLT rate on study {100 * oc['dlt_rate']:.1f} %")
    if out is not None:
        write_json(Path(out) / "escalation.json", {"dose_toxicity": dt.summary, "operating_characteristics": oc})
        con.print(f"wrote {escape(str(out))}/escalation.json")
    con.print(f"[dim]{time.perf_counter() - t0:.1f} s. Research and education use only; not medical advice.[/]")


@app.command()
@_guard
def calibrate(
    scenario: Annotated[str, typer.Argument(help="Scenario with \\[population] and \\[\\[targets]] (e.g. eliana, zuma-1, karmma, liu2020-carnk).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder (default: runs/<scenario>-calibration-<time>).")] = None,
    patients: Annotated[int | None, typer.Option("--patients", "-n", help="Plausible virtual patients (default: the population's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Population seed (default: the file's).")] = None,
    method: Annotated[str, typer.Option("--method", help="weights (maximum entropy) or selection (Allen et al. 2016).")] = "weights",
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Write calibration.png.")] = True,
) -> None:
    """Calibrate a virtual population to published trial figures.

    Simulates the scenario's plausible patients, then weights them (maximum entropy: every
    target reproduced exactly, weights as close to equal as possible) or selects them (Allen
    et al. 2016); prints each target against its simulated value before and after, with
    intervals, and writes calibration.json, calibration.md, weights.parquet and calibration.png.
    """
    from rich.markup import escape
    from rich.table import Table

    from .calibrate import calibrate_population, calibration_cells, save_calibration

    t0 = time.perf_counter()
    if method not in ("weights", "selection"):
        _fail(f"--method {method}: expected weights or selection")
    if patients is not None and not (1 <= patients <= 10_000_000):
        _fail(f"--patients {patients}: expected a whole number from 1 to 10,000,000")
    if seed is not None and seed < 0:
        _fail(f"--seed {seed}: expected a non-negative integer")
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{Path(scenario).stem}-calibration-{stamp}"
    from .io.atomic import ensure_writable_dir

    ensure_writable_dir(out)
    r = calibrate_population(scenario, patients=patients, seed=seed, method=method)
    folder = save_calibration(r, out, figures=figures)
    table = Table(title=f"{r.title}: {r.n} plausible patients, effective sample size {r.n_effective:.0f}",
                  title_justify="left")
    for col in ("target", "published", "plausible (unweighted)", "calibrated (95 % CI)", "within"):
        table.add_column(col, justify="left" if col == "target" else "right")

    for row in r.table:
        table.add_row(escape(str(row["target"])), *(escape(x) for x in calibration_cells(row)),
                      "yes" if row["within"] else "NO")
    con = _console()
    con.print(table)
    con.print(f"wrote {escape(str(folder))}/ (calibration.json, calibration.md, weights.parquet"
              f"{', calibration.png' if figures else ''}) in {time.perf_counter() - t0:.1f} s")
    con.print("[dim]Research and education use only; not medical advice.[/]")
    if not r.all_within:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
