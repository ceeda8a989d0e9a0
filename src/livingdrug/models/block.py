"""Network pieces: a :class:`Block` of species, parameters, reactions, observables and events
that a model builder merges into its :class:`~livingdrug.network.Network` (e.g. the toxicity
mechanism of :mod:`livingdrug.models.cytokines`, shared by every disease model).

Nothing here adds biology; :func:`network_with_block` is bookkeeping (concatenation, plot
groups, the list of ODE-only species).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..network import Event, Network, Observable, Reaction, Species
from ..params import Param

__all__ = ["Block", "network_with_block", "combine"]


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


def network_with_block(block: Block, *, species: tuple[Species, ...], params: tuple[Param, ...],
                       reactions: tuple[Reaction, ...], observables: tuple[Observable, ...],
                       events: tuple[Event, ...], meta: Mapping[str, Any], **fields: Any) -> Network:
    """The model's own parts with ``block`` appended after them, as one :class:`Network`
    (built in one go: the model's rate laws already use the block's symbols, e.g.
    :func:`~livingdrug.models.cytokines.expansion_factor`).  The block's plot groups join
    ``meta["groups"]``; its species — concentrations, not cell counts — are appended to
    ``meta["ode_only_species"]`` (which the stochastic engines refuse, or the hybrid integrates,
    by name).  ``fields``: the other :class:`Network` fields (``name``, ``reference`` …)."""
    meta = dict(meta)
    groups = dict(meta.get("groups", {}))
    groups.update({k: list(v) for k, v in block.groups.items()})
    meta["groups"] = groups
    if block.species or "ode_only_species" in meta:
        meta["ode_only_species"] = [*meta.get("ode_only_species", ()), *(x.name for x in block.species)]
    whole = combine(Block(species, params, reactions, observables, events), block)
    return Network(species=whole.species, params=whole.params, reactions=whole.reactions,
                   observables=whole.observables, events=whole.events, meta=meta, **fields)
