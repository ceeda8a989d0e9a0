r"""Clonality of CAR-T cells: clone sizes, shares, diversity and dominance.

Pure numpy functions of trajectories (no I/O, no global random state).  A *clone* is the
progeny of one vector-integration event: the model ``car_t`` with ``tracked_clones`` /
``advantaged_clone`` lists each clone's species in ``network.meta["clones"]`` (an ordered
mapping ``{"bulk": [...], "c1": [...], …, "adv": [...]}``; ``bulk`` is every untracked CAR-T
cell, i.e. many small clones lumped together, and is left out of the clone axis unless asked).

Definitions (``n_i ≥ 0`` the size of clone ``i`` in cells, ``N = Σ n_i``, ``p_i = n_i/N``):

* **share** ``p_i``; the **largest share** ``max_i n_i / N_tot`` where ``N_tot`` defaults to
  ``N`` but may be the whole CAR-T population (e.g. the ``car_t_total`` observable), as in
  "94 % of CAR-T cells descended from one clone" (Fraietta JA et al. 2018 Nature 558:307);
* **Shannon entropy** ``H = −Σ p_i ln p_i`` (natural logarithm, nats; Shannon CE 1948 Bell
  Syst Tech J 27:379), with ``0 ln 0 = 0``.  ``H = ln K`` for ``K`` equal clones, 0 for one.
  **Pielou evenness** ``J = H / ln S`` with ``S`` the number of clones present (Pielou EC 1966
  J Theor Biol 13:131); 1 for equal clones, NaN when ``S ≤ 1`` (evenness undefined);
* **Simpson's index** ``λ = Σ p_i²`` — the probability that two cells drawn at random (with
  replacement) belong to the same clone (Simpson EH 1949 Nature 163:688); ``1/K`` for ``K``
  equal clones, 1 for one clone.  Simpson's own unbiased estimator from a finite sample of
  counts is ``Σ n_i(n_i − 1) / (N(N − 1))`` (``unbiased=True``).  The **Gini–Simpson** index
  is ``1 − λ`` (probability that the two cells differ);
* **dominance**: the first time any clone's share reaches a threshold (e.g. 0.9) and the
  largest share at the CAR-T peak (the time the total is largest).

Integration-site sequencing (ligation-mediated PCR of vector–genome junctions; e.g. Nobles CL
et al. 2020 J Clin Invest 130:673 on CD19 CAR-T products and day-28 blood) reports these
indices on the *sampled* abundances, not the true ones.  :func:`sample_integration_sites`
draws such a sample: a multinomial of ``reads`` with probabilities ``p_i`` (each read comes
from a cell of clone ``i`` with probability ``p_i``), so the diversity of the sequenced sample
can be compared with the model's truth.

All-zero rows (no CAR-T cell of the clones considered, e.g. after the product is lost): shares,
Shannon, evenness, Simpson and the largest share are NaN — "composition undefined", not
"zero diversity" — and no warning is raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..rng import as_generator

__all__ = [
    "clone_names",
    "clone_sizes",
    "shares",
    "largest_share",
    "richness",
    "shannon",
    "evenness",
    "simpson",
    "gini_simpson",
    "Dominance",
    "dominance",
    "sample_integration_sites",
]


def clone_names(clones_meta: Mapping[str, Sequence[str]], include_bulk: bool = False) -> list[str]:
    """Names of the clones in the order of :func:`clone_sizes`' last axis."""
    return [c for c in clones_meta if include_bulk or c != "bulk"]


def clone_sizes(
    y: np.ndarray,
    species_names: Sequence[str],
    clones_meta: Mapping[str, Sequence[str]],
    include_bulk: bool = False,
) -> np.ndarray:
    """Clone sizes ``n[..., c]`` (cells): the sum of each clone's species in ``y[..., k]``.

    ``species_names[k]`` names the last axis of ``y`` (``network.species_names``);
    ``clones_meta`` is ``network.meta["clones"]``.  Clones follow its order (see
    :func:`clone_names`); ``bulk`` is included only with ``include_bulk``.  A ``KeyError``
    names a clone species missing from ``species_names``.
    """
    y = np.asarray(y, dtype=float)
    idx = {n: i for i, n in enumerate(species_names)}
    if y.shape[-1] != len(idx):
        raise ValueError(
            f"y has {y.shape[-1]} states on its last axis but species_names lists {len(idx)}; "
            "pass the trajectory array y[..., k] of the network whose species_names you give"
        )
    names = clone_names(clones_meta, include_bulk)
    out = np.empty(y.shape[:-1] + (len(names),))
    for c, name in enumerate(names):
        try:
            cols = [idx[s] for s in clones_meta[name]]
        except KeyError as exc:
            raise KeyError(f"clone {name!r}: species {exc.args[0]!r} is not among species_names") from None
        out[..., c] = y[..., cols].sum(axis=-1)
    return out


