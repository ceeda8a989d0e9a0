"""Explicit randomness: one seed per run, one independent stream per patient.

Patient *i* of a run always draws from ``SeedSequence(seed, spawn_key=(i,))``, so a result
does not depend on how the patients are split into chunks, processes or cluster workers.
Global random state is never touched.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_generator", "patient_seed_sequence", "patient_generators"]


def as_generator(seed: int | np.random.Generator | np.random.SeedSequence | None) -> np.random.Generator:
    """Turn a seed (int, SeedSequence, Generator or None for fresh entropy) into a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def patient_seed_sequence(seed: int, patient: int) -> np.random.SeedSequence:
    """The seed sequence of patient ``patient`` in a run seeded with ``seed``."""
    if seed < 0 or patient < 0:
        raise ValueError("seed and patient index must be non-negative integers")
    return np.random.SeedSequence(entropy=seed, spawn_key=(patient,))


def patient_generators(seed: int, patients: range | list[int]) -> list[np.random.Generator]:
    """One independent Generator per patient index (identical whatever the chunking)."""
    return [np.random.default_rng(patient_seed_sequence(seed, i)) for i in patients]
