r"""Exact statistics of a per-patient table read a batch at a time, in bounded memory.

A trial of 10⁶–10⁷ virtual patients is summarised from its Parquet file without holding a
column of it: every statistic here takes a **scan**, a function that returns a fresh iterator
over batches of rows, and reads it as often as it needs.  Memory is bounded by
:data:`RANGE_ROWS` values and a 2¹⁶-bin histogram whatever the number of patients; the
results are the numbers of the in-memory functions they replace: bit for bit for the
Kaplan–Meier estimate (:func:`scipy.stats.ecdf` through
:func:`livingdrug.clinical.probability.kaplan_meier`), to the last bit or two for
:func:`numpy.percentile` (the same order statistics and interpolation; numpy itself rounds
the interpolation differently with the number of quantiles asked), and to rounding for the
log-rank test (:func:`scipy.stats.logrank` sums pairwise, a stream sums in order).

Sorting without holding the data (:func:`ascending_runs`)
---------------------------------------------------------
Order statistics and the product-limit estimator need the values in ascending order.  Each
finite float64 ``x`` is mapped to an unsigned 64-bit key that sorts like ``x`` (the IEEE-754
bits, sign bit set for ``x ≥ 0``, all bits flipped for ``x < 0``; ``−0.0`` becomes ``+0.0``).
One pass counts the keys of a key range in 2¹⁶ equal bins; runs of adjacent bins holding at
most :data:`RANGE_ROWS` values together are then read back one run per pass and sorted in
memory; a single bin holding more is split again the same way (at most four levels: 4 × 16
bits), and a bin down to one key is emitted as that value with its count.  The result is
the sorted distinct values with their counts and the sums of any weights, delivered in
ascending blocks.  Passes: 1 + about 2N/RANGE_ROWS (one collecting pass for N ≤ RANGE_ROWS);
order statistics (:func:`order_statistics`, :func:`percentiles`) read back only the ranges
that hold the ranks they need.

Kaplan–Meier (:func:`kaplan_meier_scan`)
----------------------------------------
The product-limit estimate and its Greenwood log-log band exactly as
:func:`scipy.stats.ecdf` computes them (``Ŝ = cumprod((n − d)/n)``, ``V = Σ d/(n(n − d))``,
band ``exp(−exp(log(−log Ŝ) ± z √V / |log Ŝ|))``; products and sums carried across blocks
in the same order, so the same bits), with the median, its Brookmeyer–Crowley interval and
Ŝ at chosen landmark times found on the way.  The curve kept for figures holds every distinct
time up to :data:`CURVE_POINTS` of them; beyond that, the first exact point in each cell of a
CURVE_POINTS × CURVE_POINTS grid over (time up to the last one, Ŝ), and the last point: a step
plot of them is within 1/CURVE_POINTS of the full curve in Ŝ and in time (as a share of the
follow-up).  Censoring marks: the distinct censoring times, at most CURVE_POINTS of them,
evenly chosen.

Tables
------
A scan of one column of a table read in batches (:class:`livingdrug.io.results.Batches`) is
:func:`column_scan`; the trial summary (:func:`livingdrug.comparison._arm_summary`) and the
trial figures (:mod:`livingdrug.report.trial_figures`) are built on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .probability import _f, _first_at_or_below

__all__ = [
    "RANGE_ROWS",
    "CURVE_POINTS",
    "Scan",
    "ascending_runs",
    "column_scan",
    "count",
    "order_statistics",
    "percentiles",
    "KaplanMeierScan",
    "kaplan_meier_scan",
    "at_risk_scan",
    "logrank_scan",
    "zip_aligned",
]

#: most values a sorting pass holds at once (with their weights ≈ 24 B each: ≈ 6 MB)
RANGE_ROWS = 1 << 18
#: most points of a Kaplan–Meier curve kept for figures
CURVE_POINTS = 4096

#: a function returning a fresh iterator over batches ``(values, weights)``: ``values`` a
#: 1-D float64 array of finite numbers, ``weights`` a 2-D array ``[k, len(values)]`` (k ≥ 0)
Scan = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]

_BINS = 1 << 16
_TOP = (1 << 64) - 1
_SIGN = np.uint64(1 << 63)


def _keys(x: np.ndarray) -> np.ndarray:
    """Unsigned 64-bit keys that sort like the finite floats ``x`` (−0.0 → +0.0)."""
    b = (np.asarray(x, dtype=np.float64) + 0.0).view(np.uint64)
    return np.where(b & _SIGN, ~b, b | _SIGN)


def _floats(k: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_keys`."""
    k = np.asarray(k, dtype=np.uint64)
    return np.where(k & _SIGN, k & ~_SIGN, ~k).view(np.float64)


