"""Evaluation: pure ranking and rating metrics, one batched full-ranking evaluator and its rating twin."""

from fusionrec.evaluation.evaluator import (
    DEFAULT_METRICS,
    VALIDATOR,
    EvalResult,
    RatingResult,
    evaluate,
    evaluate_ratings,
    evaluate_scores,
)

__all__ = [
    "DEFAULT_METRICS",
    "VALIDATOR",
    "EvalResult",
    "RatingResult",
    "evaluate",
    "evaluate_ratings",
    "evaluate_scores",
]
