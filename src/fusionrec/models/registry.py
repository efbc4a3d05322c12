"""Model registry: name → class, imported lazily so `fusionrec --help` stays instant.

Adding a model is one line here (``"name": "module:Class"``) plus its file and a contract test.
"""

from __future__ import annotations

import importlib
from typing import Any

from fusionrec.errors import ConfigError
from fusionrec.models.base import Recommender

_MODELS: dict[str, str] = {
    "most-popular": "fusionrec.models.popularity:MostPopular",
    "random": "fusionrec.models.popularity:RandomModel",
    "itemknn": "fusionrec.models.knn:ItemKNN",
    "userknn": "fusionrec.models.knn:UserKNN",
    "ease": "fusionrec.models.knn:EASE",
    "content-knn": "fusionrec.models.content_knn:ContentKNN",
    "content-ease": "fusionrec.models.content_ease:ContentEASE",
    "als": "fusionrec.models.mf:ALS",
    "content-als": "fusionrec.models.content_als:ContentALS",
    "bpr-torch": "fusionrec.models.bpr_torch:BPRTorch",
    "lightgcn": "fusionrec.models.lightgcn:LightGCN",
    "freedom": "fusionrec.models.freedom:FREEDOM",
    "bm3": "fusionrec.models.bm3:BM3",
    "vbpr": "fusionrec.models.vbpr:VBPR",
    "late-fusion": "fusionrec.models.late_fusion:LateFusion",
    "neural": "fusionrec.models.neural:NeuralFusion",
    "lattice": "fusionrec.models.lattice:LATTICE",
    "smore": "fusionrec.models.smore:SMORE",
    "biased-mf": "fusionrec.models.biased_mf:BiasedMF",
}


def model_names() -> list[str]:
    return sorted(_MODELS)


# Models that were removed, and what to use instead (an artifact or a command naming one says so).
_REMOVED = {
    "bpr": "bpr-torch (the same model trained with torch, with early stopping; implicit's SGD version ended "
    "below most-popular on sparse data)",
}


def get_model_class(name: str) -> type[Recommender]:
    try:
        target = _MODELS[name]
    except KeyError:
        if name in _REMOVED:
            raise ConfigError(f"model {name!r} was removed; use {_REMOVED[name]}") from None
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def create_model(name: str, params: dict[str, Any] | None = None) -> Recommender:
    return get_model_class(name).from_params(params or {})


def describe_models() -> list[dict[str, Any]]:
    """Every model with its parameters (defaults), the modalities it needs and its capabilities."""
    out = []
    for name in model_names():
        cls = get_model_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        out.append(
            {
                "name": name,
                "summary": doc[0] if doc else "",
                "params": cls.param_defaults(),
                "requires_features": list(cls.requires_features),
                "uses_features": cls.uses_features,
                "supports_cold_items": cls.supports_cold_items,
                # "rating" models predict rating values; a property (neural) depends on the parameters
                "task": cls.task if isinstance(cls.task, str) else "set by parameters",
            }
        )
    return out
