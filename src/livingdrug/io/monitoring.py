"""Read patient monitoring data (a time-stamped CSV of clinical signs) for ASTCT grading,
and write the graded table.

The file (UTF-8, comma-separated, one header row) has these columns; only ``time`` is
required, a missing column means "not recorded", and so does an empty cell (except in
``vasopressors``, where empty means none):

=============================== ====================================================================
column                          content
=============================== ====================================================================
``time``                        ISO 8601 date-time (``2024-05-02T14:00``) or hours (a number); every
                                row the same kind; strictly increasing
``temperature_c``               body temperature (°C)
``sbp_mmhg``                    systolic blood pressure (mmHg)
``vasopressors``                semicolon-separated drug names, empty = none: norepinephrine
                                (noradrenaline), epinephrine (adrenaline), phenylephrine, dopamine,
                                vasopressin (never counted towards "multiple"), angiotensin_ii
``o2_device``                   none, nasal_cannula, blow_by, high_flow, facemask, non_rebreather,
                                venturi, cpap, bipap, mechanical_ventilation
``o2_flow_l_min``               oxygen flow (L/min); a nasal cannula above 6 L/min is high-flow
``antipyretic_or_anticytokine`` true/false: antipyretics or anti-cytokine therapy (tocilizumab,
                                steroids, anakinra) given **at or before** this time; once true it
                                stays true (an empty cell after a true one is true; an explicit
                                false after it is an error)
``ice_score``                   ICE score, a whole number 0–10
``consciousness``               spontaneous, voice, tactile, unarousable
``seizure``                     none, brief (resolving rapidly, or non-convulsive on EEG),
                                prolonged (> 5 min, or repeated without return to baseline)
``motor_weakness``              true/false (deep focal motor weakness)
``cerebral_edema``              none, focal, diffuse
=============================== ====================================================================

Booleans are ``true``/``false`` (also ``yes``/``no``, ``1``/``0``); names are case-insensitive.
Every bad cell raises :class:`MonitoringError` naming the file, the row (spreadsheet
numbering: the header is row 1, the first data row is row 2), the column, the value, what was
expected and how to fix it.  Nothing is skipped silently; only completely blank lines (no
cells at all) are ignored.

Times: numbers are hours on the file's own clock (e.g. since infusion) and are kept as they
are; date-times become hours since the first row.  Grading follows Lee DW et al. 2019, Biol
Blood Marrow Transplant 25:625 (:mod:`livingdrug.clinical.grading`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_text

__all__ = [
    "MonitoringError",
    "MonitoringData",
    "COLUMNS",
    "VASOPRESSORS",
    "O2_DEVICES",
    "read_monitoring",
    "graded_table",
    "write_graded_csv",
    "GRADE_COLUMNS",
]

#: drug name → canonical name; vasopressin is recorded separately (never "multiple")
VASOPRESSORS: dict[str, str] = {
    "norepinephrine": "norepinephrine",
    "noradrenaline": "norepinephrine",
    "epinephrine": "epinephrine",
    "adrenaline": "epinephrine",
    "phenylephrine": "phenylephrine",
    "dopamine": "dopamine",
    "angiotensin_ii": "angiotensin_ii",
    "vasopressin": "vasopressin",
}
#: drugs that are often charted beside vasopressors but are not vasopressors
_NOT_VASOPRESSORS = {
    "dobutamine": "dobutamine is an inotrope, not a vasopressor, and does not count in ASTCT CRS grading",
    "milrinone": "milrinone is an inotrope, not a vasopressor, and does not count in ASTCT CRS grading",
}
#: oxygen device → ``o2_level`` (0 none, 1 low-flow, 2 high-flow/mask, 3 positive pressure)
O2_DEVICES: dict[str, int] = {
    "none": 0,
    "nasal_cannula": 1,
    "blow_by": 1,
    "high_flow": 2,
    "facemask": 2,
    "non_rebreather": 2,
    "venturi": 2,
    "cpap": 3,
    "bipap": 3,
    "mechanical_ventilation": 3,
}
_CONSCIOUSNESS = {"spontaneous": 0, "voice": 1, "tactile": 2, "unarousable": 3}
_SEIZURE = {"none": 0, "brief": 1, "prolonged": 2}
_EDEMA = {"none": 0, "focal": 1, "diffuse": 2}
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}

#: the known columns, in the order of the issue
COLUMNS = (
    "time",
    "temperature_c",
    "sbp_mmhg",
    "vasopressors",
    "o2_device",
    "o2_flow_l_min",
    "antipyretic_or_anticytokine",
    "ice_score",
    "consciousness",
    "seizure",
    "motor_weakness",
    "cerebral_edema",
)

#: the columns of the graded table after ``time``
GRADE_COLUMNS = (
    "hours",
    "fever",
    "crs_hypotension_grade",
    "crs_hypoxia_grade",
    "crs_grade",
    "icans_ice_grade",
    "icans_consciousness_grade",
    "icans_seizure_grade",
    "icans_motor_grade",
    "icans_edema_grade",
    "icans_grade",
)

_MAX_BYTES = 50 * 1024 * 1024


class MonitoringError(ValueError):
    """A problem with a monitoring file, naming the place, the value, what was expected and
    how to fix it (row numbers as in a spreadsheet: the header is row 1)."""

    def __init__(
        self,
        *,
        file: str,
        expected: str,
        hint: str = "",
        row: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        self.file, self.row, self.column, self.value = file, row, column, value
        self.expected, self.hint = expected, hint
        where = file
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        msg = where
        if value is not None:
            msg += f": value {value!r}"
        msg += f": expected {expected}"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


class _Cell(Exception):
    def __init__(self, expected: str, hint: str = "") -> None:
        super().__init__(expected)
        self.expected, self.hint = expected, hint


@dataclass(frozen=True)
class MonitoringData:
    """Signs read from a monitoring file, in the clinical-sign contract's encoding
    (:mod:`livingdrug.clinical.grading`; NaN = not recorded).

    ``time_text`` — the ``time`` cells as written; ``hours`` — hours (numbers as given,
    date-times since the first row); ``time_kind`` — ``"hours"`` or ``"datetime"``;
    ``rows`` — spreadsheet row of each record; ``columns`` — the columns the file has;
    ``signs`` — ``temperature_c``, ``sbp_mmhg``, ``vasopressors_n`` (vasopressin not
    counted), ``vasopressin`` (0/1), ``o2_level``, ``o2_flow_l_min``, ``anticytokine_given``,
    ``ice_score``, ``consciousness_level``, ``seizure_level``, ``motor_weakness``,
    ``cerebral_edema_level``, each a float array per row, all NaN when the column is absent."""

    source: str
    time_text: tuple[str, ...]
    hours: np.ndarray
    time_kind: str
    rows: tuple[int, ...]
    columns: tuple[str, ...]
    signs: Mapping[str, np.ndarray] = field(default_factory=dict)


def _number(lo: float, hi: float, unit: str, what: str, hint: str = "") -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            extra = "; use a point as the decimal separator" if "," in text else ""
            raise _Cell(f"{what}: a number in {unit}", f"write a plain number such as {lo + (hi - lo) / 4:g}{extra}") from None
        if not math.isfinite(v) or not (lo <= v <= hi):
            raise _Cell(f"{what} from {lo:g} to {hi:g} {unit}", hint or "check the value and its unit")
        return v

    return parse


def _choice(table: Mapping[str, int], what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        key = text.strip().lower()
        if key not in table:
            raise _Cell(f"{what}: one of {', '.join(table)}", "use one of these names (or leave the cell empty if not recorded)")
        return float(table[key])

    return parse


def _bool(text: str) -> float:
    key = text.strip().lower()
    if key in _TRUE:
        return 1.0
    if key in _FALSE:
        return 0.0
    raise _Cell("true or false (also yes/no, 1/0)", "write true or false, or leave the cell empty if not recorded")


def _ice(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v == int(v) and 0 <= v <= 10):
        raise _Cell(
            "an ICE score: a whole number from 0 to 10",
            "the ICE score counts points (orientation 4, naming 3, commands 1, writing 1, attention 1)",
        )
    return v


_TEMPERATURE = _number(25.0, 45.0, "degC", "body temperature", "give it in degrees Celsius (from °F: (F − 32) / 1.8)")
_SBP = _number(0.0, 300.0, "mmHg", "systolic blood pressure")
_FLOW = _number(0.0, 100.0, "L/min", "oxygen flow")

_PARSERS: dict[str, tuple[str, Callable[[str], float]]] = {
    "temperature_c": ("temperature_c", _TEMPERATURE),
    "sbp_mmhg": ("sbp_mmhg", _SBP),
    "o2_flow_l_min": ("o2_flow_l_min", _FLOW),
    "ice_score": ("ice_score", _ice),
    "consciousness": ("consciousness_level", _choice(_CONSCIOUSNESS, "level of consciousness")),
    "seizure": ("seizure_level", _choice(_SEIZURE, "seizure")),
    "motor_weakness": ("motor_weakness", _bool),
    "cerebral_edema": ("cerebral_edema_level", _choice(_EDEMA, "cerebral oedema")),
}

_SIGN_NAMES = (
    "temperature_c", "sbp_mmhg", "vasopressors_n", "vasopressin", "o2_level", "o2_flow_l_min",
    "anticytokine_given", "ice_score", "consciousness_level", "seizure_level", "motor_weakness",
    "cerebral_edema_level",
)


def _vasopressors(text: str) -> tuple[float, float]:
    """``(vasopressors_n without vasopressin, vasopressin 0/1)`` of a drug list."""
    names = [n.strip().lower() for n in text.split(";")]
    names = [n for n in names if n]
    if names == ["none"]:
        return 0.0, 0.0
    drugs: set[str] = set()
    for n in names:
        key = n.replace(" ", "_").replace("-", "_")
        if key in _NOT_VASOPRESSORS:
            raise _Cell(
                "semicolon-separated vasopressor names: " + ", ".join(sorted(VASOPRESSORS)),
                f"{_NOT_VASOPRESSORS[key]}; remove it from this column",
            )
        if key not in VASOPRESSORS:
            raise _Cell(
                "semicolon-separated vasopressor names: " + ", ".join(sorted(VASOPRESSORS)),
                f"unknown drug {n!r}: use one of the known names (empty cell = no vasopressor)",
            )
        drugs.add(VASOPRESSORS[key])
    vp = 1.0 if "vasopressin" in drugs else 0.0
    return float(len(drugs - {"vasopressin"})), vp


def _parse_time(text: str) -> tuple[str, float | _dt.datetime]:
    try:
        v = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(v):
            raise _Cell("a finite number of hours or an ISO 8601 date-time", "write e.g. 36 or 2024-05-02T14:00")
        return "hours", v
    try:
        return "datetime", _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise _Cell(
            "an ISO 8601 date-time (e.g. 2024-05-02T14:00) or a number of hours",
            "write the date as YYYY-MM-DD and the time as HH:MM, joined by T or a space",
        ) from None


def read_monitoring(path: str | Path) -> MonitoringData:
    """Read and validate a monitoring CSV (format in the module doc); every problem raises
    :class:`MonitoringError`."""
    path = Path(path)
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MonitoringError(file=file, expected="an existing CSV file", hint="file not found; check the path") from None
    except OSError as exc:
        raise MonitoringError(file=file, expected="a readable CSV file", hint=f"could not read it ({exc.strerror})") from None
    if len(raw) > _MAX_BYTES:
        raise MonitoringError(file=file, expected=f"at most {_MAX_BYTES // 2**20} MiB", hint="split the file by patient")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MonitoringError(
            file=file, expected="UTF-8 text", hint=f"byte {exc.start} is not UTF-8; save the file as CSV UTF-8"
        ) from None
    records = list(csv.reader(io.StringIO(text, newline="")))
    if not records or not any(c.strip() for c in records[0]):
        raise MonitoringError(
            file=file, row=1, expected="a header row naming the columns (at least 'time')",
            hint="the file is empty or its first row is blank",
        )
    header = [c.strip().lower() for c in records[0]]
    for j, name in enumerate(header):
        if name not in COLUMNS:
            raise MonitoringError(
                file=file, row=1, column=records[0][j], expected="known column names: " + ", ".join(COLUMNS),
                hint="rename or remove this column (missing optional columns mean 'not recorded')",
            )
        if header.count(name) > 1:
            raise MonitoringError(file=file, row=1, column=name, expected="each column once", hint="remove the duplicate column")
    if "time" not in header:
        raise MonitoringError(
            file=file, row=1, column="time", expected="a 'time' column (ISO 8601 date-time or hours)",
            hint="add a column named time; columns present: " + ", ".join(header),
        )
    col = {name: j for j, name in enumerate(header)}
    data = {k: [] for k in _SIGN_NAMES}  # type: dict[str, list[float]]
    times: list[str] = []
    stamps: list[Any] = []
    rows: list[int] = []
    kind: str | None = None
    treated_since: int | None = None

    for i, rec in enumerate(records[1:], start=2):
        if not rec:
            continue  # a blank line: no cells, nothing to skip
        if len(rec) != len(header):
            raise MonitoringError(
                file=file, row=i, expected=f"{len(header)} cells (one per header column)",
                hint=f"this row has {len(rec)}; quote cells that contain commas",
            )

        def cell(name: str, rec: list[str] = rec) -> str | None:
            return rec[col[name]].strip() if name in col else None

        def bad(name: str, exc: _Cell, row: int = i) -> MonitoringError:
            return MonitoringError(
                file=file, row=row, column=name, value=cell(name), expected=exc.expected, hint=exc.hint
            )

        t = cell("time")
        if not t:
            raise MonitoringError(file=file, row=i, column="time", value="", expected="a time in every row", hint="fill in the time of this observation")
        try:
            k, stamp = _parse_time(t)
        except _Cell as exc:
            raise bad("time", exc) from None
        if kind is None:
            kind = k
        elif k != kind:
            raise MonitoringError(
                file=file, row=i, column="time", value=t, expected=f"the same kind of time in every row ({'hours' if kind == 'hours' else 'ISO date-times'}, as in row {rows[0]})",
                hint="use date-times throughout or hours throughout",
            )
        if stamps:
            try:
                later = stamp > stamps[-1]  # type: ignore[operator]
            except TypeError:
                raise MonitoringError(
                    file=file, row=i, column="time", value=t, expected="date-times that all have a UTC offset or all have none",
                    hint=f"row {rows[-1]} is {times[-1]!r}; write every time the same way",
                ) from None
            if not later:
                raise MonitoringError(
                    file=file, row=i, column="time", value=t, expected=f"a time after the previous row's ({times[-1]!r}, row {rows[-1]})",
                    hint="times must increase strictly: sort the rows by time and merge rows with the same time",
                )
        times.append(t)
        stamps.append(stamp)
        rows.append(i)

        for csv_name, (sign, parse) in _PARSERS.items():
            v = cell(csv_name)
            if v:
                try:
                    data[sign].append(parse(v))
                except _Cell as exc:
                    raise bad(csv_name, exc) from None
            else:
                data[sign].append(math.nan)

        v = cell("vasopressors")
        if v is None:
            n_v, vp = math.nan, math.nan
        else:
            try:
                n_v, vp = _vasopressors(v)
            except _Cell as exc:
                raise bad("vasopressors", exc) from None
        data["vasopressors_n"].append(n_v)
        data["vasopressin"].append(vp)

        dev = cell("o2_device")
        flow = data["o2_flow_l_min"][-1]
        if dev:
            try:
                level = _choice(O2_DEVICES, "oxygen device")(dev)
            except _Cell as exc:
                raise bad("o2_device", exc) from None
            if level == 0 and flow > 0:
                raise MonitoringError(
                    file=file, row=i, column="o2_flow_l_min", value=cell("o2_flow_l_min"),
                    expected="no oxygen flow when o2_device is none", hint="give the device or set the flow to 0",
                )
            if dev.lower() == "nasal_cannula" and flow > 6.0:
                level = 2.0  # a nasal cannula above 6 L/min is high-flow (Lee 2019)
        else:
            level = math.nan
            if flow > 0:
                raise MonitoringError(
                    file=file, row=i, column="o2_device", value=dev or "",
                    expected="the oxygen device of a row that has an oxygen flow",
                    hint="ASTCT grades hypoxia by the device; fill in o2_device",
                )
        data["o2_level"].append(level)

        a = cell("antipyretic_or_anticytokine")
        given = math.nan
        if a:
            try:
                given = _bool(a)
            except _Cell as exc:
                raise bad("antipyretic_or_anticytokine", exc) from None
            if given == 0.0 and treated_since is not None:
                raise MonitoringError(
                    file=file, row=i, column="antipyretic_or_anticytokine", value=a,
                    expected=f"true (therapy was given at or before row {treated_since})",
                    hint="the column records whether therapy was given at or before this time, so once true it "
                    "stays true: write true or leave the cell empty",
                )
            if given == 1.0 and treated_since is None:
                treated_since = i
        if treated_since is not None:
            given = 1.0
        data["anticytokine_given"].append(given)

    if not rows:
        raise MonitoringError(file=file, row=2, expected="at least one data row after the header", hint="the file has a header only")
    if kind == "hours":
        hours = np.asarray(stamps, dtype=float)
    else:
        t0 = stamps[0]
        hours = np.array([(s - t0).total_seconds() / 3600.0 for s in stamps], dtype=float)
    signs = {k: np.asarray(v, dtype=float) for k, v in data.items()}
    return MonitoringData(
        source=file,
        time_text=tuple(times),
        hours=hours,
        time_kind=kind or "hours",
        rows=tuple(rows),
        columns=tuple(header),
        signs=signs,
    )


def graded_table(data: MonitoringData, grades: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """One dict per row: ``time`` (as written), ``hours`` and the :data:`GRADE_COLUMNS` of
    ``grades`` (:func:`livingdrug.clinical.grading.grade_signs`); ``None`` = not recorded."""
    out = []
    for i, t in enumerate(data.time_text):
        row: dict[str, Any] = {"time": t, "hours": float(data.hours[i])}
        for c in GRADE_COLUMNS[1:]:
            v = float(np.asarray(grades[c])[i])
            row[c] = None if math.isnan(v) else int(v)
        out.append(row)
    return out


def write_graded_csv(data: MonitoringData, grades: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Write the graded table (``time``, ``hours``, fever, CRS and ICANS domain grades and
    grades; an empty cell = that domain was not recorded) atomically to ``path``."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("time", *GRADE_COLUMNS))
    for row in graded_table(data, grades):
        w.writerow(["" if row[k] is None else (f"{row[k]:.10g}" if k == "hours" else row[k]) for k in ("time", *GRADE_COLUMNS)])
    return atomic_write_text(Path(path), buf.getvalue())