def _sizes(sizes: np.ndarray) -> np.ndarray:
    n = np.asarray(sizes, dtype=float)
    if n.ndim == 0:
        raise ValueError("sizes must have a clone axis (the last axis), e.g. shape (T, n_clones)")
    return n


def shares(sizes: np.ndarray) -> np.ndarray:
    """``p[..., i] = n_i / Σ_j n_j`` along the last axis; NaN rows where ``Σ n = 0``."""
    n = _sizes(sizes)
    tot = n.sum(axis=-1, keepdims=True)
    return np.divide(n, tot, out=np.full(n.shape, np.nan), where=tot > 0)


def largest_share(sizes: np.ndarray, total: np.ndarray | float | None = None) -> np.ndarray:
    """``max_i n_i / N_tot`` (``N_tot = total``, default ``Σ n``); NaN where ``N_tot = 0``.

    Pass ``total`` (e.g. the ``car_t_total`` observable, cells) to get a tracked clone's share
    of *all* CAR-T cells, bulk included."""
    n = _sizes(sizes)
    tot = n.sum(axis=-1) if total is None else np.broadcast_to(np.asarray(total, dtype=float), n.shape[:-1])
    top = n.max(axis=-1) if n.shape[-1] else np.zeros(n.shape[:-1])
    return np.divide(top, tot, out=np.full(np.shape(top), np.nan), where=tot > 0)


def richness(sizes: np.ndarray) -> np.ndarray:
    """Number of clones present (``n_i > 0``) along the last axis."""
    return (_sizes(sizes) > 0).sum(axis=-1)


def shannon(sizes: np.ndarray) -> np.ndarray:
    """Shannon entropy ``H = −Σ p_i ln p_i`` in nats (``0 ln 0 = 0``); NaN for empty rows."""
    p = shares(sizes)
    logp = np.log(p, out=np.zeros_like(p), where=p > 0)
    h = -(p * logp).sum(axis=-1)
    return np.where(np.isnan(p).any(axis=-1), np.nan, h + 0.0)  # + 0.0: no -0.0


def evenness(sizes: np.ndarray) -> np.ndarray:
    """Pielou evenness ``J = H / ln S`` (``S`` clones present); NaN where ``S ≤ 1``."""
    h = shannon(sizes)
    s = richness(sizes)
    lns = np.log(np.maximum(s, 1).astype(float))
    return np.divide(h, lns, out=np.full(np.shape(h), np.nan), where=s > 1)


def simpson(sizes: np.ndarray, *, unbiased: bool = False) -> np.ndarray:
    """Simpson's index ``λ = Σ p_i²`` (probability that two cells share a clone).

    ``unbiased=True``: Simpson's (1949) finite-sample estimator ``Σ n_i(n_i−1) / (N(N−1))``
    for *counts* ``n_i`` (e.g. sequencing reads); NaN where ``N < 2``.  NaN for empty rows."""
    n = _sizes(sizes)
    if unbiased:
        tot = n.sum(axis=-1)
        num = (n * (n - 1.0)).sum(axis=-1)
        den = tot * (tot - 1.0)
        return np.divide(num, den, out=np.full(np.shape(tot), np.nan), where=tot >= 2)
    p = shares(n)
    return (p * p).sum(axis=-1)


def gini_simpson(sizes: np.ndarray, *, unbiased: bool = False) -> np.ndarray:
    """Gini–Simpson index ``1 − λ`` (probability that two cells belong to different clones)."""
    return 1.0 - simpson(sizes, unbiased=unbiased)


@dataclass(frozen=True)
class Dominance:
    """Dominance read-outs of one trajectory (arrays of the leading shape for batches).

    ``t_dominant``: first time (same clock as ``t``, days) a clone's share is ≥ ``threshold``,
    NaN if never; ``dominant_clone``: its index on the clone axis (−1 if none);
    ``t_peak``: time of the largest total; ``peak_clone``: the largest clone there (−1 when
    the total is 0 throughout); ``share_at_peak``: its share of the total there (NaN likewise);
    ``threshold``: the share used."""

    t_dominant: np.ndarray | float
    dominant_clone: np.ndarray | int
    t_peak: np.ndarray | float
    peak_clone: np.ndarray | int
    share_at_peak: np.ndarray | float
    threshold: float

    def dominates_at_peak(self) -> np.ndarray | bool:
        """``share_at_peak ≥ threshold`` (False where undefined)."""
        s = np.asarray(self.share_at_peak, dtype=float)
        out = np.where(np.isnan(s), False, s >= self.threshold)
        return bool(out) if out.ndim == 0 else out


