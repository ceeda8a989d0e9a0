"""Parameter records: a value with its unit, plausible bounds and the paper it came from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .units import check_unit

__all__ = ["Param"]


@dataclass(frozen=True)
class Param:
    """One model parameter.

    ``value`` is a plain float in ``unit`` (the model's canonical unit for that quantity).
    ``bounds`` are the physically or biologically admissible range; values outside are
    rejected when a scenario sets them.  ``source`` cites the paper and year (or says
    "assumption" and why).  ``iiv`` is the log-normal inter-individual variance ω² where a
    population model reports one.
    """

    name: str
    value: float
    unit: str = "1"
    bounds: tuple[float, float] = (0.0, math.inf)
    source: str = ""
    description: str = ""
    iiv: float | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"parameter name {self.name!r} must be a Python identifier")
        check_unit(self.unit, field=f"parameter {self.name}.unit")
        lo, hi = self.bounds
        if not (lo <= self.value <= hi):
            raise ValueError(
                f"parameter {self.name} = {self.value} {self.unit} outside its bounds [{lo}, {hi}]"
            )