def ascending_runs(scan: Scan, limit: int | None = None, *,
                   ranks: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The distinct values of ``scan`` in ascending order, in blocks ``(values, counts,
    weight_sums[k, m])`` (see the module doc); at most ``limit`` (default
    :data:`RANGE_ROWS`) values are held at once.  With ``ranks`` (0-based positions in the
    ascending order), a range holding none of them is not read back: it comes as one block
    with value NaN, its count and its weight sums (order statistics then cost a few passes,
    not one per range)."""
    limit = RANGE_ROWS if limit is None else limit
    if limit < 1:
        raise ValueError(f"limit must be >= 1; got {limit}")
    wanted = None if ranks is None else np.unique(np.asarray(ranks, dtype=np.int64))
    yield from _range(scan, 0, _TOP, None, limit, 0, wanted)


def _in_range(scan: Scan, lo: int, hi: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    full = lo == 0 and hi == _TOP
    for v, w in scan():
        k = _keys(v)
        w = np.asarray(w, dtype=float)
        if full:
            yield k, w
        else:
            m = (k >= np.uint64(lo)) & (k <= np.uint64(hi))
            yield k[m], w[:, m]


def _sorted(scan: Scan, lo: int, hi: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The values with keys in ``[lo, hi]`` (at most the sort's limit of them), read in one
    pass and sorted: distinct values, counts, weight sums."""
    ks, ws = [], []
    for k, w in _in_range(scan, lo, hi):
        if k.size:
            ks.append(k)
            ws.append(w)
    if not ks:
        return
    u, inv, c = np.unique(np.concatenate(ks), return_inverse=True, return_counts=True)
    w = np.concatenate(ws, axis=1)
    sums = (np.stack([np.bincount(inv, weights=row, minlength=u.size) for row in w]) if w.shape[0]
            else np.zeros((0, u.size)))
    yield _floats(u), c.astype(np.int64), sums


def _range(scan: Scan, lo: int, hi: int, n: int | None, limit: int, start: int,
           wanted: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Keys in ``[lo, hi]`` (``n`` of them if known), the first at rank ``start``."""
    if n is not None and n <= limit:
        yield from _sorted(scan, lo, hi)
        return
    shift = max(0, (hi - lo).bit_length() - 16)
    counts = np.zeros(_BINS, dtype=np.int64)
    sums: np.ndarray | None = None
    for k, w in _in_range(scan, lo, hi):
        idx = ((k - np.uint64(lo)) >> np.uint64(shift)).astype(np.intp)
        counts += np.bincount(idx, minlength=_BINS)
        if sums is None:
            sums = np.zeros((w.shape[0], _BINS))
        for j, row in enumerate(w):
            sums[j] += np.bincount(idx, weights=row, minlength=_BINS)
    if sums is None:
        return
    def read(g_lo: int, g_hi: int, count: int, first: int,
             bins: slice) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Keys ``[g_lo, g_hi]`` (``count``, from rank ``first``; histogram ``bins``): read back,
        or one NaN block with their count and weight sums when no wanted rank is among them."""
        if wanted is None or np.any((wanted >= first) & (wanted < first + count)):
            yield from _range(scan, g_lo, g_hi, count, limit, first, wanted)
        else:
            yield np.array([np.nan]), np.array([count], dtype=np.int64), sums[:, bins].sum(axis=1, keepdims=True)

    group: list[int] = []  # bins read back together: [first key, last key, count, first rank, first bin]
    pos = start  # rank of the first key of bin b
    for b in map(int, np.flatnonzero(counts)):
        blo = lo + (b << shift)
        bhi = min(hi, blo + (1 << shift) - 1)
        c = int(counts[b])
        if group and (c > limit or group[2] + c > limit):
            g_lo, g_hi, g_n, g_first, g_bin = group
            yield from read(g_lo, g_hi, g_n, g_first, slice(g_bin, b))
            group = []
        if c > limit and blo == bhi:  # one value, however many times
            yield _floats(np.array([blo], dtype=np.uint64)), np.array([c], dtype=np.int64), sums[:, b:b + 1]
        elif c > limit:
            yield from read(blo, bhi, c, pos, slice(b, b + 1))
        else:
            group = [group[0], bhi, group[2] + c, group[3], group[4]] if group else [blo, bhi, c, pos, b]
        pos += c
    if group:
        g_lo, g_hi, g_n, g_first, g_bin = group
        yield from read(g_lo, g_hi, g_n, g_first, slice(g_bin, _BINS))


def column_scan(table: Callable[[Sequence[str]], Iterable[Mapping[str, Any]]], column: str, *,
                where: Callable[[Mapping[str, Any]], np.ndarray] | None = None, weight: str | None = None,
                extra: Sequence[str] = ()) -> Scan:
    """The :data:`Scan` of the finite values of ``column`` of ``table`` (a
    :class:`~livingdrug.io.results.Batches`, or any callable from column names to batches),
    only in rows where ``where(batch)`` (which may read the ``extra`` columns); weights: column
    ``weight`` as 0/1 (an event indicator), else none."""
    cols = (column, *((weight,) if weight else ()), *extra)

    def scan() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b in table(cols):
            v = np.asarray(b[column], dtype=float)
            m = np.isfinite(v) if where is None else np.isfinite(v) & where(b)
            w = np.asarray(b[weight], dtype=float)[m][None] if weight else np.zeros((0, int(m.sum())))
            yield v[m], w

    return scan


def count(scan: Scan) -> int:
    """Number of values ``scan`` yields (one pass)."""
    return sum(int(np.asarray(v).size) for v, _ in scan())


def order_statistics(scan: Scan, ranks: Sequence[int], *, limit: int | None = None) -> np.ndarray:
    """The values of 0-based ``ranks`` in the ascending order of ``scan``'s values (every rank
    must be below their number)."""
    want = np.asarray(ranks, dtype=np.int64)
    out = np.full(want.size, np.nan)
    order = np.argsort(want, kind="stable")
    j = 0
    seen = 0
    for v, c, _ in ascending_runs(scan, limit, ranks=ranks):
        if j == order.size:
            break
        ends = seen + np.cumsum(c)  # rank after the last copy of each value
        while j < order.size and want[order[j]] < ends[-1]:
            out[order[j]] = v[int(np.searchsorted(ends, want[order[j]], side="right"))]
            j += 1
        seen = int(ends[-1])
    if j < order.size:
        raise ValueError(f"rank {int(want[order[j]])} is not below the number of values, {seen}")
    return out


def percentiles(scan: Scan, q: Sequence[float], *, limit: int | None = None) -> tuple[np.ndarray, int]:
    """``numpy.percentile(values, q)`` (linear method: the same order statistics and
    interpolation, equal to the last bit or two) and the number of values; NaNs when there
    are none."""
    n = count(scan)
    qs = np.asarray(q, dtype=float) / 100.0
    if n == 0:
        return np.full(qs.size, np.nan), 0
    # numpy's virtual index for the linear method (alpha = beta = 1), as numpy rounds it, and its lerp
    h = n * qs + (1 + qs * (1 - 1 - 1)) - 1
    lo = np.floor(h)
    gamma = h - lo
    lo_i = np.clip(lo.astype(np.int64), 0, n - 1)
    hi_i = np.clip(lo_i + 1, 0, n - 1)
    x = order_statistics(scan, np.concatenate([lo_i, hi_i]).tolist(), limit=limit)
    a, b = x[:qs.size], x[qs.size:]
    diff = b - a
    res = a + diff * gamma
    late = gamma >= 0.5
    res[late] = (b - diff * (1 - gamma))[late]
    return res, n


@dataclass
class KaplanMeierScan:
    """A Kaplan–Meier estimate computed from a scan (see the module doc).  ``time``,
    ``survival``, ``low``, ``high`` are points of the exact curve (all of them when ``exact``),
    ``censored`` the distinct censoring times (as many as :data:`CURVE_POINTS`, evenly
    chosen); ``landmarks[t]`` is ``(Ŝ, low, high)`` just after ``t`` (1, 1, 1 before the first
    time; ``None`` when ``t`` is after the last observed time)."""

    n: int
    n_events: int
    median: float
    median_low: float
    median_high: float
    confidence: float
    time: np.ndarray
    survival: np.ndarray
    low: np.ndarray
    high: np.ndarray
    censored: np.ndarray
    censored_survival: np.ndarray
    exact: bool
    last_time: float
    landmarks: dict[float, tuple[float, float, float] | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "events": self.n_events, "median": _f(self.median), "median_low": _f(self.median_low),
                "median_high": _f(self.median_high), "confidence": self.confidence}


def kaplan_meier_scan(scan: Scan, *, confidence: float = 0.95, landmarks: Sequence[float] = (),
                      limit: int | None = None, points: int = CURVE_POINTS) -> KaplanMeierScan:
    """Kaplan–Meier estimate of ``S(t) = P(T > t)`` from a scan of ``(durations, [observed])``
    (d; ``observed`` 1 for an event, 0 for censoring), in bounded memory (module doc)."""
    from scipy import special

    n_all, t_max = 0, -math.inf
    for v, _ in scan():
        n_all += int(v.size)
        if v.size:
            t_max = max(t_max, float(np.max(v)))
    nan = math.nan
    marks = sorted(float(t) for t in landmarks)
    empty = np.zeros(0)
    res = KaplanMeierScan(n_all, 0, nan, nan, nan, confidence, empty, empty, empty, empty, empty, empty, True,
                          t_max if n_all else nan, dict.fromkeys(marks))
    if n_all == 0:
        return res
    z = special.ndtri(1 / 2 + confidence / 2)
    t_cell = (t_max if t_max > 0 else 1.0) / points
    full: list[list[np.ndarray]] = [[], [], [], []]  # every point, while there are at most `points`
    thin: list[list[np.ndarray]] = [[], [], [], []]  # the first point of each (t, Ŝ) cell
    cens: list[list[np.ndarray]] = [[], []]
    distinct = done = n_events = 0
    s_prev, g_prev = 1.0, 0.0
    cell_prev = (-1, -1)
    point_prev = (1.0, 1.0, 1.0)
    mi = 0
    for t, c, w in ascending_runs(scan, limit):
        d = w[0]
        n = n_all - done - np.concatenate(([0], np.cumsum(c)[:-1]))
        done += int(c.sum())
        n_events += int(d.sum())
        # cumprod/cumsum from the carried value: the same products and sums, in the same order,
        # as scipy.stats.ecdf over the whole sample
        sf = np.cumprod(np.concatenate(([s_prev], (n - d) / n)))[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.cumsum(np.concatenate(([g_prev], d / (n * (n - d)))))[1:]
            se = np.sqrt(1 / np.log(sf) ** 2 * g)
            lnl = np.log(-np.log(sf))
            lo = np.exp(-np.exp(lnl + z * se))
            hi = np.exp(-np.exp(lnl - z * se))
        # as kaplan_meier: Greenwood's variance is 0 where Ŝ is 1 (no event yet) or 0
        for arr in (lo, hi):
            arr[sf >= 1.0] = 1.0
            arr[sf <= 0.0] = 0.0
        s_prev, g_prev = float(sf[-1]), float(g[-1])
        for name, arr in (("median", sf), ("median_low", lo), ("median_high", hi)):
            if math.isnan(getattr(res, name)):
                setattr(res, name, _first_at_or_below(t, arr, 0.5))
        while mi < len(marks) and marks[mi] < t[0]:
            res.landmarks[marks[mi]] = point_prev
            mi += 1
        while mi < len(marks) and marks[mi] <= t[-1]:
            j = int(np.searchsorted(t, marks[mi], side="right")) - 1
            res.landmarks[marks[mi]] = (float(sf[j]), float(lo[j]), float(hi[j]))
            mi += 1
        point_prev = (float(sf[-1]), float(lo[-1]), float(hi[-1]))
        distinct += t.size
        if distinct <= points:
            for acc, arr in zip(full, (t, sf, lo, hi), strict=True):
                acc.append(arr)
        cells_t = np.floor(t / t_cell).astype(np.int64)
        cells_s = np.floor((1.0 - sf) * points).astype(np.int64)
        first = np.ones(t.size, dtype=bool)
        first[1:] = (cells_t[1:] != cells_t[:-1]) | (cells_s[1:] != cells_s[:-1])
        first[0] = (int(cells_t[0]), int(cells_s[0])) != cell_prev
        cell_prev = (int(cells_t[-1]), int(cells_s[-1]))
        for acc, arr in zip(thin, (t, sf, lo, hi), strict=True):
            acc.append(arr[first])
        cm = (c - d) > 0
        cens[0].append(t[cm])
        cens[1].append(sf[cm])
        if len(cens[0]) > 1 and sum(x.size for x in cens[0]) > 4 * points:
            cens = [[x] for x in _spread(np.concatenate(cens[0]), np.concatenate(cens[1]), 2 * points)]
    for mark in marks[mi:]:
        res.landmarks[mark] = point_prev
    res.n_events = n_events
    res.exact = distinct <= points
    res.time, res.survival, res.low, res.high = (np.concatenate(x) for x in (full if res.exact else thin))
    if not res.exact and res.time[-1] != t_max:  # the curve ends where the data do
        res.time, res.survival, res.low, res.high = (
            np.append(a, b) for a, b in zip((res.time, res.survival, res.low, res.high), (t_max, *point_prev),
                                            strict=True))
    ct, cs = (np.concatenate(x) for x in cens)
    res.censored, res.censored_survival = _spread(ct, cs, points) if ct.size > points else (ct, cs)
    return res


def _spread(t: np.ndarray, s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``k`` of the points ``(t, s)``, evenly spread through them, first and last kept."""
    if t.size <= k:
        return t, s
    pick = np.unique(np.linspace(0, t.size - 1, k).round().astype(np.int64))
    return t[pick], s[pick]


def at_risk_scan(scan: Scan, times: Sequence[float]) -> np.ndarray:
    """Number still at risk at each of ``times``: ``#{i : durations[i] ≥ τ}`` (one pass)."""
    tau = np.asarray(times, dtype=float)
    out = np.zeros(tau.size, dtype=np.int64)
    for v, _ in scan():
        s = np.sort(v)
        out += s.size - np.searchsorted(s, tau, side="left")
    return out


def logrank_scan(x: Scan, y: Scan, *, limit: int | None = None) -> float | None:
    """Two-sided log-rank p-value of the samples ``x`` and ``y`` (scans of ``(durations,
    [observed])``), :func:`scipy.stats.logrank`'s statistic computed on the merged ascending
    stream; ``None`` without an event."""
    from scipy.stats import norm

    def both() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for arm, s in ((1.0, x), (0.0, y)):
            for v, w in s():
                e = np.asarray(w, dtype=float)[0]
                yield v, np.stack([e, e * arm, np.full(v.size, arm)])

    n_x = count(x)
    n = n_x + count(y)
    done_all, done_x = 0, 0
    o_minus_e, var, events = 0.0, 0.0, 0
    for _t, c, w in ascending_runs(both, limit):
        d, dx, cx = w
        at = n - done_all - np.concatenate(([0], np.cumsum(c)[:-1]))
        at_x = n_x - done_x - np.concatenate(([0.0], np.cumsum(cx)[:-1]))
        done_all += int(c.sum())
        done_x += int(cx.sum())
        ev = d > 0
        events += int(d.sum())
        at, at_x, d, dx = at[ev].astype(float), at_x[ev], d[ev], dx[ev]
        at_y = at - at_x
        o_minus_e += float(np.sum(dx - at_x * (d / at)))
        more = at > 1
        var += float(np.sum((at_x * at_y * d * (at - d))[more] / (at ** 2 * (at - 1))[more]))
    if events == 0 or n_x == 0 or n == n_x:
        return None
    stat = o_minus_e / math.sqrt(var) if var > 0 else math.copysign(math.inf, o_minus_e)
    return float(2 * norm.sf(abs(stat)))


def zip_aligned(a: Iterable[dict[str, np.ndarray]], b: Iterable[dict[str, np.ndarray]]
                ) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Pairs of equally long pieces of two batch streams over the same number of rows (the
    same patients of two arms), whatever their batch boundaries."""
    ia, ib = iter(a), iter(b)
    ra: dict[str, np.ndarray] | None = None
    rb: dict[str, np.ndarray] | None = None
    while True:
        if ra is None or _rows(ra) == 0:
            ra = next(ia, None)
        if rb is None or _rows(rb) == 0:
            rb = next(ib, None)
        if ra is None or rb is None:
            if (ra is not None and _rows(ra)) or (rb is not None and _rows(rb)):
                raise ValueError("the two arms have different numbers of patients")
            return
        m = min(_rows(ra), _rows(rb))
        if m:
            yield {k: v[:m] for k, v in ra.items()}, {k: v[:m] for k, v in rb.items()}
        ra = {k: v[m:] for k, v in ra.items()}
        rb = {k: v[m:] for k, v in rb.items()}


def _rows(batch: dict[str, np.ndarray]) -> int:
    return int(next(iter(batch.values())).shape[0]) if batch else 0
