"""`fusionrec recommend`: top-k items for a known user, a list of recent items, or like one item."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_output_args, comma_list, emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="recommend items for a user (or like an item) from an artifact")
    p.add_argument("artifact", help="artifact directory written by `fusionrec fit`")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="raw user id known to the model")
    who.add_argument(
        "--items", help="comma-separated raw item ids of an unknown user's recent items (fold-in)"
    )
    who.add_argument("--similar", metavar="ITEM", help="raw item id: list the items most like it")
    p.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    p.add_argument("--include-seen", action="store_true", help="do not hide the user's (or given) items")
    p.add_argument(
        "--explain",
        action="store_true",
        help="show each modality's (or part's) contribution per item; rating models: the predicted rating",
    )
    p.add_argument(
        "--modality", default="all", help="--similar: compare by this content modality (default: all)"
    )
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    from fusionrec.artifacts import load_artifact
    from fusionrec.recommend import ArtifactView, recommend_for_items, recommend_for_user, similar_items

    art = load_artifact(args.artifact)
    view = ArtifactView.build(art, where=str(args.artifact))
    if args.user is not None:
        recs = recommend_for_user(
            view, args.user, k=args.k, exclude_seen=not args.include_seen, explain=args.explain
        )
        who = f"user {args.user}"
    elif args.items is not None:
        items = comma_list(args.items)
        recs = recommend_for_items(view, items, k=args.k, exclude_seen=not args.include_seen)
        who = f"a user who liked {', '.join(items)}"
    else:
        recs = similar_items(view, args.similar, k=args.k, modality=args.modality)
        who = f"items like {args.similar} ({args.modality})"
    lines = [f"top {args.k} for {who} ({art.model.name}):"]
    for r in recs:
        title = f"  {r['title']}" if r.get("title") else ""
        line = f"{r['rank']:>3}. {r['item_id']:<10} {r['score']:.4f}{title}"
        if "predicted_rating" in r:
            line += f"  predicted rating {r['predicted_rating']:.2f}"
        parts = (r.get("explanation") or {}).get("parts")
        if parts:
            line += "  [" + ", ".join(f"{m}: {v:+.3f}" for m, v in parts.items()) + "]"
        lines.append(line)
    emit(args, {"model": art.model.name, "recommendations": recs}, "\n".join(lines))
    return 0
