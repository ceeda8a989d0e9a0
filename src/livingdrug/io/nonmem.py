r"""Simulated concentrations as a NONMEM-style data set (one record per dose or sample).

Population-PK tools (NONMEM, PsN, nlmixr2, Monolix, Pumas) read a long table with one row per
event and the NM-TRAN data items (Beal SL, Sheiner LB, Boeckmann AJ, Bauer RJ, *NONMEM Users
Guides*, Part V "Introductory Guide" and Part VI "PREDPP Guide", 1989–2009, Icon Development
Solutions).  :func:`nonmem_table` turns simulated time courses ``values[n, T]`` of one
observable (e.g. CAR-T cells in blood, cells/µL) into such a table; :func:`write_nonmem_csv`
writes it and :func:`read_nonmem_csv` reads it back and checks the layout.

Columns, in this order
----------------------
========  ======================================================================  ============
item      meaning                                                                  unit
========  ======================================================================  ============
ID        patient, 1-based integer (``ids``; default 1…n)                          1
TIME      time after the patient's infusion ``(t − dose_time) · f``, with          h or d
          ``f = 24`` for ``time_unit="h"`` (the default: NONMEM's examples are in
          hours) and ``f = 1`` for ``time_unit="d"`` (livingdrug's own unit)
DV        the simulated observable on sample rows; 0 on dose rows and on missing   ``unit``
          samples; the LLOQ on below-LLOQ samples
AMT       the dose on the dose row (``dose_amounts[i]``), 0 on sample rows          ``dose_unit``
EVID      1 dose, 0 observation                                                     1
CMT       ``cmt_dose`` on the dose row, ``cmt_obs`` on sample rows                  1
MDV       1 on the dose row, on a missing sample (failed simulation, NaN) and,     1
          with ``blq_method="M1"``, on a below-LLOQ sample; 0 otherwise
BLQ       (only with ``lloq``) 1 when the sample is below the LLOQ, else 0          1
LLOQ      (only with ``lloq``) the lower limit of quantification                    ``unit``
WT, AGE…  covariates (upper-case names), the same on every row of a patient         as given
========  ======================================================================  ============

Records are sorted by ID, then TIME; the dose record comes before a sample at the same time,
so NONMEM sees the sample *after* the bolus — the same convention as livingdrug's engines,
whose outputs are right-continuous at events (the value at the dose time is the post-dose
state).  Each patient has one dose record (the infusion) at TIME 0.

Below the limit of quantification (Beal SL 2001, J Pharmacokinet Pharmacodyn 28:481):
``M1`` discards those samples (MDV = 1); ``M3`` keeps them (MDV = 0) with ``BLQ = 1`` and
``DV = LLOQ`` so that the control stream can use the likelihood of being below the LLOQ
(``F_FLAG = 1``, ``Y = PHI((LLOQ − IPRED)/W)``).  In both, DV holds the LLOQ on a BLQ row,
so switching method only means changing MDV (or ignoring it).

Units are not part of a NONMEM data file.  The CSV holds only the column-name row and the
records (read it with ``$DATA file.csv IGNORE=@``: records whose first character is a letter,
i.e. the column-name row, are skipped).  Units, the time origin, the compartments, the BLQ
method and suggested ``$INPUT`` / ``$DATA`` records go to a sidecar JSON next to the CSV
(``pk.csv`` → ``pk.json``).  NONMEM by default (``IGNORE=#``) skips lines starting with
``#``, but ``$DATA`` takes a single ``IGNORE=c`` character, which cannot skip both ``#``
comment lines and an alphabetic column-name row; :func:`read_nonmem_csv` does skip ``#``
lines, so hand-annotated files are still read.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_text

__all__ = [
    "NonmemTable",
    "NonmemLayoutError",
    "nonmem_table",
    "write_nonmem_csv",
    "read_nonmem_csv",
    "check_nonmem_layout",
    "sidecar_path",
    "STANDARD_ITEMS",
    "TIME_UNITS",
    "BLQ_METHODS",
]

#: the NM-TRAN data items every record has, in file order
STANDARD_ITEMS = ("ID", "TIME", "DV", "AMT", "EVID", "CMT", "MDV")
#: TIME unit → factor from days (livingdrug's time unit)
TIME_UNITS = {"h": 24.0, "d": 1.0}
#: how below-LLOQ samples are handled (Beal 2001)
BLQ_METHODS = ("M1", "M3")
#: items with a meaning to NM-TRAN/PREDPP or to this layout; a covariate may not use them
RESERVED_ITEMS = frozenset(
    STANDARD_ITEMS
    + ("BLQ", "LLOQ", "RATE", "SS", "II", "ADDL", "DATE", "DAT1", "DAT2", "DAT3", "L1", "L2",
       "PCMT", "CALL", "CONT", "XVID1", "XVID2", "XVID3", "XVID4", "XVID5", "DROP", "SKIP")
)
_INTEGER_ITEMS = ("ID", "EVID", "CMT", "MDV", "BLQ")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: tolerance (d) when matching requested sample times to the simulated times
_TIME_TOL = 1e-9


class NonmemLayoutError(ValueError):
    """A table or file does not follow the NONMEM data layout described in the module doc."""


@dataclass(frozen=True, eq=False)
class NonmemTable(Mapping[str, np.ndarray]):
    """A NONMEM-style data set: column name → array (one entry per record), usable as a dict
    (``dict(table)``, ``table["DV"]``), with ``units`` (column → unit) and ``settings``
    (time unit and origin, compartments, LLOQ and BLQ method, covariates, categories …)."""

    columns: dict[str, np.ndarray]
    units: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.columns[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def n_records(self) -> int:
        """Number of records (rows)."""
        return int(len(next(iter(self.columns.values())))) if self.columns else 0

    def input_record(self) -> str:
        """The ``$INPUT`` record naming the columns in file order."""
        return "$INPUT " + " ".join(self.columns)


def sidecar_path(path: Path | str) -> Path:
    """The JSON file holding the units of the CSV ``path`` (``pk.csv`` → ``pk.json``)."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        raise ValueError(
            f"NONMEM data file {str(p)!r} ends in .json, the name of its units sidecar; "
            "give the data set a .csv name (e.g. 'pk.csv')"
        )
    return p.with_suffix(".json")


