"""Virtual trials, the science part (DESIGN.md): populations of virtual patients
(inter-individual variability and covariates), calibration of populations to published
trials, and dose-escalation designs.  No files, no printing.  Patient *i* draws from its own
random stream derived from (run seed, i), so results do not depend on how work is split.

The runners that simulate patients live one layer up: :mod:`livingdrug.trial` (chunked,
resumable, Dask), :mod:`livingdrug.comparison` (arms in the same patients) and
:mod:`livingdrug.escalation` (dose escalation with virtual patients).
"""

from .calibration import (
    CalibrationInputError,
    Target,
    calibrate_weights,
    calibration_table,
    effective_sample_size,
    maxent_weights,
    select_allen2016,
)
from .designs import (
    DesignInputError,
    EscalationResult,
    OperatingCharacteristics,
    boin,
    boin_boundaries,
    dlt_from_grades,
    operating_characteristics,
    three_plus_three,
)
from .population import Population, PopulationInputError, Variability, sample_population

__all__ = [
    "Population", "PopulationInputError", "Variability", "sample_population",
    "CalibrationInputError", "Target", "calibrate_weights", "calibration_table", "effective_sample_size",
    "maxent_weights", "select_allen2016",
    "DesignInputError", "EscalationResult", "OperatingCharacteristics", "boin", "boin_boundaries",
    "dlt_from_grades", "operating_characteristics", "three_plus_three",
]
