"""Evaluation: pure ranking metrics and one batched full-ranking evaluator."""

from fusionrec.evaluation.evaluator import DEFAULT_METRICS, VALIDATOR, EvalResult, evaluate, evaluate_scores

__all__ = ["DEFAULT_METRICS", "VALIDATOR", "EvalResult", "evaluate", "evaluate_scores"]
