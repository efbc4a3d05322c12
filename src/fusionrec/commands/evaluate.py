"""`fusionrec evaluate`: metrics of an artifact on a data set's split."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import (
    add_data_args,
    add_eval_users_arg,
    add_masking_arg,
    add_output_args,
    add_split_args,
    add_task_arg,
    emit,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate an artifact with full ranking")
    p.add_argument("artifact", help="artifact directory written by `fusionrec fit`")
    add_data_args(p)
    add_split_args(p)
    add_task_arg(p)
    p.add_argument(
        "--metrics",
        default="recall@10,recall@20,ndcg@10,ndcg@20",
        help="comma-separated NAME@K (precision, recall, f1, ndcg, map, mrr, hit; coverage, novelty)",
    )
    p.add_argument("--on", choices=["test", "valid"], default="test")
    add_masking_arg(p)
    p.add_argument(
        "--by-activity",
        action="store_true",
        help="break metrics down by user activity (rating task: RMSE/MAE by user and by item activity)",
    )
    add_eval_users_arg(p)
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    from fusionrec.artifacts import load_artifact
    from fusionrec.commands._common import apply_load_record, load_data, make_split
    from fusionrec.errors import DataError
    from fusionrec.evaluation import evaluate, evaluate_ratings
    from fusionrec.evaluation.metrics import parse_metric
    from fusionrec.pipeline import resolve_task

    metrics = [m for m in args.metrics.split(",") if m.strip()]
    for m in metrics:
        try:
            parse_metric(m, catalogue=True)
        except ValueError as e:
            raise DataError(str(e)) from None
    art = load_artifact(args.artifact)
    recorded = art.info.get("load") or {}
    apply_load_record(args, recorded)
    ds = load_data(args)
    if ds.item_ids != art.item_ids or ds.user_ids != art.user_ids:
        fitted = ", ".join(f"{k} {v}" for k, v in recorded.items() if v is not None) or "not recorded"
        raise DataError(
            f"{args.data} (kcore {args.kcore or 0}, min-rating {args.min_rating}) does not match the artifact's "
            f"data (fingerprint {art.info.get('data_fingerprint')}; fitted on: {fitted}); evaluate on the data "
            "set the model was fitted on, with the same --kcore / --min-rating / --format"
        )
    task = resolve_task(art.model, args.task or art.info.get("task"))
    split = make_split(ds, args, task)
    if split.train.nnz != art.train.nnz or (split.train != art.train).nnz:
        raise DataError(
            "this split's train part differs from the one the model was fitted on; "
            "pass the same --split and --seed as to `fusionrec fit`"
        )
    res = evaluate(
        art.model,
        split,
        on=args.on,
        metrics=metrics,
        masking=args.masking,
        by_activity=args.by_activity,
        sample_users=args.eval_users,
        seed=args.seed,
    )
    payload = res.to_dict()
    rated = None
    if task == "rating":
        rated = evaluate_ratings(
            art.model, split.test if args.on == "test" else split.valid, train=split.train
        )
        payload = {**rated.to_dict(), **payload}
        if not args.by_activity:
            payload.pop("rating_by_activity", None)
    text = "\n".join(f"{k:<14} {v:.4f}" for k, v in payload.items() if isinstance(v, float))
    if res.by_activity:
        text += "\nby activity (train interactions):"
        for bucket, vals in res.by_activity.items():
            text += f"\n  {bucket:<8} " + "  ".join(
                f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in vals.items()
            )
    if rated is not None and args.by_activity:
        for side, buckets in rated.by_activity.items():
            text += f"\nRMSE / MAE by {side[:-1]} activity (training ratings):"
            for bucket, vals in buckets.items():
                text += f"\n  {bucket:<8} ratings={vals['ratings']:<6} rmse={vals['rmse']:.4f}  mae={vals['mae']:.4f}"
    emit(args, payload, text)
    return 0