# ---------------------------------------------------------------------------------------------
# building the table
# ---------------------------------------------------------------------------------------------


def _as_1d(name: str, x: Any, n: int, *, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise ValueError(f"{name} has shape {a.shape}; expected ({n},): {what}")
    return a


def _covariate_columns(
    covariates: Mapping[str, Any] | None, units: Mapping[str, str] | None, n: int
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, dict[str, int]]]:
    cols: dict[str, np.ndarray] = {}
    cunits: dict[str, str] = {}
    categories: dict[str, dict[str, int]] = {}
    given_units = {str(k).upper(): str(v) for k, v in (units or {}).items()}
    for raw, values in (covariates or {}).items():
        name = str(raw).upper()
        if not _NAME.match(name):
            raise ValueError(
                f"covariate name {raw!r} is not a NONMEM data item name; expected a letter "
                "followed by letters, digits or '_' (e.g. 'WT', 'AGE', 'LEUK_BURDEN')"
            )
        if name in RESERVED_ITEMS:
            raise ValueError(
                f"covariate name {raw!r} is a reserved NONMEM data item ({name}); rename it "
                "(e.g. 'WT' for weight, 'AGE' for age)"
            )
        if name in cols:
            raise ValueError(f"covariates {sorted(k for k in covariates or {} if str(k).upper() == name)} "
                             f"all become {name!r} in upper case; rename one of them")
        a = np.asarray(values)
        if a.shape != (n,):
            raise ValueError(f"covariate {raw!r} has shape {a.shape}; expected ({n},): one value per patient")
        if a.dtype.kind in "OUS":  # categorical: sorted labels → 1…k
            labels = sorted({str(x) for x in a})
            codes = {lab: k + 1 for k, lab in enumerate(labels)}
            cols[name] = np.array([codes[str(x)] for x in a], dtype=np.int64)
            categories[name] = codes
            cunits[name] = "category code"
            continue
        if a.dtype.kind == "b":
            cols[name] = a.astype(np.int64)
            cunits[name] = "1 (0 = false, 1 = true)"
            continue
        if a.dtype.kind not in "iuf":
            raise ValueError(f"covariate {raw!r} has values of type {a.dtype}; expected numbers, booleans or labels")
        f = a.astype(float)
        bad = np.flatnonzero(~np.isfinite(f))
        if bad.size:
            raise ValueError(
                f"covariate {raw!r} is missing or not finite for patient index {int(bad[0])} "
                f"(value {f[bad[0]]}); NONMEM data cannot hold NaN: impute it or leave the patient out"
            )
        if name not in given_units:
            raise ValueError(
                f"covariate {raw!r} has no unit; pass covariate_units={{{name!r}: 'kg'}} "
                "(or the right unit; '1' for a dimensionless number)"
            )
        cols[name] = f
        cunits[name] = given_units[name]
    return cols, cunits, categories


