"""`fusionrec recommend`: top-k items for a known user (or a list of recent items) from an artifact."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_output_args, emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="recommend items for a user from an artifact")
    p.add_argument("artifact", help="artifact directory written by `fusionrec fit`")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="raw user id known to the model")
    who.add_argument(
        "--items", help="comma-separated raw item ids of an unknown user's recent items (fold-in)"
    )
    p.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    p.add_argument("--include-seen", action="store_true", help="do not hide the user's training items")
    p.add_argument(
        "--explain",
        action="store_true",
        help="show each modality's (or part's) contribution per item; rating models: the predicted rating",
    )
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    from fusionrec.artifacts import load_artifact
    from fusionrec.recommend import recommend_for_items, recommend_for_user

    art = load_artifact(args.artifact)
    if args.user is not None:
        recs = recommend_for_user(
            art, args.user, k=args.k, exclude_seen=not args.include_seen, explain=args.explain
        )
        who = f"user {args.user}"
    else:
        items = [x.strip() for x in args.items.split(",") if x.strip()]
        recs = recommend_for_items(art, items, k=args.k)
        who = f"a user who liked {', '.join(items)}"
    lines = [f"top {args.k} for {who} ({art.model.name}):"]
    for r in recs:
        title = f"  {r['title']}" if r.get("title") else ""
        line = f"{r['rank']:>3}. {r['item_id']:<10} {r['score']:.4f}{title}"
        if "predicted_rating" in r:
            line += f"  predicted rating {r['predicted_rating']:.2f}"
        if r.get("explanation"):
            line += "  [" + ", ".join(f"{m}: {v:+.3f}" for m, v in r["explanation"].items()) + "]"
        lines.append(line)
    emit(args, {"model": art.model.name, "recommendations": recs}, "\n".join(lines))
    return 0