def dominance(
    t: np.ndarray,
    sizes: np.ndarray,
    *,
    threshold: float = 0.9,
    total: np.ndarray | None = None,
) -> Dominance:
    """When a clone first exceeds ``threshold`` of the total, and the largest share at the peak.

    ``t[T]`` (days); ``sizes[..., T, c]`` clone sizes (cells); ``total[..., T]`` the
    population the shares refer to (default ``Σ_c sizes``; pass all CAR-T cells, bulk
    included, for "share of all CAR-T" as in Fraietta JA et al. 2018 Nature 558:307, where one
    clone was 94 % of CAR-T cells at the response peak).  The peak is the output time of the
    largest ``total`` (first one on ties).  Returns :class:`Dominance`.
    """
    if not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 1.0):
        raise ValueError(f"threshold = {threshold!r}: expected a share in (0, 1], e.g. 0.9")
    t = np.asarray(t, dtype=float)
    n = _sizes(sizes)
    if n.ndim < 2 or n.shape[-2] != t.shape[0]:
        raise ValueError(
            f"sizes has shape {n.shape}; expected (..., T, n_clones) with T = len(t) = {t.shape[0]}"
        )
    tot = n.sum(axis=-1) if total is None else np.broadcast_to(np.asarray(total, dtype=float), n.shape[:-1])
    share = np.divide(n, tot[..., None], out=np.full(n.shape, np.nan), where=tot[..., None] > 0)
    top = np.where(np.isnan(share), -np.inf, share).max(axis=-1) if n.shape[-1] else np.full(tot.shape, -np.inf)
    arg_top = np.where(np.isnan(share), -np.inf, share).argmax(axis=-1) if n.shape[-1] else np.zeros(tot.shape, int)
    hit = top >= threshold
    any_hit = hit.any(axis=-1)
    i_hit = hit.argmax(axis=-1)
    t_dom = np.where(any_hit, t[i_hit], np.nan)
    dom_clone = np.where(any_hit, np.take_along_axis(arg_top, i_hit[..., None], axis=-1)[..., 0], -1)
    i_peak = np.where(np.isnan(tot), -np.inf, tot).argmax(axis=-1)
    tot_peak = np.take_along_axis(tot, i_peak[..., None], axis=-1)[..., 0]
    ok = tot_peak > 0
    top_peak = np.take_along_axis(top, i_peak[..., None], axis=-1)[..., 0]
    share_peak = np.where(ok, top_peak, np.nan)
    clone_peak = np.where(ok, np.take_along_axis(arg_top, i_peak[..., None], axis=-1)[..., 0], -1)
    t_peak = t[i_peak]

    def real(a: np.ndarray) -> np.ndarray | float:
        return float(a) if np.ndim(a) == 0 else a

    def index(a: np.ndarray) -> np.ndarray | int:
        return int(a) if np.ndim(a) == 0 else a

    return Dominance(
        t_dominant=real(t_dom),
        dominant_clone=index(dom_clone),
        t_peak=real(t_peak),
        peak_clone=index(clone_peak),
        share_at_peak=real(share_peak),
        threshold=float(threshold),
    )


def sample_integration_sites(
    sizes: np.ndarray,
    reads: int,
    rng: int | np.random.Generator | np.random.SeedSequence | None,
) -> np.ndarray:
    """Read counts per clone as integration-site sequencing of ``reads`` reads would see them.

    Each row of ``sizes[..., c]`` (cells) is sampled independently: counts ~
    Multinomial(``reads``, ``p``) with ``p`` the clone shares (each read comes from a cell of
    clone ``i`` with probability ``p_i``; PCR and fragment-length biases are not modelled).
    Rows with no cells give zero reads.  ``rng``: a seed or ``numpy.random.Generator``
    (explicit randomness; global state is never touched).  Returns int64 counts of ``sizes``'
    shape, each row summing to ``reads`` (or 0)."""
    if isinstance(reads, bool) or not isinstance(reads, (int, np.integer)) or reads < 0:
        raise ValueError(f"reads = {reads!r}: expected a whole number of sequencing reads ≥ 0, e.g. 100000")
    n = _sizes(sizes)
    if np.any(n < 0) or not np.all(np.isfinite(n)):
        raise ValueError("sizes must be finite and non-negative (cells per clone)")
    gen = as_generator(rng)
    p = shares(n)
    empty = np.isnan(p).any(axis=-1)
    p = np.where(empty[..., None], 1.0 / max(n.shape[-1], 1), p)
    counts = gen.multinomial(int(reads), p)
    counts = np.where(empty[..., None], 0, counts)
    return np.asarray(counts, dtype=np.int64)