def nonmem_table(
    t: Any,
    values: Any,
    *,
    dose_amounts: Any,
    dose_time: Any = 0.0,
    observable: str = "cart_blood",
    unit: str = "cell/uL",
    dose_unit: str = "cell",
    time_unit: str = "h",
    covariates: Mapping[str, Any] | None = None,
    covariate_units: Mapping[str, str] | None = None,
    sample_times: Any = None,
    cmt_dose: int = 1,
    cmt_obs: int = 2,
    lloq: float | None = None,
    blq_method: str = "M1",
    ids: Any = None,
) -> NonmemTable:
    """NONMEM-style records from simulated time courses (layout: see the module doc).

    Parameters
    ----------
    t:
        Simulated times ``[T]`` (d), strictly increasing.
    values:
        ``[n, T]`` observable of ``n`` patients at ``t``, in ``unit`` (NaN = missing, e.g. a
        failed simulation: such samples get MDV = 1).
    dose_amounts:
        ``[n]`` dose of each patient (``dose_unit``, > 0), given at ``dose_time``.
    dose_time:
        Infusion time (d, on the scale of ``t``), a scalar or one per patient; TIME counts
        from it.
    observable, unit, dose_unit:
        What DV and AMT are, recorded in the sidecar (e.g. ``"cart_blood"``, ``"cell/uL"``,
        ``"cell"``).
    time_unit:
        ``"h"`` (default) or ``"d"``: the unit of TIME.
    covariates, covariate_units:
        ``name → [n]`` per-patient covariates, written in upper case (``WT``, ``AGE`` …),
        with ``name → unit`` for each numeric one.  Booleans become 0/1; labels (strings)
        become codes 1…k in sorted label order, recorded in ``settings["categories"]``.
    sample_times:
        Sampling times (d, on the scale of ``t``), each one of the ``t`` values and none
        before a patient's dose; default: every ``t`` at or after the dose.
    cmt_dose, cmt_obs:
        Compartment numbers (≥ 1) of the dose and the observations.
    lloq, blq_method:
        Lower limit of quantification (``unit``, > 0) and ``"M1"`` or ``"M3"`` (Beal 2001);
        without ``lloq`` every finite sample is an observation and there is no BLQ column.
    ids:
        ``[n]`` distinct IDs ≥ 1 (e.g. the trial's patient numbers + 1); default 1…n.

    Returns a :class:`NonmemTable`; raises ``ValueError`` naming the argument on bad input.
    """
    tt = np.asarray(t, dtype=float)
    if tt.ndim != 1 or tt.size == 0:
        raise ValueError(f"t has shape {tt.shape}; expected a non-empty 1-D array of times (d)")
    if not np.all(np.isfinite(tt)) or np.any(np.diff(tt) <= 0):
        raise ValueError("t must be finite and strictly increasing (d)")
    y = np.asarray(values, dtype=float)
    if y.ndim != 2 or y.shape[1] != tt.size:
        raise ValueError(
            f"values has shape {y.shape}; expected (n, {tt.size}): one row per patient, one "
            "column per time in t (use values[None, :] for a single patient)"
        )
    n = y.shape[0]
    if n == 0:
        raise ValueError("values has no patients (shape (0, T)); pass at least one row")
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit is {time_unit!r}; expected one of {sorted(TIME_UNITS)} ('h' hours, 'd' days)")
    factor = TIME_UNITS[time_unit]
    dose = _as_1d("dose_amounts", dose_amounts, n, what=f"one dose ({dose_unit}) per patient")
    bad = np.flatnonzero(~(np.isfinite(dose) & (dose > 0)))
    if bad.size:
        raise ValueError(
            f"dose_amounts[{int(bad[0])}] is {dose[bad[0]]}; expected a finite dose > 0 ({dose_unit}); "
            "leave patients who were not infused out of the table"
        )
    td = _as_1d("dose_time", dose_time, n, what="one infusion time (d) per patient, or a scalar")
    if not np.all(np.isfinite(td)):
        raise ValueError("dose_time must be finite (d)")
    if isinstance(cmt_dose, bool) or isinstance(cmt_obs, bool) or not all(
        isinstance(c, (int, np.integer)) and c >= 1 for c in (cmt_dose, cmt_obs)
    ):
        raise ValueError(f"cmt_dose and cmt_obs must be whole numbers ≥ 1; got cmt_dose={cmt_dose!r}, cmt_obs={cmt_obs!r}")
    if lloq is not None:
        if isinstance(lloq, bool) or not isinstance(lloq, (int, float, np.floating, np.integer)) or not (
            math.isfinite(float(lloq)) and float(lloq) > 0
        ):
            raise ValueError(f"lloq is {lloq!r}; expected a finite number > 0 in {unit}, or None")
        lloq = float(lloq)
    if blq_method not in BLQ_METHODS:
        raise ValueError(f"blq_method is {blq_method!r}; expected one of {list(BLQ_METHODS)} (Beal 2001)")
    if ids is None:
        id_arr = np.arange(1, n + 1, dtype=np.int64)
    else:
        raw = np.asarray(ids)
        if raw.shape != (n,) or raw.dtype.kind not in "iu" or np.any(raw < 1) or np.unique(raw).size != n:
            raise ValueError(f"ids must be {n} distinct whole numbers ≥ 1 (one per patient); got shape {raw.shape}, dtype {raw.dtype}")
        id_arr = raw.astype(np.int64)

    # sample indices into t
    if sample_times is None:
        sample_idx = np.arange(tt.size)
    else:
        s = np.unique(np.asarray(sample_times, dtype=float).reshape(-1))
        if s.size == 0 or not np.all(np.isfinite(s)):
            raise ValueError("sample_times must be a non-empty array of finite times (d)")
        j = np.clip(np.searchsorted(tt, s), 0, tt.size - 1)
        jm = np.clip(j - 1, 0, tt.size - 1)
        j = np.where(np.abs(tt[jm] - s) < np.abs(tt[j] - s), jm, j)
        miss = np.flatnonzero(np.abs(tt[j] - s) > _TIME_TOL * max(1.0, float(np.max(np.abs(tt)))))
        if miss.size:
            raise ValueError(
                f"sample_times contains {s[miss[0]]:g} d, which is not one of the simulated times t; "
                "add it to the scenario's output times (t_out) or sample at simulated times only"
            )
        early = np.flatnonzero(s < td.max() - _TIME_TOL)
        if early.size:
            raise ValueError(
                f"sample_times contains {s[early[0]]:g} d, before a patient's dose (dose_time up to "
                f"{td.max():g} d); TIME counts from the infusion, so sample at or after it"
            )
        sample_idx = j

    cov_cols, cov_units, categories = _covariate_columns(covariates, covariate_units, n)
    order = np.argsort(id_arr, kind="stable")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ID", "TIME", "DV", "AMT", "EVID", "CMT", "MDV", "BLQ")}
    cov_parts: dict[str, list[np.ndarray]] = {k: [] for k in cov_cols}
    for i in order:
        idx = sample_idx[tt[sample_idx] >= td[i] - _TIME_TOL]
        k = idx.size + 1
        obs = y[i, idx]
        missing = ~np.isfinite(obs)
        blq = np.zeros(idx.size, dtype=bool) if lloq is None else (~missing & (obs < lloq))
        dv = np.where(missing, 0.0, np.where(blq, lloq if lloq is not None else 0.0, obs))
        mdv = missing | (blq if blq_method == "M1" else np.zeros_like(blq))
        parts["ID"].append(np.full(k, id_arr[i], dtype=np.int64))
        time = np.maximum((tt[idx] - td[i]) * factor, 0.0)
        parts["TIME"].append(np.concatenate(([0.0], time)))
        parts["DV"].append(np.concatenate(([0.0], dv)))
        parts["AMT"].append(np.concatenate(([dose[i]], np.zeros(idx.size))))
        parts["EVID"].append(np.concatenate(([1], np.zeros(idx.size, dtype=np.int64))))
        parts["CMT"].append(np.concatenate(([int(cmt_dose)], np.full(idx.size, int(cmt_obs), dtype=np.int64))))
        parts["MDV"].append(np.concatenate(([1], mdv.astype(np.int64))))
        parts["BLQ"].append(np.concatenate(([0], blq.astype(np.int64))))
        for name, col in cov_cols.items():
            cov_parts[name].append(np.full(k, col[i], dtype=col.dtype))
    cols: dict[str, np.ndarray] = {}
    for name in STANDARD_ITEMS:
        dtype = np.int64 if name in _INTEGER_ITEMS else float
        cols[name] = np.concatenate(parts[name]).astype(dtype)
    if lloq is not None:
        cols["BLQ"] = np.concatenate(parts["BLQ"]).astype(np.int64)
        cols["LLOQ"] = np.full(cols["ID"].size, lloq)
    for name in cov_cols:
        cols[name] = np.concatenate(cov_parts[name])
    units = {
        "ID": "1", "TIME": time_unit, "DV": unit, "AMT": dose_unit, "EVID": "1", "CMT": "1", "MDV": "1",
    }
    if lloq is not None:
        units.update(BLQ="1", LLOQ=unit)
    units.update(cov_units)
    from .. import __version__

    settings: dict[str, Any] = {
        "observable": observable,
        "time_unit": time_unit,
        "time_origin": "the patient's infusion (TIME 0 = dose record)",
        "cmt_dose": int(cmt_dose),
        "cmt_obs": int(cmt_obs),
        "lloq": lloq,
        "blq_method": blq_method if lloq is not None else None,
        "covariates": list(cov_cols),
        "categories": categories,
        "integer_covariates": [k for k, v in cov_cols.items() if v.dtype.kind in "iu"],
        "patients": int(n),
        "livingdrug_version": __version__,
    }
    table = NonmemTable(cols, units, settings)
    check_nonmem_layout(table, cmt_dose=int(cmt_dose), covariates=list(cov_cols),
                        blq_method=settings["blq_method"])
    return table


