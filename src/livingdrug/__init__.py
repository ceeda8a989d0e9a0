"""livingdrug: simulate CAR-T and CAR-NK cell therapy, from one engineered cell to a
virtual clinical trial.  For research and education only; not medical advice."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
