"""Recommendation models behind one contract; see ``registry`` for the list."""

from fusionrec.models.base import FactorModel, Recommender
from fusionrec.models.registry import create_model, describe_models, get_model_class, model_names

__all__ = ["FactorModel", "Recommender", "create_model", "describe_models", "get_model_class", "model_names"]
