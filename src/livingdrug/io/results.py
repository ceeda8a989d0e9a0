"""Write and read run results.

``trajectories.parquet`` is a long table: one row per (patient, time), one column per
species and observable, time in days.  Each column's unit is stored as Arrow field metadata
(``unit``) and all units together as JSON under the schema metadata key ``livingdrug.units``;
the schema metadata also carries ``livingdrug.manifest`` (provenance).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr

from .atomic import atomic_write_text, atomic_write_with

__all__ = ["write_trajectories", "read_trajectories", "read_units", "write_json", "to_jsonable", "write_columns"]


def to_jsonable(obj: Any) -> Any:
    """Plain-JSON form: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(Path(path), json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n")


def write_columns(columns: dict[str, np.ndarray], path: Path, units: dict[str, str]) -> Path:
    """Write a table of equal-length columns to Parquet, atomically, with each column's unit in
    its field metadata (``unit``) and all of them in the schema metadata
    (``livingdrug.units``; ``read_units`` reads them back); same input, same bytes."""
    arrays, fields = [], []
    for k, a in columns.items():
        arr = pa.array(a.tolist() if a.dtype == object else a)
        arrays.append(arr)
        fields.append(pa.field(k, arr.type, metadata={"unit": units.get(k, "")}))
    meta = {"livingdrug.units": json.dumps({f.name: units.get(f.name, "") for f in fields})}
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))
    return atomic_write_with(Path(path), lambda tmp: pq.write_table(table, tmp))


def write_trajectories(ds: xr.Dataset, path: Path, *, manifest: dict | None = None) -> Path:
    """Write the (patient, time) variables of ``ds`` to Parquet atomically."""
    names = [str(v) for v in ds.data_vars if ds[v].dims == ("patient", "time")]
    n, nt = ds.sizes["patient"], ds.sizes["time"]
    cols: dict[str, np.ndarray] = {
        "patient": np.repeat(ds["patient"].values.astype(np.int64), nt),
        "time": np.tile(ds["time"].values.astype(float), n),
    }
    units = {"patient": "1", "time": "d"}
    for v in names:
        cols[v] = np.asarray(ds[v].values, dtype=float).reshape(-1)
        units[v] = str(ds[v].attrs.get("units", ""))
    fields = [
        pa.field(k, pa.from_numpy_dtype(a.dtype), metadata={"unit": units[k]}) for k, a in cols.items()
    ]
    meta = {"livingdrug.units": json.dumps(units)}
    if manifest is not None:
        meta["livingdrug.manifest"] = json.dumps(to_jsonable(manifest))
    schema = pa.schema(fields, metadata=meta)
    table = pa.Table.from_arrays([pa.array(a) for a in cols.values()], schema=schema)
    return atomic_write_with(Path(path), lambda tmp: pq.write_table(table, tmp))


def read_trajectories(path: Path):  # noqa: ANN201 (pandas is imported lazily by pyarrow)
    """The trajectory table as a pandas DataFrame (units: :func:`read_units`)."""
    return pq.read_table(path).to_pandas()


def read_units(path: Path) -> dict[str, str]:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"livingdrug.units", b"{}"))
