"""The model library: a registry of named model builders.

>>> from livingdrug.models import get_model
>>> net = get_model("car_t").build()            # doctest: +SKIP

``MODELS`` maps a name to a :class:`ModelSpec` whose ``build(**options)`` returns a
:class:`~livingdrug.network.Network`; ``options`` holds the default options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..network import Network
from . import car_nk, car_t, tumours
from .published import cartmath, kimmel2021, stein2019

__all__ = ["ModelSpec", "MODELS", "get_model"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``build(**options) -> Network`` with default ``options``.

    ``patient_state(params, **covariates) -> {species: amount}`` (optional) gives the
    patient's state before treatment from one patient's parameter values (canonical units)
    and the state covariates named in ``covariates`` (name → canonical unit), e.g. the B-ALL
    burden ``leukaemia`` (cell); virtual populations use it to vary the disease at referral
    consistently (normal marrow, B and T cells follow the burden).  It must work element-wise
    (numpy operations): a trial passes every value as an array with one entry per patient.
    """

    name: str
    title: str
    reference: str
    build: Callable[..., Network]
    options: Mapping[str, Any] = field(default_factory=dict)
    patient_state: Callable[..., dict[str, float]] | None = None
    covariates: Mapping[str, str] = field(default_factory=dict)

    def network(self, **options: Any) -> Network:
        """``build`` with the default options updated by ``options``."""
        return self.build(**{**self.options, **options})


MODELS: dict[str, ModelSpec] = {
    "car_t": ModelSpec(
        "car_t",
        "CD19 CAR-T in relapsed B-ALL (livingdrug default)",
        "livingdrug default model; mechanisms after Stein et al. 2019 and Kimmel et al. 2021",
        car_t.build,
        MappingProxyType({"lymphodepletion": True}),
        car_t.ball_patient_state,
        car_t.BALL_COVARIATES,
    ),
    "car_nk": ModelSpec(
        "car_nk",
        "Allogeneic CD19 CAR-NK (IL-15 armoured, off-the-shelf) in relapsed B-ALL",
        "livingdrug CAR-NK model; product after Liu E et al. 2020 NEJM 382:545; patient of the car_t model",
        car_nk.build,
        MappingProxyType({"lymphodepletion": True}),
        car_nk.patient_state,
        car_t.BALL_COVARIATES,
    ),
    "lbcl": ModelSpec(
        "lbcl",
        "CD19 CAR-T in relapsed/refractory large B-cell lymphoma",
        "livingdrug LBCL model; product after Neelapu et al. 2017 (ZUMA-1); delivery after Brown et al. 2021",
        tumours.build_lbcl,
        MappingProxyType({"lymphodepletion": True}),
    ),
    "myeloma": ModelSpec(
        "myeloma",
        "BCMA CAR-T in relapsed/refractory multiple myeloma",
        "livingdrug myeloma model; product after Munshi et al. 2021 (KarMMa); sBCMA sink after Pont et al. 2019",
        tumours.build_myeloma,
        MappingProxyType({"lymphodepletion": True}),
    ),
    "stein2019": ModelSpec(
        "stein2019",
        "Tisagenlecleucel cellular kinetics",
        stein2019.REFERENCE,
        stein2019.build,
        MappingProxyType({}),
    ),
    "kimmel2021": ModelSpec(
        "kimmel2021",
        "T-cell competition and CAR-T in large B-cell lymphoma",
        kimmel2021.REFERENCE,
        kimmel2021.build,
        MappingProxyType({}),
    ),
    "cartmath": ModelSpec(
        "cartmath",
        "CARTmath effector/memory CAR-T against a tumour (mouse)",
        cartmath.REFERENCE,
        cartmath.build,
        MappingProxyType({"variant": "hdlm2"}),
    ),
}


def get_model(name: str) -> ModelSpec:
    """The registered model called ``name``; ``KeyError`` listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {sorted(MODELS)}") from None
