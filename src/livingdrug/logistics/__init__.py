"""Manufacturing of CAR cell products and vein-to-vein logistics of a treatment programme.

:mod:`.manufacturing` makes one product from a frozen :class:`Process` (pure functions);
:mod:`.programme` simulates a treatment centre over months with SimPy.  See docs/logistics.md.
"""

from .manufacturing import (
    STEPS,
    LogisticsInputError,
    Patient,
    Process,
    Product,
    fitness,
    fold_expansion,
    make_product,
    phenotype,
    product_parameters,
    success_probability,
)
from .programme import (
    DAYS_PER_MONTH,
    OUTCOMES,
    Inventory,
    Programme,
    ProgrammeResult,
    response_probability,
    simulate_programme,
)

__all__ = [
    "STEPS", "LogisticsInputError", "Patient", "Process", "Product", "fitness", "fold_expansion",
    "make_product", "phenotype", "product_parameters", "success_probability",
    "DAYS_PER_MONTH", "OUTCOMES", "Inventory", "Programme", "ProgrammeResult",
    "response_probability", "simulate_programme",
]
