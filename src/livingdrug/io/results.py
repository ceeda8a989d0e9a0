"""Write and read run results.

``trajectories.parquet`` is a long table: one row per (patient, time), one column per
species and observable, time in days.  Each column's unit is stored as Arrow field metadata
(``unit``) and all units together as JSON under the schema metadata key ``livingdrug.units``;
the schema metadata also carries ``livingdrug.manifest`` (provenance).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr

from .atomic import atomic_write_text, atomic_write_with

__all__ = ["write_trajectories", "read_trajectories", "read_units", "write_json", "to_jsonable", "write_columns",
           "arrow_to_numpy", "Columns", "merge_parquet"]


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


def arrow_to_numpy(col: Any) -> np.ndarray:
    """A numpy array of an Arrow column; strings become an object array whose equal values
    share one Python string (8 bytes a row, not a new string per row)."""
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        if col.null_count:
            return np.asarray(col.to_pylist(), dtype=object)
        enc = (col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col).dictionary_encode()
        return np.asarray(enc.dictionary.to_pylist(), dtype=object)[enc.indices.to_numpy()]
    return col.to_numpy(zero_copy_only=False)


class Columns(Mapping[str, np.ndarray]):
    """A per-patient table (column name → array) whose columns are read when first used and
    then kept: from a Parquet file, or from another mapping restricted to ``rows`` (a
    boolean mask or indices); ``extra`` columns (already of the final length) replace or add
    to them (``TrialResult.patients``: a user's column is read when asked for).  The trial's
    own summary and figures never hold a column: they read :class:`Batches`."""

    def __init__(self, source: str | Path | Mapping[str, Any], rows: Any = None,
                 extra: Mapping[str, np.ndarray] | None = None) -> None:
        self._path: Path | None = None
        self._source: Mapping[str, Any] | None = None
        if isinstance(source, (str, Path)):
            self._path = Path(source)
            names = list(pq.read_schema(self._path).names)
        else:
            self._source = source
            names = list(source)
        self._rows = rows
        self._cache: dict[str, np.ndarray] = dict(extra or {})
        self._names = names + [k for k in self._cache if k not in names]

    def __getitem__(self, name: str) -> np.ndarray:
        got = self._cache.get(name)
        if got is None:
            if name not in self._names:
                raise KeyError(name)
            if self._path is not None:
                got = arrow_to_numpy(pq.read_table(self._path, columns=[name]).column(name))
            else:
                assert self._source is not None
                got = np.asarray(self._source[name])
            if self._rows is not None:
                got = got[self._rows]
            self._cache[name] = got
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names


#: rows read at once by :class:`Batches`
BATCH_ROWS = 65_536


class Batches:
    """A per-patient table read a batch of rows at a time, never whole.

    ``source`` is a Parquet file (read :data:`BATCH_ROWS` rows at a time, conditions applied
    by Arrow before conversion), a mapping of equal-length arrays (read in slices; a
    :class:`Columns` over a Parquet file is read from its file) or another ``Batches`` (its
    conditions kept).  Only rows whose columns equal every value of ``where`` are read
    (``{"arm": "CAR-T", "outcome": "infused"}``).  Calling it with column names returns a fresh
    iterator of ``{name: array}`` batches, in row order; the streaming statistics of
    :mod:`livingdrug.clinical.streaming` read it as often as they need, so their memory does
    not grow with the number of patients."""

    rows: int
    names: list[str]

    def __init__(self, source: str | Path | Mapping[str, Any] | Batches, *, where: Mapping[str, Any] | None = None,
                 rows: int | None = None) -> None:
        conditions: dict[str, Any] = {}
        size: int
        origin: Path | Mapping[str, Any]
        if isinstance(source, Batches):
            conditions, size, origin = dict(source.conditions), source.rows, source._origin
        elif isinstance(source, (str, Path)):
            size, origin = BATCH_ROWS, Path(source)
        elif isinstance(source, Columns) and source._path is not None and source._rows is None:
            size, origin = BATCH_ROWS, source._path
        else:
            size, origin = BATCH_ROWS, source
        self._origin: Path | Mapping[str, Any] = origin
        self.conditions: dict[str, Any] = {**conditions, **(where or {})}
        self.rows = int(rows) if rows is not None else size
        self.names = (source.names if isinstance(source, Batches)
                                 else list(pq.read_schema(origin).names) if isinstance(origin, Path) else list(origin))

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def select(self, column: str, value: Any) -> Self:
        """The same table restricted to the rows whose ``column`` equals ``value``."""
        return type(self)(self, where={column: value})

    def __call__(self, columns: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        cols = list(dict.fromkeys(columns))
        missing = [c for c in [*cols, *self.conditions] if c not in self.names]
        if missing:
            raise KeyError(f"no column {missing[0]!r}; the table has {self.names}")
        read = cols + [c for c in self.conditions if c not in cols]
        if isinstance(self._origin, Path):
            import pyarrow.compute as pc

            # pre_buffer (pyarrow's default) fetches every row group's pages of the columns
            # before the first batch: the whole column in memory, which this class is to avoid
            pf = pq.ParquetFile(self._origin, pre_buffer=False)
            for rb in pf.iter_batches(batch_size=self.rows, columns=read):
                mask = None
                for c, v in self.conditions.items():
                    m = pc.equal(rb.column(c), v.item() if isinstance(v, np.generic) else v)
                    mask = m if mask is None else pc.and_(mask, m)
                if mask is not None:
                    rb = rb.filter(mask)
                if rb.num_rows:
                    yield {c: arrow_to_numpy(rb.column(c)) for c in cols}
            return
        src = self._origin
        n = int(np.asarray(src[next(iter(src))]).shape[0]) if len(src) else 0
        for lo in range(0, n, self.rows):
            sl = slice(lo, lo + self.rows)
            keep = np.ones(min(n, lo + self.rows) - lo, dtype=bool)
            for c, v in self.conditions.items():
                keep &= np.asarray(src[c])[sl] == v
            if keep.any():
                yield {c: np.asarray(src[c])[sl][keep] for c in cols}


#: rows per row group of a merged table: a fixed number, so that the file's bytes do not
#: depend on how its rows were split into parts, and a bounded buffer while merging
MERGE_ROW_GROUP = 65_536


def merge_parquet(out: str | Path, parts: Sequence[str | Path], *, by: str | None = None,
                  groups: Sequence[str] = (), order: str | None = None) -> None:
    """Concatenate the Parquet ``parts`` into ``out`` without holding them all: part by part,
    in row groups of :data:`MERGE_ROW_GROUP` rows.  With ``by``, the rows of each value of
    ``groups`` come together, in that order (each part read once per group) and, within a
    part, sorted by ``order``.  Columns of the parts are unified (a column missing from a
    part is null there); the schema metadata (units) is the first part's.  Same rows, same
    bytes, whatever the parts."""
    import pyarrow.compute as pc

    schemas = [pq.read_schema(p) for p in parts]
    schema = pa.unify_schemas(schemas, promote_options="default").with_metadata(schemas[0].metadata)
    held: list[pa.Table] = []
    n_held = 0
    with pq.ParquetWriter(out, schema) as writer:
        for group in (groups if by is not None else [None]):
            for p in parts:
                # ParquetFile.read, not read_table: the latter builds a dataset per file,
                # ~3x the time of reading a 256-row part (thousands of parts in a large trial)
                t = pq.ParquetFile(p).read(use_threads=False)
                if by is not None:
                    t = t.filter(pc.equal(t.column(by), group))
                    if order is not None:
                        t = t.take(pc.sort_indices(t.column(order)))
                if not t.num_rows:
                    continue
                held.append(pa.Table.from_arrays(
                    [t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type)
                     for f in schema], schema=schema))
                n_held += t.num_rows
                while n_held >= MERGE_ROW_GROUP:
                    block = pa.concat_tables(held)
                    writer.write_table(block.slice(0, MERGE_ROW_GROUP), row_group_size=MERGE_ROW_GROUP)
                    held, n_held = [block.slice(MERGE_ROW_GROUP)], n_held - MERGE_ROW_GROUP
        if n_held:
            writer.write_table(pa.concat_tables(held), row_group_size=MERGE_ROW_GROUP)
