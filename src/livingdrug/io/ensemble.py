"""Run folders of stochastic runs: per-replicate endpoints, trajectories, bands, sweep tables.

Files (every one written atomically; ``manifest.json`` last, so a folder without it is an
unfinished run):

=======================  ==================================================================
``replicates.parquet``   one row per replicate (and sweep value): ``replicate``, ``status``,
                         ``message``, drawn count parameters, endpoints (cure, time to cure,
                         remission, MRD, relapse time/type, Cmax …)
``trajectories.parquet`` long table ``(replicate, time)`` of the observables of the kept
                         replicates (all of them when they fit the memory limit)
``bands.parquet``        long table ``(statistic, time)``: ``q5 … q95`` and ``mean`` of each
                         observable over the kept replicates; ``p_extinct`` (the fraction of
                         all replicates with the tumour extinct, the same on every row of a time)
``sweep.parquet``        (sweeps) one row per swept value: probabilities and their CIs
``sweep.json``           the same table as JSON records
``summary.json``         probabilities with CIs, Kaplan–Meier, quantiles, failures
``parts/``               during a run: the endpoints of each finished chunk
                         (``v{value}-r{first}.parquet``); removed once ``replicates.parquet``
                         holds them all, kept when the run is interrupted
=======================  ==================================================================

Units: every Parquet column carries its unit as Arrow field metadata (``unit``) and all of
them as JSON under the schema key ``livingdrug.units``, like ``trajectories.parquet`` of a
deterministic run; the schema key ``livingdrug.manifest`` carries the provenance.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_write_with, ensure_writable_dir, sha256_file
from .results import to_jsonable, write_json

__all__ = [
    "write_columns",
    "read_table",
    "write_part",
    "read_parts",
    "parts_dir",
    "save_ensemble_run",
    "PARTS",
]

#: folder of the per-chunk endpoint files inside a run folder
PARTS = "parts"


def _arrow_array(a: np.ndarray) -> pa.Array:
    a = np.asarray(a)
    if a.dtype == object:
        return pa.array([None if x is None else str(x) for x in a], type=pa.string())
    return pa.array(a)


def write_columns(
    path: Path, columns: Mapping[str, Any], units: Mapping[str, str], *, manifest: dict | None = None
) -> Path:
    """Write named equal-length columns as a Parquet table (units as field and schema
    metadata) atomically."""
    arrays = {k: _arrow_array(np.asarray(v)) for k, v in columns.items()}
    u = {k: str(units.get(k, "")) for k in arrays}
    fields = [pa.field(k, a.type, metadata={"unit": u[k]}) for k, a in arrays.items()]
    meta = {"livingdrug.units": json.dumps(u)}
    if manifest is not None:
        meta["livingdrug.manifest"] = json.dumps(to_jsonable(manifest))
    table = pa.Table.from_arrays(list(arrays.values()), schema=pa.schema(fields, metadata=meta))
    return atomic_write_with(Path(path), lambda tmp: pq.write_table(table, tmp))


def read_table(path: Path) -> Any:
    """A Parquet table written here as a pandas DataFrame with ``attrs["units"]``."""
    t = pq.read_table(path)
    df = t.to_pandas()
    df.attrs["units"] = json.loads((t.schema.metadata or {}).get(b"livingdrug.units", b"{}"))
    return df


def parts_dir(out: Path) -> Path:
    return Path(out) / PARTS


def write_part(out: Path, chunk: Any, units: Mapping[str, str]) -> Path:
    """Write one finished chunk's endpoints to ``out/parts/`` atomically."""
    folder = parts_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"v{int(chunk.value_index):03d}-r{int(chunk.first):09d}.parquet"
    return write_columns(folder / name, chunk.endpoints, units)