# ---------------------------------------------------------------------------------------------
# checking the layout
# ---------------------------------------------------------------------------------------------


def _where(cols: Mapping[str, np.ndarray], r: int, source: str) -> str:
    return f"{source}record {r + 1} (ID {int(cols['ID'][r])}, TIME {float(cols['TIME'][r]):g})"


def check_nonmem_layout(
    table: Mapping[str, Any],
    *,
    cmt_dose: int | None = None,
    covariates: Sequence[str] | None = None,
    blq_method: str | None = None,
    source: str = "",
) -> None:
    """Raise :class:`NonmemLayoutError` unless ``table`` follows the layout of the module doc.

    Checked: the standard items are present, of equal length, finite; ID, EVID, CMT, MDV (and
    BLQ) are whole numbers, ID ≥ 1, CMT ≥ 1, EVID and MDV in {0, 1}; records sorted by ID then
    TIME with dose records before samples at the same time; a dose record has AMT > 0,
    DV = 0, MDV = 1 (and CMT = ``cmt_dose`` when given); a sample has AMT = 0; BLQ only on
    samples, with MDV = 1 under ``"M1"``; each of ``covariates`` constant within an ID.
    ``source`` (e.g. ``"pk.csv: "``) prefixes the messages.
    """
    cols = {str(k): np.asarray(v) for k, v in table.items()}
    missing = [k for k in STANDARD_ITEMS if k not in cols]
    if missing:
        raise NonmemLayoutError(
            f"{source}missing NONMEM data item(s) {missing}; a data set needs the columns {list(STANDARD_ITEMS)}"
        )
    lengths = {k: v.shape for k, v in cols.items()}
    if len({s for s in lengths.values()}) != 1 or cols["ID"].ndim != 1:
        raise NonmemLayoutError(f"{source}columns must be 1-D and of equal length; got shapes {lengths}")
    num: dict[str, np.ndarray] = {}
    for k, v in cols.items():
        if v.dtype.kind not in "biuf":
            raise NonmemLayoutError(f"{source}column {k} holds {v.dtype} values; NONMEM data items must be numbers")
        f = v.astype(float)
        bad = np.flatnonzero(~np.isfinite(f))
        if bad.size:
            raise NonmemLayoutError(f"{source}column {k} is not finite at record {int(bad[0]) + 1}; "
                                    "NONMEM data cannot hold NaN or infinity")
        num[k] = f
    for k in _INTEGER_ITEMS:
        if k in num:
            bad = np.flatnonzero(num[k] != np.round(num[k]))
            if bad.size:
                raise NonmemLayoutError(f"{source}{k} must be a whole number; {_where(cols, int(bad[0]), '')} has {num[k][bad[0]]}")
    ID, TIME, EVID, MDV, AMT, DV, CMT = (num[k] for k in ("ID", "TIME", "EVID", "MDV", "AMT", "DV", "CMT"))
    if ID.size == 0:
        raise NonmemLayoutError(f"{source}the data set has no records")

    def fail(mask: np.ndarray, problem: str) -> None:
        bad = np.flatnonzero(mask)
        if bad.size:
            raise NonmemLayoutError(f"{source}{_where(cols, int(bad[0]), '')}: {problem}")

    fail(ID < 1, "ID must be ≥ 1")
    fail(~np.isin(EVID, (0, 1)), "EVID must be 1 (dose) or 0 (observation)")
    fail(~np.isin(MDV, (0, 1)), "MDV must be 0 or 1")
    fail(CMT < 1, "CMT must be ≥ 1")
    step_id = np.diff(ID)
    fail(np.concatenate(([False], step_id < 0)), "records are not sorted by ID (each patient's records must be together, IDs ascending)")
    same = step_id == 0
    fail(np.concatenate(([False], same & (np.diff(TIME) < 0))), "TIME decreases within the patient; sort by ID then TIME")
    fail(np.concatenate(([False], same & (np.diff(TIME) == 0) & (EVID[1:] > EVID[:-1]))),
         "a dose record follows an observation at the same TIME; put the dose record first")
    dose = EVID == 1
    fail(dose & ~(AMT > 0), "a dose record (EVID 1) needs AMT > 0")
    fail(dose & (MDV != 1), "a dose record (EVID 1) needs MDV = 1")
    fail(dose & (DV != 0), "a dose record (EVID 1) needs DV = 0")
    if cmt_dose is not None:
        fail(dose & (CMT != cmt_dose), f"a dose record needs CMT = {cmt_dose} (the dose compartment)")
    fail(~dose & (AMT != 0), "an observation record (EVID 0) needs AMT = 0")
    if "BLQ" in num:
        blq = num["BLQ"]
        fail(~np.isin(blq, (0, 1)), "BLQ must be 0 or 1")
        fail(dose & (blq != 0), "BLQ must be 0 on a dose record")
        if blq_method == "M1":
            fail((blq == 1) & (MDV != 1), "a below-LLOQ sample needs MDV = 1 under method M1")
    for name in covariates or ():
        if name not in num:
            raise NonmemLayoutError(f"{source}covariate column {name} is missing")
        c = num[name]
        fail(np.concatenate(([False], same & (np.diff(c) != 0))),
             f"covariate {name} changes within the patient; a baseline covariate is constant per ID")


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def _fmt(x: float, digits: int) -> str:
    return format(float(x) + 0.0, f".{digits}G")


