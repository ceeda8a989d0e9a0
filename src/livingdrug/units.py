"""Units at the edges: parse quantities with pint, hand plain floats in canonical units inward.

Canonical units (what every engine and model sees as a bare float):

======================  ===================
quantity                canonical unit
======================  ===================
time                    day (``d``)
cell amount             ``cell``
cell concentration      ``cell / µL``
transgene level         ``copies / µg`` (copies per µg genomic DNA)
cytokine concentration  ``pg / mL``
volume                  ``L``
mass (body weight)      ``kg``
rate                    ``1 / d``
======================  ===================

``cell`` and ``copies`` are counting units (dimension ``[cell]`` and ``[copies]``), so
"2e6 cell/kg" and "1e8 cells" are different dimensions and a mix-up is an error.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import pint

__all__ = [
    "UnitError",
    "ureg",
    "Q_",
    "parse_quantity",
    "to_canonical",
    "canonical_unit",
    "check_unit",
]


class UnitError(ValueError):
    """A value has a missing, unparsable or wrong unit.  ``field`` names where it came from."""

    def __init__(self, message: str, *, field: str = "", value: Any = None, expected: str = ""):
        super().__init__(message)
        self.field = field
        self.value = value
        self.expected = expected


def _make_registry() -> pint.UnitRegistry:
    reg: pint.UnitRegistry = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    reg.define("cell = [cell] = cells")
    reg.define("copies = [copies] = copy")
    # pint ships "d" as day already; "h" as hour.  Make "µ" spellings robust.
    reg.define("@alias microliter = uL = µL = μL = ul")
    reg.define("@alias microgram = ug = µg = μg")
    return reg


ureg: pint.UnitRegistry = _make_registry()
Q_ = ureg.Quantity

#: canonical unit for each dimensionality (as pint reports it)
_CANONICAL_BY_NAME: dict[str, str] = {
    "time": "d",
    "cell": "cell",
    "cell_concentration": "cell / uL",
    "copies_per_dna": "copies / ug",
    "cytokine": "pg / mL",
    "volume": "L",
    "mass": "kg",
    "rate": "1 / d",
}


@lru_cache(maxsize=512)
def _unit(text: str) -> pint.Unit:
    return ureg.parse_units(text.replace("µ", "u").replace("μ", "u"))


def canonical_unit(unit: str) -> str:
    """The canonical unit with the same dimensionality as ``unit`` (``unit`` itself if none).

    >>> canonical_unit("h")
    'd'
    """
    dim = _unit(unit).dimensionality
    for canon in _CANONICAL_BY_NAME.values():
        if _unit(canon).dimensionality == dim:
            return canon
    return unit


def check_unit(unit: str, *, field: str = "unit") -> str:
    """Return ``unit`` if pint understands it, else raise :class:`UnitError`."""
    try:
        _unit(unit)
    except Exception as exc:  # pint raises several exception types
        raise UnitError(
            f"{field}: unknown unit {unit!r} ({exc}); write a unit such as 'd', 'cell', 'cell/uL', '1/d'",
            field=field,
            value=unit,
        ) from None
    return unit


def parse_quantity(value: Any, *, field: str, expected: str) -> pint.Quantity:
    """Parse ``"2e6 cell/kg"`` (or a pint Quantity) and check its dimension against ``expected``.

    A bare number is accepted only when ``expected`` is dimensionless.
    """
    if isinstance(value, pint.Quantity):
        q = value
    elif isinstance(value, bool):
        raise UnitError(
            f"{field}: got {value!r}; expected a quantity in {expected!r}, e.g. \"1 {expected}\"",
            field=field,
            value=value,
            expected=expected,
        )
    elif isinstance(value, (int, float)):
        if _unit(expected).dimensionless:
            q = Q_(float(value), expected)
        else:
            raise UnitError(
                f"{field}: {value!r} has no unit; expected a quantity in {expected!r}, "
                f"write it as a string such as \"{value} {expected}\"",
                field=field,
                value=value,
                expected=expected,
            )
    elif isinstance(value, str):
        text = value.strip().replace("µ", "u").replace("μ", "u")
        try:
            q = ureg.Quantity(text)
        except Exception:
            raise UnitError(
                f"{field}: cannot read {value!r} as a quantity; expected a number and a unit "
                f"in {expected!r}, e.g. \"1 {expected}\"",
                field=field,
                value=value,
                expected=expected,
            ) from None
        if not isinstance(q, pint.Quantity):  # a bare number string
            q = Q_(float(q), "dimensionless")
    else:
        raise UnitError(
            f"{field}: got {type(value).__name__} {value!r}; expected a quantity in {expected!r}",
            field=field,
            value=value,
            expected=expected,
        )
    exp_unit = _unit(expected)
    if q.dimensionality != exp_unit.dimensionality:
        if q.dimensionless:
            hint = f"it has no unit; add one, e.g. \"{q.magnitude} {expected}\""
        else:
            hint = f"its unit {format(q.units, '~')!s} is not convertible to {expected!r}"
        raise UnitError(
            f"{field}: {value!r}: {hint}",
            field=field,
            value=value,
            expected=expected,
        )
    mag = q.to(exp_unit).magnitude
    if not math.isfinite(float(mag)):
        raise UnitError(
            f"{field}: {value!r} is not a finite number", field=field, value=value, expected=expected
        )
    return q


def to_canonical(value: Any, unit: str, *, field: str) -> float:
    """Parse ``value`` and return its magnitude in ``unit`` (usually a canonical unit)."""
    q = parse_quantity(value, field=field, expected=unit)
    return float(q.to(_unit(unit)).magnitude)