def read_parts(out: Path) -> Any:
    """All part files of ``out`` in (value, replicate) order as one DataFrame (empty if none)."""
    import pandas as pd

    files = sorted(parts_dir(out).glob("v*-r*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)




def _frame_columns(df: Any) -> dict[str, np.ndarray]:
    return {str(c): df[c].to_numpy() for c in df.columns}


def _write_trajectories(ds: Any, path: Path, manifest: dict) -> Path:
    names = [str(v) for v in ds.data_vars if ds[v].dims == ("replicate", "time")]
    n, nt = ds.sizes["replicate"], ds.sizes["time"]
    cols: dict[str, np.ndarray] = {
        "replicate": np.repeat(ds["replicate"].values.astype(np.int64), nt),
        "time": np.tile(ds["time"].values.astype(float), n),
    }
    units = {"replicate": "1", "time": "d"}
    for v in names:
        cols[v] = np.asarray(ds[v].values, dtype=float).reshape(-1)
        units[v] = str(ds[v].attrs.get("units", ""))
    return write_columns(path, cols, units, manifest=manifest)


def _write_bands(bands: Any, path: Path, manifest: dict) -> Path:
    q = bands["quantile"].values
    t = bands["time"].values.astype(float)
    stats = [f"q{100 * x:g}" for x in q] + ["mean"]
    nt = t.size
    cols: dict[str, np.ndarray] = {
        "statistic": np.repeat(np.array(stats, dtype=object), nt),
        "time": np.tile(t, len(stats)),
    }
    units = {"statistic": "", "time": "d"}
    for v in bands.data_vars:
        v = str(v)
        if bands[v].dims == ("quantile", "time"):
            vals = np.vstack([np.asarray(bands[v].values, dtype=float), np.asarray(bands[f"{v}_mean"].values)[None, :]])
            cols[v] = vals.reshape(-1)
            units[v] = str(bands[v].attrs.get("units", ""))
    if "p_extinct" in bands:
        cols["p_extinct"] = np.tile(np.asarray(bands["p_extinct"].values, dtype=float), len(stats))
        units["p_extinct"] = "1"
    return write_columns(path, cols, units, manifest=manifest)


def save_ensemble_run(result: Any, out: Path, *, figures: bool = True) -> Path:
    """Write the run folder of an :class:`~livingdrug.ensemble.EnsembleResult` or a
    :class:`~livingdrug.ensemble.SweepResult` (files in the module doc); returns the folder."""
    from ..ensemble import SweepResult

    out = ensure_writable_dir(Path(out))
    stale = out / "manifest.json"
    if stale.exists():
        stale.unlink()  # being rewritten: incomplete until the new manifest lands
    manifest = dict(result.manifest)
    files: list[Path] = []
    if isinstance(result, SweepResult):
        import pandas as pd

        endpoints = pd.concat([r.endpoints for r in result.results], ignore_index=True)
        units = dict(result.results[0].endpoints.attrs.get("units", {}))
        units["sweep_value"] = result.unit
        files.append(write_columns(out / "replicates.parquet", _frame_columns(endpoints), units, manifest=manifest))
        files.append(
            write_columns(out / "sweep.parquet", _frame_columns(result.table), result.table.attrs.get("units", {}), manifest=manifest)
        )
        files.append(write_json(out / "sweep.json", {"sweep": result.summary["sweep"], "table": result.summary["table"]}))
        summary = dict(result.summary)
        summary["per_value"] = [
            {"value": float(v), **{k: x for k, x in r.summary.items() if k != "failed_replicates"},
             "failed_replicates": r.summary.get("failed_replicates", [])}
            for v, r in zip(result.values, result.results, strict=True)
        ]
        files.append(write_json(out / "summary.json", summary))
    else:
        units = dict(result.endpoints.attrs.get("units", {}))
        files.append(write_columns(out / "replicates.parquet", _frame_columns(result.endpoints), units, manifest=manifest))
        files.append(_write_trajectories(result.dataset, out / "trajectories.parquet", manifest))
        files.append(_write_bands(result.bands, out / "bands.parquet", manifest))
        files.append(write_json(out / "summary.json", result.summary))
    if figures:
        from ..report.ensemble_figures import write_ensemble_figures
        from ..report.ensemble_html import write_ensemble_report

        figs = write_ensemble_figures(result, out)
        files += figs
        files.append(write_ensemble_report(result, out, figs))
    shutil.rmtree(parts_dir(out), ignore_errors=True)  # replicates.parquet now holds every part
    manifest["outputs"] = {p.name: sha256_file(p) for p in files}
    write_json(out / "manifest.json", manifest)
    return out