def write_nonmem_csv(table: Mapping[str, Any], path: Path | str, *, digits: int = 8, sidecar: bool = True) -> Path:
    """Write ``table`` (a :class:`NonmemTable` or a mapping of columns) as CSV, atomically.

    The file has the column-name row and one line per record (read it in NONMEM with
    ``$DATA <file> IGNORE=@``); whole-number items are written as integers, the others with
    ``digits`` significant digits (relative rounding error ≤ ½·10^(1−digits)).  With
    ``sidecar`` the units and settings go to :func:`sidecar_path` (``pk.json`` next to
    ``pk.csv``; written first, so a CSV on disk always has its sidecar).  The layout is
    checked first (:func:`check_nonmem_layout`).  Returns the CSV path.
    """
    path = Path(path)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
        raise ValueError(f"digits is {digits!r}; expected a whole number from 1 to 17 (significant digits)")
    units = dict(getattr(table, "units", {}) or {})
    settings = dict(getattr(table, "settings", {}) or {})
    check_nonmem_layout(table, cmt_dose=settings.get("cmt_dose"), covariates=settings.get("covariates"),
                        blq_method=settings.get("blq_method"))
    names = [str(k) for k in table]
    bad = [k for k in names if not _NAME.match(k)]
    if bad:
        raise NonmemLayoutError(f"column names {bad} are not NONMEM data item names (upper-case letter, then letters, digits, '_')")
    cols = [np.asarray(table[k]) for k in names]
    import pandas as pd

    frame: dict[str, np.ndarray] = {}
    for k, c in zip(names, cols, strict=True):
        if c.dtype.kind in "biu" or k in _INTEGER_ITEMS:
            frame[k] = c.astype(np.int64)
        else:
            frame[k] = c.astype(float) + 0.0  # no "-0"
    text = pd.DataFrame(frame).to_csv(index=False, float_format=f"%.{digits}G", lineterminator="\n")
    if sidecar:
        sp = sidecar_path(path)
        meta = {
            "format": "NONMEM-style data set written by livingdrug (simulated; research use only, not medical advice)",
            "data_file": path.name,
            "columns": {k: {"unit": units.get(k, "")} for k in names},
            "settings": settings,
            "nonmem": {
                "$INPUT": " ".join(names),
                "$DATA": f"{path.name} IGNORE=@",
                "note": "IGNORE=@ skips the column-name row (records starting with a letter)",
            },
        }
        from .results import to_jsonable

        atomic_write_text(sp, json.dumps(to_jsonable(meta), indent=2) + "\n")
    atomic_write_text(path, text)
    return path


