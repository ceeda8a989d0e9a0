"""Virtual trials: populations of virtual patients (inter-individual variability and
covariates), and later designs, endpoints and executors (DESIGN.md).

Science only: no files, no printing.  Patient *i* draws from its own random stream derived
from (run seed, i), so a population does not depend on how it is split into chunks.
"""

from .population import Population, PopulationInputError, Variability, sample_population

__all__ = ["Population", "PopulationInputError", "Variability", "sample_population"]
