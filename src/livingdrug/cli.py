"""The ``livingdrug`` command: a thin view over the public API.

Exit codes: 0 success; 2 bad input (scenario, unit, value, output folder) with a one-line
message and no traceback; 130 interrupted (finished files are kept, nothing partial is left);
1 an internal error (set ``LIVINGDRUG_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

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
        from .scenarios import ScenarioError
        from .units import UnitError

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except (ScenarioError, UnitError) as exc:
            _fail(str(exc))
        except OutputError as exc:
            _fail(str(exc))
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
    engine: Annotated[str, typer.Option("--engine", help="Simulation engine.")] = "ode",
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Write PNG figures and report.html.")] = True,
) -> None:
    """Simulate a scenario and write trajectories, summary, figures and report."""
    from . import api
    from .io.atomic import ensure_writable_dir
    from .scenarios import default_scenario_name, load_scenario

    t0 = time.perf_counter()
    if from_manifest is not None:
        if scenario is not None or days is not None or seed is not None:
            _fail("--from re-runs a manifest exactly; do not combine it with a scenario, --days or --seed")
        result = api.rerun_manifest(from_manifest)
        name = result.manifest["scenario"]["name"]
    else:
        if days is not None and not (0 < days <= 36500):
            _fail(f"--days {days}: expected a number of days in (0, 36500]")
        if engine != "ode":
            _fail(f"--engine {engine}: expected 'ode' (the stochastic engines are not available yet)")
        if seed is not None and seed < 0:
            _fail(f"--seed {seed}: expected a non-negative integer")
        s = load_scenario(scenario or default_scenario_name())
        name = s.name
        result = None
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{name}-{stamp}"
    ensure_writable_dir(out)  # fail before the work, not after it
    if result is None:
        result = api.simulate(s, days=days, seed=seed, engine=engine)
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
    _console().print(table)


@app.command()
@_guard
def validate(path: Annotated[Path, typer.Argument(help="Scenario .toml file to check.")]) -> None:
    """Check a scenario file: syntax, fields, units and value ranges."""
    from .scenarios import validate_scenario

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


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