def _parse_fast(text: str) -> tuple[list[str], np.ndarray] | None:
    """Numbers of a well-formed file with pandas' C parser; None when anything is unusual
    ('.' items, short rows, bad names …), so that :func:`_parse_slow` names the problem."""
    import pandas as pd

    try:
        df = pd.read_csv(io.StringIO(text), comment="#", dtype=float, keep_default_na=False, na_values=[],
                         skip_blank_lines=True, skipinitialspace=True)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    header = [str(h).strip().upper() for h in df.columns]
    data = df.to_numpy(dtype=float)
    if any(not _NAME.match(h) for h in header) or len(set(header)) != len(header) or not np.all(np.isfinite(data)):
        return None
    return header, data


def _parse_slow(text: str, src: str) -> tuple[list[str], np.ndarray]:
    """Record-by-record parse with messages naming the line and column."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise NonmemLayoutError(f"{src}no column-name row; the first line must name the columns, e.g. ID,TIME,DV,…")
    rows = list(csv.reader(lines))
    header = [h.strip().upper() for h in rows[0]]
    if any(not _NAME.match(h) for h in header) or len(set(header)) != len(header):
        raise NonmemLayoutError(f"{src}the first line {lines[0]!r} is not a row of distinct column names (ID,TIME,DV,…)")
    data = np.empty((len(rows) - 1, len(header)), dtype=float)
    for r, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise NonmemLayoutError(f"{src}data record {r + 1} has {len(row)} fields; the column-name row has {len(header)}")
        for c, cell in enumerate(row):
            s = cell.strip()
            try:
                data[r, c] = 0.0 if s == "." else float(s)
            except ValueError:
                raise NonmemLayoutError(f"{src}data record {r + 1}, column {header[c]}: {s!r} is not a number") from None
    return header, data


def read_nonmem_csv(path: Path | str, *, check: bool = True) -> NonmemTable:
    """Read a NONMEM-style CSV (column-name row, then records) and its sidecar if present.

    Lines starting with ``#`` are skipped (NONMEM's default ``IGNORE=#``); ``.`` reads as 0
    (NONMEM's convention for an empty item).  Whole-number items (ID, EVID, CMT, MDV, BLQ and
    coded covariates) come back as ``int64``, the others as ``float``.  With ``check`` the
    layout is verified (:func:`check_nonmem_layout`, with the settings of the sidecar), and a
    :class:`NonmemLayoutError` names the first record that breaks it.
    """
    path = Path(path)
    src = f"{path.name}: "
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NonmemLayoutError(f"cannot read NONMEM data file {str(path)!r}: {exc.strerror or exc}") from None
    fast = _parse_fast(text)
    if fast is not None:
        header, data = fast
    else:
        header, data = _parse_slow(text, src)
    meta: dict[str, Any] = {}
    sp = sidecar_path(path)
    if sp.exists():
        try:
            meta = json.loads(sp.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NonmemLayoutError(f"cannot read the sidecar {str(sp)!r}: {exc}") from None
    settings = dict(meta.get("settings") or {})
    units = {k: str(v.get("unit", "")) for k, v in (meta.get("columns") or {}).items() if isinstance(v, dict)}
    int_cols = set(_INTEGER_ITEMS) | set(settings.get("integer_covariates") or ())
    cols: dict[str, np.ndarray] = {}
    for c, name in enumerate(header):
        v = data[:, c]
        if name in int_cols and np.all(np.isfinite(v)) and np.all(v == np.round(v)):
            cols[name] = v.astype(np.int64)
        else:
            cols[name] = v.copy()
    table = NonmemTable(cols, units, settings)
    if check:
        check_nonmem_layout(table, cmt_dose=settings.get("cmt_dose"), covariates=settings.get("covariates"),
                            blq_method=settings.get("blq_method"), source=src)
    return table
