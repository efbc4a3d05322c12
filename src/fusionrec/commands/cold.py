"""`fusionrec cold`: the cold-item protocol — fit without some items, place them by content, rank them."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import (
    add_data_args,
    add_output_args,
    add_param_arg,
    comma_list,
    emit,
    parse_params,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cold",
        help="evaluate recommending items that have no interactions (content only) against baselines",
        description="Cold-item protocols: hold out --cold-fraction of the items with all their interactions, "
        "fit --model on the rest and give each held-out item a vector from its features. full-catalogue "
        "(default): the new items compete with every warm item in each user's full ranking; recall/NDCG on "
        "the new items and on all held-out items, the share of top-K slots new items take and how many "
        "reach anyone, for the model alone, with raw and calibrated content scores, content kNN and "
        "popularity. among-cold: the held-out test items are ranked only among themselves, against random, "
        "train popularity (all cold items tie, so it equals random), popularity predicted from content, "
        "content kNN and an oracle popularity that peeks at the test part (a reference, not a baseline). "
        "clone: --clones items with at least --min-fans train users are added again under new ids with "
        "their content only, placed as POST /items places them, and ranked in the full catalogue for the "
        "originals' fans: median rank and top-20 share, raw and calibrated, beside the original's.",
    )
    p.add_argument(
        "--protocol",
        choices=["full-catalogue", "among-cold", "clone"],
        default="full-catalogue",
        help="new items against the whole catalogue (default), ranked among themselves, or copies of "
        "known items added by content (clone)",
    )
    add_data_args(p)
    p.add_argument("--model", default="als", help="an inner-product model or one with cold-item support")
    add_param_arg(p)
    p.add_argument("--seed", type=int, default=2026, help="seed for the split and the model")
    p.add_argument(
        "--cold-fraction", type=float, default=0.2, help="fraction of items held out (half valid, half test)"
    )
    p.add_argument(
        "--on",
        choices=["test", "valid"],
        default="test",
        help="among-cold: which half of the cold items to rank (full-catalogue tests on test, tunes on valid)",
    )
    p.add_argument(
        "--cold-targets",
        choices=["held-out", "all"],
        default="held-out",
        help="full-catalogue: a new item's test interactions are the ones the split holds out (default) or "
        "all of them",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="full-catalogue: the calibration gives new items the most exposure that costs at most this "
        "fraction of the best valid accuracy (0: the most accurate on valid)",
    )
    p.add_argument("--clones", type=int, default=50, help="clone: how many items to copy (seeded draw)")
    p.add_argument(
        "--min-fans", type=int, default=20, help="clone: copy only items with at least this many train users"
    )
    p.add_argument(
        "--new-item-share",
        type=float,
        default=0.1,
        help="clone: also report the top-20 share when this share of each list is reserved for new items "
        "(0: skip)",
    )
    p.add_argument("--metrics", default="recall@20,ndcg@20", help="comma-separated NAME@K")
    p.add_argument("--modalities", help="comma-separated modalities for the content mapping (default: all)")
    p.add_argument("--reg", type=float, help="ridge penalty of the content mapping (default: chosen by GCV)")
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    from fusionrec.commands._common import load_data
    from fusionrec.evaluation.cold_start import (
        evaluate_clones,
        evaluate_cold_items,
        evaluate_full_catalogue,
        format_clones,
        format_cold,
        format_full_catalogue,
    )
    from fusionrec.pipeline import build_model

    model = build_model(args.model, parse_params(args.param), seed=args.seed, show_progress=not args.quiet)
    ds = load_data(args)
    modalities = comma_list(args.modalities) if args.modalities else None
    metrics = comma_list(args.metrics)
    # every protocol takes the seed and the content mapping (modalities, ridge penalty) alike
    shared = {"seed": args.seed, "modalities": modalities, "reg": args.reg}
    if args.protocol == "clone":
        res = evaluate_clones(
            ds,
            model,
            n_clones=args.clones,
            min_fans=args.min_fans,
            new_item_share=args.new_item_share,
            **shared,
        )
        emit(args, res.to_dict(), format_clones(res))
        return 0
    if args.protocol == "full-catalogue":
        res = evaluate_full_catalogue(
            ds,
            model,
            cold_fraction=args.cold_fraction,
            metrics=metrics,
            **shared,
            targets=args.cold_targets,
            tolerance=args.tolerance,
        )
        emit(args, res.to_dict(), format_full_catalogue(res))
        return 0
    res = evaluate_cold_items(
        ds,
        model,
        cold_fraction=args.cold_fraction,
        on=args.on,
        metrics=metrics,
        **shared,
    )
    emit(args, res.to_dict(), format_cold(res))
    return 0
