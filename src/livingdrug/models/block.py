"""Network pieces: a :class:`Block` of species, parameters, reactions, observables and events
that a model builder merges into its :class:`~livingdrug.network.Network` (e.g. the toxicity
mechanism of :mod:`livingdrug.models.cytokines`, shared by every disease model).

Nothing here adds biology; :func:`merge_block` is bookkeeping (concatenation, plot groups).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..network import Event, Network, Observable, Reaction, Species
from ..params import Param

__all__ = ["Block", "merge_block", "combine"]


@dataclass(frozen=True)
class Block:
    """A piece of a network, merged into a model by its builder.

    ``groups`` maps a plot-group title to species/observable names (merged into
    ``network.meta["groups"]`` by :func:`merge_block`)."""

    species: tuple[Species, ...] = ()
    params: tuple[Param, ...] = ()
    reactions: tuple[Reaction, ...] = ()
    observables: tuple[Observable, ...] = ()
    events: tuple[Event, ...] = ()
    groups: Mapping[str, list[str]] = field(default_factory=dict)


def combine(*blocks: Block) -> Block:
    """One block holding every part of ``blocks`` in order (groups merged, later wins)."""
    groups: dict[str, list[str]] = {}
    for b in blocks:
        for k, v in b.groups.items():
            groups[k] = list(v)
    return Block(
        species=tuple(s for b in blocks for s in b.species),
        params=tuple(p for b in blocks for p in b.params),
        reactions=tuple(r for b in blocks for r in b.reactions),
        observables=tuple(o for b in blocks for o in b.observables),
        events=tuple(e for b in blocks for e in b.events),
        groups=groups,
    )


def merge_block(net: Network, block: Block) -> Network:
    """``net`` with ``block`` appended (species, parameters, reactions, observables, events
    after the network's own; plot groups added to ``meta["groups"]``).  Name clashes raise
    the network's own ``ValueError`` ("names used twice")."""
    meta = dict(net.meta)
    groups = dict(meta.get("groups", {}))
    for k, v in block.groups.items():
        groups[k] = list(v)
    meta["groups"] = groups
    return replace(
        net,
        species=net.species + block.species,
        params=net.params + block.params,
        reactions=net.reactions + block.reactions,
        observables=net.observables + block.observables,
        events=net.events + block.events,
        meta=meta,
    )
