"""Explicit randomness: one seed per run, one independent stream per patient.

Patient *i* of a run always draws from ``SeedSequence(seed, spawn_key=(i,))``, so a result
does not depend on how the patients are split into chunks, processes or cluster workers.
Global random state is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

__all__ = ["as_generator", "patient_seed_sequence", "patient_generators", "patient_draws"]

T = TypeVar("T")


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


# numpy's SeedSequence (numpy/random/bit_generator.pyx; O'Neill's seed_seq design) and the
# seeding of PCG64 (pcg64.c, pcg_setseq_128_srandom_r), for many spawn keys at once
_POOL = 4
_INIT_A, _MULT_A = np.uint32(0x43B0D7E5), np.uint32(0x931E8875)
_INIT_B, _MULT_B = np.uint32(0x8B51F9DD), np.uint32(0x58F38DED)
_MIX_L, _MIX_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341
_MASK128 = (1 << 128) - 1


def _words(n: int) -> list[int]:
    """numpy's _int_to_uint32_array: little-endian 32-bit words, [0] for 0."""
    out = [n & 0xFFFFFFFF]
    n >>= 32
    while n:
        out.append(n & 0xFFFFFFFF)
        n >>= 32
    return out


def _pcg64_states(seed: int, patients: np.ndarray, key: Sequence[int]) -> list[tuple[int, int]] | None:
    """``(state, inc)`` of ``PCG64(SeedSequence(seed, spawn_key=(i, *key)))`` for every ``i``
    in ``patients`` (all below 2³², so every entropy array has the same length); None if a
    patient index is out of that range."""
    if patients.size == 0 or int(patients.max()) >= 1 << 32:
        return None
    run = _words(int(seed))
    run += [0] * max(0, _POOL - len(run))
    cols = [np.full(patients.size, w, dtype=np.uint32) for w in run]
    cols.append(patients.astype(np.uint32))
    for k in key:
        cols += [np.full(patients.size, w, dtype=np.uint32) for w in _words(int(k))]
    h = _INIT_A

    def hashmix(v: np.ndarray) -> np.ndarray:
        nonlocal h
        v = v ^ h
        h = np.uint32(int(h) * int(_MULT_A) & 0xFFFFFFFF)
        v = v * h
        return v ^ (v >> np.uint32(16))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r: np.ndarray = _MIX_L * x - _MIX_R * y
        return r ^ (r >> np.uint32(16))

    with np.errstate(over="ignore"):
        pool = [hashmix(cols[i]) for i in range(_POOL)]
        for src in range(_POOL):
            for dst in range(_POOL):
                if src != dst:
                    pool[dst] = mix(pool[dst], hashmix(pool[src]))
        for src in range(_POOL, len(cols)):
            for dst in range(_POOL):
                pool[dst] = mix(pool[dst], hashmix(cols[src]))
        hb = _INIT_B
        words = []
        for i in range(8):  # generate_state(4, uint64): 8 words, pairs little-endian
            v = pool[i % _POOL] ^ hb
            hb = np.uint32(int(hb) * int(_MULT_B) & 0xFFFFFFFF)
            v = v * hb
            words.append((v ^ (v >> np.uint32(16))).astype(np.uint64))
    s64 = [words[2 * j] | (words[2 * j + 1] << np.uint64(32)) for j in range(4)]
    out = []
    for a, b, c, d in zip(*(w.tolist() for w in s64), strict=True):
        inc = (((c << 64) | d) << 1 | 1) & _MASK128
        state = ((inc + ((a << 64) | b)) * _PCG_MULT + inc) & _MASK128
        out.append((state, inc))
    return out


def patient_draws(seed: int, patients: np.ndarray | Sequence[int], key: Sequence[int],
                  draw: Callable[[np.random.Generator], T]) -> list[T]:
    """``[draw(default_rng(SeedSequence(seed, spawn_key=(i, *key)))) for i in patients]``, the
    same numbers, ~5x faster: the seed sequences are hashed for all patients at once (numpy
    uint32 arithmetic) and one PCG64 generator is set to each patient's state in turn instead
    of building a SeedSequence, a PCG64 and a Generator per patient (≈ 10 µs each)."""
    idx = np.asarray(patients, dtype=np.int64)
    if int(seed) < 0 or (idx.size and int(idx.min()) < 0):
        raise ValueError("seed and patient indices must be non-negative integers")
    states = _pcg64_states(int(seed), idx, key)
    if states is None:
        return [draw(np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(int(i), *key))))
                for i in idx]
    bg = np.random.PCG64(0)
    g = np.random.Generator(bg)
    out = []
    for state, inc in states:
        bg.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc}, "has_uint32": 0, "uinteger": 0}
        out.append(draw(g))
    return out
