"""livingdrug.rng: per-patient random streams."""

import numpy as np
import pytest

from livingdrug.rng import patient_draws


@pytest.mark.parametrize("seed", [0, 1, 20261125, 2**32 - 1, 2**32, 2**64 + 5, 2**130 + 99])
@pytest.mark.parametrize("key", [(), (0,), (3,), (7, 2**33)])
def test_patient_draws_are_numpys_own_streams_bit_for_bit(seed, key):
    """patient_draws hashes the seed sequences of all patients at once and re-seats one PCG64;
    every number equals default_rng(SeedSequence(seed, spawn_key=(i, *key))) — uniforms,
    exponentials (ziggurat) and normals, patient indices up to 2³² − 1 and beyond (the
    fallback)."""
    rng = np.random.default_rng(seed % 1000)
    patients = np.concatenate([[0, 1, 2**32 - 1], rng.integers(0, 10**7, 25)])

    def draw(g):
        return np.concatenate([g.random(3), [g.standard_exponential(), g.standard_normal()]])

    got = patient_draws(seed, patients, key, draw)
    for i, x in zip(patients, got, strict=True):
        ref = draw(np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(int(i), *key))))
        np.testing.assert_array_equal(x, ref)
    big = patient_draws(seed, [2**32, 2**40], key, draw)  # beyond 32-bit indices: numpy's path
    for i, x in zip([2**32, 2**40], big, strict=True):
        np.testing.assert_array_equal(x, draw(np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(i, *key)))))


def test_patient_draws_refuse_negative_seeds_and_patients():
    with pytest.raises(ValueError):
        patient_draws(-1, [0], (), lambda g: g.random())
    with pytest.raises(ValueError):
        patient_draws(1, [3, -2], (), lambda g: g.random())
    assert patient_draws(1, [], (), lambda g: g.random()) == []
