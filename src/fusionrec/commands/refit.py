"""`fusionrec refit`: retrain an artifact's model on (new) data, starting from the artifact's state."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from fusionrec.commands._common import add_data_args, add_output_args, add_split_args, emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "refit",
        help="retrain an artifact's model on new data, warm-started from the artifact",
        description="Fit the artifact's model (same name, same parameters) on --data, starting from the "
        "artifact's learned state: known users and items keep their rows, new ones start fresh, and early "
        "stopping on the validation split decides how many epochs run. Prints the time against a cold fit "
        "(the one recorded in the artifact, or measured now with --compare-cold). Interactions the artifact "
        "trained on stay in train (valid and test hold only unseen ones). Models that cannot start from an "
        "earlier fit say so and fit cold.",
    )
    p.add_argument("artifact", help="artifact directory written by `fusionrec fit`")
    add_data_args(p)
    add_split_args(p)
    p.set_defaults(seed=None)  # default: the artifact's own seed
    p.add_argument("--out", help="artifact directory to write (default: replace ARTIFACT)")
    p.add_argument(
        "--compare-cold",
        action="store_true",
        help="also fit the model cold on the same split and report both times and validation scores",
    )
    p.add_argument("--no-eval", action="store_true", help="skip the test evaluation after fitting")
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    import logging

    from fusionrec.artifacts import load_artifact, save_artifact
    from fusionrec.commands._common import apply_load_record, load_data, load_record, make_split
    from fusionrec.data.methods import SPLITS
    from fusionrec.data.splits import split_summary
    from fusionrec.distributed import is_main_process
    from fusionrec.evaluation import evaluate
    from fusionrec.pipeline import (
        build_model,
        fit_artifact,
        keep_trained_in_train,
        resolve_task,
        warm_start_from,
    )

    log = logging.getLogger("fusionrec")
    old = load_artifact(args.artifact)
    out = args.out or args.artifact
    recorded = old.info.get("load") or {}
    apply_load_record(args, recorded)
    if args.seed is None:
        args.seed = int(old.info.get("seed") or 2026)
    if args.split is None and old.info.get("split") in SPLITS:
        args.split = old.info["split"]
    ds = load_data(args)
    name, params = old.model.name, old.model.get_params()
    task = resolve_task(old.model, old.info.get("task"))
    # valid and test hold only interactions the artifact has not trained on (warm and cold fits alike)
    split, moved = keep_trained_in_train(make_split(ds, args, task), old, ds)
    metric = str(params.get("valid_metric") or "recall@20")

    model = build_model(name, params, show_progress=not args.quiet)
    warm = warm_start_from(old, ds)
    why_cold = None
    if not model.supports_warm_start:
        why_cold = f"{name} cannot start from an earlier fit"
    elif "warm_params_" not in warm.meta and getattr(model, "is_torch", False):
        why_cold = "the artifact kept no training parameters (written by an older version)"
    if why_cold:
        log.warning("refit: %s; fitting cold", why_cold)
    art, seconds = fit_artifact(ds, split, model, seed=args.seed, warm_start=None if why_cold else warm)
    cold_model, cold_seconds = None, 0.0
    if args.compare_cold:
        cold_model = build_model(name, params, show_progress=not args.quiet)
        _, cold_seconds = fit_artifact(ds, split, cold_model, seed=args.seed)
    if not is_main_process():
        return 0  # under torchrun every rank trains; rank 0 evaluates and writes the artifact

    users, items = warm.known()
    refit: dict[str, Any] = {
        "from": str(args.artifact),
        "warm": why_cold is None,
        "seconds": round(seconds, 3),
        "epochs": _epochs(model),
        "users": {"known": users, "new": ds.n_users - users, "dropped": len(old.user_ids) - users},
        "items": {"known": items, "new": ds.n_items - items, "dropped": len(old.item_ids) - items},
        "moved_to_train": moved,
    }
    if why_cold:
        refit["why_cold"] = why_cold
    if cold_model is not None:
        refit["cold"] = {"seconds": round(cold_seconds, 3), "epochs": _epochs(cold_model), "measured": True}
    else:
        # the cold fit behind the artifact: its own, or the one an earlier refit recorded
        earlier = old.info.get("refit") or {}
        cold = earlier.get("cold") if earlier.get("warm") else None
        cold = cold or {"seconds": old.info.get("fit_seconds"), "epochs": _epochs(old.model)}
        refit["cold"] = {"seconds": cold.get("seconds"), "epochs": cold.get("epochs"), "measured": False}
    if split.valid.nnz:
        refit["valid"] = {metric: _valid(model, split, metric)}
        if cold_model is not None:
            refit["cold"]["valid"] = {metric: _valid(cold_model, split, metric)}

    art.info["refit"] = refit
    art.info["load"] = load_record(args)
    if getattr(args, "command_line", None):
        art.info["command"] = shlex.join(args.command_line)
    result = {"model": name, "params": model.get_params(), "split": split_summary(split), "out": str(out)}
    result["refit"] = refit
    if not args.no_eval:
        res = evaluate(model, split, seed=args.seed)
        art.info["test_metrics"] = dict(res.metrics)
        result["test"] = res.to_dict()
    save_artifact(art, out)
    emit(args, result, "\n".join(_lines(name, refit, metric, result, str(out))))
    return 0


def _epochs(model) -> int | None:
    """Epochs (ALS: iterations) the fit ran: early stopping's count where it stopped early."""
    ran = getattr(model, "epochs_run_", None)
    if ran is None:
        ran = model.get_params().get("epochs")
    return int(ran) if ran is not None else None


def _valid(model, split, metric: str) -> float:
    from fusionrec.evaluation import evaluate

    return float(evaluate(model, split, on="valid", metrics=[metric]).metrics[metric])


def _lines(name: str, refit: dict, metric: str, result: dict, out: str) -> list[str]:
    def fit_text(d: dict) -> str:
        seconds = d.get("seconds")
        text = "unknown" if seconds is None else f"{seconds:.2f}s"
        return text + (f" ({d['epochs']} epochs)" if d.get("epochs") is not None else "")

    cold = refit["cold"]
    how = "warm" if refit["warm"] else "cold"
    lines = [f"refitted {name} {how} in {fit_text(refit)} → {out}"]
    source = "measured now on the same split" if cold["measured"] else "recorded in the artifact"
    lines.append(f"cold fit: {fit_text(cold)}, {source}")
    if "valid" in refit:
        line = f"valid {metric}: refit {refit['valid'][metric]:.4f}"
        if "valid" in cold:
            line += f", cold {cold['valid'][metric]:.4f}"
        lines.append(line)
    u, i = refit["users"], refit["items"]
    lines.append(
        f"users: {u['known']} known, {u['new']} new, {u['dropped']} not in the data; "
        f"items: {i['known']} known, {i['new']} new, {i['dropped']} not in the data"
    )
    if any(refit["moved_to_train"].values()):
        m = refit["moved_to_train"]
        lines.append(
            f"split: {m['valid']} valid and {m['test']} test interactions the artifact trained on moved to train"
        )
    if "test" in result:
        lines.append(
            "test: " + "  ".join(f"{k}={v:.4f}" for k, v in result["test"].items() if isinstance(v, float))
        )
    return lines
